"""A faithful in-memory VairoSMS for tests, demos and benchmarks.

Run `FakeVairo` in-process with `fake.transport()`, or on a loopback port with
`async with fake.serve() as base_url:` or `python -m vairo_async.testing`; steer one served by
another process with `RemoteFakeVairo`. `set_testing(True)` makes the client's retries wait
zero seconds; `run_virtual` runs a coroutine on an event loop whose clock jumps over idle waits.
"""

import types as _types

import attrs as _attrs

from .._retry import set_testing
from ._app import DEFAULT_API_KEY, DEFAULT_PREFIX, FakeVairo
from ._faults import Fault, FaultKind, RandomFaults, Target
from ._remote import RemoteFakeVairo, RemoteFakeVairoError
from ._state import Outcome, Package, RequestRecord, SentMessage
from ._transport import FakeTransport
from ._virtual_time import VirtualTimeLoop, run_virtual

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PREFIX",
    "FakeTransport",
    "FakeVairo",
    "Fault",
    "FaultKind",
    "Outcome",
    "Package",
    "RandomFaults",
    "RemoteFakeVairo",
    "RemoteFakeVairoError",
    "RequestRecord",
    "SentMessage",
    "Target",
    "VirtualTimeLoop",
    "run_virtual",
    "set_testing",
]

# Reprs and tracebacks name the public path (`vairo_async.testing.FakeVairo`); field types are
# resolved first, against the modules that define them (see `vairo_async/__init__.py`).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _attrs.has(_value):
        _attrs.resolve_types(_value)
    if isinstance(_value, type | _types.FunctionType):
        _value.__module__ = __name__
del _name, _value
