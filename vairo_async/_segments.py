"""What a text costs as SMS: its encoding and how many segments the network bills.

Alphabets follow 3GPP TS 23.038 (GSM-7 default table, its extension table, the Turkish national
language single shift table); capacities follow TS 23.040 (user data header sizes).
"""

from __future__ import annotations

import enum
import re

import attrs

__all__ = [
    "Encoding",
    "Segments",
    "credits_of",
    "needs_turkish_shift",
    "segments",
    "transliterate_turkish",
]


class Encoding(enum.Enum):
    """The alphabet a message travels in.

    .. versionadded:: 0.1.0
    """

    GSM7 = "gsm7"
    """GSM-7 default alphabet plus its extension table."""
    GSM7_TURKISH = "gsm7_turkish"
    """GSM-7 default alphabet plus the Turkish single shift table (wire ``tr_char: true``)."""
    UCS2 = "ucs2"
    """UCS-2 (UTF-16 code units), for texts that fit neither GSM-7 table."""


@attrs.frozen
class Segments:
    """The encoding of a text and the number of SMS segments it is sent, and billed, as.

    Attributes:
        encoding: The alphabet the text is sent in.
        units: Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes. An extension or
            Turkish shift character takes two septets; a character outside the BMP two units.
        count: Segments the text is split into; at least 1 (an empty text is one empty SMS).
        per_segment: Units one segment holds for this message: 160, 155 or 70 when it fits in
            one SMS, 153, 149 or 67 once it is concatenated.

    .. versionadded:: 0.1.0
    """

    encoding: Encoding
    units: int
    count: int
    per_segment: int


# The GSM-7 default alphabet in code order (TS 23.038 6.2.1); 0x1B is the escape to the shift
# table, not a character, so it is left out.
_DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_TURKISH_LETTERS = "ĞİŞçğış"
# Every character of the default extension table (6.2.1.1) is also in the Turkish single shift
# table (A.2.1), which adds the seven letters; a shift character costs escape + code, 2 septets.
_EXTENSION = frozenset("\f^{}\\[~]|€")
_TURKISH_SHIFT = _EXTENSION | frozenset(_TURKISH_LETTERS)

_NOT_DEFAULT = re.compile("[^" + "".join(map(re.escape, _DEFAULT_ALPHABET)) + "]")
_TURKISH_LETTER = re.compile("[" + _TURKISH_LETTERS + "]")
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")

# ASCII bytes outside the default alphabet: control characters other than LF, FF and CR,
# backtick and DEL (they force UCS-2), then the extension characters (two septets each).
_ASCII_NOT_GSM = bytes([*range(0x0A), 0x0B, *range(0x0E, 0x20), 0x60, 0x7F])
_ASCII_SPECIAL = _ASCII_NOT_GSM + b"\f^{}\\[~]|"

# (one segment, each segment of a concatenated message). The concatenation header (6 octets)
# leaves 153 septets or 67 code units; the national language shift header (3 octets more)
# leaves 155 alone and 149 concatenated once padded to a septet boundary.
_CAPACITY = {
    Encoding.GSM7: (160, 153),
    Encoding.GSM7_TURKISH: (155, 149),
    Encoding.UCS2: (70, 67),
}

# Results for texts of up to ten segments are shared: building a frozen attrs instance costs
# more than the rest of a short text's arithmetic, and the values repeat across a campaign.
_SHARED: dict[tuple[Encoding, int, int], Segments] = {}
_SHARE_UP_TO = 1600


# Turkish letters outside GSM-7 and their ASCII look-alikes. The circumflex vowels are outside
# GSM-7 too and would force UCS-2 on their own. Ç, Ö, ö, Ü, ü are in the default alphabet.
_TRANSLITERATION = (
    ("ş", "s"),
    ("Ş", "S"),
    ("ğ", "g"),
    ("Ğ", "G"),
    ("ı", "i"),
    ("İ", "I"),
    ("ç", "c"),
    ("â", "a"),
    ("Â", "A"),
    ("î", "i"),
    ("Î", "I"),
    ("û", "u"),
    ("Û", "U"),
)
_TRANSLITERATED = re.compile("[" + "".join(char for char, _ in _TRANSLITERATION) + "]")


