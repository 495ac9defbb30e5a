"""`vairo-sms bulk`: a campaign from a CSV file, every batch written to a JSON Lines report.

The file is read twice, lazily both times, through `rows`: once to check every row (and,
with `--dry-run`, to print what the campaign would send and cost) before anything is sent,
then again as the campaign pulls rows. Each `Message` carries its file line and id on `ref`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import click
from rich.table import Table

from .._client import AsyncVairoClient
from .._config import BulkSettings
from .._errors import CampaignMismatchError
from .._journal import Journal, fingerprint
from .._models import BatchOutcome, Message
from .._segments import Encoding
from .common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_REJECTED,
    JOURNAL_SUFFIX,
    Api,
    CliError,
    JournalTarget,
    api_options,
    figures,
    file_options,
    journal_target,
    require_sender,
    run_async,
    send_options,
    sender_option,
    session,
)
from .rows import (
    CsvSource,
    FileCheck,
    Row,
    RowRef,
    Template,
    check_file,
    file_digest,
    iter_rows,
    open_source,
    read_exclusions,
    resolve_text,
)
from .sending import Tally, run_campaign

__all__ = [
    "Durable",
    "Options",
    "Previous",
    "Report",
    "batch_record",
    "bulk",
    "campaign_id",
    "check_tables",
    "default_journal",
    "read_previous",
    "rejected_record",
]

ENCODING_NAMES = {
    Encoding.GSM7: "GSM-7",
    Encoding.GSM7_TURKISH: "Turkish shift",
    Encoding.UCS2: "UCS-2",
}


class Report:
    """The JSON Lines report, flushed line by line.

    Created new (never overwritten), or, resuming a journaled campaign, appended to from
    `append_at`: the end of its last whole line (a line a crash cut short is dropped).
    """

    def __init__(self, path: Path, *, append_at: int | None = None) -> None:
        try:
            if append_at is None:
                self._file = path.open("x", encoding="utf-8", newline="\n")
            else:
                os.truncate(path, append_at)
                self._file = path.open("a", encoding="utf-8", newline="\n")
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


@attrs.frozen
class Previous:
    """What earlier runs wrote to a report being resumed.

    Attributes:
        header: The first run's `campaign` record.
        size: Bytes up to the end of the last whole line.
        batches: Each batch record's (index, state, package id): not written again.
        rejected_lines: Lines of the rows the command rejected itself, already written.
    """

    header: dict[str, Any]
    size: int
    batches: frozenset[tuple[int, str, int | None]] = frozenset()
    rejected_lines: frozenset[int] = frozenset()


def read_previous(path: Path) -> Previous | None:
    """The report at `path` as earlier runs left it, or None when there is none.

    Raises:
        CliError: The file is not a report of a journaled campaign (written with
            `--no-journal`, or not a report at all); exit status 2.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    size = data.rfind(b"\n") + 1
    records: list[dict[str, Any]] = []
    try:
        for line in data[:size].splitlines():
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(line)
            records.append(record)
    except ValueError:
        records = []
    header = records[0] if records else {}
    if header.get("type") != "campaign" or not isinstance(header.get("campaign"), str):
        raise CliError(
            f"{path} exists and is not the report of a journaled campaign; pick a new report "
            "file (an old one may hold package ids)"
        )
    batches = frozenset(
        (r["batch"], r["state"], r["package_id"]) for r in records if r.get("type") == "batch"
    )
    rejected = frozenset(r["line"] for r in records if r.get("type") == "rejected")
    return Previous(header, size, batches, rejected)


def batch_record(outcome: BatchOutcome, *, ids: bool = False) -> dict[str, Any]:
    """One batch's report record; numbers in wire form, rejected rows as written.

    Each row's `line` (and `id` when `ids`) comes from the `RowRef` on its `ref`.
    """

    def where(message: Message) -> dict[str, Any]:
        ref = message.ref
        line = ref.line if isinstance(ref, RowRef) else None
        if not ids:
            return {"line": line}
        return {"line": line, "id": ref.id if isinstance(ref, RowRef) else None}

    record: dict[str, Any] = {
        "type": "batch",
        "batch": outcome.index,
        "state": outcome.state.value,
        "package_id": outcome.package_id,
        "estimated_credits": outcome.estimated_credits,
        "rows": [where(m) | {"to": m.to, "text": m.text} for m in outcome.messages],
        "rejected": [
            where(r.message) | {"to": r.message.to, "text": r.message.text, "reason": r.reason}
            for r in outcome.rejected
        ],
    }
    if outcome.replayed:
        record["replayed"] = True
    if outcome.error is not None and outcome.messages:
        record["error"] = f"{type(outcome.error).__name__}: {outcome.error}"
    return record


