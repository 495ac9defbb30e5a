"""The transport contract: every socket failure, on both HTTP stacks, ends as the retry table says.

Each case sends one SMS through `AsyncVairoClient` against a real loopback socket, once on the
default aiohttp transport and once on `httpx.AsyncHTTPTransport`, and checks how many POSTs
reached the server, which error was raised and whether it says the request may have reached
the server. This is where one wrong exception mapping would send an SMS twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import attrs
import httpx
import pytest

from tests.support import API_KEY
from vairo_async import (
    APIError,
    AsyncVairoClient,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    VairoError,
)
from vairo_async.testing import FakeVairo, Fault

MAX_RETRIES = 2
ALL = MAX_RETRIES + 1
TIMEOUT = httpx.Timeout(5.0, read=0.2, connect=0.2, pool=0.2)
PREFIX = "/Panel/api/v1/"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@attrs.frozen
class Expected:
    """What one failure must end in."""

    posts: int  # POSTs that reached the server
    error: type[VairoError]
    may_have_reached_server: bool | None  # of the TransportError behind the error, if any


NOT_SENT = Expected(0, TransportError, False)


# --- failures the emulator injects -----------------------------------------------------

FAULTS: dict[str, tuple[Fault, Expected]] = {
    "closed mid-body before accepting": (
        Fault.drop_before_accept(),
        Expected(1, OutcomeUnknownError, True),
    ),
    "closed mid-body after accepting": (
        Fault.drop_after_accept(),
        Expected(1, OutcomeUnknownError, True),
    ),
    "read timeout after accepting": (Fault.latency(30), Expected(1, OutcomeUnknownError, True)),
    "429": (Fault.rate_limit(retry_after=1), Expected(ALL, RateLimitError, None)),
    "500": (Fault.server_error(500), Expected(1, OutcomeUnknownError, None)),
    "502": (Fault.server_error(502), Expected(1, OutcomeUnknownError, None)),
    "502 html page": (Fault.html_page(502), Expected(1, OutcomeUnknownError, None)),
    "503": (Fault.server_error(503), Expected(ALL, ServerError, None)),
    "504": (Fault.server_error(504, accepted=True), Expected(1, OutcomeUnknownError, None)),
    "408 html page": (Fault.html_page(408), Expected(1, APIError, None)),
}


# --- failures of a small socket server of our own --------------------------------------


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)


async def close_before_answering(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def answer_not_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = b"<html>maintenance</html>"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


HANDLERS: dict[str, tuple[Handler, Expected]] = {
    "closed before answering": (close_before_answering, Expected(1, OutcomeUnknownError, True)),
    "read timeout": (never_answer, Expected(1, OutcomeUnknownError, True)),
    "200 not json": (answer_not_json, Expected(1, OutcomeUnknownError, None)),
    "not http": (answer_garbage, Expected(1, OutcomeUnknownError, True)),
}


@attrs.define
class SocketServer:
    """Counts the requests it reads, then lets `handler` fail the connection."""

    handler: Handler
    requests: int = 0
    writers: list[asyncio.StreamWriter] = attrs.Factory(list)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await read_request(reader)
            self.requests += 1
            await self.handler(reader, writer)


@contextlib.asynccontextmanager
async def socket_server(handler: Handler) -> AsyncIterator[tuple[SocketServer, str]]:
    counting = SocketServer(handler)
    server = await asyncio.start_server(counting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield counting, f"http://127.0.0.1:{port}{PREFIX}"
    finally:
        for writer in counting.writers:
            writer.close()
        server.close()
        await server.wait_closed()


# --- the two stacks ----------------------------------------------------------------------


@pytest.fixture(params=["aiohttp", "httpx"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def client_on(stack: str, base_url: str) -> AsyncIterator[AsyncVairoClient]:
    options = {"sender": "ACME", "base_url": base_url, "max_retries": MAX_RETRIES}
    if stack == "aiohttp":
        async with AsyncVairoClient(API_KEY, timeout=TIMEOUT, **options) as client:  # type: ignore[arg-type]
            yield client
        return
    transport = httpx.AsyncHTTPTransport()
    async with (
        httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as http,
        AsyncVairoClient(API_KEY, http_client=http, **options) as client,  # type: ignore[arg-type]
    ):
        yield client


async def send_failing(client: AsyncVairoClient) -> VairoError:
    with pytest.raises(VairoError) as info:
        await client.send("Kodunuz 1234", to="5399999999")
    return info.value


def check(error: VairoError, posts: int, expected: Expected) -> None:
    assert (type(error), posts) == (expected.error, expected.posts)
    cause = error.error if isinstance(error, OutcomeUnknownError) else error
    if expected.may_have_reached_server is None:
        assert not isinstance(cause, TransportError)
    else:
        assert isinstance(cause, TransportError)
        assert cause.may_have_reached_server is expected.may_have_reached_server


@pytest.mark.parametrize("case", FAULTS)
async def test_emulator_faults(stack: str, case: str) -> None:
    fault, expected = FAULTS[case]
    fake = FakeVairo(api_key=API_KEY)
    fake.inject(fault, times=ALL)
    async with fake.serve() as url, client_on(stack, url) as client:
        error = await send_failing(client)
    check(error, fake.request_count("send"), expected)
    accepted = len(fake.messages)
    assert accepted == (1 if fault.accepted else 0)  # never twice


@pytest.mark.parametrize("case", HANDLERS)
async def test_socket_failures(stack: str, case: str) -> None:
    handler, expected = HANDLERS[case]
    async with socket_server(handler) as (server, url), client_on(stack, url) as client:
        error = await send_failing(client)
    check(error, server.requests, expected)


async def test_connection_refused_is_retried_and_never_reaches_the_server(stack: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}{PREFIX}"  # bound, never listening
        async with client_on(stack, url) as client:
            error = await send_failing(client)
    check(error, 0, NOT_SENT)
    assert "ConnectError" in str(error)


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """A listening socket whose accept queue is full: new connections hang in SYN-SENT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}{PREFIX}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_timeout_is_retried_and_never_reaches_the_server(stack: str) -> None:
    with full_backlog() as url:
        async with client_on(stack, url) as client:
            error = await send_failing(client)
    check(error, 0, NOT_SENT)
    assert "ConnectTimeout" in str(error)


async def test_a_success_after_safe_failures_sends_once(stack: str) -> None:
    fake = FakeVairo(api_key=API_KEY)
    fake.inject(Fault.server_error(503), times=1)
    fake.inject(Fault.rate_limit(retry_after=0), times=1)
    async with fake.serve() as url, client_on(stack, url) as client:
        submission = await client.send("Kodunuz 1234", to="5399999999")
    assert fake.request_count("send") == 3
    assert [m.package_id for m in fake.messages] == [submission.package_id]
