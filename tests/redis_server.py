"""A throwaway redis-server (or valkey-server) on a free loopback port, for the journal tests.

The server binary is `$VAIRO_TEST_REDIS_SERVER`, else `redis-server` or `valkey-server` on
PATH. It runs without persistence (`--save "" --appendonly no`) and is ready once it answers
PING.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

__all__ = ["find_server", "running_server"]

_READY_WITHIN = 15.0


def find_server() -> str | None:
    """The server binary to run, or None when none is installed."""
    configured = os.environ.get("VAIRO_TEST_REDIS_SERVER")
    if configured:
        return configured
    return shutil.which("redis-server") or shutil.which("valkey-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_server(binary: str) -> Iterator[str]:
    """Run `binary` on a free loopback port until the block ends; yield its `redis://` URL."""
    for _ in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        command = [binary, "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--bind", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _READY_WITHIN
        try:
            while not _pong(port):
                # Waiting on the process both paces the pings and notices an early exit.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
            else:
                yield f"redis://127.0.0.1:{port}/0"
                return
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    raise RuntimeError(f"{binary} did not answer PING on a loopback port")
