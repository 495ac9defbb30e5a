"""`vairo-sms campaign`: one campaign across many taskiq workers, through a Redis journal.

`start` checks and cuts the file and enqueues its shards (it sends nothing itself);
`status`, `wait` and `export` read the journal. The workers are
`taskiq worker vairo_async.taskiq:broker` (see `vairo_async.taskiq`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from .._errors import WaitAllError
from .._journal import RedisJournal
from .common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Api,
    CliError,
    api_options,
    describe_report,
    figures,
    file_options,
    one_line,
    require_sender,
    run_async,
    send_options,
    sender_option,
    session,
)
from .rows import resolve_text

if TYPE_CHECKING:
    from .._campaigns import FileOptions

# `_campaigns` reads files through `rows`, so it is imported where it is used, not here.

__all__ = ["campaign"]

ENV_BROKER = "VAIRO_TASKIQ_BROKER"
ENV_JOURNAL = "VAIRO_JOURNAL"


def _journal_option(command: Callable[..., int]) -> Callable[..., int]:
    return click.option(
        "--journal",
        "journal_url",
        metavar="redis://...",
        envvar=ENV_JOURNAL,
        show_envvar=True,
        required=True,
        help="The Redis journal the workers record every batch in.",
    )(command)


@click.group()
def campaign() -> None:
    """One campaign across many taskiq workers (the taskiq extra).

    Workers run `taskiq worker vairo_async.taskiq:broker`; the file must be readable at
    the same path by every worker.
    """


@campaign.command()
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--broker",
    "broker_url",
    metavar="redis://...",
    envvar=ENV_BROKER,
    show_envvar=True,
    required=True,
    help="The taskiq-redis broker the workers read.",
)
@click.option(
    "--queue",
    metavar="NAME",
    envvar="VAIRO_TASKIQ_QUEUE",
    show_envvar=True,
    help="The broker's stream (default vairo-taskiq:shards).",
)
@_journal_option
@click.option("--id", "campaign_id", metavar="ID", help="The campaign's id (default: a new one).")
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows per shard (one task each).",
)
@file_options(
    id_help="A column kept with each row.",
    exclude_help="Numbers not to send to (read by every worker, at the same path).",
)
@send_options(
    concurrency_help="Batches in flight per worker at most.",
    rate_help="Sends per second for the whole account, shared by every worker.",
)
@sender_option
def start(
    csv_path: Path,
    broker_url: str,
    queue: str | None,
    journal_url: str,
    campaign_id: str | None,
    shard_rows: int,
    encoding: str | None,
    to_column: str | None,
    text_column: str | None,
    id_column: str | None,
    text: str | None,
    template: str | None,
    template_file: Path | None,
    dedupe: bool,
    exclude_path: Path | None,
    batch_size: int,
    concurrency: int,
    rate: float | None,
    sender: str | None,
) -> int:
    """Check FILE.csv, cut it into shards, enqueue one task per shard; print the id.

    Takes bulk's file options. Started again with --id ID and the same file, the
    campaign's unfinished shards are enqueued again (finished ones are not).
    """
    from .._campaigns import FileOptions, file_sha256

    sender = require_sender(sender)
    template = resolve_text(text, template, template_file)
    exclude = None if exclude_path is None else exclude_path.absolute()
    options = FileOptions(
        encoding=encoding,
        to_column=to_column,
        text_column=text_column,
        id_column=id_column,
        text=text,
        template=template,
        exclude_path=None if exclude is None else str(exclude),
        exclude_sha256=None if exclude is None else file_sha256(exclude),
        dedupe=dedupe,
    )
    return run_async(
        _start(
            csv_path,
            broker_url,
            queue,
            journal_url,
            campaign_id,
            options,
            sender=sender,
            shard_rows=shard_rows,
            batch_size=batch_size,
            concurrency=concurrency,
            rate=rate,
        )
    )


async def _start(
    path: Path,
    broker_url: str,
    queue: str | None,
    journal_url: str,
    campaign_id: str | None,
    options: FileOptions,
    **settings: Any,
) -> int:
    from ..taskiq import DEFAULT_QUEUE, make_broker, start_campaign

    broker = make_broker(broker_url, queue_name=queue or DEFAULT_QUEUE)
    async with RedisJournal(journal_url) as journal:
        plan = await start_campaign(
            path,
            broker=broker,
            journal=journal,
            options=options,
            campaign_id=campaign_id,
            **settings,
        )
    check = plan.check
    session().err.print(
        figures(
            f"Campaign {plan.campaign_id}: {path.name}",
            [
                ("rows", f"{check.rows:,}"),
                ("valid rows", f"{check.valid:,}"),
                ("rejected rows", f"{check.rows - check.valid:,}"),
                ("estimated credits", f"{check.credits:,}"),
                ("shards", f"{len(plan.shards):,}"),
            ],
        )
    )
    click.echo(plan.campaign_id)
    return EXIT_OK


@campaign.command()
@click.argument("campaign_id", metavar="ID")
@_journal_option
def status(campaign_id: str, journal_url: str) -> int:
    """Print each shard's rows, sent, failed, unknown and rejected, and the shards' states.

    Exit status 0 when every shard is done with every row sent or rejected, 1 otherwise.
    """
    return run_async(_status(campaign_id, journal_url))


async def _status(campaign_id: str, journal_url: str) -> int:
    from .._campaigns import campaign_status

    async with RedisJournal(journal_url) as journal:
        state = await campaign_status(journal, campaign_id)
    names = ("rows", "sent", "failed", "unknown", "rejected")
    table = Table(title=f"Campaign {campaign_id}", title_justify="left")
    table.add_column("shard", justify="right")
    table.add_column("state")
    for name in names:
        table.add_column(name, justify="right")
    for shard in state.shards:
        table.add_row(str(shard.index), shard.state, *(f"{getattr(shard, n):,}" for n in names))
    table.add_row("total", "", *(f"{state.total(n):,}" for n in names), style="bold")
    out = session().out
    out.print(table)
    out.print(
        f"shards: {state.count('done')} done, {state.count('running')} running, "
        f"{state.count('pending')} pending; packages: {len(state.package_ids):,}",
        markup=False,
    )
    complete = state.done and state.total("failed") == 0 and state.total("unknown") == 0
    return EXIT_OK if complete else EXIT_INCOMPLETE


@campaign.command()
@click.argument("campaign_id", metavar="ID")
@_journal_option
@click.option("--timeout", type=click.FloatRange(min=0), help="Seconds to wait at most.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds before the first poll; later polls back off to 30 s.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Report requests in flight at most.",
)
@api_options
def wait(
    api: Api,
    campaign_id: str,
    journal_url: str,
    timeout: float | None,
    poll_interval: float,
    concurrency: int,
) -> int:
    """Wait until every package of the campaign is final; print each one's status line.

    Exit status 1 if any package FAILED or could not be waited for.
    """
    return run_async(_wait(api, campaign_id, journal_url, timeout, poll_interval, concurrency))


async def _wait(
    api: Api,
    campaign_id: str,
    journal_url: str,
    deadline: float | None,
    poll_interval: float,
    concurrency: int,
) -> int:
    from .._campaigns import wait_campaign

    status = EXIT_OK
    async with RedisJournal(journal_url) as journal, api.client() as vairo:
        finals = wait_campaign(
            vairo,
            journal,
            campaign_id,
            timeout=deadline,
            concurrency=concurrency,
            poll_interval=poll_interval,
            max_poll_interval=max(poll_interval, 30.0),
        )
        try:
            async with contextlib.aclosing(finals):
                async for report in finals:
                    click.echo(describe_report(report))
                    if report.status.name == "FAILED":
                        status = EXIT_INCOMPLETE
        except WaitAllError as failures:
            for package_id, error in failures.errors.items():
                click.echo(one_line(f"{package_id} ERROR {type(error).__name__}: {error}"))
            status = EXIT_INCOMPLETE
    return status


@campaign.command()
@click.argument("campaign_id", metavar="ID")
@_journal_option
@click.option(
    "--out",
    "out_path",
    metavar="FILE.jsonl",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file for every batch with its package id, one JSON object a line.",
)
def export(campaign_id: str, journal_url: str, out_path: Path) -> int:
    """Write every batch of the campaign (state, package id, file lines) to FILE.jsonl."""
    return run_async(_export(campaign_id, journal_url, out_path))


async def _export(campaign_id: str, journal_url: str, out_path: Path) -> int:
    from .._campaigns import export_campaign

    try:
        out = out_path.open("x", encoding="utf-8", newline="\n")
    except FileExistsError:
        raise CliError(f"{out_path} exists; pick a new file") from None
    except OSError as exc:
        raise CliError(f"cannot create {out_path}: {exc.strerror or exc}") from None
    batches = 0
    with out:
        async with RedisJournal(journal_url) as journal:
            records = export_campaign(journal, campaign_id)
            async with contextlib.aclosing(records):
                async for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    batches += record["type"] == "batch"
    session().err.print(f"{batches:,} batches written to {out_path}", markup=False)
    return EXIT_OK
