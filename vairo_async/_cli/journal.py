"""`vairo-sms journal`: a campaign journal's campaigns, unknown batches, resolution, export.

Each subcommand takes the journal as its first argument, as `bulk --journal` names it: a
SQLite file (`bulk` keeps `OUT.jsonl.journal` beside its report) or a `redis://` URL.
Nothing here talks to VairoSMS or needs an API key: the panel is where a person checks
what an unknown batch did, and `resolve` records what it shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from .._errors import JournalError, JournalUnavailableError, SendInProgressError
from .._journal import Journal, JournalRecord, RecordState, batch_key
from .common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    JournalTarget,
    figures,
    journal_target,
    run_async,
    session,
)

__all__ = ["journal", "line_ranges", "parse_key", "row_refs", "shown_state"]


def _run(value: str, body: Callable[[Journal, JournalTarget], Awaitable[int]]) -> int:
    target = journal_target(value)

    async def run() -> int:
        async with target.open(create=False) as store:
            return await body(store, target)

    return run_async(run())


def shown_state(record: JournalRecord, now: float) -> str:
    """`sent`, `unknown`, `claimed` (lease live) or `unknown (claim expired)`."""
    state = record.effective_state(now)
    if record.state is RecordState.CLAIMED and state is RecordState.UNKNOWN:
        return "unknown (claim expired)"
    return state.value


def row_refs(meta: Mapping[str, Any]) -> tuple[list[int], list[str]]:
    """The file lines and row ids a batch record's `meta["refs"]` carries."""
    lines: list[int] = []
    ids: list[str] = []
    for ref in meta.get("refs") or ():
        if isinstance(ref, Mapping):
            line, ident = ref.get("line"), ref.get("id")
        elif isinstance(ref, list | tuple) and ref:
            line, ident = ref[0], (ref[1] if len(ref) > 1 else None)
        else:
            line, ident = ref, None
        if isinstance(line, int) and not isinstance(line, bool):
            lines.append(line)
        if ident is not None:
            ids.append(str(ident))
    return lines, ids


def line_ranges(lines: Iterable[int]) -> str:
    """Line numbers as ranges: `2-5, 8, 10-12`."""
    ranges: list[list[int]] = []
    for line in sorted(set(lines)):
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def parse_key(value: str) -> str:
    """A journal key as given (`batch:...`, `send:...`), or `CAMPAIGN:INDEX` made one.

    Raises:
        CliError: Neither form; exit status 2.
    """
    value = value.strip()
    if value.startswith(("batch:", "send:")):
        return value
    campaign, _, index = value.rpartition(":")
    if not campaign or not index.isdigit():
        raise CliError(
            f"{value!r} is not a journal key: give one as `journal unknown` lists it "
            "(batch:CAMPAIGN:INDEX), or CAMPAIGN:INDEX"
        )
    return batch_key(campaign, int(index))


# --- the group --------------------------------------------------------------------------------


@click.group("journal")
def journal() -> None:
    """Look into a journal: campaigns, unknown batches, resolving one, every package id.

    JOURNAL is a SQLite file (bulk keeps OUT.jsonl.journal beside its report) or a
    redis:// URL. No API key is needed: nothing is sent.
    """


_journal_argument = click.argument("journal_value", metavar="JOURNAL")


@journal.command()
@_journal_argument
def campaigns(journal_value: str) -> int:
    """List the journal's campaigns with their batches sent, unknown and claimed.

    Unknown batches may have been sent (an expired claim counts as unknown); claimed ones
    are in flight in a run whose lease has not passed.
    """
    return _run(journal_value, _campaigns)


async def _campaigns(store: Journal, target: JournalTarget) -> int:
    headers = await store.campaigns()
    if not headers:
        session().out.print(f"no campaigns in {target.shown}", markup=False)
        return EXIT_OK
    now = time.time()
    table = Table(title=f"Campaigns in {target.shown}", title_justify="left")
    table.add_column("campaign", no_wrap=True, min_width=max(map(len, headers)))
    for name in ("sender", "batch size", "sent", "unknown", "claimed", "messages"):
        table.add_column(name, justify="left" if name == "sender" else "right")
    for campaign, header in headers.items():
        counts = dict.fromkeys(RecordState, 0)
        messages = 0
        for record in await store.records(campaign=campaign):
            state = record.effective_state(now)
            counts[state] += 1
            if state is RecordState.SENT:
                messages += record.recipient_count or 0
        table.add_row(
            campaign,
            str(header.get("sender", "")),
            str(header.get("batch_size", "")),
            f"{counts[RecordState.SENT]:,}",
            f"{counts[RecordState.UNKNOWN]:,}",
            f"{counts[RecordState.CLAIMED]:,}",
            f"{messages:,}",
        )
    session().out.print(table)
    return EXIT_OK


@journal.command()
@_journal_argument
@click.argument("campaign", required=False)
def unknown(journal_value: str, campaign: str | None) -> int:
    """List the batches that may have been sent, with their rows: unknown and claimed.

    Each one's rows are the file lines (and --id-column values) it holds. Check them in
    the VairoSMS panel, then record what it shows with `journal resolve`. Without
    CAMPAIGN, every unresolved record of the journal is listed.
    """
    return _run(journal_value, lambda store, target: _unknown(store, target, campaign))


