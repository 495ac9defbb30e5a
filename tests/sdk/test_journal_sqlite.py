"""Processes sharing one store, and SqliteJournal beyond the contract: exit, failures."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from vairo_async import ClaimLostError, JournalUnavailableError, RecordState, SqliteJournal
from vairo_async._journal import send_key

from ..support import ROOT

_CLAIMER = textwrap.dedent(
    """
    import asyncio, json, sys
    from vairo_async import RedisJournal, SqliteJournal

    async def main(store, owner, keys):
        if store.startswith("redis://"):
            url, _, prefix = store.partition(" ")
            journal = RedisJournal(url, prefix=prefix)
        else:
            journal = SqliteJournal(store, busy_timeout=60)
        async with journal:
            print("ready", flush=True)
            sys.stdin.readline()  # the parent starts every claimer at once
            won = []
            for key in keys:
                claim = await journal.claim(key, fingerprint="f", owner=owner, lease=60)
                if claim.claimed:
                    won.append(key)
        print(json.dumps(won), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    """
)


def _python(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, *args], env=env, text=True, **kwargs
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_processes_claiming_the_same_keys_give_one_winner_each(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = str(tmp_path / "shared.db")
    prefix = f"test-{uuid.uuid4().hex}:"
    store = path if backend == "sqlite" else f"{request.getfixturevalue('redis_url')} {prefix}"
    keys = [send_key(f"k{i}") for i in range(60)]
    procs = [
        _python(
            "-c",
            _CLAIMER,
            store,
            owner,
            json.dumps(order),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for owner, order in (("p1", keys), ("p2", keys[::-1]))
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    won = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        won.append(set(json.loads(out)))

    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(keys)
    if backend == "sqlite":
        with sqlite3.connect(path) as conn:
            owners = dict(conn.execute("SELECT key, owner FROM records").fetchall())
        assert {key for key, owner in owners.items() if owner == "p1"} == won[0]


def test_an_interpreter_that_never_closes_the_journal_exits_promptly(tmp_path: Path) -> None:
    path = tmp_path / "open.db"
    script = textwrap.dedent(
        """
        import asyncio, sys
        from vairo_async import SqliteJournal

        journal = SqliteJournal(sys.argv[1])

        async def main():
            await journal.claim("send:k", fingerprint="f", owner="o", lease=60)

        asyncio.run(main())
        print("done", flush=True)
        """
    )
    proc = _python("-c", script, str(path), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)

    assert (proc.returncode, out.strip()) == (0, "done")
    with sqlite3.connect(path) as conn:  # committed before the claim returned
        assert conn.execute("SELECT state FROM records").fetchall() == [("claimed",)]


async def test_the_file_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)
        conn = journal._conn
        assert conn is not None
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


async def test_a_new_claim_and_its_sent_mark_are_one_statement_each(tmp_path: Path) -> None:
    # One statement is its own transaction: no BEGIN, look-up or COMMIT around the two writes
    # every batch and every single send makes.
    async with SqliteJournal(tmp_path / "j.db") as journal:
        conn = journal._conn
        assert conn is not None
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)
        claimed, statements[:] = list(statements), []
        record = await journal.mark_sent(
            send_key("k"), owner="o", package_id=9, recipient_count=2, estimated_credits=3
        )
        marked = list(statements)
        conn.set_trace_callback(None)

    assert [s.split()[0] for s in claimed] == ["INSERT"]
    assert [s.split()[0] for s in marked] == ["UPDATE"]
    assert (record.state, record.package_id, record.lease_expires) == (RecordState.SENT, 9, None)


async def test_a_record_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)
        await journal.mark_sent(
            send_key("k"), owner="o", package_id=9, recipient_count=2, estimated_credits=3
        )

    async with SqliteJournal(path) as journal:
        record = await journal.get(send_key("k"))
    assert record is not None
    assert (record.state, record.package_id, record.estimated_credits) == (RecordState.SENT, 9, 3)


async def test_an_unopenable_path_is_unavailable_with_the_cause(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "missing-dir" / "j.db")

    with pytest.raises(JournalUnavailableError, match="could not be used") as raised:
        await journal.claim(send_key("k"), fingerprint="f", owner="o", lease=5)

    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    await journal.aclose()


async def test_a_path_under_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    journal = SqliteJournal(tmp_path / "plain" / "j.db")

    with pytest.raises(JournalUnavailableError, match="plain"):
        await journal.put_campaign("c", {})
    with pytest.raises(JournalUnavailableError):  # tried again on the next call, not cached
        await journal.get(send_key("k"))
    await journal.aclose()


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not a database file" * 100)

    with pytest.raises(JournalUnavailableError) as raised:
        async with SqliteJournal(path):
            pass
    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)


async def test_writes_waiting_together_commit_together_each_with_its_own_answer(
    tmp_path: Path,
) -> None:
    # 64 claims and SENT marks in flight at once share transactions (a group commit); each
    # caller hears only of its own result, a refused one changes nothing of the others, and
    # every accepted write is on disk for another connection when its caller hears of it.
    path = tmp_path / "j.sqlite3"
    keys = [send_key(f"k{i}") for i in range(64)]
    async with SqliteJournal(path) as journal:
        claims = await asyncio.gather(
            *(
                journal.claim(k, fingerprint="f", owner=f"o{i}", lease=60)
                for i, k in enumerate(keys)
            )
        )
        assert all(claim.claimed for claim in claims)
        marks = await asyncio.gather(
            *(
                journal.mark_sent(
                    k,
                    owner="intruder" if i == 7 else f"o{i}",
                    package_id=1000 + i,
                    recipient_count=1,
                    estimated_credits=1,
                )
                for i, k in enumerate(keys)
            ),
            return_exceptions=True,
        )
        assert isinstance(marks[7], ClaimLostError)
        assert [m.package_id for i, m in enumerate(marks) if i != 7] == [  # type: ignore[union-attr]
            1000 + i for i in range(64) if i != 7
        ]
        other = sqlite3.connect(path)
        try:
            rows = dict(other.execute("SELECT key, state FROM records").fetchall())
        finally:
            other.close()
    assert rows == {k: ("claimed" if i == 7 else "sent") for i, k in enumerate(keys)}


_OPENER = textwrap.dedent(
    """
    import asyncio, sys
    from vairo_async import SqliteJournal

    async def main(path, key):
        print("ready", flush=True)
        sys.stdin.readline()  # the parent starts every opener at once, on a new file
        async with SqliteJournal(path) as journal:
            claim = await journal.claim(key, fingerprint="f", owner=key, lease=60)
        print("claimed" if claim.claimed else "refused", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_processes_opening_one_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    # Switching a new file to WAL needs it alone; SQLite answers "locked" at once to the
    # others, which must wait their turn instead of failing.
    path = str(tmp_path / "new.db")
    procs = [
        _python(
            "-c", _OPENER, path, send_key(f"k{i}"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for i in range(12)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = [proc.communicate(timeout=60)[0] for proc in procs]
    assert answers == ["claimed\n"] * 12
    assert [proc.returncode for proc in procs] == [0] * 12
