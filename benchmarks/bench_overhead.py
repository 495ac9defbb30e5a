"""Client-process CPU cost of sending SMS over HTTP, side by side.

Two workloads against a loopback server running in another process (``_server.py``):

- singles: N single-message SmsGonder POSTs, a fixed number in flight;
- bulk: M messages in batches, a fixed number of batches in flight.

Every client does the same work with the same bytes on the wire: build the JSON payload from
the same message rows, encode it, POST it to the same URL with the same headers, read the
response and parse its JSON. The figure that matters is CPU seconds spent by this (client)
process during the workload only (``time.process_time``; client construction and teardown are
outside the measured region). Wall seconds are shown too. Each configuration runs ``--reps``
times, configurations one after another (never in parallel: the server shares the machine),
the order rotated between repetitions; the table shows medians. After every run the server's
own message and request counts are checked against what the client sent.

    python benchmarks/bench_overhead.py            # full sizes, 3 repetitions
    python benchmarks/bench_overhead.py --quick    # smoke run

Add a client by appending a :class:`ClientSpec` to :data:`CLIENTS`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, Protocol, TypeVar

import aiohttp
import httpx
from _server import LoopbackServer, Stats
from httpx_aiohttp import AiohttpTransport

T = TypeVar("T")

SENDER = "ACME"
JSON_HEADERS = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- workload


class Sms(NamedTuple):
    """One message row, as a caller would hold it before sending."""

    dest: str
    text: str


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    messages: int
    batch_size: int
    in_flight: int

    @property
    def requests(self) -> int:
        return -(-self.messages // self.batch_size)


def make_messages(workload: Workload) -> list[Sms]:
    """Deterministic ASCII rows (GSM-7, no ``tr_char`` needed), 10-digit wire numbers."""
    if workload.batch_size == 1:
        return [
            Sms(
                f"5{i % 1_000_000_000:09d}",
                f"Kodunuz: {i * 7919 % 1_000_000:06d}. Kimseyle paylasmayin.",
            )
            for i in range(workload.messages)
        ]
    return [
        Sms(
            f"5{i % 1_000_000_000:09d}",
            f"Merhaba, ACME kampanyasi basladi: sepette %20 indirim. Kod K{i:07d}",
        )
        for i in range(workload.messages)
    ]


def wire_payload(rows: Sequence[Sms]) -> dict[str, Any]:
    # Key order as the SDK writes it, so every client puts the same bytes on the wire.
    return {"baslik": SENDER, "mesajlar": [{"dest": row.dest, "msg": row.text} for row in rows]}


def encode(payload: dict[str, Any]) -> bytes:
    """Byte-for-byte what ``httpx`` sends for ``json=payload``."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def batches(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def drive(jobs: Iterable[T], in_flight: int, handle: Callable[[T], Awaitable[int]]) -> int:
    """Run ``handle`` over ``jobs`` with exactly ``in_flight`` workers; sum their results."""
    pending = iter(jobs)
    total = 0

    async def worker() -> None:
        nonlocal total
        for job in pending:
            done = await handle(job)  # not `total += await ...`: that reads `total` too early
            total += done

    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(worker())
    return total


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str  # API root, e.g. http://127.0.0.1:PORT/Panel/api/v1/
    send_url: str  # full SmsGonder URL with ?api_key=
    api_key: str
    host: str
    port: int


class Runner(Protocol):
    """One open client. Each method returns how many messages the server acknowledged."""

    def adopt(self, rows: list[Sms]) -> Sequence[Any]:
        """The rows in the client's own input type, built before the clock starts."""
        ...

    async def singles(self, rows: Sequence[Any], in_flight: int) -> int: ...

    async def bulk(self, rows: Sequence[Any], batch_size: int, in_flight: int) -> int: ...

    async def aclose(self) -> None: ...


class BenchmarkError(RuntimeError):
    pass


class PostRunner:
    """Shared workload logic for the bare clients; subclasses provide one POST."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def adopt(self, rows: list[Sms]) -> Sequence[Any]:
        return rows

    async def post(self, body: bytes) -> bytes:
        """POST ``body`` to SmsGonder; return the response body of a 200 answer."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def _send(self, rows: Sequence[Sms]) -> int:
        reply = json.loads(await self.post(encode(wire_payload(rows))))
        if reply.get("durum") is not True or not isinstance(reply.get("aciklama"), int):
            raise BenchmarkError(f"unexpected reply: {reply!r}")
        return len(rows)

    async def singles(self, rows: Sequence[Sms], in_flight: int) -> int:
        return await drive(((row,) for row in rows), in_flight, self._send)

    async def bulk(self, rows: Sequence[Sms], batch_size: int, in_flight: int) -> int:
        return await drive(batches(rows, batch_size), in_flight, self._send)


