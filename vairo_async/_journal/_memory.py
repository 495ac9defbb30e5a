"""`MemoryJournal`: the journal in a dict, for tests (it dies with its process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Self

import attrs

from .._errors import ClaimLostError, JournalUnavailableError
from ._base import (
    Claim,
    Clock,
    JournalRecord,
    RecordState,
    check_claim_args,
    check_lease,
    check_resolvable,
    dump_json,
    load_json,
    sort_key,
)

__all__ = ["MemoryJournal"]


class MemoryJournal:
    """A `Journal` held in memory: for tests and examples, not crash-safe.

    Args:
        clock: Seconds since the epoch; `time.time` by default.

    .. versionadded:: 0.2.0
    """

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._records: dict[str, JournalRecord] = {}
        self._campaigns: dict[str, str] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryJournal({len(self._records)} records)"

    def _check_open(self) -> None:
        if self._closed:
            raise JournalUnavailableError("the MemoryJournal is closed")

    def _live(self, key: str, now: float) -> JournalRecord | None:
        record = self._records.get(key)
        if record is not None and record.is_expired(now):
            del self._records[key]
            return None
        return record

    def _owned(self, key: str, owner: str, now: float) -> JournalRecord:
        record = self._live(key, now)
        if record is None or record.state is not RecordState.CLAIMED or record.owner != owner:
            raise ClaimLostError(key, record)
        return record

    def _settle(
        self, key: str, owner: str, done: Callable[[JournalRecord], bool], **changes: Any
    ) -> JournalRecord:
        """Compare-and-set on `owner`'s claim; a record `done` already accepts is returned."""
        self._check_open()
        now = self._clock()
        current = self._live(key, now)
        if current is not None and current.owner == owner and done(current):
            return current
        record = attrs.evolve(
            self._owned(key, owner, now), lease_expires=None, updated_at=now, **changes
        )
        self._records[key] = record
        return record

    async def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        owner: str,
        lease: float,
        campaign: str | None = None,
        batch: int | None = None,
        retention: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Claim:
        """See `Journal.claim`."""
        lease_s, retention_s, meta_json = check_claim_args(
            key,
            fingerprint=fingerprint,
            owner=owner,
            lease=lease,
            campaign=campaign,
            batch=batch,
            retention=retention,
            meta=meta,
        )
        self._check_open()
        now = self._clock()
        existing = self._live(key, now)
        if existing is not None:
            return Claim(False, existing)
        record = JournalRecord(
            key=key,
            campaign=campaign,
            batch=batch,
            state=RecordState.CLAIMED,
            fingerprint=fingerprint,
            owner=owner,
            lease_expires=now + lease_s,
            meta=load_json(meta_json),
            created_at=now,
            updated_at=now,
            expires_at=None if retention_s is None else now + retention_s,
        )
        self._records[key] = record
        return Claim(True, record)

    async def renew(self, key: str, *, owner: str, lease: float) -> JournalRecord:
        """See `Journal.renew`."""
        lease_s = check_lease(lease)
        self._check_open()
        now = self._clock()
        record = attrs.evolve(
            self._owned(key, owner, now), lease_expires=now + lease_s, updated_at=now
        )
        self._records[key] = record
        return record

    async def mark_sent(
        self,
        key: str,
        *,
        owner: str,
        package_id: int,
        recipient_count: int,
        estimated_credits: int | None,
    ) -> JournalRecord:
        """See `Journal.mark_sent`."""
        return self._settle(
            key,
            owner,
            lambda r: r.state is RecordState.SENT and r.package_id == package_id,
            state=RecordState.SENT,
            package_id=package_id,
            recipient_count=recipient_count,
            estimated_credits=estimated_credits,
        )

    async def mark_unknown(self, key: str, *, owner: str, detail: str) -> JournalRecord:
        """See `Journal.mark_unknown`."""
        return self._settle(
            key,
            owner,
            lambda r: r.state is RecordState.UNKNOWN,
            state=RecordState.UNKNOWN,
            detail=detail,
        )

    async def release(self, key: str, *, owner: str) -> None:
        """See `Journal.release`."""
        self._check_open()
        now = self._clock()
        if self._live(key, now) is None:
            return
        self._owned(key, owner, now)
        del self._records[key]

    async def get(self, key: str) -> JournalRecord | None:
        """See `Journal.get`."""
        self._check_open()
        return self._live(key, self._clock())

    async def records(
        self, *, campaign: str | None = None, states: Collection[RecordState] | None = None
    ) -> list[JournalRecord]:
        """See `Journal.records`."""
        self._check_open()
        now = self._clock()
        wanted = None if states is None else frozenset(states)
        found = [
            record
            for record in self._records.values()
            if not record.is_expired(now)
            and (campaign is None or record.campaign == campaign)
            and (wanted is None or record.effective_state(now) in wanted)
        ]
        return sorted(found, key=sort_key)

    async def unresolved(self, *, campaign: str | None = None) -> list[JournalRecord]:
        """See `Journal.unresolved`."""
        self._check_open()
        now = self._clock()
        found = [
            record
            for record in self._records.values()
            if not record.is_expired(now)
            and record.state is not RecordState.SENT
            and (campaign is None or record.campaign == campaign)
        ]
        return sorted(found, key=sort_key)

    async def resolve(
        self, key: str, *, package_id: int | None, recipient_count: int | None = None
    ) -> JournalRecord | None:
        """See `Journal.resolve`."""
        self._check_open()
        now = self._clock()
        record = self._live(key, now)
        check_resolvable(key, record, package_id, now)
        assert record is not None
        if package_id is None:
            del self._records[key]
            return None
        if record.state is RecordState.SENT:
            return record
        resolved = attrs.evolve(
            record,
            state=RecordState.SENT,
            owner=None,
            lease_expires=None,
            package_id=package_id,
            recipient_count=record.recipient_count if recipient_count is None else recipient_count,
            updated_at=now,
        )
        self._records[key] = resolved
        return resolved

    async def put_campaign(self, campaign: str, header: Mapping[str, Any]) -> Mapping[str, Any]:
        """See `Journal.put_campaign`."""
        text = dump_json(header, "campaign header")
        self._check_open()
        return load_json(self._campaigns.setdefault(campaign, text))

    async def get_campaign(self, campaign: str) -> Mapping[str, Any] | None:
        """See `Journal.get_campaign`."""
        self._check_open()
        text = self._campaigns.get(campaign)
        return None if text is None else load_json(text)

    async def campaigns(self) -> dict[str, Mapping[str, Any]]:
        """See `Journal.campaigns`."""
        self._check_open()
        return {name: load_json(self._campaigns[name]) for name in sorted(self._campaigns)}

    async def aclose(self) -> None:
        """Close the journal; its records are gone with it."""
        self._closed = True

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
