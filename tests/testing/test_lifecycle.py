"""Package life cycle, credits and the emulator's records, driven in-process over raw httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from vairo_async.testing import FakeVairo, Outcome, Package, SentMessage

MakeHttp = Callable[[FakeVairo], httpx.AsyncClient]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clients() -> AsyncIterator[MakeHttp]:
    opened: list[httpx.AsyncClient] = []

    def make(fake: FakeVairo) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


async def send(http: httpx.AsyncClient, *rows: tuple[str, str], **extra: Any) -> int:
    body = {"baslik": "ACME", "mesajlar": [{"msg": t, "dest": d} for d, t in rows], **extra}
    answer = await http.post("SmsGonder", params={"api_key": "test-api-key"}, json=body)
    assert answer.status_code == 200, answer.text
    package_id = answer.json()["aciklama"]
    assert isinstance(package_id, int)
    return package_id


async def status(http: httpx.AsyncClient, package_id: int) -> int:
    answer = await http.get(f"GonderimBilgisi/{package_id}", params={"api_key": "test-api-key"})
    result = answer.json()["aciklama"]["paket_durum"]
    assert isinstance(result, int)
    return result


async def poll_statuses(http: httpx.AsyncClient, package_id: int, polls: int) -> list[int]:
    return [await status(http, package_id) for _ in range(polls)]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (0, [1, 1, 1]),
        (1, [0, 1, 1]),
        (2, [0, 0, 1]),
        (None, [0, 0, 0]),
    ],
)
async def test_complete_after_polls_answers_sending_to_the_first_n_polls(
    clients: MakeHttp, after: int | None, expected: list[int]
) -> None:
    fake = FakeVairo(complete_after_polls=after)
    http = clients(fake)
    package_id = await send(http, ("5399999999", "a"))

    assert await poll_statuses(http, package_id, 3) == expected
    assert fake.packages[package_id].polls == 3


async def test_failing_package_fails_on_the_same_schedule(clients: MakeHttp) -> None:
    fake = FakeVairo(complete_after_polls=2, fail_senders={"ACME"})
    http = clients(fake)
    package_id = await send(http, ("5399999999", "a"))

    assert await poll_statuses(http, package_id, 3) == [0, 0, -1]


async def test_time_rule_uses_the_injected_clock(clients: MakeHttp) -> None:
    clock = FakeClock()
    fake = FakeVairo(complete_after_seconds=30, clock=clock)
    http = clients(fake)
    package_id = await send(http, ("5399999999", "a"))

    before = await poll_statuses(http, package_id, 5)
    clock.now += 29.9
    still = await status(http, package_id)
    clock.now += 0.1
    after = await status(http, package_id)

    assert before == [0] * 5
    assert (still, after) == (0, 1)


async def test_per_package_delay_spreads_completion(clients: MakeHttp) -> None:
    clock = FakeClock()
    fake = FakeVairo(
        complete_after_seconds=lambda package: float(package.package_id % 60), clock=clock
    )
    http = clients(fake)
    ids = [await send(http, ("5399999999", f"m{i}")) for i in range(120)]

    clock.now += 30
    done = [package_id for package_id in ids if await status(http, package_id) == 1]

    assert done == [package_id for package_id in ids if package_id % 60 <= 30]


async def test_rule_is_fixed_when_the_package_is_accepted(clients: MakeHttp) -> None:
    fake = FakeVairo(complete_after_polls=None)
    http = clients(fake)
    never = await send(http, ("5399999999", "a"))
    fake.complete_after_polls = 0
    quick = await send(http, ("5399999999", "b"))

    assert await status(http, never) == 0
    assert await status(http, quick) == 1


async def test_complete_now_settles_one_or_all(clients: MakeHttp) -> None:
    fake = FakeVairo(complete_after_polls=None, fail_destinations={"5554444444"})
    http = clients(fake)
    first = await send(http, ("5399999999", "a"))
    second = await send(http, ("5554444444", "b"))
    third = await send(http, ("5399999999", "c"))

    fake.complete_now(first)
    assert [await status(http, i) for i in (first, second, third)] == [1, 0, 0]
    fake.complete_now()
    assert [await status(http, i) for i in (first, second, third)] == [1, -1, 1]


async def test_fail_when_gives_a_custom_code(clients: MakeHttp) -> None:
    def rule(package: Package) -> str | None:
        return "INSUFFICIENT_CREDIT" if len(package.messages) > 1 else None

    fake = FakeVairo(complete_after_polls=0, fail_when=rule)
    http = clients(fake)
    single = await send(http, ("5399999999", "a"))
    double = await send(http, ("5399999999", "a"), ("5554444444", "b"))

    assert await status(http, single) == 1
    answer = await http.get(f"GonderimBilgisi/{double}", params={"api_key": "test-api-key"})
    log = answer.json()["aciklama"]["log"]
    assert log["mesaj"] == f"Gönderim #{double} sırasında hata oluşu: INSUFFICIENT_CREDIT"


@pytest.mark.parametrize(
    ("texts", "tr_char", "credits"),
    [
        (["a" * 160], None, 1),
        (["a" * 161], None, 2),
        (["a" * 306, "b"], None, 3),
        (["€" * 80], None, 1),
        (["€" * 81], None, 2),
        (["Ж" * 70], None, 1),
        (["Ж" * 71], None, 2),
    ],
)
async def test_credits_count_segments_per_message(
    clients: MakeHttp, texts: list[str], tr_char: bool | None, credits: int
) -> None:
    fake = FakeVairo()
    http = clients(fake)
    extra = {} if tr_char is None else {"tr_char": tr_char}
    package_id = await send(http, *[("5399999999", t) for t in texts], **extra)

    answer = await http.get(f"GonderimBilgisi/{package_id}", params={"api_key": "test-api-key"})

    assert answer.json()["aciklama"]["kredi_toplam"] == credits
    assert fake.packages[package_id].credits == credits


@pytest.mark.parametrize(
    ("tr_char", "credits"),
    [
        # 175 characters, five of them Ş: 180 septets with the Turkish shift (2 x 149) ...
        (True, 2),
        # ... but without it Ş is not GSM-7, so the whole text is UCS-2: 175 units (3 x 67).
        (False, 3),
        # Left out, tr_char is false.
        (None, 3),
    ],
)
async def test_credits_use_the_packages_tr_char(
    clients: MakeHttp, tr_char: bool | None, credits: int
) -> None:
    text = "Şifreniz: 1234, iyi günler dileriz " * 5
    fake = FakeVairo()
    http = clients(fake)
    extra = {} if tr_char is None else {"tr_char": tr_char}

    package_id = await send(http, ("5399999999", text), **extra)
    answer = await http.get(f"GonderimBilgisi/{package_id}", params={"api_key": "test-api-key"})

    assert fake.packages[package_id].tr_char is tr_char  # recorded as sent
    assert fake.packages[package_id].credits == credits
    assert answer.json()["aciklama"]["kredi_toplam"] == credits


async def test_records_every_accepted_message(clients: MakeHttp) -> None:
    fake = FakeVairo()
    http = clients(fake)
    first = await send(http, ("5399999999", "a"), ("5554444444", "b"), tr_char=False)
    second = await send(http, ("5399999999", "c"))

    assert fake.messages == (
        SentMessage(first, "5399999999", "a", "ACME", False),
        SentMessage(first, "5554444444", "b", "ACME", False),
        SentMessage(second, "5399999999", "c", "ACME", None),
    )
    assert [m.text for m in fake.sent_to("5399999999")] == ["a", "c"]
    assert fake.sent_to("5000000000") == []
    assert sorted(fake.packages) == [first, second]
    assert [m.text for m in fake.packages[first].messages] == ["a", "b"]
    assert fake.duplicates() == {}


async def test_duplicates_show_an_sms_accepted_twice(clients: MakeHttp) -> None:
    fake = FakeVairo()
    http = clients(fake)
    await send(http, ("5399999999", "a"), ("5554444444", "b"))
    await send(http, ("5399999999", "a"))

    assert fake.duplicates() == {("5399999999", "a"): 2}


async def test_packages_view_is_read_only(clients: MakeHttp) -> None:
    fake = FakeVairo()
    await send(clients(fake), ("5399999999", "a"))

    with pytest.raises(TypeError):
        fake.packages[99] = fake.packages[1]  # type: ignore[index]


async def test_request_counts_by_endpoint_and_outcome(clients: MakeHttp) -> None:
    fake = FakeVairo()
    http = clients(fake)
    package_id = await send(http, ("5399999999", "a"))
    await status(http, package_id)
    await status(http, package_id)
    await http.get("GonderimBilgisi/404", params={"api_key": "test-api-key"})
    await http.post("SmsGonder", params={"api_key": "test-api-key"}, content=b"{}")
    await http.post("SmsGonder", params={"api_key": "nope"}, content=b"{}")

    assert fake.request_count() == 6
    assert fake.request_count(endpoint="send") == 3
    assert fake.request_count(endpoint="send", outcome="accepted") == 1
    assert fake.request_count(endpoint="send", outcome=Outcome.REJECTED) == 1
    assert fake.request_count(outcome="unauthorized") == 1
    assert fake.request_count(endpoint="report", outcome="ok") == 2
    assert fake.request_count(endpoint="report", outcome="not_found") == 1
    assert [r.package_id for r in fake.requests[:3]] == [package_id] * 3


async def test_reset_forgets_records_but_ids_continue(clients: MakeHttp) -> None:
    fake = FakeVairo()
    http = clients(fake)
    await send(http, ("5399999999", "a"))

    fake.reset()
    package_id = await send(http, ("5399999999", "b"))

    assert package_id == 2
    assert list(fake.packages) == [2]
    assert fake.request_count() == 1


def test_repr_stays_short() -> None:
    assert "_ledger" not in repr(FakeVairo())


async def test_peak_concurrency_counts_overlapping_requests() -> None:
    import asyncio

    import httpx

    from vairo_async.testing import FakeVairo

    fake = FakeVairo(latency=0.01)
    body = {"baslik": "ACME", "mesajlar": [{"msg": "x", "dest": "5399999999"}]}
    async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url) as http:
        url = f"SmsGonder?api_key={fake.api_key}"
        await asyncio.gather(*(http.post(url, json=body) for _ in range(4)))
        assert fake.peak_concurrency("send") == 4
        await http.post(url, json=body)
    assert fake.peak_concurrency("send") == 4
    assert fake.peak_concurrency("report") == 0
    fake.reset()
    assert fake.peak_concurrency("send") == 0
