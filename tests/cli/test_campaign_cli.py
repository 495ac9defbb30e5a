"""`vairo-sms campaign`: start, status, wait and export against a Redis journal."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis.asyncio

from tests.cli.test_cli import assert_one_line_error, invoke, invoke_async, served
from vairo_async import AsyncVairoClient, RedisJournal
from vairo_async._campaigns import ShardTask, run_shard
from vairo_async.taskiq import DEFAULT_QUEUE, campaign_status
from vairo_async.testing import FakeVairo

__all__ = ["served"]  # the fixture, used by name


def _csv(path: Path, rows: int) -> Path:
    lines = ["to,text", *(f"53{i:08d},Merhaba {i}" for i in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex}"


async def _stream(redis_url: str, queue: str) -> list[ShardTask]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(queue)
    finally:
        await client.aclose()
    assert entries is not None
    return [
        ShardTask.from_json(json.loads(entry[b"data"])["args"][0])
        for _, entry in entries
        if entry is not None
    ]


async def test_start_enqueues_every_shard_and_again_only_the_unfinished(
    tmp_path: Path, redis_url: str, queue: str, served: tuple[FakeVairo, dict[str, str]]
) -> None:
    fake, env = served
    path = _csv(tmp_path / "c.csv", 25)
    campaign_id = f"c-{uuid.uuid4().hex[:8]}"
    args = [
        "campaign", "start", str(path), "--broker", redis_url, "--journal", redis_url,
        "--queue", queue, "--id", campaign_id, "--shard-rows", "10", "--batch-size", "5",
        "--sender", "ACME",
    ]  # fmt: skip
    result = await invoke_async(args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == campaign_id
    assert "shards" in result.stderr
    tasks = await _stream(redis_url, queue)
    assert [(t.index, t.rows, t.first_line) for t in tasks] == [(0, 10, 2), (1, 10, 12), (2, 5, 22)]

    async with (
        RedisJournal(redis_url) as journal,
        AsyncVairoClient(
            api_key=fake.api_key, base_url=env["VAIRO_BASE_URL"], journal=journal
        ) as client,
    ):
        await run_shard(client, journal, tasks[0])
    again = await invoke_async(args)
    assert again.exit_code == 0, again.output
    assert [t.index for t in await _stream(redis_url, queue)][3:] == [1, 2]

    other = await invoke_async([*args[:-2], "--sender", "OTHER"])
    line = assert_one_line_error(other, 2)
    assert "does not match the journal" in line
    assert "sender" in line

    status = await invoke_async(["campaign", "status", campaign_id, "--journal", redis_url])
    assert status.exit_code == 1
    assert "1 done, 0 running, 2 pending; packages: 2" in status.stdout

    out = tmp_path / "export.jsonl"
    exported = await invoke_async(
        ["campaign", "export", campaign_id, "--journal", redis_url, "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["type"] for r in records] == ["campaign", "batch", "batch", "shard"]
    assert {r["package_id"] for r in records if r["type"] == "batch"} == set(fake.packages)
    assert "2 batches written" in exported.stderr
    existing = await invoke_async(
        ["campaign", "export", campaign_id, "--journal", redis_url, "--out", str(out)]
    )
    assert "exists" in assert_one_line_error(existing)

    waited = await invoke_async(
        ["campaign", "wait", campaign_id, "--journal", redis_url, "--poll-interval", "0.01"], env
    )
    assert waited.exit_code == 0, waited.output
    assert sorted(int(line.split()[0]) for line in waited.stdout.splitlines()) == sorted(
        fake.packages
    )
    async with RedisJournal(redis_url) as journal:
        state = await campaign_status(journal, campaign_id)
    assert state.total("sent") == 10


async def test_a_finished_campaign_s_status_is_0(
    tmp_path: Path, redis_url: str, queue: str, served: tuple[FakeVairo, dict[str, str]]
) -> None:
    fake, env = served
    path = _csv(tmp_path / "c.csv", 4)
    campaign_id = f"c-{uuid.uuid4().hex[:8]}"
    result = await invoke_async(
        ["campaign", "start", str(path), "--broker", redis_url, "--journal", redis_url,
         "--queue", queue, "--id", campaign_id, "--text", "ignored"],
        env,
    )  # fmt: skip
    assert "has a 'text' column" in assert_one_line_error(result)
    result = await invoke_async(
        ["campaign", "start", str(path), "--broker", redis_url, "--journal", redis_url,
         "--queue", queue, "--id", campaign_id],
        env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (task,) = await _stream(redis_url, queue)
    async with (
        RedisJournal(redis_url) as journal,
        AsyncVairoClient(
            api_key=fake.api_key, base_url=env["VAIRO_BASE_URL"], journal=journal
        ) as client,
    ):
        await run_shard(client, journal, task)
    status = await invoke_async(["campaign", "status", campaign_id, "--journal", redis_url])
    assert status.exit_code == 0, status.output
    assert "1 done, 0 running, 0 pending" in status.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "no sender"),
        (["--sender", "ACME", "--text", " "], "--text is empty"),
        (["--sender", "ACME", "--template", "x", "--template-file", "t.txt"], "exclude each"),
        (["--sender", "ACME", "--template", " "], "--template is empty"),
    ],
)
def test_start_bad_usage(tmp_path: Path, extra: list[str], expected: str) -> None:
    path = _csv(tmp_path / "c.csv", 1)
    result = invoke(
        ["campaign", "start", str(path), "--broker", "redis://127.0.0.1:1",
         "--journal", "redis://127.0.0.1:1", *extra],
        {"VAIRO_SENDER": None},
    )  # fmt: skip
    assert expected in assert_one_line_error(result)


def test_start_with_a_template_file(tmp_path: Path, redis_url: str, queue: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text("to,ad\n5300000001,Ali\n", encoding="utf-8")
    template = tmp_path / "t.txt"
    template.write_text("Merhaba {ad}\n", encoding="utf-8")
    optout = tmp_path / "optout.txt"
    optout.write_text("5300000009\n", encoding="utf-8")
    result = invoke(
        ["campaign", "start", str(path), "--broker", redis_url, "--journal", redis_url,
         "--queue", queue, "--template-file", str(template), "--exclude", str(optout),
         "--sender", "ACME"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert queue != DEFAULT_QUEUE


def test_status_of_an_unknown_campaign_is_one_line(redis_url: str) -> None:
    result = invoke(["campaign", "status", "nope", "--journal", redis_url])
    assert "no sharded campaign 'nope'" in assert_one_line_error(result, 1)


async def test_wait_reports_failed_packages_and_timeouts(
    tmp_path: Path, redis_url: str, queue: str
) -> None:
    fake = FakeVairo(complete_after_polls=0, fail_destinations={"5300000001"})
    path = _csv(tmp_path / "c.csv", 4)
    campaign_id = f"c-{uuid.uuid4().hex[:8]}"
    async with fake.serve() as url:
        env = {"VAIRO_API_KEY": fake.api_key, "VAIRO_BASE_URL": url, "VAIRO_SENDER": "ACME"}
        result = await invoke_async(
            ["campaign", "start", str(path), "--broker", redis_url, "--journal", redis_url,
             "--queue", queue, "--id", campaign_id, "--batch-size", "2"],
            env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        (task,) = await _stream(redis_url, queue)
        async with (
            RedisJournal(redis_url) as journal,
            AsyncVairoClient(api_key=fake.api_key, base_url=url, journal=journal) as client,
        ):
            await run_shard(client, journal, task)
        args = ["campaign", "wait", campaign_id, "--journal", redis_url, "--poll-interval", "0.01"]
        failed = await invoke_async(args, env)
        assert failed.exit_code == 1
        assert "FAILED" in failed.stdout
        never = FakeVairo(complete_after_polls=None)
        async with never.serve() as other:
            timed_out = await invoke_async(
                [*args, "--timeout", "0.05"], env | {"VAIRO_BASE_URL": other}
            )
        assert timed_out.exit_code == 1
        assert "ERROR" in timed_out.stdout


def test_export_to_a_place_that_cannot_be_written(tmp_path: Path, redis_url: str) -> None:
    result = invoke(
        ["campaign", "export", "x", "--journal", redis_url, "--out", str(tmp_path / "no" / "x")]
    )
    assert "cannot create" in assert_one_line_error(result)
