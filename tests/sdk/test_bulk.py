"""Bulk campaigns: batching, tr_char groups, bad rows, states, laziness, limits, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support import API_KEY, Raise, Recorder, Reply
from vairo_async import (
    AsyncVairoClient,
    BatchOutcome,
    BatchState,
    BulkInputError,
    BulkProgress,
    BulkResult,
    InvalidRequestError,
    Message,
    OutcomeUnknownError,
    ProgressHook,
    TransportError,
    VairoError,
)
from vairo_async._bulk import Campaign
from vairo_async.testing import FakeVairo, Fault


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"53{i:08d}" for i in range(start, start + count)]


@pytest.fixture
def recorder(fake: FakeVairo) -> Recorder:
    return Recorder(fake)


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[AsyncVairoClient]:
    async with AsyncVairoClient(recorder.fake.api_key, sender="ACME", transport=recorder) as client:
        yield client


def assert_accounted(result: BulkResult, total: int) -> None:
    assert result.sent + result.failed + result.unknown + result.rejected == result.total == total


async def test_batches_respect_batch_size(client: AsyncVairoClient, fake: FakeVairo) -> None:
    rows = [Message(to=n, text=f"hi {i}") for i, n in enumerate(numbers(25))]
    result = await client.send_bulk(rows, batch_size=10)
    assert sorted(len(p.messages) for p in fake.packages.values()) == [5, 10, 10]
    assert result.sent == 25
    assert sorted(result.package_ids) == [1, 2, 3]
    sent = [m for o in result.outcomes for m in o.messages]
    assert sorted(m.to for m in sent) == numbers(25)
    assert sorted(o.index for o in result.outcomes) == [0, 1, 2]
    assert_accounted(result, 25)


async def test_turkish_and_plain_texts_go_in_separate_batches(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    texts = ["Merhaba", "Şifreniz 1234", "Çok güzel", "ılık su", "plain", "ğ"]
    rows = [Message(to=n, text=texts[i % len(texts)]) for i, n in enumerate(numbers(60))]
    result = await client.send_bulk(rows, batch_size=7)
    assert result.sent == 60
    assert len(fake.packages) == 10
    for package in fake.packages.values():
        needs = {any(ch in m.text for ch in "şŞğĞıİç") for m in package.messages}
        assert len(needs) == 1
        assert bool(package.tr_char) is needs.pop()
    assert {bool(package.tr_char) for package in fake.packages.values()} == {True, False}


async def test_bad_rows_are_rejected_and_the_rest_goes_out(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    rows = [
        Message(to="0539 000 00 01", text="ok 1"),
        Message(to="123", text="bad number"),
        Message(to="5390000002", text=""),
        Message(to="+90 539 000 00 03", text="ok 3"),
        Message(to="5390000004", text="Şimdi"),
        Message(to="nope", text="Şimdi değil"),
    ]
    result = await client.send_bulk(rows, batch_size=10)
    assert result.sent == 3
    assert result.rejected == 3
    assert_accounted(result, 6)
    reasons = {r.message.to: r.reason for r in result.rejections}
    assert "not a Turkish mobile number" in reasons["123"]
    assert "empty text" in reasons["5390000002"]
    assert [r.message for r in result.rejections if r.message.to == "nope"] == [rows[5]]
    # Each rejection sits in the outcome of the batch it would have joined.
    for outcome in result.outcomes:
        turkish = outcome.messages[0].text == "Şimdi"
        for rejection in outcome.rejected:
            assert (rejection.message.text == "Şimdi değil") is turkish
    sent = sorted(m.dest for m in fake.messages)
    assert sent == ["5390000001", "5390000003", "5390000004"]


async def test_a_batch_of_only_bad_rows_is_failed_and_never_sent(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    rows = [Message(to="1", text="a"), Message(to="2", text="b")]
    result = await client.send_bulk(rows)
    assert recorder.requests == []
    assert fake.requests == ()
    (outcome,) = result.outcomes
    assert outcome.state is BatchState.FAILED
    assert outcome.messages == ()
    assert isinstance(outcome.error, InvalidRequestError)
    assert result.rejected == 2
    assert_accounted(result, 2)


async def test_batch_states_follow_the_retry_policy(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.html_page(400))  # refused: certainly not sent
    fake.inject(Fault.server_error(500, accepted=True))  # accepted, then a 500
    rows = [Message(to=n, text="x") for n in numbers(12)]
    result = await client.send_bulk(rows, batch_size=4, concurrency=1)
    states = {o.index: o.state for o in result.outcomes}
    assert states == {0: BatchState.FAILED, 1: BatchState.UNKNOWN, 2: BatchState.SENT}
    by_index = {o.index: o for o in result.outcomes}
    assert isinstance(by_index[1].error, OutcomeUnknownError)
    assert by_index[2].package_id == 2
    assert by_index[0].package_id is None
    assert fake.request_count(endpoint="send") == 3  # nothing sent twice
    assert fake.duplicates() == {}
    assert [m.dest for m in fake.packages[1].messages] == [m.to for m in by_index[1].messages]
    assert result.failed == result.unknown == result.sent == 4
    assert result.failed_messages == list(by_index[0].messages)
    assert result.unknown_messages == list(by_index[1].messages)
    assert_accounted(result, 12)


@pytest.mark.parametrize(
    "answer",
    [
        Reply(303, headers={"location": "https://vairosms.com/Panel/"}, after=True),
        Reply(200, json={"durum": True, "aciklama": -5}, after=True),
        Reply(200, json={"durum": True, "aciklama": "0"}, after=True),
    ],
    ids=["303", "negative id", "zero id"],
)
async def test_an_answer_that_proves_no_refusal_leaves_its_batch_unknown(
    answer: Reply, client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.script(None, answer)
    rows = [Message(to=n, text="x") for n in numbers(6)]
    result = await client.send_bulk(rows, batch_size=3, concurrency=1)
    by_index = {o.index: o for o in result.outcomes}
    assert by_index[0].state is BatchState.SENT
    assert by_index[1].state is BatchState.UNKNOWN  # the emulator did accept it: not "safe"
    assert isinstance(by_index[1].error, OutcomeUnknownError)
    assert by_index[1].package_id is None
    assert result.package_ids == [1]
    assert fake.request_count(endpoint="send") == 2
    assert_accounted(result, 6)


async def test_unreachable_server_fails_every_batch_without_raising(
    recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.script(*[Raise(httpx.ConnectError)] * 6)  # three batches, two attempts each
    async with AsyncVairoClient(
        fake.api_key, sender="ACME", transport=recorder, max_retries=1
    ) as client:
        result = await client.send_bulk([Message(to=n, text="x") for n in numbers(9)], batch_size=4)
    assert len(recorder.requests) == 6
    assert fake.requests == ()
    assert result.failed == 9
    assert all(isinstance(o.error, TransportError) for o in result.outcomes)
    assert_accounted(result, 9)


async def test_input_is_consumed_lazily(client: AsyncVairoClient) -> None:
    pulled = 0

    def rows() -> Iterator[Message]:
        nonlocal pulled
        for number in numbers(100_000):
            pulled += 1
            yield Message(to=number, text="x")

    outcomes = client.iter_bulk(rows(), batch_size=100, concurrency=2)
    first = await anext(outcomes)
    assert first.state is BatchState.SENT
    assert pulled <= 100 * 6  # two in flight, two queued, two forming at most
    await outcomes.aclose()


async def test_async_iterable_input(client: AsyncVairoClient, fake: FakeVairo) -> None:
    async def rows() -> AsyncIterator[Message]:
        for number in numbers(30):
            await asyncio.sleep(0)
            yield Message(to=number, text="x")

    result = await client.send_bulk(rows(), batch_size=8)
    assert result.sent == 30
    assert len(fake.packages) == 4


async def test_concurrency_limit_is_observed(client: AsyncVairoClient, fake: FakeVairo) -> None:
    fake.latency = 0.002  # requests overlap in the emulator, as over a network
    rows = [Message(to=n, text="x") for n in numbers(200)]
    result = await client.send_bulk(rows, batch_size=10, concurrency=3)
    assert fake.peak_concurrency("send") == 3
    assert result.sent == 200


async def test_rate_limit_spaces_the_calls(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    rows = [Message(to=n, text="x") for n in numbers(5)]
    await client.send_bulk(rows, batch_size=1, concurrency=5, rate=40)
    gaps = [b - a for a, b in zip(recorder.started, recorder.started[1:], strict=False)]
    assert len(recorder.started) == 5
    assert fake.request_count(endpoint="send", outcome="accepted") == 5
    assert all(gap >= 0.9 / 40 for gap in gaps)


async def test_progress_hook_counts_every_row(client: AsyncVairoClient, recorder: Recorder) -> None:
    recorder.script(None, *[Fault.server_error(503)] * 4)
    seen: list[BulkProgress] = []
    rows = [Message(to=n, text="x") for n in numbers(10)] + [Message(to="1", text="x")]
    result = await client.send_bulk(rows, batch_size=4, concurrency=1, on_progress=seen.append)
    assert [p.batches for p in seen] == [1, 2, 3]
    assert [p.outcome for p in seen] == sorted(result.outcomes, key=lambda o: o.index)
    last = seen[-1]
    # Batch 1 (four rows) met 503 on all four attempts; batch 2 held two rows and a bad one.
    assert (last.sent, last.failed, last.unknown, last.rejected) == (6, 4, 0, 1)
    assert last.total == 11


async def test_a_failing_progress_hook_does_not_stop_the_campaign(
    client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(progress: BulkProgress) -> None:
        raise RuntimeError("progress bar broke")

    result = await client.send_bulk(
        [Message(to=n, text="x") for n in numbers(6)], batch_size=2, on_progress=broken
    )
    assert result.sent == 6
    assert "on_progress raised" in caplog.text


async def test_failing_input_sends_what_was_read_then_raises(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    def rows() -> Iterator[Message]:
        yield from (Message(to=n, text="x") for n in numbers(7))
        raise OSError("disk gone")

    seen: list[BatchOutcome] = []

    async def consume() -> None:
        async for outcome in client.iter_bulk(rows(), batch_size=3):
            seen.append(outcome)

    with pytest.raises(OSError, match="disk gone"):
        await consume()
    assert sum(len(o.messages) for o in seen) == 7
    assert all(o.state is BatchState.SENT for o in seen)
    assert len(fake.packages) == 3
    assert len(fake.messages) == 7


async def test_a_row_that_is_not_a_message_stops_the_campaign_keeping_its_ids(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    rows: list[object] = [Message(to="5390000001", text="x"), ("5390000002", "y")]
    with pytest.raises(BulkInputError) as info:
        await client.send_bulk(rows, batch_size=1)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, TypeError)
    assert "tuple" in str(info.value.__cause__)
    result = info.value.result
    assert result.package_ids == [1]
    assert (result.sent, result.total) == (1, 1)
    assert list(fake.packages) == [1]

    async def consume() -> None:
        async for _ in client.iter_bulk(rows):  # type: ignore[arg-type]
            pass

    with pytest.raises(TypeError, match="tuple"):
        await consume()


async def test_an_input_raising_cancelled_error_does_not_hang_the_campaign(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    async def rows() -> AsyncIterator[Message]:
        for number in numbers(5):
            yield Message(to=number, text="x")
        raise asyncio.CancelledError  # not a cancellation of the campaign: a broken input

    with pytest.raises(BulkInputError) as info:
        await client.send_bulk(rows(), batch_size=2)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert info.value.result.sent == info.value.result.total == 5
    assert len(fake.messages) == 5


async def test_totals_count_the_rows_read(client: AsyncVairoClient) -> None:
    seen: list[BulkProgress] = []
    rows = [Message(to=n, text="x") for n in numbers(23)] + [Message(to="1", text="x")]
    result = await client.send_bulk(rows, batch_size=5, on_progress=seen.append)
    assert result.total == 24
    assert seen[-1].read == 24
    assert [p.read >= p.total for p in seen] == [True] * len(seen)
    assert_accounted(result, 24)


async def test_rate_limit_covers_retries(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    fake.inject(Fault.server_error(503), times=2)
    await client.send_bulk([Message(to="5390000001", text="x")], rate=40)
    assert len(recorder.started) == 3
    assert fake.request_count(endpoint="send", outcome="server_error") == 2
    gaps = [b - a for a, b in zip(recorder.started, recorder.started[1:], strict=False)]
    assert all(gap >= 0.9 / 40 for gap in gaps)


async def test_leaving_early_logs_the_ids_of_sent_batches_not_yet_yielded(
    client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    all_settled = asyncio.Event()

    def progress(p: BulkProgress) -> None:
        if p.batches == 3:
            all_settled.set()

    rows = [Message(to=n, text="x") for n in numbers(30)]
    outcomes = client.iter_bulk(rows, batch_size=10, concurrency=3, on_progress=progress)
    first = await anext(outcomes)
    await all_settled.wait()
    await outcomes.aclose()
    untaken = {1, 2, 3} - {first.package_id}
    assert "stopped before yielding 2 sent batches" in caplog.text
    logged = caplog.text.split("their package ids: ")[1].split()[0:2]
    assert {int(i.strip(",")) for i in logged} == untaken


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"sender": ""}, "empty sender"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"concurrency": -1}, "concurrency=-1"),
        ({"rate": 0}, "rate=0"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
    ],
)
async def test_bad_campaign_settings_raise_before_reading(
    client: AsyncVairoClient, options: dict[str, object], fragment: str
) -> None:
    def rows() -> Iterator[Message]:
        raise AssertionError("input must not be read")
        yield  # pragma: no cover

    with pytest.raises(InvalidRequestError, match=fragment):
        client.iter_bulk(rows(), **options)  # type: ignore[arg-type]


async def test_cancellation_reports_in_flight_batches_as_unknown(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    recorder.hold()  # every request hangs on its way to the emulator
    pulled = 0

    def rows() -> Iterator[Message]:
        nonlocal pulled
        for number in numbers(1000):
            pulled += 1
            yield Message(to=number, text="x")

    seen: list[BulkProgress] = []
    task = asyncio.create_task(
        client.send_bulk(rows(), batch_size=10, concurrency=2, on_progress=seen.append)
    )
    await recorder.wait_in_flight(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    states = [p.outcome.state for p in seen]
    assert states.count(BatchState.UNKNOWN) == 2
    assert all(
        isinstance(p.outcome.error, OutcomeUnknownError)
        for p in seen
        if p.outcome.state is BatchState.UNKNOWN
    )
    assert seen[-1].total == pulled  # every row read is accounted for
    assert pulled < 1000
    assert fake.requests == ()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_breaking_out_of_iter_bulk_stops_the_campaign(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    seen: list[BulkProgress] = []
    rows = (Message(to=n, text="x") for n in numbers(10_000))
    outcomes = client.iter_bulk(rows, batch_size=10, concurrency=2, on_progress=seen.append)
    async for _ in outcomes:
        break
    await outcomes.aclose()
    assert len(fake.packages) < 100
    assert seen[-1].total == seen[-1].sent + seen[-1].failed + seen[-1].unknown
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_credits_are_estimated_without_a_second_pass(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.html_page(400))
    texts = ["a" * 161, "Şifre", "😀" * 36, "kısa"]  # 2, 1, 2 and 1 credits
    passes = 0

    def rows() -> Iterator[Message]:
        nonlocal passes
        passes += 1
        for i, number in enumerate(numbers(8)):
            yield Message(to=number, text=texts[i % 4])

    seen: list[BulkProgress] = []
    result = await client.send_bulk(rows(), batch_size=2, concurrency=1, on_progress=seen.append)
    assert passes == 1
    credits = {o.index: o.estimated_credits for o in result.outcomes}
    # Plain group: "a"*161 and the emoji text; Turkish group: "Şifre" and "kısa".
    assert sorted(credits.values()) == [2, 2, 4, 4]
    failed = next(o for o in result.outcomes if o.state is BatchState.FAILED)
    assert result.estimated_credits == 12 - failed.estimated_credits
    assert seen[-1].estimated_credits == result.estimated_credits


async def test_concurrency_beyond_the_pool_is_refused() -> None:
    async with AsyncVairoClient(API_KEY, sender="ACME", max_connections=4) as client:
        with pytest.raises(InvalidRequestError, match="max_connections=4"):
            client.iter_bulk([], concurrency=5)
        with pytest.raises(InvalidRequestError, match="concurrency='x'"):
            client.iter_bulk([], concurrency="x")  # type: ignore[arg-type]


async def test_outcomes_hold_the_callers_own_rows(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    rows = [Message(to="+90 539 000 00 01", text="a"), Message(to="0539 000 00 02", text="b")]
    (outcome,) = (await client.send_bulk(rows)).outcomes
    assert all(sent is given for sent, given in zip(outcome.messages, rows, strict=True))
    assert [m.dest for m in fake.packages[1].messages] == ["5390000001", "5390000002"]


async def test_refs_come_back_on_the_callers_own_rows_and_are_never_sent(
    client: AsyncVairoClient, recorder: Recorder
) -> None:
    refs: list[object] = [{"customer": 7}, ["row", 2], "c-3", 4]
    rows = [
        Message(to="+90 539 000 00 01", text="Merhaba Ayşe", ref=refs[0]),
        Message(to="123", text="bad number", ref=refs[1]),
        Message(to="5390000003", text="plain", ref=refs[2]),
        Message(to="0539 000 00 04", text="Şimdi", ref=refs[3]),
    ]

    result = await client.send_bulk(rows, batch_size=10)

    handed_back = [m for o in result.outcomes for m in o.messages]
    handed_back += [r.message for r in result.rejections]
    assert sorted(map(id, handed_back)) == sorted(map(id, rows))
    assert {id(m): m.ref for m in handed_back} == {id(m): m.ref for m in rows}
    for body in recorder.bodies:
        for message in body["mesajlar"]:
            assert set(message) == {"msg", "dest"}
    # A ref is the caller's, not part of the SMS: equality and hashing ignore it, so an
    # unhashable ref is fine.
    assert rows[0] == Message(to="+90 539 000 00 01", text="Merhaba Ayşe", ref="other")
    assert len({rows[0], rows[2]}) == 2
    assert "ref={'customer': 7}" in repr(rows[0])


async def test_excluded_numbers_in_any_spelling_are_rejected_and_never_sent(
    client: AsyncVairoClient, recorder: Recorder
) -> None:
    rows = [
        Message(to="0539 000 00 01", text="a"),
        Message(to="5390000002", text="b"),
        Message(to="+90 539 000 00 03", text="Şu"),
        Message(to="123", text="bad"),
    ]
    optout = ["+90 (539) 000 00 01", "05390000003", "5559999999"]

    result = await client.send_bulk(rows, exclude=optout)

    assert result.sent == 1
    assert result.rejected == 3
    reasons = {r.message.to: r.reason for r in result.rejections}
    assert reasons["0539 000 00 01"] == "to='0539 000 00 01': excluded"
    assert reasons["+90 539 000 00 03"] == "to='+90 539 000 00 03': excluded"
    assert "not a Turkish mobile number" in reasons["123"]
    sent = [m["dest"] for b in recorder.bodies for m in b["mesajlar"]]
    assert sent == ["5390000002"]
    assert_accounted(result, 4)
    streamed = [o async for o in client.iter_bulk(rows[:1], exclude={"5390000001"})]
    assert [r.reason for o in streamed for r in o.rejected] == ["to='0539 000 00 01': excluded"]
    assert len(recorder.bodies) == 1


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        (["5390000001", "0212 555 12 34", "x"], ["'0212 555 12 34'", "'x'"]),
        ("5390000001", ["exclude='5390000001': must be a collection of numbers"]),
    ],
)
async def test_a_bad_exclusion_list_raises_before_reading(
    client: AsyncVairoClient, recorder: Recorder, exclude: object, expected: list[str]
) -> None:
    read = []

    def rows() -> Iterator[Message]:
        read.append(1)
        yield Message(to="5390000001", text="a")

    with pytest.raises(InvalidRequestError) as error:
        await client.send_bulk(rows(), exclude=exclude)  # type: ignore[arg-type]

    for part in expected:
        assert part in str(error.value)
    assert read == []
    assert recorder.bodies == []


@pytest.mark.parametrize("error", [RuntimeError, KeyError])
async def test_a_foreign_exception_leaves_its_batch_unknown(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo, error: type[Exception]
) -> None:
    # A transport of the caller's raises something no httpx transport should, after the
    # emulator accepted the batch: the SDK cannot know the batch's fate.
    recorder.script(None, Raise(error, after=True))
    rows = [Message(to=n, text="x") for n in numbers(9)]
    result = await client.send_bulk(rows, batch_size=3, concurrency=1)

    by_index = {o.index: o for o in result.outcomes}
    states = {i: o.state for i, o in by_index.items()}
    assert states == {0: BatchState.SENT, 1: BatchState.UNKNOWN, 2: BatchState.SENT}
    unknown = by_index[1]
    assert isinstance(unknown.error, OutcomeUnknownError)
    assert isinstance(unknown.error.error, VairoError)
    assert isinstance(unknown.error.error.__cause__, error)
    assert f"unexpected {error.__name__}" in str(unknown.error)
    assert unknown.package_id is None
    assert result.unknown_messages == list(unknown.messages)
    assert (result.sent, result.failed, result.unknown, result.rejected) == (6, 0, 3, 0)
    assert_accounted(result, 9)
    # The emulator did accept it, once: it was neither retried nor counted as failed.
    assert fake.request_count(endpoint="send") == 3
    assert [m.dest for m in fake.packages[2].messages] == [m.to for m in unknown.messages]
    assert fake.duplicates() == {}


class SlowToClose(httpx.AsyncBaseTransport):
    """Answers the first `answered` requests through `inner`, and holds the others forever.

    A held request that is cancelled takes until `closed` is set to finish, as a connection
    being torn down does; `closing` is set when the first one starts to.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, answered: int) -> None:
        self._inner = inner
        self._answered = answered
        self.held = 0
        self.holding = asyncio.Condition()
        self.closing = asyncio.Event()
        self.closed = asyncio.Event()

    async def wait_holding(self, count: int) -> None:
        async with self.holding:
            await self.holding.wait_for(lambda: self.held >= count)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._answered:
            self._answered -= 1
            return await self._inner.handle_async_request(request)
        async with self.holding:
            self.held += 1
            self.holding.notify_all()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.closing.set()
            await self.closed.wait()
            raise
        raise AssertionError("a held request was answered")


