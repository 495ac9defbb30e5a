"""Single sends with an idempotency key, end to end through the emulator on every store."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from vairo_async import (
    ClaimLostError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    Journal,
    JournalUnavailableError,
    Message,
    OutcomeUnknownError,
    RecordState,
    SendInProgressError,
    SentNotRecordedError,
    ServerError,
    Submission,
)
from vairo_async._journal import new_owner, send_key
from vairo_async.testing import FakeVairo, Fault

from ..support import FakeClock, Hooked, journaled_client

KEY = "order-1234-shipped"


async def test_a_repeated_send_is_replayed_without_a_request(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        first = await vairo.send("Kargonuz yolda", to="0539 999 99 99", idempotency_key=KEY)
        # The same content in another spelling is the same send.
        again = await vairo.send("Kargonuz yolda", to="+90 539 999 9999", idempotency_key=KEY)
        messages = await vairo.send_messages(
            [Message(to="5399999999", text="Kargonuz yolda")], idempotency_key=KEY
        )
    assert not first.replayed
    assert again == messages == attrs.evolve(first, replayed=True)
    assert again.estimated_credits == first.estimated_credits == 1
    assert fake.request_count("send") == 1
    record = await journal.get(send_key(KEY))
    assert record is not None
    assert record.state is RecordState.SENT
    assert record.package_id == first.package_id


@pytest.mark.parametrize(
    ("change", "value"),
    [("text", "Kargonuz geldi"), ("to", "5399999998"), ("sender", "OTHER"), ("tr_char", True)],
)
async def test_other_content_under_a_key_is_refused(
    fake: FakeVairo, url: str, journal: Journal, change: str, value: object
) -> None:
    base: dict[str, object] = {"text": "Kargonuz yolda", "to": "5399999999"}
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send(**base, idempotency_key=KEY)  # type: ignore[arg-type]
        with pytest.raises(IdempotencyKeyReusedError) as caught:
            await vairo.send(**{**base, change: value}, idempotency_key=KEY)  # type: ignore[arg-type]
    assert caught.value.key == KEY
    assert caught.value.record.state is RecordState.SENT
    assert fake.request_count("send") == 1


async def test_a_live_claim_elsewhere_is_in_progress(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        # Learn the fingerprint the client records, then hold the key as another sender.
        await vairo.send("x", to="5399999999", idempotency_key="probe")
        probe = await journal.get(send_key("probe"))
        assert probe is not None
        await journal.claim(
            send_key(KEY), fingerprint=probe.fingerprint, owner=new_owner(), lease=60
        )
        with pytest.raises(SendInProgressError) as caught:
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert caught.value.key == KEY
    assert fake.request_count("send") == 1


async def test_an_unknown_outcome_is_kept_and_never_resent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    fake.inject(Fault.drop_after_accept())
    async with journaled_client(fake, url, journal) as vairo:
        with pytest.raises(OutcomeUnknownError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
        record = await journal.get(send_key(KEY))
        assert record is not None
        assert record.state is RecordState.UNKNOWN
        assert record.detail
        with pytest.raises(OutcomeUnknownError, match="UNKNOWN in the journal"):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
        # After checking the panel, the truth is recorded, and the key replays it.
        await journal.resolve(send_key(KEY), package_id=next(iter(fake.packages)))
        replay = await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert replay.replayed
    assert replay.package_id == next(iter(fake.packages))
    assert fake.request_count("send") == 1


async def test_an_expired_claim_reads_unknown(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        await vairo.send("x", to="5399999999", idempotency_key="probe")
        probe = await journal.get(send_key("probe"))
        assert probe is not None
        await journal.claim(
            send_key(KEY), fingerprint=probe.fingerprint, owner=new_owner(), lease=30
        )
        clock.advance(31)
        with pytest.raises(OutcomeUnknownError, match="UNKNOWN in the journal"):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert fake.request_count("send") == 1


async def test_a_certain_failure_releases_the_key(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    fake.inject(Fault.server_error(503), times=2)
    async with journaled_client(fake, url, journal, max_retries=1) as vairo:
        with pytest.raises(ServerError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
        assert await journal.get(send_key(KEY)) is None
        sent = await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert not sent.replayed
    assert len(fake.messages) == 1


async def test_the_key_is_forgotten_after_its_retention(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    async with journaled_client(fake, url, journal, idempotency_retention=3600) as vairo:
        first = await vairo.send("x", to="5399999999", idempotency_key=KEY)
        clock.advance(3599)
        assert (await vairo.send("x", to="5399999999", idempotency_key=KEY)).replayed
        clock.advance(2)
        later = await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert not later.replayed
    assert later.package_id != first.package_id
    assert fake.request_count("send") == 2


async def test_the_store_unreachable_at_claim_sends_nothing(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, Hooked(journal, fail={"claim"})) as vairo:
        with pytest.raises(JournalUnavailableError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert fake.request_count() == 0


async def test_sent_but_not_recorded_raises_with_the_package_id(
    fake: FakeVairo, url: str, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    async with journaled_client(fake, url, Hooked(journal, fail={"mark_sent"})) as vairo:
        with pytest.raises(SentNotRecordedError) as caught:
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    (package_id,) = fake.packages
    assert caught.value.package_id == package_id
    assert caught.value.key == send_key(KEY)
    assert isinstance(caught.value.__cause__, JournalUnavailableError)
    logged = [r for r in caplog.records if str(package_id) in r.getMessage()]
    assert [r.levelname for r in logged] == ["ERROR"]
    # The claim stays: the key is never sent again by itself.
    async with journaled_client(fake, url, journal) as vairo:
        with pytest.raises(SendInProgressError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert fake.request_count("send") == 1


async def test_a_stale_owner_cannot_overwrite_the_newer_record(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    """A's lease passes mid-request; the key is resolved "not sent" and B sends it anew."""
    newer: list[Submission] = []

    async def take_over(name: str, n: int) -> None:
        if name == "claim" and n == 1:
            clock.advance(91)  # A's lease has passed before its request leaves
            await journal.resolve(send_key(KEY), package_id=None)
            async with journaled_client(fake, url, journal) as b:
                newer.append(await b.send("x", to="5399999999", idempotency_key=KEY))

    stale = Hooked(journal, after=take_over)
    async with journaled_client(fake, url, stale, journal_lease=90) as a:
        with pytest.raises(SentNotRecordedError) as caught:
            await a.send("x", to="5399999999", idempotency_key=KEY)
    assert isinstance(caught.value.__cause__, ClaimLostError)
    record = await journal.get(send_key(KEY))
    assert record is not None
    assert record.state is RecordState.SENT
    assert record.package_id == newer[0].package_id != caught.value.package_id