def segments(text: str, *, tr_char: bool | None = None) -> Segments:
    """Work out the encoding and segment count of one SMS text.

    A character in neither GSM-7 table forces UCS-2 for the whole text. Two-unit characters
    (escape pairs, surrogate pairs) are never split across segments, which may cost a segment.

    Args:
        text: The message text.
        tr_char: ``None`` decides as ``send`` does: the Turkish shift table exactly when the
            text contains one of ``ş Ş ğ Ğ ı İ ç``. ``False`` uses plain GSM-7 rules, so such a
            letter forces UCS-2. ``True`` announces the Turkish shift table even if no letter
            needs it (155/149 septets); a text that fits neither GSM-7 table is still UCS-2.

    Returns:
        The encoding, units used, segment count and units per segment.

    .. versionadded:: 0.1.0
    """
    if text.isascii():
        raw = text.encode("ascii")
        length = len(raw)
        plain = len(raw.translate(None, _ASCII_SPECIAL))
        # Only a text with special bytes is searched again for the ones that force UCS-2.
        if plain != length and len(raw.translate(None, _ASCII_NOT_GSM)) != length:
            return _fit(Encoding.UCS2, text, length, 0)
        encoding = Encoding.GSM7_TURKISH if tr_char else Encoding.GSM7
        return _fit(encoding, text, 2 * length - plain, length - plain)

    specials = _NOT_DEFAULT.findall(text)
    if not specials:
        encoding = Encoding.GSM7_TURKISH if tr_char else Encoding.GSM7
        return _fit(encoding, text, len(text), 0)
    kinds = set(specials)
    doubles = len(specials)
    if kinds <= _EXTENSION:
        encoding = Encoding.GSM7_TURKISH if tr_char else Encoding.GSM7
        return _fit(encoding, text, len(text) + doubles, doubles)
    if tr_char is not False and kinds <= _TURKISH_SHIFT:
        return _fit(Encoding.GSM7_TURKISH, text, len(text) + doubles, doubles)
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    return _fit(Encoding.UCS2, text, units, units - len(text))


def credits_of(texts: list[str], tr_char: bool) -> int:
    """The credits of a package of `texts` sent with `tr_char`: one per segment of each.

    Campaigns price every row. When the package is plain ASCII with no two-septet
    character (the common case: one septet per character), which C-level passes over the
    joined texts tell, a text costs its length, and a package whose longest text fits in
    one SMS costs one credit a text; only other packages take a `segments` call per text.
    """
    joined = "".join(texts)
    if joined.isascii():
        raw = joined.encode("ascii")
        if len(raw.translate(None, _ASCII_SPECIAL)) == len(raw):
            single, multi = (155, 149) if tr_char else (160, 153)
            if max(map(len, texts), default=0) <= single:
                return len(texts)
            lengths = map(len, texts)
            return sum(1 if length <= single else -(-length // multi) for length in lengths)
    return sum(segments(text, tr_char=tr_char).count for text in texts)


def _fit(encoding: Encoding, text: str, units: int, doubles: int) -> Segments:
    """Split ``units`` into segments; ``doubles`` is how many characters take two units."""
    single, multi = _CAPACITY[encoding]
    if units <= single:
        count, per_segment = 1, single
    else:
        count, per_segment = -(-units // multi), multi
        # Keeping a pair whole wastes at most one unit per segment, so walking the pairs can
        # only change the answer when the bounds with and without that waste disagree.
        if doubles and count != -(-units // (multi - 1)):
            pairs = _NON_BMP if encoding is Encoding.UCS2 else _NOT_DEFAULT
            count = _walk(text, pairs, multi)
    key = (encoding, units, count)
    result = _SHARED.get(key)
    if result is None:
        result = Segments(encoding, units, count, per_segment)
        if units <= _SHARE_UP_TO:
            _SHARED[key] = result
    return result


def _walk(text: str, pairs: re.Pattern[str], multi: int) -> int:
    """Count segments of ``multi`` units, moving a pair that would straddle a boundary."""
    count, used, start = 1, 0, 0
    for match in pairs.finditer(text):
        at = match.start()
        used += at - start
        if used > multi:
            full = (used - 1) // multi
            count += full
            used -= full * multi
        if used + 2 > multi:
            count += 1
            used = 2
        else:
            used += 2
        start = at + 1
    used += len(text) - start
    if used > multi:
        count += (used - 1) // multi
    return count


def needs_turkish_shift(text: str) -> bool:
    """Tell whether a text needs the Turkish shift table, i.e. the wire ``tr_char`` flag.

    Args:
        text: The message text.

    Returns:
        ``True`` exactly when the text contains one of ``ş Ş ğ Ğ ı İ ç``.

    .. versionadded:: 0.1.0
    """
    return not text.isascii() and _TURKISH_LETTER.search(text) is not None


def transliterate_turkish(text: str) -> str:
    """Replace Turkish letters outside GSM-7 with ASCII look-alikes, for cheaper segments.

    A GSM-7 text holds 160 characters per SMS instead of 155 with the Turkish shift table (or
    70 as UCS-2), and each shifted letter costs two septets; the price is misspelt words, and
    sometimes another word ("ısı", heat, becomes "isi", soot). Ç, Ö, ö, Ü and ü are in GSM-7 and
    stay; ş ğ ı ç become s g i c, Ş Ğ İ become S G I, and â î û (Â Î Û) lose their circumflex.

    Args:
        text: The message text.

    Returns:
        The text with those letters replaced; other characters are left as they are.

    .. versionadded:: 0.1.0
    """
    if text.isascii() or _TRANSLITERATED.search(text) is None:
        return text
    # A chain of str.replace beats str.translate, which has no fast path for non-ASCII text.
    for letter, look_alike in _TRANSLITERATION:
        text = text.replace(letter, look_alike)
    return text