def hook_of(kind: str, seen: list[BulkProgress]) -> ProgressHook:
    """A progress hook appending to `seen`: a plain function, or a coroutine function."""
    if kind == "sync":
        return seen.append

    async def record(progress: BulkProgress) -> None:
        await asyncio.sleep(0)  # a hook that awaits, as one writing to a database does
        seen.append(progress)

    return record


@pytest.mark.parametrize("hook", ["sync", "async"])
@pytest.mark.parametrize("again", [1, 3])
async def test_a_campaign_cancelled_again_while_stopping_settles_every_batch(
    hook: str, again: int, fake: FakeVairo
) -> None:
    # A timeout and a task-group abort at once, or an anyio scope redelivering its
    # cancellation: the task is cancelled again while the campaign is stopping.
    transport = SlowToClose(fake.transport(), answered=1)
    seen: list[BulkProgress] = []
    rows = [Message(to=n, text="x") for n in numbers(30)]
    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=transport) as client:
        task = asyncio.create_task(
            client.send_bulk(rows, batch_size=10, concurrency=2, on_progress=hook_of(hook, seen))
        )
        await transport.wait_holding(2)  # batch 0 sent; batches 1 and 2 in flight
        task.cancel()
        await transport.closing.wait()  # the campaign is stopping, its requests closing
        for _ in range(again):
            task.cancel()
        transport.closed.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    states = sorted((p.outcome.index, p.outcome.state) for p in seen)
    assert states == [(0, BatchState.SENT), (1, BatchState.UNKNOWN), (2, BatchState.UNKNOWN)]
    assert seen[-1].total == seen[-1].read == 30
    assert [p.outcome.package_id for p in seen if p.outcome.package_id] == [1]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_cancellation_while_stopping_still_logs_the_ids_not_yet_taken(
    fake: FakeVairo, caplog: pytest.LogCaptureFixture
) -> None:
    transport = SlowToClose(fake.transport(), answered=2)
    rows = [Message(to=n, text="x") for n in numbers(30)]
    two_settled = asyncio.Event()

    def progress(p: BulkProgress) -> None:
        if p.batches == 2:
            two_settled.set()

    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=transport) as client:
        outcomes = client.iter_bulk(rows, batch_size=10, concurrency=3, on_progress=progress)

        async def take_one() -> None:
            await anext(outcomes)
            await two_settled.wait()  # one sent batch taken, the other not
            await transport.wait_holding(1)  # and the third in flight
            await outcomes.aclose()

        task = asyncio.create_task(take_one())
        await transport.closing.wait()
        task.cancel()
        transport.closed.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "stopped before yielding 1 sent batches; their package ids: " in caplog.text
    assert caplog.text.split("their package ids: ")[1].split()[0] in {"1", "2"}


