"""JSON of the emulator's records and controls: one cattrs converter, shared by both ends.

The control endpoints (`_control`), their client (`_remote`) and `--dump-on-exit` all read and
write these shapes through `converter`, so what one end writes the other reads back equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import cattrs
from cattrs.v import format_exception

from .._wire import dumps, loads
from ._faults import Fault, FaultKind, RandomFaults, Target
from ._state import Package, RequestRecord, SentMessage

if TYPE_CHECKING:
    from ._app import FakeVairo

__all__ = [
    "TARGETS",
    "BadInput",
    "CompleteRequest",
    "DuplicateRow",
    "InjectRequest",
    "Records",
    "converter",
    "decode",
    "dump_records",
    "encode",
    "make_converter",
    "records_of",
]

TARGETS: tuple[Target, ...] = ("send", "report", "both")
"""Values of a fault's `endpoint`."""

# What `{"kind": ...}` alone means: the class method's defaults, so JSON reads like Python.
_KIND_DEFAULTS = {
    FaultKind.LATENCY: Fault.latency(0),
    FaultKind.RATE_LIMIT: Fault.rate_limit(),
    FaultKind.SERVER_ERROR: Fault.server_error(),
    FaultKind.HTML_PAGE: Fault.html_page(),
    FaultKind.DROP_BEFORE_ACCEPT: Fault.drop_before_accept(),
    FaultKind.DROP_AFTER_ACCEPT: Fault.drop_after_accept(),
}
_FAULT_FIELDS = ("status", "seconds", "retry_after", "accepted")


class BadInput(ValueError):
    """A control request's JSON or query does not say something the emulator can do."""


@attrs.frozen
class InjectRequest:
    """Body of `POST inject`: `FakeVairo.inject`'s arguments."""

    fault: Fault
    endpoint: Target = "send"
    times: int = 1


@attrs.frozen
class CompleteRequest:
    """Body of `POST complete_now`: one package, or every package when `package_id` is null."""

    package_id: int | None = None


@attrs.frozen
class DuplicateRow:
    """One entry of `duplicates()`: a `(dest, text)` pair and how often it was accepted."""

    dest: str
    text: str
    count: int


@attrs.frozen
class Records:
    """Everything the emulator recorded: `GET records` and the `--dump-on-exit` file."""

    messages: tuple[SentMessage, ...]
    packages: tuple[Package, ...]
    requests: tuple[RequestRecord, ...]
    duplicates: tuple[DuplicateRow, ...]
    peak_concurrency: dict[str, int]


def _strict(kind: type[Any], name: str) -> Any:
    def structure(value: object, _: object) -> Any:
        if type(value) is kind:
            return value
        raise BadInput(f"expected {name}, got {value!r}")

    return structure


def _structure_float(value: object, _: object) -> float:
    if type(value) in (int, float):
        return float(value)  # type: ignore[arg-type]
    raise BadInput(f"expected a number, got {value!r}")


def _structure_target(value: object, _: object) -> Target:
    for target in TARGETS:
        if value == target:
            return target
    raise BadInput(f"expected one of {', '.join(TARGETS)}, got {value!r}")


def _structure_datetime(value: object, _: object) -> datetime:
    if type(value) is str:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise BadInput(f"expected an ISO 8601 date and time, got {value!r}")


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadInput(f"{what} must be a JSON object, got {value!r}")
    return value


def _unstructure_fault(fault: Fault) -> dict[str, Any]:
    base = _KIND_DEFAULTS[fault.kind]
    wire: dict[str, Any] = {"kind": fault.kind.value}
    for name in _FAULT_FIELDS:
        if getattr(fault, name) != getattr(base, name):
            wire[name] = getattr(fault, name)
    return wire


def _retry_after(value: object) -> float | str | None:
    if value is None or type(value) is str:
        return value
    seconds = _structure_float(value, float)
    if seconds < 0:
        raise BadInput(f"retry_after must not be negative, got {value!r}")
    return seconds


def _structure_fault(value: object, _: object) -> Fault:
    data = _object(value, "a fault")
    kinds = ", ".join(kind.value for kind in FaultKind)
    kind = data.get("kind")
    if kind not in {k.value for k in FaultKind}:
        raise BadInput(f"a fault's kind must be one of {kinds}, got {kind!r}")
    extra = sorted(set(data) - {"kind", *_FAULT_FIELDS})
    if extra:
        raise BadInput(
            f"unknown fault field {extra[0]!r}; a fault has kind, status, seconds, "
            "retry_after, accepted"
        )
    given: dict[str, Any] = {}
    if "status" in data:
        status = data["status"]
        given["status"] = None if status is None else _strict(int, "an integer status")(status, int)
    if "seconds" in data:
        given["seconds"] = _structure_float(data["seconds"], float)
    if "retry_after" in data:
        given["retry_after"] = _retry_after(data["retry_after"])
    if "accepted" in data:
        given["accepted"] = _strict(bool, "true or false")(data["accepted"], bool)
    fault = attrs.evolve(_KIND_DEFAULTS[FaultKind(kind)], **given)
    _check_fault(fault)
    return fault


