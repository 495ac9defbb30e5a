"""`vairo-sms bulk` with its journal: resuming after crashes, SIGTERM, mismatches, Redis.

The crash tests run the command as a real child process against the emulator served by the
test on loopback, kill it at a seeded point (the Nth package the emulator accepts, while
other batches are in flight), rerun the exact same command to the end, and check the
emulator's records, the report across the runs and the journal against each other.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis.asyncio as aioredis

from tests.cli.test_bulk_files import read_report
from tests.cli.test_cli import assert_one_line_error, invoke, invoke_async, served, table_values
from tests.support import API_KEY, ROOT
from vairo_async import RecordState, SqliteJournal
from vairo_async._cli.bulk import read_previous
from vairo_async._cli.common import CliError
from vairo_async._journal import batch_key
from vairo_async.testing import FakeVairo, Fault
from vairo_async.testing._state import Package

__all__ = ["served"]

ROWS = 60
BATCH = 3
CONCURRENCY = 3
#: The environment of a run refused before it reaches a server (none listens on port 9).
OFFLINE = {
    "VAIRO_API_KEY": API_KEY,
    "VAIRO_SENDER": "ACME",
    "VAIRO_BASE_URL": "http://127.0.0.1:9/",
}


def numbered_csv(path: Path, rows: int = ROWS, text: str = "Kampanya") -> Path:
    """A UTF-8 file with an id column; row n is on line n + 2 and goes to 53999{n:05d}."""
    lines = ["id,to,text", *(f"C{n},053999{n:05d},{text} {n}" for n in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bulk_args(source: Path, report: Path, *extra: str) -> list[str]:
    """The campaign's command; a later `--concurrency` or `--batch-size` in `extra` wins."""
    return [
        *("bulk", str(source), "--report", str(report), "--id-column", "id"),
        *("--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY), *extra),
    ]


async def finished_run(env: dict[str, str], tmp_path: Path, rows: int) -> tuple[Path, Path]:
    """Run a campaign of `rows` rows to its end; the file and the report."""
    source = numbered_csv(tmp_path / "liste.csv", rows=rows)
    report = tmp_path / "r.jsonl"
    assert (await invoke_async(bulk_args(source, report), env)).exit_code == 0
    return source, report


async def run_child(
    args: Sequence[str], env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, Callable[[], Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vairo_async",
        *args,
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return process, lambda: asyncio.wait_for(process.communicate(), 60)


def final_batches(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each batch's last record across every run of the report."""
    return {r["batch"]: r for r in records if r["type"] == "batch"}


async def check_accounting(
    fake: FakeVairo, report: Path, journal: Path
) -> dict[int, dict[str, Any]]:
    """The emulator, the report across runs and the journal agree; returns the final batches."""
    assert fake.duplicates() == {}
    records = read_report(report)
    assert [r["type"] for r in records].count("campaign") >= 2
    sent_lines = [
        row["line"]
        for r in records
        if r["type"] == "batch" and r["state"] == "sent"
        for row in r["rows"]
    ]
    assert len(sent_lines) == len(set(sent_lines))  # no row reported sent twice
    final = final_batches(records)
    lines = sorted(row["line"] for r in final.values() for row in r["rows"])
    assert lines == list(range(2, ROWS + 2))  # every row, once, in its batch's last record
    states = {r["state"] for r in final.values()}
    assert states <= {"sent", "unknown"}
    accepted = {(m.dest, m.text) for m in fake.messages}
    for batch in final.values():
        rows = {(row["to"], row["text"]) for row in batch["rows"]}
        if batch["state"] == "sent":
            assert rows <= accepted
            package = fake.packages[batch["package_id"]]
            assert {(m.dest, m.text) for m in package.messages} == rows
        else:
            assert batch["package_id"] is None
    records_in_journal = await _journal_records(journal)
    by_index = {record.batch: record for record in records_in_journal}
    for index, batch in final.items():
        record = by_index[index]
        if batch["state"] == "sent":
            assert record.state is RecordState.SENT
            assert record.package_id == batch["package_id"]
        else:
            assert record.state in (RecordState.UNKNOWN, RecordState.CLAIMED)
    journal_ids = {r.package_id for r in records_in_journal if r.state is RecordState.SENT}
    unknown_rows = {
        (row["to"], row["text"])
        for batch in final.values()
        if batch["state"] == "unknown"
        for row in batch["rows"]
    }
    for package in fake.packages.values():  # every accepted package is SENT, or UNKNOWN
        rows = {(m.dest, m.text) for m in package.messages}
        assert package.package_id in journal_ids or rows <= unknown_rows
    return final


async def _journal_records(path: Path) -> list[Any]:
    async with SqliteJournal(path) as journal:
        return await journal.records()


@attrs.frozen
class KillPoint:
    """Where a seeded crash test stops the child.

    Attributes:
        nth: The child is signalled when the emulator accepts its `nth` package...
        delay: ...this many seconds later: 0 is before that package's answer (in flight),
            more lets the answer arrive and the journal's SENT record perhaps be written.
        latency: The emulator's answer delay, keeping `concurrency` requests in flight.
        concurrency: Batches in flight at most.
    """

    nth: int
    delay: float
    latency: float
    concurrency: int

    @classmethod
    def seeded(cls, seed: int) -> KillPoint:
        rng = random.Random(seed)
        latency = rng.choice([0.0, 0.05, 0.2])
        return cls(
            nth=rng.randint(1, ROWS // BATCH - 6),
            delay=rng.choice([0.0, 0.5 * latency, 1.5 * latency]),
            latency=latency,
            concurrency=rng.randint(1, 3),
        )

    def arm(
        self, fake: FakeVairo, process: Callable[[], asyncio.subprocess.Process], signum: int
    ) -> asyncio.Event:
        """Signal the child at this point; the event is set once the signal went."""
        fired = asyncio.Event()
        seen = 0

        def kill() -> None:
            process().send_signal(signum)
            fired.set()

        def on_package(_: Package) -> None:
            nonlocal seen
            seen += 1
            if seen == self.nth:
                asyncio.get_running_loop().call_later(self.delay, kill)

        fake.latency = self.latency
        fake.fail_when = on_package
        return fired


Run = tuple[int | None, bytes, bytes]


async def crash_then_rerun(
    fake: FakeVairo, env: dict[str, str], tmp_path: Path, point: KillPoint, signum: int
) -> tuple[Run, Run, int, list[dict[str, Any]]]:
    """Run the campaign, signal it at `point`, rerun the same command to its end.

    Checks the accounting across both runs (`check_accounting`), that only batches in
    flight at the signal are unknown, and the rerun's exit status. Returns each run's
    (status, stdout, stderr), the packages the first run got accepted, and the unknown
    batches.
    """
    source = numbered_csv(tmp_path / "liste.csv")
    args = bulk_args(source, tmp_path / "rapor.jsonl", "--concurrency", str(point.concurrency))
    holder: list[asyncio.subprocess.Process] = []
    fired = point.arm(fake, lambda: holder[0], signum)
    process, finish = await run_child(args, env)
    holder.append(process)
    out, err = await finish()
    assert fired.is_set(), err.decode()
    assert fake.request_count("send") < ROWS // BATCH
    fake.fail_when = None
    fake.latency = 0.0
    accepted = len(fake.packages)
    rerun, finish = await run_child(args, env)
    out2, err2 = await finish()
    final = await check_accounting(fake, tmp_path / "rapor.jsonl", tmp_path / "rapor.jsonl.journal")
    unknown = [b for b in final.values() if b["state"] == "unknown"]
    assert len(unknown) <= point.concurrency  # only the batches in flight at the signal
    assert rerun.returncode == (1 if unknown else 0), err2.decode()
    return (process.returncode, out, err), (rerun.returncode, out2, err2), accepted, unknown


@pytest.mark.parametrize("seed", range(1, 7))
async def test_sigkill_mid_campaign_then_the_same_command_finishes_it(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, seed: int
) -> None:
    fake, env = served
    point = KillPoint.seeded(seed)
    report = tmp_path / "rapor.jsonl"

    (status, _, _), (_, stdout, stderr), first, unknown = await crash_then_rerun(
        fake, env, tmp_path, point, signal.SIGKILL
    )

    assert status == -signal.SIGKILL
    assert "resuming campaign bulk-" in stderr.decode()
    summary = read_report(report)[-1]
    assert summary["rows"] == ROWS
    assert summary["sent"] == ROWS - BATCH * len(unknown)
    assert summary["unknown"] == BATCH * len(unknown)
    final = final_batches(read_report(report))
    replayed = [b for b in final.values() if b["state"] == "sent" and b["package_id"] <= first]
    assert summary["replayed"] == BATCH * len(replayed)
    shown = table_values(stdout.decode())
    assert shown["replayed"] == str(summary["replayed"])
    assert shown["campaign"].startswith("bulk-")


@pytest.mark.parametrize("seed", [7, 8, 9])
async def test_sigterm_mid_campaign_writes_the_summary_and_the_rerun_finishes(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, seed: int
) -> None:
    fake, env = served
    point = KillPoint.seeded(seed)
    report = tmp_path / "rapor.jsonl"

    (status, stdout, stderr), _, _, _ = await crash_then_rerun(
        fake, env, tmp_path, point, signal.SIGTERM
    )

    assert status == 130, stderr.decode()
    assert stderr.decode().splitlines()[-1] == "vairo-sms: interrupted"
    assert "(interrupted)" in stdout.decode()
    records = read_report(report)
    first_summary = next(r for r in records if r["type"] == "summary")
    assert first_summary["interrupted"] is True
    assert first_summary["not_read"] > 0
    summary = records[-1]
    assert (summary["rows"], summary["interrupted"]) == (ROWS, False)
    assert summary["sent"] + summary["unknown"] == ROWS


# --- resuming in process ----------------------------------------------------------------------


async def test_a_rerun_of_a_finished_campaign_sends_nothing_and_replays_every_batch(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = numbered_csv(tmp_path / "liste.csv", rows=7)
    report = tmp_path / "r.jsonl"

    first = await invoke_async(bulk_args(source, report), env)
    again = await invoke_async(bulk_args(source, report, "--concurrency", "1"), env)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert len(fake.messages) == 7
    assert fake.request_count("send") == 3
    records = read_report(report)
    assert [r["type"] for r in records] == [
        *("campaign", "batch", "batch", "batch", "summary"),
        *("campaign", "summary"),  # replayed batches already in the report are not repeated
    ]
    assert records[5]["resumed"] is True
    assert records[0]["resumed"] is False
    assert records[0]["campaign"] == records[5]["campaign"]
    assert records[0]["journal"] == str((tmp_path / "r.jsonl.journal").absolute())
    assert (records[-1]["sent"], records[-1]["replayed"], records[-1]["packages"]) == (7, 7, 3)
    assert table_values(again.stdout)["replayed"] == "7"


async def test_an_unknown_batch_is_not_resent_and_a_failed_one_is(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = numbered_csv(tmp_path / "liste.csv", rows=6)
    report = tmp_path / "r.jsonl"
    args = bulk_args(source, report, "--concurrency", "1")
    fake.inject(Fault.server_error(500))  # batch 0: may have been sent
    fake.inject(Fault.rate_limit(retry_after=3600))  # batch 1: certainly not sent

    first = await invoke_async(args, env)
    again = await invoke_async(args, env)

    assert (first.exit_code, again.exit_code) == (1, 1)
    assert fake.request_count("send") == 3  # 500, 429, then batch 1 again; never batch 0
    assert sorted(int(m.dest[-5:]) for m in fake.messages) == [3, 4, 5]
    records = read_report(report)
    final = final_batches(records)
    assert (final[0]["state"], final[1]["state"]) == ("unknown", "sent")
    # The unknown batch is in the report once: the rerun's replay of it adds nothing.
    assert [r["state"] for r in records if r.get("batch") == 0] == ["unknown"]
    assert [r["state"] for r in records if r.get("batch") == 1] == ["failed", "sent"]
    summary = read_report(report)[-1]
    assert (summary["sent"], summary["unknown"], summary["replayed"]) == (3, 3, 0)


async def test_a_report_line_cut_short_by_a_crash_is_dropped_on_resume(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source, report = await finished_run(env, tmp_path, rows=3)
    lines = report.read_text(encoding="utf-8").splitlines(keepends=True)
    report.write_text(lines[0] + lines[1][:20], encoding="utf-8")  # header, half a batch

    result = await invoke_async(bulk_args(source, report), env)

    assert result.exit_code == 0, result.output
    records = read_report(report)
    assert [r["type"] for r in records] == ["campaign", "campaign", "batch", "summary"]
    assert records[2]["replayed"] is True
    assert len(fake.messages) == 3


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["file", "batch size", "template", "dedupe", "exclude"],
)
async def test_a_changed_file_or_option_for_the_same_report_is_refused(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, change: str
) -> None:
    fake, env = served
    source, report = await finished_run(env, tmp_path, rows=4)
    before = report.read_bytes()
    extra: list[str] = []
    if change == "file":
        numbered_csv(source, rows=5)
    elif change == "batch size":
        extra = ["--batch-size", "2"]
    elif change == "template":
        extra = ["--template", "Merhaba {id}"]
    elif change == "dedupe":
        extra = ["--dedupe"]
    else:
        optout = tmp_path / "ret.txt"
        optout.write_text("05399900001\n", encoding="utf-8")
        extra = ["--exclude", str(optout)]
    args = bulk_args(source, report, *extra)  # a later --batch-size wins

    result = await invoke_async(args, env)

    line = assert_one_line_error(result)
    assert line.startswith("vairo-sms: campaign 'bulk-")
    assert "does not match the journal" in line
    assert "pick a new --report" in line
    assert report.read_bytes() == before
    assert len(fake.messages) == 4


async def test_the_reports_own_journal_holding_another_campaign_is_refused(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source, report = await finished_run(env, tmp_path, rows=2)
    report.unlink()
    numbered_csv(source, rows=3)

    result = await invoke_async(bulk_args(source, report), env)

    line = assert_one_line_error(result)
    assert "is the journal of another run of" in line
    assert not report.exists()
    assert len(fake.messages) == 2


async def test_resuming_with_another_or_a_lost_journal_is_refused(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source, report = await finished_run(env, tmp_path, rows=2)
    other = tmp_path / "other.journal"

    elsewhere = await invoke_async(bulk_args(source, report, "--journal", str(other)), env)
    (tmp_path / "r.jsonl.journal").unlink()
    lost = await invoke_async(bulk_args(source, report), env)
    without = await invoke_async(bulk_args(source, report, "--no-journal"), env)
    both = await invoke_async(bulk_args(source, report, "--no-journal", "--journal", "x"), env)

    assert "was written with the journal" in assert_one_line_error(elsewhere)
    assert f"pass --journal {(tmp_path / 'r.jsonl.journal').absolute()}" in elsewhere.stderr
    assert "has no record of it" in assert_one_line_error(lost)
    assert "exists" in assert_one_line_error(without)
    assert "exclude each other" in assert_one_line_error(both)
    assert len(fake.messages) == 2


async def test_no_journal_sends_without_one_and_an_explicit_journal_file_is_used(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = numbered_csv(tmp_path / "liste.csv", rows=2)
    shared = tmp_path / "shared.db"

    plain = await invoke_async(bulk_args(source, tmp_path / "a.jsonl", "--no-journal"), env)
    chosen = await invoke_async(
        bulk_args(source, tmp_path / "b.jsonl", "--journal", str(shared)), env
    )
    replay = await invoke_async(
        bulk_args(source, tmp_path / "c.jsonl", "--journal", str(shared)), env
    )

    assert (plain.exit_code, chosen.exit_code, replay.exit_code) == (0, 0, 0)
    assert not (tmp_path / "a.jsonl.journal").exists()
    assert "campaign" not in read_report(tmp_path / "a.jsonl")[0]
    assert not (tmp_path / "b.jsonl.journal").exists()
    assert shared.exists()
    assert len(fake.messages) == 4  # a and b sent; c, a new report of b's campaign, replayed
    assert read_report(tmp_path / "c.jsonl")[-1]["replayed"] == 2


def test_a_journal_in_a_missing_folder_or_a_folder_is_refused(tmp_path: Path) -> None:
    source = numbered_csv(tmp_path / "liste.csv", rows=1)

    missing = invoke(bulk_args(source, tmp_path / "r.jsonl", "--journal", "/nope/j.db"), OFFLINE)
    folder = invoke(bulk_args(source, tmp_path / "r.jsonl", "--journal", str(tmp_path)), OFFLINE)
    empty = invoke(bulk_args(source, tmp_path / "r.jsonl", "--journal", " "), OFFLINE)

    assert "its folder does not exist" in assert_one_line_error(missing)
    assert "is a folder" in assert_one_line_error(folder)
    assert "--journal is empty" in assert_one_line_error(empty)
    assert not (tmp_path / "r.jsonl").exists()


async def test_a_redis_journal_resumes_and_never_shows_its_password(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, redis_url: str
) -> None:
    fake, env = served
    password = "s3cret-Pa55"
    base = redis_url.removeprefix("redis://")
    url = f"redis://default:{password}@{base.rsplit('/', 1)[0]}/3"
    source = numbered_csv(tmp_path / "liste.csv", rows=4)
    report = tmp_path / "r.jsonl"
    admin = aioredis.Redis.from_url(redis_url)
    await admin.config_set("requirepass", password)
    await admin.aclose()
    try:
        first = await invoke_async(bulk_args(source, report, "--journal", url), env)
        again = await invoke_async(bulk_args(source, report, "--journal", url), env)
        wrong = await invoke_async(
            bulk_args(source, tmp_path / "w.jsonl", "--journal", url.replace(password, "bad")), env
        )
    finally:
        async with aioredis.Redis.from_url(url) as admin:
            await admin.flushdb()
            await admin.config_set("requirepass", "")

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert len(fake.messages) == 4
    assert read_report(report)[-1]["replayed"] == 4
    header = read_report(report)[0]
    assert header["journal"] == url.replace(password, "[REDACTED]")
    line = assert_one_line_error(wrong, 1)
    assert "JournalUnavailableError" in line
    for result in (first, again, wrong):
        assert password not in result.output
    assert password not in report.read_text(encoding="utf-8")


@pytest.mark.parametrize("content", ["not json\n", "[1]\n", '{"type": "campaign"}\n', ""])
def test_a_file_that_is_not_a_journaled_report_is_not_resumed(tmp_path: Path, content: str) -> None:
    source = numbered_csv(tmp_path / "liste.csv", rows=1)
    report = tmp_path / "r.jsonl"
    report.write_text(content, encoding="utf-8")

    result = invoke(bulk_args(source, report), OFFLINE)

    assert "is not the report of a journaled campaign" in assert_one_line_error(result)
    assert report.read_text(encoding="utf-8") == content


def test_a_report_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="cannot read"):
        read_previous(tmp_path)  # a folder


async def test_rows_the_command_rejects_are_reported_once_across_runs(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = tmp_path / "liste.csv"
    source.write_text("to,ad\n05399900001,Ali\n05399900002,\n05399900003,Can\n", encoding="utf-8")
    report = tmp_path / "r.jsonl"
    args = ["bulk", str(source), "--report", str(report), "--template", "Merhaba {ad}"]
    fake.inject(Fault.server_error(500))

    first = await invoke_async([*args, "--batch-size", "1"], env)
    again = await invoke_async([*args, "--batch-size", "1"], env)

    assert (first.exit_code, again.exit_code) == (1, 1)
    records = read_report(report)
    assert [r["line"] for r in records if r["type"] == "rejected"] == [3]
    assert records[-1]["rejected"] == 1
    assert len(fake.messages) == 1  # the 500's batch is unknown, the other sent once


async def test_a_batch_whose_rows_differ_from_the_journal_is_refused_before_it_is_sent(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = numbered_csv(tmp_path / "liste.csv", rows=6)
    journal = tmp_path / "shared.db"
    args = ["--journal", str(journal), "--concurrency", "1"]
    fake.inject(Fault.rate_limit(retry_after=3600), times=2)  # batches 0 and 1: not sent
    assert (await invoke_async(bulk_args(source, tmp_path / "a.jsonl", *args), env)).exit_code == 1
    async with SqliteJournal(journal) as store:
        [campaign] = await store.campaigns()
        await store.claim(
            batch_key(campaign, 0),
            fingerprint="other rows",
            owner="o",
            lease=1,
            campaign=campaign,
            batch=0,
        )
    sent = len(fake.messages)

    result = await invoke_async(bulk_args(source, tmp_path / "b.jsonl", *args), env)

    line = assert_one_line_error(result)
    assert f"batch 0 of '{campaign}' does not match the journal" in line
    assert len(fake.messages) == sent
    assert read_report(tmp_path / "b.jsonl")[-1]["interrupted"] is False
