"""`vairo-sms bulk`: a campaign from a CSV file, every batch written to a JSON Lines report.

The file is read twice, lazily both times: once to check it (UTF-8, a `to` column, a text for
every row) and count its rows before anything is sent, then again as the campaign pulls rows.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from .._client import AsyncVairoClient
from .._config import BulkSettings
from .._constants import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_CONNECTIONS
from .._models import BatchOutcome, BulkProgress, Message
from .._phone import normalize_number
from .common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Api,
    CliError,
    api_options,
    figures,
    require_sender,
    run_async,
    sender_option,
    session,
)

__all__ = [
    "CsvLayout",
    "LineBook",
    "Report",
    "Tally",
    "batch_record",
    "bulk",
    "progress_bar",
    "read_rows",
    "run_campaign",
    "scan_csv",
]

_DELIMITERS = ",;\t"


@attrs.frozen
class CsvLayout:
    """What the check of a CSV file found.

    Attributes:
        delimiter: The header line's separator: comma, semicolon or tab.
        to_column: Index of the `to` column.
        text_column: Index of the `text` column, or None when `--text` gives the text.
        rows: Data rows (blank lines not counted).
    """

    delimiter: str
    to_column: int
    text_column: int | None
    rows: int


def _records(file: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank CSV record with the file line it starts on (quoted fields may span)."""
    reader = csv.reader(file, delimiter=delimiter)
    start = 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield start, cells
        start = reader.line_num + 1


def _undecodable(path: Path) -> str:
    """Where a file stops being UTF-8: `line N (byte 0xXX)`. UTF-8 never puts \\n in a character."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} (byte 0x{line[exc.start]:02x})"
    return "a line"


def scan_csv(path: Path, *, text: str | None) -> CsvLayout:
    """Check a whole CSV file before anything is sent, and count its rows.

    Raises:
        CliError: The file is missing or unreadable, not UTF-8, has no `to` column, or has
            neither a `text` column nor `--text` (or both); one line each, exit status 2.
    """
    try:
        with path.open("rb") as raw:
            start = raw.read(2)
        if start in (b"\xff\xfe", b"\xfe\xff"):
            raise CliError(f"{path} is UTF-16; save it as UTF-8 (a BOM is fine)")
        with path.open(encoding="utf-8-sig", newline="") as file:
            first = file.readline()
            if not first.strip():
                raise CliError(f"{path} has no header line: expected a 'to' column")
            delimiter = next((d for d in _DELIMITERS if d in first), ",")
            records = _records(itertools.chain([first], file), delimiter)
            header = [cell.strip().lower() for cell in next(records)[1]]
            if "to" not in header:
                raise CliError(f"{path} has no 'to' column (its columns: {', '.join(header)})")
            text_column = header.index("text") if "text" in header else None
            if text_column is not None and text is not None:
                raise CliError(f"{path} has a 'text' column; --text is for files without one")
            if text_column is None and text is None:
                raise CliError(f"{path} has no 'text' column: add one, or pass --text")
            rows = sum(1 for _ in records)
    except UnicodeDecodeError:
        raise CliError(
            f"{path} is not UTF-8 text: {_undecodable(path)} cannot be decoded; "
            "save it as UTF-8 (a BOM is fine)"
        ) from None
    except csv.Error as exc:
        raise CliError(f"{path} is not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise CliError(f"{path} has a header but no rows to send")
    return CsvLayout(delimiter, header.index("to"), text_column, rows)


class LineBook:
    """The file line of each row in flight, by the identity of its `Message`.

    The SDK hands back the very `Message` it was given when the number was already in wire
    form, and every rejected row as given; `read_rows` normalises numbers first, so each row
    an outcome names can be traced to its line.
    """

    def __init__(self) -> None:
        self._lines: dict[int, tuple[Message, int]] = {}

    def add(self, message: Message, line: int) -> None:
        """Remember `message`'s line until its batch settles."""
        self._lines[id(message)] = (message, line)

    def pop(self, message: Message) -> int | None:
        """`message`'s line, forgotten from now on; None if it was never added."""
        entry = self._lines.pop(id(message), None)
        return None if entry is None else entry[1]


