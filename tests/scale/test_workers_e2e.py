"""One campaign on three real `taskiq worker` processes, one of them killed mid-shard.

A real redis-server, the emulator on loopback (served by this test), the coordinator and
the status and export commands as `vairo-sms` processes. The killed worker's shard is
redelivered (a 2 s idle timeout) and finished by another worker; nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vairo_async import RecordState, RedisJournal
from vairo_async._campaigns import campaign_status, shard_campaign
from vairo_async.taskiq import TASK_NAME, make_broker
from vairo_async.testing import Fault, RandomFaults, RemoteFakeVairo

from ..support import emulator as support_emulator

API_KEY = "e2e-emulator-key"
ROWS = 200_000
SHARD_ROWS = 8_000  # 25 shards
BATCH = 500
CONCURRENCY = 4
RATE = 60.0  # sends per second for the whole account
BAD_LINES = (1_001, 77_777, 150_002)  # file lines whose number is not a mobile number
SHARD_LEASE = 8
DEADLINE = 120.0
SEND_LATENCY = 0.2  # seconds the emulator takes for each send


def _write_file(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("to,text\n")
        for i in range(ROWS):
            line = i + 2
            to = "12345" if line in BAD_LINES else f"53{i:08d}"
            text = f'"Merhaba {i}\nikinci satır"' if i % 20_000 == 7 else f"Merhaba {i}"
            file.write(f"{to},{text}\n")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vairo_async", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[RemoteFakeVairo, str]]:
    """The emulator in a process of its own, so that its clock stamps each request as it
    arrives, not when this test's busy event loop gets round to it."""
    with support_emulator(api_key=API_KEY) as (_, url):
        async with RemoteFakeVairo(url, api_key=API_KEY) as fake:
            # Every send takes a moment, so the batches a worker is killed with are still in
            # flight, as they would be against the real API.
            await fake.set_random_faults(
                RandomFaults({Fault.latency(SEND_LATENCY): 1.0}, endpoint="send")
            )
            yield fake, url


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    name = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "VAIRO_TASKIQ_BROKER": redis_url,
        "VAIRO_JOURNAL": redis_url,
        "VAIRO_TASKIQ_QUEUE": f"test-{name}",
        "VAIRO_TASKIQ_IDLE_TIMEOUT": "2",
        "VAIRO_TASKIQ_LOCK_TIMEOUT": "2",
        "VAIRO_SHARD_LEASE": str(SHARD_LEASE),
        "VAIRO_RATE_KEY": f"test-{name}",
        "VAIRO_SENDER": "ACME",
    }


def _start_workers(env: dict[str, str], count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for n in range(count):
        with (log_dir / f"worker{n}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "taskiq",
                        "worker",
                        "vairo_async.taskiq:broker",
                        "--workers",
                        "1",
                        "--max-async-tasks",
                        "1",
                        "--shutdown-timeout",
                        "5",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its worker child is stopped with it
                )
            )
    return workers


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """Ask each worker to stop, then end its process group (the worker child included)."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 5
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def _in_flight_shard(journal: RedisJournal, campaign_id: str) -> tuple[int, int]:
    """A shard whose worker holds its run lock and has sent some batches: (index, pid)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for run in await journal.records(campaign=campaign_id + "#runs"):
            if run.effective_state(time.time()) is not RecordState.CLAIMED:
                continue
            assert run.batch is not None
            batches = await journal.records(campaign=shard_campaign(campaign_id, run.batch))
            sent = [r for r in batches if r.state is RecordState.SENT]
            claimed = [r for r in batches if r.state is RecordState.CLAIMED]
            if len(sent) >= 2 and claimed and len(batches) < SHARD_ROWS // BATCH - 2:
                return run.batch, int(run.meta["pid"])
        await asyncio.sleep(0.02)
    raise AssertionError("no shard was seen in flight")


