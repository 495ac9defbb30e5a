"""The emulator speaks the wire API exactly as the API's documentation shows, over raw httpx."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from vairo_async.testing import FakeVairo, Outcome

ISTANBUL_SAMPLE_TIME = datetime(2016, 7, 21, 14, 40, 16)
SAMPLE_SEND_BODY = {
    "baslik": "BAŞLIK",
    "mesajlar": [
        {"msg": "safasfsa", "dest": "5399999999"},
        {"msg": "deneme", "dest": "5554444444"},
    ],
}
SAMPLE_REPORT = {
    "id": 52,
    "sms_baslik": "08505326480",
    "numara_toplam": 2,
    "kredi_toplam": 2,
    "sonlanma_zamani": "2016-07-22 14:40:16",
    "ileri_tarih": "0000-00-00 00:00:00",
    "gecerlilik_suresi": "24:00:00",
    "paket_durum": 1,
    "created_at": "2016-07-21 14:40:16",
}
SAMPLE_FAILED_LOG_KEYS = {
    "id",
    "user_id",
    "mesaj",
    "tip",
    "bolum",
    "api",
    "rota",
    "ip",
    "context",
    "created_at",
    "updated_at",
}
WALL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


async def send(http: httpx.AsyncClient, body: Any, key: str = "test-api-key") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        "SmsGonder",
        params={"api_key": key},
        content=content,
        headers={"content-type": "application/json"},
    )


async def report(http: httpx.AsyncClient, package_id: object) -> httpx.Response:
    return await http.get(f"GonderimBilgisi/{package_id}", params={"api_key": "test-api-key"})


async def test_sample_send_then_report_has_the_sample_shape(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.first_package_id = 52
    fake.complete_after_polls = 0
    fake.now = lambda: ISTANBUL_SAMPLE_TIME
    body = {**SAMPLE_SEND_BODY, "baslik": "08505326480"}

    sent = await send(http, body)

    assert sent.status_code == 200
    assert sent.headers["content-type"].startswith("application/json")
    assert sent.json() == {"durum": True, "aciklama": 52}
    answer = await report(http, 52)
    assert answer.status_code == 200
    assert answer.json() == {"durum": True, "aciklama": {**SAMPLE_REPORT, "log": None}}


async def test_report_fields_have_the_wire_formats(http: httpx.AsyncClient) -> None:
    package_id = (await send(http, SAMPLE_SEND_BODY)).json()["aciklama"]

    aciklama = (await report(http, package_id)).json()["aciklama"]

    assert set(aciklama) == {*SAMPLE_REPORT, "log"}
    assert aciklama["id"] == package_id
    assert aciklama["sms_baslik"] == "BAŞLIK"
    assert aciklama["numara_toplam"] == 2
    assert aciklama["kredi_toplam"] == 2
    assert aciklama["paket_durum"] == 0
    assert aciklama["log"] is None
    assert aciklama["ileri_tarih"] == "0000-00-00 00:00:00"
    assert aciklama["gecerlilik_suresi"] == "24:00:00"
    for field in ("created_at", "sonlanma_zamani"):
        assert WALL_TIME.fullmatch(aciklama[field])
    created = datetime.strptime(aciklama["created_at"], "%Y-%m-%d %H:%M:%S")
    expires = datetime.strptime(aciklama["sonlanma_zamani"], "%Y-%m-%d %H:%M:%S")
    assert expires - created == timedelta(hours=24)


async def test_failed_package_reports_the_sample_log(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.fail_senders = {"BAŞLIK"}
    fake.now = lambda: datetime(2016, 7, 22, 17, 13, 11)
    package_id = (await send(http, SAMPLE_SEND_BODY)).json()["aciklama"]
    first = (await report(http, package_id)).json()["aciklama"]

    final = (await report(http, package_id)).json()["aciklama"]

    assert first["paket_durum"] == 0
    assert first["log"] is None
    assert final["paket_durum"] == -1
    assert final["kredi_toplam"] == 0
    assert final["sonlanma_zamani"] == "2016-07-23 17:13:11"
    log = final["log"]
    assert set(log) == SAMPLE_FAILED_LOG_KEYS
    assert log["mesaj"] == f"Gönderim #{package_id} sırasında hata oluşu: INVALID_SOURCE_ADDRESS"
    assert log["tip"] == "error"
    assert log["bolum"] == "sms"
    assert log["created_at"] == log["updated_at"] == "2016-07-22 17:13:11"
    assert log["rota"].endswith("/Panel/api/v1/SmsGonder")
    assert isinstance(log["id"], int)
    assert isinstance(log["user_id"], int)


async def test_failing_destination_fails_its_package(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.fail_destinations = {"5554444444"}
    fake.complete_after_polls = 0
    package_id = (await send(http, SAMPLE_SEND_BODY)).json()["aciklama"]

    final = (await report(http, package_id)).json()["aciklama"]

    assert final["paket_durum"] == -1
    assert final["log"]["mesaj"].endswith(": INVALID_DESTINATION_ADDRESS")
    assert len(fake.sent_to("5399999999")) == 1


async def test_wall_times_are_istanbul_time(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.now = lambda: datetime(2024, 1, 31, 21, 30, 0, tzinfo=UTC)
    fake.validity = timedelta(hours=48, minutes=30)
    package_id = (await send(http, SAMPLE_SEND_BODY)).json()["aciklama"]

    aciklama = (await report(http, package_id)).json()["aciklama"]

    assert aciklama["created_at"] == "2024-02-01 00:30:00"
    assert aciklama["sonlanma_zamani"] == "2024-02-03 01:00:00"
    assert aciklama["gecerlilik_suresi"] == "48:30:00"


async def test_turkish_utf8_body_is_recorded_as_sent(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    body = {
        "baslik": "ŞİRKET",
        "tr_char": True,
        "mesajlar": [{"msg": "Şifre: ığüşöç", "dest": "5399999999"}],
    }

    answer = await send(http, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    assert answer.status_code == 200
    [message] = fake.sent_to("5399999999")
    assert message.text == "Şifre: ığüşöç"
    assert message.sender == "ŞİRKET"
    assert message.tr_char is True


async def test_ids_may_be_sent_as_digit_strings(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.ids_as_strings = True

    package_id = (await send(http, SAMPLE_SEND_BODY)).json()["aciklama"]

    assert package_id == "1"
    assert (await report(http, package_id)).json()["aciklama"]["id"] == "1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "JSON"),
        (b"\xff\xfe{}", "JSON"),
        ([1, 2], "nesnesi"),
        ({"mesajlar": SAMPLE_SEND_BODY["mesajlar"]}, "baslik"),
        ({**SAMPLE_SEND_BODY, "baslik": 42}, "baslik"),
        ({**SAMPLE_SEND_BODY, "baslik": "   "}, "baslik"),
        ({**SAMPLE_SEND_BODY, "baslik": "X" * 17}, "uzun"),
        ({"baslik": "B"}, "mesajlar"),
        ({"baslik": "B", "mesajlar": []}, "mesajlar"),
        ({"baslik": "B", "mesajlar": {"msg": "a", "dest": "5399999999"}}, "mesajlar"),
        ({"baslik": "B", "mesajlar": ["x"]}, "1. mesaj"),
        ({"baslik": "B", "mesajlar": [{"dest": "5399999999"}]}, "msg"),
        ({"baslik": "B", "mesajlar": [{"msg": "", "dest": "5399999999"}]}, "msg"),
        ({"baslik": "B", "mesajlar": [{"msg": 5, "dest": "5399999999"}]}, "msg"),
        ({"baslik": "B", "mesajlar": [{"msg": "a"}]}, "dest"),
        ({"baslik": "B", "mesajlar": [{"msg": "a", "dest": "05399999999"}]}, "dest"),
        ({"baslik": "B", "mesajlar": [{"msg": "a", "dest": "4399999999"}]}, "dest"),
        ({"baslik": "B", "mesajlar": [{"msg": "a", "dest": 5399999999}]}, "dest"),
        ({"baslik": "B", "mesajlar": [{"msg": "a", "dest": "539999999٩"}]}, "dest"),
        (
            {"baslik": "B", "mesajlar": [{"msg": "a", "dest": "5399999999"}, {"msg": "b"}]},
            "2. mesaj",
        ),
        ({**SAMPLE_SEND_BODY, "tr_char": "true"}, "tr_char"),
        ({**SAMPLE_SEND_BODY, "tr_char": 1}, "tr_char"),
    ],
)
async def test_invalid_bodies_get_400_and_nothing_is_sent(
    http: httpx.AsyncClient, fake: FakeVairo, body: Any, fragment: str
) -> None:
    answer = await send(http, body)

    assert answer.status_code == 400
    assert answer.json()["durum"] is False
    assert fragment in answer.json()["aciklama"]
    assert fake.messages == ()
    assert fake.request_count("send", "rejected") == 1


async def test_allowed_senders_refuse_others(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.allowed_senders = {"ACME"}

    refused = await send(http, SAMPLE_SEND_BODY)
    accepted = await send(http, {**SAMPLE_SEND_BODY, "baslik": "ACME"})

    assert refused.status_code == 400
    assert "BAŞLIK" in refused.json()["aciklama"]
    assert accepted.status_code == 200


@pytest.mark.parametrize("key", ["wrong", ""])
async def test_wrong_or_missing_key_gets_401(
    http: httpx.AsyncClient, fake: FakeVairo, key: str
) -> None:
    sent = await send(http, SAMPLE_SEND_BODY, key=key)
    polled = await http.get("GonderimBilgisi/1")

    for answer in (sent, polled):
        assert answer.status_code == 401
        assert answer.json() == {"durum": False, "aciklama": "Geçersiz API anahtarı."}
    assert fake.messages == ()
    assert fake.request_count(outcome=Outcome.UNAUTHORIZED) == 2


@pytest.mark.parametrize("package_id", ["999", "abc", "-1"])
async def test_unknown_package_gets_404(http: httpx.AsyncClient, package_id: str) -> None:
    answer = await report(http, package_id)

    assert answer.status_code == 404
    assert answer.json() == {"durum": False, "aciklama": "Gönderim bulunamadı."}


@pytest.mark.parametrize(
    "path", ["/Panel/api/v1/Nope", "/SmsGonder", "/Panel/api/v1/GonderimBilgisi/", "/"]
)
async def test_unknown_path_gets_404(http: httpx.AsyncClient, fake: FakeVairo, path: str) -> None:
    answer = await http.get(http.base_url.copy_with(path=path), params={"api_key": "k"})

    assert answer.status_code == 404
    assert answer.json()["durum"] is False
    assert fake.request_count("other", "not_found") == 1


async def test_wrong_method_gets_405(http: httpx.AsyncClient) -> None:
    answer = await http.get("SmsGonder", params={"api_key": "test-api-key"})

    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["durum"] is False


async def test_custom_prefix_and_key(fake: FakeVairo) -> None:
    custom = FakeVairo(prefix="/api/", api_key="k-123")
    async with httpx.AsyncClient(transport=custom.transport(), base_url=custom.base_url) as http:
        answer = await send(http, SAMPLE_SEND_BODY, key="k-123")

    assert custom.base_url.endswith("/api/")
    assert answer.json() == {"durum": True, "aciklama": 1}


def test_prefix_must_be_slash_delimited() -> None:
    with pytest.raises(ValueError, match="prefix"):
        FakeVairo(prefix="/api")
