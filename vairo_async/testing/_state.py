"""What the emulator remembers: accepted packages, their messages, and every request's outcome."""

from __future__ import annotations

import collections
import enum
from datetime import datetime

import attrs

from ._faults import FaultKind

__all__ = [
    "COMPLETED",
    "FAILED",
    "SENDING",
    "Ledger",
    "Outcome",
    "Package",
    "RequestRecord",
    "SentMessage",
]

FAILED = -1
"""Wire value of `paket_durum` for a failed package."""
SENDING = 0
"""Wire value of `paket_durum` for a package still being sent."""
COMPLETED = 1
"""Wire value of `paket_durum` for a completed package."""


class Outcome(enum.StrEnum):
    """How the emulator answered one request; a `str`, so `outcome="accepted"` works too.

    .. versionadded:: 0.1.0
    """

    ACCEPTED = "accepted"
    """A send accepted and answered with its package id."""
    OK = "ok"
    """A report answered."""
    REJECTED = "rejected"
    """HTTP 400: the body failed validation."""
    UNAUTHORIZED = "unauthorized"
    """HTTP 401: missing or wrong API key."""
    NOT_FOUND = "not_found"
    """HTTP 404: unknown package or path."""
    METHOD_NOT_ALLOWED = "method_not_allowed"
    """HTTP 405: wrong method on a known path."""
    RATE_LIMITED = "rate_limited"
    """An injected 429."""
    SERVER_ERROR = "server_error"
    """An injected 5xx with a JSON body."""
    HTML_PAGE = "html_page"
    """An injected HTML error page."""
    DROPPED = "dropped"
    """An injected dropped connection (see `RequestRecord.package_id` for whether it was sent)."""


@attrs.frozen
class SentMessage:
    """One message the emulator accepted.

    Attributes:
        package_id: The package it belongs to.
        dest: The 10-digit number it went to.
        text: The message text.
        sender: The package's `baslik`.
        tr_char: The package's `tr_char`, None when the body left it out.

    .. versionadded:: 0.1.0
    """

    package_id: int
    dest: str
    text: str
    sender: str
    tr_char: bool | None


@attrs.define
class Package:
    """One accepted package and where it is in its life cycle.

    Attributes:
        package_id: The id the send answered with.
        sender: `baslik` as sent.
        tr_char: `tr_char` as sent, None when left out.
        messages: The accepted messages, in request order.
        credits: Credits the messages cost (reported as 0 once FAILED).
        created_at: Istanbul wall-clock time of acceptance.
        accepted_at: Emulator clock reading at acceptance.
        failure_code: Error code the package fails with (e.g. INVALID_SOURCE_ADDRESS), or None.
        status: Wire status (-1, 0, 1) as of the last report poll or `complete_now`.
        polls: Report polls answered with this package's report.
        complete_after_polls: Poll rule fixed at acceptance (None: not by polls).
        final_at: Emulator clock reading at which it becomes final (None: not by time).
        route: URL the send was posted to, without its query (the log's `rota`).
        client_ip: Address the send came from (the log's `ip`).
        log_id: Id of its failure log entry, when it fails.

    .. versionadded:: 0.1.0
    """

    package_id: int
    sender: str
    tr_char: bool | None
    messages: tuple[SentMessage, ...]
    credits: int
    created_at: datetime
    accepted_at: float
    failure_code: str | None = None
    status: int = SENDING
    polls: int = 0
    complete_after_polls: int | None = None
    final_at: float | None = None
    route: str = ""
    client_ip: str = ""
    log_id: int | None = None

    @property
    def is_final(self) -> bool:
        """Whether the last poll saw COMPLETED or FAILED."""
        return self.status != SENDING

    def settle(self, clock_now: float) -> None:
        """Make the package final if its poll or time rule says so."""
        if self.is_final:
            return
        by_polls = self.complete_after_polls is not None and self.polls > self.complete_after_polls
        by_time = self.final_at is not None and clock_now >= self.final_at
        if by_polls or by_time:
            self.finish()

    def finish(self) -> None:
        """Make the package final now: FAILED when it has a failure code, else COMPLETED."""
        if not self.is_final:
            self.status = FAILED if self.failure_code is not None else COMPLETED


@attrs.frozen
class RequestRecord:
    """One request the emulator saw.

    Attributes:
        endpoint: "send", "report" or "other".
        outcome: How it was answered.
        status: HTTP status sent, None when the connection dropped before any.
        fault: The injected fault, if any (LATENCY still answers normally).
        package_id: The package accepted (send) or reported (report), if any.
        at: When it was answered, in seconds on the emulator's `clock` (for measuring
            request rates); not part of equality.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 `at`.
    """

    endpoint: str
    outcome: Outcome
    status: int | None
    fault: FaultKind | None = None
    package_id: int | None = None
    at: float | None = attrs.field(default=None, eq=False)


@attrs.define
class Ledger:
    """Packages by id, accepted messages in order, and the request log."""

    packages: dict[int, Package] = attrs.field(factory=dict)
    messages: list[SentMessage] = attrs.field(factory=list)
    requests: list[RequestRecord] = attrs.field(factory=list)

    def add_package(self, package: Package) -> None:
        """Record an accepted package and its messages."""
        self.packages[package.package_id] = package
        self.messages.extend(package.messages)

    def sent_to(self, dest: str) -> list[SentMessage]:
        """Messages accepted for `dest`, oldest first."""
        return [message for message in self.messages if message.dest == dest]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """`(dest, text)` pairs accepted more than once, with their counts."""
        counts = collections.Counter((m.dest, m.text) for m in self.messages)
        return {pair: count for pair, count in counts.items() if count > 1}

    def request_count(self, endpoint: str | None = None, outcome: str | None = None) -> int:
        """Requests seen, optionally only those to `endpoint` and/or with `outcome`."""
        return sum(
            1
            for record in self.requests
            if (endpoint is None or record.endpoint == endpoint)
            and (outcome is None or record.outcome == outcome)
        )

    def clear(self) -> None:
        """Forget everything recorded."""
        self.packages.clear()
        self.messages.clear()
        self.requests.clear()
