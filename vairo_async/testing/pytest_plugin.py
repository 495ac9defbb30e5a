"""pytest fixtures for testing code that uses vairo-async, without sending a real SMS.

Enable them in your top-level `conftest.py`::

    pytest_plugins = ["vairo_async.testing.pytest_plugin"]

Fixtures: `fake_vairo` (a fresh `FakeVairo`), `vairo_client` (an `AsyncVairoClient` bound to
it in-process, closed after the test) and `fake_vairo_url` (the emulator served on a loopback
port, for code that builds its own client). Needs pytest-asyncio.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from .._retry import set_testing
from ._app import FakeVairo

if TYPE_CHECKING:
    from vairo_async import AsyncVairoClient

__all__ = ["fake_vairo", "fake_vairo_url", "vairo_client"]

SENDER = "TEST"
"""Sender name of the `vairo_client` fixture's client."""


@pytest.fixture
def fake_vairo() -> FakeVairo:
    """A fresh emulator with default settings; configure it further in the test."""
    return FakeVairo()


@pytest_asyncio.fixture
async def vairo_client(fake_vairo: FakeVairo) -> AsyncIterator[AsyncVairoClient]:
    """An `AsyncVairoClient` talking to `fake_vairo` in-process, with retry waits zeroed."""
    from vairo_async import AsyncVairoClient

    client = AsyncVairoClient(
        api_key=fake_vairo.api_key,
        sender=SENDER,
        base_url=fake_vairo.base_url,
        transport=fake_vairo.transport(),
    )
    with set_testing(True):
        async with client:
            yield client


@pytest_asyncio.fixture
async def fake_vairo_url(fake_vairo: FakeVairo) -> AsyncIterator[str]:
    """`fake_vairo` served on a loopback port; the value is its base URL."""
    async with fake_vairo.serve() as url:
        yield url
