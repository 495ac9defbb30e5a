"""A minimal VairoSMS stand-in for benchmarks, run in its own process on loopback.

It answers the two wire endpoints as cheaply as aiohttp.web allows:

- ``POST /Panel/api/v1/SmsGonder?api_key=K``: reads and JSON-parses the body, checks its shape,
  counts the messages and answers ``{"durum": true, "aciklama": <package id>}`` (ids increase
  from 1);
- ``GET /Panel/api/v1/GonderimBilgisi/{id}?api_key=K``: a completed report in the emulator's
  report shape (the API's documented sample report), for a package it accepted;
- ``GET /stats``: running totals (requests, packages, messages, reports, server CPU seconds), so
  a benchmark can check that the server saw exactly what the client claims to have sent.

Use it from a benchmark through :class:`LoopbackServer`, which starts this file in a child
process bound to 127.0.0.1 port 0 and reads the chosen port from the child's stdout pipe (no
polling). The child exits when its stdin reaches end of file, so it never outlives its parent.

Paths and methods come from the SDK's endpoint descriptions and the report from the emulator's
report shape, so there is no third copy of either; the send handler stays its own, as cheap as
possible (no number checks), since its CPU is on the same machine as the measured client's.

Run by hand: ``python benchmarks/_server.py [--port 8080]`` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from vairo_async._constants import ISTANBUL
from vairo_async._endpoints import REPORT, SEND
from vairo_async.testing._responses import report_object
from vairo_async.testing._state import COMPLETED

loads: Callable[[bytes], Any]
try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    loads = json.loads
else:
    loads = orjson.loads

API_PREFIX = "/Panel/api/v1"
VALIDITY = timedelta(hours=24)
READY_PREFIX = "PORT "


@dataclass(frozen=True, slots=True)
class Stats:
    """Totals since the server started; subtract two snapshots to get one run's share."""

    requests: int
    packages: int
    messages: int
    reports: int
    rejected: int
    server_cpu: float

    def __sub__(self, other: Stats) -> Stats:
        return Stats(
            requests=self.requests - other.requests,
            packages=self.packages - other.packages,
            messages=self.messages - other.messages,
            reports=self.reports - other.reports,
            rejected=self.rejected - other.rejected,
            server_cpu=self.server_cpu - other.server_cpu,
        )


class _State:
    """Everything the server remembers: one (sender, count, created) row per package."""

    def __init__(self) -> None:
        self.senders: list[str] = []
        self.counts: list[int] = []
        self.created: list[float] = []
        self.requests = 0
        self.messages = 0
        self.reports = 0
        self.rejected = 0

    def stats(self) -> dict[str, int | float]:
        return {
            "requests": self.requests,
            "packages": len(self.counts),
            "messages": self.messages,
            "reports": self.reports,
            "rejected": self.rejected,
            "server_cpu": time.process_time(),
        }


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def _failure(message: str, status: int) -> web.Response:
    return _json({"durum": False, "aciklama": message}, status)


def _is_message(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("msg"), str)
        and isinstance(item.get("dest"), str)
    )


def build_app() -> web.Application:
    state = _State()

    async def sms_gonder(request: web.Request) -> web.Response:
        state.requests += 1
        if not request.query.get("api_key"):
            state.rejected += 1
            return _failure("api_key eksik", 401)
        body = await request.read()
        try:
            payload = loads(body)
        except ValueError:
            state.rejected += 1
            return _failure("Geçersiz JSON", 400)
        messages = payload.get("mesajlar") if isinstance(payload, dict) else None
        sender = payload.get("baslik") if isinstance(payload, dict) else None
        if (
            not isinstance(sender, str)
            or not isinstance(messages, list)
            or not messages
            or not all(_is_message(item) for item in messages)
        ):
            state.rejected += 1
            return _failure("Geçersiz istek", 400)
        state.senders.append(sender)
        state.counts.append(len(messages))
        state.created.append(time.time())
        state.messages += len(messages)
        package_id = len(state.counts)
        return web.Response(
            body=b'{"durum":true,"aciklama":%d}' % package_id,
            content_type="application/json",
        )

    async def gonderim_bilgisi(request: web.Request) -> web.Response:
        state.requests += 1
        if not request.query.get("api_key"):
            state.rejected += 1
            return _failure("api_key eksik", 401)
        try:
            package_id = int(request.match_info["package_id"])
        except ValueError:
            package_id = 0
        if not 1 <= package_id <= len(state.counts):
            state.rejected += 1
            return _failure("Gönderim bulunamadı", 404)
        state.reports += 1
        index = package_id - 1
        count = state.counts[index]
        report = report_object(
            package_id=package_id,
            sender=state.senders[index],
            recipients=count,
            credits=count,
            created_at=datetime.fromtimestamp(state.created[index], ISTANBUL),
            validity=VALIDITY,
            status=COMPLETED,
        )
        return _json({"durum": True, "aciklama": report})

    async def stats(request: web.Request) -> web.Response:
        return _json(state.stats())

    app = web.Application()
    # aiohttp's route syntax is the descriptions' own: "{package_id}" is one path segment.
    app.router.add_route(SEND.method, f"{API_PREFIX}/{SEND.path}", sms_gonder)
    app.router.add_route(REPORT.method, f"{API_PREFIX}/{REPORT.path}", gonderim_bilgisi)
    app.router.add_get("/stats", stats)
    return app


async def serve(host: str, port: int, *, watch_stdin: bool) -> None:
    """Serve until SIGINT/SIGTERM or, with ``watch_stdin``, until stdin reaches end of file."""
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    await web.SockSite(runner, listener, backlog=1024).start()
    print(f"{READY_PREFIX}{listener.getsockname()[1]}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if watch_stdin:

        def wait_for_eof() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=wait_for_eof, name="stdin-eof", daemon=True).start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


class LoopbackServer:
    """Runs this module's server in a child process for the duration of a ``with`` block."""

    def __init__(self, *, host: str = "127.0.0.1", api_key: str = "bench-key") -> None:
        self.host = host
        self.api_key = api_key
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoopbackServer:
        command = [sys.executable, str(Path(__file__).resolve()), "--host", self.host]
        command += ["--port", "0", "--watch-stdin"]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.startswith(READY_PREFIX):
            self.close()
            raise RuntimeError(f"benchmark server failed to start (said {line!r})")
        self.port = int(line.removeprefix(READY_PREFIX))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root, as the SDK's ``base_url`` expects it."""
        return f"{self.origin}{API_PREFIX}/"

    @property
    def send_url(self) -> str:
        """The full SmsGonder URL, key included, for bare clients."""
        return f"{self.origin}{API_PREFIX}/{SEND.path}?api_key={self.api_key}"

    def stats(self) -> Stats:
        """Blocking read of the server's totals; call it outside any measured region."""
        with urllib.request.urlopen(f"{self.origin}/stats", timeout=10) as response:
            return Stats(**json.loads(response.read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin reaches end of file"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, watch_stdin=args.watch_stdin))


if __name__ == "__main__":
    main()
