"""Keeping the API key out of logs, exception messages and tracebacks (DESIGN section 7).

The key travels in the query string (`?api_key=`), so anything that prints a request URL
would print it: httpx logs every request URL at INFO, and transport errors may quote URLs.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "install_log_redaction", "redact", "scrub_exception"]

REDACTED = "[REDACTED]"
_KEY_PARAM = re.compile(r"(api_key=)[^&\s'\"#>)]*")


def redact(text: str, secret: str) -> str:
    """`text` with the `api_key` query value and every copy of `secret` removed."""
    if "api_key=" in text:
        text = _KEY_PARAM.sub(r"\1" + REDACTED, text)
    if secret and secret in text:
        text = text.replace(secret, REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites a record whose message carries an `api_key=` query value."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg = _KEY_PARAM.sub(r"\1" + REDACTED, message)
            record.args = None
        return True


_FILTER = _RedactingFilter()


def install_log_redaction(*names: str) -> None:
    """Attach the redacting filter to loggers that print request URLs (idempotent).

    By default the `httpx` logger, which logs "HTTP Request: POST <full url>" at INFO;
    httpcore and aiohttp log no URLs.
    """
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
