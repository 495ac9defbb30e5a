"""The retry policy (the README's Retries table), failure kind by failure kind, for GET and POST."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

import httpx
import pytest
import tenacity

from tests.support import API_KEY, Raise, Recorder, Reply, Step, accept_package
from vairo_async import (
    APIError,
    AsyncVairoClient,
    AuthenticationError,
    OutcomeUnknownError,
    PackageStatus,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
)
from vairo_async._outcome import is_transient
from vairo_async._retry import RetryPolicy, parse_retry_after, set_testing
from vairo_async.testing import FakeVairo, Fault

MAX_RETRIES = 3
ALL = MAX_RETRIES + 1
REPORT_ID = 52  # the package every test's emulator holds before the test starts


def raising(cls: type[httpx.RequestError], *, after: bool = False) -> Raise:
    return Raise(cls, after=after)


def answering(status: int, body: object = None, **headers: str) -> Reply:
    if isinstance(body, bytes):
        return Reply(status, content=body, headers=headers)
    payload = body if body is not None else {"durum": False, "aciklama": "hata"}
    return Reply(status, json=payload, headers=headers)


HTML = b"<html><body>502 Bad Gateway</body></html>"

# kind: (failure, (GET attempts, GET error), (POST attempts, POST error)). A `Fault` is the
# emulator's own; `raising` is the network failing (before the request reaches the emulator,
# or after it did); `answering` is an answer no emulator gives, from something in front of it.
TABLE: dict[str, tuple[Step, tuple[int, type[VairoError]], tuple[int, type[VairoError]]]] = {
    "connect error": (raising(httpx.ConnectError), (ALL, TransportError), (ALL, TransportError)),
    "connect timeout": (
        raising(httpx.ConnectTimeout),
        (ALL, TransportError),
        (ALL, TransportError),
    ),
    "pool timeout": (raising(httpx.PoolTimeout), (ALL, TransportError), (ALL, TransportError)),
    "read timeout": (
        raising(httpx.ReadTimeout, after=True),
        (ALL, TransportError),
        (1, OutcomeUnknownError),
    ),
    "write timeout": (
        raising(httpx.WriteTimeout),
        (ALL, TransportError),
        (1, OutcomeUnknownError),
    ),
    "dropped connection": (
        Fault.drop_after_accept(),
        (ALL, TransportError),
        (1, OutcomeUnknownError),
    ),
    "read error": (
        raising(httpx.ReadError, after=True),
        (ALL, TransportError),
        (1, OutcomeUnknownError),
    ),
    "408": (Fault.html_page(408), (ALL, APIError), (1, APIError)),
    "429": (Fault.rate_limit(retry_after=1), (ALL, RateLimitError), (ALL, RateLimitError)),
    "429 past the cap": (
        Fault.rate_limit(retry_after=3600),
        (1, RateLimitError),
        (1, RateLimitError),
    ),
    "500": (Fault.server_error(500), (ALL, ServerError), (1, OutcomeUnknownError)),
    "502 html page": (Fault.html_page(502), (ALL, ServerError), (1, OutcomeUnknownError)),
    "503": (Fault.server_error(503), (ALL, ServerError), (ALL, ServerError)),
    "504": (Fault.server_error(504), (ALL, ServerError), (1, OutcomeUnknownError)),
    "401": (answering(401), (1, AuthenticationError), (1, AuthenticationError)),
    "403": (answering(403), (1, AuthenticationError), (1, AuthenticationError)),
    "400 durum false": (answering(400), (1, APIError), (1, APIError)),
    "200 durum false": (answering(200), (1, APIError), (1, APIError)),
    "303 redirect": (
        answering(303, b"", location="https://vairosms.com/Panel/"),
        (1, APIError),
        (1, OutcomeUnknownError),
    ),
    "200 not json": (answering(200, HTML), (1, UnexpectedResponseError), (1, OutcomeUnknownError)),
    "200 wrong shape": (
        answering(200, {"durum": True, "aciklama": {"x": 1}}),
        (1, UnexpectedResponseError),
        (1, OutcomeUnknownError),
    ),
}


@pytest.fixture
async def fake() -> FakeVairo:
    """An emulator holding one COMPLETED package, `REPORT_ID`; sends get the ids after it."""
    fake = FakeVairo(api_key=API_KEY, first_package_id=REPORT_ID, complete_after_polls=0)
    assert await accept_package(fake) == REPORT_ID
    return fake


def seen(fake: FakeVairo, endpoint: str, outcome: str | None = None) -> int:
    """Requests the emulator saw for `endpoint` after the seeding send."""
    return sum(
        1
        for r in fake.requests[1:]
        if r.endpoint == endpoint and (outcome is None or r.outcome == outcome)
    )


@pytest.fixture
def recorder(fake: FakeVairo) -> Recorder:
    return Recorder(fake)


def make_client(recorder: Recorder, **options: object) -> AsyncVairoClient:
    settings: dict[str, object] = {"max_retries": MAX_RETRIES, "retry_after_max": 60}
    settings.update(options)
    return AsyncVairoClient(
        API_KEY,
        sender="ACME",
        transport=recorder,
        **settings,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", TABLE)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_classification(kind: str, method: str, recorder: Recorder, fake: FakeVairo) -> None:
    failure, get_case, post_case = TABLE[kind]
    attempts, error = get_case if method == "GET" else post_case
    recorder.script(*[failure] * 10)
    async with make_client(recorder) as client:
        call = (
            client.get_report(REPORT_ID) if method == "GET" else client.send("hi", to="5399999999")
        )
        with pytest.raises(error) as info:
            await call
    assert type(info.value) is error
    assert len(recorder.requests) == attempts
    assert {r.method for r in recorder.requests} == {method}
    reached = isinstance(failure, Fault) or (isinstance(failure, Raise) and failure.after)
    endpoint = "report" if method == "GET" else "send"
    assert seen(fake, endpoint) == (attempts if reached else 0)
    assert len(fake.sent_to("5399999999")) <= 2  # the seeded one, and this send at most once
    if error is OutcomeUnknownError:
        assert isinstance(info.value.error, VairoError)  # type: ignore[attr-defined]
        assert info.value.__cause__ is info.value.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_after_the_server_accepted_leaves_the_send_unknown(
    status: int, recorder: Recorder, fake: FakeVairo
) -> None:
    # A proxy or a moved panel answers 3xx after the emulator accepted the package: nothing
    # in that answer proves a refusal, so resending could deliver the SMS twice.
    recorder.script(Reply(status, headers={"location": "https://vairosms.com/Panel/"}, after=True))
    async with make_client(recorder) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.send("hi", to="5399999999")
    assert isinstance(info.value.error, APIError)
    assert info.value.error.status_code == status
    assert len(recorder.requests) == 1
    assert [m.text for m in fake.sent_to("5399999999")] == ["x", "hi"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransportError("x", may_have_reached_server=False), True),
        (TransportError("x", may_have_reached_server=True), True),
        (APIError("x", status_code=408), True),
        (RateLimitError("x", status_code=429), True),
        (ServerError("x", status_code=500), True),
        (ServerError("x", status_code=503), True),
        (APIError("x", status_code=400), False),
        (APIError("x", status_code=200), False),
        (AuthenticationError("x", status_code=401), False),
        (UnexpectedResponseError("x", status_code=200, body=""), False),
    ],
)
def test_is_transient_names_what_a_report_request_retries(
    error: VairoError, expected: bool
) -> None:
    assert is_transient(error) is expected


@pytest.mark.parametrize("kind", ["connect error", "429", "503"])
async def test_post_recovers_after_a_safe_failure(
    kind: str, recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.script(TABLE[kind][0], TABLE[kind][0])
    async with make_client(recorder) as client:
        sub = await client.send("hi", to="5399999999")
    assert sub.package_id == REPORT_ID + 1
    assert len(recorder.requests) == 3
    assert [m.text for m in fake.sent_to("5399999999")] == ["x", "hi"]  # sent once


@pytest.mark.parametrize("kind", ["read timeout", "500", "dropped connection", "429"])
async def test_get_recovers_after_a_transient_failure(
    kind: str, recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.script(TABLE[kind][0])
    async with make_client(recorder) as client:
        report = await client.get_report(REPORT_ID)
    assert report.package_id == REPORT_ID
    assert report.status is PackageStatus.COMPLETED
    assert len(recorder.requests) == 2


async def test_unknown_outcomes_are_retried_only_when_opted_in(
    recorder: Recorder, fake: FakeVairo
) -> None:
    # A 500 before acceptance, then an answer lost after it: the third attempt sends again.
    recorder.script(Fault.server_error(500), raising(httpx.ReadTimeout, after=True))
    async with make_client(recorder, retry_unknown_outcomes=True) as client:
        sub = await client.send("hi", to="5399999999")
    assert sub.package_id == REPORT_ID + 2
    assert len(recorder.requests) == 3
    assert fake.duplicates() == {("5399999999", "hi"): 2}  # the price of opting in


async def test_an_earlier_unknown_attempt_keeps_the_outcome_unknown(
    recorder: Recorder, fake: FakeVairo
) -> None:
    # Opted in: a 500 (maybe sent) and then only connect errors: the SMS may still be out.
    recorder.script(Fault.server_error(500, accepted=True), *[raising(httpx.ConnectError)] * 5)
    async with make_client(recorder, retry_unknown_outcomes=True) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.send("hi", to="5399999999")
    assert isinstance(info.value.error, TransportError)
    assert len(recorder.requests) == ALL
    assert [m.text for m in fake.sent_to("5399999999")] == ["x", "hi"]  # it is out


async def test_max_retries_zero_means_one_attempt(recorder: Recorder, fake: FakeVairo) -> None:
    recorder.script(*[Fault.server_error(503)] * 3)
    async with make_client(recorder, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.send("hi", to="5399999999")
    assert len(recorder.requests) == 1
    assert seen(fake, "send") == 1


async def test_rate_limit_past_the_cap_carries_retry_after(
    recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.script(Fault.rate_limit(retry_after=3600))
    async with make_client(recorder) as client:
        with pytest.raises(RateLimitError) as info:
            await client.send("hi", to="5399999999")
    assert info.value.retry_after == 3600.0
    assert seen(fake, "send", "rate_limited") == 1


async def test_each_retry_is_logged_without_the_url(
    caplog: pytest.LogCaptureFixture, recorder: Recorder
) -> None:
    recorder.script(Fault.server_error(503), raising(httpx.ConnectError))
    with caplog.at_level(logging.INFO, logger="vairo_async"):
        async with make_client(recorder) as client:
            await client.send("hi", to="5399999999")
    retries = [r for r in caplog.records if r.name == "vairo_async"]
    assert len(retries) == 2
    assert all(r.levelno == logging.WARNING for r in retries)
    assert "POST SmsGonder" in retries[0].getMessage()
    assert "ServerError" in retries[0].getMessage()
    assert "retry 1 of 3" in retries[0].getMessage()
    assert "TransportError" in retries[1].getMessage()
    assert all("api_key" not in r.getMessage() for r in retries)


async def test_cancellation_is_neither_retried_nor_swallowed(
    recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.hold()  # every request hangs on its way to the emulator
    async with make_client(recorder) as client:
        for call in (client.send("hi", to="5399999999"), client.get_report(REPORT_ID)):
            task = asyncio.create_task(call)
            await recorder.wait_in_flight(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert recorder.in_flight == 0
    assert [r.method for r in recorder.requests] == ["POST", "GET"]
    assert fake.request_count() == 1  # the seeding send only: nothing reached it


class _RetryLogged(logging.Handler):
    """Sets `event` when the SDK logs a retry: the client is then entering its backoff."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


