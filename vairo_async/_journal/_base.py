"""The journal's protocol, its records, and the helpers every store shares.

A journal records each send on the client side, before the request: the API has no
idempotency key and no way to look a package up, so intent written before the first HTTP
attempt is the only thing that survives a crash between the request and its answer.
"""

from __future__ import annotations

import enum
import hashlib
import math
import secrets
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import attrs
import orjson

from .._errors import InvalidRequestError, JournalError, SendInProgressError

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "MAX_KEY_LENGTH",
    "Claim",
    "Clock",
    "Journal",
    "JournalRecord",
    "RecordState",
    "batch_key",
    "check_claim_args",
    "check_lease",
    "check_package_id",
    "check_resolvable",
    "dump_json",
    "fingerprint",
    "load_json",
    "new_owner",
    "send_key",
    "sort_key",
]

Clock = Callable[[], float]
"""Seconds since the epoch, as `time.time` gives them; stores take one so tests steer time."""

DEFAULT_LEASE = 120.0
"""Seconds a claim is live for unless the caller says otherwise."""
DEFAULT_RETENTION = 24 * 3600.0
"""Seconds a single send's record is kept (idempotency keys), counted from its claim."""
MAX_KEY_LENGTH = 255
"""The longest idempotency key or campaign id accepted (as Stripe's keys)."""

_SEND_PREFIX = "send:"
_BATCH_PREFIX = "batch:"


class RecordState(enum.Enum):
    """The state of a journal record, as stored.

    A key with no record was never sent, or certainly not sent (its claim was released).

    .. versionadded:: 0.2.0
    """

    CLAIMED = "claimed"
    """In flight: an owner holds the key until its lease passes."""
    SENT = "sent"
    """The server accepted the package: `package_id` is set."""
    UNKNOWN = "unknown"
    """The send may or may not have been acted on: never resent automatically."""


@attrs.frozen(kw_only=True)
class JournalRecord:
    """One key's record in a journal.

    Attributes:
        key: The journal key (`send_key(...)` or `batch_key(...)`).
        campaign: The campaign a batch record belongs to; None for a single send.
        batch: The batch's index within its campaign; None for a single send.
        state: The state as stored; read `effective_state(now)` to act on it.
        fingerprint: A digest of what the key sends (numbers, texts, sender, ...).
        owner: The token of the sender that claimed the key (None once resolved by hand).
        lease_expires: When a CLAIMED record's lease passes (epoch seconds); None otherwise.
        package_id: The package id of a SENT record.
        recipient_count: How many messages the package holds, when known.
        estimated_credits: The package's estimated credits, when known.
        detail: Why the record is UNKNOWN (the failure behind the uncertainty).
        meta: JSON data the caller attached to the claim: the rows' line numbers, its own
            references; enough for a person to find an unknown batch's rows.
        created_at: When the key was claimed (epoch seconds).
        updated_at: When the record last changed (epoch seconds).
        expires_at: When a single send's record is forgotten; None for campaign records,
            which never expire on their own.

    .. versionadded:: 0.2.0
    """

    key: str
    campaign: str | None = None
    batch: int | None = None
    state: RecordState
    fingerprint: str
    owner: str | None = None
    lease_expires: float | None = None
    package_id: int | None = None
    recipient_count: int | None = None
    estimated_credits: int | None = None
    detail: str | None = None
    meta: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    created_at: float
    updated_at: float
    expires_at: float | None = None

    def effective_state(self, now: float) -> RecordState:
        """The state to act on at `now`: a CLAIMED record whose lease has passed is UNKNOWN.

        An expired claim is never "run again": its sender may have died after the request.
        """
        if (
            self.state is RecordState.CLAIMED
            and self.lease_expires is not None
            and self.lease_expires <= now
        ):
            return RecordState.UNKNOWN
        return self.state

    def is_expired(self, now: float) -> bool:
        """True when a single send's retention has passed: the key reads as never used."""
        return self.expires_at is not None and self.expires_at <= now


