"""One campaign across many workers, on taskiq with taskiq-redis's stream broker.

Needs the `taskiq` extra (`pip install 'vairo-async[taskiq]'`). A coordinator
(`start_campaign`, or `vairo-sms campaign start`) checks the file, writes the campaign's
header to a journal and enqueues one task per shard; workers run the shards:

    taskiq worker vairo_async.taskiq:broker --workers 1 --max-async-tasks 1

`broker` is built from the environment when first read:

- `VAIRO_TASKIQ_BROKER`: the broker's Redis URL (default `redis://localhost:6379/0`).
- `VAIRO_JOURNAL`: the journal's Redis URL (required by workers); the shared rate limit
  lives there too.
- `VAIRO_TASKIQ_QUEUE`: the stream's name (default `vairo-taskiq:shards`).
- `VAIRO_TASKIQ_IDLE_TIMEOUT`: seconds before an unacknowledged shard is redelivered to
  another worker (default 3600): above the longest shard's run.
- `VAIRO_TASKIQ_LOCK_TIMEOUT`: seconds before the redelivery lock of a killed worker is
  freed (default 60).
- `VAIRO_TASKIQ_MAXLEN`: the stream is trimmed to about this many tasks (default 100000).
- `VAIRO_SHARD_LEASE`: seconds a shard's run lock outlives a dead worker (default: the
  idle timeout).
- `VAIRO_RATE_KEY`: names the shared rate limit (default `account`): one per account.
- `VAIRO_API_KEY`, `VAIRO_SENDER`, `VAIRO_BASE_URL`: the client's, as everywhere.

A team with its own taskiq broker calls `register(broker)` instead (with
`rate_limiter=` when its journal is not the default one, so that the workers still share
one rate limit). Either way each worker process opens one client and one journal at
startup and closes them at shutdown.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskiq import AsyncBroker, TaskiqEvents, TaskiqState
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from ._campaigns import (
    CampaignStatus,
    FileOptions,
    Plan,
    ShardMismatchError,
    ShardStatus,
    ShardTask,
    campaign_status,
    export_campaign,
    plan_campaign,
    run_shard,
    wait_campaign,
    write_header,
)
from ._client import AsyncVairoClient
from ._constants import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_CONNECTIONS
from ._errors import ConfigurationError
from ._journal import Journal, RedisJournal
from ._rate import RateLimiter, RedisRateLimiter

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [  # noqa: RUF022 - in sorted() order, which a test checks
    "CampaignStatus",
    "DEFAULT_BROKER_URL",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MAXLEN",
    "DEFAULT_QUEUE",
    "DEFAULT_SHARD_ROWS",
    "ENV_BROKER",
    "ENV_IDLE_TIMEOUT",
    "ENV_JOURNAL",
    "ENV_LOCK_TIMEOUT",
    "ENV_MAXLEN",
    "ENV_QUEUE",
    "ENV_RATE_KEY",
    "ENV_SHARD_LEASE",
    "FileOptions",
    "Plan",
    "RateLimiterFactory",
    "ShardMismatchError",
    "ShardStatus",
    "ShardTask",
    "TASK_NAME",
    "broker",
    "campaign_status",
    "enqueue",
    "export_campaign",
    "make_broker",
    "register",
    "start_campaign",
    "wait_campaign",
]

TASK_NAME = "vairo_async.run_shard"
"""The shard task's name on every broker: the coordinator enqueues by this name."""

ENV_BROKER = "VAIRO_TASKIQ_BROKER"
ENV_JOURNAL = "VAIRO_JOURNAL"
ENV_QUEUE = "VAIRO_TASKIQ_QUEUE"
ENV_IDLE_TIMEOUT = "VAIRO_TASKIQ_IDLE_TIMEOUT"
ENV_LOCK_TIMEOUT = "VAIRO_TASKIQ_LOCK_TIMEOUT"
ENV_MAXLEN = "VAIRO_TASKIQ_MAXLEN"
ENV_SHARD_LEASE = "VAIRO_SHARD_LEASE"
ENV_RATE_KEY = "VAIRO_RATE_KEY"

DEFAULT_QUEUE = "vairo-taskiq:shards"
DEFAULT_IDLE_TIMEOUT = 3600.0
DEFAULT_LOCK_TIMEOUT = 60.0
DEFAULT_MAXLEN = 100_000
DEFAULT_SHARD_ROWS = 10_000

RateLimiterFactory = Callable[[float], RateLimiter]
"""Makes the limiter of a campaign's rate (sends per second), shared with every worker:
`lambda rate: RedisRateLimiter("redis://...", "account", rate)`, say."""


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ConfigurationError(f"${name}={value!r}: must be a number > 0")
    return number


def _env_url(name: str) -> str:
    url = os.environ.get(name, "").strip()
    if not url:
        raise ConfigurationError(f"${name} is not set: give the Redis URL, redis://host:6379/0")
    return url


DEFAULT_BROKER_URL = "redis://localhost:6379/0"
"""The broker's URL when `VAIRO_TASKIQ_BROKER` is not set, as redis-py's default."""