def rejected_record(row: Row, *, ids: bool = False) -> dict[str, Any]:
    """The report record of a row the command rejected itself (template field, repeat)."""
    record: dict[str, Any] = {"type": "rejected", "line": row.line}
    if ids:
        record["id"] = row.id
    return record | {"to": row.to, "text": row.text, "reason": row.reason}


def check_tables(source: CsvSource, check: FileCheck) -> list[Table]:
    """The dry run's tables: what the check found, and the valid rows by encoding."""
    reasons = [(f"rejected: {kind}", f"{n:,}") for kind, n in check.rejected.most_common()]
    summary = figures(
        f"Check of {source.path.name}: nothing sent",
        [
            ("rows", f"{check.rows:,}"),
            ("valid rows", f"{check.valid:,}"),
            ("rejected rows", f"{check.rows - check.valid:,}"),
            *reasons,
            ("repeats", f"{check.repeats:,}"),
            ("estimated credits", f"{check.credits:,}"),
            ("encoding", source.encoding_label),
            ("separator", {",": "comma", ";": "semicolon", "\t": "tab"}[source.delimiter]),
        ],
    )
    costs = Table(title="Valid rows by encoding and segments", title_justify="left")
    for name in ("encoding", "segments", "rows", "credits"):
        costs.add_column(name, justify="left" if name == "encoding" else "right")
    order = list(ENCODING_NAMES)
    for (encoding, count), rows in sorted(
        check.costs.items(), key=lambda item: (order.index(item[0][0]), item[0][1])
    ):
        costs.add_row(ENCODING_NAMES[encoding], str(count), f"{rows:,}", f"{rows * count:,}")
    costs.add_row("total", "", f"{check.valid:,}", f"{check.credits:,}", style="bold")
    return [summary, costs]


@click.command()
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--report",
    "report_path",
    metavar="OUT.jsonl",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON Lines report of every batch: a new file, or the report of the campaign "
    "being resumed (required unless --dry-run).",
)
@file_options(
    id_help="A column whose value goes in every report row.",
    exclude_help="Numbers not to send to, one a line, any spelling ('#' comments).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the file and print what would be sent and cost; send nothing, need no key.",
)
@send_options(concurrency_help="Batches in flight at most.", rate_help="Sends per second.")
@click.option(
    "--journal",
    "journal_value",
    metavar="PATH|URL",
    help="Where the campaign's journal lives: a SQLite file or a redis:// URL "
    f"(default: OUT.jsonl{JOURNAL_SUFFIX} beside the report).",
)
@click.option(
    "--no-journal",
    is_flag=True,
    help="Keep no journal: a rerun cannot resume, and would send every row again.",
)
@sender_option
@api_options
def bulk(
    api: Api | None,
    csv_path: Path,
    report_path: Path | None,
    encoding: str | None,
    to_column: str | None,
    text_column: str | None,
    id_column: str | None,
    text: str | None,
    template: str | None,
    template_file: Path | None,
    dedupe: bool,
    exclude_path: Path | None,
    dry_run: bool,
    batch_size: int,
    concurrency: int,
    rate: float | None,
    journal_value: str | None,
    no_journal: bool,
    sender: str | None,
) -> int:
    """Send a campaign from a CSV file.

    FILE.csv has a header line naming a number column and a text column ('to' and 'text'
    unless --to-column and --text-column say otherwise), or the text comes from --text or
    --template. Every batch's outcome goes to the JSON Lines file OUT.jsonl as it settles.
    A journal (OUT.jsonl.journal unless --journal says otherwise) records each batch before
    it is sent: rerunning the same command after a crash or Ctrl-C resumes the campaign,
    appending to OUT.jsonl, and sends nothing twice. Exit status 0 all sent, 3 every valid
    row sent and some rejected, 1 some rows failed or unknown, 2 bad usage or input, 130
    interrupted (Ctrl-C or SIGTERM).
    """
    if journal_value is not None and no_journal:
        raise CliError("--journal and --no-journal exclude each other: give one")
    template = resolve_text(text, template, template_file)
    parsed = None if template is None else Template.parse(template)
    if not dry_run and report_path is None:
        raise click.UsageError("Missing option '--report' (needed unless --dry-run).")
    if not dry_run or sender is not None:
        sender = require_sender(sender)
    exclude = frozenset() if exclude_path is None else read_exclusions(exclude_path)
    source = open_source(
        csv_path,
        encoding=encoding,
        to_column=to_column,
        text_column=text_column,
        id_column=id_column,
        text=text,
        template=parsed,
    )
    check = check_file(source, exclude=exclude, dedupe=dedupe)
    state = session()
    if dry_run:
        for table in check_tables(source, check):
            state.out.print(table)
        return EXIT_REJECTED if check.valid < check.rows else EXIT_OK
    if api is None or sender is None or report_path is None:  # settled above, for the types
        raise CliError("a real run needs --report, a sender and an API key")
    if check.repeats and not dedupe:
        state.err.print(
            f"{csv_path}: rows repeating an earlier row's number and text: {check.repeats:,}; "
            "they will be sent again (--dedupe rejects them)",
            markup=False,
            soft_wrap=True,
        )
    settings = BulkSettings(batch_size=batch_size, concurrency=concurrency, rate=rate)
    options = Options(exclude=exclude, dedupe=dedupe, exclude_path=exclude_path)
    durable = None
    if not no_journal:
        explicit = journal_value is not None
        target = journal_target(journal_value) if journal_value else default_journal(report_path)
        campaign = campaign_id(source, sender, options, settings, file_digest(csv_path))
        durable = Durable(target, campaign, explicit, read_previous(report_path))
        durable.check_report(report_path)
    return run_async(_bulk(api, sender, source, check, report_path, settings, options, durable))