@attrs.frozen
class Claim:
    """The answer of `Journal.claim`.

    Attributes:
        claimed: True when this call wrote the claim: the caller may send, and must then call
            `mark_sent`, `mark_unknown` or `release` with its owner token. False when the key
            already had a record: nothing was written, and the caller must not send.
        record: The new claim, or the record the key already held (unchanged).

    .. versionadded:: 0.2.0
    """

    claimed: bool
    record: JournalRecord


@runtime_checkable
class Journal(Protocol):
    """Where sends are recorded so that crashes and redeliveries never send twice.

    A send is claimed (and committed) right before its first HTTP attempt, renewed before
    each retry, and marked SENT right after the answer; a certain failure releases the
    claim, an ambiguous one marks it UNKNOWN. Every write after the claim is a
    compare-and-set on the claimer's owner token, so a stale sender can never overwrite a
    newer record. Times come from the store's clock.

    Single sends use `send_key(user_key)` and a retention; campaign batches use
    `batch_key(campaign, index)`, a `campaign` and a `batch`, and never expire. Implementations:
    `MemoryJournal` (tests), `SqliteJournal` (one machine), `RedisJournal` (many machines).
    Each is an async context manager that closes itself.

    A write that is cancelled, or that fails with `JournalUnavailableError`, may or may not
    have reached the store. The owner's writes (`renew`, `mark_sent`, `mark_unknown`,
    `release`) may be repeated with the same arguments, so a caller shields them
    (`asyncio.shield`) or repeats them. A claim whose answer was lost is undone by
    `release(key, owner=owner)`, which leaves a key with no record alone.

    .. versionadded:: 0.2.0
    """

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
        """Claim `key` atomically for `owner`, or return the record it already holds.

        When the key has no record, or only a single send's record whose retention passed,
        a CLAIMED record is written with the owner token and a lease of `lease` seconds, and
        `Claim(claimed=True, record=...)` returned. Otherwise nothing is written and
        `Claim(claimed=False, record=<the existing record>)` is returned: the caller compares
        its fingerprint and reads its `effective_state`. A claim repeated after its answer
        was lost returns `claimed=False` with the caller's own owner token on the record: it
        is the caller's claim. A claim cancelled before it returns may have been written;
        `release(key, owner=owner)` removes it (a no-op otherwise).

        Args:
            key: The journal key: `send_key(...)` or `batch_key(...)`.
            fingerprint: A digest of what is sent (see `fingerprint`).
            owner: A token unique to this attempt (see `new_owner`).
            lease: Seconds the claim is live; after it the record reads UNKNOWN.
            campaign: The campaign of a batch record (then `batch` too).
            batch: The batch's index in its campaign.
            retention: Seconds a single send's record is kept, from now; None keeps it
                forever. Not allowed with `campaign`.
            meta: JSON data kept with the record (line numbers, references).

        Raises:
            JournalUnavailableError: The store could not be reached: nothing was claimed.
            InvalidRequestError: A bad argument, named in the message.
        """
        ...

    async def renew(self, key: str, *, owner: str, lease: float) -> JournalRecord:
        """Make `owner`'s claim live until `lease` seconds from now; return the record.

        A sender renews its claim before every retry, so the lease need only cover one
        attempt and its wait. A claim whose lease passed is still the owner's until it is
        resolved by hand (and perhaps claimed anew): renewing it makes it live again.
        Renewing twice is safe.

        Raises:
            ClaimLostError: The key holds no record, another owner's claim, or a SENT or
                UNKNOWN record: it is not this owner's to send any more, and nothing changed.
            JournalUnavailableError: The store could not be written.
            InvalidRequestError: `lease` is not a number of seconds > 0.
        """
        ...

    async def mark_sent(
        self,
        key: str,
        *,
        owner: str,
        package_id: int,
        recipient_count: int,
        estimated_credits: int | None,
    ) -> JournalRecord:
        """Record the package id of `owner`'s claim (live or expired): the record is SENT.

        Repeating the call with the same owner and package id returns the SENT record, so a
        write retried after a lost answer is safe.

        Raises:
            ClaimLostError: The record is not this owner's claim any more.
            JournalUnavailableError: The store could not be written.
        """
        ...

    async def mark_unknown(self, key: str, *, owner: str, detail: str) -> JournalRecord:
        """Mark `owner`'s claim UNKNOWN: the send may have been acted on (`detail` says why).

        Repeating the call on the owner's UNKNOWN record returns it unchanged.

        Raises:
            ClaimLostError: The record is not this owner's claim any more.
            JournalUnavailableError: The store could not be written.
        """
        ...

    async def release(self, key: str, *, owner: str) -> None:
        """Delete `owner`'s claim after a certain failure: the key reads as never sent.

        A key with no record is left alone (released already, or resolved "not sent").

        Raises:
            ClaimLostError: The key holds another owner's claim or a SENT/UNKNOWN record.
            JournalUnavailableError: The store could not be written.
        """
        ...

    async def get(self, key: str) -> JournalRecord | None:
        """The key's record as stored, or None (also for a single send past its retention)."""
        ...

    async def records(
        self, *, campaign: str | None = None, states: Collection[RecordState] | None = None
    ) -> list[JournalRecord]:
        """Every record (of `campaign`, if given) whose effective state is in `states`.

        Sorted by campaign, batch index and key; single sends past their retention are left
        out. `states=None` means every state.
        """
        ...

    async def unresolved(self, *, campaign: str | None = None) -> list[JournalRecord]:
        """The records a person must look at: UNKNOWN ones and CLAIMED ones, live or expired.

        Sorted as `records`. A live claim may still settle by itself; an expired one, and an
        UNKNOWN record, wait for `resolve`.
        """
        ...

    async def resolve(
        self, key: str, *, package_id: int | None, recipient_count: int | None = None
    ) -> JournalRecord | None:
        """Record what the VairoSMS panel shows for an UNKNOWN or expired CLAIMED key.

        A package id makes the record SENT (owner cleared, so the old sender's late writes
        fail) and returns it; None means "not sent" and deletes the record, returning None.
        Resolving a SENT record again with its own package id returns it unchanged.

        Args:
            key: The journal key.
            package_id: The package the panel shows, or None when nothing was sent.
            recipient_count: The package's message count; None keeps the record's.

        Raises:
            SendInProgressError: The key's claim is live: its sender may still settle it.
            JournalError: `package_id` is not a positive integer or None, the key has no
                record, or it is SENT with another package id.
            JournalUnavailableError: The store could not be written.
        """
        ...

    async def put_campaign(self, campaign: str, header: Mapping[str, Any]) -> Mapping[str, Any]:
        """Store a campaign's header (its parameters) unless it has one; return the stored one.

        The caller compares the returned header with its own and raises
        `CampaignMismatchError` when they differ.
        """
        ...

    async def get_campaign(self, campaign: str) -> Mapping[str, Any] | None:
        """A campaign's header, or None when the campaign is unknown."""
        ...

    async def campaigns(self) -> dict[str, Mapping[str, Any]]:
        """Every campaign id with its header, sorted by id."""
        ...

    async def aclose(self) -> None:
        """Release the store's connection or thread; a closed journal raises on use."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError([f"{what} {value!r}: must be a string"])
    if not value or len(value) > MAX_KEY_LENGTH:
        raise InvalidRequestError(
            [f"{what} {value!r}: must be 1 to {MAX_KEY_LENGTH} characters long"]
        )
    return value


def send_key(user_key: str) -> str:
    """The journal key of a single send with idempotency key `user_key`.

    Single sends and campaign batches live in separate namespaces, so no user key can ever
    name a batch record.

    Raises:
        InvalidRequestError: `user_key` is not a string of 1 to 255 characters.

    .. versionadded:: 0.2.0
    """
    return _SEND_PREFIX + _check_name("idempotency_key", user_key)


def batch_key(campaign: str, index: int) -> str:
    """The journal key of batch `index` of `campaign`.

    Raises:
        InvalidRequestError: `campaign` is not a string of 1 to 255 characters, or `index`
            is not a non-negative integer.

    .. versionadded:: 0.2.0
    """
    _check_name("campaign", campaign)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InvalidRequestError([f"batch index {index!r}: must be an integer >= 0"])
    # The index comes last and holds no ":", so campaign "a:1" batch 2 and campaign "a"
    # batch "1:2" cannot meet: the latter is not an index.
    return f"{_BATCH_PREFIX}{campaign}:{index}"


def fingerprint(*parts: object) -> str:
    """A SHA-256 hex digest of JSON-able `parts`, in order: what a key's record must match.

    .. versionadded:: 0.2.0
    """
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_owner() -> str:
    """A fresh random owner token for one claim.

    .. versionadded:: 0.2.0
    """
    return secrets.token_hex(16)


def dump_json(value: Mapping[str, Any], what: str) -> str:
    """`value` as compact JSON text with sorted keys."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise InvalidRequestError([f"{what} {value!r}: not JSON-serialisable ({exc})"]) from None


