"""Real processes killed with SIGKILL mid-campaign, then rerun; and two processes racing a key.

A child (`journal_child.py`, run with `sys.executable`) sends to the emulator this test serves
on loopback. It is killed at a chosen point: right after a claim is committed, while a request
is in flight (the emulator kills it as it accepts the n-th package, so the answer never
arrives), after the answer but before SENT is written, or between batches. A second child
then reruns the same campaign to its end, and the emulator's records are checked against the
journal. Synchronisation is by the processes' exit and pipes, never by sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from vairo_async import RecordState, SqliteJournal
from vairo_async.testing import FakeVairo, Package

from . import journal_child as child

CHILD = Path(child.__file__)
POINTS = ["after_claim", "mid_request", "before_sent", "after_sent"]
# Five seeded kill points of each kind: the n-th claim, package or SENT write of 20 batches.
KILLS = [
    (point, n)
    for point in POINTS
    for n in sorted(random.Random(point).sample(range(1, child.ROWS // child.BATCH_SIZE + 1), 5))
]


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = await asyncio.to_thread(proc.communicate)
    return proc.returncode, out, err


def batch_of(dest: str) -> int:
    return int(dest[2:]) // child.BATCH_SIZE


@pytest.mark.parametrize(("point", "n"), KILLS, ids=[f"{p}-{n}" for p, n in KILLS])
async def test_a_campaign_killed_anywhere_resumes_without_sending_twice(
    fake: FakeVairo, url: str, tmp_path: Path, point: str, n: int
) -> None:
    path = str(tmp_path / "journal.db")
    kill = "none" if point == "mid_request" else f"{point}:{n}"
    proc = start("campaign", url, fake.api_key, path, kill)
    if point == "mid_request":
        accepted = 0

        def kill_in_flight(package: Package) -> None:
            nonlocal accepted
            accepted += 1
            if accepted == n:  # the package is accepted; its answer will find no one
                proc.send_signal(signal.SIGKILL)

        fake.fail_when = kill_in_flight
    code, out, err = await finish(proc)
    assert code == -signal.SIGKILL, (out, err)
    fake.fail_when = None

    async with SqliteJournal(path) as journal:
        crashed = {r.batch or 0: r for r in await journal.records(campaign=child.CAMPAIGN)}
    unresolved = [b for b, r in crashed.items() if r.state is not RecordState.SENT]
    assert len(unresolved) <= child.CONCURRENCY
    sent_before = {b for b, r in crashed.items() if r.state is RecordState.SENT}

    code, out, err = await finish(start("campaign", url, fake.api_key, path, "none"))
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)

    # No row was accepted twice.
    assert fake.duplicates() == {}
    per_row = collections.Counter((m.dest, m.text) for m in fake.messages)
    assert set(per_row.values()) <= {1}
    # Every package the emulator accepted is SENT with its id, or UNKNOWN, in the journal.
    async with SqliteJournal(path) as journal:
        records = {r.batch or 0: r for r in await journal.records(campaign=child.CAMPAIGN)}
        assert await journal.unresolved(campaign=child.CAMPAIGN) == [
            records[b] for b in sorted(unresolved)
        ]
    for package_id, package in fake.packages.items():
        record = records[batch_of(package.messages[0].dest)]
        assert record.package_id == package_id or record.state is not RecordState.SENT
    # The rerun accounted for every row: unknown batches reported, every other row sent.
    assert result["total"] == child.ROWS
    assert result["failed"] == result["rejected"] == 0
    assert result["unknown_batches"] == sorted(unresolved)
    assert result["unknown"] == child.BATCH_SIZE * len(unresolved)
    assert result["sent"] == child.ROWS - result["unknown"]
    assert set(result["replayed"]) == sent_before | set(unresolved)
    sent_rows = {int(dest[2:]) for dest, _ in per_row}
    for i in range(child.ROWS):
        if i // child.BATCH_SIZE not in unresolved:
            assert i in sent_rows
    assert sorted(result["package_ids"]) == sorted(
        r.package_id for r in records.values() if r.package_id is not None
    )
    if point == "after_claim":
        # The batch claimed last was killed before its request: nothing of it arrived.
        assert any(all(i not in sent_rows for i in range(b * 10, b * 10 + 10)) for b in unresolved)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_two_processes_racing_one_key_send_once(
    fake: FakeVairo, url: str, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    where = (
        str(tmp_path / "journal.db") if store == "sqlite" else request.getfixturevalue("redis_url")
    )
    key = f"order-{uuid.uuid4().hex}"
    procs = [start("sends", url, fake.api_key, where, key) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "ready", await finish(proc)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        code, out, err = await finish(proc)
        assert code == 0, err
        results.extend(json.loads(out))
    assert len(results) == 2 * child.SENDS
    assert fake.request_count("send") == 1
    (package_id,) = fake.packages
    sent = [r for r in results if "package_id" in r]
    assert {r["package_id"] for r in sent} == {package_id}
    assert [r["replayed"] for r in sent].count(False) == 1
    assert {r["error"] for r in results if "error" in r} <= {"SendInProgressError"}
