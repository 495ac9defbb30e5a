"""Durable sends: the client's use of a `Journal` for idempotency keys and campaigns.

One key's send goes: claim (committed right before the first HTTP attempt, through the
request's `before_attempt` hook, and renewed right before each retry), the request, then SENT
with the package id; a certain failure releases the claim, an ambiguous one (or a
cancellation once the claim is written) marks it UNKNOWN. A key that already holds a record
is never sent again: a SENT record with the same fingerprint is replayed, anything else is
reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import attrs
import orjson

from ._config import ClientSettings
from ._errors import (
    CampaignMismatchError,
    ClaimLostError,
    ConfigurationError,
    IdempotencyKeyReusedError,
    JournalError,
    OutcomeUnknownError,
    SendInProgressError,
    SentNotRecordedError,
    VairoError,
)
from ._journal import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Journal,
    JournalRecord,
    RecordState,
    batch_key,
    fingerprint,
    new_owner,
)
from ._models import BatchState, Message, Submission
from ._validate import describe, is_number

__all__ = [
    "BatchEntry",
    "CampaignJournal",
    "Durable",
    "Existing",
    "Replayed",
    "Settled",
    "config_problems",
    "require",
]

logger = logging.getLogger("vairo_async")

_HEADER_VERSION = 1


def config_problems(
    journal: object, retention: object, lease: object, settings: ClientSettings | None = None
) -> list[str]:
    """The client's journal settings that are unusable, one line each.

    With a journal and the client's checked `settings`, a lease shorter than one attempt
    and its wait is refused too: the claim is renewed only before each attempt.
    """
    problems = []
    if journal is not None and not isinstance(journal, Journal):
        problems.append(f"journal={describe(journal)}: must be a Journal (or None)")
    for name, value in (("idempotency_retention", retention), ("journal_lease", lease)):
        if not is_number(value) or value <= 0:
            problems.append(f"{name}={describe(value)}: must be a number of seconds > 0")
    if journal is not None and settings is not None and is_number(lease) and lease > 0:
        problems.extend(_lease_problems(lease, settings))
    return problems


def _lease_problems(lease: float, settings: ClientSettings) -> list[str]:
    """A line when `lease` may pass between two renewals: during one attempt and its wait."""
    http_client = settings.http_client
    timeout = settings.http_timeout if http_client is None else http_client.timeout
    parts = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    limits = [part for part in parts if part is not None]
    if not limits:
        return []  # an attempt without a timeout has no bound to check the lease against
    attempt = max(limits)
    wait = max(settings.retry_backoff_max, settings.retry_after_max) if settings.max_retries else 0
    if lease >= attempt + wait:
        return []
    return [
        f"journal_lease={describe(lease)}: shorter than one attempt and its wait can take, "
        f"{attempt + wait:g} s (timeout {attempt:g} s + the longest retry wait {wait:g} s, "
        "from retry_backoff_max and retry_after_max); the claim is renewed only before each "
        "attempt"
    ]


def _clock_of(journal: Journal) -> Callable[[], float]:
    # The stores compare leases on their own clock; a record's state is read on the same one.
    clock = getattr(journal, "_clock", None)
    return clock if callable(clock) else time.time


def _content(kind: str, body: bytes) -> str:
    """The fingerprint of a send: its kind and its request body, which holds the sender,
    `tr_char` and every number and text in order (built for the request anyway).

    The body's bytes are fixed by `encode_send`; a version that encoded them otherwise would
    see a rerun's batches as changed (a mismatch, never a second send).
    """
    return fingerprint(kind, hashlib.sha256(body).hexdigest())


async def _shielded(write: Awaitable[Any]) -> Any:
    """Run a journal write to its end even if the caller is cancelled meanwhile.

    A write cut off half-way may or may not have reached the store; finishing it keeps the
    record true. A second cancellation leaves the write running and re-raises.
    """
    future = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])  # a second cancellation leaves it running
        raise


class Replayed(Exception):
    """The key's SENT record matched: its package is the answer, nothing is sent."""

    def __init__(self, record: JournalRecord) -> None:
        self.record = record
        super().__init__(record.key)