class HttpxRunner(PostRunner):
    def __init__(self, target: Target, client: httpx.AsyncClient) -> None:
        super().__init__(target)
        self.client = client

    async def post(self, body: bytes) -> bytes:
        response = await self.client.post(self.target.send_url, content=body, headers=JSON_HEADERS)
        if response.status_code != 200:
            raise BenchmarkError(f"HTTP {response.status_code}")
        return response.content

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpRunner(PostRunner):
    def __init__(self, target: Target, session: aiohttp.ClientSession) -> None:
        super().__init__(target)
        self.session = session

    async def post(self, body: bytes) -> bytes:
        async with self.session.post(
            self.target.send_url, data=body, headers=JSON_HEADERS
        ) as response:
            if response.status != 200:
                raise BenchmarkError(f"HTTP {response.status}")
            return await response.read()

    async def aclose(self) -> None:
        await self.session.close()


class RawStreamsRunner(PostRunner):
    """The floor: keep-alive HTTP/1.1 over asyncio streams, a pool of persistent connections.

    Parsing is the minimum that is still correct for this server: the status code, the
    Content-Length header, a ``Connection: close`` check, then exactly that many body bytes.
    """

    def __init__(self, target: Target, size: int) -> None:
        super().__init__(target)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)
        path = target.send_url.removeprefix(f"http://{target.host}:{target.port}")
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()

    async def post(self, body: bytes) -> bytes:
        async with self._slots:
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
            reusable = False
            try:
                writer.write(b"%s%d\r\n\r\n%s" % (self._head, len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lowered = head.lower()
                start = lowered.find(b"\r\ncontent-length:")
                if start < 0:
                    raise BenchmarkError("response without Content-Length")
                start += 17
                length = int(head[start : head.index(b"\r", start)])
                payload = await reader.readexactly(length)
                reusable = b"\r\nconnection: close" not in lowered
            finally:
                if reusable:
                    self._idle.append((reader, writer))
                else:
                    writer.close()
        if status != 200:
            raise BenchmarkError(f"HTTP {status}")
        return payload

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def open_bare_httpx(target: Target, in_flight: int) -> Runner:
    return HttpxRunner(target, httpx.AsyncClient())


async def open_httpx_sized_pool(target: Target, in_flight: int) -> Runner:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    return HttpxRunner(target, httpx.AsyncClient(limits=limits))


async def open_httpx_aiohttp(target: Target, in_flight: int) -> Runner:
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=in_flight))
    return HttpxRunner(target, httpx.AsyncClient(transport=transport))


async def open_bare_aiohttp(target: Target, in_flight: int) -> Runner:
    return AiohttpRunner(
        target, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight))
    )


async def open_raw_streams(target: Target, in_flight: int) -> Runner:
    return RawStreamsRunner(target, in_flight)


def _sdk() -> ModuleType:
    """Import the SDK, from this checkout when it is not installed."""
    try:
        return importlib.import_module("vairo_async")
    except ModuleNotFoundError:
        sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
        return importlib.import_module("vairo_async")


class SdkRunner:
    """The SDK as a caller uses it: ``send`` per code, ``send_bulk`` for a campaign.

    Retries, input validation and key redaction stay on, as shipped.
    """

    def __init__(self, client: Any, message_type: Callable[..., Any]) -> None:
        self.client = client
        self.message_type = message_type

    def adopt(self, rows: list[Sms]) -> Sequence[Any]:
        """`Message` rows, as the bare clients get their rows ready-made."""
        return [self.message_type(to=row.dest, text=row.text) for row in rows]

    async def singles(self, rows: Sequence[Any], in_flight: int) -> int:
        send = self.client.send

        async def one(row: Any) -> int:
            submission = await send(row.text, to=row.to)
            return int(submission.recipient_count)

        return await drive(rows, in_flight, one)

    async def bulk(self, rows: Sequence[Any], batch_size: int, in_flight: int) -> int:
        # Read lazily through a generator, as a campaign reads its rows.
        result = await self.client.send_bulk(
            (row for row in rows), batch_size=batch_size, concurrency=in_flight
        )
        if result.sent != result.total:
            raise BenchmarkError(
                f"send_bulk: {result.sent} sent, {result.failed} failed, "
                f"{result.unknown} unknown, {result.rejected} rejected"
            )
        return int(result.sent)

    async def aclose(self) -> None:
        await self.client.aclose()


