"""Settings as frozen values that check themselves: the client's, a campaign's, a wait's.

Each class checks every field when it is built and raises one error listing every bad
value (`Problems`), so a caller sees all of its mistakes at once, before anything is sent:
`ConfigurationError` for the client, `InvalidRequestError` for a campaign or a wait. A
settings object that exists is valid.
"""

from __future__ import annotations

import ipaddress
import math
import os

import attrs
import httpx

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
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_SENDER,
)
from ._errors import ConfigurationError, InvalidRequestError
from ._rate import RateLimiter
from ._redact import key_forms, redact
from ._validate import Problems, check_sender, describe, is_number

__all__ = ["BulkSettings", "ClientSettings", "WaitSettings"]

_TIMEOUT_PARTS = ("connect", "read", "write", "pool")


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
    if isinstance(base_url, str) and any(form in base_url for form in key_forms(secret)):
        raise ConfigurationError(
            f"base_url must not contain the API key, got {quoted}: pass the key as api_key"
        )
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
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
    if "?" in base_url or "#" in base_url:
        # Even empty, the endpoint's path would follow them: into the query or the fragment.
        raise ConfigurationError(f"base_url must not contain '?' or '#', got {quoted}")
    text = str(url)
    return text if text.endswith("/") else text + "/"


def _key_or_environment(api_key: str | None) -> str:
    return api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")


def _sender_or_environment(sender: str | None) -> str | None:
    return sender if sender is not None else os.environ.get(ENV_SENDER)


def _base_url_or_environment(base_url: str | None) -> str:
    return base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL


@attrs.frozen(kw_only=True)
class ClientSettings:
    """An `AsyncVairoClient`'s configuration, from its arguments and the environment.

    `api_key`, `sender` and `base_url` fall back to `VAIRO_API_KEY`, `VAIRO_SENDER` and
    `VAIRO_BASE_URL` when not given (None; an empty `base_url` too). Every field is checked;
    the error names every bad one and never quotes the key (only its type or length).

    Attributes:
        api_key: The API key: a non-blank string.
        sender: The default sender, or None to require one per call.
        base_url: The API root, normalised to end with "/"; https, or http to loopback only;
            with no query, fragment (not even a bare `?` or `#`), credentials or API key.
        timeout: Seconds (> 0) per request, an `httpx.Timeout`, or None for the default.
        max_retries: Retries after the first attempt: an int >= 0.
        retry_backoff: First backoff in seconds (>= 0).
        retry_backoff_max: Cap of one backoff in seconds (>= `retry_backoff`).
        retry_after_max: Longest `Retry-After` honoured, in seconds (>= 0).
        retry_unknown_outcomes: Resend after failures that leave a send's outcome unknown.
        http_client: A caller-owned `httpx.AsyncClient`, or None.
        transport: An httpx transport for the client's own `httpx.AsyncClient`, or None;
            not together with `http_client`.
        max_connections: The default transport's pool size: an int >= 1.

    Raises:
        ConfigurationError: Listing every bad value.
    """

    api_key: str = attrs.field(default=None, converter=_key_or_environment, repr=False)
    sender: str | None = attrs.field(default=None, converter=_sender_or_environment)
    base_url: str = attrs.field(default=None, converter=_base_url_or_environment)
    timeout: float | httpx.Timeout | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX
    retry_unknown_outcomes: bool = False
    http_client: httpx.AsyncClient | None = None
    transport: httpx.AsyncBaseTransport | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __attrs_post_init__(self) -> None:
        problems = Problems(ConfigurationError)
        key: object = self.api_key
        if not isinstance(key, str):
            problems.add(f"api_key must be a string, not {type(key).__name__}")
            key = ""
        elif not key:
            problems.add(f"no API key: pass api_key= or set {ENV_API_KEY}")
        elif not key.strip():
            problems.add(f"api_key is blank ({len(key)} whitespace characters)")
        if self.sender is not None:
            try:
                check_sender(self.sender)
            except ValueError as exc:
                problems.add(f"sender={describe(self.sender)}: {exc}")
        base_url = problems.build(_checked_base_url, self.base_url, key)
        if base_url is not None:
            # Frozen, but this is its construction: the normalised form is the one kept.
            object.__setattr__(self, "base_url", base_url)
        problems.extend(self._timeout_problems())
        problems.integer("max_retries", self.max_retries, minimum=0)
        if problems.number("retry_backoff", self.retry_backoff):
            problems.number(
                "retry_backoff_max",
                self.retry_backoff_max,
                minimum=self.retry_backoff,
                what=f"retry_backoff ({self.retry_backoff:g})",
            )
        else:
            problems.number("retry_backoff_max", self.retry_backoff_max)
        problems.number("retry_after_max", self.retry_after_max)
        if type(self.retry_unknown_outcomes) is not bool:
            problems.add(
                f"retry_unknown_outcomes={describe(self.retry_unknown_outcomes)}: "
                "must be True or False"
            )
        if self.http_client is not None and not isinstance(self.http_client, httpx.AsyncClient):
            problems.add(
                f"http_client must be an httpx.AsyncClient, not {type(self.http_client).__name__}"
            )
        if self.transport is not None and not isinstance(self.transport, httpx.AsyncBaseTransport):
            problems.add(
                "transport must be an httpx.AsyncBaseTransport, "
                f"not {type(self.transport).__name__}"
            )
        if self.http_client is not None and self.transport is not None:
            problems.add("pass http_client or transport, not both")
        problems.integer("max_connections", self.max_connections, minimum=1)
        problems.check()

    def _timeout_problems(self) -> list[str]:
        timeout: object = self.timeout
        if timeout is None or (is_number(timeout) and timeout > 0):
            return []
        if not isinstance(timeout, httpx.Timeout):
            return [f"timeout={describe(timeout)}: must be a number > 0, an httpx.Timeout, or None"]
        parts = {part: getattr(timeout, part) for part in _TIMEOUT_PARTS}
        return [
            f"timeout={timeout!r}: its {part} must be a number > 0, or None"
            for part, value in parts.items()
            if value is not None and not (is_number(value) and value > 0)
        ]

    @property
    def http_timeout(self) -> httpx.Timeout:
        """The timeout for the client's own `httpx.AsyncClient`."""
        if self.timeout is None:
            return httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
        return httpx.Timeout(self.timeout)

    @property
    def pool_size(self) -> int | None:
        """Connections requests share, when the SDK builds the pool (its default transport)."""
        if self.http_client is None and self.transport is None:
            return self.max_connections
        return None

    def pool_problems(self, concurrency: object) -> list[str]:
        """A problem line when `concurrency` exceeds the default transport's pool."""
        limit = self.pool_size
        if limit is None or type(concurrency) is not int or concurrency <= limit:
            return []
        return [
            f"concurrency={concurrency} exceeds the client's max_connections={limit}: "
            "requests would wait inside the connection pool"
        ]