class Existing(Exception):
    """The claim found a record: the key is not this sender's to send."""

    def __init__(self, record: JournalRecord) -> None:
        self.record = record
        super().__init__(record.key)


class _Entry:
    """One key's claim, its request and its settlement.

    Args:
        journal: Where the key is recorded.
        key: The journal key.
        fingerprint: What the key sends.
        lease: Seconds the claim is live.
        claim_args: `campaign`, `batch`, `retention`, `meta` for `Journal.claim`.
    """

    def __init__(
        self,
        journal: Journal,
        key: str,
        fingerprint: str,
        lease: float,
        **claim_args: Any,
    ) -> None:
        self.journal = journal
        self.key = key
        self.fingerprint = fingerprint
        self.owner = new_owner()
        self._lease = lease
        self._claim_args = claim_args
        self.claimed = False
        #: The package id, once the request was answered.
        self.package_id: int | None = None

    async def claim(self) -> None:
        """Claim the key (committed when this returns); raise `Existing` if it has a record.

        Raises:
            JournalUnavailableError: The store could not be written: nothing is sent.
        """
        try:
            claim = await self.journal.claim(
                self.key,
                fingerprint=self.fingerprint,
                owner=self.owner,
                lease=self._lease,
                **self._claim_args,
            )
        except BaseException:
            # The claim may have been written before its answer was lost: undo it.
            with contextlib.suppress(Exception):
                await _shielded(self.journal.release(self.key, owner=self.owner))
            raise
        record = claim.record
        if claim.claimed or (record.owner == self.owner and record.state is RecordState.CLAIMED):
            self.claimed = True
            return
        raise Existing(record)

    async def before_attempt(self, number: int) -> None:
        """The request's hook: the claim comes right before the first HTTP attempt, and is
        renewed right before each retry, so the lease need only outlast one attempt.

        Raises:
            Existing: (first attempt) The key already had a record; nothing is sent.
            ClaimLostError: (a retry) The key was resolved by hand, perhaps claimed anew,
                after the lease passed: this attempt is not made (`attempt` says which).
            JournalUnavailableError: The store could not be written: nothing more is sent.
        """
        if number == 1:
            await self.claim()
            return
        try:
            await self.journal.renew(self.key, owner=self.owner, lease=self._lease)
        except ClaimLostError as exc:
            self.claimed = False  # resolved by hand, perhaps claimed anew: leave it alone
            raise ClaimLostError(self.key, exc.record, attempt=number) from None

    async def run(self, request: Awaitable[int], recipient_count: int, credits: int) -> int:
        """Await `request` (whose hook is `before_attempt`), then settle the key's record.

        Raises:
            Existing: The key already had a record; nothing was sent.
            SentNotRecordedError: Sent, but SENT could not be written (logged at ERROR).
            BaseException: Whatever the request raised, after the record was settled.
        """
        try:
            package_id = await request
        except Existing:
            raise
        except OutcomeUnknownError as exc:
            await self._settle_unknown(str(exc.error))
            raise
        except VairoError:
            await self._release()
            raise
        except BaseException as exc:  # cancelled, or a failure that proves nothing
            await self._settle_unknown(f"{type(exc).__name__} while the request was in flight")
            raise
        self.package_id = package_id
        try:
            await _shielded(
                self.journal.mark_sent(
                    self.key,
                    owner=self.owner,
                    package_id=package_id,
                    recipient_count=recipient_count,
                    estimated_credits=credits,
                )
            )
        except Exception as exc:
            logger.error(
                "package %d was sent, but the journal could not record it for %r: %s",
                package_id,
                self.key,
                exc,
            )
            raise SentNotRecordedError(self.key, package_id) from exc
        return package_id

    async def _settle_unknown(self, detail: str) -> None:
        if not self.claimed:
            return
        try:
            await _shielded(self.journal.mark_unknown(self.key, owner=self.owner, detail=detail))
        except Exception as exc:
            # The claim stays CLAIMED and reads UNKNOWN once its lease passes: still safe.
            logger.warning("could not mark %r UNKNOWN in the journal: %s", self.key, exc)

    async def _release(self) -> None:
        if not self.claimed:
            return
        try:
            await _shielded(self.journal.release(self.key, owner=self.owner))
        except Exception as exc:
            # Left CLAIMED, the key reads UNKNOWN later: never resent without a person.
            logger.warning("could not release %r in the journal: %s", self.key, exc)


