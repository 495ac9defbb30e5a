"""Turkish mobile numbers: every common spelling to the 10-digit wire form `5XXXXXXXXX`."""

from __future__ import annotations

import re
from typing import TypeGuard

__all__ = ["in_wire_form", "normalize_number"]

_SEPARATORS = re.compile(r"[\s\-().\/]+")
# Country code as +90, 0090 or 90, or the trunk prefix 0, then a 5 and nine digits.
_MOBILE = re.compile(r"(?:\+90|0090|90|0)?(5[0-9]{9})")


def in_wire_form(value: object) -> TypeGuard[str]:
    """True when `value` is already the wire form: a string of ten ASCII digits, first a 5."""
    return (
        type(value) is str
        and len(value) == 10
        and value[0] == "5"
        and value.isascii()
        and value.isdigit()
    )


def normalize_number(value: object) -> str:
    """Return the wire form of a Turkish mobile number.

    Accepts `+90 539 999 99 99`, `0539-999-9999`, `(0539) 999 9999`, `905399999999`,
    `5399999999` and the like. Only a string is a number: an int (which cannot hold the
    leading 0 or +) is refused like any other type.

    Raises:
        ValueError: With the reason, when the value is not a Turkish mobile number.
    """
    if in_wire_form(value):
        return value
    if type(value) is not str:
        raise ValueError(f"a phone number must be a string, not {type(value).__name__}")
    cleaned = _SEPARATORS.sub("", value)
    if not cleaned:
        raise ValueError("empty phone number")
    match = _MOBILE.fullmatch(cleaned)
    if match is None:
        raise ValueError("not a Turkish mobile number (expected 5XXXXXXXXX, 05XX..., +90 5XX...)")
    return match.group(1)
