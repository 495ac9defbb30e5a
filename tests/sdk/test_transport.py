"""The default aiohttp transport: answers, and every failure mapped to what is known."""

from __future__ import annotations

import asyncio
import gc
import gzip
import inspect
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import API_KEY
from vairo_async import AsyncVairoClient, _transport
from vairo_async._constants import DEFAULT_KEEPALIVE_EXPIRY
from vairo_async._transport import AiohttpTransport
from vairo_async.testing import FakeVairo
from vairo_async.testing._server import make_config

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            request = await read_request(reader)
        except asyncio.IncompleteReadError:
            break
        body = gzip.compress(b'{"durum": true, "aciklama": 1}')
        echo = request.split(b"\r\n")[0]
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + b"X-Request: "
            + echo
            + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.close()


async def close_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"durum"')
    await writer.drain()
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.Event().wait()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await handler(reader, writer)

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/x"


async def test_answers_come_back_whole(serve: Callable[[Handler], Awaitable[str]]) -> None:
    url = await serve(answer_ok)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        posted = await http.post(url, params={"a": "1"}, content=b'{"x": 1}')
        got = await http.get(url)
    assert posted.status_code == 200
    assert posted.json() == {"durum": True, "aciklama": 1}  # gzip decoded once, by httpx
    assert posted.headers["x-request"] == "POST /x?a=1 HTTP/1.1"
    assert got.headers["x-request"] == "GET /x HTTP/1.1"
    assert posted.http_version == "HTTP/1.1"
    assert posted.reason_phrase == "OK"


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (close_at_once, httpx.RemoteProtocolError),
        (close_mid_body, httpx.ReadError),
        (garbage, httpx.RemoteProtocolError),
    ],
)
async def test_failures_after_sending_are_not_connect_errors(
    serve: Callable[[Handler], Awaitable[str]],
    handler: Handler,
    expected: type[httpx.TransportError],
) -> None:
    url = await serve(handler)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.TransportError) as info:
            await http.post(url, content=b"{}")
    assert type(info.value) is expected
    assert not isinstance(info.value, httpx.ConnectError | httpx.ConnectTimeout)


async def test_read_timeout(serve: Callable[[Handler], Awaitable[str]]) -> None:
    url = await serve(never_answer)
    timeout = httpx.Timeout(5.0, read=0.05)
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, content=b"{}")


