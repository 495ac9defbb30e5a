"""Probe httpx 0.28 and httpx + httpx-aiohttp against misbehaving loopback servers.

Prints the tables behind ``NOTES-transport.md``: which httpx exception each failure surfaces as
(and the exception chained below it), how many connections the server saw (a second one means
the client retried on its own), whether the API key leaks into exception text or log records,
how the aiohttp connector is configured, and whether environment proxies bypass the transport.

    python benchmarks/probe_transport.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient

SECRET = "SECRET-KEY-123"
PATH = f"/Panel/api/v1/SmsGonder?api_key={SECRET}"
REPORT_PATH = f"/Panel/api/v1/GonderimBilgisi/7?api_key={SECRET}"
BODY = b'{"baslik":"ACME","mesajlar":[{"msg":"Kodunuz 1234","dest":"5399999999"}]}'
OK_BODY = b'{"durum":true,"aciklama":1}'
TIMEOUT = httpx.Timeout(connect=0.4, read=0.6, write=0.8, pool=0.3)
GUARD = 5.0  # seconds; a probe still running after this is reported as "no error"
LEAKED_MESSAGES: set[str] = set()

ClientFactory = Callable[..., httpx.AsyncClient]


def plain_httpx(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, **kwargs)


def httpx_aiohttp(*, limits: httpx.Limits | None = None, **kwargs: Any) -> httpx.AsyncClient:
    transport = AiohttpTransport(limits=limits) if limits else AiohttpTransport()
    return httpx.AsyncClient(timeout=TIMEOUT, transport=transport, **kwargs)


CLIENTS: dict[str, ClientFactory] = {
    f"httpx {metadata.version('httpx')}": plain_httpx,
    f"httpx-aiohttp {metadata.version('httpx-aiohttp')}": httpx_aiohttp,
}


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    port: int
    connections: int = 0
    open_now: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def ok_response(body: bytes = OK_BODY) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


Behaviour = Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(behaviour: Behaviour, *, backlog: int = 100) -> AsyncIterator[Server]:
    server = Server(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        server.open_now += 1
        task = asyncio.current_task()
        assert task is not None
        server.tasks.add(task)
        server.writers.add(writer)
        try:
            await behaviour(server, reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            server.open_now -= 1
            server.tasks.discard(task)
            server.writers.discard(writer)
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=backlog)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        server.stop.set()
        for writer in list(server.writers):
            writer.close()
        if server.tasks:
            await asyncio.wait(list(server.tasks), timeout=2)


async def close_after_request(server: Server, reader: Any, writer: Any) -> None:
    await read_request(reader)


async def reset_with_request_unread(server: Server, reader: Any, writer: Any) -> None:
    await reader.read(1)  # data still unread when we close: the kernel answers with RST


async def headers_then_close(server: Server, reader: Any, writer: Any) -> None:
    await read_request(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"durum":true,"aci'
    )
    await writer.drain()


async def never_answer(server: Server, reader: Any, writer: Any) -> None:
    await read_request(reader)
    await server.stop.wait()


async def headers_then_stall(server: Server, reader: Any, writer: Any) -> None:
    await read_request(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"durum":true,"aci'
    )
    await writer.drain()
    await server.stop.wait()


async def not_http(server: Server, reader: Any, writer: Any) -> None:
    await read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    await writer.drain()
    await server.stop.wait()


async def never_read(server: Server, reader: Any, writer: Any) -> None:
    await server.stop.wait()


async def answer_ok(server: Server, reader: Any, writer: Any) -> None:
    while True:
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(ok_response())
        await writer.drain()


@contextlib.asynccontextmanager
async def closed_port() -> AsyncIterator[Server]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield Server(port=port)


@contextlib.asynccontextmanager
async def full_backlog() -> AsyncIterator[Server]:
    """A listener that never accepts, with its accept queue filled: new SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    await asyncio.sleep(0.2)
    try:
        yield Server(port=port)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --------------------------------------------------------------------------- failure probes


@dataclass(frozen=True)
class Scenario:
    title: str
    server: Callable[[], contextlib.AbstractAsyncContextManager[Server]]
    methods: tuple[str, ...] = ("POST", "GET")
    occupy_pool: bool = False  # one request holds the only connection first
    body: bytes = BODY


