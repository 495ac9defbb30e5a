"""Rate limits a campaign's sends wait for: a local one, or one shared by many workers.

`rate=` takes a number (a limiter in this process) or any object with an async `acquire()`.
`RedisRateLimiter` keeps the account's cap in Redis with GCRA (one Lua call per send, on the
server's clock), so every worker of a campaign shares it, and a 429's `Retry-After` becomes a
cooldown that every worker waits out before its next attempt.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, cast, runtime_checkable

from ._errors import InvalidRequestError, RateLimiterError
from ._redis_client import open_redis

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Cooldown", "RateLimiter", "RedisRateLimiter", "cooldown_of"]


@runtime_checkable
class RateLimiter(Protocol):
    """What `rate=` accepts besides a number: `acquire()` returns when one send may start.

    A limiter may also offer `async cooldown(seconds)`: the client calls it when a 429
    answer carries `Retry-After`, so that the limiter holds every later `acquire()` back
    until the cooldown has passed (`RedisRateLimiter` shares it with every worker).

    .. versionadded:: 0.2.0
    """

    async def acquire(self) -> None:
        """Wait until one more send may start."""
        ...


Cooldown = Callable[[float], Awaitable[object]]
"""A limiter's `cooldown(seconds)`: hold every later `acquire()` back for `seconds`."""


def cooldown_of(limiter: object) -> Cooldown | None:
    """The limiter's `cooldown` method, or None when it offers none."""
    cooldown = getattr(limiter, "cooldown", None)
    return cast("Cooldown", cooldown) if callable(cooldown) else None


# KEYS: the theoretical arrival time (TAT, microseconds), the cooldown's end (microseconds).
# ARGV: the emission interval, the burst tolerance (both microseconds), a cooldown to set
# (microseconds, 0 for none). Returns the microseconds the caller waits before it sends
# (a reservation: the slot is its own once the call returns), or 0 after setting a cooldown.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[3])
if cooldown > 0 then
  local until_ = now + cooldown
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if until_ > current then
    redis.call('SET', KEYS[2], string.format('%.0f', until_), 'PX',
      math.ceil(cooldown / 1000) + 1000)
  end
  return 0
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local cool = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(tat, now, cool)
local new_tat = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1000)
local wait = math.max(start - tolerance, cool) - now
if wait < 0 then wait = 0 end
return math.floor(wait)
"""


class RedisRateLimiter:
    """A rate limit in Redis, shared by every process that names the same `key`.

    GCRA in one Lua call: each `acquire()` reserves the next free slot on the Redis
    server's clock and sleeps until it, so N workers together never exceed `rate` sends
    per second (plus `burst - 1`). `cooldown(seconds)`, called by the client when a 429
    carries `Retry-After`, pushes every later slot past the cooldown, for every worker.
    Needs the `redis` extra.

    Args:
        url_or_client: A `redis://` URL, or a `redis.asyncio.Redis` (not closed by us).
        key: Names the limit: one per VairoSMS account.
        rate: Sends per second, at most (> 0).
        burst: Sends that may start at once after an idle spell (>= 1).
        prefix: Prefix of the two Redis keys.
        timeout: Seconds a Redis call may take.

    Raises:
        InvalidRequestError: A bad `key`, `rate` or `burst`, named.
        ConfigurationError: The redis package is missing, or the URL is not a Redis URL.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        key: str,
        rate: float,
        *,
        burst: int = 1,
        prefix: str = "vairo:rate:",
        timeout: float = 10.0,
    ) -> None:
        problems = []
        if not isinstance(key, str) or not key:
            problems.append(f"key {key!r}: must be a non-empty string")
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            problems.append(f"rate {rate!r}: must be a number of sends per second > 0")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            problems.append(f"burst {burst!r}: must be an integer >= 1")
        if problems:
            raise InvalidRequestError(problems)
        self._redis = open_redis(url_or_client, timeout=timeout, needed_by="RedisRateLimiter")
        self.key = key
        self.rate = float(rate)
        self.burst = burst
        self._keys = [f"{prefix}{key}:tat", f"{prefix}{key}:cooldown"]
        self._interval = round(1e6 / self.rate)
        self._tolerance = self._interval * (burst - 1)
        self._script = self._redis.client.register_script(_GCRA)

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self._redis.where!r}, key={self.key!r}, rate={self.rate:g})"

    async def _run(self, cooldown_us: int) -> int:
        try:
            result = await self._script(
                keys=self._keys, args=[self._interval, self._tolerance, cooldown_us]
            )
        except self._redis.errors as exc:
            raise RateLimiterError(self._redis.failure("the Redis rate limit", exc)) from exc
        return int(result)

    async def acquire(self) -> None:
        """Reserve the next slot of the shared limit and wait until it comes.

        Raises:
            RateLimiterError: Redis could not be reached; the send does not start.
        """
        wait_us = await self._run(0)
        if wait_us > 0:
            await asyncio.sleep(wait_us / 1e6)

    async def cooldown(self, seconds: float) -> None:
        """Hold every worker's next slot back until `seconds` from now (a 429's Retry-After).

        A shorter cooldown never shortens a longer one already set.
        """
        if seconds > 0:
            await self._run(max(1, round(seconds * 1e6)))

    async def aclose(self) -> None:
        """Close the Redis connection, when the limiter opened it."""
        await self._redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
