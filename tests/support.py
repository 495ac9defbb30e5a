"""What the test modules share: the test key, the API document's samples, `Recorder`, and
journals on every store (`open_store`) or misbehaving on purpose (`Hooked`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import attrs
import httpx
import pytest

from vairo_async import (
    AsyncVairoClient,
    Claim,
    Journal,
    JournalRecord,
    JournalUnavailableError,
    MemoryJournal,
    RecordState,
    RedisJournal,
    SqliteJournal,
)
from vairo_async.testing import FakeVairo, Fault

__all__ = [
    "API_KEY",
    "DATA",
    "LEASE",
    "ROOT",
    "SHORT_LEASE",
    "FakeClock",
    "Hooked",
    "Raise",
    "Recorder",
    "Reply",
    "Step",
    "accept_package",
    "emulator",
    "held",
    "journaled_client",
    "load_sample",
    "open_store",
]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
API_KEY = "sk-live-S3CR3T-0123456789abcdef"

# Journaled clients whose claims must be renewed: a lease of 5 s outlasts one attempt and its
# wait (a 1 s timeout, waits of 1 s at most), and a send retried over many seconds outlives it.
LEASE = 5.0
SHORT_LEASE: dict[str, object] = {
    "journal_lease": LEASE,
    "timeout": 1,
    "retry_backoff": 0,
    "retry_backoff_max": 0,
    "retry_after_max": 1,
    "max_retries": 3,
}


def load_sample(name: str) -> Any:
    """A sample answer copied verbatim from the GonderimBilgisi API document."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


async def accept_package(fake: FakeVairo, dest: str = "5399999999", text: str = "x") -> int:
    """Have `fake` accept a one-message package (bypassing any `Recorder`); its id."""
    async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url) as http:
        body = {"baslik": "ACME", "mesajlar": [{"msg": text, "dest": dest}]}
        answer = await http.post("SmsGonder", params={"api_key": fake.api_key}, json=body)
    package_id: int = answer.json()["aciklama"]
    return package_id


