"""The API key appears in no log record, no str/repr, and no formatted traceback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import socket
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import cattrs
import httpx
import pytest
import rich.console
import rich.traceback

from tests.sdk.test_retry import TABLE
from tests.sdk.test_transport_contract import (
    ALL,
    FAULTS,
    HANDLERS,
    client_on,
    send_failing,
    socket_server,
    stack,
)
from tests.support import API_KEY, Recorder, load_sample
from vairo_async import (
    APIError,
    AsyncVairoClient,
    ConfigurationError,
    UnexpectedResponseError,
    VairoError,
)
from vairo_async._constants import MAX_BODY_EXCERPT
from vairo_async._redact import held_secrets, install_log_redaction, redact
from vairo_async.testing import FakeVairo

LOGGERS = ("", "httpx", "httpcore", "vairo_async")
__all__ = ["stack"]  # the fixture, shared with the transport contract


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
    assert_no_key_in_frame_locals(info.value)


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


# --- every form the key takes in an answer, a report, a URL or a frame ----------------

# A key with every character that escapes a literal match: "/" (PHP writes "\/"), a
# backslash and a quote (repr escapes them), non-ASCII (JSON writes "\u00e7").
PHP_KEY = "sk/live\\'çğ-0123456789abcdef"


def php_json(payload: object) -> bytes:
    """JSON as PHP's json_encode writes it: "/" as "\\/", non-ASCII as \\uXXXX."""
    return json.dumps(payload).replace("/", "\\/").encode()


def assert_no_php_key(*texts: str) -> None:
    for text in texts:
        for part in ("0123456789abcdef", "live", "sk/"):
            assert part not in text, text


def answering_with(status: int, content: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=content))


@pytest.mark.parametrize(
    "echo",
    [
        PHP_KEY,
        json.dumps(PHP_KEY)[1:-1],  # as a JSON string holds it
        urllib.parse.quote(PHP_KEY, safe=""),
        urllib.parse.quote(PHP_KEY, safe="").lower(),
    ],
)
@pytest.mark.parametrize("status", [200, 401, 500])
async def test_every_form_of_the_key_in_a_body_is_redacted(echo: str, status: int) -> None:
    body = php_json({"durum": False, "aciklama": f"bad key {echo} given"})
    async with AsyncVairoClient(
        PHP_KEY, sender="ACME", transport=answering_with(status, body), max_retries=0
    ) as client:
        with pytest.raises(VairoError) as info:
            await client.get_report(5)
    error = info.value
    assert_no_php_key(str(error), repr(error), getattr(error, "body", ""))
    assert "[REDACTED]" in getattr(error, "body", "")


@pytest.mark.parametrize("shift", range(-20, 4))
async def test_a_key_straddling_the_excerpt_cut_is_redacted_whole(shift: int) -> None:
    escaped = php_json(PHP_KEY)[1:-1].decode()
    padding = "x" * (MAX_BODY_EXCERPT + shift - len('{"durum": false, "aciklama": "'))
    body = php_json({"durum": False, "aciklama": padding + PHP_KEY + "y" * 50})
    assert body.decode().index(escaped) == MAX_BODY_EXCERPT + shift
    async with AsyncVairoClient(
        PHP_KEY, sender="ACME", transport=answering_with(401, body), max_retries=0
    ) as client:
        with pytest.raises(VairoError) as info:
            await client.get_report(5)
    assert isinstance(info.value, APIError)
    assert len(info.value.body) == MAX_BODY_EXCERPT
    assert_no_php_key(info.value.body, str(info.value))


@pytest.mark.parametrize("key", [PHP_KEY, "k3y'with\"both\\quotes-0123456789abcdef"])
async def test_a_key_quoted_with_repr_in_a_shape_error_is_redacted(key: str) -> None:
    # The send's answer should be a package id; the key is not one, and the message quotes it.
    body = json.dumps({"durum": True, "aciklama": {"echo": key}}).encode()
    async with AsyncVairoClient(
        key, sender="ACME", transport=answering_with(200, body), max_retries=0
    ) as client:
        with pytest.raises(VairoError) as info:
            await client.get_report(5)
    error = info.value
    assert isinstance(error, UnexpectedResponseError)
    assert "does not match the documented shape" in str(error)
    for text in (str(error), repr(error), error.body):
        assert "0123456789abcdef" not in text


async def test_the_converters_error_is_not_kept_as_a_hidden_context() -> None:
    body = json.dumps({"durum": True, "aciklama": PHP_KEY}).encode()
    async with AsyncVairoClient(
        PHP_KEY, sender="ACME", transport=answering_with(200, body), max_retries=0
    ) as client:
        with pytest.raises(VairoError) as info:
            await client.send("hi", to="5399999999")
    for error in chain(info.value):
        assert_no_php_key(repr(error.args), str(error))
        assert not isinstance(error, cattrs.BaseValidationError)


