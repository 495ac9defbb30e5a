"""`AsyncVairoClient`: configuration, the HTTP round trip, and the single-package calls."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Self, TypeVar

import httpx

from ._bulk import Campaign, Messages, ProgressHook
from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RETRY_AFTER_MAX,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_CONCURRENCY,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_SENDER,
    REPORT_ENDPOINT,
    SEND_ENDPOINT,
)
from ._errors import (
    BulkInputError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    TransportError,
)
from ._models import BatchOutcome, BulkResult, Message, PackageReport, Submission
from ._poll import check_wait, run_wait, run_wait_all
from ._redact import install_log_redaction, redact, scrub_exception
from ._retry import RetryPolicy, parse_retry_after
from ._segments import credits_of, needs_turkish_shift
from ._validate import check_message, check_sender, describe
from ._wire import decode, encode_send

__all__ = ["AsyncVairoClient"]

T = TypeVar("T")

# Failures that happen before the request leaves the client: a resend cannot duplicate.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_JSON = {"content-type": "application/json"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_base_url(base_url: str, secret: str) -> str:
    # Messages quote the URL as given, with any `api_key=` value and copy of `secret` taken
    # out: a key pasted into the URL is an easy mistake. Not the parsed host: httpx lowercases
    # it, and a lowercased key would escape the literal match.
    quoted = repr(redact(str(base_url), secret))
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(
            f"base_url is not a valid URL ({redact(str(exc), secret)}), got {quoted}"
        ) from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {quoted}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http to {quoted}: the API key would travel unencrypted; "
            "use https (plain http is allowed only for loopback test servers)"
        )
    if url.query or url.userinfo:
        raise ConfigurationError("base_url must not carry a query string or credentials")
    text = str(url)
    return text if text.endswith("/") else text + "/"


class AsyncVairoClient:
    """An asyncio client for the VairoSMS API.

    Args:
        api_key: The API key; defaults to the `VAIRO_API_KEY` environment variable.
        sender: The default sender name (`baslik`); defaults to `VAIRO_SENDER`.
        base_url: The API root; defaults to `VAIRO_BASE_URL`, then the public endpoint.
            Plain http is refused unless the host is loopback.
        timeout: Seconds per request, or an `httpx.Timeout`. Not used with `http_client`.
        max_retries: Retries after the first attempt of a request.
        retry_backoff: First backoff in seconds; it doubles each retry, with jitter.
        retry_backoff_max: Cap of one backoff in seconds.
        retry_after_max: Longest `Retry-After` honoured; longer hints are raised.
        retry_unknown_outcomes: Resend after failures that leave a send's outcome unknown
            (read timeout, dropped connection, 500/502/504). Off by default: it can deliver
            an SMS twice.
        http_client: An `httpx.AsyncClient` to use; the caller keeps ownership and closes it.
        transport: An httpx transport for the client's own `httpx.AsyncClient` (tests use
            `vairo_async.testing.FakeVairo().transport()`). By default the SDK sends
            through aiohttp (see the README's "HTTP stack").
        max_connections: Connections the default transport keeps open at most; bulk
            `concurrency` may not exceed it, so no request waits inside the pool.

    Raises:
        ConfigurationError: No API key, an unsafe base URL, or both `http_client` and
            `transport`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        sender: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
        retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
        retry_unknown_outcomes: bool = False,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        if not key or not key.strip():
            raise ConfigurationError(f"no API key: pass api_key= or set {ENV_API_KEY}")
        self._key = key
        self._sender = sender if sender is not None else os.environ.get(ENV_SENDER)
        if self._sender is not None:
            try:
                check_sender(self._sender)
            except ValueError as exc:
                raise ConfigurationError(f"sender={describe(self._sender)}: {exc}") from None
        self.base_url = _checked_base_url(
            base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL, key
        )
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass http_client or transport, not both")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        self._retry = RetryPolicy(
            max_retries=max_retries,
            backoff=retry_backoff,
            backoff_max=retry_backoff_max,
            retry_after_max=retry_after_max,
            retry_unknown_outcomes=retry_unknown_outcomes,
        )
        install_log_redaction(secrets=(key,))
        self._owns_http = http_client is None
        self._max_connections: int | None = None
        if http_client is None:
            if timeout is None:
                timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
            if transport is None:
                self._max_connections = max_connections
            from ._transport import make_http_client

            http_client = make_http_client(
                self.base_url, transport=transport, timeout=timeout, max_connections=max_connections
            )
        self._http = http_client
        self._params = {"api_key": key}
        self._send_url = httpx.URL(self.base_url + SEND_ENDPOINT, params=self._params)
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncVairoClient(base_url={self.base_url!r}, sender={self._sender!r})"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and, unless the caller supplied it, its HTTP connections."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    def _pool_problems(self, concurrency: object) -> list[str]:
        """A problem line when `concurrency` exceeds the default transport's pool."""
        limit = self._max_connections
        if limit is None or type(concurrency) is not int or concurrency <= limit:
            return []
        return [
            f"concurrency={concurrency} exceeds the client's max_connections={limit}: "
            "requests would wait inside the connection pool"
        ]

    def _checked_sender(self, sender: str | None, problems: list[str]) -> str | None:
        """The call's sender, else the client's; a problem is appended if it is unusable."""
        try:
            return check_sender(self._sender if sender is None else sender)
        except ValueError as exc:
            problems.append(f"sender: {exc}")
            return None

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this AsyncVairoClient is closed; create a new one")

    async def send(
        self,
        text: str,
        *,
        to: str | Iterable[str],
        sender: str | None = None,
        tr_char: bool | None = None,
    ) -> Submission:
        """Send one text to one or more numbers, as one package (one SmsGonder call).

        Args:
            text: The message text.
            to: A number, or an iterable of numbers, in any common Turkish spelling.
            sender: Overrides the client's sender for this call.
            tr_char: Turkish characters flag; None sets it exactly when the text needs it.

        Returns:
            The package id and recipient count.

        Raises:
            InvalidRequestError: Bad numbers, empty text, no recipients or a bad sender;
                nothing was sent.
            OutcomeUnknownError: The send may or may not have gone out; not retried.
            APIError: The server refused the package.
            TransportError: The server could not be reached; nothing was sent.

        .. versionadded:: 0.1.0
        """
        numbers = [to] if isinstance(to, str) else list(to)
        return await self.send_messages(
            [Message(to=number, text=text) for number in numbers], sender=sender, tr_char=tr_char
        )

    async def send_messages(
        self,
        messages: Iterable[Message],
        *,
        sender: str | None = None,
        tr_char: bool | None = None,
    ) -> Submission:
        """Send messages with their own texts as one package (one SmsGonder call).

        Takes the same arguments and raises the same errors as `send`; for more messages
        than one call should carry, use `send_bulk`.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        batch = list(messages)
        problems: list[str] = []
        sender = self._checked_sender(sender, problems)
        if not batch:
            problems.append("no recipients: the message list is empty")
        if tr_char is not None and type(tr_char) is not bool:
            problems.append(f"tr_char must be True, False or None, got {describe(tr_char)}")
        checked = []
        for index, message in enumerate(batch):
            try:
                checked.append(check_message(message))
            except (TypeError, ValueError) as exc:
                where = f"messages[{index}]: " if len(batch) > 1 else ""
                problems.append(f"{where}{exc}")
        if problems:
            raise InvalidRequestError(problems)
        assert sender is not None
        if tr_char is None:
            tr_char = any(needs_turkish_shift(message.text) for message in checked)
        credits = credits_of([message.text for message in checked], tr_char)
        package_id = await self._submit(sender, checked, tr_char)
        return Submission(package_id, len(checked), estimated_credits=credits)

    def iter_bulk(
        self,
        messages: Messages,
        *,
        sender: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | None = None,
        on_progress: ProgressHook | None = None,
    ) -> AsyncGenerator[BatchOutcome, None]:
        """Send a campaign of any size, yielding each batch's outcome as it settles.

        `messages` (any iterable or async iterable of `Message`) is read lazily, only as
        fast as batches can be dispatched. Bad rows are rejected inside the outcome of the
        batch they would have joined; no failing batch stops the others. Every row ends
        sent, failed, unknown or rejected, and no batch is sent twice unless the client
        was built with `retry_unknown_outcomes=True`.

        Args:
            messages: The rows to send.
            sender: Overrides the client's sender for this campaign.
            batch_size: Rows per batch (one SmsGonder call each), at most.
            concurrency: Batches in flight, at most.
            rate: SmsGonder requests per second, retries included, at most; None for no
                limit.
            on_progress: Called with a `BulkProgress` as each batch settles, including
                the batches settled as the campaign is cancelled.

        Raises:
            InvalidRequestError: A bad sender or bad limits, before anything is read.
            TypeError: An input row that is not a `Message`, and anything else the input
                raises: after the outcomes of every row read before it were yielded.

        .. versionadded:: 0.1.0
        """
        return self._campaign(sender, batch_size, concurrency, rate, on_progress).run(messages)

    async def send_bulk(
        self,
        messages: Messages,
        *,
        sender: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | None = None,
        on_progress: ProgressHook | None = None,
    ) -> BulkResult:
        """Run `iter_bulk` to the end and collect every outcome into a `BulkResult`.

        A failed batch never raises: look at the result's `failed`, `unknown` and
        `rejected` counts and rows. Takes the same arguments as `iter_bulk`.

        Raises:
            InvalidRequestError: A bad sender or bad limits, before anything is read.
            BulkInputError: The input raised (its exception is the cause); `result` holds
                the campaign up to there, every package id included.

        .. versionadded:: 0.1.0
        """
        campaign = self._campaign(sender, batch_size, concurrency, rate, on_progress)
        outcomes: list[BatchOutcome] = []
        try:
            async with contextlib.aclosing(campaign.run(messages)) as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
        except BaseException as exc:
            if exc is not campaign.source_error:
                raise
            result = BulkResult(tuple(outcomes), campaign.rows_read)
            raise BulkInputError(result) from exc
        return BulkResult(tuple(outcomes), campaign.rows_read)

    def _campaign(
        self,
        sender: str | None,
        batch_size: int,
        concurrency: int,
        rate: float | None,
        on_progress: ProgressHook | None,
    ) -> Campaign:
        """A campaign with checked settings.

        Raises:
            InvalidRequestError: Listing every bad setting, before any input is read.
        """
        self._check_open()
        problems: list[str] = []
        checked_sender = self._checked_sender(sender, problems)
        for name, value in (("batch_size", batch_size), ("concurrency", concurrency)):
            if type(value) is not int or value < 1:
                problems.append(f"{name}={describe(value)}: must be a positive integer")
        problems.extend(self._pool_problems(concurrency))
        if rate is not None and (not isinstance(rate, int | float) or not rate > 0):
            problems.append(f"rate={describe(rate)}: must be a positive number or None")
        if problems or checked_sender is None:
            raise InvalidRequestError(problems)
        return Campaign(
            self,
            sender=checked_sender,
            batch_size=batch_size,
            concurrency=concurrency,
            rate=rate,
            on_progress=on_progress,
        )

    async def get_report(self, package_id: int) -> PackageReport:
        """Fetch a package's report (one GonderimBilgisi call, retried on transient errors).

        Raises:
            InvalidRequestError: `package_id` is not a non-negative integer.
            APIError: The server answered with an error, e.g. no such package.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        if type(package_id) is not int or package_id < 0:
            raise InvalidRequestError(
                [f"package_id={describe(package_id)}: must be a non-negative integer"]
            )
        url = httpx.URL(f"{self.base_url}{REPORT_ENDPOINT}/{package_id}", params=self._params)
        return await self._retry.get(self._call, "GET", url, None, PackageReport)

    async def _submit(
        self,
        sender: str,
        messages: list[Message],
        tr_char: bool,
        *,
        before_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """POST one checked batch under the send retry rules; returns the package id.

        `before_attempt` is awaited before every HTTP attempt, retries included (bulk
        campaigns take their rate limit there).
        """
        body = encode_send(sender, messages, tr_char)
        if before_attempt is None:
            return await self._retry.post(self._call, "POST", self._send_url, body, int)
        return await self._retry.post(self._call_after, before_attempt, self._send_url, body)

    async def _call_after(
        self, before: Callable[[], Awaitable[None]], url: httpx.URL, body: bytes
    ) -> int:
        await before()
        return await self._call("POST", url, body, int)

    async def _call(self, method: str, url: httpx.URL, content: bytes | None, target: type[T]) -> T:
        """One HTTP round trip, its answer decoded into `target` or raised as a VairoError."""
        self._check_open()
        try:
            response = await self._http.request(
                method, url, content=content, headers=_JSON if content is not None else None
            )
        except httpx.RequestError as exc:
            scrub_exception(exc, self._key)
            raise TransportError(
                f"{type(exc).__name__}: {redact(str(exc), self._key) or 'no detail'}",
                may_have_reached_server=not isinstance(exc, _NOT_SENT),
            ) from exc
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return decode(response.status_code, response.content, retry_after, target, self._key)

    async def wait_until_final(
        self,
        package_id: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the whole wait, by name
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        expiry_grace: float | None = DEFAULT_EXPIRY_GRACE,
    ) -> PackageReport:
        """Poll a package until it is COMPLETED or FAILED, and return that report.

        The first poll comes after `poll_interval`; intervals grow 1.5 times, with jitter,
        up to `max_poll_interval`. Transient poll failures do not end the wait.

        Args:
            package_id: The id `send` returned.
            timeout: Seconds to wait at most; None waits until the package is final or
                expired.
            poll_interval: Seconds before the first poll, and the first interval.
            max_poll_interval: The longest interval between two polls.
            expiry_grace: Seconds a package may stay unsettled after its validity ended
                (`expires_at`) before the wait gives up; None never gives up.

        Returns:
            The package's first final report; a FAILED one carries its `failure`.

        Raises:
            WaitTimeoutError: Not final within `timeout`; carries the last report seen.
            PackageExpiredError: Still not final `expiry_grace` seconds after it expired.
            APIError: A poll was answered with a non-transient error, e.g. no such
                package (`AuthenticationError` for a refused key).
            InvalidRequestError: A bad id or argument; nothing was polled.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        _, settings = check_wait(
            [package_id],
            single=True,
            concurrency=1,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            expiry_grace=expiry_grace,
        )
        return await run_wait(self.get_report, package_id, settings)

    def wait_all(
        self,
        package_ids: Iterable[int],
        *,
        timeout: float | None = None,
        concurrency: int = DEFAULT_WAIT_CONCURRENCY,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        expiry_grace: float | None = DEFAULT_EXPIRY_GRACE,
    ) -> AsyncGenerator[PackageReport, None]:
        """Wait for many packages at once, yielding each final report as soon as it is final.

        Packages that cannot be waited for are raised together after the others were
        yielded. Close the iterator (`contextlib.aclosing`) or cancel its task to stop
        every poll at once.

        Args:
            package_ids: The ids to wait for; a repeated id is waited for and yielded once.
            timeout: Seconds the whole wait may last; None for no limit.
            concurrency: Report requests in flight, at most.
            poll_interval: As for `wait_until_final`.
            max_poll_interval: As for `wait_until_final`.
            expiry_grace: As for `wait_until_final`.

        Returns:
            An async iterator of final reports, in the order the packages became final.

        Raises:
            WaitAllError: After every other package was yielded: an `ExceptionGroup` of
                the failed packages' errors (`WaitTimeoutError`, `PackageExpiredError`,
                `APIError`), with `errors` mapping each package id to its error.
            AuthenticationError: The key was refused; raised at once, as it concerns
                every package.
            InvalidRequestError: A bad id or argument, raised by the call itself; nothing
                was polled.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        ids, settings = check_wait(
            package_ids,
            single=False,
            concurrency=concurrency,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            expiry_grace=expiry_grace,
        )
        if problems := self._pool_problems(concurrency):
            raise InvalidRequestError(problems)
        return run_wait_all(self.get_report, ids, settings, concurrency)
