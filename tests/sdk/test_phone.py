from __future__ import annotations

import pytest

from vairo_async._phone import normalize_number


@pytest.mark.parametrize(
    "spelling",
    [
        "5399999999",
        "05399999999",
        "0539 999 99 99",
        "0539-999-9999",
        "0 (539) 999 99 99",
        "(0539) 999 9999",
        "+90 539 999 99 99",
        "+905399999999",
        "905399999999",
        "00905399999999",
        "0090 539 999 9999",
        "539.999.99.99",
        " 5399999999 ",
        "0539/999 99 99",
    ],
)
def test_common_spellings_normalise(spelling: object) -> None:
    assert normalize_number(spelling) == "5399999999"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("123", "not a Turkish mobile number"),
        ("02125551234", "not a Turkish mobile number"),  # an Istanbul landline
        ("4399999999", "not a Turkish mobile number"),
        ("539999999", "not a Turkish mobile number"),  # nine digits
        ("53999999990", "not a Turkish mobile number"),  # eleven digits
        ("+44 7911 123456", "not a Turkish mobile number"),
        ("+90 539 999 99 9x", "not a Turkish mobile number"),
        ("５３９９９９９９９９", "not a Turkish mobile number"),  # full-width digits
        (None, "must be a string"),
        (5.399999999e9, "must be a string"),
        (True, "must be a string"),
        (5399999999, "must be a string"),  # an int is not a number here: it drops a leading 0
    ],
)
def test_invalid_numbers_name_their_reason(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_number(value)
