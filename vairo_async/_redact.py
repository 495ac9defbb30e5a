"""Keeping the API key out of logs, exception messages and tracebacks.

The key travels in the query string (`?api_key=`), so anything that prints a request URL
would print it: httpx logs every request URL at INFO, and transport errors may quote URLs.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "held_secrets",
    "hold_secret",
    "install_log_redaction",
    "key_forms",
    "redact",
    "redact_value",
    "scrub_exception",
]

REDACTED = "[REDACTED]"
# The value ends at the next parameter or at whitespace, nowhere else: httpx leaves quotes,
# brackets and the like unencoded in a query it was given as text, so a key may hold them.
# A quote or bracket around the URL may go too; a message loses a character, not the key.
_KEY_PARAM = re.compile(r"(api_key=)[^&\s]*")


def _json_forms(text: str) -> set[str]:
    # As JSON writes it: Python's json.dumps, and PHP's json_encode, which also writes "/"
    # as "\/" and non-ASCII as \uXXXX (either case of hex digit is valid JSON).
    forms = set()
    for ascii_only in (True, False):
        body = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
        forms |= {body, body.replace("/", "\\/")}
        upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), body)
        forms |= {upper, upper.replace("/", "\\/")}
    return forms


def _percent_forms(text: str) -> set[str]:
    # As a query or form encodes it (httpx's own encoding too), in either case of hex digit.
    import httpx

    forms = {
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote_plus(text, safe=""),
        urllib.parse.quote(text),
        httpx.URL("http://h/", params={"k": text}).query.decode("ascii")[2:],
    }
    return forms | {re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in forms}


@functools.lru_cache(maxsize=64)
def key_forms(secret: str) -> tuple[str, ...]:
    """Every form `secret` may take in a body or a message, longest first.

    Raw; JSON-escaped (as `json.dumps` and PHP's `json_encode` write it), once or twice;
    percent-encoded; and each of those as `repr` quotes it inside a message.
    """
    if not secret:
        return ()
    forms = {secret} | _json_forms(secret) | _percent_forms(secret)
    for form in list(forms):  # JSON text inside a JSON string (a log's `context`, say)
        forms |= _json_forms(form)
    for form in list(forms):
        # Inside a repr quoted with ' (which escapes ' as \') and with " (which does not).
        in_single = repr(form + '"')[1:-2]
        forms |= {in_single, in_single.replace("\\'", "'")}
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


def redact(text: str, secret: str) -> str:
    """`text` with the `api_key` query value and every form of `secret` removed.

    The forms are those of `key_forms`: raw, JSON-escaped, percent-encoded, `repr`-quoted.
    """
    if "api_key=" in text:
        text = _KEY_PARAM.sub(r"\1" + REDACTED, text)
    for form in key_forms(secret):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_value(value: Any, secret: str) -> Any:
    """`value` with `redact` applied to every string in it, through dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {redact_value(k, secret): redact_value(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item, secret) for item in value)
    return value


class _RedactingFilter(logging.Filter):
    """Rewrites a record whose message carries an `api_key=` query value or a held key."""

    def __init__(self) -> None:
        super().__init__()
        # Replaced, never changed in place: a thread logging through httpx may be iterating.
        self.secrets: frozenset[str] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        if "api_key=" in redacted:
            redacted = _KEY_PARAM.sub(r"\1" + REDACTED, redacted)
        for secret in self.secrets:
            if secret in redacted:
                redacted = redacted.replace(secret, REDACTED)
        if redacted is not message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = _RedactingFilter()
_MIN_SECRET = 8
# How many holders each secret has: two clients with one key keep it until both let go.
_holders: Counter[str] = Counter()
_holders_lock = threading.Lock()


def install_log_redaction(*names: str) -> None:
    """Attach the redacting filter to loggers that print request URLs (idempotent).

    By default the `httpx` logger, which logs "HTTP Request: POST <full url>" at INFO;
    httpcore and aiohttp log no URLs. Besides `api_key=` values, the filter replaces
    every secret currently held (`hold_secret`) wherever it appears in a message.

    Args:
        names: The loggers to filter; `httpx` when none is given.
    """
    for name in names or ("httpx",):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def hold_secret(secret: str) -> Callable[[], None]:
    """Redact `secret` wherever it appears in a filtered log record, until released.

    A client holds its key while it is open, so the process-wide set holds the keys of
    open clients only. A secret shorter than 8 characters is only redacted after
    `api_key=`: one that short would mangle ordinary words ("key" in "api_key").

    Returns:
        A function that releases this hold; calling it again does nothing.
    """
    if len(secret) < _MIN_SECRET:
        return _nothing
    with _holders_lock:
        _holders[secret] += 1
        _FILTER.secrets = frozenset(_holders)
    released = False

    def release() -> None:
        nonlocal released
        with _holders_lock:
            if released:
                return
            released = True
            _holders[secret] -= 1
            if _holders[secret] <= 0:
                del _holders[secret]
            _FILTER.secrets = frozenset(_holders)

    return release


def _nothing() -> None:
    return None


def held_secrets() -> frozenset[str]:
    """The secrets the log filter currently replaces wherever they appear."""
    return _FILTER.secrets


def scrub_exception(exc: BaseException, secret: str) -> None:
    """Remove the key from `exc` and from every exception chained to it or grouped in it.

    Their messages are redacted, and the local variables of every frame of their tracebacks
    that has finished running are cleared: error reporters print frame locals (Sentry does
    by default), and an httpx request, a URL or a body held there prints the key. Frames
    still running (the caller's) are left alone.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(isinstance(arg, str) for arg in current.args):
            current.args = tuple(
                redact(arg, secret) if isinstance(arg, str) else arg for arg in current.args
            )
        traceback.clear_frames(current.__traceback__)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
