"""Waiting for finality: `wait_until_final` and `wait_all` through the emulator.

Most tests run on the real event loop with poll intervals of a few milliseconds; the ones
about the default schedule, Retry-After and concurrency run on a virtual clock
(`vairo_async.testing.run_virtual`), where minutes of intervals pass at once and times are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from tests.support import API_KEY, Recorder, Reply, load_sample
from vairo_async import (
    APIError,
    AsyncVairoClient,
    AuthenticationError,
    ClientClosedError,
    InvalidRequestError,
    PackageExpiredError,
    PackageReport,
    PackageStatus,
    UnexpectedResponseError,
    WaitAllError,
    WaitTimeoutError,
)
from vairo_async._constants import ISTANBUL, POLL_BACKOFF, POLL_JITTER
from vairo_async._poll import expiry_of, poll_delays
from vairo_async.testing import FakeVairo, Fault, run_virtual

# Polls a few milliseconds apart: the real-clock tests take milliseconds, not minutes.
FAST: dict[str, Any] = {"poll_interval": 0.001, "max_poll_interval": 0.004}
UNKNOWN_ID = 999_999
BAD_NUMBER = "5550000000"


@pytest.fixture
def fake() -> FakeVairo:
    return FakeVairo(api_key=API_KEY, complete_after_polls=None)


@pytest.fixture
def recorder(fake: FakeVairo) -> Recorder:
    return Recorder(fake)


@pytest.fixture
async def client(fake: FakeVairo, recorder: Recorder) -> AsyncIterator[AsyncVairoClient]:
    async with AsyncVairoClient(
        API_KEY, sender="ACME", base_url=fake.base_url, transport=recorder
    ) as vairo:
        yield vairo


async def send(
    client: AsyncVairoClient, fake: FakeVairo, polls: int | None, to: str = "5399999999"
) -> int:
    """Send one package that turns final on poll `polls + 1` (None: never)."""
    fake.complete_after_polls = polls
    return (await client.send("Merhaba", to=to)).package_id


async def drain(reports: AsyncIterator[PackageReport], into: list[PackageReport]) -> None:
    """Collect what `reports` yields into `into`, which keeps it if `reports` then raises."""
    async for report in reports:
        into.append(report)


def no_other_tasks() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


def days_ago(days: float) -> Callable[[], datetime]:
    return lambda: datetime.now(ISTANBUL) - timedelta(days=days)


# -- the schedule ---------------------------------------------------------------------------


def test_poll_delays_start_near_first_and_grow_to_the_cap() -> None:
    delays = poll_delays(1.0, 30.0)
    nominal = 1.0
    for _ in range(40):
        delay = next(delays)
        assert nominal * (1 - POLL_JITTER) <= delay <= nominal
        nominal = min(nominal * POLL_BACKOFF, 30.0)
    assert nominal == 30.0


def test_poll_delays_never_exceed_a_cap_below_first() -> None:
    delays = poll_delays(10.0, 2.0)
    assert all(1.6 <= next(delays) <= 2.0 for _ in range(10))


def test_default_schedule_on_a_virtual_clock() -> None:
    """Defaults: first poll within a second, intervals growing 1.5x with jitter to 30 s."""

    async def main() -> tuple[list[float], WaitTimeoutError]:
        loop = asyncio.get_running_loop()
        fake = FakeVairo(api_key=API_KEY, complete_after_polls=None, clock=loop.time)
        recorder = Recorder(fake)
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=fake.base_url, transport=recorder
        ) as client:
            package_id = (await client.send("Merhaba", to="5399999999")).package_id
            start = loop.time()
            with pytest.raises(WaitTimeoutError) as caught:
                await client.wait_until_final(package_id, timeout=600)
            assert loop.time() - start == pytest.approx(600)
            assert fake.packages[package_id].polls == len(recorder.started) - 1
            return [t - start for t in recorder.started[1:]], caught.value

    times, error = run_virtual(main())
    assert 0.8 <= times[0] <= 1.0
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    nominal = 1.0
    for gap in gaps:
        assert nominal * (1 - POLL_JITTER) - 1e-9 <= gap <= nominal + 1e-9
        nominal = min(nominal * POLL_BACKOFF, 30.0)
    assert max(gaps) <= 30.0
    assert 25 <= len(times) <= 35  # about 9 polls to reach the cap, then one per ~27 s
    assert error.last_report is not None
    assert error.last_report.status is PackageStatus.SENDING


# -- wait_until_final -----------------------------------------------------------------------


async def test_completes_after_several_polls(client: AsyncVairoClient, fake: FakeVairo) -> None:
    package_id = await send(client, fake, polls=3)
    report = await client.wait_until_final(package_id, **FAST)
    assert report.status is PackageStatus.COMPLETED
    assert report.package_id == package_id
    assert fake.packages[package_id].polls == 4
    assert fake.request_count("report") == 4


async def test_failed_package_is_returned_with_its_failure(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.fail_destinations = {BAD_NUMBER}
    package_id = await send(client, fake, polls=1, to=BAD_NUMBER)
    report = await client.wait_until_final(package_id, **FAST)
    assert report.status is PackageStatus.FAILED
    assert report.failure is not None
    assert "INVALID_DESTINATION_ADDRESS" in report.failure.message
    assert report.credits == 0
    assert fake.request_count("report") == 2


async def test_never_final_times_out_with_the_last_report(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    package_id = await send(client, fake, polls=None)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.wait_until_final(package_id, timeout=0.05, **FAST)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.package_id == package_id
    assert error.last_report is not None
    assert error.last_report.package_id == package_id
    assert error.last_report.status is PackageStatus.SENDING
    assert fake.request_count("report") >= 2
    assert no_other_tasks()


async def test_timeout_before_the_first_poll_has_no_report(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    package_id = await send(client, fake, polls=0)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.wait_until_final(
            package_id, timeout=0.01, poll_interval=60, max_poll_interval=60
        )
    assert caught.value.last_report is None
    assert "no report" in str(caught.value)
    assert fake.request_count("report") == 0


async def test_unknown_id_is_raised_after_one_poll(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    with pytest.raises(APIError) as caught:
        await client.wait_until_final(UNKNOWN_ID, timeout=10, **FAST)
    assert caught.value.status_code == 404
    assert fake.request_count("report") == 1


@pytest.mark.parametrize("answered", [1101, "1101", 0])
async def test_a_report_of_another_package_ends_the_wait(
    answered: object, client: AsyncVairoClient, recorder: Recorder
) -> None:
    # A cache or proxy in front of the API answers with another package's final report.
    sample = load_sample("report_completed.json")
    sample["aciklama"]["id"] = answered
    recorder.script(Reply(200, json=sample))
    with pytest.raises(UnexpectedResponseError) as info:
        await client.wait_until_final(101, timeout=5, **FAST)
    assert info.value.status_code == 200
    assert "id" in str(info.value)
    assert len(recorder.requests) == 1  # not polled again: a wrong answer is not transient


async def test_transient_poll_failures_do_not_end_the_wait(
    fake: FakeVairo, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    # One retry per poll: each fault below, injected twice, fails one whole poll.
    faults = [
        Fault.server_error(503),
        Fault.html_page(502),
        Fault.drop_before_accept(),
        Fault.rate_limit(retry_after=0),
        Fault.html_page(408),
    ]
    async with AsyncVairoClient(
        API_KEY, sender="ACME", base_url=fake.base_url, transport=recorder, max_retries=1
    ) as client:
        package_id = await send(client, fake, polls=1)
        for fault in faults:
            fake.inject(fault, endpoint="report", times=2)
        with caplog.at_level(logging.WARNING, logger="vairo_async"):
            report = await client.wait_until_final(package_id, **FAST)
    assert report.status is PackageStatus.COMPLETED
    assert fake.pending_faults == 0
    assert fake.packages[package_id].polls == 2
    assert fake.request_count("report") == 2 * len(faults) + 2
    failed_polls = [r for r in caplog.records if r.getMessage().startswith("polling package")]
    assert len(failed_polls) == len(faults)


async def test_unknown_status_is_not_final(fake: FakeVairo, recorder: Recorder) -> None:
    async with AsyncVairoClient(
        API_KEY, sender="ACME", base_url=fake.base_url, transport=recorder
    ) as client:
        package_id = await send(client, fake, polls=0)
        # The first two polls meet a status the API does not document, then the emulator's.
        report = load_sample("report_completed.json")
        created = fake.packages[package_id].created_at
        report["aciklama"].update(
            id=package_id,
            paket_durum=7,
            created_at=f"{created:%Y-%m-%d %H:%M:%S}",
            sonlanma_zamani=f"{created + timedelta(hours=24):%Y-%m-%d %H:%M:%S}",
        )
        recorder.script(Reply(200, json=report), Reply(200, json=report))
        seen: list[PackageStatus] = []
        real_get_report = client.get_report

        async def spying_get_report(package_id: int) -> PackageReport:
            report = await real_get_report(package_id)
            seen.append(report.status)
            return report

        client.get_report = spying_get_report  # type: ignore[method-assign]
        report = await client.wait_until_final(package_id, **FAST)
    assert report.status is PackageStatus.COMPLETED
    assert [status.name for status in seen] == ["UNKNOWN_7", "UNKNOWN_7", "COMPLETED"]
    assert fake.packages[package_id].polls == 1


async def test_long_expired_package_still_sending_is_given_up(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.now = days_ago(2)  # validity 24 h: expired a day ago
    package_id = await send(client, fake, polls=None)
    with pytest.raises(PackageExpiredError) as caught:
        await client.wait_until_final(package_id, timeout=10, **FAST)
    error = caught.value
    assert isinstance(error, WaitTimeoutError)
    assert error.package_id == package_id
    assert error.last_report.status is PackageStatus.SENDING
    assert error.expired_at == error.last_report.expires_at
    assert error.grace == 3600
    assert fake.request_count("report") == 1


async def test_recently_expired_package_is_still_waited_for(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.now = lambda: datetime.now(ISTANBUL) - timedelta(hours=24, minutes=10)
    package_id = await send(client, fake, polls=2)
    report = await client.wait_until_final(package_id, **FAST)
    assert report.status is PackageStatus.COMPLETED
    assert fake.request_count("report") == 3


async def test_expiry_rule_can_be_turned_off(client: AsyncVairoClient, fake: FakeVairo) -> None:
    fake.now = days_ago(2)
    package_id = await send(client, fake, polls=None)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.wait_until_final(package_id, timeout=0.03, expiry_grace=None, **FAST)
    assert not isinstance(caught.value, PackageExpiredError)
    assert fake.request_count("report") >= 2


async def test_expiry_grace_is_configurable(client: AsyncVairoClient, fake: FakeVairo) -> None:
    fake.now = lambda: datetime.now(ISTANBUL) - timedelta(hours=24, minutes=10)
    package_id = await send(client, fake, polls=None)
    with pytest.raises(PackageExpiredError):
        await client.wait_until_final(package_id, expiry_grace=60, **FAST)


def test_scheduled_package_expires_after_its_scheduled_window() -> None:
    sent = datetime(2026, 7, 21, 14, 0, tzinfo=ISTANBUL)
    report = PackageReport(
        package_id=1,
        sender="ACME",
        recipient_count=1,
        credits=1,
        expires_at=sent + timedelta(hours=24),
        scheduled_at=sent + timedelta(days=3),
        validity=timedelta(hours=24),
        status=PackageStatus.SENDING,
        created_at=sent,
    )
    assert expiry_of(report) == sent + timedelta(days=4)
    unscheduled = attrs.evolve(report, scheduled_at=None)
    assert expiry_of(unscheduled) == sent + timedelta(hours=24)


def test_retry_after_longer_than_the_client_honours_delays_the_next_poll() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fake = FakeVairo(api_key=API_KEY, complete_after_polls=0, clock=loop.time)
        recorder = Recorder(fake)
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=fake.base_url, transport=recorder, retry_after_max=5
        ) as client:
            package_id = (await client.send("Merhaba", to="5399999999")).package_id
            fake.inject(Fault.rate_limit(retry_after=45), endpoint="report")
            report = await client.wait_until_final(package_id)
            assert report.status is PackageStatus.COMPLETED
            assert fake.request_count("report", outcome="rate_limited") == 1
        return recorder.started[1:]

    first, second = run_virtual(main())
    assert second - first == pytest.approx(45)


async def test_bad_arguments_are_refused_before_any_poll(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await client.wait_until_final(-1, timeout=-1, poll_interval=0, expiry_grace=float("nan"))
    assert len(caught.value.problems) == 4
    with pytest.raises(InvalidRequestError, match="max_poll_interval"):
        await client.wait_until_final(1, poll_interval=2, max_poll_interval=1)
    with pytest.raises(InvalidRequestError, match="package_id"):
        await client.wait_until_final("7")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as caught:
        await client.wait_until_final(0)
    assert caught.value.problems == ("package_id=0: must be a positive integer",)
    assert fake.request_count() == 0


async def test_closed_client_refuses_to_wait(client: AsyncVairoClient) -> None:
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.wait_until_final(1)
    with pytest.raises(ClientClosedError):
        client.wait_all([1])


# -- wait_all -------------------------------------------------------------------------------


def test_wait_all_over_a_mix() -> None:
    # On a virtual clock: the 0.2 s deadline is exact however busy the machine is.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fake = FakeVairo(api_key=API_KEY, complete_after_polls=None, clock=loop.time)
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=fake.base_url, transport=fake.transport()
        ) as client:
            await mix(client, fake)

    run_virtual(main())


async def mix(client: AsyncVairoClient, fake: FakeVairo) -> None:
    fake.fail_destinations = {BAD_NUMBER}
    completes = await send(client, fake, polls=3)
    fails = await send(client, fake, polls=1, to=BAD_NUMBER)
    never = await send(client, fake, polls=None)
    faulty = await send(client, fake, polls=2)
    fake.now = days_ago(2)
    expired = await send(client, fake, polls=None)
    fake.inject(Fault.server_error(503), endpoint="report", times=8)

    ids = [completes, fails, never, UNKNOWN_ID, faulty, expired, completes]
    reports: list[PackageReport] = []
    with pytest.raises(WaitAllError) as caught:
        await drain(client.wait_all(ids, timeout=0.2, **FAST), reports)

    assert sorted(r.package_id for r in reports) == sorted([completes, fails, faulty])
    by_id = {r.package_id: r for r in reports}
    assert by_id[completes].status is PackageStatus.COMPLETED
    assert by_id[faulty].status is PackageStatus.COMPLETED
    assert by_id[fails].status is PackageStatus.FAILED
    assert by_id[fails].failure is not None
    assert fake.packages[completes].polls == 4  # the duplicate id was polled once

    group = caught.value
    assert set(group.errors) == {never, UNKNOWN_ID, expired}
    assert isinstance(group, ExceptionGroup)
    assert len(group.exceptions) == 3
    timed_out = group.errors[never]
    assert type(timed_out) is WaitTimeoutError
    assert timed_out.last_report is not None
    assert timed_out.last_report.status is PackageStatus.SENDING
    unknown = group.errors[UNKNOWN_ID]
    assert isinstance(unknown, APIError)
    assert unknown.status_code == 404
    assert f"package {UNKNOWN_ID}" in "".join(unknown.__notes__)
    assert isinstance(group.errors[expired], PackageExpiredError)
    assert fake.request_count("report", "not_found") == 1
    assert fake.pending_faults == 0
    assert no_other_tasks()


async def test_wait_all_errors_split_with_except_star(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    done = await send(client, fake, polls=0)
    never = await send(client, fake, polls=None)
    reports = []
    timeouts: list[WaitTimeoutError] = []
    api_errors: list[APIError] = []
    try:
        async for report in client.wait_all([done, never, UNKNOWN_ID], timeout=0.05, **FAST):
            reports.append(report.package_id)
    except* WaitTimeoutError as group:
        timeouts.extend(e for e in group.exceptions if isinstance(e, WaitTimeoutError))
    except* APIError as group:
        api_errors.extend(e for e in group.exceptions if isinstance(e, APIError))
    assert reports == [done]
    assert [e.package_id for e in timeouts] == [never]
    assert [e.status_code for e in api_errors] == [404]


async def test_wait_all_yields_in_order_of_finality(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    slow = await send(client, fake, polls=6)
    quick = await send(client, fake, polls=0)
    middle = await send(client, fake, polls=3)
    order = [report.package_id async for report in client.wait_all([slow, quick, middle], **FAST)]
    assert order == [quick, middle, slow]


async def test_wait_all_duplicates_are_waited_for_once(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    package_id = await send(client, fake, polls=2)
    reports = [r async for r in client.wait_all([package_id] * 5, **FAST)]
    assert [r.package_id for r in reports] == [package_id]
    assert fake.request_count("report") == 3


async def test_wait_all_of_nothing_yields_nothing(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    assert [r async for r in client.wait_all([])] == []
    assert fake.request_count("report") == 0


async def test_wait_all_refuses_bad_ids_and_arguments_at_the_call(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.wait_all([1, "2", -3, True, 4.0, 0])  # type: ignore[list-item]
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "package_ids[1]",
        "package_ids[2]",
        "package_ids[3]",
        "package_ids[4]",
        "package_ids[5]",
    ]
    assert caught.value.problems[4] == "package_ids[5]=0: must be a positive integer"
    for bad in (0, -1, 2.5, None):
        with pytest.raises(InvalidRequestError, match="concurrency"):
            client.wait_all([1], concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="timeout"):
        client.wait_all([1], timeout=float("inf"))
    assert fake.request_count() == 0


def test_wait_all_refused_key_ends_everything_at_once() -> None:
    """A 401 concerns every package: raised as itself at once, not after the others."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        fake = FakeVairo(api_key=API_KEY, clock=loop.time, latency=0.1)
        async with AsyncVairoClient(
            "wrong-key", sender="ACME", base_url=fake.base_url, transport=fake.transport()
        ) as client:
            with pytest.raises(AuthenticationError):
                await drain(client.wait_all(range(1, 21), concurrency=2), [])
            assert no_other_tasks()
        return fake.request_count("report")

    # The two polls in flight when the first 401 came back, at most one more.
    assert run_virtual(main()) <= 3


