"""An event loop on a virtual clock, so a test can wait through minutes of poll intervals at once.

Whenever no callback is ready and no file descriptor has anything to read, the loop's clock
jumps straight to the next timer instead of sleeping. `asyncio.sleep`, `asyncio.timeout` and
the emulator's `clock=loop.time` all follow that clock, and in-process requests take no
virtual time at all, so every figure a test reads off the clock is exact.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualTimeLoop", "run_virtual"]

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """A selector whose `select(timeout)` moves the virtual clock on instead of blocking."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled at all: only another thread can wake us
            return super().select(None)
        self._loop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual, starting at 0.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh `VirtualTimeLoop`, then close the loop.

    .. versionadded:: 0.1.0
    """
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