async def test_cancellation_during_backoff_propagates(recorder: Recorder, fake: FakeVairo) -> None:
    recorder.script(*[Fault.server_error(503)] * 10)
    retried = _RetryLogged()
    logger = logging.getLogger("vairo_async")
    logger.addHandler(retried)
    try:
        async with make_client(recorder, retry_backoff=30.0, retry_backoff_max=30.0) as client:
            with set_testing(False):
                task = asyncio.create_task(client.send("hi", to="5399999999"))
                await retried.event.wait()
                await asyncio.wait([task], timeout=0.05)  # it is in the 30 s backoff
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    finally:
        logger.removeHandler(retried)
    assert len(recorder.requests) == 1
    assert seen(fake, "send", "server_error") == 1


# --- waits ---------------------------------------------------------------------------


def _state(attempt: int, error: BaseException) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    state.outcome = tenacity.Future.construct(attempt, error, True)
    return state


def make_policy(**changes: float) -> RetryPolicy:
    options = {"backoff": 0.5, "backoff_max": 8.0, "retry_after_max": 60.0}
    options.update(changes)
    return RetryPolicy(max_retries=10, retry_unknown_outcomes=False, **options)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = make_policy()
    error = ServerError("x", status_code=503)
    with set_testing(False):
        for attempt, low in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
            waits = {policy._wait(_state(attempt, error)) for _ in range(50)}
            assert all(low <= w <= low + 0.5 for w in waits)
            assert len(waits) > 1  # jitter
        assert all(policy._wait(_state(9, error)) == 8.0 for _ in range(20))