@contextlib.contextmanager
def emulator(*options: str, api_key: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m vairo_async.testing` on a free loopback port: its process and base URL.

    The process is interrupted (SIGINT) on leaving unless it has ended; a test that checks
    how it ends signals it and reads `communicate()` itself.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-W", "error", "-m", "vairo_async.testing", "--port", "0"]
    with subprocess.Popen(
        [*command, "--api-key", api_key, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            url_line = process.stdout.readline().strip()
            assert url_line.startswith("VAIRO_BASE_URL=http://127.0.0.1:"), url_line
            assert process.stdout.readline().strip() == f"VAIRO_API_KEY={api_key}"
            yield process, url_line.partition("=")[2]
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)


@attrs.frozen
class Raise:
    """One request fails on the client's side with `error`, as the network would fail it.

    Before the emulator (`after=False`): the request never arrives, as with a refused
    connection. After it (`after=True`): the emulator handles and records the request, and
    its answer is lost.
    """

    error: type[Exception]
    after: bool = False

    def exception(self, request: httpx.Request) -> Exception:
        """The exception to raise for `request`."""
        if issubclass(self.error, httpx.RequestError):
            return self.error("scripted failure", request=request)
        return self.error("scripted failure")


@attrs.frozen
class Reply:
    """One request is answered in front of the emulator (a proxy's page, a mangled body).

    Before the emulator (`after=False`): the request never arrives. After it (`after=True`):
    the emulator handles and records the request, and this answer replaces its own.
    """

    status: int
    content: bytes = b""
    json: object = None
    headers: dict[str, str] = attrs.field(factory=dict)
    after: bool = False

    def response(self) -> httpx.Response:
        """The answer."""
        if self.json is not None:
            return httpx.Response(self.status, json=self.json, headers=self.headers)
        return httpx.Response(self.status, content=self.content, headers=self.headers)


Step = Fault | Raise | Reply | None
"""What `Recorder.script` does to one request: a `Fault` is the emulator's own, None nothing."""


class Recorder(httpx.AsyncBaseTransport):
    """`FakeVairo`'s in-process transport, recording what the client side sees.

    Every request goes to the emulator, which answers and records it (assert on
    `fake.requests`, `fake.packages`, `fake.messages`). The recorder adds what only the client
    side knows: `requests`, every request the client made; `started`, when each was made (on
    the event loop's clock, virtual or real); and `in_flight`, how many are under way.
    `script(*steps)` decides the fate of the next requests, one step each, in order (a `Fault`
    is injected into the emulator for that one request); `hold()` stops requests before the
    emulator until `release()`.
    """

    def __init__(self, fake: FakeVairo) -> None:
        self.fake = fake
        self.requests: list[httpx.Request] = []
        self.started: list[float] = []
        self.in_flight = 0
        self._inner = fake.transport()
        self._steps: list[Step] = []
        self._gate: asyncio.Event | None = None
        self._changed: asyncio.Condition | None = None

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the sends the client made, in order."""
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]

    def script(self, *steps: Step) -> None:
        """Queue `steps` for the next requests, one step per request."""
        self._steps.extend(steps)

    def hold(self) -> None:
        """Make requests wait before reaching the emulator, until `release()`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let held requests through."""
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    async def wait_in_flight(self, count: int) -> None:
        """Return once `count` requests are under way at once (held ones included)."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight >= count)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record `request`, apply its scripted step, and let the emulator answer it."""
        self.requests.append(request)
        self.started.append(asyncio.get_running_loop().time())
        step = self._steps.pop(0) if self._steps else None
        self.in_flight += 1
        try:
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()
            if self._gate is not None:
                await self._gate.wait()
            return await self._answer(request, step)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: httpx.Request, step: Step) -> httpx.Response:
        if isinstance(step, Reply) and not step.after:
            return step.response()
        if isinstance(step, Raise) and not step.after:
            raise step.exception(request)
        if isinstance(step, Fault):
            self.fake.inject(step, endpoint="send" if request.method == "POST" else "report")
        response = await self._inner.handle_async_request(request)
        if isinstance(step, Raise | Reply):
            await response.aread()
        if isinstance(step, Raise):
            raise step.exception(request)
        if isinstance(step, Reply):
            return step.response()
        return response

    async def aclose(self) -> None:
        """Close the emulator's transport."""
        await self._inner.aclose()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_store(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Callable[[], Journal]:
    """Opens handles on one store of kind `store` ("memory", "sqlite", "redis")."""
    if store == "memory":
        memory = MemoryJournal(clock=clock)
        return lambda: memory
    if store == "sqlite":
        path = tmp_path / "journal.db"
        return lambda: SqliteJournal(path, clock=clock)
    url = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex}:"
    return lambda: RedisJournal(url, prefix=prefix, clock=clock)


def held(journal: Journal, method: str) -> tuple[Hooked, asyncio.Event, asyncio.Event]:
    """`journal` with every call of `method` held before it reaches the store.

    Returns the wrapped journal, an event set when a held call starts, and the gate that
    lets the held calls go on when the test sets it.
    """
    started = asyncio.Event()
    gate = asyncio.Event()

    async def hold(name: str, n: int) -> None:
        if name == method:
            started.set()
            await gate.wait()

    return Hooked(journal, before=hold), started, gate


def journaled_client(
    fake: FakeVairo, url: str, journal: Journal | None, **options: Any
) -> AsyncVairoClient:
    """A client of `fake` served at `url`, as sender ACME, recording its sends in `journal`."""
    return AsyncVairoClient(fake.api_key, sender="ACME", base_url=url, journal=journal, **options)


Hook = Callable[[str, int], Any]


class Hooked:
    """A `Journal` that forwards to `inner` and lets a test act around its calls.

    `before(name, n)` and `after(name, n)` are awaited (if they return an awaitable) around
    the n-th call of method `name` (1 for the first); `fail` names the methods that raise
    `JournalUnavailableError` instead of reaching the store. `calls` counts every method.
    """

    def __init__(
        self,
        inner: Journal,
        *,
        before: Hook | None = None,
        after: Hook | None = None,
        fail: Collection[str] = (),
    ) -> None:
        self.inner = inner
        self.before = before
        self.after = after
        self.fail = set(fail)
        self.calls: dict[str, int] = {}
        self._clock = getattr(inner, "_clock", None)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        n = self.calls[name] = self.calls.get(name, 0) + 1
        if self.before is not None and asyncio.iscoroutine(hooked := self.before(name, n)):
            await hooked
        if name in self.fail:
            raise JournalUnavailableError(f"{name} refused by the test")
        result = await getattr(self.inner, name)(*args, **kwargs)
        if self.after is not None and asyncio.iscoroutine(hooked := self.after(name, n)):
            await hooked
        return result

    async def claim(self, key: str, **kwargs: Any) -> Claim:
        result: Claim = await self._call("claim", key, **kwargs)
        return result

    async def renew(self, key: str, **kwargs: Any) -> JournalRecord:
        result: JournalRecord = await self._call("renew", key, **kwargs)
        return result

    async def mark_sent(self, key: str, **kwargs: Any) -> JournalRecord:
        result: JournalRecord = await self._call("mark_sent", key, **kwargs)
        return result

    async def mark_unknown(self, key: str, **kwargs: Any) -> JournalRecord:
        result: JournalRecord = await self._call("mark_unknown", key, **kwargs)
        return result

    async def release(self, key: str, **kwargs: Any) -> None:
        await self._call("release", key, **kwargs)

    async def get(self, key: str) -> JournalRecord | None:
        result: JournalRecord | None = await self._call("get", key)
        return result

    async def records(
        self, *, campaign: str | None = None, states: Collection[RecordState] | None = None
    ) -> list[JournalRecord]:
        result: list[JournalRecord] = await self._call("records", campaign=campaign, states=states)
        return result

    async def unresolved(self, *, campaign: str | None = None) -> list[JournalRecord]:
        result: list[JournalRecord] = await self._call("unresolved", campaign=campaign)
        return result

    async def resolve(self, key: str, **kwargs: Any) -> JournalRecord | None:
        result: JournalRecord | None = await self._call("resolve", key, **kwargs)
        return result

    async def put_campaign(self, campaign: str, header: Mapping[str, Any]) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self._call("put_campaign", campaign, header)
        return result

    async def get_campaign(self, campaign: str) -> Mapping[str, Any] | None:
        result: Mapping[str, Any] | None = await self._call("get_campaign", campaign)
        return result

    async def campaigns(self) -> dict[str, Mapping[str, Any]]:
        result: dict[str, Mapping[str, Any]] = await self._call("campaigns")
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