SCENARIOS = [
    Scenario("connection refused (closed port)", closed_port),
    Scenario("connect timeout (accept queue full, SYN dropped)", full_backlog),
    Scenario(
        "pool timeout (max_connections=1, the one connection busy)",
        lambda: serve(never_answer),
        occupy_pool=True,
    ),
    Scenario("read timeout (request read, no answer)", lambda: serve(never_answer)),
    Scenario("closed before any response, request read (FIN)", lambda: serve(close_after_request)),
    Scenario(
        "closed before any response, request unread (RST)",
        lambda: serve(reset_with_request_unread),
    ),
    Scenario(
        "closed mid-body (Content-Length: 100, 18 bytes sent)", lambda: serve(headers_then_close)
    ),
    Scenario(
        "read timeout mid-body (headers sent, body stalls)", lambda: serve(headers_then_stall)
    ),
    Scenario("not HTTP (server answers with an SSH banner)", lambda: serve(not_http)),
    Scenario(
        "write timeout (server never reads, 64 MiB body)",
        lambda: serve(never_read),
        methods=("POST",),
        body=b"x" * (64 << 20),
    ),
]


def short_name(exc: BaseException) -> str:
    package = type(exc).__module__.split(".")[0]
    return f"{package}.{type(exc).__qualname__}"


def chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@dataclass
class Outcome:
    error: str
    cause: str
    seconds: float
    connections: int
    leaks_key: bool


async def probe(factory: ClientFactory, scenario: Scenario, method: str) -> Outcome:
    async with scenario.server() as server:
        origin = f"http://127.0.0.1:{server.port}"
        url = origin + (PATH if method == "POST" else REPORT_PATH)
        limits = httpx.Limits(max_connections=1) if scenario.occupy_pool else None
        client = factory(limits=limits) if limits else factory()
        blocker: asyncio.Task[httpx.Response] | None = None
        async with client:
            if scenario.occupy_pool:
                blocker = asyncio.create_task(
                    client.post(origin + PATH, content=BODY, timeout=httpx.Timeout(GUARD))
                )
                await asyncio.sleep(0.2)
            content = scenario.body if method == "POST" else None
            started = time.perf_counter()
            error = cause = "no error"
            leaks = False
            try:
                async with asyncio.timeout(GUARD):
                    response = await client.request(method, url, content=content)
                error = f"no error: HTTP {response.status_code}"
            except TimeoutError as exc:
                if isinstance(exc, httpx.HTTPError):
                    raise
                error = f"no error within {GUARD:g} s"
            except Exception as exc:
                links = chain(exc)
                error = short_name(exc)
                cause = " <- ".join(short_name(link) for link in links[1:]) or "-"
                leaking = [link for link in links if SECRET in str(link) or SECRET in repr(link)]
                leaks = bool(leaking)
                for link in leaking:
                    LEAKED_MESSAGES.add(f"{short_name(link)}: {link}")
            seconds = time.perf_counter() - started
            if blocker is not None:
                blocker.cancel()
                with contextlib.suppress(BaseException):
                    await blocker
        return Outcome(error, cause, seconds, server.connections, leaks)


async def exception_table() -> None:
    print("## Failures: exception seen by the caller\n")
    print(
        f"Timeouts: connect={TIMEOUT.connect}, read={TIMEOUT.read}, write={TIMEOUT.write}, "
        f"pool={TIMEOUT.pool} s. 'conns' = connections the server accepted; 'key' = API key "
        "found in str()/repr() of the exception or of anything in its chain.\n"
    )
    print("| failure | method | client | exception | chained from | after | conns | key |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for method in scenario.methods:
            for name, factory in CLIENTS.items():
                out = await probe(factory, scenario, method)
                key = "LEAKS" if out.leaks_key else "no"
                print(
                    f"| {scenario.title} | {method} | {name} | {out.error} | {out.cause} | "
                    f"{out.seconds:.2f} s | {out.connections} | {key} |"
                )
    print("\nException text carrying the key:\n")
    for message in sorted(LEAKED_MESSAGES):
        print(f"- `{message.replace(SECRET, '<KEY>')}` (key shown as <KEY>)")


# --------------------------------------------------------------------------- pool and keep-alive


async def hold_until(server: Server, reader: Any, writer: Any, target: int) -> None:
    while True:
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        server.in_flight += 1
        server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        if server.peak_in_flight >= target:
            server.enough.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.enough.wait(), 1.0)
        server.in_flight -= 1
        writer.write(ok_response())
        await writer.drain()