def test_wait_all_keeps_to_its_concurrency_on_a_virtual_clock() -> None:
    """20 packages polled at once, each request 0.1 s long: never more than 3 in flight."""

    async def main() -> tuple[int, list[int], float]:
        loop = asyncio.get_running_loop()
        fake = FakeVairo(api_key=API_KEY, complete_after_polls=2, clock=loop.time, latency=0.1)
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=fake.base_url, transport=fake.transport()
        ) as client:
            ids = [(await client.send("Merhaba", to="5399999999")).package_id for _ in range(20)]
            start = loop.time()
            finals = [r.package_id async for r in client.wait_all(ids, concurrency=3)]
            assert fake.request_count("report") == 60
            return fake.peak_concurrency("report"), sorted(finals), loop.time() - start

    max_in_flight, finals, elapsed = run_virtual(main())
    assert max_in_flight == 3
    assert finals == list(range(1, 21))
    # 60 polls of 0.1 s, three at a time, cannot take less than 2 s.
    assert elapsed >= 2.0


async def test_wait_logs_and_errors_keep_the_key_out(
    client: AsyncVairoClient, fake: FakeVairo, caplog: pytest.LogCaptureFixture
) -> None:
    never = await send(client, fake, polls=None)
    fake.inject(Fault.drop_before_accept(), endpoint="report", times=4)
    fake.inject(Fault.server_error(503), endpoint="report", times=4)
    with caplog.at_level(logging.DEBUG), pytest.raises(WaitAllError) as caught:
        await drain(client.wait_all([never, UNKNOWN_ID], timeout=0.05, **FAST), [])
    assert fake.pending_faults == 0
    assert "polling package" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in "".join(traceback.format_exception(caught.value))