def test_retry_after_overrides_backoff() -> None:
    policy = make_policy()
    error = RateLimitError("x", status_code=429, retry_after=12.5)
    with set_testing(False):
        assert policy._wait(_state(1, error)) == 12.5


def test_testing_mode_zeroes_every_wait() -> None:
    policy = make_policy()
    error = RateLimitError("x", status_code=429, retry_after=12.5)
    assert policy._wait(_state(3, error)) == 0.0
    with set_testing(False):
        assert policy._wait(_state(3, error)) == 12.5
    assert policy._wait(_state(3, error)) == 0.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0", 0.0), (" 2.5 ", 2.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    header = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 28 <= seconds <= 30
    past = email.utils.formatdate(time.time() - 300, usegmt=True)
    assert parse_retry_after(past) == 0.0


async def test_retry_after_as_http_date_is_honoured_by_the_client(
    recorder: Recorder, fake: FakeVairo
) -> None:
    header = email.utils.formatdate(time.time() + 3600, usegmt=True)
    recorder.script(Fault.rate_limit(retry_after=header))
    async with make_client(recorder) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_report(REPORT_ID)
    assert len(recorder.requests) == 1
    assert seen(fake, "report", "rate_limited") == 1
    assert info.value.retry_after is not None
    assert info.value.retry_after > 3500
