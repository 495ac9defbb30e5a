"""Faults the emulator injects on demand: scripted for the next N calls, or random with a seed."""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = [
    "DropConnection",
    "Endpoint",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "RandomFaults",
    "Target",
]

Endpoint = Literal["send", "report"]
"""The two emulated endpoints: `send` is POST SmsGonder, `report` is GET GonderimBilgisi."""

Target = Literal["send", "report", "both"]
"""Which endpoint a fault applies to."""

_TARGETS = ("send", "report", "both")


class FaultKind(enum.StrEnum):
    """What a fault does to the request it hits.

    .. versionadded:: 0.1.0
    """

    LATENCY = "latency"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    HTML_PAGE = "html_page"
    DROP_BEFORE_ACCEPT = "drop_before_accept"
    DROP_AFTER_ACCEPT = "drop_after_accept"


@attrs.frozen
class Fault:
    """One fault; build it with the class methods rather than by hand.

    Attributes:
        kind: What happens.
        status: HTTP status of the error answer (429, 5xx), or None.
        seconds: Extra delay before the answer (LATENCY only).
        retry_after: `Retry-After` header value: seconds, or a verbatim string such as an HTTP
            date; None sends no header.
        accepted: Whether the emulator handles the request (and, for a send, accepts and records
            the package) before answering with the fault.

    .. versionadded:: 0.1.0
    """

    kind: FaultKind
    status: int | None = None
    seconds: float = 0.0
    retry_after: float | str | None = None
    accepted: bool = False

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Handle the request normally, then wait `seconds` before answering.

        A send is accepted before the wait, so a client read timeout leaves it sent.
        """
        if seconds < 0:
            raise ValueError("latency must not be negative")
        return cls(FaultKind.LATENCY, seconds=seconds, accepted=True)

    @classmethod
    def rate_limit(cls, retry_after: float | str | None = 1) -> Fault:
        """Answer 429 with `Retry-After`, without handling the request."""
        return cls(FaultKind.RATE_LIMIT, status=429, retry_after=retry_after)

    @classmethod
    def server_error(
        cls, status: int = 500, *, accepted: bool = False, retry_after: float | str | None = None
    ) -> Fault:
        """Answer `status` (500, 502, 503, 504, ...) with a JSON `durum: false` body.

        With `accepted=True` the package is accepted and recorded first, as when a backend
        acts on a request and a proxy in front of it times out.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"server_error needs a 5xx status, not {status}")
        return cls(
            FaultKind.SERVER_ERROR, status=status, retry_after=retry_after, accepted=accepted
        )

    @classmethod
    def html_page(cls, status: int = 502, *, accepted: bool = False) -> Fault:
        """Answer `status` with a `text/html` proxy error page instead of JSON."""
        if not 400 <= status <= 599:
            raise ValueError(f"html_page needs a 4xx or 5xx status, not {status}")
        return cls(FaultKind.HTML_PAGE, status=status, accepted=accepted)

    @classmethod
    def drop_before_accept(cls) -> Fault:
        """Close the connection without handling the request: nothing is recorded."""
        return cls(FaultKind.DROP_BEFORE_ACCEPT)

    @classmethod
    def drop_after_accept(cls) -> Fault:
        """Handle the request (a send is accepted and recorded), then close mid-response."""
        return cls(FaultKind.DROP_AFTER_ACCEPT, accepted=True)


class DropConnection(Exception):
    """Raised inside the app to make the server side close the connection.

    `status`, `headers` and `length` describe the response start already sent, if any, so the
    in-process transport can reproduce what a client sees on a real socket.
    """

    def __init__(
        self,
        *,
        response_started: bool,
        status: int = 200,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        length: int = 0,
    ) -> None:
        super().__init__("connection dropped by the emulator")
        self.response_started = response_started
        self.status = status
        self.headers = headers
        self.length = length


def _checked_rates(rates: Mapping[Fault, float]) -> dict[Fault, float]:
    checked = dict(rates)
    for rate in checked.values():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"each fault rate must be between 0 and 1, not {rate!r}")
    if sum(checked.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates must add up to at most 1, not {sum(checked.values())!r}")
    return checked


@attrs.frozen
class RandomFaults:
    """Random faults: each request draws at most one fault, `rates[fault]` being its probability.

    Attributes:
        rates: Probability of each fault per request; they must add up to at most 1.
        seed: Seed of the emulator's own random generator, for repeatable runs.
        endpoint: Which endpoint the faults hit.

    .. versionadded:: 0.1.0
    """

    rates: Mapping[Fault, float] = attrs.field(converter=_checked_rates)
    seed: int | None = None
    endpoint: Target = attrs.field(default="both")

    @endpoint.validator
    def _check_endpoint(self, _: attrs.Attribute[Target], value: str) -> None:
        if value not in _TARGETS:
            raise ValueError(f"endpoint must be one of {_TARGETS}, not {value!r}")


@attrs.define
class _Scripted:
    fault: Fault
    target: Target
    remaining: int


@attrs.define
class FaultPlan:
    """Decides the fault, if any, for each request: scripted faults first, in order, then random."""

    _scripted: list[_Scripted] = attrs.field(factory=list)
    _random: RandomFaults | None = None
    _rng: random.Random = attrs.field(factory=random.Random)

    def inject(self, fault: Fault, *, endpoint: Target, times: int) -> None:
        """Queue `fault` for the next `times` requests to `endpoint`."""
        if endpoint not in _TARGETS:
            raise ValueError(f"endpoint must be one of {_TARGETS}, not {endpoint!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times!r}")
        self._scripted.append(_Scripted(fault, endpoint, times))

    def set_random(self, faults: RandomFaults | None) -> None:
        """Replace the random faults, reseeding the generator."""
        self._random = faults
        self._rng = random.Random(faults.seed if faults is not None else None)

    def clear(self) -> None:
        """Forget scripted and random faults."""
        self._scripted.clear()
        self.set_random(None)

    @property
    def pending(self) -> int:
        """Scripted faults not yet used."""
        return sum(entry.remaining for entry in self._scripted)

    def pick(self, endpoint: Endpoint) -> Fault | None:
        """The fault for one request to `endpoint`, consuming a scripted one if queued."""
        for entry in self._scripted:
            if entry.target in (endpoint, "both"):
                entry.remaining -= 1
                if entry.remaining == 0:
                    self._scripted.remove(entry)
                return entry.fault
        faults = self._random
        if faults is None or faults.endpoint not in (endpoint, "both"):
            return None
        draw = self._rng.random()
        for fault, rate in faults.rates.items():
            if draw < rate:
                return fault
            draw -= rate
        return None