class CountsAnswers(Recorder):
    """A `Recorder` whose `answered` is set once `count` requests have been answered."""

    def __init__(self, fake: FakeVairo, count: int) -> None:
        super().__init__(fake)
        self._left = count
        self.answered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self._left -= 1
        if self._left <= 0:
            self.answered.set()
        return response


async def test_an_async_progress_hook_is_awaited_in_settle_order(fake: FakeVairo) -> None:
    recorder = CountsAnswers(fake, 3)
    seen: list[BulkProgress] = []
    running = overlaps = 0
    others_answered = False
    requests_at_first_return = 0

    async def store(progress: BulkProgress) -> None:
        nonlocal running, overlaps, others_answered, requests_at_first_return
        overlaps += running
        running += 1
        if not seen:  # a slow first call: the other batches in flight are answered meanwhile
            try:
                async with asyncio.timeout(5):
                    await recorder.answered.wait()
                others_answered = True
            except TimeoutError:
                pass
            requests_at_first_return = len(recorder.requests)
        seen.append(progress)
        running -= 1

    rows = [Message(to=n, text="x") for n in numbers(10)]
    taken = []
    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=recorder) as client:
        outcomes = client.iter_bulk(rows, batch_size=1, concurrency=3, on_progress=store)
        async for outcome in outcomes:
            assert outcome in [p.outcome for p in seen]  # the hook has seen it first
            taken.append(outcome)
    assert overlaps == 0  # one call at a time
    assert others_answered
    # Three slots: while the first call ran, no fourth batch was sent.
    assert requests_at_first_return == 3
    assert [p.batches for p in seen] == list(range(1, 11))
    assert [p.outcome for p in seen] == taken
    assert sorted(p.outcome.package_id or 0 for p in seen) == list(range(1, 11))
    assert seen[-1].sent == seen[-1].total == 10