async def open_sdk_default(target: Target, in_flight: int) -> Runner:
    sdk = _sdk()
    client = sdk.AsyncVairoClient(target.api_key, sender=SENDER, base_url=target.base_url)
    return SdkRunner(client, sdk.Message)


async def open_sdk_pure_httpx(target: Target, in_flight: int) -> Runner:
    sdk = _sdk()
    client = sdk.AsyncVairoClient(
        target.api_key,
        sender=SENDER,
        base_url=target.base_url,
        transport=httpx.AsyncHTTPTransport(),
    )
    return SdkRunner(client, sdk.Message)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """A named row of the table: ``open`` builds a fresh client (not measured)."""

    name: str
    open: Callable[[Target, int], Awaitable[Runner]]
    note: str


SDK_DEFAULT = "SDK default stack"
BARE_HTTPX = "bare httpx"
BARE_AIOHTTP = "bare aiohttp"
FLOOR = "floor: raw asyncio streams"
BASELINES = ((BARE_HTTPX, "httpx"), (BARE_AIOHTTP, "aiohttp"), (FLOOR, "floor"))

#: The rows of the table, in order. ``open(target, in_flight)`` gets the server address and the
#: workload's in-flight count and returns a fresh :class:`Runner`; ratios are taken against the
#: three baselines named above. Add a row by appending a spec.
CLIENTS: list[ClientSpec] = [
    ClientSpec(SDK_DEFAULT, open_sdk_default, "AsyncVairoClient(api_key, sender=, base_url=)"),
    ClientSpec(
        "SDK on pure httpx",
        open_sdk_pure_httpx,
        "AsyncVairoClient(..., transport=httpx.AsyncHTTPTransport()): httpcore, default pool",
    ),
    ClientSpec(BARE_HTTPX, open_bare_httpx, "httpx.AsyncClient(), default pool"),
    ClientSpec(
        "httpx, pool sized to in-flight",
        open_httpx_sized_pool,
        "httpx.Limits(max_connections=max_keepalive_connections=in_flight)",
    ),
    ClientSpec(
        "httpx + httpx-aiohttp",
        open_httpx_aiohttp,
        "AsyncClient(transport=AiohttpTransport(limits=Limits(max_connections=in_flight)))",
    ),
    ClientSpec(BARE_AIOHTTP, open_bare_aiohttp, "ClientSession, TCPConnector(limit=in_flight)"),
    ClientSpec(
        FLOOR, open_raw_streams, "asyncio.open_connection, keep-alive pool, minimal parsing"
    ),
]


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True, slots=True)
class Sample:
    cpu: float
    wall: float


async def _timed_run(
    spec: ClientSpec, target: Target, workload: Workload, rows: list[Sms]
) -> tuple[int, Sample]:
    runner = await spec.open(target, workload.in_flight)
    try:
        adopted = runner.adopt(rows)
        gc.collect()
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        if workload.batch_size == 1:
            acked = await runner.singles(adopted, workload.in_flight)
        else:
            acked = await runner.bulk(adopted, workload.batch_size, workload.in_flight)
        sample = Sample(time.process_time() - cpu_start, time.perf_counter() - wall_start)
    finally:
        await runner.aclose()
    return acked, sample


def run_once(
    spec: ClientSpec, server: LoopbackServer, target: Target, workload: Workload, rows: list[Sms]
) -> Sample:
    before = server.stats()
    acked, sample = asyncio.run(_timed_run(spec, target, workload, rows))
    seen: Stats = server.stats() - before
    expected = (workload.messages, workload.requests, workload.requests)
    observed = (acked, seen.packages, seen.requests)
    if seen.messages != workload.messages or observed != expected or seen.rejected:
        raise BenchmarkError(
            f"{spec.name} / {workload.key}: sent {workload.messages} messages in "
            f"{workload.requests} requests; client acknowledged {acked}, server counted "
            f"{seen.messages} messages in {seen.packages} packages over {seen.requests} "
            f"requests ({seen.rejected} rejected)"
        )
    return sample