def default_journal(report_path: Path) -> JournalTarget:
    """`bulk`'s journal when `--journal` is not given: a SQLite file beside the report."""
    path = report_path.with_name(report_path.name + JOURNAL_SUFFIX)
    return JournalTarget(str(path), str(path.absolute()))


def campaign_id(
    source: CsvSource, sender: str, options: Options, settings: BulkSettings, digest: str
) -> str:
    """The journal's id for this campaign: the same for the same file and options.

    It digests what decides which rows are sent in which batch: the file's bytes (its
    SHA-256 `digest`), how it is read (encoding, columns, text or template), the row
    options, the sender and the batch size. Concurrency and rate may change on a rerun.
    """
    template = None if source.template is None else source.template.source
    parts = [
        digest,
        source.codec,
        source.to_column,
        source.text_column,
        source.id_column,
        source.text,
        template,
        options.dedupe,
        sorted(options.exclude),
        sender,
        settings.batch_size,
    ]
    return f"bulk-{fingerprint('vairo-sms bulk', *parts)[:16]}"


@attrs.frozen
class Durable:
    """How a run keeps its journal: where, under which campaign id, resuming what.

    Attributes:
        target: The journal's file or Redis URL.
        campaign: The campaign id (see `campaign_id`).
        explicit: The journal came from `--journal` (it may hold other campaigns); else
            it is the report's own, beside it, and holds this campaign only.
        previous: The report as earlier runs left it, None for a new report.
    """

    target: JournalTarget
    campaign: str
    explicit: bool
    previous: Previous | None = None

    def check_report(self, report_path: Path) -> None:
        """Refuse to resume a report written for another campaign or journal.

        Raises:
            CampaignMismatchError: The report is another campaign's: the file or an option
                that shapes batches changed since it was written; exit status 2.
            CliError: The report was written with another journal; exit status 2.
        """
        if self.previous is None:
            return
        header = self.previous.header
        if header["campaign"] != self.campaign:
            raise CampaignMismatchError(
                header["campaign"],
                f"{report_path} was written for it, and the file or the options that shape "
                f"batches (columns, text, template, --dedupe, --exclude, --sender, "
                f"--batch-size) have changed since (campaign {self.campaign} now); rerun "
                "with the first run's file and options, or pick a new --report",
            )
        if header.get("journal") != self.target.shown:
            raise CliError(
                f"{report_path} was written with the journal {header.get('journal')}, not "
                f"{self.target.shown}: pass --journal {header.get('journal')}"
            )

    async def check_journal(self, store: Journal, report_path: Path) -> None:
        """Refuse a journal that cannot be this campaign's (before anything is sent).

        Raises:
            CampaignMismatchError: The report's own journal holds another campaign.
            CliError: The report holds batches, but the journal knows nothing of them.
        """
        if await store.get_campaign(self.campaign) is not None:
            return
        if not self.explicit:
            others = await store.campaigns()
            if others:
                raise CampaignMismatchError(
                    next(iter(others)),
                    f"{self.target.shown} is the journal of another run of {report_path}; "
                    "the file or the options that shape batches have changed since; rerun "
                    "with that run's file and options, or pick a new --report",
                )
        if self.previous is not None and self.previous.batches:
            raise CliError(
                f"{report_path} holds batches of campaign {self.campaign}, but the journal "
                f"{self.target.shown} has no record of it: it was deleted or is another "
                "one; resuming would send those batches again"
            )


