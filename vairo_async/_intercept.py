"""Letting httpx's mocking libraries intercept the SDK's own aiohttp transport.

respx (in its default mode) patches httpcore's connection pools, and pytest-httpx patches
`httpx.AsyncHTTPTransport.handle_async_request`; neither knows the SDK's aiohttp transport,
which would then send a mocked test's request for real. The originals are taken when the SDK
is imported, and while either one is replaced the default transport hands each request to an
`httpx.AsyncHTTPTransport`, so the mock sees exactly what it would see under plain httpx.
respx's `using="httpx"` mode wraps the client's transport itself and needs nothing here.
"""

from __future__ import annotations

import httpcore
import httpx

__all__ = ["httpx_is_patched"]

_HTTPX_ORIGINAL = httpx.AsyncHTTPTransport.handle_async_request
_HTTPCORE_ORIGINAL = httpcore.AsyncConnectionPool.handle_async_request


def httpx_is_patched() -> bool:
    """True while httpx's or httpcore's async request method is not the original one."""
    return (
        httpx.AsyncHTTPTransport.handle_async_request is not _HTTPX_ORIGINAL
        or httpcore.AsyncConnectionPool.handle_async_request is not _HTTPCORE_ORIGINAL
    )