def _unknown(what: str, record: JournalRecord, now: float) -> OutcomeUnknownError:
    state = record.effective_state(now)
    detail = f": {record.detail}" if record.detail else ""
    cause = JournalError(
        f"{what} is {state.name} in the journal{detail}; check the VairoSMS panel and "
        "resolve it (journal.resolve)"
    )
    return OutcomeUnknownError(cause)


class Durable:
    """A client's journal with its settings: runs single sends under idempotency keys.

    Args:
        journal: The store (the client does not close it).
        retention: Seconds a single send's record is kept.
        lease: Seconds a claim is live.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        retention: float = DEFAULT_RETENTION,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.journal = journal
        self.retention = float(retention)
        self.lease = float(lease)
        self._now = _clock_of(journal)

    async def send(
        self,
        idempotency_key: str,
        key: str,
        body: bytes,
        count: int,
        credits: int,
        submit: Callable[[Callable[[int], Awaitable[None]]], Awaitable[int]],
    ) -> Submission:
        """Send `body` (`count` messages) once under `key` (`send_key(idempotency_key)`), or
        replay its record.

        Raises:
            IdempotencyKeyReusedError: The key was used for other content.
            SendInProgressError: The key's claim is live elsewhere.
            OutcomeUnknownError: The key's earlier send may have gone out (UNKNOWN, or a
                claim whose lease passed); nothing is sent.
            SentNotRecordedError: Sent, but the SENT record could not be written.
            JournalUnavailableError: The claim could not be written; nothing was sent.
        """
        entry = _Entry(
            self.journal,
            key,
            _content("send", body),
            self.lease,
            retention=self.retention,
        )
        try:
            package_id = await entry.run(submit(entry.before_attempt), count, credits)
        except Existing as existing:
            record = existing.record
            if record.fingerprint != entry.fingerprint:
                raise IdempotencyKeyReusedError(idempotency_key, record) from None
            state = record.effective_state(self._now())
            if state is RecordState.SENT:
                assert record.package_id is not None
                return Submission(
                    record.package_id,
                    count if record.recipient_count is None else record.recipient_count,
                    estimated_credits=credits
                    if record.estimated_credits is None
                    else record.estimated_credits,
                    replayed=True,
                )
            if state is RecordState.CLAIMED:
                raise SendInProgressError(idempotency_key, record) from None
            raise _unknown(f"idempotency key {idempotency_key!r}", record, self._now()) from None
        return Submission(package_id, count, estimated_credits=credits)

    def campaign(
        self, campaign: str, *, sender: str, batch_size: int, exclude: Collection[str]
    ) -> CampaignJournal:
        """The journal of one campaign run with these parameters."""
        return CampaignJournal(
            self.journal,
            campaign,
            {
                "version": _HEADER_VERSION,
                "sender": sender,
                "batch_size": batch_size,
                "exclude": fingerprint(sorted(exclude)),
            },
            lease=self.lease,
            now=self._now,
        )


def require(durable: Durable | None, what: str, value: object) -> Durable:
    """The client's `Durable`, which `what=value` needs.

    Raises:
        ConfigurationError: The client has no journal; nothing is sent.
    """
    if durable is None:
        raise ConfigurationError(
            f"{what}={describe(value)} needs a journal: AsyncVairoClient(journal=...)"
        )
    return durable


@attrs.frozen
class Settled:
    """A batch the journal already settles on a rerun: no request is made for it."""

    state: BatchState
    package_id: int | None = None
    error: VairoError | None = None
    replayed: bool = False


def _json_refs(rows: Sequence[Message]) -> Mapping[str, Any] | None:
    refs = [row.ref for row in rows]
    if refs.count(None) == len(refs):
        return None  # nothing to find the rows by: keep the record small
    try:
        orjson.dumps(refs)
    except TypeError:
        return None
    return {"refs": refs}


class CampaignJournal:
    """One campaign's records: its header checked once, each batch claimed before its request.

    Args:
        journal: The store.
        campaign: The campaign id.
        header: The parameters that decide how rows form batches.
        lease: Seconds a batch's claim is live.
        now: The store's clock.
    """

    def __init__(
        self,
        journal: Journal,
        campaign: str,
        header: Mapping[str, Any],
        *,
        lease: float,
        now: Callable[[], float],
    ) -> None:
        self.journal = journal
        self.campaign = campaign
        self._header = dict(header)
        self.lease = lease
        self._now = now
        self._known: dict[int, JournalRecord] = {}

    async def open(self) -> None:
        """Write the header on the first run, or check it on a rerun and read its records.

        Raises:
            CampaignMismatchError: The campaign ran before with other parameters.
            JournalUnavailableError: The store could not be used; nothing was sent.
        """
        stored = await self.journal.get_campaign(self.campaign)
        if stored is None:
            stored = await self.journal.put_campaign(self.campaign, self._header)
        if dict(stored) != self._header:
            differing = sorted(
                name
                for name in {*stored, *self._header}
                if stored.get(name) != self._header.get(name)
            )
            raise CampaignMismatchError(
                self.campaign, "other " + ", ".join(differing) + " than the journal's"
            )
        for record in await self.journal.records(campaign=self.campaign):
            if record.batch is not None:
                self._known[record.batch] = record

    def prepare(self, index: int, body: bytes, rows: Sequence[Message]) -> BatchEntry | Settled:
        """The entry to send batch `index` (its request `body`, its caller's `rows`) under,
        or how the journal already settles it.

        Raises:
            CampaignMismatchError: The batch's rows differ from those recorded for it.
        """
        digest = _content("batch", body)
        record = self._known.pop(index, None)
        if record is not None:
            return self.settled(index, record, digest)
        return BatchEntry(self, index, digest, rows)

    def settled(self, index: int, record: JournalRecord, digest: str) -> Settled:
        """How an existing record settles batch `index` (never by sending it again)."""
        if record.fingerprint != digest:
            raise CampaignMismatchError(
                self.campaign, "the batch's rows differ from the journal's", batch=index
            )
        if record.state is RecordState.SENT:
            return Settled(BatchState.SENT, package_id=record.package_id, replayed=True)
        error = _unknown(f"batch {index} of campaign {self.campaign!r}", record, self._now())
        return Settled(BatchState.UNKNOWN, error=error, replayed=True)


class BatchEntry:
    """One batch's claim and settlement within its campaign."""

    def __init__(
        self, campaign: CampaignJournal, index: int, digest: str, rows: Sequence[Message]
    ) -> None:
        self._campaign = campaign
        self._index = index
        self._digest = digest
        self._entry = _Entry(
            campaign.journal,
            batch_key(campaign.campaign, index),
            digest,
            campaign.lease,
            campaign=campaign.campaign,
            batch=index,
            meta=_json_refs(rows),
        )

    @property
    def package_id(self) -> int | None:
        """The batch's package id, once its request was answered."""
        return self._entry.package_id

    async def before_attempt(self, number: int) -> None:
        """Claim the batch before its first attempt, renew the claim before each retry."""
        await self._entry.before_attempt(number)

    async def run(self, request: Awaitable[int], recipient_count: int, credits: int) -> int:
        """Await the batch's request (whose hook calls `before_attempt`), settle its record.

        Raises:
            Replayed: Another run recorded the batch SENT meanwhile.
            OutcomeUnknownError: Another run holds it UNKNOWN or CLAIMED, or the request's
                outcome is unknown.
            CampaignMismatchError: Another run recorded other rows for the batch.
            SentNotRecordedError: Sent (its `package_id`), but not recorded.
        """
        try:
            return await self._entry.run(request, recipient_count, credits)
        except Existing as existing:
            settled = self._campaign.settled(self._index, existing.record, self._digest)
            if settled.state is BatchState.SENT:
                raise Replayed(existing.record) from None
            assert settled.error is not None
            raise settled.error from None
