"""The README's "In a web service": its excerpt is the example's code, its svcs variant runs.

The svcs variant is read from the section, served by uvicorn on a loopback socket in the test's
event loop (lifespan and all), and sent to over real HTTP; the emulator runs beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
import socket
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

from vairo_async import AsyncVairoClient, ClientClosedError, JournalUnavailableError, SqliteJournal
from vairo_async.testing import FakeVairo

from ..support import ROOT

with warnings.catch_warnings():
    # svcs.fastapi imports Starlette's TestClient, which on Starlette 1.x warns (a
    # UserWarning) when httpx2 is not installed; the README says so.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    import svcs

HEADING = "## In a web service"
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)


def read_section() -> str:
    """The "In a web service" section of README.md, up to the next "## " heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n{HEADING}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def blocks() -> list[str]:
    """The section's Python blocks, in order."""
    return [match["code"] for match in PYTHON_BLOCK.finditer(read_section())]


def test_the_excerpt_is_the_examples_code_in_order() -> None:
    excerpt, *_ = blocks()
    source = (ROOT / "examples" / "fastapi_otp" / "app.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    position = 0
    for line in excerpt.splitlines():
        if not line.strip():
            continue
        assert line in lines[position:], f"not in app.py (after line {position}): {line!r}"
        position = lines.index(line, position) + 1


@contextlib.contextmanager
def _listening() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    with sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield sock


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """`app` under uvicorn, lifespan included, in this event loop; yields its URL.

    The socket listens before the server starts, so requests queue until the lifespan has
    started the application: no readiness to wait for.
    """
    with _listening() as sock:
        config = uvicorn.Config(app, lifespan="on", log_config=None, ws="none", http="h11")
        server = uvicorn.Server(config)
        server.capture_signals = _no_signal_capture  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            host, port = sock.getsockname()
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await task


def load_svcs_variant(directory: Path) -> ModuleType:
    """The block that starts `# otp_svcs.py`, imported as a module."""
    [code] = [block for block in blocks() if block.startswith("# otp_svcs.py\n")]
    path = directory / "otp_svcs.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("otp_svcs", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_svcs_variant_serves_and_closes_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeVairo
) -> None:
    module = load_svcs_variant(tmp_path)
    monkeypatch.setenv("OTP_JOURNAL_PATH", str(tmp_path / "journal.sqlite3"))
    monkeypatch.setenv("VAIRO_API_KEY", fake.api_key)
    monkeypatch.setenv("VAIRO_SENDER", "ACME")
    otp = {"phone": "0532 111 22 33", "code": "1234"}
    async with fake.serve() as base_url:
        monkeypatch.setenv("VAIRO_BASE_URL", base_url)
        async with serving(module.app) as url, httpx.AsyncClient(base_url=url) as http:
            first = await http.post("/otp", params=otp, headers={"Idempotency-Key": "k"})
            again = await http.post("/otp", params=otp, headers={"Idempotency-Key": "k"})
            async with svcs.Container(module.lifespan.registry) as services:
                vairo = await services.aget(AsyncVairoClient)
                journal = await services.aget(SqliteJournal)

    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    [sms] = fake.sent_to("5321112233")
    assert first.json() == {"package_id": sms.package_id}
    # The registry closed both when the application stopped.
    with pytest.raises(ClientClosedError):
        await vairo.send("Merhaba", to="5321112233")
    with pytest.raises(JournalUnavailableError, match="closed"):
        await journal.get("k")