async def pool_probe(factory: Callable[[], httpx.AsyncClient], concurrency: int) -> str:
    async def behaviour(server: Server, reader: Any, writer: Any) -> None:
        await hold_until(server, reader, writer, concurrency)

    async with serve(behaviour) as server, factory() as client:
        url = f"http://127.0.0.1:{server.port}{PATH}"
        started = time.perf_counter()
        await asyncio.gather(
            *(client.post(url, content=BODY, timeout=10) for _ in range(concurrency))
        )
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.1)
        idle_after = server.open_now
        transport = client._transport
        detail = ""
        if isinstance(transport, AiohttpTransport) and isinstance(
            transport.client, aiohttp.ClientSession
        ):
            connector = transport.client.connector
            assert isinstance(connector, aiohttp.TCPConnector)
            detail = (
                f"limit={connector.limit}, limit_per_host={connector.limit_per_host}, "
                f"keepalive_timeout={connector._keepalive_timeout}, "
                f"session.trust_env={transport.client.trust_env}"
            )
        return (
            f"{server.peak_in_flight} | {seconds:.2f} s | {server.connections} | {idle_after} | "
            f"{detail or '-'}"
        )


async def keepalive_expiry_probe() -> str:
    async with serve(answer_ok) as server:
        limits = httpx.Limits(max_connections=8, keepalive_expiry=1.0)
        async with httpx_aiohttp(limits=limits) as client:
            url = f"http://127.0.0.1:{server.port}{PATH}"
            await asyncio.gather(*(client.post(url, content=BODY) for _ in range(8)))
            start = time.perf_counter()
            samples = []
            for at in (0.1, 1.1, 2.6, 5.1):
                await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
                samples.append(f"t={at:g} s: {server.open_now}")
            return ", ".join(samples)


async def pool_table() -> None:
    print("\n## Pool: 64 concurrent POSTs against a server that holds each answer until 64 wait\n")
    print(
        "| client | peak concurrent at server | wall | connections opened | "
        "open 0.1 s later | aiohttp connector |"
    )
    print("|---|---|---|---|---|---|")
    rows: list[tuple[str, Callable[[], httpx.AsyncClient]]] = [
        ("httpx AsyncClient() (Limits 100/20)", httpx.AsyncClient),
        ("AsyncClient(transport=AiohttpTransport())", lambda: httpx_aiohttp()),
        ("HttpxAiohttpClient()", HttpxAiohttpClient),
        (
            "AiohttpTransport(limits=Limits(max_connections=64))",
            lambda: httpx_aiohttp(limits=httpx.Limits(max_connections=64)),
        ),
        (
            "AiohttpTransport(limits=Limits(max_connections=None))",
            lambda: httpx_aiohttp(limits=httpx.Limits(max_connections=None)),
        ),
        (
            "AiohttpTransport(limits=Limits(max_connections=32))",
            lambda: httpx_aiohttp(limits=httpx.Limits(max_connections=32)),
        ),
    ]
    for title, factory in rows:
        print(f"| {title} | {await pool_probe(factory, 64)} |")
    expiry = await keepalive_expiry_probe()
    print(
        "\nkeep-alive expiry, AiohttpTransport(limits=Limits(max_connections=8, "
        f"keepalive_expiry=1.0)), open connections after 8 requests: {expiry}"
    )


# --------------------------------------------------------------------------- proxies from env