def make_broker(
    url: str,
    *,
    queue_name: str = DEFAULT_QUEUE,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    maxlen: int = DEFAULT_MAXLEN,
    journal: Callable[[], Journal] | None = None,
    shard_lease: float | None = None,
    rate_limiter: RateLimiterFactory | RateLimiter | None = None,
) -> RedisStreamBroker:
    """A taskiq-redis stream broker set for shards, with the shard task registered.

    Each worker reads one task at a time (so shards spread over the workers), the
    consumer group starts at the stream's beginning (tasks enqueued before any worker
    started are read), a task unacknowledged for `idle_timeout` seconds is redelivered,
    the redelivery lock of a killed worker frees itself after `lock_timeout`, and the
    stream is trimmed to about `maxlen` tasks.

    Args:
        url: The broker's Redis URL.
        queue_name: The stream (and consumer group) name.
        idle_timeout: Seconds before redelivery: above the longest shard's run.
        lock_timeout: Seconds a redelivery lock outlives its worker.
        maxlen: The stream's approximate length cap.
        journal: Makes each worker's journal (default: `RedisJournal($VAIRO_JOURNAL)`).
        shard_lease: Seconds a shard's run lock outlives a dead worker (default
            `idle_timeout`).
        rate_limiter: The limit every worker shares, as `register` takes it.

    .. versionadded:: 0.2.0
    """
    stream = RedisStreamBroker(
        url,
        queue_name=queue_name,
        consumer_group_name=queue_name,
        consumer_id="0",
        idle_timeout=max(1, round(idle_timeout * 1000)),
        unacknowledged_lock_timeout=lock_timeout,
        unacknowledged_batch_size=1,
        xread_count=1,
        xread_block=1000,
        maxlen=maxlen,
    )
    register(
        stream,
        journal=journal,
        shard_lease=idle_timeout if shard_lease is None else shard_lease,
        rate_limiter=rate_limiter,
    )
    return stream


class _Worker:
    """What one worker process holds for its life: one client, one journal, its limiters."""

    def __init__(
        self,
        journal: Callable[[], Journal] | None,
        client: Callable[[Journal], AsyncVairoClient] | None,
        shard_lease: float | None,
        rate_limiter: RateLimiterFactory | RateLimiter | None = None,
    ) -> None:
        self._make_journal = journal
        self._make_client = client
        self._lease = shard_lease
        # One limiter object, or a factory (a class with `acquire` is a factory too).
        self._limiter: RateLimiter | None = None
        self._make_limiter: RateLimiterFactory | None = None
        if isinstance(rate_limiter, RateLimiter) and not isinstance(rate_limiter, type):
            self._limiter = rate_limiter
        else:
            self._make_limiter = rate_limiter
        self.journal: Journal | None = None
        self.client: AsyncVairoClient | None = None
        self._redis: redis.asyncio.Redis | None = None
        self._limiters: dict[float, RateLimiter] = {}

    async def startup(self, _: TaskiqState) -> None:
        if self._make_journal is not None:
            self.journal = self._make_journal()
        else:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(_env_url(ENV_JOURNAL))
            self.journal = RedisJournal(self._redis)
        if self._make_client is not None:
            self.client = self._make_client(self.journal)
        else:
            self.client = AsyncVairoClient(
                journal=self.journal, max_connections=DEFAULT_MAX_CONNECTIONS
            )

    async def shutdown(self, _: TaskiqState) -> None:
        limiters, self._limiters = list(self._limiters.values()), {}
        for limiter in limiters:  # those this worker made; their `aclose`, when they have one
            close = getattr(limiter, "aclose", None)
            if callable(close):
                await close()
        if self.client is not None:
            await self.client.aclose()
        if self.journal is not None:
            await self.journal.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    def rate(self, rate: float | None) -> float | RateLimiter | None:
        """The shared limiter for the campaign's rate: the team's, or in the journal's Redis.

        Without either (a journal of the team's own and no `rate_limiter`), the rate is
        this process's own limit.
        """
        if rate is None:
            return None
        if self._limiter is not None:
            return self._limiter
        limiter = self._limiters.get(rate)
        if limiter is None:
            if self._make_limiter is not None:
                limiter = self._make_limiter(rate)
            elif self._redis is not None:
                key = os.environ.get(ENV_RATE_KEY) or "account"
                limiter = RedisRateLimiter(self._redis, key, rate)
            else:
                return rate
            self._limiters[rate] = limiter
        return limiter

    async def run(self, shard: dict[str, Any]) -> dict[str, Any]:
        if self.client is None or self.journal is None:
            raise ConfigurationError("the shard task ran outside a started taskiq worker")
        task = ShardTask.from_json(shard)
        lease = self._lease or _env_number(ENV_SHARD_LEASE, DEFAULT_IDLE_TIMEOUT)
        summary = await run_shard(
            self.client, self.journal, task, rate=self.rate, lease=lease, poll=min(2.0, lease / 4)
        )
        return dict(summary)