async def test_an_async_progress_hook_that_raises_is_logged_and_the_campaign_goes_on(
    client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def broken(progress: BulkProgress) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("database is down")

    rows = [Message(to=n, text="x") for n in numbers(6)]
    result = await client.send_bulk(rows, batch_size=2, on_progress=broken)
    assert result.sent == 6
    assert calls == 3
    assert caplog.text.count("on_progress raised") == 3
    assert "database is down" in caplog.text


async def test_an_async_progress_hook_cancelled_on_its_own_is_logged(
    client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def cancelled(progress: BulkProgress) -> None:
        raise asyncio.CancelledError  # what awaiting a future cancelled elsewhere raises

    rows = [Message(to=n, text="x") for n in numbers(4)]
    result = await client.send_bulk(rows, batch_size=2, on_progress=cancelled)
    assert result.sent == 4
    assert caplog.text.count("on_progress raised") == 2


async def test_an_async_progress_hook_hears_of_the_batches_settled_on_cancellation(
    client: AsyncVairoClient, recorder: Recorder
) -> None:
    recorder.hold()
    seen: list[BulkProgress] = []
    rows = [Message(to=n, text="x") for n in numbers(100)]
    task = asyncio.create_task(
        client.send_bulk(rows, batch_size=10, concurrency=2, on_progress=hook_of("async", seen))
    )
    await recorder.wait_in_flight(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [p.outcome.state for p in seen].count(BatchState.UNKNOWN) == 2
    assert seen[-1].total == seen[-1].read
    assert asyncio.all_tasks() == {asyncio.current_task()}


class HungHook:
    """An `on_progress` whose first call never returns; `swallow` says what it does with a
    cancellation: "no" lets it through, "return" swallows it and returns, "stall" swallows
    it and hangs again until `release` is set."""

    def __init__(self, swallow: str) -> None:
        self.swallow = swallow
        self.calls: list[BulkProgress] = []
        self.heard = [asyncio.Event(), asyncio.Event()]
        self.started = 0
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = asyncio.Event()

    def __call__(self, progress: BulkProgress) -> object:
        # A plain function returning the awaitable: it runs the moment a batch settles, so
        # the test knows when the batches settled on cancellation have been settled.
        self.calls.append(progress)
        self.heard[len(self.calls) - 1].set()
        return self.hang()

    async def hang(self) -> None:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            if self.swallow == "no":
                raise
            if self.swallow == "stall":
                await self.release.wait()
                self.finished.set()


async def _cancel_while_hooks_hang(
    client: AsyncVairoClient, hook: HungHook
) -> asyncio.Task[BulkResult]:
    """Start a campaign whose first hook call hangs, cancel it, and return once its stop is
    waiting for the hook calls (the third row, still forming, settled FAILED meanwhile)."""
    read_three = asyncio.Event()

    async def rows() -> AsyncIterator[Message]:
        for number in numbers(3):
            yield Message(to=number, text="x")
        read_three.set()
        await asyncio.Event().wait()  # an input that stalls: the third row keeps forming

    task = asyncio.create_task(client.send_bulk(rows(), batch_size=2, on_progress=hook))
    await read_three.wait()
    await hook.heard[0].wait()  # the first batch was sent; its hook call hangs
    task.cancel()
    await hook.heard[1].wait()
    return task


def _hook_warning(caplog: pytest.LogCaptureFixture) -> str:
    (warning,) = [r for r in caplog.records if "on_progress calls" in r.getMessage()]
    assert warning.levelname == "WARNING"
    return warning.getMessage()


@pytest.mark.parametrize("swallow", ["no", "return"])
async def test_a_hung_progress_hook_gives_way_to_a_second_cancellation(
    swallow: str, client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    hook = HungHook(swallow)
    task = await _cancel_while_hooks_hang(client, hook)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hook.cancelled.is_set()
    assert hook.started == 1  # the call due behind the hung one never started
    assert [p.outcome.state for p in hook.calls] == [BatchState.SENT, BatchState.FAILED]
    package_id = hook.calls[0].outcome.package_id
    assert _hook_warning(caplog).endswith(f"did not complete: {package_id}")
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_hook_that_ignores_its_cancellation_gives_way_to_a_third(
    client: AsyncVairoClient, caplog: pytest.LogCaptureFixture
) -> None:
    hook = HungHook("stall")
    task = await _cancel_while_hooks_hang(client, hook)
    task.cancel()
    await hook.cancelled.wait()  # the hook call swallowed it and hangs on
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "did not complete" in _hook_warning(caplog)
    hook.release.set()
    await hook.finished.wait()
    assert hook.started == 1


@pytest.mark.parametrize("hook", ["sync", "async"])
async def test_rows_still_forming_a_batch_when_cancelled_are_failed(
    hook: str, client: AsyncVairoClient, fake: FakeVairo
) -> None:
    read_three = asyncio.Event()

    async def rows() -> AsyncIterator[Message]:
        for number in numbers(3):
            yield Message(to=number, text="x")
        read_three.set()
        await asyncio.Event().wait()  # an input that stalls: a queue with nothing in it

    seen: list[BulkProgress] = []
    task = asyncio.create_task(
        client.send_bulk(rows(), batch_size=10, on_progress=hook_of(hook, seen))
    )
    await read_three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (progress,) = seen
    assert progress.outcome.state is BatchState.FAILED
    assert isinstance(progress.outcome.error, TransportError)
    assert not progress.outcome.error.may_have_reached_server
    assert progress.failed == progress.read == 3
    assert fake.requests == ()


async def test_a_foreign_submit_raising_leaves_its_batch_unknown() -> None:
    # Campaign takes any `submit`: one that raises something other than a VairoError may
    # have sent the batch.
    async def submit(body: bytes, size: int, hook: object) -> int:
        raise KeyError("not ours")

    campaign = Campaign(
        submit, sender="ACME", batch_size=2, concurrency=1, rate=None, on_progress=None
    )
    outcomes = [o async for o in campaign.run([Message(to=n, text="x") for n in numbers(3)])]
    assert [o.state for o in outcomes] == [BatchState.UNKNOWN, BatchState.UNKNOWN]
    error = outcomes[0].error
    assert isinstance(error, OutcomeUnknownError)
    assert isinstance(error.error.__cause__, KeyError)
    assert "unexpected KeyError" in str(error)
