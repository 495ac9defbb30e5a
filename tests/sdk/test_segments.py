"""Tests for vairo_async._segments: encodings, segment boundaries and two-unit characters.

Expected numbers are worked out by hand from TS 23.038 / 23.040; the hypothesis tests compare
against a slow character-by-character model written from the same rules.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vairo_async import _segments
from vairo_async._segments import (
    Encoding,
    Segments,
    credits_of,
    needs_turkish_shift,
    segments,
    transliterate_turkish,
)

GSM7 = Encoding.GSM7
TR = Encoding.GSM7_TURKISH
UCS2 = Encoding.UCS2
EMOJI = "\U0001f600"
CYRILLIC = "\u0416"  # outside both GSM-7 tables

# TS 23.038 6.2.1, by code; 0x1B (escape) is not a character.
DEFAULT_ALPHABET = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
EXTENSION = "\f^{}\\[~]|\u20ac"  # 6.2.1.1
TURKISH_LETTERS = "\u011e\u0130\u015e\u00e7\u011f\u0131\u015f"  # Ğ İ Ş ç ğ ı ş, from A.2.1


def test_tables_have_the_sizes_of_the_standard() -> None:
    assert len(DEFAULT_ALPHABET) == len(set(DEFAULT_ALPHABET)) == 127
    assert set(TURKISH_LETTERS) == set("ĞİŞçğış")


def test_all_is_sorted_and_exported() -> None:
    assert _segments.__all__ == sorted(_segments.__all__)
    assert all(hasattr(_segments, name) for name in _segments.__all__)


def test_encoding_values() -> None:
    assert [(e.name, e.value) for e in Encoding] == [
        ("GSM7", "gsm7"),
        ("GSM7_TURKISH", "gsm7_turkish"),
        ("UCS2", "ucs2"),
    ]


def test_segments_is_frozen() -> None:
    result = segments("Merhaba")
    assert result == Segments(GSM7, 7, 1, 160)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.count = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("length", "units", "count", "per_segment"),
    [
        (1, 1, 1, 160),
        (160, 160, 1, 160),
        (161, 161, 2, 153),
        (306, 306, 2, 153),
        (307, 307, 3, 153),
        (459, 459, 3, 153),
        (460, 460, 4, 153),
        (2000, 2000, 14, 153),
    ],
)
def test_gsm7_lengths(length: int, units: int, count: int, per_segment: int) -> None:
    assert segments("a" * length) == Segments(GSM7, units, count, per_segment)


@pytest.mark.parametrize(
    ("text", "units", "count", "per_segment"),
    [
        ("a" * 155, 155, 1, 155),
        ("a" * 156, 156, 2, 149),
        ("a" * 298, 298, 2, 149),
        ("a" * 299, 299, 3, 149),
        # ş takes two septets: 2 + 153 fits one segment, 2 + 154 does not.
        ("ş" + "a" * 153, 155, 1, 155),
        ("ş" + "a" * 154, 156, 2, 149),
        ("ş" + "a" * 296, 298, 2, 149),
        ("ş" + "a" * 297, 299, 3, 149),
    ],
)
def test_turkish_shift_lengths(text: str, units: int, count: int, per_segment: int) -> None:
    tr_char = None if "ş" in text else True
    assert segments(text, tr_char=tr_char) == Segments(TR, units, count, per_segment)


@pytest.mark.parametrize(
    ("text", "units", "count", "per_segment"),
    [
        (CYRILLIC, 1, 1, 70),
        (CYRILLIC * 70, 70, 1, 70),
        (CYRILLIC * 71, 71, 2, 67),
        (CYRILLIC * 134, 134, 2, 67),
        (CYRILLIC * 135, 135, 3, 67),
        (CYRILLIC + "a" * 69, 70, 1, 70),
        (CYRILLIC + "a" * 70, 71, 2, 67),
    ],
)
def test_ucs2_lengths(text: str, units: int, count: int, per_segment: int) -> None:
    assert segments(text) == Segments(UCS2, units, count, per_segment)


@pytest.mark.parametrize(
    ("text", "units", "count"),
    [
        ("a" * 158 + "€", 160, 1),
        ("a" * 159 + "€", 161, 2),
        # 152 + 2 would overflow 153: the pair opens segment 2 and segment 1 wastes a septet.
        ("a" * 152 + "€" + "a" * 152, 306, 3),
        ("a" * 151 + "€" + "a" * 153, 306, 2),
        ("a" * 153 + "€" + "a" * 151, 306, 2),
        ("a" * 152 + "\f" + "a" * 152, 306, 3),
        ("a" * 158 + "\f", 160, 1),
        ("a" * 152 + "[" + "a" * 152, 306, 3),
        ("a" * 152 + "^" + "a" * 151 + "€", 307, 3),
        # Pairs only: 80 fit one SMS; 76 per concatenated segment.
        ("€" * 80, 160, 1),
        ("€" * 81, 162, 2),
        ("€" * 152, 304, 2),
        ("€" * 153, 306, 3),
        ("{}[]~|\\^\f€", 20, 1),
    ],
)
def test_extension_pairs_are_never_split(text: str, units: int, count: int) -> None:
    expected = Segments(GSM7, units, count, 160 if count == 1 else 153)
    assert segments(text) == expected
    assert segments(text, tr_char=False) == expected


@pytest.mark.parametrize(
    ("text", "tr_char", "units", "count"),
    [
        ("a" * 148 + "ş" + "a" * 148, None, 298, 3),
        ("a" * 147 + "ş" + "a" * 149, None, 298, 2),
        ("a" * 148 + "İ" + "a" * 148, None, 298, 3),
        ("a" * 148 + "€" + "a" * 148, True, 298, 3),
        ("a" * 148 + "{" + "a" * 148, True, 298, 3),
        ("ş" * 77, None, 154, 1),
        ("ş" * 78, None, 156, 2),
        ("ş" * 148, None, 296, 2),
        ("ş" * 149, None, 298, 3),
    ],
)
def test_turkish_pairs_are_never_split(
    text: str, tr_char: bool | None, units: int, count: int
) -> None:
    expected = Segments(TR, units, count, 155 if count == 1 else 149)
    assert segments(text, tr_char=tr_char) == expected


@pytest.mark.parametrize(
    ("text", "units", "count"),
    [
        ("a" * 66 + EMOJI, 68, 1),
        ("a" * 68 + EMOJI, 70, 1),
        ("a" * 69 + EMOJI, 71, 2),
        # 66 + 2 would overflow 67: the surrogate pair opens segment 2.
        ("a" * 66 + EMOJI + "a" * 66, 134, 3),
        ("a" * 65 + EMOJI + "a" * 67, 134, 2),
        (EMOJI * 35, 70, 1),
        (EMOJI * 36, 72, 2),
        (EMOJI * 66, 132, 2),
        (EMOJI * 67, 134, 3),
    ],
)
def test_surrogate_pairs_are_never_split(text: str, units: int, count: int) -> None:
    expected = Segments(UCS2, units, count, 70 if count == 1 else 67)
    for tr_char in (None, False, True):
        assert segments(text, tr_char=tr_char) == expected


@pytest.mark.parametrize(
    ("text", "tr_char", "expected"),
    [
        # ç is in the Turkish shift table only; Ç is in the default alphabet.
        ("Çiçek", None, Segments(TR, 6, 1, 155)),
        ("Çiçek", False, Segments(UCS2, 5, 1, 70)),
        ("Çiçek", True, Segments(TR, 6, 1, 155)),
        ("Hello", None, Segments(GSM7, 5, 1, 160)),
        ("Hello", False, Segments(GSM7, 5, 1, 160)),
        ("Hello", True, Segments(TR, 5, 1, 155)),
        ("Ödeme ürün", None, Segments(GSM7, 10, 1, 160)),
        ("Ödeme ürün", True, Segments(TR, 10, 1, 155)),
        ("€5 {x}", None, Segments(GSM7, 9, 1, 160)),
        ("€5 {x}", True, Segments(TR, 9, 1, 155)),
        ("{ş}", None, Segments(TR, 6, 1, 155)),
        ("{ş}", False, Segments(UCS2, 3, 1, 70)),
        ("ısı", None, Segments(TR, 5, 1, 155)),
        ("isi", None, Segments(GSM7, 3, 1, 160)),
        # A Turkish letter does not rescue a text that needs UCS-2 anyway.
        ("ş" + EMOJI, None, Segments(UCS2, 3, 1, 70)),
        ("ş" + EMOJI, True, Segments(UCS2, 3, 1, 70)),
        ("a" * 156, None, Segments(GSM7, 156, 1, 160)),
        ("a" * 156, True, Segments(TR, 156, 2, 149)),
        ("", None, Segments(GSM7, 0, 1, 160)),
        ("", False, Segments(GSM7, 0, 1, 160)),
        ("", True, Segments(TR, 0, 1, 155)),
    ],
)
def test_tr_char(text: str, tr_char: bool | None, expected: Segments) -> None:
    assert segments(text, tr_char=tr_char) == expected


@pytest.mark.parametrize(
    "char",
    ["`", "\t", "\x1b", "\x7f", "\x00", "â", "á", "ê", "\u0391", CYRILLIC, "\u00a0", "\ud800"],
)
def test_character_outside_both_tables_forces_ucs2(char: str) -> None:
    text = "Merhaba " + char
    for tr_char in (None, False, True):
        assert segments(text, tr_char=tr_char) == Segments(UCS2, 9, 1, 70)
    assert segments("a" * 160 + char) == Segments(UCS2, 161, 3, 67)


@pytest.mark.parametrize("char", DEFAULT_ALPHABET)
def test_default_alphabet_takes_one_septet(char: str) -> None:
    assert segments(char * 3) == Segments(GSM7, 3, 1, 160)
    assert segments(char * 3, tr_char=True) == Segments(TR, 3, 1, 155)


@pytest.mark.parametrize("char", EXTENSION)
def test_extension_takes_two_septets(char: str) -> None:
    assert segments(char * 3) == Segments(GSM7, 6, 1, 160)
    assert segments(char * 3, tr_char=True) == Segments(TR, 6, 1, 155)


@pytest.mark.parametrize("char", TURKISH_LETTERS)
def test_turkish_letter_takes_two_septets_or_forces_ucs2(char: str) -> None:
    assert segments(char * 3) == Segments(TR, 6, 1, 155)
    assert segments(char * 3, tr_char=True) == Segments(TR, 6, 1, 155)
    assert segments(char * 3, tr_char=False) == Segments(UCS2, 3, 1, 70)


def test_form_feed_is_an_extension_character() -> None:
    assert segments("a\fb") == Segments(GSM7, 4, 1, 160)
    assert segments("\f" * 81) == Segments(GSM7, 162, 2, 153)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("Kodunuz 1234", False),
        ("Çok güzel Ödeme", False),
        ("€ {} ~", False),
        (EMOJI, False),
        ("Öğle", True),
        ("İstanbul", True),
        ("ırmak", True),
        ("çay", True),
        ("Şeker", True),
        ("ş", True),
        ("Ğ", True),
        ("ISPARTA", False),
        ("a" * 500 + "ı", True),
    ],
)
def test_needs_turkish_shift(text: str, expected: bool) -> None:
    assert needs_turkish_shift(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("Kodunuz 1234", "Kodunuz 1234"),
        ("ş Ş ğ Ğ ı İ ç", "s S g G i I c"),
        ("Şişli'de ılık bir öğle, çay İçin", "Sisli'de ilik bir ögle, cay Icin"),
        # The trade-off: heat becomes soot.
        ("ısı", "isi"),
        ("hâlâ kâr Âşık îmân ûlûhiyet Î Û", "hala kar Asik iman uluhiyet I U"),
        ("Çok güzel Ödeme ÖÜöüÇ", "Çok güzel Ödeme ÖÜöüÇ"),
        ("ş" + EMOJI + "€", "s" + EMOJI + "€"),
    ],
)
def test_transliterate_turkish(text: str, expected: str) -> None:
    assert transliterate_turkish(text) == expected


@pytest.mark.parametrize(
    ("text", "before", "after"),
    [
        # 54 characters, five of them shifted (ı ş İ Ğ ş); Ç and ü are GSM-7.
        (
            "Sayın müşterimiz, İndirim kodunuz: ÇAĞRI. Teşekkürler.",
            Segments(TR, 59, 1, 155),
            Segments(GSM7, 54, 1, 160),
        ),
        ("ş" * 80, Segments(TR, 160, 2, 149), Segments(GSM7, 80, 1, 160)),
        ("hâlâ " * 15, Segments(UCS2, 75, 2, 67), Segments(GSM7, 75, 1, 160)),
    ],
)
def test_transliteration_saves_segments(text: str, before: Segments, after: Segments) -> None:
    assert segments(text) == before
    assert segments(transliterate_turkish(text)) == after


# The example table of the README section "What will this cost?", row for row.
@pytest.mark.parametrize(
    ("text", "tr_char", "encoding", "units", "count"),
    [
        ("Kodunuz 1234", None, GSM7, 12, 1),
        ("a" * 160, None, GSM7, 160, 1),
        ("a" * 161, None, GSM7, 161, 2),
        ("a" * 161, True, TR, 161, 2),
        ("Çiçek", None, TR, 6, 1),
        ("Çiçek", False, UCS2, 5, 1),
        ("ş" + "a" * 154, None, TR, 156, 2),
        ("a" * 152 + "€" + "a" * 152, None, GSM7, 306, 3),
        ("a" * 151 + "€" + "a" * 153, None, GSM7, 306, 2),
        ("Merhaba " + EMOJI, None, UCS2, 10, 1),
        ("a" * 66 + EMOJI + "a" * 66, None, UCS2, 134, 3),
    ],
)
def test_cost_examples(
    text: str, tr_char: bool | None, encoding: Encoding, units: int, count: int
) -> None:
    result = segments(text, tr_char=tr_char)
    assert (result.encoding, result.units, result.count) == (encoding, units, count)


# A slow model of the rules, one character at a time.


def model(text: str, tr_char: bool | None) -> Segments:
    turkish = bool(tr_char) or (tr_char is None and any(c in TURKISH_LETTERS for c in text))
    shift = EXTENSION + TURKISH_LETTERS if turkish else EXTENSION
    sizes: list[int] = []
    for char in text:
        if char in DEFAULT_ALPHABET:
            sizes.append(1)
        elif char in shift:
            sizes.append(2)
        else:
            break
    else:
        encoding, single, multi = (TR, 155, 149) if turkish else (GSM7, 160, 153)
        return _model_split(encoding, sizes, single, multi)
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return _model_split(UCS2, sizes, 70, 67)


def _model_split(encoding: Encoding, sizes: list[int], single: int, multi: int) -> Segments:
    units = sum(sizes)
    if units <= single:
        return Segments(encoding, units, 1, single)
    count, used = 1, 0
    for size in sizes:
        if used + size > multi:
            count, used = count + 1, 0
        used += size
    return Segments(encoding, units, count, multi)


ORDER = {GSM7: 0, TR: 1, UCS2: 2}
SPECIAL = ["€", "\f", "[", "ş", "İ", "ç", "Ç", "Ö", EMOJI, CYRILLIC, "`", "â", "\ud800"]
chars = st.one_of(
    st.sampled_from(["a"] * 10 + SPECIAL),
    st.characters(),
)
texts = st.one_of(
    st.text(chars, max_size=400),
    # Long plain runs with a few two-unit characters put pairs near segment boundaries.
    st.lists(
        st.tuples(st.integers(0, 160), st.sampled_from(SPECIAL)),
        max_size=5,
    ).map(lambda parts: "".join("a" * n + c for n, c in parts)),
)
tr_chars = st.sampled_from([None, False, True])


@given(text=texts, tr_char=tr_chars)
def test_matches_the_model(text: str, tr_char: bool | None) -> None:
    assert segments(text, tr_char=tr_char) == model(text, tr_char)


@given(text=texts, char=chars, tr_char=tr_chars)
def test_appending_never_decreases_segments(text: str, char: str, tr_char: bool | None) -> None:
    before = segments(text, tr_char=tr_char)
    after = segments(text + char, tr_char=tr_char)
    assert after.count >= before.count
    assert ORDER[after.encoding] >= ORDER[before.encoding]
    if after.encoding is before.encoding:
        assert after.units > before.units


@given(st.lists(st.text(max_size=400), max_size=6), st.booleans())
def test_credits_of_a_package_agree_with_segments(texts: list[str], tr_char: bool) -> None:
    expected = sum(segments(text, tr_char=tr_char).count for text in texts)
    assert credits_of(texts, tr_char) == expected


@given(
    st.lists(st.text(st.characters(max_codepoint=0x7F), max_size=400), max_size=6), st.booleans()
)
def test_credits_of_ascii_packages_agree_with_segments(texts: list[str], tr_char: bool) -> None:
    expected = sum(segments(text, tr_char=tr_char).count for text in texts)
    assert credits_of(texts, tr_char) == expected


@pytest.mark.parametrize("length", [0, 1, 149, 150, 155, 156, 160, 161, 298, 299, 306, 307])
@pytest.mark.parametrize("tr_char", [True, False])
def test_credits_of_plain_ascii_texts(length: int, tr_char: bool) -> None:
    texts = ["a" * length, "b" * (length + 1), "kısa"[:1]]
    expected = sum(segments(text, tr_char=tr_char).count for text in texts)
    assert credits_of(texts, tr_char) == expected
    assert credits_of(["a" * length], tr_char) == segments("a" * length, tr_char=tr_char).count
