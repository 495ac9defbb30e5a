"""Value types a user sends and receives."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

__all__ = ["FailureLog", "Message", "PackageReport", "PackageStatus", "Submission"]


@attrs.frozen(kw_only=True)
class Message:
    """One SMS: a recipient and a text.

    Any spelling of a Turkish mobile number is accepted here; it is checked and normalised
    when the message is sent, so a bulk campaign can report a bad row instead of failing.

    Attributes:
        to: The recipient, e.g. `"0539 999 99 99"` or `"5399999999"`.
        text: The message text.
    """

    to: str
    text: str


@attrs.frozen
class Submission:
    """The server accepted a package of messages.

    Attributes:
        package_id: The id to query the package's report with; store it.
        recipient_count: How many messages the package holds.
    """

    package_id: int
    recipient_count: int


class PackageStatus(enum.IntEnum):
    """A package's state (`paket_durum`).

    A value the API documents no name for becomes a member named `UNKNOWN_<value>`
    instead of an error, so a new server-side state cannot break a running client.
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
