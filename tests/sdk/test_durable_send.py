"""Single sends with an idempotency key, end to end through the emulator on every store."""

from __future__ import annotations

import asyncio

import attrs
import httpx
import pytest

from vairo_async import (
    ClaimLostError,
    ConfigurationError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    Journal,
    JournalUnavailableError,
    MemoryJournal,
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

from ..support import LEASE, SHORT_LEASE, FakeClock, Hooked, held, journaled_client

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
    hooked, writing, gate = held(journal, "mark_sent")
    async with journaled_client(fake, url, hooked) as vairo:
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


# --- the claim renewed before every retry ---------------------------------------------------


async def test_a_send_outliving_its_lease_keeps_its_claim_live_and_sends_once(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    key = send_key(KEY)
    seen: list[RecordState] = []

    async def attempt_took_a_while(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE - 1)  # the last attempt and its wait, within one lease
            record = await journal.get(key)
            assert record is not None
            seen.append(record.effective_state(clock.now))
            with pytest.raises(SendInProgressError):  # a person cannot resolve it meanwhile
                await journal.resolve(key, package_id=None)

    fake.inject(Fault.server_error(503), times=3)
    hooked = Hooked(journal, before=attempt_took_a_while)
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        sub = await vairo.send("x", to="5399999999", idempotency_key=KEY)

    assert hooked.calls["renew"] == 3
    assert seen == [RecordState.CLAIMED] * 3  # 12 s in all, more than twice the lease
    assert fake.request_count("send") == 4
    assert list(fake.packages) == [sub.package_id]
    assert len(fake.messages) == 1
    record = await journal.get(key)
    assert record is not None
    assert (record.state, record.package_id) == (RecordState.SENT, sub.package_id)


async def test_a_resolve_between_retries_stops_the_owner_and_a_rerun_sends_once(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    """The owner hangs past its lease between two attempts; a person resolves "not sent"."""
    key = send_key(KEY)

    async def hung_then_resolved(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE + 1)
            assert await journal.resolve(key, package_id=None) is None

    fake.inject(Fault.server_error(503))
    hooked = Hooked(journal, before=hung_then_resolved)
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        with pytest.raises(ClaimLostError) as caught:
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert fake.request_count("send") == 1  # the 503: the retry was never made
    assert caught.value.attempt == 2
    assert caught.value.key == key
    assert caught.value.record is None
    assert caught.value.certainly_not_sent is True
    assert "attempt 2 was not made" in str(caught.value)
    assert await journal.get(key) is None
    assert fake.messages == ()

    async with journaled_client(fake, url, journal, **SHORT_LEASE) as vairo:
        rerun = await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert not rerun.replayed
    assert fake.request_count("send") == 2
    assert list(fake.packages) == [rerun.package_id]
    assert len(fake.messages) == 1


async def test_a_stale_owner_stops_when_its_key_was_sent_anew_between_retries(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    """Resolved "not sent" and sent by another worker while the owner waited to retry."""
    key = send_key(KEY)
    newer: list[Submission] = []

    async def taken_over(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE + 1)
            await journal.resolve(key, package_id=None)
            async with journaled_client(fake, url, journal, **SHORT_LEASE) as b:
                newer.append(await b.send("x", to="5399999999", idempotency_key=KEY))

    fake.inject(Fault.server_error(503))
    async with journaled_client(fake, url, Hooked(journal, before=taken_over), **SHORT_LEASE) as a:
        with pytest.raises(ClaimLostError) as caught:
            await a.send("x", to="5399999999", idempotency_key=KEY)
    assert caught.value.record is not None
    assert caught.value.record.state is RecordState.SENT
    assert fake.request_count("send") == 2  # A's 503 and B's send; A's retry never left
    assert list(fake.packages) == [newer[0].package_id]
    assert await journal.get(key) == caught.value.record


async def test_the_store_unreachable_at_renewal_stops_the_send(
    fake: FakeVairo, url: str, journal: Journal
) -> None:
    fake.inject(Fault.server_error(503))
    hooked = Hooked(journal, fail={"renew"})
    async with journaled_client(fake, url, hooked, **SHORT_LEASE) as vairo:
        with pytest.raises(JournalUnavailableError) as caught:
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert caught.value.certainly_not_sent is True
    assert fake.request_count("send") == 1
    assert fake.messages == ()
    # Nothing was sent, so the claim was released: the key may be sent again.
    assert await journal.get(send_key(KEY)) is None


async def test_with_unknown_outcomes_retried_a_lost_claim_is_an_unknown_outcome(
    fake: FakeVairo, url: str, journal: Journal, clock: FakeClock
) -> None:
    """An earlier attempt may have been acted on: the caller must not hear "not sent"."""
    key = send_key(KEY)

    async def hung_then_resolved(name: str, n: int) -> None:
        if name == "renew":
            clock.advance(LEASE + 1)
            await journal.resolve(key, package_id=None)

    fake.inject(Fault.server_error(502))
    hooked = Hooked(journal, before=hung_then_resolved)
    async with journaled_client(
        fake, url, hooked, retry_unknown_outcomes=True, **SHORT_LEASE
    ) as vairo:
        with pytest.raises(OutcomeUnknownError) as caught:
            await vairo.send("x", to="5399999999", idempotency_key=KEY)
    assert isinstance(caught.value.error, ClaimLostError)
    assert caught.value.certainly_not_sent is False
    assert fake.request_count("send") == 1
    assert await journal.get(key) is None  # the person's "not sent" is left alone


@pytest.mark.parametrize(
    ("options", "needed"),
    [
        ({}, "90 s (timeout 30 s + the longest retry wait 60 s"),
        ({"timeout": 10, "retry_after_max": 5}, "18 s (timeout 10 s + the longest retry wait 8 s"),
        ({"timeout": httpx.Timeout(5, read=50)}, "110 s (timeout 50 s"),
        ({"max_retries": 0, "timeout": 45}, "45 s (timeout 45 s + the longest retry wait 0 s"),
    ],
)
def test_a_lease_shorter_than_one_attempt_is_refused(
    fake: FakeVairo, options: dict[str, object], needed: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        journaled_client(fake, fake.base_url, MemoryJournal(), journal_lease=17, **options)
    (problem,) = caught.value.problems
    assert problem.startswith("journal_lease=17: shorter than one attempt")
    assert needed in problem


async def test_a_lease_that_outlasts_one_attempt_is_accepted(fake: FakeVairo) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(2)) as http:
        for options in (
            {"journal_lease": 90},
            {"journal_lease": 2, "max_retries": 0, "http_client": http},
            {"journal_lease": 1, "timeout": httpx.Timeout(None)},  # no bound to check against
        ):
            async with journaled_client(fake, fake.base_url, MemoryJournal(), **options):
                pass
    # Without a journal the lease is not used: only its type is checked.
    async with journaled_client(fake, fake.base_url, None, journal_lease=1):
        pass
