"""What `bulk` and `demo` share: the campaign's tally, its progress bar, and the send loop."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from .._client import AsyncVairoClient
from .._config import BulkSettings
from .._models import BatchOutcome, BatchState, BulkProgress, Message
from .common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_REJECTED,
)

__all__ = ["Tally", "progress_bar", "run_campaign"]


@attrs.define
class Tally:
    """A campaign's counts as its batches settle.

    Attributes:
        last: The latest `BulkProgress`, None before the first batch settles.
        package_ids: Ids of the SENT batches, in the order they settled.
        with_rows: Batches that held rows to send (the others were all rejected rows).
        seconds: Wall time of the campaign.
        unwritten: Outcomes the report could not take, after `write_error`.
        write_error: Why the report stopped taking outcomes.
        own_rejected: Rows the command rejected itself (template field, repeat): they
            never reach the SDK, and count as rejected.
        repeats: Rows read with the same number and text as an earlier row.
        expected: Data rows in the file, when known: those beyond `total` were not read.
        replayed: Rows of batches an earlier run sent (the journal's SENT records): counted
            in sent, not sent again.
        campaign: The journal's campaign id, None without a journal.
    """

    last: BulkProgress | None = None
    package_ids: list[int] = attrs.Factory(list)
    with_rows: int = 0
    seconds: float = 0.0
    unwritten: list[BatchOutcome] = attrs.Factory(list)
    write_error: OSError | None = None
    own_rejected: int = 0
    repeats: int = 0
    expected: int | None = None
    replayed: int = 0
    campaign: str | None = None

    def count(self, name: str) -> int:
        """`sent`, `failed`, `unknown`, `rejected`, `total` or `estimated_credits` so far."""
        counted = 0 if self.last is None else int(getattr(self.last, name))
        return counted + (self.own_rejected if name in ("rejected", "total") else 0)

    @property
    def not_read(self) -> int:
        """Rows of the file never read (the run was interrupted or stopped)."""
        return 0 if self.expected is None else max(self.expected - self.count("total"), 0)

    @property
    def complete(self) -> bool:
        """Every row settled was sent, and the report took every outcome."""
        return self.count("sent") == self.count("total") and self.write_error is None

    def exit_status(self) -> int:
        """0 all sent; EXIT_REJECTED all valid rows sent, some rejected; else EXIT_INCOMPLETE."""
        if self.write_error is not None or self.count("failed") or self.count("unknown"):
            return EXIT_INCOMPLETE
        if self.not_read:
            return EXIT_INCOMPLETE
        return EXIT_REJECTED if self.count("rejected") else EXIT_OK

    def summary(self, *, interrupted: bool) -> dict[str, Any]:
        """The report's last record."""
        names = ("rows", "sent", "rejected", "failed", "unknown")
        return {
            "type": "summary",
            **{name: self.count("total" if name == "rows" else name) for name in names},
            "repeats": self.repeats,
            "replayed": self.replayed,
            "not_read": self.not_read,
            "packages": len(self.package_ids),
            "estimated_credits": self.count("estimated_credits"),
            "seconds": round(self.seconds, 3),
            "interrupted": interrupted,
        }

    def count_figures(self) -> list[tuple[str, str]]:
        """The summary table's rows of counts."""
        names = ("sent", "rejected", "failed", "unknown")
        replayed = [] if self.campaign is None else [("replayed", f"{self.replayed:,}")]
        return [
            ("rows", f"{self.count('total'):,}"),
            *((name, f"{self.count(name):,}") for name in names),
            *replayed,
            ("packages", f"{len(self.package_ids):,}"),
        ]

    def figures(self, *, interrupted: bool = False) -> list[tuple[str, str]]:
        """The summary table's rows; an interrupted run says so, with the rows not read."""
        rate = self.count("total") / max(self.seconds, 1e-9)
        stopped = []
        if interrupted:
            stopped.append(("interrupted", f"yes, {self.not_read:,} rows not read"))
        elif self.not_read:
            stopped.append(("not read", f"{self.not_read:,}"))
        campaign = [] if self.campaign is None else [("campaign", self.campaign)]
        return [
            *stopped,
            *campaign,
            *self.count_figures(),
            ("repeats", f"{self.repeats:,}"),
            ("estimated credits", f"{self.count('estimated_credits'):,}"),
            ("wall time", f"{self.seconds:.2f} s"),
            ("messages per second", f"{rate:,.0f}"),
        ]


def _progress_detail(tally: Tally) -> str:
    return (
        f"sent {tally.count('sent'):,}, rejected {tally.count('rejected'):,}, "
        f"failed {tally.count('failed'):,}, unknown {tally.count('unknown'):,}"
    )


def progress_bar(console: Console) -> Progress:
    """The progress bar of a campaign or a wait."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=10),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
    )


async def run_campaign(
    vairo: AsyncVairoClient,
    rows: Iterable[Message],
    *,
    tally: Tally,
    total: int,
    console: Console,
    settings: BulkSettings,
    on_outcome: Callable[[BatchOutcome], None] | None = None,
    exclude: frozenset[str] = frozenset(),
    campaign: str | None = None,
) -> None:
    """Send `rows` through `iter_bulk` under `settings` and a progress bar, counting into
    `tally`.

    `on_outcome` runs from `on_progress`, so it also sees the batches settled while the
    campaign is cancelled. If it raises `OSError` (a report that cannot be written), the
    campaign stops and later outcomes are kept in `tally.unwritten`. Rows to a number in
    `exclude` are rejected as excluded. With `campaign`, the client's journal keeps the
    campaign under that id (see `iter_bulk`).
    """

    def settled(progress: BulkProgress) -> None:
        tally.last = progress
        outcome = progress.outcome
        if outcome.package_id is not None:
            tally.package_ids.append(outcome.package_id)
        tally.with_rows += bool(outcome.messages)
        if outcome.replayed and outcome.state is BatchState.SENT:
            tally.replayed += len(outcome.messages)
        if on_outcome is not None and tally.write_error is None:
            try:
                on_outcome(outcome)
            except OSError as exc:
                tally.write_error = exc
        if tally.write_error is not None:
            tally.unwritten.append(outcome)
        bar.update(task, completed=tally.count("total"), detail=_progress_detail(tally))

    with progress_bar(console) as bar:
        task = bar.add_task("sending", total=total, detail="")
        started = time.perf_counter()
        batches = vairo.iter_bulk(
            rows,
            batch_size=settings.batch_size,
            concurrency=settings.concurrency,
            rate=settings.rate,
            on_progress=settled,
            exclude=exclude,
            campaign=campaign,
        )
        try:
            async with contextlib.aclosing(batches):
                async for _ in batches:
                    if tally.write_error is not None:
                        break
        finally:
            tally.seconds = time.perf_counter() - started
