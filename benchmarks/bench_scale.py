"""One 1,000,000-row campaign on 1, 2 and 4 taskiq worker processes, beside `vairo-sms bulk`.

A redis-server on loopback holds the broker's stream and the journal; `_server.py` (the
benchmarks' cheap VairoSMS stand-in, in its own process) answers the sends. Each run
starts N `taskiq worker vairo_async.taskiq:broker` processes, times `vairo-sms campaign
start` and then the campaign until every shard's summary is in the journal, and checks the
server's message count. CPU comes from the processes themselves (psutil): the coordinator,
the workers (their children included) and redis-server, whose share is the journal's (and
the broker's) cost on the server side. `vairo-sms bulk` sends the same file in one process
with the same batch size and concurrency, without a journal.

    python benchmarks/bench_scale.py                 # 1,000,000 rows
    python benchmarks/bench_scale.py --rows 200000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _server import LoopbackServer  # noqa: E402

from tests.redis_server import running_server  # noqa: E402

BATCH = 1_000
CONCURRENCY = 8
SHARDS = 20


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as file:
        file.write("to,text\n")
        for i in range(rows):
            file.write(f"53{i:08d},Merhaba musteri {i} kampanya kodunuz ABC{i % 997}\n")


def cpu(process: psutil.Process) -> float:
    """CPU seconds of `process` and its live children."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 5
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def until_done(redis_url: str, campaign_id: str) -> None:
    from vairo_async import RedisJournal
    from vairo_async.taskiq import campaign_status

    async with RedisJournal(redis_url) as journal:
        while not (await campaign_status(journal, campaign_id)).done:  # noqa: ASYNC110 - the journal is the only signal
            await asyncio.sleep(0.1)


def run_workers(
    count: int, path: Path, rows: int, redis_url: str, server: LoopbackServer, redis_pid: int
) -> dict[str, float]:
    env = {
        **os.environ,
        "VAIRO_TASKIQ_BROKER": redis_url,
        "VAIRO_JOURNAL": redis_url,
        "VAIRO_TASKIQ_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "VAIRO_API_KEY": server.api_key,
        "VAIRO_BASE_URL": server.base_url,
        "VAIRO_SENDER": "ACME",
    }
    taskiq = shutil.which("taskiq", path=str(Path(sys.executable).parent)) or "taskiq"
    workers = [
        subprocess.Popen(
            [
                taskiq,
                "worker",
                "vairo_async.taskiq:broker",
                "--workers",
                "1",
                "--max-async-tasks",
                "1",
                "--log-level",
                "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    redis = psutil.Process(redis_pid)
    try:
        time.sleep(3)  # the workers import and connect; not part of the campaign's time
        before_workers = sum(cpu(psutil.Process(w.pid)) for w in workers)
        before_redis = cpu(redis)
        before_server = server.stats()
        before = os.times()
        started = time.perf_counter()
        coordinator = subprocess.run(
            [sys.executable, "-m", "vairo_async", "campaign", "start", str(path),
             "--shard-rows", str(-(-rows // SHARDS)), "--batch-size", str(BATCH),
             "--concurrency", str(CONCURRENCY)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        planned = time.perf_counter()
        after = os.times()
        coordinator_cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        asyncio.run(until_done(redis_url, coordinator.stdout.strip()))
        finished = time.perf_counter()
        worker_cpu = sum(cpu(psutil.Process(w.pid)) for w in workers) - before_workers
        redis_cpu = cpu(redis) - before_redis
        sent = (server.stats() - before_server).messages
    finally:
        stop(workers)
    if sent != rows:
        raise RuntimeError(f"the server counted {sent:,} messages, not {rows:,}")
    return {
        "plan_s": planned - started,
        "send_s": finished - planned,
        "coordinator_cpu": coordinator_cpu,
        "worker_cpu": worker_cpu,
        "redis_cpu": redis_cpu,
    }


def run_bulk(path: Path, rows: int, server: LoopbackServer, tmp: Path) -> dict[str, float]:
    env = {**os.environ, "VAIRO_API_KEY": server.api_key, "VAIRO_BASE_URL": server.base_url}
    before_server = server.stats()
    before = os.times()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vairo_async", "bulk", str(path), "--report",
         str(tmp / f"bulk-{uuid.uuid4().hex[:6]}.jsonl"), "--batch-size", str(BATCH),
         "--concurrency", str(CONCURRENCY), "--sender", "ACME"],
        env=env, capture_output=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    after = os.times()
    sent = (server.stats() - before_server).messages
    if sent != rows:
        raise RuntimeError(f"the server counted {sent:,} messages, not {rows:,}")
    used = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {"seconds": seconds, "cpu": used}


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    binary = shutil.which("redis-server") or "redis-server"
    with running_server(binary) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        pid = next(
            p.pid
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "redis-server" and port in " ".join(p.info["cmdline"] or [])
        )
        yield url, pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    rows: int = args.rows
    print(
        f"{rows:,} rows, {SHARDS} shards, batches of {BATCH:,}, {CONCURRENCY} in flight per "
        f"worker; {os.cpu_count()} CPUs; Python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as directory, LoopbackServer() as server:
        tmp = Path(directory)
        path = tmp / "campaign.csv"
        write_file(path, rows)
        print("| run | wall s | messages/s | CPU µs per message | of which redis-server |")
        print("|---|---:|---:|---:|---:|")
        bulk = run_bulk(path, rows, server, tmp)
        print(
            f"| `vairo-sms bulk`, 1 process, no journal | {bulk['seconds']:.1f} | "
            f"{rows / bulk['seconds']:,.0f} | {bulk['cpu'] / rows * 1e6:.1f} | – |",
            flush=True,
        )
        with redis_server() as (redis_url, redis_pid):
            for count in args.workers:
                figures = run_workers(count, path, rows, redis_url, server, redis_pid)
                wall = figures["plan_s"] + figures["send_s"]
                total = figures["coordinator_cpu"] + figures["worker_cpu"] + figures["redis_cpu"]
                print(
                    f"| {count} worker{'s' if count > 1 else ''} (plan {figures['plan_s']:.1f} s"
                    f" + send {figures['send_s']:.1f} s) | {wall:.1f} | {rows / wall:,.0f} | "
                    f"{total / rows * 1e6:.1f} | {figures['redis_cpu'] / total:.0%} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
