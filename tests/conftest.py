from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from vairo_async._retry import set_testing
from vairo_async.testing import FakeVairo

from .redis_server import find_server, running_server


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries wait zero seconds in tests; a test that checks waits turns it off."""
    with set_testing(True):
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAIRO_API_KEY", "VAIRO_SENDER", "VAIRO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeVairo:
    """A fresh emulator."""
    return FakeVairo()


@pytest.fixture(params=["in_process", "loopback"])
async def http(request: pytest.FixtureRequest, fake: FakeVairo) -> AsyncIterator[httpx.AsyncClient]:
    """A raw httpx client on the emulator, in-process and over a loopback socket."""
    if request.param == "in_process":
        async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url) as client:
            yield client
    else:
        async with fake.serve() as url, httpx.AsyncClient(base_url=url) as client:
            yield client


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a redis-server run for this test session on a free loopback port.

    Without a server binary the tests that need one skip, except under CI, where they fail.
    """
    binary = find_server()
    if binary is None:
        message = "no redis-server or valkey-server on PATH (or $VAIRO_TEST_REDIS_SERVER)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_server(binary) as url:
        yield url
