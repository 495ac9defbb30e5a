"""Letting httpx's mocking libraries intercept the SDK's own aiohttp transport.

respx (in its default mode) patches httpcore's connection pools, and pytest-httpx patches
`httpx.AsyncHTTPTransport.handle_async_request`; neither knows the SDK's aiohttp transport,
which would then send a mocked test's request for real. The originals are taken when the SDK
is imported, and while either one is replaced the default transport hands each request to an
`httpx.AsyncHTTPTransport`, so the mock sees exactly what it would see under plain httpx.
respx's `using="httpx"` mode wraps the client's transport itself and needs nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpcore
import httpx

__all__ = ["httpx_is_patched"]

_Method = Callable[..., Any]
_HTTPX_MODULE = "httpx._transports.default"
_HTTPCORE_MODULE = "httpcore._async.connection_pool"


def _own(method: _Method, module: str) -> _Method | None:
    """`method` if it is the library's own, None if a mock had replaced it already."""
    return method if getattr(method, "__module__", None) == module else None


_httpx_original = _own(httpx.AsyncHTTPTransport.handle_async_request, _HTTPX_MODULE)
_httpcore_original = _own(httpcore.AsyncConnectionPool.handle_async_request, _HTTPCORE_MODULE)


def httpx_is_patched() -> bool:
    """True while httpx's or httpcore's async request method is not the original one.

    Two identity comparisons per request. When the SDK was imported under an active mock, the
    originals are unknown until the mock ends; until then every request counts as mocked.
    """
    if (
        httpx.AsyncHTTPTransport.handle_async_request is _httpx_original
        and httpcore.AsyncConnectionPool.handle_async_request is _httpcore_original
    ):
        return False
    return _patched_or_learn()


def _patched_or_learn() -> bool:
    global _httpx_original, _httpcore_original
    if _httpx_original is None:
        _httpx_original = _own(httpx.AsyncHTTPTransport.handle_async_request, _HTTPX_MODULE)
    if _httpcore_original is None:
        _httpcore_original = _own(
            httpcore.AsyncConnectionPool.handle_async_request, _HTTPCORE_MODULE
        )
    return (
        httpx.AsyncHTTPTransport.handle_async_request is not _httpx_original
        or httpcore.AsyncConnectionPool.handle_async_request is not _httpcore_original
    )
