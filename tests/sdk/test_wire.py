"""The converter's wire rules, on the API document's own sample answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import load_sample
from vairo_async import (
    APIError,
    AuthenticationError,
    FailureLog,
    Message,
    PackageReport,
    PackageStatus,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    _wire,
)
from vairo_async._constants import ISTANBUL
from vairo_async._endpoints import SEND
from vairo_async._wire import SendRequest, converter, decode, dumps, encode_send, make_converter

KEY = "the-key"


def _body(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _report(**changes: object) -> PackageReport:
    data = load_sample("report_completed.json")["aciklama"]
    data.update(changes)
    return decode(200, _body({"durum": True, "aciklama": data}), None, PackageReport, KEY)


def test_completed_sample_parses_to_the_values_it_shows() -> None:
    payload = load_sample("report_completed.json")
    report = decode(200, _body(payload), None, PackageReport, KEY)
    assert report == PackageReport(
        package_id=52,
        sender="08505326480",
        recipient_count=2,
        credits=2,
        expires_at=datetime(2016, 7, 22, 14, 40, 16, tzinfo=ISTANBUL),
        scheduled_at=None,
        validity=timedelta(hours=24),
        status=PackageStatus.COMPLETED,
        created_at=datetime(2016, 7, 21, 14, 40, 16, tzinfo=ISTANBUL),
        failure=None,
    )
    assert report.raw == payload["aciklama"]
    assert report.status.is_final
    assert report.expires_at - report.created_at == report.validity


def test_failed_sample_parses_with_its_log() -> None:
    payload = load_sample("report_failed.json")
    report = decode(200, _body(payload), None, PackageReport, KEY)
    assert report.package_id == 61
    assert report.sender == "BAŞLIK"
    assert report.credits == 0
    assert report.status is PackageStatus.FAILED
    assert report.status.is_final
    assert report.failure == FailureLog(
        message="Gönderim #61 sırasında hata oluşu: INVALID_SOURCE_ADDRESS",
        id=1221,
        user_id=1,
        kind="error",
        section="sms",
        api="",
        route="https://vairosms.com/Panel/api/v1/SmsGonder",
        ip="78.163.252.167",
        context="",
        created_at=datetime(2016, 7, 22, 17, 13, 11, tzinfo=ISTANBUL),
        updated_at=datetime(2016, 7, 22, 17, 13, 11, tzinfo=ISTANBUL),
    )
    assert report.failure.raw == payload["aciklama"]["log"]


def test_times_are_istanbul_wall_clock() -> None:
    report = _report(created_at="2024-01-15 09:30:00")
    assert report.created_at.utcoffset() == timedelta(hours=3)
    assert report.created_at.hour == 9
    assert report.created_at.tzinfo is ISTANBUL


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("24:00:00", timedelta(hours=24)),
        ("36:30:00", timedelta(hours=36, minutes=30)),
        ("00:00:05", timedelta(seconds=5)),
        ("120:15:30", timedelta(hours=120, minutes=15, seconds=30)),
    ],
)
def test_validity_durations(wire: str, expected: timedelta) -> None:
    assert _report(gecerlilik_suresi=wire).validity == expected


@pytest.mark.parametrize("wire", ["0000-00-00 00:00:00", "", None])
def test_no_schedule_is_none(wire: object) -> None:
    assert _report(ileri_tarih=wire).scheduled_at is None


def test_schedule_is_parsed() -> None:
    report = _report(ileri_tarih="2016-07-25 10:00:00")
    assert report.scheduled_at == datetime(2016, 7, 25, 10, 0, tzinfo=ISTANBUL)


@pytest.mark.parametrize("wire", [52, "52"])
def test_package_id_as_int_or_digit_string(wire: object) -> None:
    assert decode(200, _body({"durum": True, "aciklama": wire}), None, int, KEY) == 52
    assert _report(id=wire).package_id == 52


@pytest.mark.parametrize("wire", ["52a", "", 5.2, True, None, [52]])
def test_package_id_of_another_shape_is_unexpected(wire: object) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        decode(200, _body({"durum": True, "aciklama": wire}), None, int, KEY)
    assert info.value.status_code == 200


@pytest.mark.parametrize("wire", [-5, "-5", 0, "0", "-0", 5.0, "5.0", " 5", "+5", "٥"])
def test_a_package_id_that_is_not_a_positive_integer_is_unexpected(wire: object) -> None:
    body = _body({"durum": True, "aciklama": wire})
    with pytest.raises(UnexpectedResponseError, match="positive integer") as info:
        decode(200, body, None, SEND.answer, KEY)
    assert info.value.status_code == 200
    with pytest.raises(UnexpectedResponseError, match=r"\$\.id"):
        _report(id=wire)


@pytest.mark.parametrize("codec", ["orjson", "json"])
def test_a_utf8_bom_before_the_json_is_read_past(
    codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vairo_async import _wire

    if codec == "json":
        monkeypatch.setattr(_wire, "orjson", None)
    bom = b"\xef\xbb\xbf"  # PHP back ends that save their sources with one emit it
    assert decode(200, bom + b'{"durum": true, "aciklama": 52}', None, SEND.answer, KEY) == 52
    with pytest.raises(APIError, match="Yetersiz kredi"):
        decode(200, bom + _body({"durum": False, "aciklama": "Yetersiz kredi"}), None, int, KEY)
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        decode(200, bom + b"<html>", None, int, KEY)


@pytest.mark.parametrize("wire", [2, 7, -5, "3"])
def test_unknown_status_does_not_crash(wire: object) -> None:
    report = _report(paket_durum=wire)
    assert int(report.status) == int(wire)  # type: ignore[call-overload]
    assert report.status.name.startswith("UNKNOWN_")
    assert not report.status.is_final
    assert report.status not in (PackageStatus.COMPLETED, PackageStatus.FAILED)


def test_status_as_digit_string() -> None:
    assert _report(paket_durum="-1").status is PackageStatus.FAILED


def test_unknown_extra_fields_are_kept() -> None:
    report = _report(yeni_alan="değer", numara_listesi=[1, 2])
    assert report.raw["yeni_alan"] == "değer"
    assert report.raw["numara_listesi"] == [1, 2]
    assert report.package_id == 52


@pytest.mark.parametrize(
    "change",
    [
        {"id": None},
        {"sms_baslik": 8505326480},
        {"numara_toplam": "iki"},
        {"created_at": "dün"},
        {"gecerlilik_suresi": "1 gün"},
        {"paket_durum": None},
        {"log": "hata"},
    ],
)
def test_wrong_types_raise_unexpected_response(change: dict[str, object]) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        _report(**change)
    field = next(iter(change))
    assert field in str(info.value)


def test_missing_field_raises_unexpected_response() -> None:
    data = load_sample("report_completed.json")
    del data["aciklama"]["kredi_toplam"]
    with pytest.raises(UnexpectedResponseError, match="kredi_toplam"):
        decode(200, _body(data), None, PackageReport, KEY)


@pytest.mark.parametrize("body", [b"", b"<html>Moved</html>", b'{"location": "/Panel/"}'])
def test_a_redirect_is_an_api_error_with_its_status(body: bytes) -> None:
    with pytest.raises(APIError) as info:
        decode(303, body, None, SEND.answer, KEY)
    assert type(info.value) is APIError
    assert info.value.status_code == 303
    assert info.value.message.startswith("answer ")


def test_durum_false_with_200_is_api_error() -> None:
    body = _body({"durum": False, "aciklama": "Geçersiz başlık"})
    with pytest.raises(APIError) as info:
        decode(200, body, None, int, KEY)
    assert type(info.value) is APIError
    assert info.value.message == "Geçersiz başlık"
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, APIError),
        (404, APIError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
def test_error_statuses_map_to_classes(status: int, cls: type[APIError]) -> None:
    body = _body({"durum": False, "aciklama": "olmadı"})
    with pytest.raises(cls) as info:
        decode(status, body, 7.0, int, KEY)
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.message == "olmadı"
    assert info.value.retry_after == 7.0


def test_html_proxy_page_is_a_server_error_with_its_body() -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(ServerError) as info:
        decode(502, page, None, int, KEY)
    assert "not JSON" in info.value.message
    assert "502 Bad Gateway" in info.value.body


@pytest.mark.parametrize(
    "body",
    [b"<html>OK</html>", b"", b'{"durum": "evet", "aciklama": 5}', b"[1, 2]", b'{"aciklama": 5}'],
)
def test_malformed_success_body_is_unexpected(body: bytes) -> None:
    with pytest.raises(UnexpectedResponseError):
        decode(200, body, None, int, KEY)


def test_bodies_in_errors_are_redacted() -> None:
    body = _body({"durum": False, "aciklama": f"bad key {KEY} in ?api_key={KEY}"})
    with pytest.raises(AuthenticationError) as info:
        decode(401, body, None, int, KEY)
    assert KEY not in info.value.message
    assert KEY not in info.value.body
    assert KEY not in str(info.value)


def test_send_body_matches_the_documented_shape() -> None:
    messages = [Message(to="5399999999", text="safasfsa"), Message(to="5554444444", text="deneme")]
    assert json.loads(encode_send("BAŞLIK", messages, tr_char=False)) == {
        "baslik": "BAŞLIK",
        "mesajlar": [
            {"msg": "safasfsa", "dest": "5399999999"},
            {"msg": "deneme", "dest": "5554444444"},
        ],
    }
    turkish = json.loads(encode_send("BAŞLIK", messages, tr_char=True))
    assert turkish["tr_char"] is True
    assert "BAŞLIK".encode() in encode_send("BAŞLIK", messages, tr_char=True)


def test_make_converter_returns_independent_instances() -> None:
    other = make_converter()
    assert other is not converter
    assert other.structure("52", int) == 52


@pytest.mark.parametrize("codec", ["orjson", "json"])
def test_both_json_codecs_put_the_same_bytes_on_the_wire(
    codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [
        Message(to="5399999999", text='Şifre "1234" \\ 😀'),
        Message(to="5554444444", text="x"),
    ]
    expected = json.dumps(
        {
            "baslik": "BAŞLIK",
            "mesajlar": [{"dest": m.to, "msg": m.text} for m in messages],
            "tr_char": True,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    if codec == "json":
        monkeypatch.setattr(_wire, "orjson", None)
    else:
        assert _wire.orjson is not None
    assert encode_send("BAŞLIK", messages, tr_char=True) == expected
    assert decode(200, b'{"durum": true, "aciklama": "52"}', None, int, KEY) == 52
    with pytest.raises(UnexpectedResponseError):
        decode(200, b"<html>", None, int, KEY)


def test_a_messages_ref_never_reaches_the_wire() -> None:
    messages = [
        Message(to="5399999999", text="Merhaba", ref={"customer": "M-001", "line": 2}),
        Message(to="5554444444", text="Şifre", ref=object()),
    ]

    body = json.loads(encode_send("ACME", messages, tr_char=True))

    assert body["mesajlar"] == [
        {"msg": "Merhaba", "dest": "5399999999"},
        {"msg": "Şifre", "dest": "5554444444"},
    ]
    assert converter.unstructure(messages[0]) == {"msg": "Merhaba", "dest": "5399999999"}


def _by_the_converter(sender: str, messages: list[Message], tr_char: bool) -> bytes:
    return dumps(
        converter.unstructure(SendRequest(baslik=sender, mesajlar=messages, tr_char=tr_char))
    )


def _outcome(
    encode: Callable[[str, list[Message], bool], bytes],
    sender: str,
    messages: list[Message],
    tr_char: bool,
) -> bytes | type[Exception]:
    try:
        return encode(sender, messages, tr_char)
    except Exception as exc:  # a lone surrogate is no UTF-8: both must refuse it alike
        return type(exc)


_ASCII = st.characters(max_codepoint=0x7F)
# Any strings; ASCII ones, some with a quote, backslash or control character JSON escapes;
# and rows of wire-form numbers with plain texts, which JSON carries verbatim.
_ROWS = st.one_of(
    st.lists(st.builds(Message, to=st.text(max_size=14), text=st.text(max_size=200)), max_size=80),
    st.lists(
        st.builds(Message, to=st.text(_ASCII, max_size=12), text=st.text(_ASCII, max_size=200)),
        max_size=80,
    ),
    st.lists(
        st.builds(
            Message,
            to=st.from_regex(r"5[0-9]{9}", fullmatch=True),
            text=st.from_regex(r"[ -!#-\[\]-~]{0,200}", fullmatch=True),
        ),
        max_size=80,
    ),
)


def _plain_rows(count: int, odd: Message) -> list[Message]:
    """`count` rows JSON carries verbatim, and `odd` among them."""
    rows = [Message(to=f"5{i:09d}", text=f"Kampanya {i}") for i in range(count)]
    rows[count // 2] = odd
    return rows


@settings(max_examples=500)
@given(st.text(max_size=12), _ROWS, st.booleans())
@example("ACME", _plain_rows(40, Message(to="5399999999", text="Kampanya")), True)
@example("ACME", _plain_rows(40, Message(to="5399999999", text='"1"')), False)
@example("ACME", _plain_rows(40, Message(to="5399999999", text="a\\b")), False)
@example("ACME", _plain_rows(40, Message(to="5399999999", text="a\nb")), True)
@example("ACME", _plain_rows(40, Message(to='539999999"', text="x")), False)
@example("AÇME", _plain_rows(40, Message(to="5399999999", text="Çok")), False)
def test_a_send_body_is_byte_for_byte_what_the_converter_makes(
    sender: str, messages: list[Message], tr_char: bool
) -> None:
    for codec in (_wire.orjson, None):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_wire, "orjson", codec)
            assert _outcome(encode_send, sender, messages, tr_char) == _outcome(
                _by_the_converter, sender, messages, tr_char
            )
