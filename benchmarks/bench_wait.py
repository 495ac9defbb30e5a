"""How fast `wait_all` notices finished packages, and at what cost in polls.

1,000 packages turn final at times spread evenly over one minute (shuffled among them). Each
strategy waits for all of them, on its own fresh emulator holding the same completion times:

- naive: one loop per package, `get_report` every second until final, all at once;
- `wait_all` with its defaults (first poll within 1 s, intervals x1.5 with jitter up to
  30 s, 10 polls in flight), with no practical limit on polls in flight, and with lower
  caps on the interval.

Figures: report requests made, and the lag from a package's completion to the moment the
caller learns of it (median, p95, max).

Clock: everything runs on an event loop with a virtual clock. When nothing is ready to run,
the clock jumps to the next timer instead of sleeping, so the minute (and more) of polling
passes in seconds of wall time. The emulator's completion times, its answer latency (a
round trip of `--rtt` seconds, 50 ms by default) and every sleep and timeout in the SDK
all follow that clock; the CPU time of the in-process requests adds nothing to it. So the
lags are exact for the schedule and the RTT, independent of how fast this machine is.

    python benchmarks/bench_wait.py              # 1,000 packages
    python benchmarks/bench_wait.py --packages 200 --rtt 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the package next to this directory comes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vairo_async import AsyncVairoClient, PackageReport
from vairo_async.testing import FakeVairo, run_virtual

SEED = 6
SPREAD = 60.0
API_KEY = "bench-key"


# -- a virtual clock --------------------------------------------------------------------------


# -- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    name: str
    packages: int
    polls: int
    lags: list[float]
    virtual_seconds: float
    wall_seconds: float


Strategy = Callable[[AsyncVairoClient, list[int], Callable[[PackageReport], None]], Awaitable[None]]


async def naive(
    client: AsyncVairoClient, ids: list[int], seen: Callable[[PackageReport], None]
) -> None:
    """What one writes first: a loop per package polling every second."""

    async def one(package_id: int) -> None:
        while True:
            await asyncio.sleep(1.0)
            report = await client.get_report(package_id)
            if report.status.is_final:
                seen(report)
                return

    await asyncio.gather(*(one(package_id) for package_id in ids))


def with_wait_all(**options: Any) -> Strategy:
    async def strategy(
        client: AsyncVairoClient, ids: list[int], seen: Callable[[PackageReport], None]
    ) -> None:
        async for report in client.wait_all(ids, **options):
            seen(report)

    return strategy


async def measure(name: str, strategy: Strategy, completion: list[float], rtt: float) -> Result:
    loop = asyncio.get_running_loop()
    fake = FakeVairo(
        api_key=API_KEY,
        clock=loop.time,
        complete_after_seconds=lambda package: completion[package.package_id - 1],
    )
    async with AsyncVairoClient(
        API_KEY, sender="BENCH", base_url=fake.base_url, transport=fake.transport()
    ) as client:
        # Sent with no latency, so every package is accepted at the same virtual instant.
        ids = [(await client.send("Merhaba", to="5399999999")).package_id for _ in completion]
        start = loop.time()
        fake.latency = rtt
        detected: dict[int, float] = {}

        def seen(report: PackageReport) -> None:
            detected[report.package_id] = loop.time()

        wall = time.perf_counter()
        await strategy(client, ids, seen)
        wall = time.perf_counter() - wall
    assert len(detected) == len(ids), "every package must be detected"
    lags = [detected[package_id] - start - completion[package_id - 1] for package_id in ids]
    assert min(lags) >= 0, "a package cannot be seen final before it is"
    return Result(
        name,
        len(ids),
        fake.request_count("report"),
        lags,
        loop.time() - start,
        wall,
    )


def table(results: list[Result]) -> str:
    header = (
        "| strategy | polls | polls/package | median lag | p95 lag | max lag "
        "| virtual time | wall time |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p95 = statistics.quantiles(r.lags, n=100, method="inclusive")[94]
        lines.append(
            f"| {r.name} | {r.polls:,} | {r.polls / r.packages:.1f} "
            f"| {statistics.median(r.lags):.2f} s | {p95:.2f} s | {max(r.lags):.2f} s "
            f"| {r.virtual_seconds:.1f} s | {r.wall_seconds:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=1000, help="packages (default 1000)")
    parser.add_argument(
        "--rtt", type=float, default=0.05, help="emulator answer latency, virtual s (0.05)"
    )
    parser.add_argument("--quick", action="store_true", help="100 packages")
    args = parser.parse_args()
    if args.quick:
        args.packages = 100

    rng = random.Random(SEED)
    completion = [SPREAD * (i + 1) / args.packages for i in range(args.packages)]
    rng.shuffle(completion)
    strategies: list[tuple[str, Strategy]] = [
        ("naive: each package every 1 s, all in flight", naive),
        ("wait_all defaults: 1 s to 30 s, 10 in flight", with_wait_all()),
        ("wait_all, 1 s to 30 s, 1000 in flight", with_wait_all(concurrency=1000)),
        ("wait_all, 1 s to 10 s, 10 in flight", with_wait_all(max_poll_interval=10)),
        ("wait_all, 1 s to 5 s, 10 in flight", with_wait_all(max_poll_interval=5)),
    ]
    results = []
    for name, strategy in strategies:
        random.seed(SEED)  # the same poll jitter in every run
        results.append(run_virtual(measure(name, strategy, completion, args.rtt)))
    print(
        f"{args.packages} packages final at times spread evenly over {SPREAD:g} s; "
        f"emulator round trip {args.rtt * 1000:g} ms; virtual clock"
    )
    print(table(results))


if __name__ == "__main__":
    main()
