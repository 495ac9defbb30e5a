"""`examples/fastapi_otp` run for real: uvicorn in a process of its own, the emulator in another.

The test talks HTTP to both over loopback: to the application as its callers do, and to the
emulator's control endpoints through `RemoteFakeVairo`, to count the SMS it accepted and to
inject faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import attrs
import httpx
import pytest

from vairo_async import RecordState, SqliteJournal
from vairo_async._journal import send_key
from vairo_async.testing import DEFAULT_API_KEY, Fault, RemoteFakeVairo

from ..support import ROOT

APP = "examples.fastapi_otp.app:app"
READY_WITHIN = 60.0
CLOSED_LINE = "VairoSMS client and journal closed"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as an orchestrator stops a service; its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """`python -m vairo_async.testing` on a free port; yields its base URL."""
    command = [sys.executable, "-m", "vairo_async.testing", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as proc:
        try:
            assert proc.stdout is not None
            # It listens before it prints the line, so the URL is ready to use once read.
            line = proc.stdout.readline().decode().strip()
            assert line.startswith("VAIRO_BASE_URL="), line
            yield line.removeprefix("VAIRO_BASE_URL=")
        finally:
            _stop(proc)


@attrs.frozen
class App:
    """A running application: its URL, process, log file and journal."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    journal_path: Path
    pids: frozenset[int]

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _ready(proc: subprocess.Popen[bytes], url: str, workers: int) -> frozenset[int] | None:
    """Poll `/health` until `workers` distinct processes answered; None if the server died.

    Each poll is a new connection, so that every worker of `--workers N` gets to answer one.
    """
    pids: set[int] = set()
    deadline = time.monotonic() + READY_WITHIN
    while True:
        try:
            answer = httpx.get(f"{url}/health", timeout=5.0, trust_env=False)
            pids.add(answer.json()["pid"])
        except httpx.TransportError:
            pass
        if len(pids) == workers:
            return frozenset(pids)
        # Waiting on the process both paces the polls and notices an early exit.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
        if proc.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise AssertionError(f"{APP} did not answer /health within {READY_WITHIN}s")


def app_environment(directory: Path, emulator_url: str) -> dict[str, str]:
    """The example's configuration: the SDK's variables and the journal's path."""
    return {
        **os.environ,
        "VAIRO_API_KEY": DEFAULT_API_KEY,
        "VAIRO_BASE_URL": emulator_url,
        "VAIRO_SENDER": "ACME",
        "OTP_JOURNAL_PATH": str(directory / "journal.sqlite3"),
    }


def start_uvicorn(
    env: dict[str, str], port: int, log_path: Path, *options: str
) -> subprocess.Popen[bytes]:
    """`python -m uvicorn` serving the example from the repository's root, output to a file."""
    address = ["--host", "127.0.0.1", "--port", str(port)]
    # The test's callers may be slow to reuse a connection on a loaded machine: the server
    # keeps idle ones long enough that it never closes one under a request.
    keep_alive = ["--timeout-keep-alive", "60"]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                APP,
                *address,
                *keep_alive,
                "--no-access-log",
                *options,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def run_app(directory: Path, emulator_url: str, *, workers: int = 1) -> Iterator[App]:
    """uvicorn serving the example on a free loopback port, configured by its environment."""
    env = app_environment(directory, emulator_url)
    journal = Path(env["OTP_JOURNAL_PATH"])
    for attempt in range(3):  # another process may take the free port before uvicorn binds it
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = directory / f"uvicorn-{attempt}.log"
        proc = start_uvicorn(env, port, log_path, "--workers", str(workers))
        try:
            pids = _ready(proc, url, workers)
            if pids is not None:
                yield App(url, proc, log_path, journal, pids)
                return
        finally:
            _stop(proc)
    raise AssertionError(f"{APP} did not start: {log_path.read_text(encoding='utf-8')}")


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """One emulator process for the module; each test resets it."""
    with emulator_process() as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, emulator_url: str) -> Iterator[App]:
    """One application process for the module's tests that do not stop it."""
    with run_app(tmp_path_factory.mktemp("otp"), emulator_url) as running:
        yield running
        log = running.log()
    assert "Traceback" not in log, log
    assert DEFAULT_API_KEY not in log


