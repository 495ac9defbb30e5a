"""`FakeVairo`: an in-memory VairoSMS as a plain ASGI application."""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
import types
import urllib.parse
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
import httpx

from .. import _endpoints as api
from .._constants import ISTANBUL
from .._segments import segments
from . import _responses as r
from . import _texts as t
from ._control import answer as control_answer
from ._control import control_name
from ._faults import DropConnection, Endpoint, Fault, FaultKind, FaultPlan, RandomFaults, Target
from ._state import Ledger, Outcome, Package, RequestRecord, SentMessage
from ._validate import Invalid, parse_send

__all__ = ["DEFAULT_API_KEY", "DEFAULT_PREFIX", "DROP_EXTENSION", "FakeVairo"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_API_KEY = "test-api-key"
"""The key a `FakeVairo` accepts unless told otherwise."""
DEFAULT_PREFIX = "/Panel/api/v1/"
"""Path prefix of both endpoints, as on vairosms.com."""
DROP_EXTENSION = "vairo_async.drop"
"""Scope extension set by the in-process transport: it can drop before any response starts."""

_IN_PROCESS_HOST = "https://fake-vairo.test"
# The emulator's own short names of the endpoints, as faults and records use them.
_KEYS: dict[str, Endpoint] = {api.SEND.name: "send", api.REPORT.name: "report"}
_DROP_BEFORE_LENGTH = 64


def _istanbul_now() -> datetime:
    return datetime.now(ISTANBUL)


def _check_prefix(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not (value.startswith("/") and value.endswith("/")):
        raise ValueError(f"prefix must start and end with '/', not {value!r}")


@attrs.define(kw_only=True)
class FakeVairo:
    """An in-memory VairoSMS answering SmsGonder and GonderimBilgisi as the real service does.

    It records every accepted message, moves packages from SENDING (0) to COMPLETED (1), or
    FAILED (-1) with a `log`, and injects faults on demand. Run it in-process with
    `transport()` or on a loopback port with `serve()`. Under `{prefix}_emulator/` it also
    answers control endpoints, for `RemoteFakeVairo` to inspect and steer it from elsewhere.

    Life cycle: each package's rule is fixed when it is accepted. With
    `complete_after_seconds` set, the package turns final at the first report poll at least
    that many seconds (on `clock`) after acceptance; a callable gets the `Package` and returns
    its own delay. Otherwise, with `complete_after_polls=n`, the first `n` report polls answer
    SENDING and poll `n + 1` and later answer the final status (`n=0`: the first poll already
    sees it final; the default `n=1`: one SENDING answer, then final). Both None: it stays
    SENDING for ever. Only polls answered with the package's report count.

    Args:
        api_key: The only key accepted; others get HTTP 401.
        prefix: Path prefix of both endpoints.
        complete_after_polls: Poll rule, see above.
        complete_after_seconds: Time rule, see above; when set it replaces the poll rule.
        validity: `gecerlilik_suresi`; `sonlanma_zamani` is `created_at` plus this.
        fail_senders: Senders whose packages are accepted, then FAILED with
            INVALID_SOURCE_ADDRESS.
        fail_destinations: Numbers that make their package FAILED with
            INVALID_DESTINATION_ADDRESS.
        fail_when: Custom failure rule: gets the new `Package`, returns an error code or None.
        allowed_senders: If given, other senders are refused with HTTP 400.
        latency: Seconds to wait before every answer.
        random_faults: Faults drawn at random for each request.
        ids_as_strings: Send package ids as digit strings, as the service sometimes does.
        first_package_id: Id of the first accepted package.
        clock: Monotonic seconds for the time rule (inject one to move time in tests).
        now: Wall-clock time of acceptance (`created_at`); naive values count as Istanbul time.

    .. versionadded:: 0.1.0
    """

    api_key: str = DEFAULT_API_KEY
    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_check_prefix)
    complete_after_polls: int | None = 1
    complete_after_seconds: float | Callable[[Package], float] | None = None
    validity: timedelta = timedelta(hours=24)
    fail_senders: Collection[str] = frozenset()
    fail_destinations: Collection[str] = frozenset()
    fail_when: Callable[[Package], str | None] | None = None
    allowed_senders: Collection[str] | None = None
    latency: float = 0.0
    _random_faults: RandomFaults | None = attrs.field(default=None, alias="random_faults")
    ids_as_strings: bool = False
    first_package_id: int = 1
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _istanbul_now
    _ledger: Ledger = attrs.field(init=False, factory=Ledger, repr=False)
    _faults: FaultPlan = attrs.field(init=False, factory=FaultPlan, repr=False)
    _issued: int = attrs.field(init=False, default=0, repr=False)
    _next_log_id: int = attrs.field(init=False, default=1, repr=False)
    _active: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    _peak: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)

    def __attrs_post_init__(self) -> None:
        self._faults.set_random(self._random_faults)

    # -- records -------------------------------------------------------------------------------

    @property
    def packages(self) -> Mapping[int, Package]:
        """Accepted packages by id (read-only view)."""
        return types.MappingProxyType(self._ledger.packages)

    @property
    def messages(self) -> tuple[SentMessage, ...]:
        """Every accepted message, in order of acceptance."""
        return tuple(self._ledger.messages)

    @property
    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request seen, in order of arrival."""
        return tuple(self._ledger.requests)

    def sent_to(self, dest: str) -> list[SentMessage]:
        """Messages accepted for the 10-digit number `dest`, oldest first."""
        return self._ledger.sent_to(dest)

    def peak_concurrency(self, endpoint: str = "send") -> int:
        """Most requests to `endpoint` ("send" or "report") that were in progress at once."""
        return self._peak[endpoint]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """`(dest, text)` pairs accepted more than once; `{}` means no SMS was sent twice."""
        return self._ledger.duplicates()

    def request_count(self, endpoint: str | None = None, outcome: str | None = None) -> int:
        """Requests seen, filtered by `endpoint` ("send", "report", "other") and `outcome`."""
        return self._ledger.request_count(endpoint, outcome)

    def complete_now(self, package_id: int | None = None) -> None:
        """Make one package (or every package) final now, whatever its rule."""
        chosen = (
            self._ledger.packages.values()
            if package_id is None
            else [self._ledger.packages[package_id]]
        )
        for package in chosen:
            package.finish()

    def reset(self) -> None:
        """Forget packages, messages, requests, faults and peaks; ids continue where they were."""
        self._ledger.clear()
        self.clear_faults()
        self._peak.clear()

    # -- faults --------------------------------------------------------------------------------

    def inject(self, fault: Fault, *, endpoint: Target = "send", times: int = 1) -> None:
        """Give the next `times` requests to `endpoint` ("send", "report", "both") `fault`.

        Scripted faults are used in the order injected, before any random fault.
        """
        self._faults.inject(fault, endpoint=endpoint, times=times)

    def set_random_faults(self, faults: RandomFaults | None) -> None:
        """Replace the random faults (None: no more), reseeding the generator."""
        self._random_faults = faults
        self._faults.set_random(faults)

    @property
    def random_faults(self) -> RandomFaults | None:
        """The random faults in force."""
        return self._random_faults

    @property
    def pending_faults(self) -> int:
        """Scripted faults not yet used."""
        return self._faults.pending

    def clear_faults(self) -> None:
        """Forget scripted and random faults."""
        self._random_faults = None
        self._faults.clear()

    # -- ways to run ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """A base URL for clients using `transport()`; its host is never resolved."""
        return _IN_PROCESS_HOST + self.prefix

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that runs requests against this emulator in-process."""
        from ._transport import FakeTransport

        return FakeTransport(self)

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, allow_non_loopback: bool = False
    ) -> AbstractAsyncContextManager[str]:
        """Serve on a real socket with uvicorn; the context yields the base URL."""
        from ._server import serve

        return serve(self, host=host, port=port, allow_non_loopback=allow_non_loopback)

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        control = control_name(scope["path"], self.prefix)
        if control is not None:
            await _respond(send, control_answer(self, control, scope, body))
            return
        described, path_args = self._route(scope["path"])
        if described is None:
            self._record("other", Outcome.NOT_FOUND, 404)
            await _respond(send, r.error(404, t.UNKNOWN_PATH))
            return
        endpoint = _KEYS[described.name]
        self._active[endpoint] += 1
        self._peak[endpoint] = max(self._peak[endpoint], self._active[endpoint])
        try:
            await self._endpoint(scope, receive, send, described, path_args, body)
        finally:
            self._active[endpoint] -= 1

    async def _endpoint(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        described: api.Endpoint[object],
        path_args: Mapping[str, str],
        body: bytes,
    ) -> None:
        endpoint = _KEYS[described.name]
        expected = described.method
        if scope["method"] != expected:
            self._record(endpoint, Outcome.METHOD_NOT_ALLOWED, 405)
            answer = r.error(405, t.WRONG_METHOD)
            await _respond(send, answer.with_header("allow", expected))
            return

        fault = self._faults.pick(endpoint)
        if fault is not None and not fault.accepted:
            await self._fail(scope, receive, send, endpoint, fault, None, None)
            return
        answer, outcome, package_id = self._handle(scope, described, path_args, body)
        if fault is not None and fault.kind is not FaultKind.LATENCY:
            await self._fail(scope, receive, send, endpoint, fault, answer, package_id)
            return
        kind = fault.kind if fault is not None else None
        self._record(endpoint, outcome, answer.status, kind, package_id)
        delay = self.latency + (fault.seconds if fault is not None else 0.0)
        if await _still_there(delay, receive):
            await _respond(send, answer)

    def _route(self, path: str) -> tuple[api.Endpoint[object] | None, dict[str, str]]:
        """The endpoint `path` names, with its path arguments."""
        if path.startswith(self.prefix):
            rest = path[len(self.prefix) :]
            for described in api.ENDPOINTS:
                if (path_args := described.match(rest)) is not None:
                    return described, path_args
        return None, {}

    def _handle(
        self,
        scope: Scope,
        described: api.Endpoint[object],
        path_args: Mapping[str, str],
        body: bytes,
    ) -> tuple[r.Answer, Outcome, int | None]:
        if not self._authorised(scope):
            return r.error(401, t.UNAUTHORIZED), Outcome.UNAUTHORIZED, None
        if described is api.SEND:
            return self._handle_send(scope, body)
        return self._handle_report(path_args["package_id"])

    def _handle_send(self, scope: Scope, body: bytes) -> tuple[r.Answer, Outcome, int | None]:
        parsed = parse_send(body, allowed_senders=self.allowed_senders)
        if isinstance(parsed, Invalid):
            return r.error(400, parsed.message), Outcome.REJECTED, None
        package = self._accept(scope, parsed.sender, parsed.tr_char, parsed.messages)
        return r.success(self._wire_id(package.package_id)), Outcome.ACCEPTED, package.package_id

    def _handle_report(self, package_ref: str) -> tuple[r.Answer, Outcome, int | None]:
        found = self._ledger.packages.get(int(package_ref)) if package_ref.isdigit() else None
        if found is None:
            return r.error(404, t.UNKNOWN_PACKAGE), Outcome.NOT_FOUND, None
        found.polls += 1
        found.settle(self.clock())
        report = r.report_body(found, validity=self.validity, id_as_string=self.ids_as_strings)
        return r.success(report), Outcome.OK, found.package_id

    def _authorised(self, scope: Scope) -> bool:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("api_key", [""])[0]
        return secrets.compare_digest(given.encode(), self.api_key.encode())

    def _accept(
        self, scope: Scope, sender: str, tr_char: bool | None, rows: tuple[tuple[str, str], ...]
    ) -> Package:
        package_id = self.first_package_id + self._issued
        self._issued += 1
        timed = self.complete_after_seconds
        package = Package(
            package_id=package_id,
            sender=sender,
            tr_char=tr_char,
            messages=tuple(
                SentMessage(package_id, dest, text, sender, tr_char) for dest, text in rows
            ),
            # A body without tr_char means false: the SDK leaves it out exactly then.
            credits=sum(segments(text, tr_char=bool(tr_char)).count for _, text in rows),
            created_at=self.now(),
            accepted_at=self.clock(),
            complete_after_polls=self.complete_after_polls if timed is None else None,
            route=_route_url(scope),
            client_ip=(scope.get("client") or ("",))[0],
        )
        if timed is not None:
            package.final_at = package.accepted_at + (timed(package) if callable(timed) else timed)
        package.failure_code = self._failure_code(package)
        if package.failure_code is not None:
            package.log_id = self._next_log_id
            self._next_log_id += 1
        self._ledger.add_package(package)
        return package

    def _failure_code(self, package: Package) -> str | None:
        if package.sender in self.fail_senders:
            return "INVALID_SOURCE_ADDRESS"
        if any(message.dest in self.fail_destinations for message in package.messages):
            return "INVALID_DESTINATION_ADDRESS"
        return self.fail_when(package) if self.fail_when is not None else None

    def _wire_id(self, package_id: int) -> int | str:
        return str(package_id) if self.ids_as_strings else package_id

    async def _fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: Endpoint,
        fault: Fault,
        answer: r.Answer | None,
        package_id: int | None,
    ) -> None:
        """Answer with `fault` instead of `answer` (the normal answer, when it was handled)."""
        if fault.kind in (FaultKind.DROP_BEFORE_ACCEPT, FaultKind.DROP_AFTER_ACCEPT):
            self._record(endpoint, Outcome.DROPPED, None, fault.kind, package_id)
            if await _still_there(self.latency, receive):
                await _drop(scope, send, answer)
            return
        if fault.kind is FaultKind.RATE_LIMIT:
            failure, outcome = r.error(429, t.RATE_LIMITED), Outcome.RATE_LIMITED
        elif fault.kind is FaultKind.HTML_PAGE:
            failure, outcome = r.html_page(fault.status or 502), Outcome.HTML_PAGE
        else:
            failure, outcome = r.server_error(fault.status or 500), Outcome.SERVER_ERROR
        if fault.retry_after is not None:
            failure = failure.with_header("retry-after", _retry_after(fault.retry_after))
        self._record(endpoint, outcome, failure.status, fault.kind, package_id)
        if await _still_there(self.latency, receive):
            await _respond(send, failure)

    def _record(
        self,
        endpoint: str,
        outcome: Outcome,
        status: int | None,
        fault: FaultKind | None = None,
        package_id: int | None = None,
    ) -> None:
        self._ledger.requests.append(
            RequestRecord(endpoint, outcome, status, fault, package_id, at=self.clock())
        )


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _route_url(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host and scope.get("server"):
        server_host, server_port = scope["server"]
        host = f"{server_host}:{server_port}"
    return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _still_there(delay: float, receive: Receive) -> bool:
    """Wait `delay` seconds; False if the client disconnected meanwhile."""
    if delay <= 0:
        return True
    waiter = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=delay)
    finally:
        waiter.cancel()
    return not (waiter in done and waiter.result()["type"] == "http.disconnect")


async def _respond(send: Send, answer: r.Answer) -> None:
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _drop(scope: Scope, send: Send, answer: r.Answer | None) -> None:
    """Make the server close the connection, as a crash or a network cut would.

    A real ASGI server answers 500 when an app fails before starting its response, so unless
    the in-process transport says it can drop earlier, the headers go out first (with the
    length of a body that never follows) and the connection closes before the body.
    """
    if answer is None and DROP_EXTENSION in scope.get("extensions", {}):
        raise DropConnection(response_started=False)
    if answer is None:
        answer = r.Answer(200, b" " * _DROP_BEFORE_LENGTH)
    headers = (*answer.headers, (b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": list(headers)})
    raise DropConnection(
        response_started=True, status=answer.status, headers=headers, length=len(answer.body)
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
