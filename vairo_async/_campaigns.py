"""One campaign across many workers: the shard plan, a shard's run, status and export.

The coordinator reads and checks the file once (through `_cli.rows`, as `vairo-sms bulk`
does), cuts it into shards at record boundaries and writes the campaign's header to the
journal: its parameters, the file's SHA-256 and the shard plan. A shard is a byte range of
the file (which every worker reads at the same path) with its row count and SHA-256; a
worker refuses a shard whose bytes no longer match. Each shard runs as campaign `ID/n`
through the journal, under a run lock (a journal claim), so a shard delivered twice, even
at once, runs once, and a redelivered one resumes: its SENT batches are replayed, never
resent. Status, waiting and the export read the journal only. Nothing here imports taskiq.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import secrets
import socket
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from ._cli.common import CliError
from ._cli.rows import (
    ByteLines,
    CsvSource,
    FileCheck,
    Row,
    Template,
    iter_rows,
    open_source,
    read_exclusions,
)
from ._client import AsyncVairoClient
from ._errors import (
    CampaignMismatchError,
    ClaimLostError,
    InvalidRequestError,
    JournalError,
    SendInProgressError,
)
from ._journal import Journal, JournalRecord, RecordState, batch_key, new_owner
from ._models import Message, PackageReport
from ._rate import RateLimiter

__all__ = [
    "CAMPAIGN_KIND",
    "CampaignStatus",
    "FileOptions",
    "Plan",
    "Shard",
    "ShardMismatchError",
    "ShardStatus",
    "ShardTask",
    "campaign_status",
    "export_campaign",
    "new_campaign_id",
    "plan_campaign",
    "run_shard",
    "shard_campaign",
    "wait_campaign",
]

CAMPAIGN_KIND = "vairo.sharded-campaign"
"""The `kind` of a sharded campaign's header, telling it from a one-process campaign's."""

_SUMMARY = "#summary"
_RUNS = "#runs"
_HASH_CHUNK = 1 << 20


class ShardMismatchError(JournalError):
    """A shard's bytes are not those the coordinator planned: the file changed or differs.

    The worker sends nothing from it.

    .. versionadded:: 0.2.0
    """


def new_campaign_id() -> str:
    """A fresh campaign id: the UTC date and time, and 8 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def shard_campaign(campaign_id: str, index: int) -> str:
    """The journal campaign a shard runs as: `ID/n`."""
    return f"{campaign_id}/{index}"


@attrs.frozen(kw_only=True)
class FileOptions:
    """How the file is read: `vairo-sms bulk`'s file options, kept in the header.

    Attributes:
        encoding: The `--encoding`, or None for UTF-8.
        to_column: The number column's name, or None for `to`.
        text_column: The text column's name, or None.
        id_column: The id column's name, or None.
        text: The one text of every row, or None.
        template: The template's source, or None.
        exclude_path: The exclusion file, read by every worker, or None.
        exclude_sha256: The exclusion file's SHA-256, checked by every worker.
        dedupe: Whether repeats of an earlier row are rejected.
    """

    encoding: str | None = None
    to_column: str | None = None
    text_column: str | None = None
    id_column: str | None = None
    text: str | None = None
    template: str | None = None
    exclude_path: str | None = None
    exclude_sha256: str | None = None
    dedupe: bool = False

    def source(self, path: Path) -> CsvSource:
        """The file's header read and matched under these options."""
        template = None if self.template is None else Template.parse(self.template)
        return open_source(
            path,
            encoding=self.encoding,
            to_column=self.to_column,
            text_column=self.text_column,
            id_column=self.id_column,
            text=self.text,
            template=template,
        )

    def exclusions(self) -> frozenset[str]:
        """The exclusion file's numbers, after checking its hash."""
        if self.exclude_path is None:
            return frozenset()
        path = Path(self.exclude_path)
        found = file_sha256(path)
        if found != self.exclude_sha256:
            raise ShardMismatchError(
                f"{path} changed since the campaign started (SHA-256 {found}, "
                f"planned {self.exclude_sha256})"
            )
        return read_exclusions(path)


@attrs.frozen(kw_only=True)
class Shard:
    """One shard of the file: bytes `start` to `end`, holding `rows` data rows.

    Attributes:
        index: The shard's number, from 0.
        start: Byte offset of its first record.
        end: Byte offset just past its last record.
        rows: Data rows it holds.
        first_line: The file line its first byte is on.
        sha256: SHA-256 of its bytes.
    """

    index: int
    start: int
    end: int
    rows: int
    first_line: int
    sha256: str = ""


