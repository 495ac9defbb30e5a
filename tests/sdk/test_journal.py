"""The journal contract: every store (memory, SQLite, Redis) behaves the same."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from vairo_async import (
    Claim,
    ClaimLostError,
    InvalidRequestError,
    Journal,
    JournalError,
    JournalRecord,
    JournalUnavailableError,
    MemoryJournal,
    RecordState,
    SendInProgressError,
    SqliteJournal,
)
from vairo_async._journal import batch_key, fingerprint, new_owner, send_key

from ..support import FakeClock, open_store

LEASE = 30.0
FP = fingerprint("ACME", False, ["5399999999"], ["Merhaba"])
Opener = Callable[[], Journal]


@pytest.fixture(params=["sqlite", "redis"])
def open_durable(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Opener:
    """Opens journals on one store that outlives its handles."""
    return open_store(request.param, request, tmp_path, clock)


async def claim(journal: Journal, key: str, owner: str, **kwargs: object) -> Claim:
    return await journal.claim(key, fingerprint=FP, owner=owner, lease=LEASE, **kwargs)  # type: ignore[arg-type]


def test_every_store_is_a_journal(tmp_path: Path) -> None:
    assert isinstance(MemoryJournal(), Journal)
    assert isinstance(SqliteJournal(tmp_path / "j.db"), Journal)


# --- keys ---------------------------------------------------------------------------------


def test_single_sends_and_batches_live_in_separate_namespaces() -> None:
    assert send_key("order-1") == "send:order-1"
    assert batch_key("spring", 3) == "batch:spring:3"
    # A user key spelled like a batch key is still a single send's key.
    assert send_key("batch:spring:3") != batch_key("spring", 3)
    assert batch_key("a:1", 2) != batch_key("a", 12)


@pytest.mark.parametrize("bad", ["", "x" * 256, 42, None])
def test_a_bad_idempotency_key_is_named(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="idempotency_key"):
        send_key(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("campaign", "index"), [("", 0), ("c", -1), ("c", True), ("c", 1.5)])
def test_a_bad_batch_key_is_named(campaign: str, index: int) -> None:
    with pytest.raises(InvalidRequestError):
        batch_key(campaign, index)


def test_fingerprints_follow_content_and_owners_are_unique() -> None:
    assert fingerprint("a", ["1"]) == fingerprint("a", ["1"])
    assert fingerprint("a", ["1"]) != fingerprint("a", ["2"])
    assert new_owner() != new_owner()


# --- claims -------------------------------------------------------------------------------


async def test_a_claim_writes_a_claimed_record(journal: Journal, clock: FakeClock) -> None:
    key = send_key("order-1")
    result = await journal.claim(
        key,
        fingerprint=FP,
        owner="w1",
        lease=LEASE,
        retention=3600,
        meta={"lines": [2, 3], "ref": "x"},
    )

    assert result.claimed
    expected = JournalRecord(
        key=key,
        state=RecordState.CLAIMED,
        fingerprint=FP,
        owner="w1",
        lease_expires=clock.now + LEASE,
        meta={"lines": [2, 3], "ref": "x"},
        created_at=clock.now,
        updated_at=clock.now,
        expires_at=clock.now + 3600,
    )
    assert result.record == expected
    assert await journal.get(key) == expected
    assert result.record.effective_state(clock.now) is RecordState.CLAIMED


async def test_a_second_claim_returns_the_record_unchanged(journal: Journal) -> None:
    key = batch_key("spring", 0)
    first = await claim(journal, key, "w1", campaign="spring", batch=0)

    second = await journal.claim(
        key, fingerprint="other", owner="w2", lease=5, campaign="spring", batch=0
    )

    assert not second.claimed
    assert second.record == first.record
    assert await journal.get(key) == first.record


async def test_many_tasks_claiming_one_key_give_one_winner(open_journal: Opener) -> None:
    key = send_key("contended")
    async with open_journal() as a, open_journal() as b:
        results = await asyncio.gather(*(claim(a if i % 2 else b, key, f"w{i}") for i in range(50)))
    winners = [result for result in results if result.claimed]
    assert len(winners) == 1
    assert {result.record.owner for result in results} == {winners[0].record.owner}


async def test_an_expired_claim_reads_unknown_and_is_not_claimed_again(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")
    clock.advance(LEASE)

    again = await claim(journal, key, "w2")

    assert not again.claimed
    assert again.record.state is RecordState.CLAIMED
    assert again.record.effective_state(clock.now) is RecordState.UNKNOWN
    # The owner whose lease passed may still record the truth.
    sent = await journal.mark_sent(
        key, owner="w1", package_id=7, recipient_count=1, estimated_credits=None
    )
    assert sent.state is RecordState.SENT


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"lease": 0}, "lease"),
        ({"lease": float("nan")}, "lease"),
        ({"campaign": "c"}, "batch"),
        ({"campaign": "c", "batch": 1, "retention": 10}, "retention"),
        ({"retention": -1}, "retention"),
        ({"meta": {"x": object()}}, "meta"),
        ({"owner": ""}, "owner"),
    ],
)
async def test_bad_claim_arguments_are_named_and_nothing_is_written(
    journal: Journal, kwargs: dict[str, object], word: str
) -> None:
    arguments: dict[str, object] = {"fingerprint": FP, "owner": "w1", "lease": LEASE, **kwargs}
    with pytest.raises(InvalidRequestError, match=word):
        await journal.claim(send_key("k"), **arguments)  # type: ignore[arg-type]
    assert await journal.get(send_key("k")) is None


# --- renewing a claim ---------------------------------------------------------------------


async def test_renew_extends_the_owners_live_claim(journal: Journal, clock: FakeClock) -> None:
    key = batch_key("c", 2)
    claimed = (await claim(journal, key, "w1", campaign="c", batch=2, meta={"refs": [1]})).record
    clock.advance(LEASE - 1)

    renewed = await journal.renew(key, owner="w1", lease=LEASE)

    assert renewed == attrs.evolve(claimed, lease_expires=clock.now + LEASE, updated_at=clock.now)
    assert await journal.get(key) == renewed
    clock.advance(LEASE - 1)  # past the first lease, within the renewed one
    assert renewed.effective_state(clock.now) is RecordState.CLAIMED
    with pytest.raises(SendInProgressError):
        await journal.resolve(key, package_id=None)
    # Renewed again (as a write retried after a lost answer would be): 5 s from now.
    again = await journal.renew(key, owner="w1", lease=5)
    assert (again.lease_expires, again.state) == (clock.now + 5, RecordState.CLAIMED)
    sent = await journal.mark_sent(
        key, owner="w1", package_id=8, recipient_count=1, estimated_credits=None
    )
    assert (sent.state, sent.lease_expires) == (RecordState.SENT, None)


async def test_renew_revives_an_expired_claim_nobody_resolved(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("k")
    await claim(journal, key, "w1", retention=3600)
    clock.advance(LEASE + 5)
    assert await journal.records(states={RecordState.UNKNOWN}) != []

    renewed = await journal.renew(key, owner="w1", lease=LEASE)

    assert renewed.effective_state(clock.now) is RecordState.CLAIMED
    assert renewed.lease_expires == clock.now + LEASE
    assert await journal.records(states={RecordState.UNKNOWN}) == []
    assert [r.key for r in await journal.unresolved()] == [key]


async def test_renew_of_a_claim_not_the_owners_raises_and_changes_nothing(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("k")
    mine = (await claim(journal, key, "w1")).record
    clock.advance(LEASE + 1)

    with pytest.raises(ClaimLostError, match="no longer this owner's") as lost:
        await journal.renew(key, owner="w2", lease=LEASE)
    assert lost.value.record == mine
    assert lost.value.attempt is None
    assert lost.value.certainly_not_sent is False
    with pytest.raises(ClaimLostError) as missing:
        await journal.renew(send_key("never"), owner="w1", lease=LEASE)
    assert missing.value.record is None
    assert await journal.get(key) == mine
    assert await journal.get(send_key("never")) is None


@pytest.mark.parametrize("settle", ["sent", "unknown", "resolved", "released"])
async def test_renew_of_a_settled_claim_raises(journal: Journal, settle: str) -> None:
    key = batch_key("c", 0)
    await claim(journal, key, "w1", campaign="c", batch=0)
    if settle == "sent":
        await journal.mark_sent(
            key, owner="w1", package_id=4, recipient_count=1, estimated_credits=None
        )
    elif settle == "unknown":
        await journal.mark_unknown(key, owner="w1", detail="dropped")
    elif settle == "resolved":
        await journal.mark_unknown(key, owner="w1", detail="dropped")
        await journal.resolve(key, package_id=4)
    else:
        await journal.release(key, owner="w1")
    before = await journal.get(key)

    with pytest.raises(ClaimLostError) as lost:
        await journal.renew(key, owner="w1", lease=LEASE)

    assert lost.value.record == before
    assert await journal.get(key) == before


async def test_renew_after_the_retention_passed_finds_no_record(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("k")
    await claim(journal, key, "w1", retention=60)
    clock.advance(61)

    with pytest.raises(ClaimLostError) as lost:
        await journal.renew(key, owner="w1", lease=LEASE)

    assert lost.value.record is None
    assert await journal.get(key) is None


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "30", True])
async def test_renew_with_a_bad_lease_is_refused_and_changes_nothing(
    journal: Journal, bad: object
) -> None:
    key = send_key("k")
    mine = (await claim(journal, key, "w1")).record

    with pytest.raises(InvalidRequestError, match="lease"):
        await journal.renew(key, owner="w1", lease=bad)  # type: ignore[arg-type]

    assert await journal.get(key) == mine


# --- settling a claim ---------------------------------------------------------------------


async def test_mark_sent_records_the_package(journal: Journal, clock: FakeClock) -> None:
    key = batch_key("c", 0)
    await claim(journal, key, "w1", campaign="c", batch=0, meta={"lines": [1]})
    clock.advance(2)

    sent = await journal.mark_sent(
        key, owner="w1", package_id=123, recipient_count=1000, estimated_credits=1200
    )

    assert (sent.state, sent.package_id, sent.recipient_count) == (RecordState.SENT, 123, 1000)
    assert (sent.estimated_credits, sent.lease_expires, sent.updated_at) == (1200, None, clock.now)
    assert (sent.campaign, sent.batch, sent.meta) == ("c", 0, {"lines": [1]})
    assert await journal.get(key) == sent
    # Retried after a lost answer: the same write is accepted, another one is not.
    assert (
        await journal.mark_sent(
            key, owner="w1", package_id=123, recipient_count=1000, estimated_credits=1200
        )
        == sent
    )
    with pytest.raises(ClaimLostError) as lost:
        await journal.mark_sent(
            key, owner="w1", package_id=124, recipient_count=1000, estimated_credits=None
        )
    assert lost.value.record == sent


async def test_mark_unknown_keeps_the_record_and_says_why(journal: Journal) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")

    unknown = await journal.mark_unknown(key, owner="w1", detail="ReadTimeout")

    assert (unknown.state, unknown.detail, unknown.lease_expires) == (
        RecordState.UNKNOWN,
        "ReadTimeout",
        None,
    )
    assert await journal.mark_unknown(key, owner="w1", detail="again") == unknown
    with pytest.raises(ClaimLostError):
        await journal.mark_sent(
            key, owner="w1", package_id=1, recipient_count=1, estimated_credits=None
        )
    assert not (await claim(journal, key, "w2")).claimed


async def test_release_forgets_the_claim(journal: Journal) -> None:
    key = batch_key("c", 4)
    await claim(journal, key, "w1", campaign="c", batch=4)

    await journal.release(key, owner="w1")

    assert await journal.get(key) is None
    assert await journal.records(campaign="c") == []
    assert await journal.unresolved() == []
    await journal.release(key, owner="w1")  # nothing left: a no-op
    assert (await claim(journal, key, "w2", campaign="c", batch=4)).claimed


async def test_another_owner_cannot_settle_or_release_a_claim(journal: Journal) -> None:
    key = send_key("k")
    mine = (await claim(journal, key, "w1")).record

    with pytest.raises(ClaimLostError, match="no longer this owner's"):
        await journal.mark_sent(
            key, owner="w2", package_id=1, recipient_count=1, estimated_credits=None
        )
    with pytest.raises(ClaimLostError):
        await journal.mark_unknown(key, owner="w2", detail="x")
    with pytest.raises(ClaimLostError):
        await journal.release(key, owner="w2")
    with pytest.raises(ClaimLostError) as lost:
        await journal.mark_sent(
            send_key("never"), owner="w1", package_id=1, recipient_count=1, estimated_credits=None
        )
    assert lost.value.record is None
    assert await journal.get(key) == mine


async def test_a_stale_owner_cannot_overwrite_a_newer_record(
    journal: Journal, clock: FakeClock
) -> None:
    key = batch_key("c", 0)
    await claim(journal, key, "stale", campaign="c", batch=0)
    clock.advance(LEASE + 1)
    assert await journal.resolve(key, package_id=None) is None  # the panel showed nothing
    newer = (await claim(journal, key, "fresh", campaign="c", batch=0)).record

    with pytest.raises(ClaimLostError):
        await journal.mark_sent(
            key, owner="stale", package_id=99, recipient_count=1, estimated_credits=None
        )
    with pytest.raises(ClaimLostError):
        await journal.mark_unknown(key, owner="stale", detail="late")
    with pytest.raises(ClaimLostError):
        await journal.release(key, owner="stale")
    with pytest.raises(ClaimLostError) as lost:
        await journal.renew(key, owner="stale", lease=LEASE)
    assert lost.value.record == newer
    assert await journal.get(key) == newer

    sent = await journal.mark_sent(
        key, owner="fresh", package_id=5, recipient_count=1, estimated_credits=None
    )
    with pytest.raises(ClaimLostError):
        await journal.mark_sent(
            key, owner="stale", package_id=99, recipient_count=1, estimated_credits=None
        )
    assert await journal.get(key) == sent


# --- resolving by hand --------------------------------------------------------------------


async def test_resolving_an_unknown_record_with_a_package_id(
    journal: Journal, clock: FakeClock
) -> None:
    key = batch_key("c", 1)
    await claim(journal, key, "w1", campaign="c", batch=1)
    await journal.mark_unknown(key, owner="w1", detail="dropped")

    resolved = await journal.resolve(key, package_id=77, recipient_count=999)

    assert resolved is not None
    assert (resolved.state, resolved.package_id, resolved.recipient_count) == (
        RecordState.SENT,
        77,
        999,
    )
    assert resolved.owner is None
    assert await journal.get(key) == resolved
    assert await journal.unresolved() == []
    assert await journal.resolve(key, package_id=77) == resolved
    with pytest.raises(JournalError, match="SENT as package 77"):
        await journal.resolve(key, package_id=78)
    with pytest.raises(ClaimLostError):
        await journal.mark_sent(
            key, owner="w1", package_id=77, recipient_count=1, estimated_credits=None
        )


async def test_resolving_an_expired_claim_as_not_sent_deletes_it(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")
    with pytest.raises(SendInProgressError):
        await journal.resolve(key, package_id=None)
    clock.advance(LEASE)

    assert await journal.resolve(key, package_id=None) is None

    assert await journal.get(key) is None
    assert await journal.unresolved() == []
    with pytest.raises(JournalError, match="nothing to resolve"):
        await journal.resolve(key, package_id=None)


@pytest.mark.parametrize("bad", ["77", True, 7.0, 0, -5])
async def test_resolving_with_a_package_id_not_a_positive_integer_is_refused(
    journal: Journal, clock: FakeClock, bad: object
) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")
    clock.advance(LEASE)

    with pytest.raises(JournalError, match=f"package id {bad!r} for 'send:k'"):
        await journal.resolve(key, package_id=bad)  # type: ignore[arg-type]

    record = await journal.get(key)
    assert record is not None
    assert record.effective_state(clock()) is RecordState.UNKNOWN


# --- listings -----------------------------------------------------------------------------


async def test_listings_by_campaign_and_effective_state(journal: Journal, clock: FakeClock) -> None:
    for index in (10, 2, 0, 1):
        await claim(
            journal, batch_key("spring", index), f"w{index}", campaign="spring", batch=index
        )
    await claim(journal, batch_key("autumn", 0), "a", campaign="autumn", batch=0)
    await claim(journal, send_key("single"), "s")
    await journal.mark_sent(
        batch_key("spring", 0), owner="w0", package_id=1, recipient_count=5, estimated_credits=5
    )
    await journal.mark_unknown(batch_key("spring", 1), owner="w1", detail="timeout")
    await journal.claim(
        batch_key("spring", 2), fingerprint=FP, owner="x", lease=1, campaign="spring", batch=2
    )  # already claimed by w2: unchanged
    clock.advance(LEASE)
    live = await claim(journal, batch_key("spring", 3), "w3", campaign="spring", batch=3)

    spring = await journal.records(campaign="spring")
    assert [r.batch for r in spring] == [0, 1, 2, 3, 10]
    assert len(await journal.records()) == 7
    sent = await journal.records(campaign="spring", states=[RecordState.SENT])
    assert [r.package_id for r in sent] == [1]
    unknown = await journal.records(campaign="spring", states={RecordState.UNKNOWN})
    assert [r.batch for r in unknown] == [1, 2, 10]  # expired claims read UNKNOWN
    claimed = await journal.records(states={RecordState.CLAIMED})
    assert claimed == [live.record]

    unresolved = await journal.unresolved(campaign="spring")
    assert [r.batch for r in unresolved] == [1, 2, 3, 10]
    everywhere = await journal.unresolved()
    assert [r.key for r in everywhere] == [
        send_key("single"),
        batch_key("autumn", 0),
        *(batch_key("spring", i) for i in (1, 2, 3, 10)),
    ]


async def test_a_single_send_is_forgotten_after_its_retention(
    journal: Journal, clock: FakeClock
) -> None:
    key = send_key("otp")
    await journal.claim(key, fingerprint=FP, owner="w1", lease=LEASE, retention=60)
    await journal.mark_sent(key, owner="w1", package_id=1, recipient_count=1, estimated_credits=1)
    await claim(journal, batch_key("c", 0), "w1", campaign="c", batch=0)
    clock.advance(59)
    assert (await journal.get(key)) is not None
    clock.advance(1)

    assert await journal.get(key) is None
    assert [r.key for r in await journal.records()] == [batch_key("c", 0)]
    again = await journal.claim(key, fingerprint="new", owner="w2", lease=LEASE, retention=60)
    assert again.claimed
    assert again.record.fingerprint == "new"


# --- campaigns ----------------------------------------------------------------------------


async def test_campaign_headers_are_stored_once(journal: Journal) -> None:
    assert await journal.get_campaign("spring") is None

    first = await journal.put_campaign("spring", {"sender": "ACME", "batch_size": 1000})
    second = await journal.put_campaign("spring", {"sender": "OTHER", "batch_size": 10})
    await journal.put_campaign("autumn", {"sender": "ACME"})

    assert first == second == {"sender": "ACME", "batch_size": 1000}
    assert await journal.get_campaign("spring") == first
    assert await journal.campaigns() == {"autumn": {"sender": "ACME"}, "spring": first}
    with pytest.raises(InvalidRequestError, match="campaign header"):
        await journal.put_campaign("bad", {"when": object()})


async def test_headers_and_records_outlive_the_handle(open_durable: Opener) -> None:
    async with open_durable() as first:
        await first.put_campaign("c", {"n": 1})
        record = (await claim(first, batch_key("c", 0), "w1", campaign="c", batch=0)).record

    async with open_durable() as second:
        assert await second.get(batch_key("c", 0)) == record
        assert await second.campaigns() == {"c": {"n": 1}}


async def test_a_closed_journal_raises(open_journal: Opener) -> None:
    journal = open_journal()
    async with journal:
        pass
    await journal.aclose()  # closing twice is fine

    with pytest.raises(JournalUnavailableError, match="closed"):
        await journal.get(send_key("k"))
    with pytest.raises(JournalUnavailableError, match="closed"):
        await claim(journal, send_key("k"), "w1")


async def test_records_are_hashable_values(journal: Journal) -> None:
    record = (await claim(journal, send_key("k"), "w1", meta={"a": 1})).record
    assert {record, await journal.get(send_key("k"))} == {record}


async def test_a_claim_whose_answer_was_lost_is_undone_by_release(journal: Journal) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")  # written, but say the caller never heard back

    await journal.release(key, owner="w1")
    await journal.release(key, owner="w1")

    assert await journal.get(key) is None


async def test_a_repeated_claim_shows_the_caller_its_own_token(journal: Journal) -> None:
    key = send_key("k")
    await claim(journal, key, "w1")

    again = await claim(journal, key, "w1")

    assert not again.claimed
    assert again.record.owner == "w1"
    assert (
        await journal.mark_sent(
            key, owner="w1", package_id=3, recipient_count=1, estimated_credits=None
        )
    ).package_id == 3
