"""`AsyncVairoClient`: configuration, the HTTP round trip, and the single-package calls."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncGenerator, Iterable, Mapping
from types import TracebackType
from typing import Generic, Self, TypeVar

import httpx

from . import (
    _intercept,  # noqa: F401 - takes httpx's originals at import, before any mock
    _otel,
)
from ._bulk import Campaign, Messages, ProgressHook
from ._config import BulkSettings, ClientSettings
from ._constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RETRY_AFTER_MAX,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_WAIT_CONCURRENCY,
)
from ._durable import Durable, Existing, config_problems, require
from ._endpoints import REPORT, SEND, Endpoint
from ._errors import (
    BulkInputError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    TransportError,
    VairoError,
    WrongEventLoopError,
)
from ._journal import DEFAULT_LEASE, DEFAULT_RETENTION, Journal, batch_key, send_key
from ._models import BatchOutcome, BulkResult, Message, PackageReport, Submission
from ._outcome import Reach, reach_of_exception
from ._phone import normalize_number
from ._poll import check_wait, run_wait, run_wait_all
from ._rate import RateLimiter
from ._redact import hold_secret, install_log_redaction, redact, scrub_exception
from ._retry import BeforeAttempt, RetryPolicy, parse_retry_after
from ._segments import credits_of, needs_turkish_shift
from ._validate import Problems, check_message, check_sender, describe
from ._wire import decode, encode_send
from ._wording import describe as describe_request_error

__all__ = ["AsyncVairoClient"]

T = TypeVar("T")

_JSON = {"content-type": "application/json"}


def _excluded(exclude: Iterable[str] | None, problems: Problems) -> frozenset[str]:
    """The wire forms of a campaign's `exclude` numbers; each bad one goes to `problems`."""
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        problems.add(f"exclude={describe(exclude)}: must be a collection of numbers")
        return frozenset()
    numbers = set()
    for number in exclude:
        try:
            numbers.add(normalize_number(number))
        except ValueError as exc:
            problems.add(f"exclude: {describe(number)}: {exc}")
    return frozenset(numbers)


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
        journal: Where sends with an `idempotency_key` and campaigns with a `campaign` id
            are recorded before their requests (see the README's "Crashes and retries").
            The client uses it and leaves it open: close it yourself.
        idempotency_retention: Seconds a single send's record is kept; a key reused after
            that sends again.
        journal_lease: Seconds a claim stays live; it is renewed before each retry, so it
            must outlast one attempt and its wait (the timeout plus the longest backoff or
            `Retry-After`). A claim whose sender stopped renewing it (died or hangs) reads
            UNKNOWN after it, and is never sent again automatically.

    Raises:
        ConfigurationError: Listing every bad argument (no API key, an unsafe base URL,
            a negative timeout or backoff, both `http_client` and `transport`, ...; the
            README's "Configuration" says what each must be).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 `journal`, `idempotency_retention`, `journal_lease`.
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
        journal: Journal | None = None,
        idempotency_retention: float = DEFAULT_RETENTION,
        journal_lease: float = DEFAULT_LEASE,
    ) -> None:
        try:
            problems = Problems(ConfigurationError)
            settings = problems.build(
                ClientSettings,
                api_key=api_key,
                sender=sender,
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                retry_backoff=retry_backoff,
                retry_backoff_max=retry_backoff_max,
                retry_after_max=retry_after_max,
                retry_unknown_outcomes=retry_unknown_outcomes,
                http_client=http_client,
                transport=transport,
                max_connections=max_connections,
            )
            problems.extend(
                config_problems(journal, idempotency_retention, journal_lease, settings)
            )
            problems.check()
        except ConfigurationError as exc:
            # The checks' frames, and this one, hold the key: a reporter printing frame
            # locals would show it.
            scrub_exception(exc, "")
            api_key = base_url = None  # a key is often pasted into the URL
            raise
        assert settings is not None
        self._durable = (
            None
            if journal is None
            else Durable(journal, retention=idempotency_retention, lease=journal_lease)
        )
        self._settings = settings
        self._key = key = settings.api_key
        self._sender = settings.sender
        self.base_url = settings.base_url
        self._retry = RetryPolicy(
            max_retries=settings.max_retries,
            backoff=settings.retry_backoff,
            backoff_max=settings.retry_backoff_max,
            retry_after_max=settings.retry_after_max,
            retry_unknown_outcomes=settings.retry_unknown_outcomes,
        )
        install_log_redaction()
        # The log filter replaces this key while the client is open: released at aclose(),
        # or when a client that was never closed is collected.
        self._release_key = weakref.finalize(self, hold_secret(key))
        self._owns_http = http_client is None
        if http_client is None:
            from ._transport import make_http_client

            http_client = make_http_client(
                self.base_url,
                transport=transport,
                timeout=settings.http_timeout,
                max_connections=settings.max_connections,
            )
        self._http = http_client
        self._params = {"api_key": key}
        self._urls: dict[str, httpx.URL] = {}  # of endpoints without path arguments
        self._closed = False
        # The loop of the first request: the connections belong to it (see `_check_loop`).
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        # Also for a client whose construction failed: tracebacks may print it as a local.
        base_url, sender = getattr(self, "base_url", None), getattr(self, "_sender", None)
        return f"AsyncVairoClient(base_url={base_url!r}, sender={sender!r})"

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
        try:
            if self._owns_http:
                await self._http.aclose()
        finally:
            self._release_key()

    def _checked_sender(self, sender: str | None, problems: Problems) -> str | None:
        """The call's sender, else the client's; a problem is recorded if it is unusable."""
        try:
            return check_sender(self._sender if sender is None else sender)
        except ValueError as exc:
            problems.add(f"sender: {exc}")
            return None

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this AsyncVairoClient is closed; create a new one")

    def _check_loop(self) -> None:
        """Bind the client to the loop of its first request, and refuse any other.

        An HTTP stack's connections and futures belong to the loop that opened them; used
        from another loop, aiohttp fails only after the request left. This refuses first.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WrongEventLoopError(
                "this AsyncVairoClient sent its first request on another event loop, which "
                "owns its connections; nothing was sent. Build one client inside each event "
                "loop (each asyncio.run(), or the application's lifespan)"
            )

    async def send(
        self,
        text: str,
        *,
        to: str | Iterable[str],
        sender: str | None = None,
        tr_char: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Send one text to one or more numbers, as one package (one SmsGonder call).

        Args:
            text: The message text.
            to: A number, or an iterable of numbers, in any common Turkish spelling.
            sender: Overrides the client's sender for this call.
            tr_char: Turkish characters flag; None sets it exactly when the text needs it.
            idempotency_key: Sends at most once per key (needs the client's `journal`):
                a repeated call with the same content returns the first `Submission`,
                marked `replayed`, without a request.

        Returns:
            The package id and recipient count.

        Raises:
            InvalidRequestError: Bad numbers, empty text, no recipients or a bad sender;
                nothing was sent.
            OutcomeUnknownError: The send may or may not have gone out; not retried. With
                an idempotency key, also when an earlier send under it may have gone out.
            APIError: The server refused the package.
            TransportError: The server could not be reached; nothing was sent.
            ConfigurationError: An idempotency key on a client without a journal.
            IdempotencyKeyReusedError: The key was used for other content; nothing sent.
            SendInProgressError: The key's send is in flight elsewhere; nothing sent.
            JournalUnavailableError: The journal could not be written; nothing was sent.
            SentNotRecordedError: Sent (`package_id`), but the journal could not record it.

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.2.0 `idempotency_key`.
        """
        if isinstance(to, str):
            numbers = [to]
        else:
            try:
                numbers = list(to)
            except TypeError:
                raise InvalidRequestError(
                    [f"to={describe(to)}: must be a number as a string, or an iterable of them"]
                ) from None
        return await self.send_messages(
            [Message(to=number, text=text) for number in numbers],
            sender=sender,
            tr_char=tr_char,
            idempotency_key=idempotency_key,
        )

    async def send_messages(
        self,
        messages: Iterable[Message],
        *,
        sender: str | None = None,
        tr_char: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Send messages with their own texts as one package (one SmsGonder call).

        Takes the same arguments and raises the same errors as `send`; for more messages
        than one call should carry, use `send_bulk`.

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.2.0 `idempotency_key`.
        """
        self._check_open()
        durable = None
        if idempotency_key is not None:
            durable = require(self._durable, "idempotency_key", idempotency_key)
            key = send_key(idempotency_key)
        batch = list(messages)
        problems = Problems(InvalidRequestError)
        sender = self._checked_sender(sender, problems)
        if not batch:
            problems.add("no recipients: the message list is empty")
        if tr_char is not None and type(tr_char) is not bool:
            problems.add(f"tr_char must be True, False or None, got {describe(tr_char)}")
        checked = []
        for index, message in enumerate(batch):
            try:
                checked.append(check_message(message))
            except (TypeError, ValueError) as exc:
                where = f"messages[{index}]: " if len(batch) > 1 else ""
                problems.add(f"{where}{exc}")
        problems.check()
        assert sender is not None
        if tr_char is None:
            tr_char = any(needs_turkish_shift(message.text) for message in checked)
        credits = credits_of([message.text for message in checked], tr_char)
        body = encode_send(sender, checked, tr_char)
        if durable is not None:
            assert idempotency_key is not None
            submit = functools.partial(self._submit, body, len(checked))
            return await durable.send(idempotency_key, key, body, len(checked), credits, submit)
        package_id = await self._submit(body, len(checked), None)
        return Submission(package_id, len(checked), estimated_credits=credits)

    def iter_bulk(
        self,
        messages: Messages,
        *,
        sender: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | RateLimiter | None = None,
        on_progress: ProgressHook | None = None,
        exclude: Iterable[str] | None = None,
        campaign: str | None = None,
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
            rate: SmsGonder requests per second, retries included, at most; or a
                `RateLimiter` (any object with an async `acquire()`, such as
                `RedisRateLimiter`, shared by every worker); None for no limit.
            on_progress: Called with a `BulkProgress` as each batch settles, including
                the batches settled as the campaign is cancelled. A coroutine function is
                awaited, one call at a time in settle order, each before its outcome is
                yielded.
            exclude: Numbers not to send to, in any spelling (an opt-out list): a row to
                one of them is rejected with the reason "excluded". Read once, up front.
            campaign: Records the campaign under this id in the client's `journal`: each
                batch is claimed before its request and marked SENT after it, and a rerun
                over the same input yields the batches already sent (`replayed`, with
                their package ids) or unknown without sending them again, and sends the
                rest.

        Raises:
            InvalidRequestError: A bad sender, bad limits or a bad number in `exclude`,
                before anything is read.
            ConfigurationError: A `campaign` on a client without a journal.
            CampaignMismatchError: The campaign ran before with another sender,
                `batch_size` or `exclude` (before anything is sent), or a batch's rows
                differ from the journal's (after the batches in flight settled).
            JournalUnavailableError: The journal could not be read when the campaign
                started; nothing was sent.
            TypeError: An input row that is not a `Message`, and anything else the input
                raises: after the outcomes of every row read before it were yielded.

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.2.0 `campaign`.
        """
        run = self._campaign(sender, batch_size, concurrency, rate, on_progress, exclude, campaign)
        return run.run(messages)

    async def send_bulk(
        self,
        messages: Messages,
        *,
        sender: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | RateLimiter | None = None,
        on_progress: ProgressHook | None = None,
        exclude: Iterable[str] | None = None,
        campaign: str | None = None,
    ) -> BulkResult:
        """Run `iter_bulk` to the end and collect every outcome into a `BulkResult`.

        A failed batch never raises: look at the result's `failed`, `unknown` and
        `rejected` counts and rows. Takes the same arguments as `iter_bulk`.

        Raises:
            InvalidRequestError: A bad sender, bad limits or a bad number in `exclude`,
                before anything is read.
            BulkInputError: The input raised (its exception is the cause); `result` holds
                the campaign up to there, every package id included.
            ConfigurationError: A `campaign` on a client without a journal.
            CampaignMismatchError: As for `iter_bulk`.
            JournalUnavailableError: As for `iter_bulk`.

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.2.0 `campaign`.
        """
        run = self._campaign(sender, batch_size, concurrency, rate, on_progress, exclude, campaign)
        outcomes: list[BatchOutcome] = []
        try:
            async with contextlib.aclosing(run.run(messages)) as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
        except BaseException as exc:
            if exc is not run.source_error:
                raise
            result = BulkResult(tuple(outcomes), run.rows_read)
            raise BulkInputError(result) from exc
        return BulkResult(tuple(outcomes), run.rows_read)

    def _campaign(
        self,
        sender: str | None,
        batch_size: int,
        concurrency: int,
        rate: float | RateLimiter | None,
        on_progress: ProgressHook | None,
        exclude: Iterable[str] | None = None,
        campaign: str | None = None,
    ) -> Campaign:
        """A campaign with checked settings.

        Raises:
            InvalidRequestError: Listing every bad setting, before any input is read.
            ConfigurationError: A `campaign` id on a client without a journal.
        """
        self._check_open()
        durable = None
        if campaign is not None:
            durable = require(self._durable, "campaign", campaign)
            batch_key(campaign, 0)  # checks the id
        problems = Problems(InvalidRequestError)
        checked_sender = self._checked_sender(sender, problems)
        settings = problems.build(
            BulkSettings, batch_size=batch_size, concurrency=concurrency, rate=rate
        )
        problems.extend(self._settings.pool_problems(concurrency))
        excluded = _excluded(exclude, problems)
        problems.check()
        assert checked_sender is not None
        assert settings is not None
        return Campaign(
            self._submit,
            sender=checked_sender,
            batch_size=settings.batch_size,
            concurrency=settings.concurrency,
            rate=settings.rate,
            on_progress=on_progress,
            exclude=excluded,
            journal=None
            if durable is None or campaign is None
            else durable.campaign(
                campaign, sender=checked_sender, batch_size=settings.batch_size, exclude=excluded
            ),
        )

    async def get_report(self, package_id: int) -> PackageReport:
        """Fetch a package's report (one GonderimBilgisi call, retried on transient errors).

        Raises:
            InvalidRequestError: `package_id` is not a positive integer.
            APIError: The server answered with an error, e.g. no such package.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        if type(package_id) is not int or package_id < 1:
            raise InvalidRequestError(
                [f"package_id={describe(package_id)}: must be a positive integer"]
            )
        return await self._request(REPORT, {"package_id": package_id})

    async def _submit(self, body: bytes, size: int, before_attempt: BeforeAttempt | None) -> int:
        """POST one checked batch's body (`encode_send`) under the send retry rules; returns
        the package id.

        `before_attempt` is awaited before every HTTP attempt, retries included, with the
        attempt's number (bulk campaigns take their rate limit there). `size` is the
        batch's message count. The signature is the `Submit` a `Campaign` takes.
        """
        try:
            return await self._request(SEND, content=body, before_attempt=before_attempt, size=size)
        except (VairoError, Existing):  # the journal's claim found a record: nothing was sent
            raise
        except Exception as exc:  # a bug or a foreign transport, after the request may have left
            scrub_exception(exc, self._key)
            error = VairoError(f"unexpected {type(exc).__name__}: {redact(str(exc), self._key)}")
            error.__cause__ = exc
            raise OutcomeUnknownError(error) from error

    def _url(self, endpoint: Endpoint[object], path_args: Mapping[str, object] | None) -> httpx.URL:
        if endpoint.placeholders:
            path = endpoint.path_for(**(path_args or {}))
            return httpx.URL(self.base_url + path, params=self._params)
        url = self._urls.get(endpoint.name)
        if url is None:
            url = self._urls[endpoint.name] = httpx.URL(
                self.base_url + endpoint.path, params=self._params
            )
        return url

    async def _request(
        self,
        endpoint: Endpoint[T],
        path_args: Mapping[str, object] | None = None,
        *,
        content: bytes | None = None,
        before_attempt: BeforeAttempt | None = None,
        size: int | None = None,
    ) -> T:
        """Call `endpoint` under its retry rule; its answer decoded, or raised as a VairoError.

        The request is built once and sent on every attempt. `before_attempt` is awaited
        before each of them with the attempt's number (1 for the first). `size` is the
        number of messages a send carries (for its trace).
        """
        self._check_open()
        self._check_loop()
        call = _Call(
            endpoint,
            self._http.build_request(
                endpoint.method,
                self._url(endpoint, path_args),
                content=content,
                headers=_JSON if content is not None else None,
            ),
            before_attempt,
            {name: (path_args or {})[name] for name in endpoint.echoes},
        )
        if (traced := _otel.call(endpoint, path_args, size)) is not None:
            return await traced.run(self._retry, self._attempt, call)
        return await self._retry.run(endpoint, self._attempt, call)

    async def _attempt(self, number: int, call: _Call[T]) -> T:
        """One HTTP round trip of `call`."""
        if call.before_attempt is not None:
            await call.before_attempt(number)
        self._check_open()
        call.attempts = number
        try:
            response = await self._http.send(call.request)
        except httpx.RequestError as exc:
            scrub_exception(exc, self._key)
            raise TransportError(
                redact(describe_request_error(exc), self._key),
                may_have_reached_server=reach_of_exception(exc) is not Reach.NOT_SENT,
            ) from exc
        call.status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and response.status_code == 429:
            cooldown = getattr(call.before_attempt, "cooldown", None)
            if cooldown is not None:  # a shared limiter: every worker waits the hint out
                await cooldown(retry_after)
        try:
            return decode(
                response.status_code,
                response.content,
                retry_after,
                call.endpoint.answer,
                self._key,
                call.echoes,
            )
        except VairoError as exc:
            scrub_exception(exc, self._key)  # decode's frames hold the body and the key
            raise

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
        if problems := self._settings.pool_problems(concurrency):
            raise InvalidRequestError(problems)
        return run_wait_all(self.get_report, ids, settings, concurrency)


class _Call(Generic[T]):
    """One API call: its endpoint, its request (built once, sent on every attempt), its hook.

    Its repr names the endpoint only, since the request's URL carries the API key.
    """

    __slots__ = ("attempts", "before_attempt", "echoes", "endpoint", "request", "status")

    def __init__(
        self,
        endpoint: Endpoint[T],
        request: httpx.Request,
        before_attempt: BeforeAttempt | None,
        echoes: Mapping[str, object] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.before_attempt = before_attempt
        self.echoes = echoes  # what the answer must say back: the package id asked for
        self.attempts = 0  # HTTP attempts made so far
        self.status: int | None = None  # of the last answer

    def __repr__(self) -> str:
        return f"<{self.endpoint.method} {self.endpoint.name} call>"
