"""A `TransportError` says what happened in the SDK's words, the same on both HTTP stacks.

Each case fails one real loopback connection in its own way and reads the message of the
`TransportError` the client raised: the words are the same on aiohttp and on httpx's own
stack (only the httpx class name before them may differ), and nothing in them reads like an
HTTP status (aiohttp's parser codes its failures 400), a URL or the key.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl

import aiohttp
import httpx
import pytest
import yarl
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

from tests.sdk.test_transport_contract import (
    PREFIX,
    Handler,
    client_on,
    full_backlog,
    send_failing,
    socket_server,
)
from tests.sdk.test_transport_contract import stack as stack  # the two-stack fixture
from tests.support import API_KEY
from vairo_async import OutcomeUnknownError, TransportError, VairoError
from vairo_async._transport import _httpx_error
from vairo_async._wording import connect_failed, cut_answer, describe, timed_out


async def cut_after_ten_of_fifty(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n0123456789")
    await writer.drain()
    writer.close()


async def cut_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
    await writer.drain()
    writer.close()


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


CASES: dict[str, tuple[Handler, str]] = {
    "cut body": (
        cut_after_ten_of_fifty,
        "connection closed before the whole answer arrived (after 10 of 50 bytes)",
    ),
    "cut chunked body": (
        cut_chunked,
        "connection closed before the whole answer arrived (in the middle of its chunked body)",
    ),
    "closed before answering": (close_at_once, "connection closed before any answer arrived"),
    "not http": (not_http, "the answer is not valid HTTP"),
    "read timeout": (never_answer, "no answer within the read timeout (0.2 s)"),
}


def transport_error(error: VairoError) -> TransportError:
    cause = error.error if isinstance(error, OutcomeUnknownError) else error
    assert isinstance(cause, TransportError)
    return cause


def check_clean(message: str) -> None:
    assert not re.search(r"\b[1-5]\d\d\b", message), message  # nothing reads as a status
    assert API_KEY not in message
    assert "api_key" not in message
    assert "aiohttp" not in message.lower()


@pytest.mark.parametrize("case", CASES)
async def test_a_broken_answer_is_worded(stack: str, case: str) -> None:
    handler, words = CASES[case]
    async with socket_server(handler) as (_, url), client_on(stack, url) as client:
        error = await send_failing(client)
    message = str(transport_error(error))
    assert message.endswith(": " + words), message
    check_clean(message)
    assert words in str(error)  # the OutcomeUnknownError quotes it


async def test_a_refused_connection_is_worded(stack: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with client_on(stack, f"http://127.0.0.1:{port}{PREFIX}") as client:
            error = await send_failing(client)
    message = str(transport_error(error))
    assert message == f"ConnectError: could not connect to 127.0.0.1:{port} (connection refused)"


async def test_a_connect_timeout_is_worded(stack: str) -> None:
    with full_backlog() as url:
        async with client_on(stack, url) as client:
            error = await send_failing(client)
    message = str(transport_error(error))
    assert message == "ConnectTimeout: could not connect within the connect timeout (0.2 s)"


async def test_an_unresolvable_host_is_worded() -> None:
    from vairo_async import AsyncVairoClient

    async with AsyncVairoClient(
        API_KEY, sender="ACME", base_url="https://no-such-host.invalid/", max_retries=0
    ) as client:
        error = await send_failing(client)
    message = str(transport_error(error))
    assert (
        message
        == "ConnectError: could not connect to no-such-host.invalid:443 (host name not resolved)"
    )


# --- the words themselves ----------------------------------------------------------------


def test_cut_answer_reads_both_libraries_counts() -> None:
    aiohttp_style = "Not enough data to satisfy content length header (received 3 of 9 bytes)."
    httpcore_style = (
        "peer closed connection without sending complete message body"
        " (received 3 bytes, expected 9)"
    )
    for detail in (aiohttp_style, httpcore_style):
        assert cut_answer(detail).endswith("(after 3 of 9 bytes)")
    assert cut_answer("Not enough data") == "connection closed before the whole answer arrived"


def test_a_timeout_without_a_request_has_no_limit() -> None:
    assert timed_out(httpx.ReadTimeout, None) == "no answer within the read timeout"
    assert describe(httpx.PoolTimeout("x")) == (
        "PoolTimeout: no free connection in the pool within the pool timeout"
    )


def test_other_httpx_failures_are_worded() -> None:
    assert describe(httpx.WriteError("x")) == (
        "WriteError: connection lost while the request was being sent"
    )
    assert describe(httpx.ReadError("x")) == (
        "ReadError: connection lost while the answer was being read"
    )
    assert describe(httpx.UnsupportedProtocol("x")).startswith("UnsupportedProtocol: the URL")
    assert describe(httpx.ProxyError("x")) == "ProxyError: the proxy refused the connection"
    assert describe(httpx.DecodingError("bad gzip")) == (
        "DecodingError: the HTTP exchange failed (bad gzip)"
    )
    assert connect_failed(None, "[Errno 113] No route to host.") == (
        "could not connect (no route to host)"
    )


# --- aiohttp failures no loopback socket provokes easily ---------------------------------

_KEY = ConnectionKey("vairosms.com", 443, True, True, None, None, None, None)
_REQUEST = httpx.Request("POST", "https://vairosms.com/Panel/api/v1/SmsGonder?api_key=K")

AIOHTTP_CASES: list[tuple[BaseException, type[httpx.TransportError], str]] = [
    (
        aiohttp.ClientConnectorCertificateError(_KEY, ssl.SSLCertVerificationError("bad")),
        httpx.ConnectError,
        "could not connect to vairosms.com:443 (TLS certificate not accepted)",
    ),
    (
        aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError("handshake")),
        httpx.ConnectError,
        "could not connect to vairosms.com:443 (TLS handshake failed)",
    ),
    (
        aiohttp.ClientConnectorError(_KEY, OSError(113, "No route to host")),
        httpx.ConnectError,
        "could not connect to vairosms.com:443 (no route to host)",
    ),
    (
        aiohttp.ClientConnectorError(_KEY, TimeoutError()),
        httpx.ConnectError,
        "could not connect to vairosms.com:443 (TimeoutError)",
    ),
    (
        aiohttp.ClientHttpProxyError(
            aiohttp.RequestInfo(
                yarl.URL("http://proxy:3128"),
                "CONNECT",
                CIMultiDictProxy(CIMultiDict()),
                yarl.URL("http://proxy:3128"),
            ),
            (),
            status=407,
            message="Proxy Authentication Required",
        ),
        httpx.ConnectError,
        "the proxy refused the connection (the proxy answered HTTP 407)",
    ),
    (
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        httpx.WriteError,
        "connection lost while the request was being sent",
    ),
    (
        aiohttp.InvalidURL("https://vairosms.com:x/?api_key=K"),
        httpx.UnsupportedProtocol,
        "the URL cannot be requested (unsupported scheme or malformed URL)",
    ),
    (
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        httpx.ReadError,
        "connection lost while the answer was being read (Connection reset by peer)",
    ),
    (aiohttp.ClientOSError(), httpx.ReadError, "the HTTP exchange failed (ClientOSError)"),
    (TimeoutError(), httpx.ReadTimeout, "no answer within the read timeout"),
]


@pytest.mark.parametrize(
    ("exc", "httpx_class", "words"), AIOHTTP_CASES, ids=[w for _, _, w in AIOHTTP_CASES]
)
def test_aiohttp_failures_are_worded(
    exc: BaseException, httpx_class: type[httpx.TransportError], words: str
) -> None:
    error = _httpx_error(exc, _REQUEST)
    assert type(error) is httpx_class
    assert str(error) == words
    assert describe(error) == f"{httpx_class.__name__}: {words}"
    assert "api_key" not in str(error)
