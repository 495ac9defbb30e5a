"""Keeping the API key out of logs, exception messages and tracebacks.

The key travels in the query string (`?api_key=`), so anything that prints a request URL
would print it: httpx logs every request URL at INFO, and transport errors may quote URLs.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable

__all__ = [
    "REDACTED",
    "held_secrets",
    "hold_secret",
    "install_log_redaction",
    "redact",
    "scrub_exception",
]

REDACTED = "[REDACTED]"
# The value ends at the next parameter or at whitespace, nowhere else: httpx leaves quotes,
# brackets and the like unencoded in a query it was given as text, so a key may hold them.
# A quote or bracket around the URL may go too; a message loses a character, not the key.
_KEY_PARAM = re.compile(r"(api_key=)[^&\s]*")


def redact(text: str, secret: str) -> str:
    """`text` with the `api_key` query value and every copy of `secret` removed."""
    if "api_key=" in text:
        text = _KEY_PARAM.sub(r"\1" + REDACTED, text)
    if secret and secret in text:
        text = text.replace(secret, REDACTED)
    return text


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
    """Remove the key from the messages of `exc` and of every exception chained to it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(
            isinstance(arg, str) and ("api_key=" in arg or secret in arg) for arg in current.args
        ):
            current.args = tuple(
                redact(arg, secret) if isinstance(arg, str) else arg for arg in current.args
            )
        current = current.__cause__ or current.__context__