async def _unknown(store: Journal, target: JournalTarget, campaign: str | None) -> int:
    if campaign is not None and await store.get_campaign(campaign) is None:
        raise CliError(f"no campaign {campaign!r} in {target.shown}")
    records = await store.unresolved(campaign=campaign)
    where = target.shown if campaign is None else f"{campaign} in {target.shown}"
    out = session().out
    if not records:
        out.print(f"nothing unresolved in {where}", markup=False)
        return EXIT_OK
    now = time.time()
    refs = [row_refs(record.meta) for record in records]
    with_ids = any(ids for _, ids in refs)
    table = Table(title=f"Unresolved in {where}", title_justify="left")
    table.add_column("key", no_wrap=True, min_width=max(len(r.key) for r in records))
    for name in ("state", "since", "rows", "lines", *(["ids"] if with_ids else [])):
        table.add_column(name, justify="right" if name == "rows" else "left")
    table.add_column("detail")
    for record, (lines, ids) in zip(records, refs, strict=True):
        table.add_row(
            record.key,
            shown_state(record, now),
            _when(record.created_at),
            f"{len(lines):,}" if lines else "",
            line_ranges(lines),
            *([", ".join(ids)] if with_ids else []),
            record.detail or "",
        )
    out.print(table)
    out.print(
        "Check each in the VairoSMS panel, then: vairo-sms journal resolve JOURNAL KEY "
        "--package-id N (it was sent) or --not-sent (a rerun sends it).",
        markup=False,
        soft_wrap=True,
    )
    return EXIT_OK


@journal.command()
@_journal_argument
@click.argument("key_value", metavar="KEY_OR_BATCH")
@click.option(
    "--package-id", type=click.IntRange(min=1), help="The package the panel shows: it was sent."
)
@click.option("--not-sent", is_flag=True, help="The panel shows nothing: a rerun sends it.")
def resolve(journal_value: str, key_value: str, package_id: int | None, not_sent: bool) -> int:
    """Record what the panel shows for one unknown (or expired claimed) batch or send.

    KEY_OR_BATCH is a key as `journal unknown` lists it (batch:CAMPAIGN:INDEX, send:KEY),
    or CAMPAIGN:INDEX. Give --package-id N when the panel shows the package, or --not-sent
    when it shows none: the record is removed, and rerunning the campaign sends the batch.
    """
    if (package_id is not None) == not_sent:
        raise click.UsageError("give exactly one of --package-id N and --not-sent")
    key = parse_key(key_value)
    return _run(journal_value, lambda store, target: _resolve(store, target, key, package_id))


async def _resolve(store: Journal, target: JournalTarget, key: str, package_id: int | None) -> int:
    found = await store.get(key)
    if found is None:
        raise CliError(f"no record for {key} in {target.shown}: see `vairo-sms journal unknown`")
    lines, _ = row_refs(found.meta)
    count = found.recipient_count if found.recipient_count is not None else len(lines) or None
    try:
        record = await store.resolve(key, package_id=package_id, recipient_count=count)
    except SendInProgressError as exc:
        lease = exc.record.lease_expires
        until = "" if lease is None else f" until {_when(lease)}"
        raise CliError(
            f"{key} is claimed by a run whose lease lasts{until}: let that run finish, or "
            "resolve it once the lease has passed",
            EXIT_INCOMPLETE,
        ) from None
    except JournalError as exc:  # no record by now, or SENT as another package; or the store
        unavailable = isinstance(exc, JournalUnavailableError)
        raise CliError(str(exc), EXIT_INCOMPLETE if unavailable else EXIT_USAGE) from None
    out = session().out
    if record is None:
        rerun = "rerunning the campaign sends it" if key.startswith("batch:") else "it may be sent"
        out.print(f"{key}: not sent; its record is removed, so {rerun} again", markup=False)
    else:
        out.print(f"{key}: sent as package {record.package_id}", markup=False)
    return EXIT_OK


@journal.command()
@_journal_argument
@click.argument("campaign")
@click.option(
    "--out",
    "out_path",
    required=True,
    metavar="FILE.jsonl",
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file for one JSON line per batch.",
)
def export(journal_value: str, campaign: str, out_path: Path) -> int:
    """Write every batch of CAMPAIGN with its state and package id to a new JSON Lines file.

    Each line: campaign, batch, key, state (sent, unknown, claimed), package_id,
    recipients, estimated_credits, and the batch's rows (file lines and ids).
    """
    return _run(journal_value, lambda store, target: _export(store, target, campaign, out_path))


def export_record(record: JournalRecord, now: float) -> dict[str, Any]:
    """One batch's export line."""
    return {
        "campaign": record.campaign,
        "batch": record.batch,
        "key": record.key,
        "state": record.effective_state(now).value,
        "package_id": record.package_id,
        "recipients": record.recipient_count,
        "estimated_credits": record.estimated_credits,
        "rows": list(record.meta.get("refs") or []),
    }


async def _export(store: Journal, target: JournalTarget, campaign: str, out_path: Path) -> int:
    if await store.get_campaign(campaign) is None:
        raise CliError(f"no campaign {campaign!r} in {target.shown}")
    records = await store.records(campaign=campaign)
    now = time.time()
    lines = [export_record(record, now) for record in records]
    try:
        with out_path.open("x", encoding="utf-8", newline="\n") as file:
            file.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    except FileExistsError:
        raise CliError(f"{out_path} exists; pick a new file") from None
    except OSError as exc:
        raise CliError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    states = [line["state"] for line in lines]
    counts: Sequence[tuple[str, str]] = [
        ("batches", f"{len(lines):,}"),
        *((state.value, f"{states.count(state.value):,}") for state in RecordState),
        (
            "messages sent",
            f"{sum(line['recipients'] or 0 for line in lines if line['package_id'] is not None):,}",
        ),
    ]
    session().out.print(figures(f"Campaign {campaign} → {out_path}", counts))
    return EXIT_OK
