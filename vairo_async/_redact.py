"""Keeping the API key out of logs, exception messages and tracebacks.

The key travels in the query string (`?api_key=`), so anything that prints a request URL
would print it: httpx logs every request URL at INFO, and transport errors may quote URLs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["REDACTED", "install_log_redaction", "redact", "scrub_exception"]

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
    """Rewrites a record whose message carries an `api_key=` query value or a known key."""

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


def install_log_redaction(*names: str, secrets: Iterable[str] = ()) -> None:
    """Attach the redacting filter to loggers that print request URLs (idempotent).

    By default the `httpx` logger, which logs "HTTP Request: POST <full url>" at INFO;
    httpcore and aiohttp log no URLs.

    Args:
        names: The loggers to filter; `httpx` when none is given.
        secrets: Keys to replace wherever they appear in a message, not only after
            `api_key=`. They are kept for the life of the process, for every filtered logger;
            one shorter than 8 characters is only redacted after `api_key=`.
    """
    # A key too short to be a real one would mangle ordinary words ("key" in "api_key");
    # the api_key= rule still covers it in URLs.
    long_enough = (secret for secret in secrets if len(secret) >= _MIN_SECRET)
    _FILTER.secrets = _FILTER.secrets.union(long_enough)
    for name in names or ("httpx",):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


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
