"""The shard plan, a shard's run under its lock, status and export: in one process."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vairo_async import (
    AsyncVairoClient,
    CampaignMismatchError,
    ConfigurationError,
    InvalidRequestError,
    Journal,
    JournalError,
    RecordState,
    RedisJournal,
)
from vairo_async._campaigns import (
    FileOptions,
    Plan,
    ShardMismatchError,
    ShardTask,
    file_sha256,
    plan_campaign,
    run_shard,
    shard_campaign,
    write_header,
)
from vairo_async._cli.common import CliError
from vairo_async._journal import batch_key
from vairo_async.taskiq import campaign_status, export_campaign, wait_campaign
from vairo_async.testing import FakeVairo, Fault


def _write(path: Path, rows: list[tuple[str, str]], *, header: str = "to,text") -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    path.write_text(header + "\n" + buffer.getvalue(), encoding="utf-8")


def _rows(n: int) -> list[tuple[str, str]]:
    return [
        (f"53{i:08d}", f'satır {i}\n"ikinci"' if i % 7 == 3 else f"satır {i}") for i in range(n)
    ]


def _plan(path: Path, shard_rows: int = 10, **options: object) -> Plan:
    return plan_campaign(
        path,
        FileOptions(**options),  # type: ignore[arg-type]
        sender="ACME",
        shard_rows=shard_rows,
        batch_size=4,
        concurrency=2,
        rate=None,
        campaign_id=f"c-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
async def journal(redis_url: str) -> AsyncIterator[RedisJournal]:
    async with RedisJournal(redis_url, prefix=f"t-{uuid.uuid4().hex}:") as store:
        yield store


def _client(fake: FakeVairo, journal: Journal) -> AsyncVairoClient:
    return AsyncVairoClient(
        api_key=fake.api_key,
        sender="ACME",
        transport=fake.transport(),
        base_url=fake.base_url,
        journal=journal,
    )


def test_shards_are_cut_at_record_boundaries_quoted_line_breaks_included(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(95))
    with path.open("a", encoding="utf-8") as file:
        file.write("\n\n")  # blank lines at the end join the last shard
    plan = _plan(path)
    assert [s.rows for s in plan.shards] == [10] * 9 + [5]
    assert plan.shards[0].start == len(b"to,text\n")
    assert plan.shards[-1].end == path.stat().st_size
    data = path.read_bytes()
    seen = []
    for shard in plan.shards:
        chunk = data[shard.start : shard.end]
        assert file_sha256(path, shard.start, shard.end) == shard.sha256
        records = [r for r in csv.reader(io.StringIO(chunk.decode())) if r]
        assert len(records) == shard.rows
        seen += [tuple(r) for r in records]
        lines_before = data[: shard.start].count(b"\n")
        assert shard.first_line == lines_before + 1
    assert seen == _rows(95)
    assert plan.header["rows"] == 95
    assert plan.header["sha256"] == file_sha256(path)
    assert len(plan.header["shards"]) == 10


def test_a_file_in_utf16_or_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("to,text\n5300000001,a\n", encoding="utf-16")
    with pytest.raises(CliError, match="save it as UTF-8"):
        _plan(path, encoding="utf-16")
    empty = tmp_path / "e.csv"
    empty.write_text("to,text\n\n", encoding="utf-8")
    with pytest.raises(CliError, match="no rows"):
        _plan(empty)
    with pytest.raises(CliError, match="cannot read"):
        file_sha256(tmp_path / "missing.csv")


def test_a_task_round_trips_through_json_and_bad_ones_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    _write(path, [("5300000001", "a"), ("5300000001", "a")])
    plan = _plan(path, dedupe=True)
    task = plan.task(plan.shards[0])
    assert task.repeats == {3: 2}
    assert ShardTask.from_json(task.to_json()) == task
    with pytest.raises(InvalidRequestError, match="start=-1"):
        ShardTask.from_json(task.to_json() | {"start": -1})
    with pytest.raises(InvalidRequestError, match="shard task"):
        ShardTask.from_json({"path": "x"})


async def test_a_shard_delivered_twice_at_once_sends_its_rows_once(
    tmp_path: Path, journal: RedisJournal, redis_url: str
) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(40))
    plan = _plan(path, shard_rows=40)
    await write_header(journal, plan)
    await write_header(journal, plan)  # the same header again is fine
    fake = FakeVairo()
    task = plan.task(plan.shards[0])
    async with (
        RedisJournal(redis_url, prefix=journal._prefix) as other,  # a second worker's
        _client(fake, journal) as one,
        _client(fake, other) as two,
    ):
        first, second = await asyncio.gather(
            run_shard(one, journal, task, poll=0.01), run_shard(two, other, task, poll=0.01)
        )
        again = await run_shard(one, journal, task)  # a late redelivery
    assert first == second == again
    assert first["sent"] == 40
    assert len(fake.messages) == 40
    assert fake.duplicates() == {}
    state = await campaign_status(journal, plan.campaign_id)
    assert state.done
    assert state.total("sent") == 40
    assert len(state.package_ids) == 10


async def test_status_of_a_finished_shard_counts_its_batches_as_resolved_since(
    tmp_path: Path, journal: RedisJournal
) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(24))
    plan = _plan(path, shard_rows=12)
    await write_header(journal, plan)
    fake = FakeVairo()
    async with _client(fake, journal) as client:
        summaries = []
        for shard in plan.shards:
            fake.inject(Fault.drop_after_accept())  # one batch per shard: accepted, unanswered
            summaries.append(await run_shard(client, journal, plan.task(shard)))
    assert [(s["sent"], s["unknown"]) for s in summaries] == [(8, 4), (8, 4)]
    before = await campaign_status(journal, plan.campaign_id)
    assert [(s.sent, s.unknown, s.failed) for s in before.shards] == [(8, 4, 0), (8, 4, 0)]
    assert len(before.package_ids) == 4
    unknown = [
        [r for r in await journal.records(campaign=shard_campaign(plan.campaign_id, n))
         if r.state is RecordState.UNKNOWN]
        for n in (0, 1)
    ]  # fmt: skip
    assert [len(u) for u in unknown] == [1, 1]
    # Shard 0's unknown batch is resolved with its package; shard 1's as not sent.
    accepted = sorted(set(fake.packages) - set(before.package_ids))
    assert len(accepted) == 2
    first_shard = {to for to, _ in _rows(12)}
    package = next(
        p for p in accepted if {m.dest for m in fake.packages[p].messages} <= first_shard
    )
    await journal.resolve(unknown[0][0].key, package_id=package)
    await journal.resolve(unknown[1][0].key, package_id=None)
    after = await campaign_status(journal, plan.campaign_id)
    assert [(s.state, s.rows, s.sent, s.failed, s.unknown, s.rejected) for s in after.shards] == [
        ("done", 12, 12, 0, 0, 0),
        ("done", 12, 8, 4, 0, 0),
    ]
    assert package in after.shards[0].packages
    assert len(after.package_ids) == 5
    assert after.total("sent") == sum(len(fake.packages[p].messages) for p in after.package_ids)


async def test_a_dead_worker_s_lock_is_taken_over_once_its_lease_passes(
    tmp_path: Path, journal: RedisJournal
) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(8))
    plan = _plan(path)
    await write_header(journal, plan)
    task = plan.task(plan.shards[0])
    lock = batch_key(plan.campaign_id + "#runs", 0)
    await journal.claim(
        lock, fingerprint=task.sha256, owner="dead", lease=0.2,
        campaign=plan.campaign_id + "#runs", batch=0,
    )  # fmt: skip
    fake = FakeVairo()
    state = await campaign_status(journal, plan.campaign_id)
    assert [s.state for s in state.shards] == ["running"]
    async with _client(fake, journal) as client:
        summary = await run_shard(client, journal, task, poll=0.05)
    assert summary["sent"] == 8
    assert await journal.get(lock) is None


async def test_a_shard_whose_bytes_changed_is_refused_and_nothing_is_sent(
    tmp_path: Path, journal: RedisJournal
) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(20))
    plan = _plan(path)
    await write_header(journal, plan)
    _write(path, [(to, text.upper()) for to, text in _rows(20)])
    fake = FakeVairo()
    async with _client(fake, journal) as client:
        with pytest.raises(ShardMismatchError, match="SHA-256"):
            await run_shard(client, journal, plan.task(plan.shards[1]))
        path.unlink()
        with pytest.raises(ShardMismatchError, match="cannot read"):
            await run_shard(client, journal, plan.task(plan.shards[1]))
        with pytest.raises(JournalError, match="no sharded campaign"):
            await run_shard(client, journal, attrs_evolve(plan.task(plan.shards[0])))
    assert fake.request_count() == 0
    state = await campaign_status(journal, plan.campaign_id)
    assert [s.state for s in state.shards] == ["pending", "pending"]


def attrs_evolve(task: ShardTask) -> ShardTask:
    return ShardTask.from_json(task.to_json() | {"campaign_id": "nope"})


async def test_templates_exclusions_and_repeats_reach_every_shard(
    tmp_path: Path, journal: RedisJournal
) -> None:
    path = tmp_path / "c.csv"
    rows = [(f"53{i:08d}", f"Ad{i}" if i != 5 else "") for i in range(12)]
    rows.append(("5300000001", "Ad1"))  # a repeat, in the second shard
    _write(path, rows, header="to,name")
    exclude = tmp_path / "optout.txt"
    exclude.write_text("0530 000 00 02\n", encoding="utf-8")
    plan = _plan(
        path,
        template="Merhaba {name}",
        exclude_path=str(exclude),
        exclude_sha256=file_sha256(exclude),
        dedupe=True,
    )
    assert plan.check.valid == 10
    await write_header(journal, plan)
    fake = FakeVairo()
    async with _client(fake, journal) as client:
        summaries = [await run_shard(client, journal, plan.task(s)) for s in plan.shards]
    assert sum(s["sent"] for s in summaries) == 10
    assert sum(s["rejected"] for s in summaries) == 3  # empty field, excluded, repeat
    assert summaries[1]["own_rejected"] == [
        {"line": 14, "reason": "repeats line 3 (same number and text)"}
    ]
    assert {m.text for m in fake.messages} == {f"Merhaba Ad{i}" for i in range(12)} - {
        "Merhaba Ad2",
        "Merhaba Ad5",
    }
    exclude.write_text("05300000003\n", encoding="utf-8")
    with pytest.raises(ShardMismatchError, match="changed"):
        FileOptions(exclude_path=str(exclude), exclude_sha256="0" * 64).exclusions()


async def test_export_and_wait_read_the_journal(tmp_path: Path, journal: RedisJournal) -> None:
    path = tmp_path / "c.csv"
    _write(path, _rows(12))
    plan = _plan(path)
    await write_header(journal, plan)
    fake = FakeVairo(complete_after_polls=0)
    async with _client(fake, journal) as client:
        await run_shard(client, journal, plan.task(plan.shards[0]))
        state = await campaign_status(journal, plan.campaign_id)
        assert [s.state for s in state.shards] == ["done", "pending"]
        assert not state.done
        records = [r async for r in export_campaign(journal, plan.campaign_id)]
        reports = [
            r async for r in wait_campaign(client, journal, plan.campaign_id, poll_interval=0.01)
        ]
    assert records[0]["type"] == "campaign"
    assert records[0]["rows"] == 12
    batches = [r for r in records if r["type"] == "batch"]
    assert [b["batch"] for b in batches] == [0, 1, 2]
    assert {b["package_id"] for b in batches} == set(fake.packages)
    assert batches[0]["lines"] == [2, 3, 4, 5]
    assert sorted(r.package_id for r in reports) == sorted(fake.packages)
    with pytest.raises(JournalError, match="no sharded campaign"):
        await campaign_status(journal, "missing")
    other = _plan(path, shard_rows=5)
    other = Plan(
        campaign_id=plan.campaign_id, header=other.header, shards=other.shards, check=other.check
    )
    with pytest.raises(CampaignMismatchError, match="shard"):
        await write_header(journal, other)


async def test_a_worker_without_its_journal_s_url_does_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskiq import TaskiqState

    from vairo_async.taskiq import _Worker

    monkeypatch.delenv("VAIRO_JOURNAL", raising=False)
    with pytest.raises(ConfigurationError, match="VAIRO_JOURNAL is not set"):
        await _Worker(None, None, None).startup(TaskiqState())


def test_a_worker_needs_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import vairo_async.taskiq as module

    monkeypatch.delenv("VAIRO_TASKIQ_BROKER", raising=False)
    monkeypatch.setattr(module, "_broker", None)
    assert module.broker.connection_pool.connection_kwargs["host"] == "localhost"
    monkeypatch.setattr(module, "_broker", None)
    monkeypatch.setenv("VAIRO_TASKIQ_BROKER", "redis://127.0.0.1:1")
    monkeypatch.setenv("VAIRO_TASKIQ_IDLE_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="VAIRO_TASKIQ_IDLE_TIMEOUT='soon'"):
        _ = module.broker
    monkeypatch.setenv("VAIRO_TASKIQ_IDLE_TIMEOUT", "30")
    assert module.broker.idle_timeout == 30_000
    assert module.broker is module.broker
    with pytest.raises(AttributeError, match="no attribute 'brokers'"):
        _ = module.brokers


async def test_a_registered_worker_opens_and_closes_its_client_and_journal(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vairo_async.taskiq import TASK_NAME, make_broker

    path = tmp_path / "c.csv"
    _write(path, _rows(6))
    plan = _plan(path)
    plan = Plan(
        campaign_id=plan.campaign_id,
        header=dict(plan.header) | {"rate": 1000.0},
        shards=plan.shards,
        check=plan.check,
    )
    fake = FakeVairo()
    async with fake.serve() as url:
        monkeypatch.setenv("VAIRO_JOURNAL", redis_url)
        monkeypatch.setenv("VAIRO_API_KEY", fake.api_key)
        monkeypatch.setenv("VAIRO_BASE_URL", url)
        monkeypatch.setenv("VAIRO_RATE_KEY", uuid.uuid4().hex)
        broker = make_broker(redis_url, queue_name=f"q-{uuid.uuid4().hex}", shard_lease=30)
        task = broker.find_task(TASK_NAME)
        assert task is not None
        with pytest.raises(ConfigurationError, match="outside a started taskiq worker"):
            await task.original_func(plan.task(plan.shards[0]).to_json())
        broker.is_worker_process = True
        await broker.startup()
        try:
            async with RedisJournal(redis_url) as journal:
                await write_header(journal, plan)
            started = time.monotonic()
            summary = await task.original_func(plan.task(plan.shards[0]).to_json())
        finally:
            await broker.shutdown()
        assert time.monotonic() - started < 5
    assert summary["sent"] == 6
    assert len(fake.messages) == 6
    async with RedisJournal(redis_url) as journal:
        state = await campaign_status(journal, plan.campaign_id)
    assert state.shards[0].packages == tuple(fake.packages)
    assert shard_campaign(plan.campaign_id, 0).endswith("/0")


async def test_register_takes_a_team_s_journal_and_client(tmp_path: Path) -> None:
    from taskiq import InMemoryBroker

    from vairo_async import MemoryJournal
    from vairo_async.taskiq import TASK_NAME, register

    path = tmp_path / "c.csv"
    _write(path, _rows(5))
    plan = _plan(path)
    fake = FakeVairo()
    store = MemoryJournal()
    broker = InMemoryBroker()
    register(
        broker, journal=lambda: store, client=lambda journal: _client(fake, journal), shard_lease=5
    )
    broker.is_worker_process = True
    await broker.startup()
    try:
        await write_header(store, plan)
        task = broker.find_task(TASK_NAME)
        assert task is not None
        summary = await task.original_func(plan.task(plan.shards[0]).to_json())
    finally:
        await broker.shutdown()
    assert summary["sent"] == 5
    assert len(fake.messages) == 5


async def test_workers_with_a_team_s_journal_share_the_rate_limiter_they_are_given(
    tmp_path: Path, redis_url: str
) -> None:
    from taskiq import InMemoryBroker

    from vairo_async import MemoryJournal, RateLimiter, RedisRateLimiter
    from vairo_async.taskiq import TASK_NAME, register

    rate = 20.0
    path = tmp_path / "c.csv"
    _write(path, _rows(24))
    plan = _plan(path, shard_rows=12)
    plan = Plan(
        campaign_id=plan.campaign_id,
        header=dict(plan.header) | {"rate": rate},
        shards=plan.shards,
        check=plan.check,
    )
    fake = FakeVairo()
    store = MemoryJournal()  # the team's own journal, holding no rate limit
    key = uuid.uuid4().hex
    made: list[tuple[float, Shared]] = []

    class Shared(RedisRateLimiter):
        closed = False

        async def aclose(self) -> None:
            self.closed = True
            await super().aclose()

    def shared(campaign_rate: float) -> RateLimiter:
        limiter = Shared(redis_url, key, campaign_rate)
        made.append((campaign_rate, limiter))
        return limiter

    brokers = [InMemoryBroker(), InMemoryBroker()]  # two workers
    for broker in brokers:
        register(
            broker, journal=lambda: store, client=lambda j: _client(fake, j), rate_limiter=shared
        )
        broker.is_worker_process = True
        await broker.startup()
    try:
        await write_header(store, plan)
        tasks = [broker.find_task(TASK_NAME) for broker in brokers]
        summaries = await asyncio.gather(
            *(
                task.original_func(plan.task(shard).to_json())
                for task, shard in zip(tasks, plan.shards, strict=True)
                if task is not None
            )
        )
    finally:
        for broker in brokers:
            await broker.shutdown()
    assert [s["sent"] for s in summaries] == [12, 12]
    assert [r for r, _ in made] == [rate, rate]  # one limiter per worker, of the campaign's rate
    assert all(limiter.closed for _, limiter in made)  # each at its worker's shutdown
    # Six sends through one shared limit take five intervals; two limits of their own, two.
    stamps = sorted(r.at for r in fake.requests if r.endpoint == "send" and r.at is not None)
    assert len(stamps) == 6
    assert stamps[-1] - stamps[0] >= 0.8 * 5 / rate


async def test_a_limiter_given_to_register_holds_every_campaign_with_a_rate(
    tmp_path: Path,
) -> None:
    from taskiq import InMemoryBroker

    from vairo_async import MemoryJournal
    from vairo_async.taskiq import TASK_NAME, register

    class Counting:
        def __init__(self) -> None:
            self.acquired = 0

        async def acquire(self) -> None:
            self.acquired += 1

    path = tmp_path / "c.csv"
    _write(path, _rows(8))
    limiter = Counting()
    fake = FakeVairo()
    store = MemoryJournal()
    broker = InMemoryBroker()
    register(broker, journal=lambda: store, client=lambda j: _client(fake, j), rate_limiter=limiter)
    broker.is_worker_process = True
    await broker.startup()
    try:
        task = broker.find_task(TASK_NAME)
        assert task is not None
        for rate in (5.0, None):
            plan = _plan(path, shard_rows=8)
            plan = Plan(
                campaign_id=plan.campaign_id,
                header=dict(plan.header) | {"rate": rate},
                shards=plan.shards,
                check=plan.check,
            )
            await write_header(store, plan)
            await task.original_func(plan.task(plan.shards[0]).to_json())
    finally:
        await broker.shutdown()
    assert len(fake.messages) == 16
    assert limiter.acquired == 2  # the campaign with a rate: two batches; the other: none


def test_a_worker_makes_one_limiter_per_rate_and_without_one_limits_itself() -> None:
    from vairo_async import MemoryJournal
    from vairo_async.taskiq import _Worker

    made: list[float] = []

    class Limit:
        def __init__(self, rate: float) -> None:
            made.append(rate)

        async def acquire(self) -> None:
            return None

    shared = _Worker(MemoryJournal, None, None, Limit)
    assert shared.rate(5.0) is shared.rate(5.0)
    assert shared.rate(None) is None
    assert isinstance(shared.rate(7.0), Limit)
    assert made == [5.0, 7.0]
    alone = _Worker(MemoryJournal, None, None)  # the team's journal, no shared limiter
    assert alone.rate(5.0) == 5.0
