"""`rate=` with a limiter object, the shared Redis limiter, and the 429 cooldown hook."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import uuid
from collections.abc import Callable

import pytest
import redis.asyncio

from vairo_async import (
    AsyncVairoClient,
    BatchState,
    ConfigurationError,
    InvalidRequestError,
    Message,
    RateLimiter,
    RateLimiterError,
    RedisJournal,
    RedisRateLimiter,
    VairoError,
)
from vairo_async.testing import FakeVairo, Fault


class CountingLimiter:
    """A limiter of the caller's: counts acquisitions and cooldowns, never waits."""

    def __init__(self) -> None:
        self.acquired = 0
        self.cooldowns: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    async def cooldown(self, seconds: float) -> None:
        self.cooldowns.append(seconds)


def _rows(n: int) -> list[Message]:
    return [Message(to=f"53{i:08d}", text=f"row {i}") for i in range(n)]


async def test_a_limiter_object_is_awaited_before_every_attempt(fake: FakeVairo) -> None:
    limiter = CountingLimiter()
    assert isinstance(limiter, RateLimiter)
    fake.inject(Fault.rate_limit(retry_after=2), times=1)
    async with AsyncVairoClient(
        api_key=fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
    ) as client:
        result = await client.send_bulk(_rows(30), batch_size=10, rate=limiter)
    assert result.sent == 30
    assert limiter.acquired == 4  # three batches, one retried after the 429
    assert limiter.cooldowns == [2.0]


async def test_a_limiter_without_cooldown_is_enough(fake: FakeVairo) -> None:
    class Plain:
        def __init__(self) -> None:
            self.acquired = 0

        async def acquire(self) -> None:
            self.acquired += 1

    plain = Plain()
    fake.inject(Fault.rate_limit(retry_after=1), times=1)
    async with AsyncVairoClient(
        api_key=fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
    ) as client:
        result = await client.send_bulk(_rows(5), batch_size=5, rate=plain)
    assert result.sent == 5
    assert plain.acquired == 2


async def test_a_rate_that_is_neither_number_nor_limiter_is_refused(fake: FakeVairo) -> None:
    async with AsyncVairoClient(
        api_key=fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
    ) as client:
        with pytest.raises(InvalidRequestError, match="rate"):
            await client.send_bulk(_rows(1), rate="fast")  # type: ignore[arg-type]
    assert fake.request_count() == 0


async def test_the_redis_limiter_spaces_sends_across_limiters(redis_url: str) -> None:
    key = f"acct-{uuid.uuid4().hex}"
    first = RedisRateLimiter(redis_url, key, 50)
    second = RedisRateLimiter(redis_url, key, 50)
    stamps: list[float] = []

    async def take(limiter: RedisRateLimiter) -> None:
        await limiter.acquire()
        stamps.append(time.monotonic())

    async with first, second:
        await asyncio.gather(*(take(limiter) for limiter in [first, second] * 15))
    stamps.sort()
    # 30 slots 20 ms apart, shared by both limiters: the last one 580 ms after the first.
    assert stamps[-1] - stamps[0] >= 0.55
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert sum(gaps) / len(gaps) >= 0.019


async def test_a_cooldown_holds_every_limiter_back(redis_url: str) -> None:
    key = f"acct-{uuid.uuid4().hex}"
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        one = RedisRateLimiter(client, key, 1000)
        other = RedisRateLimiter(client, key, 1000)
        await one.cooldown(0.3)
        await one.cooldown(0.05)  # a shorter hint never shortens the cooldown
        started = time.monotonic()
        await other.acquire()
        assert time.monotonic() - started >= 0.25
        await one.aclose()  # the caller's client stays open
        assert await client.ping()
    finally:
        await client.aclose()
    assert "acct-" in repr(one)


def test_bad_limiter_arguments_are_named() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RedisRateLimiter("redis://127.0.0.1:1", "", 0, burst=0)
    message = str(caught.value)
    assert "key ''" in message
    assert "rate 0" in message
    assert "burst 0" in message
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisRateLimiter("http://user:s3cret@example.com", "k", 1)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: RedisRateLimiter("redis://127.0.0.1:1", "k", 1), "RedisRateLimiter"),
        (lambda: RedisJournal("redis://127.0.0.1:1"), "RedisJournal"),
    ],
)
def test_without_the_redis_package_each_redis_class_names_itself(
    make: Callable[[], object], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError) as caught:
        make()
    assert str(caught.value) == (
        f"{name} needs the redis package: pip install 'vairo-async[redis]'"
    )


def _unreachable_redis_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://:s3cretpw@127.0.0.1:{port}"


async def test_an_unreachable_redis_is_a_vairo_error_without_the_password() -> None:
    limiter = RedisRateLimiter(_unreachable_redis_url(), "k", 1, timeout=1)
    with pytest.raises(RateLimiterError) as caught:
        await limiter.acquire()
    await limiter.aclose()
    assert "s3cretpw" not in str(caught.value)
    assert "rate limit" in str(caught.value)
    assert caught.value.certainly_not_sent is True


async def test_an_unreachable_redis_limiter_fails_batches_as_not_sent(fake: FakeVairo) -> None:
    async with (
        RedisRateLimiter(_unreachable_redis_url(), "k", 10, timeout=1) as limiter,
        AsyncVairoClient(
            api_key=fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
        ) as client,
    ):
        result = await client.send_bulk(_rows(4), batch_size=2, rate=limiter)
    assert result.failed == 4
    assert fake.requests == ()
    for outcome in result.outcomes:
        assert outcome.state is BatchState.FAILED
        assert isinstance(outcome.error, RateLimiterError)
        assert outcome.error.certainly_not_sent is True
        assert "s3cretpw" not in str(outcome.error)


@pytest.mark.parametrize(
    "failure",
    [VairoError("the limiter's store is down"), RuntimeError("limiter bug")],
    ids=["VairoError", "RuntimeError"],
)
async def test_a_limiter_that_raises_fails_the_batch_as_not_sent(
    fake: FakeVairo, failure: Exception
) -> None:
    class Broken:
        async def acquire(self) -> None:
            raise failure

        def __repr__(self) -> str:
            return "Broken()"

    async with AsyncVairoClient(
        api_key=fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
    ) as client:
        result = await client.send_bulk(_rows(3), batch_size=3, rate=Broken())
    assert fake.requests == ()
    (outcome,) = result.outcomes
    assert outcome.state is BatchState.FAILED
    assert isinstance(outcome.error, RateLimiterError)
    assert outcome.error.certainly_not_sent is True
    assert outcome.error.__cause__ is failure
    assert "rate limiter Broken()" in str(outcome.error)
    assert str(failure) in str(outcome.error)
