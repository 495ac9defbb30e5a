"""`vairo-sms journal`: campaigns, unknown batches, resolving and exporting, end to end.

The journals come from real `bulk` runs against the emulator on loopback (a 500 leaves a
batch UNKNOWN), or, for claims still in flight, from a claim written through the store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.cli.test_bulk_files import read_report
from tests.cli.test_bulk_journal import bulk_args, final_batches, numbered_csv
from tests.cli.test_cli import assert_one_line_error, invoke_async, served, table_values
from vairo_async import ConfigurationError, SqliteJournal
from vairo_async._cli import common
from vairo_async._cli.journal import line_ranges, row_refs
from vairo_async._journal import batch_key, new_owner
from vairo_async.testing import FakeVairo, Fault

__all__ = ["served"]


@pytest.fixture
def wide(served: tuple[FakeVairo, dict[str, str]]) -> tuple[FakeVairo, dict[str, str]]:
    """The emulator, and a terminal wide enough for every table row on one line."""
    fake, env = served
    return fake, {**env, "COLUMNS": "250"}


def rows_of(text: str) -> list[list[str]]:
    """The body rows of a rendered rich table, cells stripped."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


async def unknown_campaign(
    fake: FakeVairo, env: dict[str, str], tmp_path: Path, *, accepted: bool
) -> tuple[Path, Path, str]:
    """A 6-row campaign in two batches whose first is UNKNOWN (a 500, `accepted` or not)."""
    source = numbered_csv(tmp_path / "liste.csv", rows=6)
    report = tmp_path / "r.jsonl"
    fake.inject(Fault.server_error(500, accepted=accepted))
    result = await invoke_async(bulk_args(source, report, "--concurrency", "1"), env)
    assert result.exit_code == 1, result.output
    campaign = read_report(report)[0]["campaign"]
    return report, tmp_path / "r.jsonl.journal", campaign


async def test_finishing_a_campaign_whose_batch_is_unknown_with_the_package_id(
    wide: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = wide
    report, journal, campaign = await unknown_campaign(fake, env, tmp_path, accepted=True)
    package_id = min(fake.packages)  # what the panel shows for the unknown batch's rows

    listed = await invoke_async(["journal", "campaigns", str(journal)], env)
    unknown = await invoke_async(["journal", "unknown", str(journal), campaign], env)
    resolved = await invoke_async(
        ["journal", "resolve", str(journal), f"{campaign}:0", "--package-id", str(package_id)],
        env,
    )
    rerun = await invoke_async(bulk_args(source := tmp_path / "liste.csv", report), env)
    out = tmp_path / "ids.jsonl"
    exported = await invoke_async(
        ["journal", "export", str(journal), campaign, "--out", str(out)], env
    )

    assert listed.exit_code == 0, listed.output
    assert rows_of(listed.stdout) == [[campaign, "ACME", "3", "1", "1", "0", "3"]]
    assert unknown.exit_code == 0, unknown.output
    [row] = rows_of(unknown.stdout)
    assert row[:2] == [batch_key(campaign, 0), "unknown"]
    assert row[3:6] == ["3", "2-4", "C0, C1, C2"]
    assert row[6] == "HTTP 500: Sunucu hatası oluştu."  # the failure behind the doubt
    assert "vairo-sms journal resolve JOURNAL KEY" in unknown.stdout
    assert resolved.exit_code == 0, resolved.output
    assert resolved.stdout.strip() == f"{batch_key(campaign, 0)}: sent as package {package_id}"
    assert rerun.exit_code == 0, rerun.output
    assert source.exists()
    assert len(fake.messages) == 6  # nothing sent twice: batch 0 is the resolved package
    assert fake.duplicates() == {}
    final = final_batches(read_report(report))
    assert (final[0]["state"], final[0]["package_id"], final[0]["replayed"]) == (
        "sent",
        package_id,
        True,
    )
    assert read_report(report)[-1]["sent"] == 6
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(x["batch"], x["state"], x["recipients"]) for x in lines] == [
        (0, "sent", 3),
        (1, "sent", 3),
    ]
    assert {x["package_id"] for x in lines} == {p.package_id for p in fake.packages.values()}
    assert lines[1]["rows"] == [{"line": n, "id": f"C{n - 2}"} for n in (5, 6, 7)]
    shown = table_values(exported.stdout)
    assert (shown["batches"], shown["sent"], shown["unknown"], shown["messages sent"]) == (
        "2",
        "2",
        "0",
        "6",
    )


