"""What a transport failure is called: the SDK's own words for what happened on the wire.

The libraries underneath word their failures for their own readers: aiohttp writes
`<ContentLengthError: 400, ...>`, where the 400 is its parser's internal code, yet reads as an
HTTP status in a log line. A `TransportError`'s message says instead what the caller needs to
know ("connection closed before the whole answer arrived (after 10 of 50 bytes)"), prefixed
by the httpx exception's class name. The aiohttp transport words its failures with these
phrases (`_transport`); for httpx's own stack `describe` words httpcore's messages.
"""

from __future__ import annotations

import re

import httpx

__all__ = [
    "BAD_URL",
    "CLOSED_BEFORE_ANSWER",
    "CUT_ANSWER",
    "LOST_READING",
    "LOST_WRITING",
    "NOT_HTTP",
    "PROXY_REFUSED",
    "WORDED",
    "connect_failed",
    "cut_answer",
    "describe",
    "timed_out",
    "worded",
]

CUT_ANSWER = "connection closed before the whole answer arrived"
CLOSED_BEFORE_ANSWER = "connection closed before any answer arrived"
NOT_HTTP = "the answer is not valid HTTP"
LOST_WRITING = "connection lost while the request was being sent"
LOST_READING = "connection lost while the answer was being read"
BAD_URL = "the URL cannot be requested (unsupported scheme or malformed URL)"
PROXY_REFUSED = "the proxy refused the connection"

WORDED = "_vairo_worded"
"""The attribute that marks an httpx exception the SDK's transport has worded already."""

# "received 10 of 50 bytes" (aiohttp) or "received 10 bytes, expected 50" (httpcore).
_COUNTS = re.compile(r"received (\d+)(?: of (\d+) bytes| bytes, expected (\d+))")
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")

_TIMEOUTS: dict[type[httpx.TimeoutException], tuple[str, str]] = {
    httpx.ConnectTimeout: ("connect", "could not connect within the connect timeout"),
    httpx.PoolTimeout: ("pool", "no free connection in the pool within the pool timeout"),
    httpx.ReadTimeout: ("read", "no answer within the read timeout"),
    httpx.WriteTimeout: ("write", "the request was not sent within the write timeout"),
}


def cut_answer(detail: str) -> str:
    """The words for an answer whose body ended early; `detail` may hold the byte counts."""
    found = _COUNTS.search(detail)
    if found is None:
        if "chunk" in detail or "transfer length" in detail:
            return f"{CUT_ANSWER} (in the middle of its chunked body)"
        return CUT_ANSWER
    expected = found[2] or found[3]
    return f"{CUT_ANSWER} (after {found[1]} of {expected} bytes)"


def timed_out(kind: type[httpx.TimeoutException], request: httpx.Request | None) -> str:
    """The words for a timeout of `kind`, with its limit in seconds when the request has one."""
    name, words = _TIMEOUTS.get(kind, ("", "timed out"))
    limits = {} if request is None else request.extensions.get("timeout", {})
    limit = limits.get(name)
    return words if limit is None else f"{words} ({limit:g} s)"


def connect_failed(request: httpx.Request | None, reason: str) -> str:
    """The words for a connection that could not be made, and why ("connection refused")."""
    where = ""
    if request is not None:
        url = request.url
        where = f" to {url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    reason = _ERRNO.sub("", reason).strip().rstrip(".")
    if " " in reason and reason[1:2].islower():  # a sentence, not "TLS ..." or a class name
        reason = reason[:1].lower() + reason[1:]
    return f"could not connect{where}" + (f" ({reason})" if reason else "")


def _request_of(exc: httpx.RequestError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:  # raised without a request
        return None


def _httpcore_words(exc: httpx.RequestError) -> str:
    """httpx's own stack: words from httpcore's and h11's messages, by the exception's class."""
    detail = str(exc)
    request = _request_of(exc)
    if isinstance(exc, httpx.TimeoutException):
        return timed_out(type(exc), request)
    if isinstance(exc, httpx.ConnectError):
        if detail == "All connection attempts failed":
            detail = "connection refused"
        return connect_failed(request, detail)
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending complete message body" in detail:
            return cut_answer(detail)
        if "without sending a response" in detail:
            return CLOSED_BEFORE_ANSWER
        return NOT_HTTP
    if isinstance(exc, httpx.WriteError):
        return LOST_WRITING
    if isinstance(exc, httpx.ReadError):
        return LOST_READING
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BAD_URL
    if isinstance(exc, httpx.ProxyError):
        return PROXY_REFUSED
    return f"the HTTP exchange failed ({detail or 'no detail'})"


def describe(exc: httpx.RequestError) -> str:
    """A `TransportError` message: the httpx class, then what happened in the SDK's words.

    The aiohttp transport raises exceptions already worded (`worded`); any other stack's are
    worded here from their class and message.
    """
    words = exc.args[0] if worded(exc) else _httpcore_words(exc)
    return f"{type(exc).__name__}: {words}"


def worded(exc: httpx.RequestError) -> bool:
    """Whether `exc` came from the SDK's own transport, which words its failures itself."""
    return getattr(exc, WORDED, False) is True
