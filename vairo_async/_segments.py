"""Which texts need the Turkish character set on the wire."""

from __future__ import annotations

import re

__all__ = ["needs_turkish_shift"]

# Turkish letters that GSM-7's default alphabet lacks; Ç, Ö, ö, Ü and ü it has.
_TURKISH_ONLY = re.compile("[şŞğĞıİç]")


def needs_turkish_shift(text: str) -> bool:
    """True exactly when `text` holds one of ş Ş ğ Ğ ı İ ç (the wire's `tr_char`)."""
    return not text.isascii() and _TURKISH_ONLY.search(text) is not None