@attrs.frozen(kw_only=True)
class Plan:
    """The coordinator's plan: what the header holds, and the tasks to enqueue.

    Attributes:
        campaign_id: The campaign's id.
        header: The campaign's header, as written to the journal.
        shards: The shards, in file order.
        check: What the whole-file check found.
        repeats: With `dedupe`, each shard's repeated lines (line -> its first line).
    """

    campaign_id: str
    header: Mapping[str, Any]
    shards: tuple[Shard, ...]
    check: FileCheck
    repeats: Mapping[int, Mapping[int, int]] = attrs.field(factory=dict)

    def task(self, shard: Shard) -> ShardTask:
        """The task message of `shard`: a reference to its bytes, not its rows."""
        return ShardTask(
            campaign_id=self.campaign_id,
            path=str(self.header["file"]),
            index=shard.index,
            start=shard.start,
            end=shard.end,
            rows=shard.rows,
            first_line=shard.first_line,
            sha256=shard.sha256,
            repeats=dict(self.repeats.get(shard.index, {})),
        )


@attrs.frozen(kw_only=True)
class ShardTask:
    """What a shard task carries: the campaign, the file's path and the shard's bytes.

    `repeats` lists, with `dedupe`, the shard's rows that repeat an earlier row of the file
    (line -> the earlier line): a shard alone cannot see the rows before it.
    """

    campaign_id: str
    path: str
    index: int
    start: int
    end: int
    rows: int
    first_line: int
    sha256: str
    repeats: Mapping[int, int] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The task's JSON form (line numbers as strings, as JSON keys are)."""
        data = attrs.asdict(self)
        data["repeats"] = {str(k): v for k, v in self.repeats.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardTask:
        """Read a task's JSON form back.

        Raises:
            InvalidRequestError: A field is missing or of the wrong type.
        """
        try:
            values = dict(data)
            values["repeats"] = {int(k): int(v) for k, v in values.get("repeats", {}).items()}
            task = cls(**values)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequestError([f"shard task {data!r}: {exc}"]) from None
        for name in ("index", "start", "end", "rows", "first_line"):
            value = getattr(task, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequestError([f"shard task {name}={value!r}: must be an int >= 0"])
        return task


def file_sha256(path: Path, start: int = 0, end: int | None = None) -> str:
    """SHA-256 of the file's bytes from `start` to `end` (the end of the file if None)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            file.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = file.read(_HASH_CHUNK if left is None else min(_HASH_CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                if left is not None:
                    left -= len(chunk)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def plan_campaign(
    path: Path,
    options: FileOptions,
    *,
    sender: str,
    shard_rows: int,
    batch_size: int,
    concurrency: int,
    rate: float | None,
    campaign_id: str | None = None,
) -> Plan:
    """Check and count the file once, cutting it into shards of `shard_rows` rows.

    The path is made absolute: every worker reads the file at that path.

    Raises:
        CliError: The file cannot be read, has no rows, or is in an encoding whose line
            breaks are not single 0x0A bytes (UTF-16): exit status 2.
    """
    path = path.absolute()
    source = options.source(path)
    if not ByteLines.supports(source.codec):
        raise CliError(
            f"{path} is {source.encoding_label}: a sharded campaign reads UTF-8 or a "
            "single-byte encoding (save it as UTF-8)"
        )
    exclude = options.exclusions()
    check = FileCheck()
    shards: list[Shard] = []
    repeats: dict[int, dict[int, int]] = {}
    try:
        file = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    with file:
        lines = ByteLines(file, source.codec)
        next(lines, None)  # the header: one line, as `open_source` reads it
        start, first_line, rows = lines.position, lines.lines + 1, 0
        for row in iter_rows(
            source, exclude=exclude, dedupe=options.dedupe, lines=lines, first_line=2
        ):
            check.add(row)
            rows += 1
            if options.dedupe and row.repeat_of is not None:
                repeats.setdefault(len(shards), {})[row.line] = row.repeat_of
            if rows == shard_rows:
                shards.append(
                    Shard(
                        index=len(shards),
                        start=start,
                        end=lines.position,
                        rows=rows,
                        first_line=first_line,
                    )
                )
                start, first_line, rows = lines.position, lines.lines + 1, 0
        end = lines.position
    if not check.rows:
        raise CliError(f"{path} has a header but no rows to send")
    if rows:
        shards.append(
            Shard(index=len(shards), start=start, end=end, rows=rows, first_line=first_line)
        )
    elif end > shards[-1].end:  # blank lines after the last row join the last shard
        shards[-1] = attrs.evolve(shards[-1], end=end)
    shards = [attrs.evolve(s, sha256=file_sha256(path, s.start, s.end)) for s in shards]
    campaign_id = campaign_id or new_campaign_id()
    header = {
        "kind": CAMPAIGN_KIND,
        "file": str(path),
        "sha256": file_sha256(path),
        "size": end,
        "rows": check.rows,
        "valid": check.valid,
        "repeats": check.repeats,
        "estimated_credits": check.credits,
        "sender": sender,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "rate": rate,
        "shard_rows": shard_rows,
        "options": attrs.asdict(options),
        "shards": [attrs.asdict(s) for s in shards],
    }
    return Plan(
        campaign_id=campaign_id, header=header, shards=tuple(shards), check=check, repeats=repeats
    )


async def write_header(journal: Journal, plan: Plan) -> Mapping[str, Any]:
    """Write the plan's header unless the campaign has one; return the stored header.

    Raises:
        CampaignMismatchError: The campaign id holds another campaign's header.
    """
    stored = await journal.put_campaign(plan.campaign_id, plan.header)
    if dict(stored) != dict(plan.header):
        differing = sorted(
            name for name in {*stored, *plan.header} if stored.get(name) != plan.header.get(name)
        )
        raise CampaignMismatchError(
            plan.campaign_id, "other " + ", ".join(differing) + " than the journal's"
        )
    return stored


# --- a shard's run ---------------------------------------------------------------------------


def _summary_id(campaign_id: str, index: int) -> str:
    return shard_campaign(campaign_id, index) + _SUMMARY


def _run_key(campaign_id: str, index: int) -> str:
    return batch_key(campaign_id + _RUNS, index)


async def _header(journal: Journal, campaign_id: str) -> Mapping[str, Any]:
    header = await journal.get_campaign(campaign_id)
    if header is None or header.get("kind") != CAMPAIGN_KIND:
        raise JournalError(f"no sharded campaign {campaign_id!r} in {journal!r}")
    return header


async def _lock(journal: Journal, task: ShardTask, owner: str, lease: float, poll: float) -> None:
    """Take the shard's run lock, waiting while another worker holds a live one.

    An expired lock (its worker died) is cleared and taken over.
    """
    key = _run_key(task.campaign_id, task.index)
    meta = {"host": socket.gethostname(), "pid": os.getpid()}
    while True:
        claim = await journal.claim(
            key,
            fingerprint=task.sha256,
            owner=owner,
            lease=lease,
            campaign=task.campaign_id + _RUNS,
            batch=task.index,
            meta=meta,
        )
        if claim.claimed or claim.record.owner == owner:
            return
        if claim.record.effective_state(time.time()) is RecordState.CLAIMED:
            if await journal.get_campaign(_summary_id(task.campaign_id, task.index)):
                return  # finished meanwhile: the caller finds the summary
            await asyncio.sleep(poll)
            continue
        with contextlib.suppress(SendInProgressError, JournalError):
            await journal.resolve(key, package_id=None)  # the holder died: take over


async def _unlock(journal: Journal, task: ShardTask, owner: str) -> None:
    with contextlib.suppress(ClaimLostError):
        await journal.release(_run_key(task.campaign_id, task.index), owner=owner)


def _read_shard(task: ShardTask) -> bytes:
    path = Path(task.path)
    try:
        with path.open("rb") as file:
            file.seek(task.start)
            data = file.read(task.end - task.start)
    except OSError as exc:
        raise ShardMismatchError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != task.sha256:
        raise ShardMismatchError(
            f"shard {task.index} of {path} (bytes {task.start}-{task.end}) has SHA-256 "
            f"{found}, not {task.sha256}: the file changed, or differs on this machine"
        )
    return data


def _messages(
    source: CsvSource, task: ShardTask, data: bytes, exclude: frozenset[str], own: list[Row]
) -> Iterator[Message]:
    lines = ByteLines(io.BytesIO(data), source.codec)
    for row in iter_rows(source, exclude=exclude, lines=lines, first_line=task.first_line):
        first = task.repeats.get(row.line)
        if first is not None:
            row = attrs.evolve(
                row,
                reason=f"repeats line {first} (same number and text)",
                kind="repeat of an earlier row",
                own=True,
                repeat_of=first,
            )
        if row.own:
            own.append(row)
            continue
        yield Message(to=row.to, text=row.text, ref={"line": row.line, "id": row.id})


async def run_shard(
    client: AsyncVairoClient,
    journal: Journal,
    task: ShardTask,
    *,
    rate: Callable[[float | None], float | RateLimiter | None] | None = None,
    lease: float = 3600.0,
    poll: float = 2.0,
) -> Mapping[str, Any]:
    """Run one shard as campaign `ID/n` through `journal`; return its summary.

    Safe to run twice, even at once: a run lock (a journal claim with `lease`) lets one
    run go at a time, a finished shard's summary is returned as it is, and a resumed
    shard replays its SENT batches instead of resending them. `rate` maps the header's
    rate (sends per second, or None) to what `send_bulk` takes: a limiter shared by every
    worker, say; without it the header's rate is a limit of this process alone.

    Raises:
        ShardMismatchError: The shard's bytes (or the exclusion file) are not those
            planned: nothing is sent.
        JournalError: The campaign is unknown, or the journal failed.
    """
    header = await _header(journal, task.campaign_id)
    summary_id = _summary_id(task.campaign_id, task.index)
    done = await journal.get_campaign(summary_id)
    if done is not None:
        return done
    owner = new_owner()
    await _lock(journal, task, owner, lease, poll)
    try:
        done = await journal.get_campaign(summary_id)
        if done is not None:
            return done
        data = _read_shard(task)
        options = FileOptions(**header["options"])
        try:
            source = options.source(Path(task.path))
            exclude = options.exclusions()
        except CliError as exc:
            raise ShardMismatchError(str(exc)) from None
        own: list[Row] = []
        started = time.monotonic()
        result = await client.send_bulk(
            _messages(source, task, data, exclude, own),
            sender=header["sender"],
            batch_size=header["batch_size"],
            concurrency=header["concurrency"],
            rate=header["rate"] if rate is None else rate(header["rate"]),
            exclude=exclude,
            campaign=shard_campaign(task.campaign_id, task.index),
        )
        summary = {
            "shard": task.index,
            "rows": result.total + len(own),
            "sent": result.sent,
            "failed": result.failed,
            "unknown": result.unknown,
            "rejected": result.rejected + len(own),
            "packages": len(result.package_ids),
            "estimated_credits": result.estimated_credits,
            "own_rejected": [{"line": r.line, "reason": r.reason} for r in own],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "seconds": round(time.monotonic() - started, 3),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return await journal.put_campaign(summary_id, summary)
    finally:
        await asyncio.shield(_unlock(journal, task, owner))


# --- status, wait, export ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ShardStatus:
    """One shard's state and counts, from the journal.

    The counts come from the shard's batch records as they are now, so a batch settled
    by `journal resolve` after the shard finished counts as it was resolved; the summary
    adds what the records cannot say: the rows, and the rejected rows.

    Attributes:
        index: The shard's number.
        state: `pending` (not started), `running` (a run holds or held its lock, no
            summary yet) or `done` (its summary is written).
        rows: Data rows in the shard.
        sent: Rows in SENT batches.
        failed: Rows certainly not sent (done shards only; 0 before): the rows neither
            rejected nor in a SENT or unknown batch.
        unknown: Rows in batches whose outcome is unknown, or still in flight.
        rejected: Rows rejected (done shards only; 0 before).
        packages: SENT batches' package ids.
    """

    index: int
    state: str
    rows: int
    sent: int
    failed: int
    unknown: int
    rejected: int
    packages: tuple[int, ...]


@attrs.frozen(kw_only=True)
class CampaignStatus:
    """A sharded campaign's state, from the journal.

    Attributes:
        campaign_id: The campaign's id.
        header: Its header (parameters, file hash, shard plan).
        shards: Each shard's status, in order.

    .. versionadded:: 0.2.0
    """

    campaign_id: str
    header: Mapping[str, Any]
    shards: tuple[ShardStatus, ...]

    def total(self, name: str) -> int:
        """The sum of `rows`, `sent`, `failed`, `unknown` or `rejected` over the shards."""
        return sum(int(getattr(shard, name)) for shard in self.shards)

    def count(self, state: str) -> int:
        """Shards in `state` (`pending`, `running`, `done`)."""
        return sum(1 for shard in self.shards if shard.state == state)

    @property
    def package_ids(self) -> tuple[int, ...]:
        """Every SENT batch's package id, shard by shard."""
        return tuple(p for shard in self.shards for p in shard.packages)

    @property
    def done(self) -> bool:
        """Every shard has its summary."""
        return all(shard.state == "done" for shard in self.shards)


async def _batches(journal: Journal, campaign_id: str, index: int) -> list[JournalRecord]:
    return await journal.records(campaign=shard_campaign(campaign_id, index))


async def campaign_status(journal: Journal, campaign_id: str) -> CampaignStatus:
    """The state of campaign `campaign_id` and of each of its shards, from the journal.

    Raises:
        JournalError: The journal holds no sharded campaign of that id.

    .. versionadded:: 0.2.0
    """
    header = await _header(journal, campaign_id)
    now = time.time()
    shards = []
    for planned in header["shards"]:
        index = int(planned["index"])
        records = await _batches(journal, campaign_id, index)
        summary = await journal.get_campaign(_summary_id(campaign_id, index))
        run = await journal.get(_run_key(campaign_id, index))
        sent = [r for r in records if r.state is RecordState.SENT]
        packages = tuple(r.package_id for r in sent if r.package_id is not None)
        sent_rows = sum(_sent_rows(r) for r in sent)
        unknown = sum(
            _record_rows(r) for r in records if r.effective_state(now) is not RecordState.SENT
        )
        if summary is not None:
            # The records say what was sent or is unknown now (after `journal resolve`,
            # say); the summary what they cannot: the rows, and the rejected rows that
            # never reached a batch. The rest is certainly not sent.
            rows, rejected = int(summary["rows"]), int(summary["rejected"])
            shards.append(
                ShardStatus(
                    index=index,
                    state="done",
                    rows=rows,
                    sent=sent_rows,
                    failed=max(0, rows - rejected - sent_rows - unknown),
                    unknown=unknown,
                    rejected=rejected,
                    packages=packages,
                )
            )
            continue
        shards.append(
            ShardStatus(
                index=index,
                state="running" if run is not None or records else "pending",
                rows=int(planned["rows"]),
                sent=sent_rows,
                failed=0,
                unknown=unknown,
                rejected=0,
                packages=packages,
            )
        )
    return CampaignStatus(campaign_id=campaign_id, header=header, shards=tuple(shards))


def _sent_rows(record: JournalRecord) -> int:
    if record.recipient_count is not None:
        return record.recipient_count
    return _record_rows(record)


def _record_rows(record: JournalRecord) -> int:
    refs = record.meta.get("refs")
    if isinstance(refs, list):
        return len(refs)
    return record.recipient_count or 0


async def export_campaign(
    journal: Journal, campaign_id: str
) -> AsyncGenerator[dict[str, Any], None]:
    """Every batch of the campaign as a JSON-able record: shard, batch, state, package id.

    Batches come shard by shard, in batch order; each shard's summary follows its batches,
    when it is done. Rows of unknown batches are listed by their file lines.

    Raises:
        JournalError: The journal holds no sharded campaign of that id.

    .. versionadded:: 0.2.0
    """
    header = await _header(journal, campaign_id)
    yield {"type": "campaign", "campaign": campaign_id} | {
        k: v for k, v in header.items() if k != "shards"
    }
    now = time.time()
    for planned in header["shards"]:
        index = int(planned["index"])
        for record in await _batches(journal, campaign_id, index):
            refs = record.meta.get("refs")
            yield {
                "type": "batch",
                "campaign": campaign_id,
                "shard": index,
                "batch": record.batch,
                "state": record.effective_state(now).value,
                "package_id": record.package_id,
                "recipients": record.recipient_count,
                "estimated_credits": record.estimated_credits,
                "lines": [r.get("line") for r in refs if isinstance(r, dict)]
                if isinstance(refs, list)
                else None,
                "detail": record.detail,
            }
        summary = await journal.get_campaign(_summary_id(campaign_id, index))
        if summary is not None:
            yield {"type": "shard", "campaign": campaign_id, **summary}


async def wait_campaign(
    client: AsyncVairoClient,
    journal: Journal,
    campaign_id: str,
    **wait_options: Any,
) -> AsyncGenerator[PackageReport, None]:
    """Wait until every SENT package of the campaign is final (`client.wait_all`).

    `wait_options` are `wait_all`'s (timeout, concurrency, poll_interval, ...). Yields
    each package's final report as it comes; raises `WaitAllError` as `wait_all` does.

    .. versionadded:: 0.2.0
    """
    status = await campaign_status(journal, campaign_id)
    finals = client.wait_all(status.package_ids, **wait_options)
    async with contextlib.aclosing(finals):
        async for report in finals:
            yield report
