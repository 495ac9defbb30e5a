"""A campaign of up to 1,000,000 messages: `iter_bulk` beside bare httpx batching by hand.

Both clients read the same rows lazily from a generator, send them in batches of 1,000 with
8 in flight to a loopback server in another process (`_server.py`), and must have every
message acknowledged (checked against the server's own count). Each (client, size) runs in
a fresh child process, so its peak RSS is its own: with lazy input, the peak must not grow
with the number of messages.

    python benchmarks/bench_bulk.py            # 100,000 and 1,000,000 messages
    python benchmarks/bench_bulk.py --quick    # 20,000 and 100,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import LoopbackServer

BATCH = 1_000
IN_FLIGHT = 8
SENDER = "ACME"
CLIENTS = ("SDK iter_bulk (default stack)", "bare httpx, batching by hand")


def rows(count: int) -> Iterator[tuple[str, str]]:
    """The campaign's rows, generated on demand: (number, personalised text)."""
    for i in range(count):
        yield f"53{i % 100_000_000:08d}", f"Merhaba musteri {i}, kampanya kodunuz ABC{i % 997}"


async def run_sdk(base_url: str, api_key: str, count: int) -> int:
    from vairo_async import AsyncVairoClient, BatchState, Message

    sent = 0
    async with AsyncVairoClient(api_key, sender=SENDER, base_url=base_url) as client:
        messages = (Message(to=to, text=text) for to, text in rows(count))
        async for outcome in client.iter_bulk(messages, batch_size=BATCH, concurrency=IN_FLIGHT):
            if outcome.state is not BatchState.SENT:
                raise RuntimeError(f"batch {outcome.index} {outcome.state}: {outcome.error}")
            sent += len(outcome.messages)
    return sent


async def run_bare_httpx(base_url: str, api_key: str, count: int) -> int:
    """What a careful user writes by hand: a bounded pool of workers pulling batches."""
    import httpx

    source = rows(count)
    url = f"{base_url}SmsGonder"
    sent = 0

    def next_batch() -> list[dict[str, str]]:
        batch = []
        for to, text in source:
            batch.append({"msg": text, "dest": to})
            if len(batch) == BATCH:
                break
        return batch

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while batch := next_batch():
            answer = await http.post(
                url, params={"api_key": api_key}, json={"baslik": SENDER, "mesajlar": batch}
            )
            answer.raise_for_status()
            if answer.json()["durum"] is not True:
                raise RuntimeError(answer.text)
            sent += len(batch)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(IN_FLIGHT)))
    return sent


def child(client: str, base_url: str, api_key: str, count: int) -> None:
    """Run one campaign in this process and print its figures as JSON."""
    runner = run_sdk if client == CLIENTS[0] else run_bare_httpx
    import httpx  # noqa: F401  (imports are not part of the campaign's cost)

    import vairo_async  # noqa: F401

    cpu, wall = time.process_time(), time.perf_counter()
    sent = asyncio.run(runner(base_url, api_key, count))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"sent": sent, "cpu": cpu, "wall": wall, "peak_mib": peak_kib / 1024}))


def measure(server: LoopbackServer, client: str, count: int) -> dict[str, Any]:
    before = server.stats()
    done = subprocess.run(
        [sys.executable, __file__, "--child", client, server.base_url, server.api_key, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    seen = server.stats() - before
    if figures["sent"] != count or seen.messages != count:
        raise RuntimeError(f"{client}: {count} rows, {figures['sent']} acked, {seen.messages} seen")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 and 100,000 messages")
    parser.add_argument("--child", nargs=4, metavar=("CLIENT", "URL", "KEY", "COUNT"))
    args = parser.parse_args(argv)
    if args.child:
        client, url, key, count = args.child
        child(client, url, key, int(count))
        return 0
    sizes = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with LoopbackServer() as server:
        for count in sizes:
            for client in CLIENTS:
                results[client, count] = measure(server, client, count)
    print(
        f"\nbatches of {BATCH:,}, {IN_FLIGHT} in flight, loopback server in another process; "
        f"Python {platform.python_version()}, {platform.machine()}\n"
    )
    print("| client | messages | messages/s | client CPU s per 100k | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for client in CLIENTS:
        for count in sizes:
            r = results[client, count]
            print(
                f"| {client} | {count:,} | {count / r['wall']:,.0f} | "
                f"{r['cpu'] * 100_000 / count:.3f} | {r['peak_mib']:.1f} |"
            )
    small, large = sizes
    for client in CLIENTS:
        growth = results[client, large]["peak_mib"] - results[client, small]["peak_mib"]
        print(f"\n{client}: peak RSS {growth:+.1f} MiB from {small:,} to {large:,} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