@attrs.frozen
class Options:
    """The row options of a run, as `_bulk` needs them.

    Attributes:
        exclude: Wire-form numbers not to send to.
        dedupe: Reject repeats of an earlier row.
        exclude_path: The exclusion file, for the report's header.
    """

    exclude: frozenset[str] = frozenset()
    dedupe: bool = False
    exclude_path: Path | None = None


def _messages(
    source: CsvSource,
    options: Options,
    tally: Tally,
    report: Report,
    written: frozenset[int] = frozenset(),
) -> Generator[Message, None, None]:
    """The file's rows as messages; rows the command rejects go to the report instead,
    unless an earlier run wrote them (their lines are in `written`)."""
    ids = source.id_column is not None
    for row in iter_rows(source, exclude=options.exclude, dedupe=options.dedupe):
        tally.repeats += row.repeat_of is not None
        if not row.own:
            yield row.message()
            continue
        tally.own_rejected += 1
        if row.line in written:
            continue
        try:
            report.write(rejected_record(row, ids=ids))
        except OSError as exc:
            tally.write_error = exc
            return


async def _bulk(
    api: Api,
    sender: str,
    source: CsvSource,
    check: FileCheck,
    report_path: Path,
    settings: BulkSettings,
    options: Options | None = None,
    durable: Durable | None = None,
) -> int:
    options = options or Options()
    async with contextlib.AsyncExitStack() as stack:
        store = None
        if durable is not None:
            store = await stack.enter_async_context(durable.target.open(create=True))
            await durable.check_journal(store, report_path)
        vairo = await stack.enter_async_context(api.client(sender, journal=store))
        return await _campaign(
            vairo, sender, source, check, report_path, settings, options, durable
        )
    raise AssertionError("unreachable")  # pragma: no cover  (mypy: the stack may swallow)


async def _campaign(
    vairo: AsyncVairoClient,
    sender: str,
    source: CsvSource,
    check: FileCheck,
    report_path: Path,
    settings: BulkSettings,
    options: Options,
    durable: Durable | None,
) -> int:
    previous = None if durable is None else durable.previous
    tally = Tally(expected=check.rows, campaign=None if durable is None else durable.campaign)
    ids = source.id_column is not None
    report = Report(report_path, append_at=None if previous is None else previous.size)
    written = frozenset() if previous is None else previous.rejected_lines
    rows = _messages(source, options, tally, report, written)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    journaled: dict[str, Any] = {}
    if durable is not None:
        journaled = {
            "campaign": durable.campaign,
            "journal": durable.target.shown,
            "resumed": previous is not None,
        }
        if previous is not None:
            session().err.print(
                f"resuming campaign {durable.campaign}: batches the journal holds are not "
                f"sent again; appending to {report_path}",
                markup=False,
                soft_wrap=True,
            )
    report.write(
        {
            "type": "campaign",
            **journaled,
            "file": str(source.path),
            "rows": check.rows,
            "valid": check.valid,
            "repeats": check.repeats,
            "sender": sender,
            "encoding": source.encoding_label,
            "dedupe": options.dedupe,
            "exclude": None if options.exclude_path is None else str(options.exclude_path),
        }
        | attrs.asdict(settings)
        | {"started_at": started_at}
    )
    done = frozenset() if previous is None else previous.batches

    def write(outcome: BatchOutcome) -> None:
        if (outcome.index, outcome.state.value, outcome.package_id) not in done:
            report.write(batch_record(outcome, ids=ids))

    interrupted = True
    try:
        await run_campaign(
            vairo,
            rows,
            tally=tally,
            total=check.rows,
            console=session().err,
            settings=settings,
            on_outcome=write,
            exclude=options.exclude,
            campaign=tally.campaign,
        )
        interrupted = False
    except CliError as exc:
        raise CliError(f"reading failed during the campaign: {exc}", EXIT_INCOMPLETE) from None
    except CampaignMismatchError:
        interrupted = False
        raise
    finally:
        rows.close()
        if tally.write_error is None:
            report.write(tally.summary(interrupted=interrupted))
        report.close()
        title = f"Campaign {source.path.name} → {report_path}"
        if interrupted:
            title += " (interrupted)"
        session().out.print(figures(title, tally.figures(interrupted=interrupted)))
    if tally.write_error is not None:
        lost = [o.package_id for o in tally.unwritten if o.package_id is not None]
        raise CliError(
            f"writing {report_path} failed ({tally.write_error.strerror}); the campaign stopped; "
            f"packages missing from the report: {', '.join(map(str, lost)) or 'none'}",
            EXIT_INCOMPLETE,
        )
    return tally.exit_status()
