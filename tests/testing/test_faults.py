"""Injected faults, seen by a raw httpx client in-process and over a loopback socket."""

from __future__ import annotations

import collections
import contextlib
import logging

import httpx
import pytest

from vairo_async.testing import FakeVairo, Fault, FaultKind, Outcome, RandomFaults
from vairo_async.testing._faults import DropConnection, FaultPlan
from vairo_async.testing._server import silence_drops

KEY = {"api_key": "test-api-key"}
BODY = {"baslik": "ACME", "mesajlar": [{"msg": "Kodunuz 1234", "dest": "5399999999"}]}


async def send(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("SmsGonder", params=KEY, json=BODY)


async def poll(http: httpx.AsyncClient, package_id: int = 1) -> httpx.Response:
    return await http.get(f"GonderimBilgisi/{package_id}", params=KEY)


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(1, "1"), (2.5, "2.5"), ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT")],
)
async def test_rate_limit_answers_429_with_retry_after(
    http: httpx.AsyncClient, fake: FakeVairo, retry_after: float | str, header: str
) -> None:
    fake.inject(Fault.rate_limit(retry_after))

    limited = await send(http)
    then = await send(http)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == header
    assert limited.json()["durum"] is False
    assert then.status_code == 200
    assert len(fake.packages) == 1
    assert fake.request_count("send", Outcome.RATE_LIMITED) == 1


async def test_rate_limit_without_retry_after(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.rate_limit(None))

    assert "retry-after" not in (await send(http)).headers


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_answers_json_and_accepts_nothing(
    http: httpx.AsyncClient, fake: FakeVairo, status: int
) -> None:
    fake.inject(Fault.server_error(status))

    answer = await send(http)

    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["durum"] is False
    assert isinstance(answer.json()["aciklama"], str)
    assert fake.messages == ()
    assert fake.requests[-1].outcome == Outcome.SERVER_ERROR
    assert fake.requests[-1].fault == FaultKind.SERVER_ERROR


async def test_server_error_after_accepting_records_the_package(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.server_error(504, accepted=True))

    answer = await send(http)

    assert answer.status_code == 504
    assert len(fake.sent_to("5399999999")) == 1
    assert fake.requests[-1].package_id == 1


async def test_server_error_may_carry_retry_after(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.server_error(503, retry_after=7))

    assert (await send(http)).headers["retry-after"] == "7"


@pytest.mark.parametrize(("status", "accepted"), [(502, False), (503, False), (502, True)])
async def test_html_page_is_not_json(
    http: httpx.AsyncClient, fake: FakeVairo, status: int, accepted: bool
) -> None:
    fake.inject(Fault.html_page(status, accepted=accepted))

    answer = await send(http)

    assert answer.status_code == status
    assert answer.headers["content-type"] == "text/html"
    assert answer.text.startswith("<html>")
    assert str(status) in answer.text
    assert len(fake.messages) == (1 if accepted else 0)
    assert fake.requests[-1].outcome == Outcome.HTML_PAGE


async def test_drop_before_accept_is_a_transport_error_and_sends_nothing(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.drop_before_accept())

    with pytest.raises(httpx.RemoteProtocolError):
        await send(http)

    assert fake.messages == ()
    assert fake.requests[-1] == fake.requests[0]
    assert fake.requests[0].outcome == Outcome.DROPPED
    assert fake.requests[0].package_id is None
    assert (await send(http)).status_code == 200


async def test_drop_after_accept_is_a_transport_error_and_sends_once(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.drop_after_accept())

    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"):
        await send(http)

    assert len(fake.sent_to("5399999999")) == 1
    assert list(fake.packages) == [1]
    assert fake.requests[0].outcome == Outcome.DROPPED
    assert fake.requests[0].package_id == 1


@pytest.mark.parametrize(
    ("fault", "counted"), [(Fault.drop_before_accept(), 0), (Fault.drop_after_accept(), 1)]
)
async def test_drops_on_the_report_endpoint(
    http: httpx.AsyncClient, fake: FakeVairo, fault: Fault, counted: int
) -> None:
    await send(http)
    fake.inject(fault, endpoint="report")

    with pytest.raises(httpx.TransportError):
        await poll(http)

    assert fake.packages[1].polls == counted


async def test_drop_over_the_socket_logs_nothing(
    fake: FakeVairo, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(Fault.drop_after_accept())
    fake.inject(Fault.drop_before_accept())
    async with fake.serve() as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                await send(http)

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_drop_filter_hides_only_the_emulators_drops() -> None:
    silence_drops()
    logger = logging.getLogger("uvicorn.error")

    def record(exc: BaseException) -> logging.LogRecord:
        return logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "boom", (), (type(exc), exc, None)
        )

    assert not logger.filter(record(DropConnection(response_started=True)))
    assert logger.filter(record(RuntimeError("a real bug")))


