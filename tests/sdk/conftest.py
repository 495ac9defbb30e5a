"""Fixtures the journal and durable-send tests share: a clock, every store, a served emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from vairo_async import Journal
from vairo_async.testing import FakeVairo

from ..support import FakeClock, open_store


@pytest.fixture
def clock() -> FakeClock:
    """The stores' clock, moved by hand."""
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def open_journal(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Callable[[], Journal]:
    """Opens journals on one store: each call a new handle (the memory store has one)."""
    return open_store(request.param, request, tmp_path, clock)


@pytest.fixture
async def journal(open_journal: Callable[[], Journal]) -> AsyncIterator[Journal]:
    """An open journal on each store."""
    async with open_journal() as opened:
        yield opened


@pytest.fixture
async def url(fake: FakeVairo) -> AsyncIterator[str]:
    """The emulator served on a loopback port."""
    async with fake.serve() as served:
        yield served