async def test_resolving_as_not_sent_lets_the_rerun_send_the_batch(
    wide: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = wide
    report, journal, campaign = await unknown_campaign(fake, env, tmp_path, accepted=False)
    assert len(fake.messages) == 3

    resolved = await invoke_async(
        ["journal", "resolve", str(journal), batch_key(campaign, 0), "--not-sent"], env
    )
    nothing = await invoke_async(["journal", "unknown", str(journal), campaign], env)
    rerun = await invoke_async(bulk_args(tmp_path / "liste.csv", report), env)

    assert resolved.exit_code == 0, resolved.output
    assert "not sent; its record is removed, so rerunning the campaign sends it" in resolved.stdout
    assert nothing.stdout.strip() == f"nothing unresolved in {campaign} in {journal.absolute()}"
    assert rerun.exit_code == 0, rerun.output
    assert len(fake.messages) == 6
    assert fake.duplicates() == {}
    summary = read_report(report)[-1]
    assert (summary["sent"], summary["replayed"], summary["unknown"]) == (6, 3, 0)


async def test_claims_live_and_expired_and_single_sends(
    wide: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    _, env = wide
    journal = tmp_path / "j.db"
    async with SqliteJournal(journal) as store:
        await store.put_campaign("c", {"sender": "ACME", "batch_size": 2})
        meta = {"refs": [{"line": 2, "id": None}, {"line": 3, "id": None}]}
        await store.claim(
            batch_key("c", 0),
            fingerprint="f",
            owner=new_owner(),
            lease=3600,
            campaign="c",
            batch=0,
            meta=meta,
        )
    async with SqliteJournal(journal, clock=lambda: time.time() - 7200) as past:
        await past.claim(
            batch_key("c", 1),
            fingerprint="f",
            owner=new_owner(),
            lease=60,
            campaign="c",
            batch=1,
            meta=meta,
        )
        await past.claim("send:order-7", fingerprint="g", owner=new_owner(), lease=60)

    listed = await invoke_async(["journal", "campaigns", str(journal)], env)
    every = await invoke_async(["journal", "unknown", str(journal)], env)
    live = await invoke_async(["journal", "resolve", str(journal), "c:0", "--package-id", "5"], env)
    expired = await invoke_async(
        ["journal", "resolve", str(journal), "c:1", "--package-id", "5"], env
    )
    again = await invoke_async(
        ["journal", "resolve", str(journal), "c:1", "--package-id", "6"], env
    )
    single = await invoke_async(
        ["journal", "resolve", str(journal), "send:order-7", "--not-sent"], env
    )

    assert rows_of(listed.stdout) == [["c", "ACME", "2", "0", "1", "1", "0"]]
    states = {row[0]: row[1] for row in rows_of(every.stdout)}
    assert states == {
        batch_key("c", 0): "claimed",
        batch_key("c", 1): "unknown (claim expired)",
        "send:order-7": "unknown (claim expired)",
    }
    assert "lines" in every.stdout
    assert "ids" not in every.stdout  # no row carries an id
    line = assert_one_line_error(live, 1)
    assert "is claimed by a run whose lease lasts until" in line
    assert expired.stdout.strip() == f"{batch_key('c', 1)}: sent as package 5"
    assert "cannot be resolved again" in assert_one_line_error(again)
    assert "so it may be sent again" in single.stdout


async def test_bad_usage_of_the_journal_commands(
    wide: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = wide
    report, journal, campaign = await unknown_campaign(fake, env, tmp_path, accepted=False)
    taken = tmp_path / "taken.jsonl"
    taken.write_text("old\n")
    missing_path = tmp_path / "nope.journal"
    missing = str(missing_path)
    empty = tmp_path / "empty.db"
    async with SqliteJournal(empty):
        pass

    cases = {
        "neither": (["resolve", str(journal), "c:0"], "exactly one of --package-id"),
        "both": (["resolve", str(journal), "c:0", "--package-id", "1", "--not-sent"], "exactly"),
        "id 0": (
            ["resolve", str(journal), f"{campaign}:0", "--package-id", "0"],
            "'--package-id': 0 is not in the range x>=1",
        ),
        "bad key": (["resolve", str(journal), "nokey", "--not-sent"], "is not a journal key"),
        "no record": (["resolve", str(journal), f"{campaign}:9", "--not-sent"], "no record for"),
        "no journal": (["campaigns", missing], "no journal at"),
        "no campaign": (["unknown", str(journal), "other"], "no campaign 'other'"),
        "export none": (["export", str(journal), "other", "--out", "x"], "no campaign"),
        "export taken": (["export", str(journal), campaign, "--out", str(taken)], "exists"),
        "export folder": (["export", str(journal), campaign, "--out", "/nope/x"], "cannot write"),
    }
    for name, (args, expected) in cases.items():
        result = await invoke_async(["journal", *args], env)
        assert expected in assert_one_line_error(result), name
    empty_list = await invoke_async(["journal", "campaigns", str(empty)], env)

    assert empty_list.stdout.strip() == f"no campaigns in {empty.absolute()}"
    assert not missing_path.exists()
    assert taken.read_text() == "old\n"
    assert report.exists()


async def test_a_redis_journal_never_shows_its_password(
    wide: tuple[FakeVairo, dict[str, str]], tmp_path: Path, redis_url: str
) -> None:
    fake, env = wide
    password = "An0ther-s3cret"
    host = redis_url.removeprefix("redis://").rsplit("/", 1)[0]
    url = f"redis://default:{password}@{host}/4"
    admin = aioredis.Redis.from_url(redis_url)
    await admin.config_set("requirepass", password)
    await admin.aclose()
    try:
        source = numbered_csv(tmp_path / "liste.csv", rows=3)
        sent = await invoke_async(bulk_args(source, tmp_path / "r.jsonl", "--journal", url), env)
        listed = await invoke_async(["journal", "campaigns", url], env)
        wrong = await invoke_async(["journal", "campaigns", url.replace(password, "nope")], env)
    finally:
        async with aioredis.Redis.from_url(url) as admin:
            await admin.flushdb()
            await admin.config_set("requirepass", "")
    down = await invoke_async(["journal", "campaigns", f"redis://u:{password}@127.0.0.1:9/0"], env)

    assert sent.exit_code == 0, sent.output
    assert f"Campaigns in redis://default:[REDACTED]@{host}/4" in listed.stdout
    assert rows_of(listed.stdout)[0][3] == "1"
    for result in (wrong, down):
        assert "JournalUnavailableError" in assert_one_line_error(result, 1)
    for result in (sent, listed, wrong, down):
        assert password not in result.output
    assert len(fake.messages) == 3


@pytest.mark.parametrize(
    ("lines", "expected"),
    [([], ""), ([4], "4"), ([2, 3, 4, 8, 10, 11], "2-4, 8, 10-11"), ([5, 3, 4, 4], "3-5")],
)
def test_line_ranges(lines: list[int], expected: str) -> None:
    assert line_ranges(lines) == expected


def test_row_refs_read_every_shape_a_ref_may_have() -> None:
    meta = {"refs": [{"line": 2, "id": "A"}, [3, "B"], [4], 5, "x", True, {"id": 7}]}

    assert row_refs(meta) == ([2, 3, 4, 5], ["A", "B", "7"])
    assert row_refs({}) == ([], [])


async def test_a_redis_url_without_a_password_and_without_the_redis_extra(
    wide: tuple[FakeVairo, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env = wide
    down = await invoke_async(["journal", "campaigns", "redis://127.0.0.1:9/0"], env)

    def no_redis(url: str) -> None:
        raise ConfigurationError(
            "RedisJournal needs the redis package: pip install 'vairo-async[redis]'"
        )

    monkeypatch.setattr(common, "RedisJournal", no_redis)
    missing = await invoke_async(["journal", "campaigns", "redis://127.0.0.1:9/0"], env)

    assert "redis://127.0.0.1:9/0" in assert_one_line_error(down, 1)
    assert "needs the redis package" in assert_one_line_error(missing)