# -- cancellation ---------------------------------------------------------------------------


async def test_cancelling_wait_until_final_stops_its_poll(
    client: AsyncVairoClient, fake: FakeVairo, recorder: Recorder
) -> None:
    package_id = await send(client, fake, polls=None)
    recorder.hold()
    task = asyncio.create_task(client.wait_until_final(package_id, **FAST))
    await recorder.wait_in_flight(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.in_flight == 0
    assert fake.request_count("report") == 0
    assert no_other_tasks()


async def test_cancelling_the_consumer_of_wait_all_stops_every_poll(
    client: AsyncVairoClient, fake: FakeVairo, recorder: Recorder
) -> None:
    ids = [await send(client, fake, polls=None) for _ in range(10)]
    recorder.hold()
    sent_before = len(recorder.requests)

    async def consume() -> None:
        async for _ in client.wait_all(ids, concurrency=3, **FAST):
            pass

    task = asyncio.create_task(consume())
    await recorder.wait_in_flight(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(recorder.requests) - sent_before == 3
    assert recorder.in_flight == 0
    assert fake.request_count("report") == 0
    assert no_other_tasks()


async def test_caller_timeout_around_wait_all_leaves_nothing_behind(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    ids = [await send(client, fake, polls=None) for _ in range(5)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(drain(client.wait_all(ids, **FAST), []), timeout=0.03)
    assert no_other_tasks()


async def test_leaving_wait_all_early_inside_aclosing_stops_every_poll(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    quick = await send(client, fake, polls=0)
    others = [await send(client, fake, polls=None) for _ in range(5)]
    async with contextlib.aclosing(client.wait_all([quick, *others], **FAST)) as reports:
        async for report in reports:
            assert report.package_id == quick
            break
    assert no_other_tasks()


async def test_leaving_wait_all_early_without_aclosing_stops_on_the_next_loop_turns(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    quick = await send(client, fake, polls=0)
    others = [await send(client, fake, polls=None) for _ in range(5)]
    async for report in client.wait_all([quick, *others], **FAST):
        assert report.package_id == quick
        break
    # CPython finalises the abandoned generator at once; the loop closes it on its next turns.
    for _ in range(10):
        if no_other_tasks():
            break
        await asyncio.sleep(0)
    assert no_other_tasks()


# -- over a real socket ---------------------------------------------------------------------


async def test_waits_over_the_loopback_server() -> None:
    fake = FakeVairo(api_key=API_KEY, complete_after_polls=None, fail_destinations={BAD_NUMBER})
    async with (
        fake.serve() as base_url,
        AsyncVairoClient(API_KEY, sender="ACME", base_url=base_url) as client,
    ):
        completes = await send(client, fake, polls=2)
        fails = await send(client, fake, polls=0, to=BAD_NUMBER)
        report = await client.wait_until_final(completes, **FAST)
        assert report.status is PackageStatus.COMPLETED
        assert fake.packages[completes].polls == 3

        fake.inject(Fault.drop_before_accept(), endpoint="report", times=4)
        again = await send(client, fake, polls=1)
        finals: list[PackageReport] = []
        with pytest.raises(WaitAllError) as caught:
            await drain(client.wait_all([fails, again, UNKNOWN_ID], **FAST), finals)
        assert {r.package_id: r.status for r in finals} == {
            fails: PackageStatus.FAILED,
            again: PackageStatus.COMPLETED,
        }
        assert list(caught.value.errors) == [UNKNOWN_ID]
        assert fake.pending_faults == 0


async def test_wait_all_concurrency_beyond_the_pool_is_refused() -> None:
    from vairo_async import AsyncVairoClient, InvalidRequestError

    async with AsyncVairoClient("key", max_connections=5) as client:
        with pytest.raises(InvalidRequestError, match="max_connections=5"):
            client.wait_all([1, 2], concurrency=6)