def _parent(pid: int) -> int:
    """The parent's pid of a live process, from /proc (its name may hold spaces)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


async def _until_done(journal: RedisJournal, campaign_id: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not (await campaign_status(journal, campaign_id)).done:
        assert time.monotonic() < deadline, "the campaign did not finish"
        await asyncio.sleep(0.2)


async def test_a_killed_worker_s_shard_is_finished_by_another_and_nothing_is_sent_twice(
    tmp_path: Path, redis_url: str, env: dict[str, str], emulator: tuple[RemoteFakeVairo, str]
) -> None:
    remote, url = emulator
    env = env | {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": url}
    csv_path = tmp_path / "campaign.csv"
    _write_file(csv_path)
    workers = _start_workers(env, 3, tmp_path)
    try:
        started = _cli(
            "campaign", "start", str(csv_path),
            "--shard-rows", str(SHARD_ROWS), "--batch-size", str(BATCH),
            "--concurrency", str(CONCURRENCY), "--rate", str(RATE),
            env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        campaign_id = started.stdout.strip()
        async with RedisJournal(redis_url) as journal:
            header = await journal.get_campaign(campaign_id)
            assert header is not None
            assert len(header["shards"]) == 25
            # The same shards delivered a second time, at once, to whichever worker is free.
            broker = make_broker(redis_url, queue_name=env["VAIRO_TASKIQ_QUEUE"])
            await broker.startup()
            for shard in header["shards"][:3]:
                task = broker.find_task(TASK_NAME)
                assert task is not None
                await task.kiq(
                    {"campaign_id": campaign_id, "path": header["file"], **shard, "repeats": {}}
                )
            await broker.shutdown()

            killed_shard, pid = await _in_flight_shard(journal, campaign_id)
            # The pid the run lock names is a worker child of a `taskiq worker` (which
            # restarts its children under new pids), not the `taskiq worker` itself.
            parents = {worker.pid for worker in workers}
            assert pid not in parents
            assert _parent(pid) in parents
            os.kill(pid, signal.SIGKILL)
            await _until_done(journal, campaign_id)
            summary = await journal.get_campaign(f"{campaign_id}/{killed_shard}#summary")
            assert summary is not None
            # Another live worker child finished the killed shard.
            assert summary["host"] == socket.gethostname()
            assert summary["pid"] != pid
            assert _parent(summary["pid"]) in parents
            state = await campaign_status(journal, campaign_id)
            unknown_records = [
                r
                for shard in state.shards
                for r in await journal.records(campaign=shard_campaign(campaign_id, shard.index))
                if r.effective_state(time.time()) is not RecordState.SENT
            ]
    finally:
        _stop(workers)

    packages = await remote.packages()
    accepted = len(await remote.messages())
    requests = await remote.requests()
    # No row accepted twice; every row of the file accounted for.
    assert await remote.duplicates() == {}
    assert state.total("rows") == ROWS
    assert (
        state.total("sent") + state.total("failed") + state.total("unknown")
        + state.total("rejected")
    ) == ROWS  # fmt: skip
    assert state.total("rejected") == len(BAD_LINES)
    assert state.total("failed") == 0
    # Unknown only for the killed worker's batches in flight, at most its concurrency.
    assert {r.campaign for r in unknown_records} <= {shard_campaign(campaign_id, killed_shard)}
    assert len(unknown_records) <= CONCURRENCY
    assert state.total("unknown") == sum(len(r.meta["refs"]) for r in unknown_records)
    assert state.shards[killed_shard].state == "done"
    # Every SENT batch is an accepted package with its rows; the only other accepted
    # packages are the killed worker's unknown batches that reached the server.
    sent_ids = set(state.package_ids)
    assert sent_ids <= set(packages)
    assert sum(len(packages[p].messages) for p in sent_ids) == state.total("sent")
    extra = set(packages) - sent_ids
    assert len(extra) <= len(unknown_records)
    assert state.total("sent") <= accepted <= state.total("sent") + state.total("unknown")

    # The shared cap held over every one-second window (10 % slack).
    stamps = sorted(r.at for r in requests if r.endpoint == "send" and r.at is not None)
    assert len(stamps) >= len(packages)
    busiest = max(bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps))
    assert busiest <= RATE * 1.1, busiest

    # `campaign status` and `campaign export` agree with the emulator.
    status = _cli("campaign", "status", campaign_id, env=env)
    assert status.returncode == 1  # some rows are unknown
    assert f"{state.total('sent'):,}" in status.stdout
    assert "25 done, 0 running, 0 pending" in status.stdout
    out = tmp_path / "export.jsonl"
    exported = _cli("campaign", "export", campaign_id, "--out", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    batches = [r for r in records if r["type"] == "batch"]
    sent = [b for b in batches if b["state"] == "sent"]
    assert {b["package_id"] for b in sent} == sent_ids
    for batch in sent:
        assert len(packages[batch["package_id"]].messages) == batch["recipients"]
        assert len(batch["lines"]) == batch["recipients"]
    assert len([r for r in records if r["type"] == "shard"]) == 25
    assert sum(len(b["lines"]) for b in batches if b["state"] != "sent") == state.total("unknown")