def read_rows(
    path: Path, layout: CsvLayout, text: str | None, book: LineBook
) -> Generator[Message, None, None]:
    """Yield each data row as a `Message`, its number in wire form when it is a valid one."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        records = _records(file, layout.delimiter)
        next(records)
        for line, cells in records:
            to = cells[layout.to_column].strip() if layout.to_column < len(cells) else ""
            if layout.text_column is None:
                body = text or ""
            else:
                body = cells[layout.text_column] if layout.text_column < len(cells) else ""
            with contextlib.suppress(ValueError):  # the SDK rejects it, with the reason
                to = normalize_number(to)
            message = Message(to=to, text=body)
            book.add(message, line)
            yield message


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
    """

    last: BulkProgress | None = None
    package_ids: list[int] = attrs.Factory(list)
    with_rows: int = 0
    seconds: float = 0.0
    unwritten: list[BatchOutcome] = attrs.Factory(list)
    write_error: OSError | None = None

    def count(self, name: str) -> int:
        """`sent`, `failed`, `unknown`, `rejected`, `total` or `estimated_credits` so far."""
        return 0 if self.last is None else int(getattr(self.last, name))

    @property
    def complete(self) -> bool:
        """Every row settled was sent, and the report took every outcome."""
        return self.count("sent") == self.count("total") and self.write_error is None

    def summary(self, *, interrupted: bool) -> dict[str, Any]:
        """The report's last record."""
        names = ("rows", "sent", "rejected", "failed", "unknown")
        return {
            "type": "summary",
            **{name: self.count("total" if name == "rows" else name) for name in names},
            "packages": len(self.package_ids),
            "estimated_credits": self.count("estimated_credits"),
            "seconds": round(self.seconds, 3),
            "interrupted": interrupted,
        }

    def count_figures(self) -> list[tuple[str, str]]:
        """The summary table's rows of counts."""
        names = ("sent", "rejected", "failed", "unknown")
        return [
            ("rows", f"{self.count('total'):,}"),
            *((name, f"{self.count(name):,}") for name in names),
            ("packages", f"{len(self.package_ids):,}"),
        ]

    def figures(self) -> list[tuple[str, str]]:
        """The summary table's rows."""
        rate = self.count("total") / max(self.seconds, 1e-9)
        return [
            *self.count_figures(),
            ("estimated credits", f"{self.count('estimated_credits'):,}"),
            ("wall time", f"{self.seconds:.2f} s"),
            ("messages per second", f"{rate:,.0f}"),
        ]


def _progress_detail(progress: BulkProgress) -> str:
    return (
        f"sent {progress.sent:,}, rejected {progress.rejected:,}, "
        f"failed {progress.failed:,}, unknown {progress.unknown:,}"
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
) -> None:
    """Send `rows` through `iter_bulk` under `settings` and a progress bar, counting into
    `tally`.

    `on_outcome` runs from `on_progress`, so it also sees the batches settled while the
    campaign is cancelled. If it raises `OSError` (a report that cannot be written), the
    campaign stops and later outcomes are kept in `tally.unwritten`.
    """

    def settled(progress: BulkProgress) -> None:
        tally.last = progress
        outcome = progress.outcome
        if outcome.package_id is not None:
            tally.package_ids.append(outcome.package_id)
        tally.with_rows += bool(outcome.messages)
        if on_outcome is not None and tally.write_error is None:
            try:
                on_outcome(outcome)
            except OSError as exc:
                tally.write_error = exc
        if tally.write_error is not None:
            tally.unwritten.append(outcome)
        bar.update(task, completed=progress.total, detail=_progress_detail(progress))

    with progress_bar(console) as bar:
        task = bar.add_task("sending", total=total, detail="")
        started = time.perf_counter()
        batches = vairo.iter_bulk(
            rows,
            batch_size=settings.batch_size,
            concurrency=settings.concurrency,
            rate=settings.rate,
            on_progress=settled,
        )
        try:
            async with contextlib.aclosing(batches):
                async for _ in batches:
                    if tally.write_error is not None:
                        break
        finally:
            tally.seconds = time.perf_counter() - started


