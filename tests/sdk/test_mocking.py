"""httpx's mocking libraries intercept the SDK's default (aiohttp) stack as they do httpx's own.

A loopback server stands where the real service would be: it must see no request.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from pytest_httpx import HTTPXMock

from tests.support import API_KEY, ROOT
from vairo_async import AsyncVairoClient, Submission
from vairo_async._intercept import httpx_is_patched
from vairo_async._transport import AiohttpTransport


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server that records every request and answers success to each."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = b'{"durum": true, "aciklama": 999}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield f"http://127.0.0.1:{port}/Panel/api/v1/", seen


def default_client(base_url: str) -> AsyncVairoClient:
    client = AsyncVairoClient(API_KEY, sender="ACME", base_url=base_url)
    assert isinstance(client._http._transport, AiohttpTransport)  # the default stack
    return client


@pytest.mark.parametrize("using", ["httpcore", "httpx"])
async def test_respx_intercepts_the_default_stack(
    server: tuple[str, list[bytes]], using: str
) -> None:
    base_url, seen = server
    with respx.mock(using=using, assert_all_called=True) as router:
        route = router.post(f"{base_url}SmsGonder").respond(json={"durum": True, "aciklama": 41})
        async with default_client(base_url) as client:
            submission = await client.send("Merhaba", to="0539 999 99 99")
    assert submission == Submission(41, 1, estimated_credits=1)
    [call] = route.calls
    assert call.request.url.params["api_key"] == API_KEY
    assert json.loads(call.request.content)["mesajlar"] == [
        {"msg": "Merhaba", "dest": "5399999999"}
    ]
    assert seen == []


async def test_an_unrouted_request_under_respx_is_refused_not_sent(
    server: tuple[str, list[bytes]],
) -> None:
    base_url, seen = server
    with respx.mock(assert_all_called=False):
        async with default_client(base_url) as client:
            with pytest.raises(Exception, match="not mocked"):
                await client.get_report(5)
    assert seen == []


async def test_pytest_httpx_intercepts_the_default_stack(
    server: tuple[str, list[bytes]], httpx_mock: HTTPXMock
) -> None:
    base_url, seen = server
    httpx_mock.add_response(
        method="POST",
        url=httpx.URL(f"{base_url}SmsGonder", params={"api_key": API_KEY}),
        json={"durum": True, "aciklama": 42},
    )
    async with default_client(base_url) as client:
        submission = await client.send("Merhaba", to="5399999999")
    assert submission.package_id == 42
    [request] = httpx_mock.get_requests()
    assert json.loads(request.content)["baslik"] == "ACME"
    assert seen == []


async def test_without_a_mock_the_default_stack_sends_through_aiohttp(
    server: tuple[str, list[bytes]],
) -> None:
    base_url, seen = server
    assert not httpx_is_patched()
    async with default_client(base_url) as client:
        assert (await client.send("Merhaba", to="5399999999")).package_id == 999
    assert len(seen) == 1
    with respx.mock:
        assert httpx_is_patched()
    assert not httpx_is_patched()


def test_an_sdk_imported_under_an_active_mock_still_defers_to_it() -> None:
    script = f"""
import asyncio, respx
with respx.mock as router:
    import vairo_async
    from vairo_async._intercept import httpx_is_patched
    router.post(url__regex="SmsGonder").respond(json={{"durum": True, "aciklama": 43}})
    async def main():
        async with vairo_async.AsyncVairoClient(
            {API_KEY!r}, sender="ACME", base_url="http://127.0.0.1:9/"
        ) as client:
            return await client.send("hi", to="5399999999")
    assert asyncio.run(main()).package_id == 43
    assert httpx_is_patched()
assert not httpx_is_patched()  # the originals, learnt once the mock ended
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