def drop_requests_after_idle(seconds: float, connections: list[object]) -> Handler:
    """A server that drops, unanswered, a request on a connection idle `seconds` or longer.

    That is what a request meets when it crosses the server's keep-alive close on the wire;
    here it happens every time rather than in a window of a few milliseconds.
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        connections.append(writer)
        answered_at: float | None = None
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            if answered_at is not None and loop.time() - answered_at >= seconds:
                writer.close()
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            answered_at = loop.time()

    return handler


async def test_an_idle_connection_retires_before_the_server_closes_it(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    connections: list[object] = []
    url = await serve(drop_requests_after_idle(0.4, connections))
    transport = AiohttpTransport(keepalive_expiry=0.2)
    async with httpx.AsyncClient(transport=transport) as http:
        await http.post(url, content=b"{}")
        await asyncio.sleep(0.5)  # the idle time itself: past our expiry and the server's
        second = await http.post(url, content=b"{}")
    assert second.status_code == 200
    assert len(connections) == 2


async def test_a_connection_kept_past_the_servers_close_loses_the_send(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """Why the expiry matters: the send is written, the answer never comes."""
    connections: list[object] = []
    url = await serve(drop_requests_after_idle(0.2, connections))
    async with httpx.AsyncClient(transport=AiohttpTransport(keepalive_expiry=15.0)) as http:
        await http.post(url, content=b"{}")
        await asyncio.sleep(0.3)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url, content=b"{}")
    assert len(connections) == 1


def test_the_default_expiry_is_a_second_below_the_emulators_keep_alive() -> None:
    """The emulator closes idle connections when uvicorn does, after 5 s, as many servers do."""
    default = inspect.signature(AiohttpTransport).parameters["keepalive_expiry"].default
    assert default == DEFAULT_KEEPALIVE_EXPIRY
    assert make_config(FakeVairo()).timeout_keep_alive - DEFAULT_KEEPALIVE_EXPIRY >= 1.0


async def test_refused_connection_is_a_connect_error() -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(closed_port_url(), content=b"{}")


async def test_waiting_for_a_pooled_connection_times_out_as_a_connect_timeout(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    arrived = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await asyncio.Event().wait()

    url = await serve(hold)
    timeout = httpx.Timeout(5.0, read=5.0, pool=0.05, connect=0.05)
    transport = AiohttpTransport(max_connections=1)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
        first = asyncio.create_task(http.post(url, content=b"{}"))
        await arrived.wait()  # the first request holds the only connection
        with pytest.raises(httpx.ConnectTimeout):
            await http.post(url, content=b"{}")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


# --- proxies from the environment ----------------------------------------------------

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without proxy settings; tests set their own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def recording_proxy(seen: list[list[bytes]]) -> Handler:
    """A "proxy" that answers every request itself and records its head, line by line.

    A plain-http request through a proxy carries the absolute URL in its request line; a
    CONNECT (an https request's tunnel) is refused with 407.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request.split(b"\r\n"))
            if request.startswith(b"CONNECT "):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                await writer.drain()
                writer.close()
                break
            body = b'{"durum": true, "aciklama": 2}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    return handle


def origin(url: str) -> str:
    return url.removesuffix("/x")


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    assert error.__cause__ is None
    assert error.__context__ is None  # aiohttp's exception would hold the request's headers
    for secret in secrets:
        assert secret not in repr(error), secret


async def test_plain_http_goes_through_the_environment_proxy_with_its_credentials(
    serve: Callable[[Handler], Awaitable[str]], proxy_env: pytest.MonkeyPatch
) -> None:
    seen: list[list[bytes]] = []
    proxy = origin(await serve(recording_proxy(seen)))
    proxy_env.setenv("HTTP_PROXY", proxy.replace("http://", "http://ali:p%40ss@"))
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        answer = await http.get("http://vairo.test:8080/x?api_key=k")  # resolved by no one
    assert answer.json() == {"durum": True, "aciklama": 2}
    [head] = seen
    assert head[0] == b"GET http://vairo.test:8080/x?api_key=k HTTP/1.1"
    assert b"Proxy-Authorization: Basic YWxpOnBAc3M=" in head  # ali:p@ss


async def test_the_proxy_is_looked_up_once_per_origin(
    serve: Callable[[Handler], Awaitable[str]], proxy_env: pytest.MonkeyPatch
) -> None:
    seen: list[list[bytes]] = []
    proxy = origin(await serve(recording_proxy(seen)))
    refused = origin(closed_port_url())
    proxy_env.setenv("HTTP_PROXY", proxy)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        await http.get("http://vairo.test/x")
        proxy_env.setenv("HTTP_PROXY", refused.replace("http://", "http://ali:s3cret@"))
        await http.get("http://vairo.test/x?again=1")  # the same origin: the same proxy
        with pytest.raises(httpx.ConnectError) as info:  # another origin: the new proxy
            await http.get("http://vairo.test:81/x?api_key=the-key")
    assert [head[0] for head in seen] == [
        b"GET http://vairo.test/x HTTP/1.1",
        b"GET http://vairo.test/x?again=1 HTTP/1.1",
    ]
    assert_no_secret(info.value, "s3cret", "YWxpOnMzY3JldA==", "the-key")


async def test_no_proxy_hosts_are_reached_directly(
    serve: Callable[[Handler], Awaitable[str]], proxy_env: pytest.MonkeyPatch
) -> None:
    seen: list[list[bytes]] = []
    proxy = origin(await serve(recording_proxy(seen)))
    direct = await serve(answer_ok)
    proxy_env.setenv("HTTP_PROXY", proxy)
    proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        answer = await http.get(direct)
    assert answer.headers["x-request"] == "GET /x HTTP/1.1"
    assert seen == []


async def test_a_refused_proxy_tunnel_is_a_connect_error_without_secrets(
    serve: Callable[[Handler], Awaitable[str]], proxy_env: pytest.MonkeyPatch
) -> None:
    seen: list[list[bytes]] = []
    proxy = origin(await serve(recording_proxy(seen)))
    proxy_env.setenv("HTTPS_PROXY", proxy.replace("http://", "http://ali:s3cret@"))
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.ConnectError) as info:  # the request never left
            await http.post("https://vairo.test/x?api_key=the-key", content=b"{}")
    [head] = seen
    assert head[0] == b"CONNECT vairo.test:443 HTTP/1.1"
    assert b"Proxy-Authorization: Basic YWxpOnMzY3JldA==" in head  # ali:s3cret
    assert_no_secret(info.value, "s3cret", "YWxpOnMzY3JldA==", "the-key")


# --- the SDK's own httpx client -------------------------------------------------------