@attrs.frozen(kw_only=True)
class BulkSettings:
    """A campaign's checked limits (`iter_bulk`, `send_bulk`, the `bulk` command).

    Attributes:
        batch_size: Rows per batch (one SmsGonder call each), at most: an int >= 1.
        concurrency: Batches in flight, at most: an int >= 1.
        rate: SmsGonder requests per second (> 0), retries included, a `RateLimiter`
            (any object with an async `acquire()`, e.g. one shared by many workers), or
            None for no limit.

    Raises:
        InvalidRequestError: Listing every bad value.
    """

    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | RateLimiter | None = None

    def __attrs_post_init__(self) -> None:
        problems = Problems(InvalidRequestError)
        problems.integer("batch_size", self.batch_size, minimum=1)
        problems.integer("concurrency", self.concurrency, minimum=1)
        is_limiter = isinstance(self.rate, RateLimiter) and not isinstance(self.rate, int | float)
        if (
            not is_limiter
            and problems.number("rate", self.rate, strict=True, optional=True)
            and isinstance(self.rate, int | float)
            and not math.isfinite(1 / self.rate)
        ):
            # One request every 1/rate seconds: that interval must be a number too.
            problems.add(f"rate={self.rate!r}: too small, one request would never be due")
        problems.check()


@attrs.frozen(kw_only=True)
class WaitSettings:
    """A wait's checked arguments, shared by every package of a `wait_all`.

    Attributes:
        timeout: Seconds (>= 0) the whole wait may last, or None for no limit.
        poll_interval: Seconds (> 0) before the first poll, and the first interval.
        max_poll_interval: The longest interval between polls (>= `poll_interval`).
        expiry_grace: Seconds (>= 0) past a package's expiry before giving up, or None for
            never.

    Raises:
        InvalidRequestError: Listing every bad value.
    """

    timeout: float | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    expiry_grace: float | None = DEFAULT_EXPIRY_GRACE

    def __attrs_post_init__(self) -> None:
        problems = Problems(InvalidRequestError)
        problems.number("timeout", self.timeout, optional=True)
        if problems.number("poll_interval", self.poll_interval, strict=True):
            problems.number(
                "max_poll_interval",
                self.max_poll_interval,
                minimum=self.poll_interval,
                what=f"poll_interval ({self.poll_interval:g})",
            )
        problems.number("expiry_grace", self.expiry_grace, optional=True)
        problems.check()