async def test_a_failed_reports_log_never_shows_the_key() -> None:
    answer = load_sample("report_failed.json")
    log = answer["aciklama"]["log"]
    log["api"] = PHP_KEY
    log["rota"] = f"https://vairosms.com/Panel/api/v1/SmsGonder?api_key={PHP_KEY}"
    log["context"] = json.dumps({"api_key": PHP_KEY})
    log["extra"] = {"nested": [PHP_KEY]}
    async with AsyncVairoClient(PHP_KEY, transport=answering_with(200, php_json(answer))) as client:
        report = await client.get_report(61)
    assert report.failure is not None
    assert report.failure.api == "[REDACTED]"
    assert report.failure.route == "https://vairosms.com/Panel/api/v1/SmsGonder?api_key=[REDACTED]"
    assert report.failure.message.endswith("INVALID_SOURCE_ADDRESS")  # the rest is untouched
    assert report.failure.ip == "78.163.252.167"
    assert_no_php_key(
        repr(report),
        str(report),
        repr(report.failure),
        repr(report.raw),
        repr(report.failure.raw),
        json.dumps(report.raw),
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "https://vairosms.com/{key}/Panel/api/v1/",
        "https://vairosms.com/Panel/api/v1/{key}",
        "https://vairosms.com/Panel/{quoted}/",
        "http://127.0.0.1:8000/{key}/",
    ],
)
def test_a_base_url_holding_the_key_is_refused(base_url: str) -> None:
    url = base_url.format(key=API_KEY, quoted=urllib.parse.quote(API_KEY))
    with pytest.raises(ConfigurationError, match="must not contain the API key") as info:
        AsyncVairoClient(API_KEY, base_url=url)
    assert_error_is_clean(info.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://vairosms.com/Panel/api/v1/?",
        "https://vairosms.com/Panel/api/v1/#",
        "https://h/a#b/",
    ],
)
def test_a_base_url_whose_query_or_fragment_would_swallow_the_endpoint_is_refused(
    base_url: str,
) -> None:
    with pytest.raises(ConfigurationError, match="must not contain '\\?' or '#'"):
        AsyncVairoClient(API_KEY, base_url=base_url)


def chain(error: BaseException) -> list[BaseException]:
    """`error` and every exception chained to it or grouped in it, suppressed ones too."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
    return found


def safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # an object half built when its constructor raised, as reporters see it
        return "<unrepresentable>"


def assert_no_key_in_frame_locals(error: BaseException) -> None:
    shown = traceback.TracebackException.from_exception(error, capture_locals=True)
    console = rich.console.Console(file=io.StringIO(), width=300, color_system=None)
    console.print(
        rich.traceback.Traceback.from_exception(
            type(error), error, error.__traceback__, show_locals=True, max_frames=0
        )
    )
    texts = ["".join(shown.format()), console.file.getvalue()]  # type: ignore[attr-defined]
    for each in chain(error):
        tb = each.__traceback__
        while tb is not None:
            texts.extend(safe_repr(value) for value in tb.tb_frame.f_locals.values())
            tb = tb.tb_next
    assert_no_key(*texts)
    assert "self = " in texts[0]  # locals were captured at all


async def test_no_frame_of_a_retry_table_failure_holds_the_key() -> None:
    errors: list[BaseException] = []
    for failure, _, _ in TABLE.values():
        recorder = Recorder(FakeVairo(api_key=API_KEY))
        recorder.script(*[failure] * 10)
        async with AsyncVairoClient(API_KEY, sender="ACME", transport=recorder) as client:
            for call in (client.get_report(5), client.send("hi", to="5399999999")):
                with pytest.raises(VairoError) as info:
                    await call
                errors.append(info.value)
    assert len(errors) == 2 * len(TABLE)
    for error in errors:
        assert_no_key_in_frame_locals(error)


@contextlib.asynccontextmanager
async def failing_server(case: str) -> AsyncIterator[str]:
    """The base URL of a server failing as `case` says (the test's frame holds no key)."""
    if case in FAULTS:
        fake = FakeVairo(api_key=API_KEY)
        fake.inject(FAULTS[case][0], times=ALL)
        async with fake.serve() as url:
            yield url
    elif case in HANDLERS:
        async with socket_server(HANDLERS[case][0]) as (_, url):
            yield url
    else:
        yield f"http://127.0.0.1:{_closed_port()}/"


@pytest.mark.parametrize("case", [*FAULTS, *HANDLERS, "connection refused"])
async def test_no_frame_of_a_real_stacks_failure_holds_the_key(stack: str, case: str) -> None:
    async with failing_server(case) as url, client_on(stack, url) as client:
        errors = [await send_failing(client)]
        with pytest.raises(VairoError) as info:
            await client.get_report(5)
        errors.append(info.value)
    for error in errors:
        assert_no_key_in_frame_locals(error)