# --------------------------------------------------------------------------- report


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_line() -> str:
    packages = ("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "sniffio", "anyio")
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, load {load}; "
        f"Python {platform.python_version()} ({platform.machine()}); {versions}"
    )


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value >= 0.995 else f"{value:.3f}"


def print_tables(
    workloads: Sequence[Workload],
    specs: Sequence[ClientSpec],
    results: dict[tuple[str, str], list[Sample]],
    reps: int,
) -> None:
    def median_cpu(name: str, key: str) -> float | None:
        samples = results.get((name, key))
        return statistics.median(s.cpu for s in samples) if samples else None

    print(f"\nClient-process CPU seconds (wall seconds), median of {reps}:\n")
    header = "| client | " + " | ".join(w.title for w in workloads) + " |"
    print(header)
    print("|---|" + "---|" * len(workloads))
    for spec in specs:
        cells = []
        for workload in workloads:
            samples = results[(spec.name, workload.key)]
            cpu = statistics.median(s.cpu for s in samples)
            wall = statistics.median(s.wall for s in samples)
            cells.append(f"{_fmt(cpu)} ({_fmt(wall)})")
        print(f"| {spec.name} | " + " | ".join(cells) + " |")

    if reps > 1:
        print(f"\nCPU seconds, min-max of {reps}:\n")
        print(header)
        print("|---|" + "---|" * len(workloads))
        for spec in specs:
            cells = []
            for workload in workloads:
                cpus = [s.cpu for s in results[(spec.name, workload.key)]]
                cells.append(f"{_fmt(min(cpus))}-{_fmt(max(cpus))}")
            print(f"| {spec.name} | " + " | ".join(cells) + " |")

    baselines = [(name, label) for name, label in BASELINES if any(s.name == name for s in specs)]
    if not baselines:
        return
    print("\nCPU ratios (row / baseline):\n")
    columns = [(w, name, label) for w in workloads for name, label in baselines]
    print("| client | " + " | ".join(f"{w.key} / {label}" for w, _, label in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for spec in specs:
        cells = []
        for workload, base, _ in columns:
            row, ref = median_cpu(spec.name, workload.key), median_cpu(base, workload.key)
            cells.append(f"{row / ref:.2f}x" if row is not None and ref else "-")
        print(f"| {spec.name} | " + " | ".join(cells) + " |")


def workloads_for(quick: bool) -> list[Workload]:
    singles, bulk = (500, 20_000) if quick else (5_000, 200_000)
    return [
        Workload("single", f"{singles:,} single POSTs, 64 in flight", singles, 1, 64),
        Workload("bulk", f"{bulk:,} msgs, batches of 1,000, 8 in flight", bulk, 1_000, 8),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    parser.add_argument("--reps", type=int, help="repetitions per configuration (default 3)")
    parser.add_argument(
        "--clients", help="comma-separated substrings; run only the clients whose name matches"
    )
    parser.add_argument("--workloads", default="single,bulk", help="single, bulk or both")
    args = parser.parse_args(argv)

    reps = args.reps or (1 if args.quick else 3)
    workloads = [w for w in workloads_for(args.quick) if w.key in args.workloads.split(",")]
    specs = CLIENTS
    if args.clients:
        wanted = [part.strip().lower() for part in args.clients.split(",")]
        specs = [s for s in CLIENTS if any(part in s.name.lower() for part in wanted)]
    if not specs or not workloads:
        parser.error("nothing to run")

    print(environment_line())
    for spec in specs:
        print(f"  {spec.name}: {spec.note}")
    rows = {w.key: make_messages(w) for w in workloads}
    results: dict[tuple[str, str], list[Sample]] = {}
    with LoopbackServer() as server:
        target = Target(server.base_url, server.send_url, server.api_key, server.host, server.port)
        for rep in range(1, reps + 1):
            # Each repetition starts one row later, so no client always runs first or last.
            shift = (rep - 1) % len(specs)
            order = [*specs[shift:], *specs[:shift]]
            for workload in workloads:
                for spec in order:
                    sample = run_once(spec, server, target, workload, rows[workload.key])
                    results.setdefault((spec.name, workload.key), []).append(sample)
                    print(
                        f"  run {rep}/{reps}  {workload.key:<6}  {spec.name:<32} "
                        f"cpu {sample.cpu:7.3f} s  wall {sample.wall:7.3f} s",
                        flush=True,
                    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average after the runs: {load}")
    print_tables(workloads, specs, results, reps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