def register(
    broker: AsyncBroker,
    *,
    journal: Callable[[], Journal] | None = None,
    client: Callable[[Journal], AsyncVairoClient] | None = None,
    shard_lease: float | None = None,
    rate_limiter: RateLimiterFactory | RateLimiter | None = None,
) -> None:
    """Register the shard task, and a worker's startup and shutdown, on a team's broker.

    The broker must acknowledge a task after it ran and redeliver it when its worker
    dies (taskiq-redis's `RedisStreamBroker` does); the shard task is safe to run twice.

    Args:
        broker: The team's taskiq broker.
        journal: Makes each worker's journal at startup (default: a `RedisJournal` on
            `$VAIRO_JOURNAL`, whose Redis also holds the shared rate limit). With a journal
            of your own and no `rate_limiter`, a campaign's `rate` is each worker's own
            limit, not a shared one.
        client: Makes each worker's client from its journal at startup (default: from
            `VAIRO_API_KEY`, `VAIRO_SENDER`, `VAIRO_BASE_URL`).
        shard_lease: Seconds a shard's run lock outlives a dead worker (default
            `$VAIRO_SHARD_LEASE`, else one hour): above the longest shard's run.
        rate_limiter: The limit every worker shares, for campaigns with a `rate`: a
            factory called with the campaign's rate (once per rate and worker, on its
            first shard; what it made is closed at shutdown), such as
            `lambda rate: RedisRateLimiter(url, "account", rate)`, or one limiter (any
            object with an async `acquire()`, not closed here) that then holds every
            such campaign to its own rate. Default: a `RedisRateLimiter` in the default
            journal's Redis, or none with a journal of your own.

    .. versionadded:: 0.2.0
    """
    worker = _Worker(journal, client, shard_lease, rate_limiter)
    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, worker.startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, worker.shutdown)

    async def run_shard_task(shard: dict[str, Any]) -> dict[str, Any]:
        """Run one shard of a campaign (see `vairo_async.taskiq`)."""
        return await worker.run(shard)

    broker.register_task(run_shard_task, task_name=TASK_NAME)


def _from_environment() -> RedisStreamBroker:
    return make_broker(
        os.environ.get(ENV_BROKER, "").strip() or DEFAULT_BROKER_URL,
        queue_name=os.environ.get(ENV_QUEUE) or DEFAULT_QUEUE,
        idle_timeout=_env_number(ENV_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT),
        lock_timeout=_env_number(ENV_LOCK_TIMEOUT, DEFAULT_LOCK_TIMEOUT),
        maxlen=int(_env_number(ENV_MAXLEN, DEFAULT_MAXLEN)),
        shard_lease=_env_number(
            ENV_SHARD_LEASE, _env_number(ENV_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)
        ),
    )


_broker: RedisStreamBroker | None = None

broker: RedisStreamBroker
"""The broker `taskiq worker vairo_async.taskiq:broker` runs: built from the environment
(see the module's docstring) the first time it is read, with the shard task registered."""


def __getattr__(name: str) -> Any:
    """`broker`, built from the environment the first time it is read."""
    global _broker
    if name == "broker":
        if _broker is None:
            _broker = _from_environment()
        return _broker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def enqueue(
    broker: AsyncBroker, plan: Plan, *, only_unfinished: Journal | None = None
) -> int:
    """Enqueue one task per shard of `plan`; return how many were enqueued.

    With `only_unfinished`, shards whose summary that journal holds are left out (a
    campaign started again resumes its unfinished shards).
    """
    kicker: AsyncKicker[[dict[str, Any]], Any] = AsyncKicker(TASK_NAME, broker, {})
    count = 0
    for shard in plan.shards:
        if only_unfinished is not None:
            summary = await only_unfinished.get_campaign(
                f"{plan.campaign_id}/{shard.index}#summary"
            )
            if summary is not None:
                continue
        await kicker.kiq(plan.task(shard).to_json())
        count += 1
    return count


async def start_campaign(
    path: str | Path,
    *,
    broker: AsyncBroker,
    journal: Journal,
    sender: str,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
    options: FileOptions | None = None,
    campaign_id: str | None = None,
) -> Plan:
    """Check and cut the file, write the campaign's header, enqueue its shards.

    The file must be readable at the same path by every worker. Started again with the
    same `campaign_id` and file, the campaign's unfinished shards are enqueued again.
    `broker` is started for the enqueueing and shut down after it (a broker your
    application keeps running takes `enqueue(broker, plan)` instead).

    Raises:
        CliError: The file cannot be read or checked (its message names why).
        CampaignMismatchError: `campaign_id` holds another campaign.

    .. versionadded:: 0.2.0
    """
    plan = await asyncio.to_thread(
        plan_campaign,
        Path(path),
        options or FileOptions(),
        sender=sender,
        shard_rows=shard_rows,
        batch_size=batch_size,
        concurrency=concurrency,
        rate=rate,
        campaign_id=campaign_id,
    )
    await write_header(journal, plan)
    await broker.startup()
    try:
        await enqueue(broker, plan, only_unfinished=journal)
    finally:
        await broker.shutdown()
    return plan
