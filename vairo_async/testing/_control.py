"""The emulator's control endpoints: its records, fault injection, life cycle and reset over HTTP.

They live under `{prefix}_emulator/`, beside SmsGonder and GonderimBilgisi, so a process that
knows the emulator's base URL knows where to steer it. Each one mirrors a `FakeVairo` method
of the same name; `RemoteFakeVairo` is their client. A request needs the emulator's API key as
`Authorization: Bearer <key>`; control requests are not recorded among `requests` and no fault
or latency applies to them.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from . import _responses as r
from ._codec import (
    BadInput,
    CompleteRequest,
    DuplicateRow,
    InjectRequest,
    decode,
    encode,
    records_of,
)
from ._faults import RandomFaults
from ._state import Outcome

if TYPE_CHECKING:
    from ._app import FakeVairo, Scope

__all__ = ["CONTROL_DIR", "ENDPOINTS", "answer", "control_name"]

CONTROL_DIR = "_emulator"
"""The control endpoints' directory, right under the API prefix."""

_Query = Mapping[str, str]
_Handler = Callable[["FakeVairo", _Query, bytes], Any]

_JSON = (b"content-type", b"application/json")
_NOTHING = object()


class _NoPackage(Exception):
    def __init__(self, package_id: int | None) -> None:
        super().__init__(package_id)
        self.package_id = package_id


@attrs.frozen
class _Endpoint:
    method: str
    handler: _Handler
    params: frozenset[str] = frozenset()


def control_name(path: str, prefix: str) -> str | None:
    """The control endpoint `path` names ("" for the directory itself), or None: not control."""
    base = prefix + CONTROL_DIR
    if path == base:
        return ""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :].rstrip("/")
    return None


def _authorised(scope: Scope, api_key: str) -> bool:
    headers = dict(scope.get("headers") or [])
    scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(given.strip().encode(), api_key.encode())


def _json(status: int, payload: Any) -> r.Answer:
    return r.Answer(status, encode(payload), (_JSON,))


def _error(status: int, message: str) -> r.Answer:
    return _json(status, {"error": message})


def answer(fake: FakeVairo, name: str, scope: Scope, body: bytes) -> r.Answer:
    """The answer to one control request for endpoint `name`."""
    if not _authorised(scope, fake.api_key):
        refusal = _error(401, "send the emulator's API key as 'Authorization: Bearer <key>'")
        return refusal.with_header("www-authenticate", 'Bearer realm="vairo-emulator"')
    endpoint = ENDPOINTS.get(name)
    if endpoint is None:
        return _error(404, f"no control endpoint {name!r}; there are {', '.join(ENDPOINTS)}")
    if scope["method"] != endpoint.method:
        refusal = _error(405, f"{name} takes {endpoint.method}, not {scope['method']}")
        return refusal.with_header("allow", endpoint.method)
    try:
        query = _query(scope, endpoint.params)
        result = endpoint.handler(fake, query, body)
    except BadInput as exc:
        return _error(400, str(exc))
    except _NoPackage as exc:
        return _error(404, f"no package {exc.package_id!r}")
    if result is _NOTHING:
        return r.Answer(204, b"", ())
    return _json(200, result)


def _query(scope: Scope, allowed: frozenset[str]) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
        if name not in allowed:
            wanted = ", ".join(sorted(allowed)) or "none"
            raise BadInput(f"unknown query parameter {name!r} (this endpoint takes: {wanted})")
        query[name] = value
    return query


def _choice(query: _Query, name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is not None and value not in choices:
        raise BadInput(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _records(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return records_of(fake)


def _messages(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return fake.messages


def _packages(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return tuple(fake.packages.values())


def _requests(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return fake.requests


def _sent_to(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    if "dest" not in query:
        raise BadInput("sent_to needs the query parameter dest, the 10-digit number")
    return fake.sent_to(query["dest"])


def _duplicates(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return [DuplicateRow(dest, text, n) for (dest, text), n in fake.duplicates().items()]


def _request_count(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    endpoint = _choice(query, "endpoint", ("send", "report", "other"))
    outcome = _choice(query, "outcome", tuple(Outcome))
    return fake.request_count(endpoint, outcome)


def _peak_concurrency(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return fake.peak_concurrency(_choice(query, "endpoint", ("send", "report")) or "send")


def _pending_faults(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return fake.pending_faults


def _random_faults(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    return fake.random_faults


def _inject(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    request: InjectRequest = decode(body, InjectRequest)
    try:
        fake.inject(request.fault, endpoint=request.endpoint, times=request.times)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return _NOTHING


def _set_random_faults(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    faults: RandomFaults | None = None
    if body.strip() not in (b"", b"null"):
        faults = decode(body, RandomFaults)
    fake.set_random_faults(faults)
    return _NOTHING


def _clear_faults(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    fake.clear_faults()
    return _NOTHING


def _complete_now(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    request: CompleteRequest = decode(body, CompleteRequest)
    try:
        fake.complete_now(request.package_id)
    except KeyError:
        raise _NoPackage(request.package_id) from None
    return _NOTHING


def _reset(fake: FakeVairo, query: _Query, body: bytes) -> Any:
    fake.reset()
    return _NOTHING


ENDPOINTS: dict[str, _Endpoint] = {
    "records": _Endpoint("GET", _records),
    "messages": _Endpoint("GET", _messages),
    "packages": _Endpoint("GET", _packages),
    "requests": _Endpoint("GET", _requests),
    "sent_to": _Endpoint("GET", _sent_to, frozenset({"dest"})),
    "duplicates": _Endpoint("GET", _duplicates),
    "request_count": _Endpoint("GET", _request_count, frozenset({"endpoint", "outcome"})),
    "peak_concurrency": _Endpoint("GET", _peak_concurrency, frozenset({"endpoint"})),
    "pending_faults": _Endpoint("GET", _pending_faults),
    "random_faults": _Endpoint("GET", _random_faults),
    "inject": _Endpoint("POST", _inject),
    "set_random_faults": _Endpoint("POST", _set_random_faults),
    "clear_faults": _Endpoint("POST", _clear_faults),
    "complete_now": _Endpoint("POST", _complete_now),
    "reset": _Endpoint("POST", _reset),
}
"""Control endpoints by name, each named after the `FakeVairo` member it mirrors."""