def _check_fault(fault: Fault) -> None:
    """The checks `Fault`'s class methods make, for faults that arrive as JSON."""
    if fault.seconds < 0:
        raise BadInput(f"a fault's seconds must not be negative, got {fault.seconds!r}")
    status = fault.status
    if status is None:
        return
    if fault.kind is FaultKind.SERVER_ERROR and not 500 <= status <= 599:
        raise BadInput(f"a server_error fault needs a 5xx status, got {status}")
    if fault.kind is FaultKind.HTML_PAGE and not 400 <= status <= 599:
        raise BadInput(f"an html_page fault needs a 4xx or 5xx status, got {status}")


def _unstructure_random(faults: RandomFaults) -> dict[str, Any]:
    return {
        "rates": [
            {"fault": _unstructure_fault(fault), "rate": rate}
            for fault, rate in faults.rates.items()
        ],
        "seed": faults.seed,
        "endpoint": faults.endpoint,
    }


def _structure_random(value: object, _: object) -> RandomFaults:
    data = _object(value, "random faults")
    extra = sorted(set(data) - {"rates", "seed", "endpoint"})
    if extra:
        raise BadInput(f"unknown random faults field {extra[0]!r}; use rates, seed, endpoint")
    rows = data.get("rates")
    if not isinstance(rows, list):
        raise BadInput(f"rates must be a list of {{fault, rate}} objects, got {rows!r}")
    rates: dict[Fault, float] = {}
    for row in rows:
        entry = _object(row, "each rate")
        if set(entry) != {"fault", "rate"}:
            raise BadInput(f"each rate has exactly a fault and a rate, got {dict(entry)!r}")
        fault = _structure_fault(entry["fault"], Fault)
        if fault in rates:
            raise BadInput(f"fault {entry['fault']!r} has two rates")
        rates[fault] = _structure_float(entry["rate"], float)
    seed = data.get("seed")
    if seed is not None:
        seed = _strict(int, "an integer seed or null")(seed, int)
    endpoint = _structure_target(data.get("endpoint", "both"), Target)
    try:
        return RandomFaults(rates, seed=seed, endpoint=endpoint)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def configure_converter(c: cattrs.Converter) -> None:
    """Teach `c` the JSON of the emulator's records and controls.

    - int, str, bool: only that JSON type (no digit strings, no 0/1 for booleans).
    - float: any JSON number.
    - datetime: ISO 8601 (`created_at` keeps its UTC offset).
    - Fault: `{"kind": ..., ...}` with only the fields that differ from the kind's class
      method defaults, so `{"kind": "server_error", "status": 503}` is
      `Fault.server_error(503)`; fields are checked as the class methods check them.
    - RandomFaults: `{"rates": [{"fault": ..., "rate": ...}], "seed": ..., "endpoint": ...}`.
    - Enums (`FaultKind`, `Outcome`) as their string values; unknown keys are refused.
    """
    c.register_structure_hook(int, _strict(int, "an integer"))
    c.register_structure_hook(str, _strict(str, "a string"))
    c.register_structure_hook(bool, _strict(bool, "true or false"))
    c.register_structure_hook(float, _structure_float)
    c.register_structure_hook_func(lambda t: t == Target, _structure_target)
    c.register_structure_hook(datetime, _structure_datetime)
    c.register_unstructure_hook(datetime, datetime.isoformat)
    c.register_structure_hook(Fault, _structure_fault)
    c.register_unstructure_hook(Fault, _unstructure_fault)
    c.register_structure_hook(RandomFaults, _structure_random)
    c.register_unstructure_hook(RandomFaults, _unstructure_random)


def make_converter() -> cattrs.Converter:
    """A fresh converter with every rule of `configure_converter`."""
    c = cattrs.Converter(forbid_extra_keys=True)
    configure_converter(c)
    return c


converter = make_converter()


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, BadInput):
        return str(exc)
    return format_exception(exc, type_)


def encode(value: Any, *, indent: bool = False) -> bytes:
    """`value` as UTF-8 JSON, through `converter`."""
    payload = converter.unstructure(value)
    if indent:
        return json.dumps(payload, ensure_ascii=False, indent=2).encode() + b"\n"
    return dumps(payload)


def decode(content: bytes, target: Any) -> Any:
    """Parse JSON `content` into `target`.

    Raises:
        BadInput: Not JSON, or not `target`'s shape; the message names the bad value.
    """
    try:
        payload = loads(content) if content.strip() else {}
    except ValueError:
        raise BadInput(f"the body is not JSON: {content[:80]!r}") from None
    if attrs.has(target):
        _object(payload, "the body")
    try:
        return converter.structure(payload, target)
    except BadInput:
        raise
    except cattrs.BaseValidationError as exc:
        raise BadInput("; ".join(cattrs.transform_error(exc, format_exception=_format))) from None
    except (ValueError, TypeError) as exc:
        raise BadInput(str(exc)) from None


def records_of(fake: FakeVairo) -> Records:
    """A snapshot of everything `fake` recorded."""
    return Records(
        messages=fake.messages,
        packages=tuple(fake.packages.values()),
        requests=fake.requests,
        duplicates=tuple(
            DuplicateRow(dest, text, count) for (dest, text), count in fake.duplicates().items()
        ),
        peak_concurrency={name: fake.peak_concurrency(name) for name in ("send", "report")},
    )


def dump_records(fake: FakeVairo) -> bytes:
    """`records_of(fake)` as indented JSON, the `--dump-on-exit` file's content."""
    return encode(records_of(fake), indent=True)