def load_json(text: str | bytes) -> dict[str, Any]:
    """JSON text back to a dict."""
    value = orjson.loads(text)
    assert isinstance(value, dict)
    return value


def _positive(what: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidRequestError([f"{what} {value!r}: must be a number of seconds > 0"])
    return float(value)


def check_lease(lease: object) -> float:
    """`lease` as seconds, or an `InvalidRequestError` naming it."""
    return _positive("lease", lease)


def check_claim_args(
    key: str,
    *,
    fingerprint: str,
    owner: str,
    lease: float,
    campaign: str | None,
    batch: int | None,
    retention: float | None,
    meta: Mapping[str, Any] | None,
) -> tuple[float, float | None, str]:
    """Check `claim`'s arguments; return the lease, the retention and the meta as JSON."""
    problems: list[str] = []
    if not isinstance(key, str) or not key:
        problems.append(f"key {key!r}: must be a non-empty string")
    if not isinstance(fingerprint, str) or not fingerprint:
        problems.append(f"fingerprint {fingerprint!r}: must be a non-empty string")
    if not isinstance(owner, str) or not owner:
        problems.append(f"owner {owner!r}: must be a non-empty string")
    if (campaign is None) != (batch is None):
        problems.append(f"campaign {campaign!r} and batch {batch!r}: give both or neither")
    if campaign is not None and retention is not None:
        problems.append(f"retention {retention!r}: campaign records never expire")
    if problems:
        raise InvalidRequestError(problems)
    lease_s = _positive("lease", lease)
    retention_s = None if retention is None else _positive("retention", retention)
    return lease_s, retention_s, dump_json(meta or {}, "meta")


def sort_key(record: JournalRecord) -> tuple[str, int, str]:
    """The listing order every store shares: campaign, batch index, key."""
    return (record.campaign or "", -1 if record.batch is None else record.batch, record.key)


def check_package_id(key: str, package_id: int | None) -> None:
    """Raise unless `package_id` may resolve `key`: a positive integer, or None for "not sent"."""
    if package_id is not None and (
        isinstance(package_id, bool) or not isinstance(package_id, int) or package_id < 1
    ):
        raise JournalError(f"package id {package_id!r} for {key!r}: must be a positive integer")


def check_resolvable(
    key: str, record: JournalRecord | None, package_id: int | None, now: float
) -> None:
    """Raise unless `record` may be resolved with `package_id` (see `Journal.resolve`)."""
    check_package_id(key, package_id)
    if record is None:
        raise JournalError(f"no record for {key!r}: nothing to resolve")
    state = record.effective_state(now)
    if state is RecordState.CLAIMED:
        raise SendInProgressError(key, record)
    if state is RecordState.SENT and record.package_id != package_id:
        raise JournalError(
            f"{key!r} is SENT as package {record.package_id}: it cannot be resolved again"
        )
