"""Input rules, shared by single sends and bulk campaigns."""

from __future__ import annotations

import re

from ._constants import MAX_ALPHANUMERIC_SENDER, MAX_NUMERIC_SENDER
from ._models import Message
from ._phone import in_wire_form, normalize_number

__all__ = ["check_message", "check_sender", "describe"]

_MAX_SHOWN = 40
# Half of a UTF-16 surrogate pair on its own: not a character, and not encodable as UTF-8.
_UNSENDABLE = re.compile("[\ud800-\udfff]")


def describe(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    shown = repr(value)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + "...'"


def check_sender(sender: object) -> str:
    """Return the sender (`baslik`) if it is usable.

    Raises:
        ValueError: With the reason: missing, empty, or longer than GSM allows.
    """
    if sender is None:
        raise ValueError("no sender: pass sender= or set VAIRO_SENDER")
    if not isinstance(sender, str):
        raise ValueError(f"sender must be a string, not {type(sender).__name__}")
    if not sender.strip():
        raise ValueError("empty sender")
    limit = MAX_NUMERIC_SENDER if sender.isdigit() else MAX_ALPHANUMERIC_SENDER
    if len(sender) > limit:
        raise ValueError(f"sender longer than {limit} characters")
    return sender


def check_message(message: object) -> Message:
    """Return the message with its number in wire form.

    Raises:
        TypeError: `message` is not a `Message`.
        ValueError: With every reason the message is unusable, joined by "; ".
    """
    if not isinstance(message, Message):
        raise TypeError(f"expected a Message, not {type(message).__name__}: {describe(message)}")
    to, text = message.to, message.text
    # Most rows are already in wire form with plain text: checked without the general path.
    if (
        in_wire_form(to)
        and type(text) is str
        and text
        and not text.isspace()
        and (text.isascii() or _UNSENDABLE.search(text) is None)
    ):
        return message
    reasons = []
    try:
        to = normalize_number(to)
    except ValueError as exc:
        reasons.append(f"to={describe(message.to)}: {exc}")
    if not isinstance(text, str):
        reasons.append(f"text must be a string, not {type(text).__name__}")
    elif not text or text.isspace():
        reasons.append(f"text={describe(text)}: empty text")
    elif not text.isascii() and _UNSENDABLE.search(text):
        reasons.append(f"text={describe(text)}: holds a lone surrogate, which no SMS can carry")
    if reasons:
        raise ValueError("; ".join(reasons))
    return message if to == message.to else Message(to=to, text=text)