async def test_latency_delays_but_answers(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.latency(0.01))
    fake.latency = 0.01

    answer = await send(http)

    assert answer.status_code == 200
    assert fake.requests[0].fault == FaultKind.LATENCY
    assert fake.requests[0].outcome == Outcome.ACCEPTED


async def test_latency_past_the_read_timeout_is_a_read_timeout_after_acceptance(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.latency(30))

    with pytest.raises(httpx.ReadTimeout):
        await http.post("SmsGonder", params=KEY, json=BODY, timeout=httpx.Timeout(5, read=0.05))

    assert len(fake.messages) == 1
    assert (await send(http)).status_code == 200


async def test_base_latency_delays_fault_answers_too(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.latency = 30
    fake.inject(Fault.server_error(503))

    with pytest.raises(httpx.ReadTimeout):
        await http.post("SmsGonder", params=KEY, json=BODY, timeout=httpx.Timeout(5, read=0.05))

    fake.latency = 0
    assert (await send(http)).status_code == 200
    assert [r.outcome for r in fake.requests] == [Outcome.SERVER_ERROR, Outcome.ACCEPTED]


async def test_scripted_faults_run_in_order_and_count_down(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.server_error(503), times=2)
    fake.inject(Fault.rate_limit())
    assert fake.pending_faults == 3

    statuses = [(await send(http)).status_code for _ in range(4)]

    assert statuses == [503, 503, 429, 200]
    assert fake.pending_faults == 0


async def test_faults_target_their_endpoint(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    await send(http)
    fake.inject(Fault.server_error(500), endpoint="report")
    fake.inject(Fault.server_error(502), endpoint="both", times=2)

    sent = await send(http)
    polled = [(await poll(http)).status_code for _ in range(3)]

    assert sent.status_code == 502
    assert polled == [500, 502, 200]


async def test_unknown_paths_never_consume_faults(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.server_error(500), endpoint="both")

    assert (await http.get("Nope", params=KEY)).status_code == 404
    assert fake.pending_faults == 1


async def test_faults_come_before_the_key_check(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.rate_limit())

    answer = await http.post("SmsGonder", params={"api_key": "wrong"}, json=BODY)

    assert answer.status_code == 429


async def test_clear_faults(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    fake.inject(Fault.server_error(500), times=3)
    fake.set_random_faults(RandomFaults({Fault.server_error(500): 1.0}))

    fake.clear_faults()

    assert (await send(http)).status_code == 200
    assert fake.random_faults is None


async def test_random_faults_repeat_with_the_same_seed(fake: FakeVairo) -> None:
    rates = {Fault.server_error(503): 0.3, Fault.drop_before_accept(): 0.2}

    async def outcomes() -> list[str]:
        emulator = FakeVairo(random_faults=RandomFaults(rates, seed=7))
        async with httpx.AsyncClient(
            transport=emulator.transport(), base_url=emulator.base_url
        ) as http:
            for _ in range(40):
                with contextlib.suppress(httpx.TransportError):
                    await send(http)
        return [record.outcome for record in emulator.requests]

    first, second = await outcomes(), await outcomes()

    assert first == second
    assert {"accepted", "server_error", "dropped"} == set(first)


async def test_random_faults_respect_their_endpoint(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.set_random_faults(RandomFaults({Fault.server_error(500): 1.0}, endpoint="report"))

    assert (await send(http)).status_code == 200
    assert (await poll(http)).status_code == 500


def test_random_rates_follow_their_probabilities() -> None:
    plan = FaultPlan()
    low, high = Fault.server_error(500), Fault.rate_limit()
    plan.set_random(RandomFaults({low: 0.1, high: 0.5}, seed=1))

    counts = collections.Counter(plan.pick("send") for _ in range(10_000))

    assert 800 < counts[low] < 1200
    assert 4700 < counts[high] < 5300
    assert 3700 < counts[None] < 4300


@pytest.mark.parametrize(
    "rates", [{Fault.rate_limit(): 0.6, Fault.server_error(): 0.6}, {Fault.rate_limit(): -0.1}]
)
def test_random_rates_are_checked(rates: dict[Fault, float]) -> None:
    with pytest.raises(ValueError, match="rate"):
        RandomFaults(rates)


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="5xx"):
        Fault.server_error(429)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.html_page(200)
    with pytest.raises(ValueError, match="negative"):
        Fault.latency(-1)
    with pytest.raises(ValueError, match="endpoint"):
        RandomFaults({}, endpoint="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint"):
        FakeVairo().inject(Fault.rate_limit(), endpoint="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        FakeVairo().inject(Fault.rate_limit(), times=0)
