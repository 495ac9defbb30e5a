"""A faithful in-memory VairoSMS for tests, demos and benchmarks.

Run `FakeVairo` in-process with `fake.transport()`, or on a loopback port with
`async with fake.serve() as base_url:` or `python -m vairo_async.testing`; steer one served by
another process with `RemoteFakeVairo`. `set_testing(True)` makes the client's retries wait
zero seconds; `run_virtual` runs a coroutine on an event loop whose clock jumps over idle waits.
"""

from .._retry import set_testing
from ._app import DEFAULT_API_KEY, DEFAULT_PREFIX, FakeVairo
from ._faults import Fault, FaultKind, RandomFaults
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
    "VirtualTimeLoop",
    "run_virtual",
    "set_testing",
]
