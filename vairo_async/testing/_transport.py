"""In-process httpx transport for `FakeVairo` that fails the way a real connection does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from ._faults import DropConnection

if TYPE_CHECKING:
    from ._app import FakeVairo, Receive, Scope, Send

__all__ = ["FakeTransport"]


class FakeTransport(httpx.AsyncBaseTransport):
    """Runs requests against a `FakeVairo` in-process, through `httpx.ASGITransport`.

    A dropped connection becomes `httpx.RemoteProtocolError` (before or during the response,
    as httpcore reports them) and the request's read timeout becomes `httpx.ReadTimeout`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, app: FakeVairo) -> None:
        self._app = app
        self._asgi = httpx.ASGITransport(app=self._marked)

    async def _marked(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ._app import DROP_EXTENSION

        scope.setdefault("extensions", {})[DROP_EXTENSION] = {}
        await self._app(scope, receive, send)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer `request` from the emulator."""
        read_timeout = request.extensions.get("timeout", {}).get("read")
        try:
            async with asyncio.timeout(read_timeout):
                return await self._asgi.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None
        except DropConnection as drop:
            if not drop.response_started:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            return httpx.Response(
                drop.status,
                headers=list(drop.headers),
                stream=_CutStream(drop.length, request),
                request=request,
            )

    async def aclose(self) -> None:
        """Nothing to release."""
        await self._asgi.aclose()


class _CutStream(httpx.AsyncByteStream):
    """A response body whose connection closes before the first byte."""

    def __init__(self, expected: int, request: httpx.Request) -> None:
        self._expected = expected
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received 0 bytes, expected {self._expected})",
            request=self._request,
        )
        yield b""  # pragma: no cover - makes this an async generator
