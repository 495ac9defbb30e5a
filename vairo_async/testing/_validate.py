"""Checks a SmsGonder body the way the service does, with its Turkish error messages."""

from __future__ import annotations

import json
import re
from collections.abc import Collection

import attrs

from . import _texts as t

__all__ = ["Invalid", "SendRequest", "parse_send"]

_DEST = re.compile(r"5[0-9]{9}")

MAX_SENDER_LENGTH = 16
"""Longest `baslik` accepted; real sender names are at most 11 letters or 16 digits."""


@attrs.frozen
class SendRequest:
    """A SmsGonder body that passed validation."""

    sender: str
    tr_char: bool | None
    messages: tuple[tuple[str, str], ...]
    """`(dest, text)` pairs in request order."""


@attrs.frozen
class Invalid:
    """Why a SmsGonder body was refused (answered with HTTP 400)."""

    message: str


def parse_send(body: bytes, *, allowed_senders: Collection[str] | None) -> SendRequest | Invalid:
    """Validate a raw SmsGonder body, decoded as UTF-8 JSON."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return Invalid(t.BAD_JSON)
    if not isinstance(data, dict):
        return Invalid(t.BAD_OBJECT)

    sender = data.get("baslik")
    if not isinstance(sender, str) or not sender.strip():
        return Invalid(t.BAD_SENDER)
    if len(sender) > MAX_SENDER_LENGTH:
        return Invalid(t.SENDER_TOO_LONG)
    if allowed_senders is not None and sender not in allowed_senders:
        return Invalid(t.SENDER_NOT_ALLOWED.format(sender=sender))

    tr_char = data.get("tr_char")
    if tr_char is not None and not isinstance(tr_char, bool):
        return Invalid(t.BAD_TR_CHAR)

    raw_messages = data.get("mesajlar")
    if not isinstance(raw_messages, list) or not raw_messages:
        return Invalid(t.BAD_MESSAGES)
    messages: list[tuple[str, str]] = []
    for number, item in enumerate(raw_messages, start=1):
        if not isinstance(item, dict):
            return Invalid(t.BAD_MESSAGE.format(number=number))
        text = item.get("msg")
        if not isinstance(text, str) or not text:
            return Invalid(t.BAD_TEXT.format(number=number))
        dest = item.get("dest")
        if not isinstance(dest, str) or not _DEST.fullmatch(dest):
            return Invalid(t.BAD_DEST.format(number=number))
        messages.append((dest, text))
    return SendRequest(sender, tr_char, tuple(messages))