class Report:
    """The JSON Lines report: created new (never overwritten), flushed line by line."""

    def __init__(self, path: Path) -> None:
        try:
            self._file = path.open("x", encoding="utf-8", newline="\n")
        except FileExistsError:
            raise CliError(
                f"{path} exists; pick a new report file (an old one may hold package ids)"
            ) from None
        except OSError as exc:
            raise CliError(f"cannot create {path}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the operating system."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def batch_record(outcome: BatchOutcome, book: LineBook) -> dict[str, Any]:
    """One batch's report record; numbers in wire form, rejected rows as written."""
    record: dict[str, Any] = {
        "type": "batch",
        "batch": outcome.index,
        "state": outcome.state.value,
        "package_id": outcome.package_id,
        "estimated_credits": outcome.estimated_credits,
        "rows": [{"line": book.pop(m), "to": m.to, "text": m.text} for m in outcome.messages],
        "rejected": [
            {
                "line": book.pop(r.message),
                "to": r.message.to,
                "text": r.message.text,
                "reason": r.reason,
            }
            for r in outcome.rejected
        ],
    }
    if outcome.error is not None and outcome.messages:
        record["error"] = f"{type(outcome.error).__name__}: {outcome.error}"
    return record


@click.command()
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--report",
    "report_path",
    metavar="OUT.jsonl",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file for the JSON Lines report of every batch.",
)
@click.option("--text", help="The text for every row, for a file with a 'to' column only.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, DEFAULT_MAX_CONNECTIONS),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Batches in flight at most.",
)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Sends per second.")
@sender_option
@api_options
def bulk(
    api: Api,
    csv_path: Path,
    report_path: Path,
    text: str | None,
    batch_size: int,
    concurrency: int,
    rate: float | None,
    sender: str | None,
) -> int:
    """Send a campaign from a CSV file.

    FILE.csv has a header line with columns 'to' and 'text' (or 'to' alone, with --text),
    in UTF-8. Every batch's outcome goes to the new JSON Lines file OUT.jsonl as it settles.
    """
    if text is not None and not text.strip():
        raise CliError("--text is empty")
    sender = require_sender(sender)
    layout = scan_csv(csv_path, text=text)
    settings = BulkSettings(batch_size=batch_size, concurrency=concurrency, rate=rate)
    return run_async(_bulk(api, sender, csv_path, layout, text, report_path, settings))


async def _bulk(
    api: Api,
    sender: str,
    csv_path: Path,
    layout: CsvLayout,
    text: str | None,
    report_path: Path,
    settings: BulkSettings,
) -> int:
    book = LineBook()
    rows = read_rows(csv_path, layout, text, book)
    tally = Tally()
    async with api.client(sender) as vairo:
        report = Report(report_path)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        report.write(
            {"type": "campaign", "file": str(csv_path), "rows": layout.rows, "sender": sender}
            | attrs.asdict(settings)
            | {"started_at": started_at}
        )
        interrupted = True
        try:
            await run_campaign(
                vairo,
                rows,
                tally=tally,
                total=layout.rows,
                console=session().err,
                settings=settings,
                on_outcome=lambda outcome: report.write(batch_record(outcome, book)),
            )
            interrupted = False
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CliError(f"reading {csv_path} failed during the campaign: {exc}", 1) from None
        finally:
            rows.close()
            if tally.write_error is None:
                report.write(tally.summary(interrupted=interrupted))
            report.close()
            title = f"Campaign {csv_path.name} → {report_path}"
            session().out.print(figures(title, tally.figures()))
    if tally.write_error is not None:
        lost = [o.package_id for o in tally.unwritten if o.package_id is not None]
        raise CliError(
            f"writing {report_path} failed ({tally.write_error.strerror}); the campaign stopped; "
            f"packages missing from the report: {', '.join(map(str, lost)) or 'none'}",
            EXIT_INCOMPLETE,
        )
    return EXIT_OK if tally.complete else EXIT_INCOMPLETE