@pytest.fixture
async def emulator(emulator_url: str) -> AsyncIterator[RemoteFakeVairo]:
    """The emulator, reset: no messages, requests or faults."""
    async with RemoteFakeVairo(emulator_url, api_key=DEFAULT_API_KEY) as remote:
        await remote.reset()
        yield remote


@contextlib.asynccontextmanager
async def caller(app: App, *, reuse_connections: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the application, as its callers use it (100 connections)."""
    limits = httpx.Limits(
        max_connections=100,
        max_keepalive_connections=100 if reuse_connections else 0,
    )
    async with httpx.AsyncClient(
        base_url=app.url, limits=limits, timeout=60.0, trust_env=False
    ) as client:
        yield client


async def post_otp(
    client: httpx.AsyncClient, phone: str, code: str = "123456", key: str | None = None
) -> httpx.Response:
    """POST /otp, with an `Idempotency-Key` header when `key` is given."""
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/otp", json={"phone": phone, "code": code}, headers=headers)


#: Seconds between two polls of the emulator (another process: there is no event to await).
POLL_INTERVAL = 0.01


class SentTo(Protocol):
    """What `until_accepted` polls: `RemoteFakeVairo.sent_to`."""

    async def sent_to(self, dest: str) -> Sequence[object]: ...


async def until_accepted(emulator: SentTo, dest: str) -> None:
    """Poll the emulator, every `POLL_INTERVAL`, until it has accepted a message to `dest`."""
    deadline = time.monotonic() + 30
    while not await emulator.sent_to(dest):
        assert time.monotonic() < deadline, f"no message to {dest} reached the emulator"
        await asyncio.sleep(POLL_INTERVAL)


async def test_until_accepted_pauses_between_polls() -> None:
    class Emulator:
        def __init__(self) -> None:
            self.polled_at: list[float] = []

        async def sent_to(self, dest: str) -> list[str]:
            self.polled_at.append(time.monotonic())
            return [dest] if len(self.polled_at) == 4 else []

    emulator = Emulator()
    await until_accepted(emulator, "5321112233")
    gaps = [b - a for a, b in itertools.pairwise(emulator.polled_at)]
    assert len(gaps) == 3
    assert min(gaps) >= POLL_INTERVAL * 0.9  # the loop's clock may round a little


def numbers(count: int, prefix: str = "532") -> list[str]:
    """`count` distinct mobile numbers in wire form."""
    return [f"{prefix}{i:07d}" for i in range(count)]


async def test_500_requests_at_100_concurrent_send_one_sms_each(
    app: App, emulator: RemoteFakeVairo
) -> None:
    phones = numbers(500)
    limit = asyncio.Semaphore(100)

    async def one(i: int, client: httpx.AsyncClient) -> httpx.Response:
        async with limit:
            return await post_otp(client, phones[i], code=f"{i:06d}", key=f"load-{i}")

    async with caller(app) as client, asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(i, client)) for i in range(500)]
    answers = [task.result() for task in tasks]

    failed = [(i, answer.status_code, answer.text) for i, answer in enumerate(answers)]
    failed = [answer for answer in failed if answer[1] != 202]
    assert not failed, (failed, app.log())
    assert not any(answer.json()["replayed"] for answer in answers)
    messages = await emulator.messages()
    assert sorted(message.dest for message in messages) == phones
    assert await emulator.duplicates() == {}
    assert await emulator.request_count(endpoint="send") == 500
    by_dest = {message.dest: message for message in messages}
    for i, answer in enumerate(answers):
        message = by_dest[phones[i]]
        assert answer.json()["package_id"] == message.package_id
        assert message.text == f"Doğrulama kodunuz: {i:06d}"
        assert message.sender == "ACME"


async def test_the_same_key_twice_sends_once(app: App, emulator: RemoteFakeVairo) -> None:
    async with caller(app) as client:
        first = await post_otp(client, "0532 111 22 33", key="twice")
        second = await post_otp(client, "0532 111 22 33", key="twice")

    assert first.status_code == second.status_code == 202
    assert first.json() == {"package_id": first.json()["package_id"], "replayed": False}
    assert second.json() == {"package_id": first.json()["package_id"], "replayed": True}
    assert len(await emulator.sent_to("5321112233")) == 1
    assert await emulator.request_count(endpoint="send") == 1


async def test_the_same_key_while_in_flight_is_409_and_sends_once(
    app: App, emulator: RemoteFakeVairo
) -> None:
    await emulator.inject(Fault.latency(3.0))  # accepted at once, answered 3 s later
    async with caller(app) as client:
        first = asyncio.create_task(post_otp(client, "5321112233", key="in-flight"))
        await until_accepted(emulator, "5321112233")
        during = await post_otp(client, "5321112233", key="in-flight")
        first_answer = await first
        after = await post_otp(client, "5321112233", key="in-flight")

    assert during.status_code == 409
    assert during.headers["Retry-After"] == "1"
    assert during.json()["error"] == "SendInProgressError"
    assert first_answer.status_code == after.status_code == 202
    assert after.json() == {**first_answer.json(), "replayed": True}
    assert len(await emulator.sent_to("5321112233")) == 1


async def test_the_same_key_concurrently_sends_once(app: App, emulator: RemoteFakeVairo) -> None:
    async with caller(app, reuse_connections=False) as client:
        answers = await asyncio.gather(
            *(post_otp(client, "5321112233", key="concurrent") for _ in range(20))
        )

    assert {answer.status_code for answer in answers} <= {202, 409}
    sent = [a.json() for a in answers if a.status_code == 202 and not a.json()["replayed"]]
    [message] = await emulator.sent_to("5321112233")
    assert sent == [{"package_id": message.package_id, "replayed": False}]
    replayed = [a.json() for a in answers if a.status_code == 202 and a.json()["replayed"]]
    assert all(body["package_id"] == message.package_id for body in replayed)


async def test_a_drop_after_accept_is_502_do_not_resend(
    app: App, emulator: RemoteFakeVairo
) -> None:
    await emulator.inject(Fault.drop_after_accept())
    async with caller(app) as client:
        dropped = await post_otp(client, "5321112233", key="dropped")
        again = await post_otp(client, "5321112233", key="dropped")

    for answer in (dropped, again):
        assert answer.status_code == 502
        assert "do not resend" in answer.json()["detail"]
        assert answer.json()["error"] == "OutcomeUnknownError"
    # It went out once; the journal keeps the key UNKNOWN, so the retry sent nothing.
    assert len(await emulator.sent_to("5321112233")) == 1
    assert await emulator.request_count(endpoint="send") == 1


async def test_a_long_rate_limit_is_503_with_retry_after(
    app: App, emulator: RemoteFakeVairo
) -> None:
    # Longer than the client's Retry-After cap: not waited for, raised with `retry_after`.
    await emulator.inject(Fault.rate_limit(retry_after=3600))
    async with caller(app) as client:
        limited = await post_otp(client, "5321112233", key="limited")
        later = await post_otp(client, "5321112233", key="limited")

    assert limited.status_code == 503
    assert limited.headers["Retry-After"] == "3600"
    assert limited.json() == {
        "detail": "the SMS was not sent; retry later",
        "error": "RateLimitError",
    }
    # Certainly not sent, so the key was released: the retry sends.
    assert later.status_code == 202
    assert later.json()["replayed"] is False
    assert len(await emulator.sent_to("5321112233")) == 1


async def test_bad_input_is_422_and_nothing_is_sent(app: App, emulator: RemoteFakeVairo) -> None:
    async with caller(app) as client:
        landline = await post_otp(client, "0212 555 12 34", key="landline")
        bad_code = await post_otp(client, "5321112233", code="12ab", key="bad-code")
        long_key = await post_otp(client, "5321112233", key="k" * 256)
        sent = await post_otp(client, "5321112233", code="1111", key="reused")
        reused = await post_otp(client, "5321112233", code="2222", key="reused")

    assert landline.status_code == 422
    assert landline.json()["error"] == "InvalidRequestError"
    assert "'0212 555 12 34'" in landline.json()["detail"][0]
    assert bad_code.status_code == 422  # FastAPI's own check of the body
    assert long_key.status_code == 422
    assert "idempotency_key" in long_key.json()["detail"][0]
    assert sent.status_code == 202
    assert reused.status_code == 422
    assert reused.json()["error"] == "IdempotencyKeyReusedError"
    [message] = await emulator.messages()
    assert message.text == "Doğrulama kodunuz: 1111"


async def test_without_a_key_each_request_sends(app: App, emulator: RemoteFakeVairo) -> None:
    async with caller(app) as client:
        answers = [await post_otp(client, "5321112233") for _ in range(2)]

    assert [answer.status_code for answer in answers] == [202, 202]
    assert len(await emulator.sent_to("5321112233")) == 2


async def test_shutdown_waits_for_the_send_then_closes_the_client(
    tmp_path: Path, emulator_url: str, emulator: RemoteFakeVairo
) -> None:
    await emulator.inject(Fault.latency(1.0))
    with run_app(tmp_path, emulator_url) as running:
        async with caller(running) as client:
            in_flight = asyncio.create_task(post_otp(client, "5321112233", key="at-shutdown"))
            await until_accepted(emulator, "5321112233")
            running.process.terminate()
            answer = await in_flight
        status = await asyncio.to_thread(running.process.wait, 30)
        log = running.log()

    assert answer.status_code == 202
    # uvicorn ends by raising the signal again once shut down, so its parent sees it.
    assert status == -signal.SIGTERM, log
    assert log.count(CLOSED_LINE) == 1, log
    # Closed after the server stopped taking requests, and before the process ended.
    assert log.index("Shutting down") < log.index(CLOSED_LINE) < log.index("Finished server")
    assert "Traceback" not in log
    assert "Unclosed" not in log
    async with SqliteJournal(running.journal_path) as journal:
        record = await journal.get(send_key("at-shutdown"))
    assert record is not None
    assert record.state is RecordState.SENT
    assert record.package_id == answer.json()["package_id"]


async def test_two_workers_share_the_journal_and_send_each_key_once(
    tmp_path: Path, emulator_url: str, emulator: RemoteFakeVairo
) -> None:
    phones = numbers(50, prefix="533")
    with run_app(tmp_path, emulator_url, workers=2) as running:
        assert len(running.pids) == 2
        # A new connection per request, so the two requests of a key meet different workers.
        async with caller(running, reuse_connections=False) as client:
            twice = await asyncio.gather(
                *(post_otp(client, phone, key=f"w-{phone}") for phone in phones for _ in "ab")
            )
            again = await asyncio.gather(*(post_otp(client, p, key=f"w-{p}") for p in phones))
        _stop(running.process)
        log = running.log()

    messages = await emulator.messages()
    assert sorted(message.dest for message in messages) == phones
    ids = {message.dest: message.package_id for message in messages}
    for i, phone in enumerate(phones):
        pair = twice[2 * i : 2 * i + 2]
        assert {answer.status_code for answer in pair} <= {202, 409}
        first = [a.json() for a in pair if a.status_code == 202 and not a.json()["replayed"]]
        assert first == [{"package_id": ids[phone], "replayed": False}]
        assert again[i].json() == {"package_id": ids[phone], "replayed": True}
    assert log.count(CLOSED_LINE) == 2, log
    assert "Traceback" not in log


def test_without_an_api_key_the_app_does_not_start(tmp_path: Path, emulator_url: str) -> None:
    env = app_environment(tmp_path, emulator_url)
    del env["VAIRO_API_KEY"]
    log_path = tmp_path / "uvicorn.log"
    with start_uvicorn(env, _free_port(), log_path) as proc:
        status = proc.wait(timeout=60)
    log = log_path.read_text(encoding="utf-8")

    assert status != 0
    assert "vairo_async.ConfigurationError" in log
    assert "VAIRO_API_KEY" in log
    assert "Application startup failed" in log
