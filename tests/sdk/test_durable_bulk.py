"""Campaigns with a journal, end to end through the emulator on loopback, on every store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from vairo_async import (
    BatchOutcome,
    BatchState,
    BulkProgress,
    BulkResult,
    CampaignMismatchError,
    ClaimLostError,
    ConfigurationError,
    InvalidRequestError,
    Journal,
    JournalUnavailableError,
    MemoryJournal,
    Message,
    OutcomeUnknownError,
    RecordState,
    SentNotRecordedError,
)
from vairo_async._journal import batch_key
from vairo_async.testing import FakeVairo, Fault

from ..support import LEASE, SHORT_LEASE, FakeClock, Hooked, held, journaled_client

ROWS = [Message(to=f"53{i:08d}", text=f"Merhaba {i}", ref=i) for i in range(50)]
CAMPAIGN = "spring-2026"


async def test_a_campaign_records_every_batch_sent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        result = await vairo.send_bulk(ROWS, batch_size=10, concurrency=3, campaign=CAMPAIGN)
    assert result.sent == result.total == 50
    assert not any(o.replayed for o in result.outcomes)
    records = await journal.records(campaign=CAMPAIGN)
    assert [r.batch for r in records] == [0, 1, 2, 3, 4]
    assert all(r.state is RecordState.SENT for r in records)
    by_batch = {o.index: o.package_id for o in result.outcomes}
    assert {r.batch: r.package_id for r in records} == by_batch
    assert records[1].meta == {"refs": list(range(10, 20))}
    assert records[1].recipient_count == 10
    header = await journal.get_campaign(CAMPAIGN)
    assert header is not None
    assert header["sender"] == "ACME"
    assert header["batch_size"] == 10


async def test_a_rerun_replays_sent_batches_without_a_request(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        first = await vairo.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN)
        posts = fake.request_count("send")
        again = await vairo.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN)
    assert fake.request_count("send") == posts == 5
    assert all(o.replayed and o.state is BatchState.SENT for o in again.outcomes)
    assert sorted(again.package_ids) == sorted(first.package_ids)
    assert again.sent == again.total == 50
    assert again.estimated_credits == first.estimated_credits
    # The outcomes carry this run's own row objects.
    assert again.outcomes[0].messages[0] is ROWS[again.outcomes[0].index * 10]


async def test_a_rerun_resends_failed_batches_and_never_unknown_ones(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    # Batch 1 is refused after every retry (certainly not sent); batch 3 is accepted but
    # its answer is lost (unknown).
    async with journaled_client(fake, url, journal, max_retries=1) as vairo:
        order = iter(range(100))

        async def rows() -> AsyncIterator[Message]:
            for row in ROWS:
                yield row

        stream = vairo.iter_bulk(rows(), batch_size=10, concurrency=1, campaign=CAMPAIGN)
        outcomes = []
        async with contextlib.aclosing(stream):
            async for outcome in stream:
                outcomes.append(outcome)
                n = next(order)
                if n == 0:
                    fake.inject(Fault.server_error(503), times=2)
                elif n == 2:
                    fake.inject(Fault.drop_after_accept())
        states = [o.state for o in sorted(outcomes, key=lambda o: o.index)]
        assert states == [
            BatchState.SENT,
            BatchState.FAILED,
            BatchState.SENT,
            BatchState.UNKNOWN,
            BatchState.SENT,
        ]
        assert (await journal.get(batch_key(CAMPAIGN, 1))) is None
        unknown = await journal.get(batch_key(CAMPAIGN, 3))
        assert unknown is not None
        assert unknown.state is RecordState.UNKNOWN
        accepted = len(fake.messages)

        again = await vairo.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN)
    by_index = {o.index: o for o in again.outcomes}
    assert not by_index[1].replayed
    assert by_index[1].state is BatchState.SENT
    assert by_index[3].state is BatchState.UNKNOWN
    assert by_index[3].replayed
    assert isinstance(by_index[3].error, OutcomeUnknownError)
    assert {by_index[i].replayed for i in (0, 2, 4)} == {True}
    assert again.sent == 40
    assert again.unknown == 10
    assert again.total == 50
    assert len(fake.messages) == accepted + 10  # only batch 1 went out again
    assert fake.duplicates() == {}
    assert sorted(again.package_ids) == sorted(fake.packages)[:2] + sorted(fake.packages)[3:]


async def test_other_parameters_are_a_mismatch_before_anything_is_sent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send_bulk(ROWS[:10], batch_size=10, campaign=CAMPAIGN)
        for kwargs in ({"batch_size": 5}, {"sender": "OTHER"}, {"exclude": ["5300000001"]}):
            with pytest.raises(CampaignMismatchError) as caught:
                await vairo.send_bulk(ROWS, campaign=CAMPAIGN, **kwargs)
            assert caught.value.campaign == CAMPAIGN
            assert caught.value.batch is None
    assert fake.request_count("send") == 1


async def test_changed_rows_are_a_mismatch_and_the_batch_is_not_sent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    seen: list[BulkProgress] = []
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send_bulk(ROWS[:30], batch_size=10, campaign=CAMPAIGN)
        changed = [*ROWS[:15], Message(to="5559999999", text="other"), *ROWS[16:]]
        with pytest.raises(CampaignMismatchError) as caught:
            await vairo.send_bulk(
                changed, batch_size=10, campaign=CAMPAIGN, on_progress=seen.append
            )
    assert caught.value.batch == 1
    assert fake.request_count("send") == 3
    assert fake.sent_to("5559999999") == []
    last = seen[-1]
    assert last.total == last.read  # every row read is accounted for
    mismatched = [p.outcome for p in seen if p.outcome.index == 1]
    assert mismatched[0].state is BatchState.FAILED
    assert mismatched[0].error is caught.value


async def test_a_campaign_or_key_without_a_journal_is_a_configuration_error(
    fake: FakeVairo, url: str
) -> None:
    async with journaled_client(fake, url, None) as vairo:
        with pytest.raises(ConfigurationError, match="campaign='c' needs a journal"):
            await vairo.send_bulk(ROWS, campaign="c")
        with pytest.raises(ConfigurationError, match="campaign"):
            vairo.iter_bulk(ROWS, campaign="c")
        with pytest.raises(ConfigurationError, match="idempotency_key='k' needs a journal"):
            await vairo.send("x", to="5399999999", idempotency_key="k")
    assert fake.request_count() == 0


async def test_a_bad_campaign_id_or_journal_setting_is_named(fake: FakeVairo, url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        journaled_client(fake, url, object(), idempotency_retention=0, journal_lease="x")  # type: ignore[arg-type]
    assert [line.split("=")[0] for line in caught.value.problems] == [
        "journal",
        "idempotency_retention",
        "journal_lease",
    ]
    async with journaled_client(fake, url, MemoryJournal()) as vairo:
        with pytest.raises(InvalidRequestError, match="campaign"):
            await vairo.send_bulk(ROWS, campaign="")
        with pytest.raises(InvalidRequestError, match="campaign"):
            await vairo.send_bulk(ROWS, campaign="x" * 256)
    assert fake.request_count() == 0


async def test_the_store_unreachable_at_claim_sends_nothing(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    broken = Hooked(journal, fail={"claim"})
    async with journaled_client(fake, url, broken) as vairo:
        result = await vairo.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN)
    assert fake.request_count("send") == 0
    assert result.failed == result.total == 50
    assert all(isinstance(o.error, JournalUnavailableError) for o in result.outcomes)
    assert await journal.records(campaign=CAMPAIGN) == []


async def test_the_store_unreachable_at_start_raises_before_anything(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    broken = Hooked(journal, fail={"get_campaign"})
    async with journaled_client(fake, url, broken) as vairo:
        with pytest.raises(JournalUnavailableError):
            await vairo.send_bulk(ROWS, campaign=CAMPAIGN)
    assert fake.request_count() == 0


async def test_sent_but_not_recorded_keeps_the_package_id(
    fake: FakeVairo, url: str, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Hooked(journal, fail={"mark_sent"})
    async with journaled_client(fake, url, broken) as vairo:
        result = await vairo.send_bulk(ROWS[:20], batch_size=10, campaign=CAMPAIGN)
    assert result.sent == 20
    assert sorted(result.package_ids) == sorted(fake.packages)
    for outcome in result.outcomes:
        assert isinstance(outcome.error, SentNotRecordedError)
        assert outcome.error.package_id == outcome.package_id
        assert f"package {outcome.package_id} was sent" in caplog.text
    assert {r.levelname for r in caplog.records if "was sent" in r.getMessage()} == {"ERROR"}
    # Left CLAIMED: a rerun reports the batches unknown and sends nothing.
    async with journaled_client(fake, url, journal) as vairo:
        again = await vairo.send_bulk(ROWS[:20], batch_size=10, campaign=CAMPAIGN)
    assert again.unknown == 20
    assert fake.request_count("send") == 2


async def test_cancelling_marks_started_batches_unknown_and_leaves_others_unrecorded(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    claimed = asyncio.Event()
    gate = asyncio.Event()

    def after(name: str, n: int) -> object:
        if name == "claim" and n == 2:
            claimed.set()
        return None

    async def hold(name: str, n: int) -> None:
        if name == "claim" and n > 2:
            await gate.wait()  # never set: the third claim is never written

    hooked = Hooked(journal, after=after, before=hold)
    fake.inject(Fault.latency(3600), times=2)  # both claimed batches stay in flight
    seen: list[BulkProgress] = []
    async with journaled_client(fake, url, hooked) as vairo:
        task = asyncio.create_task(
            vairo.send_bulk(
                ROWS, batch_size=10, concurrency=3, campaign=CAMPAIGN, on_progress=seen.append
            )
        )
        await claimed.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    records = {r.batch or 0: r for r in await journal.records(campaign=CAMPAIGN)}
    assert sorted(records) == [0, 1]
    assert {r.state for r in records.values()} == {RecordState.UNKNOWN}
    states = {p.outcome.index: p.outcome.state for p in seen}
    assert states[0] is states[1] is BatchState.UNKNOWN
    assert states[2] is BatchState.FAILED
    assert seen[-1].total == seen[-1].read


async def test_a_run_racing_another_reports_the_other_runs_batches(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    """Run A reads the journal, then run B sends the whole campaign before A's first claim."""
    other: list[BulkResult] = []

    async def run_b_first(name: str, n: int) -> None:
        if name == "claim" and n == 1:
            async with journaled_client(fake, url, journal) as b:
                other.append(await b.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN))

    async with journaled_client(fake, url, Hooked(journal, before=run_b_first)) as a:
        result = await a.send_bulk(ROWS, batch_size=10, concurrency=1, campaign=CAMPAIGN)
    assert fake.request_count("send") == 5
    assert all(o.replayed and o.state is BatchState.SENT for o in result.outcomes)
    assert sorted(result.package_ids) == sorted(other[0].package_ids)


