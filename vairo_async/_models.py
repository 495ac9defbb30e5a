"""Value types a user sends and receives."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from ._errors import VairoError

__all__ = [
    "BatchOutcome",
    "BatchState",
    "BulkProgress",
    "BulkResult",
    "FailureLog",
    "Message",
    "PackageReport",
    "PackageStatus",
    "Rejection",
    "Submission",
]


@attrs.frozen(kw_only=True)
class Message:
    """One SMS: a recipient and a text.

    Any spelling of a Turkish mobile number is accepted here; it is checked and normalised
    when the message is sent, so a bulk campaign can report a bad row instead of failing.

    Attributes:
        to: The recipient, e.g. `"0539 999 99 99"` or `"5399999999"`.
        text: The message text.
        ref: Anything of the caller's (a customer id, a row number) to find this message
            by again: bulk outcomes and rejections hand back the caller's own `Message`
            objects, `ref` included. It is never sent, and takes no part in equality or
            hashing: two messages with the same number and text are the same SMS.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 `ref`.
    """

    to: str
    text: str
    ref: object = attrs.field(default=None, eq=False)


@attrs.frozen
class Submission:
    """The server accepted a package of messages.

    Attributes:
        package_id: The id to query the package's report with; store it.
        recipient_count: How many messages the package holds.
        estimated_credits: Credits the package should cost: one per SMS segment of each
            message (see `segments`). The report's `credits` is what was charged.
        replayed: True when no request was made: the journal already held this
            idempotency key's SENT record with the same content, and this is that package.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 `replayed`.
    """

    package_id: int
    recipient_count: int
    estimated_credits: int = attrs.field(default=0, kw_only=True)
    replayed: bool = attrs.field(default=False, kw_only=True)


class PackageStatus(enum.IntEnum):
    """A package's state (`paket_durum`).

    A value the API documents no name for becomes a member named `UNKNOWN_<value>`
    instead of an error, so a new server-side state cannot break a running client.

    .. versionadded:: 0.1.0
    """

    FAILED = -1
    SENDING = 0
    COMPLETED = 1

    @property
    def is_final(self) -> bool:
        """True for COMPLETED and FAILED: the package will not change any more."""
        return self is PackageStatus.COMPLETED or self is PackageStatus.FAILED

    @classmethod
    def _missing_(cls, value: object) -> PackageStatus | None:
        if type(value) is not int:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}" if value >= 0 else f"UNKNOWN_MINUS_{-value}"
        member._value_ = value
        return member


@attrs.frozen(kw_only=True)
class FailureLog:
    """The server's log entry for a failed package (the report's `log`).

    Attributes:
        message: What went wrong (`mesaj`), e.g. "... INVALID_SOURCE_ADDRESS".
        id: The log entry's id.
        user_id: The account's user id.
        kind: The entry's type (`tip`), e.g. "error".
        section: The panel section (`bolum`), e.g. "sms".
        api: The `api` field as sent.
        route: The endpoint that was called (`rota`).
        ip: The caller's IP address as the server saw it.
        context: The `context` field as sent.
        created_at: When the entry was written.
        updated_at: When the entry was last changed.
        raw: Every field as received, including ones this SDK does not know.

    .. versionadded:: 0.1.0
    """

    message: str
    id: int | None = None
    user_id: int | None = None
    kind: str | None = None
    section: str | None = None
    api: str | None = None
    route: str | None = None
    ip: str | None = None
    context: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class PackageReport:
    """A package's report (`GonderimBilgisi`).

    Attributes:
        package_id: The package's id.
        sender: The sender name (`sms_baslik`).
        recipient_count: Number of recipients (`numara_toplam`).
        credits: Credits charged (`kredi_toplam`); 0 when the package failed.
        expires_at: When delivery attempts end (`sonlanma_zamani`).
        scheduled_at: The scheduled send time (`ileri_tarih`), or None when not scheduled.
        validity: How long delivery is attempted (`gecerlilik_suresi`).
        status: The package's state (`paket_durum`).
        created_at: When the package was created.
        failure: The server's log entry when the package failed, else None.
        raw: Every field as received, including ones this SDK does not know.

    .. versionadded:: 0.1.0
    """

    package_id: int
    sender: str
    recipient_count: int
    credits: int
    expires_at: datetime
    scheduled_at: datetime | None
    validity: timedelta
    status: PackageStatus
    created_at: datetime
    failure: FailureLog | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


class BatchState(enum.Enum):
    """How one batch of a bulk campaign ended.

    .. versionadded:: 0.1.0
    """

    #: The server accepted the batch; `package_id` is set.
    SENT = "sent"
    #: The batch was certainly not sent (refused, unreachable, or never dispatched).
    FAILED = "failed"
    #: The batch may or may not have been sent: check the panel before resending.
    UNKNOWN = "unknown"


@attrs.frozen
class Rejection:
    """An input row dropped before sending.

    Attributes:
        message: The row as it was given.
        reason: What is wrong with it.

    .. versionadded:: 0.1.0
    """

    message: Message
    reason: str


@attrs.frozen(kw_only=True)
class BatchOutcome:
    """The fate of one batch of a bulk campaign.

    Attributes:
        index: The batch's number in dispatch order, from 0.
        state: SENT, FAILED or UNKNOWN.
        messages: The rows of the batch, the very objects the caller gave (numbers as
            written; they went out in wire form).
        rejected: The bad rows dropped while this batch was formed.
        package_id: The package id when SENT, else None.
        error: The error behind FAILED or UNKNOWN; for a SENT batch whose journal record
            could not be written, the `SentNotRecordedError`; else None.
        estimated_credits: Credits the batch's messages cost, or would have cost.
        replayed: True when no request was made for the batch in this run: the campaign's
            journal already held its record (SENT with its package id, or UNKNOWN).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 `replayed`.
    """

    index: int
    state: BatchState
    messages: tuple[Message, ...]
    rejected: tuple[Rejection, ...] = ()
    package_id: int | None = None
    error: VairoError | None = attrs.field(default=None, eq=False)
    estimated_credits: int = 0
    replayed: bool = False


@attrs.frozen(kw_only=True)
class BulkProgress:
    """Counts of a running campaign, handed to `on_progress` as each batch settles.

    Attributes:
        outcome: The batch that just settled.
        batches: Batches settled so far.
        read: Rows read from the input so far; once the campaign has ended, every one of
            them is in exactly one of sent, failed, unknown and rejected.
        sent: Rows sent so far.
        failed: Rows certainly not sent so far.
        unknown: Rows that may have been sent so far.
        rejected: Rows rejected so far.
        estimated_credits: Estimated credits of the rows sent so far (SENT batches).

    .. versionadded:: 0.1.0
    """

    outcome: BatchOutcome
    batches: int
    read: int
    sent: int
    failed: int
    unknown: int
    rejected: int
    estimated_credits: int

    @property
    def total(self) -> int:
        """Rows settled so far: sent + failed + unknown + rejected."""
        return self.sent + self.failed + self.unknown + self.rejected


@attrs.frozen
class BulkResult:
    """A whole campaign: every batch's outcome, and the counts of rows by fate.

    Attributes:
        outcomes: Every batch's outcome, in the order they settled.
        total: Rows read from the input. Every one of them is in exactly one of the
            counts: `sent + failed + unknown + rejected == total`.

    .. versionadded:: 0.1.0
    """

    outcomes: tuple[BatchOutcome, ...]
    total: int

    def _rows(self, state: BatchState) -> list[Message]:
        return [m for o in self.outcomes if o.state is state for m in o.messages]

    @property
    def package_ids(self) -> list[int]:
        """The ids of every package the server accepted."""
        return [o.package_id for o in self.outcomes if o.package_id is not None]

    @property
    def sent(self) -> int:
        """Rows in SENT batches."""
        return sum(len(o.messages) for o in self.outcomes if o.state is BatchState.SENT)

    @property
    def failed(self) -> int:
        """Rows in FAILED batches: certainly not sent."""
        return sum(len(o.messages) for o in self.outcomes if o.state is BatchState.FAILED)

    @property
    def unknown(self) -> int:
        """Rows in UNKNOWN batches: may have been sent."""
        return sum(len(o.messages) for o in self.outcomes if o.state is BatchState.UNKNOWN)

    @property
    def rejected(self) -> int:
        """Rows rejected before sending."""
        return sum(len(o.rejected) for o in self.outcomes)

    @property
    def estimated_credits(self) -> int:
        """Estimated credits of the rows sent (SENT batches)."""
        return sum(o.estimated_credits for o in self.outcomes if o.state is BatchState.SENT)

    @property
    def rejections(self) -> list[Rejection]:
        """The rejected rows with their reasons."""
        return [r for o in self.outcomes for r in o.rejected]

    @property
    def failed_messages(self) -> list[Message]:
        """The rows certainly not sent: safe to send again."""
        return self._rows(BatchState.FAILED)

    @property
    def unknown_messages(self) -> list[Message]:
        """The rows that may have been sent: check before sending again."""
        return self._rows(BatchState.UNKNOWN)
