"""What the journal costs: a campaign and single sends with and without one.

- Bulk: `send_bulk(rows, batch_size=1000, concurrency=8)` without a journal and with
  `campaign=` on a `SqliteJournal` (two commits per batch: the claim and SENT). Target: client
  CPU with the journal at most 1.10x the same campaign without it.
- Single sends: `send(..., idempotency_key=K)`, a fresh key each, 64 in flight, without a
  journal, on a `SqliteJournal`, and on a `RedisJournal` (a redis-server this script starts on
  a free loopback port, with and without `appendfsync always`, and stops after).

Each run is a fresh child process (so its CPU is its own: `time.process_time` counts the
SQLite journal's thread too) against `_server.py` on loopback; the server's counts are checked
after every run. Medians of `--reps` runs; a campaign's CPU against no journal is the median
of each repetition's ratio to the run without a journal beside it.

    python benchmarks/bench_journal.py            # 200,000 rows, 2,000 sends, 5 repetitions
    python benchmarks/bench_journal.py --quick    # 50,000 rows, 500 sends, 1 repetition
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import LoopbackServer

BATCH = 1_000
IN_FLIGHT = 8
SINGLE_IN_FLIGHT = 64
SENDER = "ACME"
NO_FSYNC = "SqliteJournal, synchronous=OFF (not durable: fsync's share)"
BULK = ("no journal", "SqliteJournal", NO_FSYNC)
SINGLE = (
    "no journal",
    "SqliteJournal",
    "RedisJournal, no persistence",
    "RedisJournal, appendfsync always",
)


def rows(count: int) -> Iterator[tuple[str, str]]:
    for i in range(count):
        yield f"53{i % 100_000_000:08d}", f"Merhaba musteri {i}, kampanya kodunuz ABC{i % 997}"


JOURNAL_THREAD_CPU: list[float] = []


def journal_for(kind: str, where: str) -> Any:
    from vairo_async import RedisJournal, SqliteJournal

    class Measured(SqliteJournal):
        """A SqliteJournal that reports the CPU of its thread (and may skip fsync)."""

        def _serve(self) -> None:
            start = time.thread_time()
            try:
                super()._serve()
            finally:
                JOURNAL_THREAD_CPU.append(time.thread_time() - start)

        def _connect(self) -> Any:
            conn = super()._connect()
            if kind == NO_FSYNC:
                conn.execute("PRAGMA synchronous=OFF")
            return conn

    if kind.startswith("SqliteJournal"):
        return Measured(where)
    if kind.startswith("RedisJournal"):
        return RedisJournal(where, prefix=f"bench-{time.time_ns()}:")
    return None


async def run_bulk(url: str, key: str, count: int, kind: str, where: str) -> int:
    from vairo_async import AsyncVairoClient, BatchState, Message

    journal = journal_for(kind, where)
    async with contextlib.AsyncExitStack() as stack:
        if journal is not None:
            await stack.enter_async_context(journal)
        client = AsyncVairoClient(key, sender=SENDER, base_url=url, journal=journal)
        await stack.enter_async_context(client)
        messages = (Message(to=to, text=text) for to, text in rows(count))
        result = await client.send_bulk(
            messages,
            batch_size=BATCH,
            concurrency=IN_FLIGHT,
            campaign=None if journal is None else "bench",
        )
        if result.sent != count or any(o.state is not BatchState.SENT for o in result.outcomes):
            raise RuntimeError(f"{kind}: {result.sent} of {count} sent")
        return result.sent


async def run_single(url: str, key: str, count: int, kind: str, where: str) -> int:
    from vairo_async import AsyncVairoClient

    journal = journal_for(kind, where)
    async with contextlib.AsyncExitStack() as stack:
        if journal is not None:
            await stack.enter_async_context(journal)
        client = AsyncVairoClient(key, sender=SENDER, base_url=url, journal=journal)
        await stack.enter_async_context(client)
        todo = iter(range(count))
        sent = 0

        async def worker() -> None:
            nonlocal sent
            for i in todo:
                to, text = f"53{i:08d}", f"Dogrulama kodunuz {i % 9999:04d}"
                idempotency_key = None if journal is None else f"otp-{i}"
                await client.send(text, to=to, idempotency_key=idempotency_key)
                sent += 1

        await asyncio.gather(*(worker() for _ in range(SINGLE_IN_FLIGHT)))
        return sent


def child(workload: str, kind: str, url: str, key: str, count: int, where: str) -> None:
    import httpx  # noqa: F401  (imports are not part of the cost)

    import vairo_async  # noqa: F401

    runner = run_bulk if workload == "bulk" else run_single
    cpu, main_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
    sent = asyncio.run(runner(url, key, count, kind, where))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    main_cpu = time.thread_time() - main_cpu
    figures = {"sent": sent, "cpu": cpu, "wall": wall, "main_cpu": main_cpu}
    figures["journal_cpu"] = sum(JOURNAL_THREAD_CPU)
    print(json.dumps(figures))


def measure(
    server: LoopbackServer, workload: str, kind: str, count: int, where: str
) -> dict[str, Any]:
    before = server.stats()
    argv = [sys.executable, __file__, "--child", workload, kind, server.base_url]
    done = subprocess.run(
        [*argv, server.api_key, str(count), where], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{workload} {kind} failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    seen = server.stats() - before
    if figures["sent"] != count or seen.messages != count:
        raise RuntimeError(f"{kind}: {count} rows, {figures['sent']} acked, {seen.messages} seen")
    return figures


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(directory: str, *, fsync_always: bool) -> Iterator[str]:
    """A redis-server on a free loopback port until the block ends; its URL."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise SystemExit("bench_journal needs redis-server (or valkey-server) on PATH")
    port = _free_port()
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"]
        if fsync_always
        else ["--appendonly", "no"]
    )
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory]
    proc = subprocess.Popen(
        [*command, *persistence],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the server says when it accepts connections
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server ended before it was ready")
        # Keep reading its log, so a full pipe never stalls it.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def median(results: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(r[field] for r in results))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows, 500 sends, 1 rep")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--child", nargs=6, metavar=("WORK", "KIND", "URL", "KEY", "N", "AT"))
    args = parser.parse_args(argv)
    if args.child:
        workload, kind, url, key, count, where = args.child
        child(workload, kind, url, key, int(count), where)
        return 0
    bulk_rows, singles = (50_000, 500) if args.quick else (200_000, 2_000)
    reps = args.reps or (1 if args.quick else 5)
    bulk: dict[str, list[dict[str, Any]]] = {kind: [] for kind in BULK}
    single: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SINGLE}
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer() as server:
        for name in ("volatile", "durable"):
            (Path(tmp) / name).mkdir()
        with (
            redis_server(str(Path(tmp) / "volatile"), fsync_always=False) as volatile,
            redis_server(str(Path(tmp) / "durable"), fsync_always=True) as durable,
        ):
            places = {
                "no journal": "-",
                "RedisJournal, no persistence": volatile,
                "RedisJournal, appendfsync always": durable,
            }
            for rep in range(reps):
                for kind in BULK[rep % 3 :] + BULK[: rep % 3]:  # the order rotates
                    where = places.get(kind) or str(Path(tmp) / f"bulk-{rep}-{len(kind)}.db")
                    bulk[kind].append(measure(server, "bulk", kind, bulk_rows, where))
                for kind in SINGLE:
                    where = places.get(kind) or str(Path(tmp) / f"single-{rep}.db")
                    single[kind].append(measure(server, "single", kind, singles, where))
    print(
        f"\nPython {platform.python_version()}, {platform.machine()}, {reps} repetition(s), "
        "medians; loopback server in another process\n"
    )
    print(f"Bulk: {bulk_rows:,} rows in batches of {BATCH:,}, {IN_FLIGHT} in flight\n")
    print(
        "| journal | client CPU s | event loop thread s | journal thread s | wall s "
        "| CPU vs no journal | per repetition |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in BULK:
        cpu, wall = median(bulk[kind], "cpu"), median(bulk[kind], "wall")
        main_cpu, journal_cpu = median(bulk[kind], "main_cpu"), median(bulk[kind], "journal_cpu")
        # Each repetition against the run without a journal next to it: the machine's speed
        # drifts between repetitions more than the journal costs.
        ratios = [
            mine["cpu"] / base["cpu"]
            for mine, base in zip(bulk[kind], bulk["no journal"], strict=True)
        ]
        print(
            f"| {kind} | {cpu:.3f} | {main_cpu:.3f} | {journal_cpu:.3f} | {wall:.3f} "
            f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}x to {max(ratios):.2f}x |"
        )
    print(
        f"\nSingle sends: {singles:,} sends, a fresh idempotency key each, "
        f"{SINGLE_IN_FLIGHT} in flight\n"
    )
    print("| journal | CPU us per send | wall ms per send (sends/s) | CPU vs no journal |")
    print("|---|---:|---:|---:|")
    base = median(single["no journal"], "cpu")
    for kind in SINGLE:
        cpu, wall = median(single[kind], "cpu"), median(single[kind], "wall")
        print(
            f"| {kind} | {cpu * 1e6 / singles:.0f} | {wall * 1e3 / singles:.3f} "
            f"({singles / wall:,.0f}/s) | {cpu / base:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