async def proxy_table() -> None:
    print("\n## Environment proxies: HTTP_PROXY points at a second local server\n")
    print("| client | transport for the URL | answered by |")
    print("|---|---|---|")

    def tagged(tag: bytes) -> Behaviour:
        async def behaviour(server: Server, reader: Any, writer: Any) -> None:
            await read_request(reader)
            writer.write(ok_response(b'{"via":"%s"}' % tag))
            await writer.drain()

        return behaviour

    async with serve(tagged(b"target")) as target, serve(tagged(b"proxy")) as proxy:
        url = f"http://127.0.0.1:{target.port}{PATH}"
        saved = {key: os.environ.get(key) for key in ("HTTP_PROXY", "NO_PROXY", "http_proxy")}
        os.environ["HTTP_PROXY"] = f"http://127.0.0.1:{proxy.port}"
        for key in ("NO_PROXY", "http_proxy"):
            os.environ.pop(key, None)
        try:
            rows: list[tuple[str, Callable[[], httpx.AsyncClient]]] = [
                ("AsyncClient(transport=AiohttpTransport())", lambda: httpx_aiohttp()),
                (
                    "AsyncClient(transport=AiohttpTransport(), trust_env=False)",
                    lambda: httpx_aiohttp(trust_env=False),
                ),
                ("HttpxAiohttpClient()", HttpxAiohttpClient),
                ("httpx AsyncClient()", httpx.AsyncClient),
            ]
            for title, factory in rows:
                async with factory() as client:
                    transport = client._transport_for_url(httpx.URL(url))
                    response = await client.post(url, content=BODY)
                    via = response.json()["via"]
                    kind = type(transport).__module__.split(".")[0] + "." + type(transport).__name__
                    print(f"| {title} | {kind} | {via} |")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# --------------------------------------------------------------------------- logging


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def logging_table() -> None:
    print("\n## Log records at DEBUG (root logger), one POST + one GET + one refused connection\n")
    print("| client | logger | level | records | with API key | example |")
    print("|---|---|---|---|---|---|")
    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        for name, factory in CLIENTS.items():
            handler.records.clear()
            async with serve(answer_ok) as server, factory() as client:
                base = f"http://127.0.0.1:{server.port}"
                await client.post(base + PATH, content=BODY)
                await client.get(base + REPORT_PATH)
                async with closed_port() as closed:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.get(f"http://127.0.0.1:{closed.port}{REPORT_PATH}")
            groups: dict[tuple[str, str], list[str]] = {}
            for record in handler.records:
                groups.setdefault((record.name, record.levelname), []).append(record.getMessage())
            for (logger, level), messages in sorted(groups.items()):
                leaking = sum(SECRET in message for message in messages)
                example = next((m for m in messages if SECRET in m), messages[0])
                example = example.replace(SECRET, "<KEY>").replace("|", "/")[:110]
                print(
                    f"| {name} | {logger} | {level} | {len(messages)} | {leaking} | `{example}` |"
                )
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


# --------------------------------------------------------------------------- sniffio


async def sniffio_probe() -> None:
    import httpcore._synchronization as sync

    print("\n## httpcore and sniffio\n")
    try:
        version = metadata.version("sniffio")
    except metadata.PackageNotFoundError:
        version = "not installed"
    original = sync.current_async_library
    calls = 0

    def counting() -> str:
        nonlocal calls
        calls += 1
        return original()

    sync.current_async_library = counting
    try:
        async with serve(answer_ok) as server, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}{PATH}"
            await client.post(url, content=BODY)
            calls = 0
            for _ in range(100):
                await client.post(url, content=BODY)
    finally:
        sync.current_async_library = original
    cost = timeit.timeit(original, number=2000) / 2000 * 1e6
    print(
        f"sniffio: {version}; httpcore current_async_library() calls per sequential request "
        f"on a warm connection: {calls / 100:g}; cost per call: {cost:.1f} us"
    )


async def main() -> None:
    print(
        f"httpx {metadata.version('httpx')}, httpcore {metadata.version('httpcore')}, "
        f"aiohttp {aiohttp.__version__}, httpx-aiohttp {metadata.version('httpx-aiohttp')}\n"
    )
    await exception_table()
    await pool_table()
    await proxy_table()
    await logging_table()
    await sniffio_probe()


if __name__ == "__main__":
    asyncio.run(main())