def setting_cookies(seen: list[bytes]) -> Handler:
    """Accept every send (package id 7) with a `Set-Cookie`; record each request head."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request.partition(b"\r\n\r\n")[0].lower())
            body = b'{"durum": true, "aciklama": 7}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Set-Cookie: session=abc; Path=/\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    return handle


async def test_the_sdk_client_keeps_and_sends_no_cookies(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[bytes] = []
    base_url = (await serve(setting_cookies(seen))).removesuffix("x")
    async with AsyncVairoClient(API_KEY, sender="ACME", base_url=base_url) as client:
        for _ in range(2):
            assert (await client.send("hi", to="5399999999")).package_id == 7
        assert not client._http.cookies
    assert len(seen) == 2
    assert b"cookie:" not in seen[1]


async def test_a_callers_own_http_client_keeps_its_cookies(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[bytes] = []
    base_url = (await serve(setting_cookies(seen))).removesuffix("x")
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=base_url, http_client=http
        ) as client:
            for _ in range(2):
                await client.send("hi", to="5399999999")
        assert http.cookies["session"] == "abc"
    assert b"cookie:" not in seen[0]
    assert b"\r\ncookie: session=abc" in seen[1]


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """With the collector off, what a `gc.collect()` inside the test finds unreachable."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("stack", ["aiohttp", "httpcore"])
async def test_answers_are_freed_without_the_cyclic_garbage_collector(
    serve: Callable[[Handler], Awaitable[str]], saved_garbage: list[object], stack: str
) -> None:
    base_url = (await serve(setting_cookies([]))).removesuffix("x")
    transport = httpx.AsyncHTTPTransport() if stack == "httpcore" else None
    async with AsyncVairoClient(
        API_KEY, sender="ACME", base_url=base_url, transport=transport
    ) as client:
        for _ in range(20):
            await client.send("hi", to="5399999999")
        gc.collect()
    left = [o for o in saved_garbage if isinstance(o, httpx.Request | httpx.Response)]
    assert left == []


async def test_a_transport_error_is_freed_without_the_cyclic_garbage_collector(
    saved_garbage: list[object],
) -> None:
    transport = AiohttpTransport()
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("POST", closed_port_url()))
    await transport.aclose()
    gc.collect()
    assert [o for o in saved_garbage if isinstance(o, httpx.HTTPError)] == []


def default_transport(client: AsyncVairoClient) -> AiohttpTransport:
    transport = client._http._transport
    assert isinstance(transport, AiohttpTransport)
    return transport


def test_a_plain_http_client_loads_no_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(_transport, "_verified_context", lambda: built.append(1))
    client = AsyncVairoClient(API_KEY, base_url="http://127.0.0.1:8080/")
    assert built == []
    assert default_transport(client)._ssl_context is None


def test_an_https_client_loads_its_tls_context_once_when_built() -> None:
    first = default_transport(AsyncVairoClient(API_KEY))._ssl_context
    second = default_transport(AsyncVairoClient(API_KEY))._ssl_context
    assert isinstance(first, ssl.SSLContext)
    assert first.verify_mode is ssl.CERT_REQUIRED
    assert first is second  # loaded once for the process


BUILT: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "https://vairo.test/api/SmsGonder?api_key=k", {"content": b"{}"}),
    (
        "POST",
        "https://vairo.test/api/SmsGonder?api_key=k",
        {"content": b"{}", "headers": {"content-type": "application/json"}},
    ),
    ("GET", "https://vairo.test/api/GonderimBilgisi/7?api_key=k", {}),
    ("GET", "https://vairo.test/api/x", {"params": {"a": "1"}, "headers": [("x-a", "b")]}),
    ("GET", "https://vairo.test/api/x", {"headers": {"x-a": "b"}}),
    ("GET", "relative/path", {}),
    # As AsyncClient.request passes them: every option named, unset.
    (
        "POST",
        "https://vairo.test/api/SmsGonder?api_key=k",
        {
            "content": b"{}",
            "data": None,
            "files": None,
            "json": None,
            "params": None,
            "headers": {"content-type": "application/json"},
            "cookies": None,
            "timeout": httpx.USE_CLIENT_DEFAULT,
            "extensions": None,
        },
    ),
    ("GET", "https://vairo.test/api/x", {"timeout": 1.5}),
    ("GET", "https://vairo.test/api/x", {"extensions": {"trace": print}}),
]


def test_the_sdk_client_builds_requests_as_httpx_does() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    own = _transport.make_http_client(
        "https://vairo.test/", transport=transport, timeout=5, max_connections=1
    )
    plain = httpx.AsyncClient(timeout=5)
    for method, url, options in BUILT * 2:  # the second time from the merged headers kept
        target = httpx.URL(url) if url.startswith("https:") else url
        built, expected = (
            client.build_request(method, target, **options) for client in (own, plain)
        )
        assert (built.method, built.url, built.content) == (
            expected.method,
            expected.url,
            expected.content,
        )
        assert built.headers.raw == expected.headers.raw
        assert built.extensions == expected.extensions
