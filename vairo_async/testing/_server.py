"""Serving a `FakeVairo` on a real loopback socket with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._redact import install_log_redaction
from ._faults import DropConnection

if TYPE_CHECKING:
    from ._app import FakeVairo

__all__ = [
    "MISSING_UVICORN",
    "base_url",
    "bind",
    "import_uvicorn",
    "make_config",
    "serve",
    "silence_drops",
]

MISSING_UVICORN = (
    "Serving the VairoSMS emulator needs uvicorn; install the testing extra: "
    "pip install 'vairo-async[testing]'"
)


def import_uvicorn() -> ModuleType:
    """uvicorn, or an ImportError naming the extra that provides it."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(MISSING_UVICORN) from exc
    return uvicorn


def bind(host: str, port: int, *, allow_non_loopback: bool = False) -> socket.socket:
    """A listening TCP socket on `host:port`, refusing non-loopback hosts unless allowed.

    Listening before the server starts means clients can connect at once: the kernel queues
    them until uvicorn accepts, so there is no start-up race to wait out.
    """
    host = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be an IP address or 'localhost', not {host!r}") from None
    if not address.is_loopback and not allow_non_loopback:
        raise ValueError(
            f"refusing to serve the emulator on non-loopback address {host}; "
            "pass allow_non_loopback=True (--allow-non-loopback) to mean it"
        )
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket says TCP, and without it every keep-alive answer stalls 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket, prefix: str) -> str:
    """`http://HOST:PORT{prefix}` for a bound socket."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{prefix}"


class _DropFilter(logging.Filter):
    """Hides uvicorn's error record for the emulator's deliberate connection drops only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


_DROP_FILTER = _DropFilter()


def silence_drops() -> None:
    """Install the drop filter on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)
    # The access log is off, but a host's logging set-up may turn it on: keep keys out.
    install_log_redaction("uvicorn.access")


def make_config(app: FakeVairo, **options: Any) -> Any:
    """A uvicorn Config for the emulator: h11, no websockets, no access log (URLs hold keys)."""
    uvicorn = import_uvicorn()
    settings: dict[str, Any] = {
        "interface": "asgi3",
        "http": "h11",
        "ws": "none",
        "lifespan": "off",
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
    }
    settings.update(options)
    return uvicorn.Config(app, **settings)


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield


@contextlib.asynccontextmanager
async def serve(
    app: FakeVairo, *, host: str, port: int, allow_non_loopback: bool
) -> AsyncIterator[str]:
    """Run `app` under uvicorn on a socket of our own; yield its base URL; stop on exit."""
    uvicorn = import_uvicorn()
    silence_drops()
    sock = bind(host, port, allow_non_loopback=allow_non_loopback)
    # log_config=None leaves the host application's logging configuration alone.
    server = uvicorn.Server(make_config(app, log_config=None))
    # Embedded in a test or an app, signals belong to the host, not to this server.
    server.capture_signals = _no_signal_capture
    task = asyncio.create_task(server.serve(sockets=[sock]), name="fake-vairo-server")
    try:
        yield base_url(sock, app.prefix)
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