async def test_a_cancelled_send_in_flight_is_unknown(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    claimed = asyncio.Event()
    hooked = Hooked(journal, after=lambda name, n: claimed.set() if name == "claim" else None)
    fake.inject(Fault.latency(3600))
    async with journaled_client(fake, url, hooked) as vairo:
        task = asyncio.create_task(vairo.send("x", to="5399999999", idempotency_key=KEY))
        await claimed.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    record = await journal.get(send_key(KEY))
    assert record is not None
    assert record.state is RecordState.UNKNOWN


async def test_bad_keys_are_named_and_nothing_is_sent(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    async with journaled_client(fake, url, journal) as vairo:
        for bad in ("", "k" * 256, 12):
            with pytest.raises(InvalidRequestError, match="idempotency_key"):
                await vairo.send("x", to="5399999999", idempotency_key=bad)  # type: ignore[arg-type]
    assert fake.request_count() == 0
    assert await journal.records() == []


async def test_a_journal_that_cannot_release_keeps_the_key_claimed(
    fake: FakeVairo, url: str, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(Fault.server_error(503), times=2)
    async with journaled_client(
        fake, url, Hooked(journal, fail={"release"}), max_retries=1
    ) as vairo:
        with pytest.raises(ServerError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert "could not release" in caplog.text
    async with journaled_client(fake, url, journal) as vairo:
        with pytest.raises(SendInProgressError):
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert fake.messages == ()


async def test_a_send_cancelled_while_sent_is_written_still_records_it(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    writing = asyncio.Event()
    gate = asyncio.Event()

    async def hold(name: str, n: int) -> None:
        if name == "mark_sent":
            writing.set()
            await gate.wait()

    async with journaled_client(fake, url, Hooked(journal, before=hold)) as vairo:
        task = asyncio.create_task(vairo.send("x", to="5399999999", idempotency_key=KEY))
        await writing.wait()
        task.cancel()  # the caller gives up; the SENT write goes on to its end
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        replay = await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert replay.replayed
    assert replay.package_id == next(iter(fake.packages))
    assert fake.request_count("send") == 1
