"""The API key appears in no log record, no str/repr, and no formatted traceback."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.sdk.test_retry import TABLE
from tests.support import API_KEY, Recorder
from vairo_async import AsyncVairoClient, ConfigurationError, VairoError
from vairo_async._redact import held_secrets, install_log_redaction, redact
from vairo_async.testing import FakeVairo

LOGGERS = ("", "httpx", "httpcore", "vairo_async")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text
        assert API_KEY[-12:] not in text


def assert_error_is_clean(error: BaseException) -> None:
    assert_no_key(
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        *(repr(getattr(error, name, "")) for name in ("body", "message", "error")),
    )


def assert_logs_are_clean(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the test should have produced log records"
    assert_no_key(caplog.text, *(record.getMessage() for record in caplog.records))


async def test_every_error_path_keeps_the_key_secret(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    errors: list[BaseException] = []
    for failure, _, _ in TABLE.values():
        recorder = Recorder(FakeVairo(api_key=API_KEY))
        recorder.script(*[failure] * 10)
        async with AsyncVairoClient(API_KEY, sender="ACME", transport=recorder) as client:
            assert_no_key(str(client), repr(client))
            for call in (client.get_report(5), client.send("hi", to="5399999999")):
                try:
                    await call
                except VairoError as error:
                    errors.append(error)
    assert len(errors) == 2 * len(TABLE)
    for caught in errors:
        assert_error_is_clean(caught)
    assert_logs_are_clean(debug_logs)
    assert any("HTTP Request" in r.getMessage() for r in debug_logs.records)
    assert any("api_key=[REDACTED]" in r.getMessage() for r in debug_logs.records)


async def test_a_transport_error_quoting_the_url_is_scrubbed(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    async with AsyncVairoClient(
        API_KEY, sender="ACME", transport=httpx.MockTransport(fail), max_retries=1
    ) as client:
        with pytest.raises(VairoError) as info:
            await client.send("hi", to="5399999999")
    assert_error_is_clean(info.value)
    assert "api_key=[REDACTED]" in str(info.value)
    assert_logs_are_clean(debug_logs)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.com/?api_key={key}",
        "http://10.0.0.1/?api_key={key}",
        "ftp://h/?api_key={key}",
        "https:///?api_key={key}",
        "https://h/?api_key={key}",
        "ftp://h/{key}",
        "http://{key}/",
        "http://h:{key}/",
        "https://h/\x00?api_key={key}",
    ],
)
def test_configuration_errors_do_not_quote_the_key(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient(API_KEY, base_url=base_url.format(key=API_KEY))
    assert_error_is_clean(info.value)


# A key may hold characters httpx leaves unencoded in a query it is given as text.
ODD_KEY = "k3y)'(\"#>-0123456789abcdef"


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"durum": True, "aciklama": 1})


def test_a_key_with_quotes_and_brackets_is_redacted_whole() -> None:
    url = f"https://h/p?api_key={ODD_KEY}"
    assert redact(f"GET {url} failed", "") == "GET https://h/p?api_key=[REDACTED] failed"
    assert redact(f"{url}&b=1", "") == "https://h/p?api_key=[REDACTED]&b=1"
    assert ODD_KEY[1:] not in redact(f"(url='{url}')", "")


async def test_the_httpx_log_filter_redacts_a_key_with_quotes_and_brackets(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    key = "k3y)'tail-0123456789abcdef"
    async with httpx.AsyncClient(transport=httpx.MockTransport(ok)) as http:
        response = await http.get(f"https://h/p?api_key={key}&b=1")
    assert f"api_key={key}&" in str(response.request.url)  # sent unencoded, as given
    [message] = [r.getMessage() for r in debug_logs.records if r.name == "httpx"]
    assert "api_key=[REDACTED]&b=1" in message
    assert "tail" not in debug_logs.text


async def test_the_log_filter_replaces_the_clients_key_wherever_it_appears(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    async with AsyncVairoClient(ODD_KEY, transport=httpx.MockTransport(ok)):
        logging.getLogger("httpx").info("HTTP Request: GET %s", f"https://h/{ODD_KEY}/p")

    [record] = [r for r in debug_logs.records if r.name == "httpx"]
    assert record.getMessage() == "HTTP Request: GET https://h/[REDACTED]/p"
    assert ODD_KEY not in debug_logs.text


async def test_each_open_clients_key_is_redacted_and_released_at_close(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    first_key, second_key = "first-key-0123456789", "second-key-9876543210"
    first = AsyncVairoClient(first_key, transport=httpx.MockTransport(ok))
    second = AsyncVairoClient(second_key, transport=httpx.MockTransport(ok))
    async with first, second:
        assert {first_key, second_key} <= held_secrets()
        logging.getLogger("httpx").info("keys %s and %s", first_key, second_key)
    assert not {first_key, second_key} & held_secrets()
    logging.getLogger("httpx").info("after close")

    messages = [r.getMessage() for r in debug_logs.records if r.name == "httpx"]
    assert messages == ["keys [REDACTED] and [REDACTED]", "after close"]


async def test_a_key_shared_by_two_clients_stays_held_until_both_close() -> None:
    key = "shared-key-0123456789"
    async with AsyncVairoClient(key, transport=httpx.MockTransport(ok)):
        async with AsyncVairoClient(key, transport=httpx.MockTransport(ok)) as inner:
            pass
        await inner.aclose()  # a second close releases nothing more
        assert key in held_secrets()
    assert key not in held_secrets()


def test_a_client_dropped_without_closing_releases_its_key() -> None:
    key = "dropped-key-0123456789"
    client = AsyncVairoClient(key, transport=httpx.MockTransport(ok))
    assert key in held_secrets()
    del client
    gc.collect()
    assert key not in held_secrets()


# --- through a real loopback socket, so httpcore logs too ----------------------------


@pytest.fixture
async def tiny_server() -> AsyncIterator[str]:
    """A loopback HTTP server answering 401 with the key echoed in the body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in request.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        body = ('{"durum": false, "aciklama": "invalid key ' + API_KEY + '"}').encode()
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/Panel/api/v1/"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stack", ["aiohttp", "httpx"])
async def test_real_sockets_keep_the_key_secret(
    tiny_server: str, debug_logs: pytest.LogCaptureFixture, stack: str
) -> None:
    errors: list[BaseException] = []
    for base_url in (tiny_server, f"http://127.0.0.1:{_closed_port()}/"):
        transport = httpx.AsyncHTTPTransport() if stack == "httpx" else None
        async with AsyncVairoClient(
            API_KEY, sender="ACME", base_url=base_url, max_retries=1, transport=transport
        ) as client:
            for call in (client.get_report(5), client.send("hi", to="5399999999")):
                with pytest.raises(VairoError) as info:
                    await call
                errors.append(info.value)
    for error in errors:
        assert_error_is_clean(error)
    assert_logs_are_clean(debug_logs)
    loggers = {r.name for r in debug_logs.records}
    assert "httpx" in loggers
    if stack == "httpx":
        assert "httpcore.connection" in loggers


@pytest.mark.parametrize("failure", ["not http", "pool timeout", "closed mid-body"])
async def test_aiohttp_failures_keep_the_key_secret(
    debug_logs: pytest.LogCaptureFixture, failure: str
) -> None:
    """aiohttp quotes the full URL in some of its errors; none of it may reach the caller."""
    arrived = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        if failure == "not http":
            writer.write(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
        elif failure == "closed mid-body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        else:
            await asyncio.Event().wait()
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    errors: list[BaseException] = []
    async with AsyncVairoClient(
        API_KEY,
        sender="ACME",
        base_url=base_url,
        max_retries=1,
        max_connections=1,
        timeout=httpx.Timeout(5.0, connect=0.05, pool=0.05),
    ) as client:
        if failure == "pool timeout":
            holder = asyncio.create_task(client.send("hi", to="5399999999"))
            await arrived.wait()
        for call in (client.get_report(5), client.send("hi", to="5399999999")):
            with pytest.raises(VairoError) as info:
                await call
            errors.append(info.value)
        if failure == "pool timeout":
            holder.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holder
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()
    for error in errors:
        assert_error_is_clean(error)
    assert_no_key(debug_logs.text, *(r.getMessage() for r in debug_logs.records))
