"""What OpenTelemetry costs a client: CPU seconds of single sends with and without it.

N single-message `send()` calls, 64 in flight, from one `AsyncVairoClient` to the loopback
server of `_server.py`, in three set-ups, each in a child process of its own:

- without the API: `opentelemetry` cannot be imported (the `otel` extra not installed);
- API, no SDK: the API package installed, no provider configured (its no-op tracer answers);
- SDK, spans and metrics: a `TracerProvider` with a `BatchSpanProcessor` to an exporter that
  drops what it gets, and a `MeterProvider` whose reader is collected at the end.

The figure is the CPU seconds of the child during the sends (`time.process_time`), the median
of `--reps` runs, the set-ups taking turns; microseconds per send are derived from it.

    python benchmarks/bench_otel.py            # 3,000 sends, 5 repetitions
    python benchmarks/bench_otel.py --quick    # 500 sends, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _server import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent

SETUPS = {
    "without the API": "import sys; sys.modules['opentelemetry'] = None",
    "API, no SDK": "import opentelemetry.trace",
    "SDK, spans and metrics": """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

class Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(Drop()))
trace.set_tracer_provider(provider)
READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
""",
}

WORKLOAD = """
import asyncio, json, time
from vairo_async import AsyncVairoClient, _otel

async def main(base_url, count):
    async with AsyncVairoClient("bench-key", sender="ACME", base_url=base_url) as client:
        await client.send("warm up", to="5399999999")
        queue = list(range(count))

        async def worker():
            while queue:
                queue.pop()
                await client.send("Kodunuz 1234", to="5399999999")

        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(64)))
        cpu = time.process_time() - start
    print(json.dumps(dict(cpu=cpu, enabled=_otel.ENABLED)))

asyncio.run(main({base_url!r}, {count}))
"""


def run(setup: str, base_url: str, count: int) -> float:
    code = SETUPS[setup] + "\n" + WORKLOAD.format(base_url=base_url, count=count)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["enabled"] is (setup != "without the API"), figures
    return float(figures["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 sends, 1 repetition")
    options = parser.parse_args()
    count, reps = (500, 1) if options.quick else (options.count, options.reps)
    cpu: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    with LoopbackServer() as server:
        order = list(SETUPS)
        for rep in range(reps):
            for setup in order[rep % len(order) :] + order[: rep % len(order)]:
                cpu[setup].append(run(setup, server.base_url, count))
    base = statistics.median(cpu["without the API"])
    print(f"{count:,} single sends, 64 in flight, median of {reps}")
    print(f"{'set-up':<24} {'CPU s':>8} {'us/send':>9} {'vs without':>11}")
    for setup, figures in cpu.items():
        median = statistics.median(figures)
        print(
            f"{setup:<24} {median:>8.3f} {median / count * 1e6:>9.1f} "
            f"{(median - base) / count * 1e6:>+10.1f}us"
        )


if __name__ == "__main__":
    main()
