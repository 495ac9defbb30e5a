"""The emulator on a real loopback socket: `serve()`, its guards, and the command."""

from __future__ import annotations

import signal
import socket
import sys

import httpx
import pytest

from vairo_async.testing import FakeVairo
from vairo_async.testing._cli import fault_rates, main
from vairo_async.testing._server import bind

from ..support import emulator


async def test_serve_yields_a_loopback_base_url_and_stops() -> None:
    fake = FakeVairo()
    async with fake.serve() as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("GonderimBilgisi/1", params={"api_key": fake.api_key})
        port = httpx.URL(url).port

    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/Panel/api/v1/")
    assert answer.status_code == 404
    assert port is not None
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


async def test_serve_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        bind("::1", 0).close()
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    async with FakeVairo().serve("::1") as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("Nope")

    assert url.startswith("http://[::1]:")
    assert answer.status_code == 404


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
async def test_serve_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|IP address"):
        async with FakeVairo().serve(host):
            pass


def test_bind_allows_non_loopback_only_when_asked() -> None:
    sock = bind("0.0.0.0", 0, allow_non_loopback=True)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_bound_sockets_are_tcp_so_answers_are_not_delayed() -> None:
    sock = bind("localhost", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


async def test_serve_without_uvicorn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)

    with pytest.raises(ImportError, match=r"vairo-async\[testing\]"):
        async with FakeVairo().serve():
            pass


def test_command_without_uvicorn_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)

    assert main(["--port", "0"]) == 1
    assert "vairo-async[testing]" in capsys.readouterr().err


def test_command_refuses_non_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "0.0.0.0", "--port", "0"])

    assert exited.value.code == 2
    assert "--allow-non-loopback" in capsys.readouterr().err


def test_fault_specs_are_parsed() -> None:
    rates = fault_rates(
        ["rate_limit=0.1", "503=0.2", "html=0.05", "drop_before=0.01", "drop_after=0.02"],
        retry_after=3,
    )

    assert sorted(rates.values()) == [0.01, 0.02, 0.05, 0.1, 0.2]
    with pytest.raises(ValueError, match="unknown fault"):
        fault_rates(["boom=0.1"], retry_after=1)
    with pytest.raises(ValueError, match="needs a rate"):
        fault_rates(["503"], retry_after=1)


def test_command_serves_until_interrupted() -> None:
    options = ("--complete-after-polls", "0", "--fail-sender", "BAD")
    with emulator(*options, api_key="cli-key") as (process, base_url):
        with httpx.Client(base_url=base_url) as http:
            body = {"baslik": "BAD", "mesajlar": [{"msg": "a", "dest": "5399999999"}]}
            sent = http.post("SmsGonder", params={"api_key": "cli-key"}, json=body)
            polled = http.get("GonderimBilgisi/1", params={"api_key": "cli-key"})
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)

    assert sent.json() == {"durum": True, "aciklama": 1}
    assert polled.json()["aciklama"]["paket_durum"] == -1
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
