"""RedisJournal beyond the contract: expiry on the server, failures, secrets, the lazy import."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest
import redis.asyncio

from vairo_async import ConfigurationError, JournalUnavailableError, RecordState, RedisJournal
from vairo_async._journal import batch_key, send_key

from ..redis_server import find_server, running_server
from ..support import ROOT

PASSWORD = "hunter2-S3CR3T-pass"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port  # nothing listens once the probe is closed


async def test_single_sends_expire_on_the_server_and_batches_do_not(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    async with RedisJournal(redis_url, prefix=prefix) as journal:
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5, retention=3600)
        await journal.mark_sent(
            send_key("k"), owner="o", package_id=1, recipient_count=1, estimated_credits=None
        )
        await journal.claim(
            batch_key("c", 0), fingerprint="f", owner="o", lease=5, campaign="c", batch=0
        )

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        single_ttl = await client.pttl(f"{prefix}r:send:k")
        batch_ttl = await client.pttl(f"{prefix}r:batch:c:0")
        unresolved = await client.smembers(f"{prefix}unresolved")
        index = await client.zrange(f"{prefix}c:c", 0, -1)
    finally:
        await client.aclose()
    assert 3_590_000 < single_ttl <= 3_600_000
    assert batch_ttl == -1
    assert unresolved == {b"batch:c:0"}
    assert index == [b"batch:c:0"]


async def test_a_record_gone_from_the_server_reads_as_never_sent(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        journal = RedisJournal(client, prefix=prefix)  # a client of the caller's, kept open
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5, retention=60)
        await client.delete(f"{prefix}r:send:k")  # as PEXPIRE would

        assert await journal.get(send_key("k")) is None
        assert await journal.unresolved() == []
        assert (await journal.claim(send_key("k"), fingerprint="g", owner="p", lease=5)).claimed
        await journal.aclose()
        assert await client.ping()
        record = await journal_get_raw(client, f"{prefix}r:send:k")
        assert record["owner"] == "p"
    finally:
        await client.aclose()


async def journal_get_raw(client: redis.asyncio.Redis, name: str) -> dict[str, str]:
    raw = await client.hgetall(name)
    return {str(field): str(value) for field, value in raw.items()}


async def test_a_server_that_is_not_there_is_unavailable_without_the_password() -> None:
    url = f"redis://user:{PASSWORD}@127.0.0.1:{_closed_port()}/0"
    journal = RedisJournal(url, timeout=2)

    with pytest.raises(JournalUnavailableError) as raised:
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)

    message = str(raised.value)
    assert "could not be used" in message
    assert "127.0.0.1" in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(journal)
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    cause: BaseException | None = raised.value
    while cause is not None:
        assert PASSWORD not in str(cause)
        cause = cause.__cause__ or cause.__context__
    with pytest.raises(JournalUnavailableError):
        async with RedisJournal(url, timeout=2):
            pass
    await journal.aclose()


async def test_a_server_that_went_away_is_unavailable(redis_url: str) -> None:
    binary = find_server()
    assert binary is not None  # redis_url found one
    with running_server(binary) as url:
        journal = RedisJournal(url, timeout=2)
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)

    with pytest.raises(JournalUnavailableError, match="could not be used"):
        await journal.mark_sent(
            send_key("k"), owner="o", package_id=1, recipient_count=1, estimated_credits=None
        )
    await journal.aclose()


def test_a_url_that_is_not_redis_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL") as raised:
        RedisJournal(f"http://user:{PASSWORD}@example.invalid/")
    assert PASSWORD not in str(raised.value)


def test_the_sdk_imports_without_redis() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if the package were not installed
        import vairo_async
        assert "redis" not in [m for m in sys.modules if sys.modules[m] is not None]
        try:
            vairo_async.RedisJournal("redis://127.0.0.1:1/0")
        except vairo_async.ConfigurationError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'vairo-async[redis]'" in out


async def test_records_state_round_trips_through_the_hash(redis_url: str) -> None:
    async with RedisJournal(redis_url, prefix=f"test-{uuid.uuid4().hex}:") as journal:
        key = batch_key("c", 3)
        await journal.claim(
            key, fingerprint="f", owner="o", lease=5, campaign="c", batch=3, meta={"lines": [7]}
        )
        unknown = await journal.mark_unknown(key, owner="o", detail="ReadTimeout: ünlü")
        assert (unknown.state, unknown.detail, unknown.batch, unknown.meta) == (
            RecordState.UNKNOWN,
            "ReadTimeout: ünlü",
            3,
            {"lines": [7]},
        )