async def test_a_run_racing_an_unknown_batch_reports_it_unknown(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async def unknown_first(name: str, n: int) -> None:
        if name == "claim" and n == 1:
            fake.inject(Fault.drop_after_accept())
            async with journaled_client(fake, url, journal) as b:
                await b.send_bulk(ROWS[:10], batch_size=10, campaign=CAMPAIGN)

    async with journaled_client(fake, url, Hooked(journal, before=unknown_first)) as a:
        result = await a.send_bulk(ROWS[:10], batch_size=10, campaign=CAMPAIGN)
    (outcome,) = result.outcomes
    assert outcome.state is BatchState.UNKNOWN
    assert isinstance(outcome.error, OutcomeUnknownError)
    assert fake.request_count("send") == 1


async def test_a_mismatch_settles_the_rows_still_forming_and_sends_nothing_more(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    turkish = [Message(to=f"54{i:08d}", text=f"Şifreniz {i}") for i in range(3)]
    rows = [*turkish, *ROWS[:20]]
    changed = [*turkish, *ROWS[:15], Message(to="5559999999", text="other"), *ROWS[16:20]]
    seen: list[BulkProgress] = []
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send_bulk(rows, batch_size=10, campaign=CAMPAIGN)
        with pytest.raises(CampaignMismatchError) as caught:
            await vairo.send_bulk(
                changed, batch_size=10, campaign=CAMPAIGN, on_progress=seen.append
            )
        # A batch cut short at the end of the input is found out as it is flushed.
        with pytest.raises(CampaignMismatchError) as short:
            await vairo.send_bulk(rows[:22], batch_size=10, campaign=CAMPAIGN)
    assert caught.value.batch == short.value.batch == 1
    assert fake.request_count("send") == 3
    assert seen[-1].total == seen[-1].read == 23
    assert seen[-1].failed == 13  # the changed batch and the Turkish rows still forming


async def test_a_journal_that_cannot_mark_unknown_leaves_the_claim(
    fake: FakeVairo, url: str, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(Fault.drop_after_accept())
    async with journaled_client(fake, url, Hooked(journal, fail={"mark_unknown"})) as vairo:
        result = await vairo.send_bulk(ROWS[:10], batch_size=10, campaign=CAMPAIGN)
    assert result.unknown == 10
    record = await journal.get(batch_key(CAMPAIGN, 0))
    assert record is not None
    assert record.state is RecordState.CLAIMED  # reads UNKNOWN once its lease passes
    assert "could not mark" in caplog.text


async def test_refs_that_are_not_json_are_left_out_of_the_record(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    rows = [Message(to=f"53{i:08d}", text="x", ref=object()) for i in range(3)]
    async with journaled_client(fake, url, journal) as vairo:
        result = await vairo.send_bulk(rows, campaign=CAMPAIGN)
    assert result.sent == 3
    (record,) = await journal.records(campaign=CAMPAIGN)
    assert record.meta == {}
    assert record.state is RecordState.SENT


async def test_a_campaign_stopped_while_sent_is_written_keeps_the_package_id(
    fake: FakeVairo, url: str, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    hooked, writing, gate = held(journal, "mark_sent")
    seen: list[BulkProgress] = []
    async with journaled_client(fake, url, hooked) as vairo:
        task = asyncio.create_task(
            vairo.send_bulk(ROWS[:10], campaign=CAMPAIGN, on_progress=seen.append)
        )
        await writing.wait()
        task.cancel()  # the campaign stops while the answer is being recorded
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    (package_id,) = fake.packages
    assert [(p.outcome.state, p.outcome.package_id) for p in seen] == [
        (BatchState.SENT, package_id)
    ]
    record = await journal.get(batch_key(CAMPAIGN, 0))
    assert record is not None
    assert record.state is RecordState.SENT
    assert f"package ids: {package_id}" in caplog.text


async def test_iter_bulk_yields_every_row_before_raising_a_mismatch(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    turkish = [Message(to=f"54{i:08d}", text=f"Şifreniz {i}") for i in range(3)]
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send_bulk([*turkish, *ROWS[:20]], batch_size=10, campaign=CAMPAIGN)
        changed = [*turkish, *ROWS[:15], Message(to="5559999999", text="other"), *ROWS[16:20]]
        outcomes: list[BatchOutcome] = []

        async def consume() -> None:
            async for outcome in vairo.iter_bulk(changed, batch_size=10, campaign=CAMPAIGN):
                outcomes.append(outcome)

        with pytest.raises(CampaignMismatchError):
            await consume()
    assert sorted(len(o.messages) for o in outcomes) == [3, 10, 10]
    assert sorted(o.state.value for o in outcomes) == ["failed", "failed", "sent"]


async def test_a_batch_outliving_its_lease_keeps_its_claim_live_and_is_sent_once(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    key = batch_key(CAMPAIGN, 0)
    seen: list[RecordState] = []

    async def attempt_took_a_while(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE - 1)
            record = await journal.get(key)
            assert record is not None
            seen.append(record.effective_state(clock.now))

    fake.inject(Fault.server_error(503), times=3)
    hooked = Hooked(journal, before=attempt_took_a_while)
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        result = await vairo.send_bulk(
            ROWS, batch_size=10, concurrency=1, rate=1000, campaign=CAMPAIGN
        )
    assert result.sent == result.total == 50
    assert seen == [RecordState.CLAIMED] * 3
    assert fake.request_count("send") == 5 + 3
    assert len(fake.messages) == 50
    assert fake.duplicates() == {}


async def test_a_batch_resolved_between_retries_fails_unsent_and_a_rerun_sends_it_once(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    key = batch_key(CAMPAIGN, 0)

    async def hung_then_resolved(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE + 1)  # the run hung past its lease; the panel shows nothing
            assert await journal.resolve(key, package_id=None) is None

    fake.inject(Fault.server_error(503))
    hooked = Hooked(journal, before=hung_then_resolved)
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        result = await vairo.send_bulk(ROWS, batch_size=10, concurrency=1, campaign=CAMPAIGN)
    by_index = {o.index: o for o in result.outcomes}
    assert by_index[0].state is BatchState.FAILED
    error = by_index[0].error
    assert isinstance(error, ClaimLostError)
    assert (error.key, error.attempt, error.certainly_not_sent) == (key, 2, True)
    assert result.sent == 40
    assert fake.request_count("send") == 1 + 4  # batch 0's retry was never made
    assert fake.sent_to(ROWS[0].to) == []
    assert await journal.get(key) is None

    async with journaled_client(fake, url, journal, **SHORT_LEASE) as vairo:
        again = await vairo.send_bulk(ROWS, batch_size=10, campaign=CAMPAIGN)
    assert again.sent == 50
    assert [o.index for o in again.outcomes if not o.replayed] == [0]
    assert fake.request_count("send") == 1 + 4 + 1
    assert len(fake.messages) == 50
    assert fake.duplicates() == {}


async def test_the_store_unreachable_at_renewal_fails_the_batch_unsent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    fake.inject(Fault.server_error(503))
    hooked = Hooked(journal, fail={"renew"})
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        result = await vairo.send_bulk(ROWS, batch_size=10, concurrency=1, campaign=CAMPAIGN)
    (failed,) = [o for o in result.outcomes if o.state is not BatchState.SENT]
    assert failed.state is BatchState.FAILED
    assert isinstance(failed.error, JournalUnavailableError)
    assert failed.error.certainly_not_sent is True
    assert fake.request_count("send") == 5
    assert await journal.get(batch_key(CAMPAIGN, failed.index)) is None
