"""`SqliteJournal`: the embedded journal, stdlib `sqlite3` on one dedicated thread.

Every write is one transaction that takes the write lock as it starts: a single statement
where one does (claiming a new key, settling or renewing one's own claim), `BEGIN IMMEDIATE`
otherwise. Each is committed with `synchronous=FULL` in WAL mode before the call returns, so
a record survives a crash of the process or of the machine; the busy timeout lets several
processes of one machine share the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from .._errors import ClaimLostError, JournalUnavailableError
from ._base import (
    Claim,
    Clock,
    JournalRecord,
    RecordState,
    check_claim_args,
    check_lease,
    check_resolvable,
    dump_json,
    load_json,
    sort_key,
)

__all__ = ["SqliteJournal"]

_T = TypeVar("_T")
_Job = tuple[
    Callable[[sqlite3.Connection], Any] | None, asyncio.AbstractEventLoop, asyncio.Future[Any]
]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS records (
        key TEXT PRIMARY KEY,
        campaign TEXT,
        batch INTEGER,
        state TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        owner TEXT,
        lease_expires REAL,
        package_id INTEGER,
        recipient_count INTEGER,
        estimated_credits INTEGER,
        detail TEXT,
        meta TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS records_by_campaign ON records (campaign, batch)",
    "CREATE INDEX IF NOT EXISTS records_expiring ON records (expires_at)"
    " WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS campaigns (
        campaign TEXT PRIMARY KEY,
        header TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
)
_COLUMNS = (
    "key, campaign, batch, state, fingerprint, owner, lease_expires, package_id,"
    " recipient_count, estimated_credits, detail, meta, created_at, updated_at, expires_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM records"
_INSERT = (
    f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)
# The record is `owner`'s claim, within its retention (arguments: key, owner, now).
_OWNED = "key = ? AND owner = ? AND state = 'claimed' AND (expires_at IS NULL OR expires_at > ?)"
_PURGE = "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?"
# Single sends past their retention are deleted at most this often (seconds of the clock).
_PURGE_EVERY = 600.0
# Jobs waiting together share one transaction and one disk sync (a group commit), at most:
_GROUP_MAX = 64


def _record(row: tuple[Any, ...]) -> JournalRecord:
    return JournalRecord(
        key=row[0],
        campaign=row[1],
        batch=row[2],
        state=RecordState(row[3]),
        fingerprint=row[4],
        owner=row[5],
        lease_expires=row[6],
        package_id=row[7],
        recipient_count=row[8],
        estimated_credits=row[9],
        detail=row[10],
        meta=load_json(row[11]),
        created_at=row[12],
        updated_at=row[13],
        expires_at=row[14],
    )


def _fetch(conn: sqlite3.Connection, key: str, now: float) -> JournalRecord | None:
    row = conn.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    record = _record(row)
    return None if record.is_expired(now) else record


def _write(conn: sqlite3.Connection, body: Callable[[], _T]) -> _T:
    """Run `body` in one `BEGIN IMMEDIATE` transaction, committed before returning.

    Inside a group's transaction, `body` runs under a savepoint instead: its changes are
    undone if it raises, and committed with the group's.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT job")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            raise
        conn.execute("RELEASE job")
        return result
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteJournal:
    """A `Journal` in a SQLite file: the embedded default, crash-safe on one machine.

    The file is opened on first use (or on `async with`) by a daemon thread that owns the
    connection and runs every query, so the event loop never waits on a disk sync, and an
    interpreter that never closes the journal still exits. WAL mode, `synchronous=FULL`,
    writes that take the write lock as they start and a busy timeout let several processes
    of one machine share the file (not over a network file system: SQLite's locks need a local one).
    A bulk batch costs two commits (claim, then SENT), as does a single send; writes that
    wait for the thread together share one transaction and one disk sync (a group commit),
    each answered only once it is on disk.

    Args:
        path: The database file; created, with its tables, if missing.
        busy_timeout: Seconds to wait for another process's write lock before failing.
        clock: Seconds since the epoch; `time.time` by default.

    Raises:
        JournalUnavailableError: (from every method) the file could not be opened, read or
            written; the `sqlite3` error is the `__cause__`.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0, clock: Clock = time.time
    ) -> None:
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_purge = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteJournal({self._path!r})"

    # -- the thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < _GROUP_MAX and jobs[-1][0] is not None:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            closing = jobs[-1][0] is None
            work = jobs[:-1] if closing else jobs
            answers = self._answer([fn for fn, _, _ in work if fn is not None]) if work else []
            if closing:
                answers.append(self._close_connection())
            for (_, loop, future), (result, error) in zip(jobs, answers, strict=True):
                # A closed loop means nobody is waiting for the answer any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_deliver, future, result, error)
            if closing:
                return

    def _answer(
        self, fns: list[Callable[[sqlite3.Connection], Any]]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run the jobs waiting together, in one transaction when there are several.

        Every answer is delivered only after the group's commit, so a claim is on disk when
        its caller hears of it. A `sqlite3` error fails the whole group: nothing of it was
        committed.
        """
        answers: list[tuple[Any, BaseException | None]] = []
        try:
            conn = self._connect()
            if len(fns) > 1:
                conn.execute("BEGIN IMMEDIATE")
            for fn in fns:
                try:
                    answers.append((fn(conn), None))
                except sqlite3.Error:
                    raise
                except BaseException as exc:
                    answers.append((None, exc))
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn is not None and self._conn.in_transaction:
                try:
                    self._conn.rollback()
                except sqlite3.Error:
                    self._conn.close()
                    self._conn = None
            error = JournalUnavailableError(
                f"the SQLite journal {self._path!r} could not be used: {exc}"
            )
            error.__cause__ = exc
            return [(None, error)] * len(fns)
        return answers

    def _close_connection(self) -> tuple[Any, BaseException | None]:
        """aclose(): close the connection; the thread ends after answering."""
        try:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        except sqlite3.Error as exc:
            return None, JournalUnavailableError(f"closing {self._path!r} failed: {exc}")
        return None, None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        # Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once
        # rather than waiting: processes opening one new file together try again, within the
        # busy timeout (this runs on the journal's own thread, never on the event loop).
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                conn = self._open()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
            else:
                break
        self._conn = conn
        self._next_purge = self._clock() + _PURGE_EVERY
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")

            def create() -> None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(_PURGE, (self._clock(),))

            _write(conn, create)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], _T] | None) -> _T:
        if self._closed and fn is not None:
            raise JournalUnavailableError(f"{self!r} is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="vairo-sqlite-journal", daemon=True
            )
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((fn, loop, future))
        return await future

    # -- the protocol ----------------------------------------------------------------------

    async def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        owner: str,
        lease: float,
        campaign: str | None = None,
        batch: int | None = None,
        retention: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Claim:
        """See `Journal.claim`."""
        lease_s, retention_s, meta_json = check_claim_args(
            key,
            fingerprint=fingerprint,
            owner=owner,
            lease=lease,
            campaign=campaign,
            batch=batch,
            retention=retention,
            meta=meta,
        )

        def job(conn: sqlite3.Connection) -> Claim:
            now = self._clock()
            row = (
                key,
                campaign,
                batch,
                RecordState.CLAIMED.value,
                fingerprint,
                owner,
                now + lease_s,
                None,
                None,
                None,
                None,
                meta_json,
                now,
                now,
                None if retention_s is None else now + retention_s,
            )
            # The common case, a new key, is one statement: atomic alone or in a group.
            if now < self._next_purge and conn.execute(_INSERT, row).rowcount:
                return Claim(True, _record(row))

            def body() -> Claim:
                if now >= self._next_purge:
                    conn.execute(_PURGE, (now,))
                    self._next_purge = now + _PURGE_EVERY
                existing = _fetch(conn, key, now)
                if existing is not None:
                    return Claim(False, existing)
                # Free, or held by a single send past its retention: replace that.
                conn.execute("DELETE FROM records WHERE key = ?", (key,))
                conn.execute(_INSERT, row)
                return Claim(True, _record(row))

            return _write(conn, body)

        return await self._run(job)

    async def renew(self, key: str, *, owner: str, lease: float) -> JournalRecord:
        """See `Journal.renew`."""
        lease_s = check_lease(lease)

        def job(conn: sqlite3.Connection) -> JournalRecord:
            now = self._clock()
            renewed = conn.execute(
                f"UPDATE records SET lease_expires = ?, updated_at = ? WHERE {_OWNED}"
                f" RETURNING {_COLUMNS}",
                (now + lease_s, now, key, owner, now),
            ).fetchall()
            if not renewed:
                raise ClaimLostError(key, _fetch(conn, key, now))
            return _record(renewed[0])

        return await self._run(job)

    async def _update(
        self, key: str, owner: str, done: Callable[[JournalRecord], bool], **changes: Any
    ) -> JournalRecord:
        """Compare-and-set on `owner`'s claim; a record `done` already accepts is returned."""
        assignments = ", ".join(f"{name} = ?" for name in changes)
        values = tuple(v.value if isinstance(v, RecordState) else v for v in changes.values())
        update = (
            f"UPDATE records SET {assignments}, lease_expires = NULL, updated_at = ?"
            f" WHERE {_OWNED} RETURNING {_COLUMNS}"
        )

        def job(conn: sqlite3.Connection) -> JournalRecord:
            now = self._clock()
            # The common case, the owner's live claim, is one statement: atomic alone or in a group.
            updated = conn.execute(update, (*values, now, key, owner, now)).fetchall()
            if updated:
                return _record(updated[0])
            record = _fetch(conn, key, now)
            if record is not None and record.owner == owner and done(record):
                return record
            raise ClaimLostError(key, record)

        return await self._run(job)

    async def mark_sent(
        self,
        key: str,
        *,
        owner: str,
        package_id: int,
        recipient_count: int,
        estimated_credits: int | None,
    ) -> JournalRecord:
        """See `Journal.mark_sent`."""
        return await self._update(
            key,
            owner,
            lambda r: r.state is RecordState.SENT and r.package_id == package_id,
            state=RecordState.SENT,
            package_id=package_id,
            recipient_count=recipient_count,
            estimated_credits=estimated_credits,
        )

    async def mark_unknown(self, key: str, *, owner: str, detail: str) -> JournalRecord:
        """See `Journal.mark_unknown`."""
        return await self._update(
            key,
            owner,
            lambda r: r.state is RecordState.UNKNOWN,
            state=RecordState.UNKNOWN,
            detail=detail,
        )

    async def release(self, key: str, *, owner: str) -> None:
        """See `Journal.release`."""

        def body(conn: sqlite3.Connection) -> None:
            record = _fetch(conn, key, self._clock())
            if record is None:
                return
            if record.state is not RecordState.CLAIMED or record.owner != owner:
                raise ClaimLostError(key, record)
            conn.execute("DELETE FROM records WHERE key = ?", (key,))

        await self._run(lambda conn: _write(conn, lambda: body(conn)))

    async def get(self, key: str) -> JournalRecord | None:
        """See `Journal.get`."""
        return await self._run(lambda conn: _fetch(conn, key, self._clock()))

    def _select(
        self, conn: sqlite3.Connection, where: str, args: tuple[Any, ...]
    ) -> list[JournalRecord]:
        now = self._clock()
        rows = conn.execute(
            f"{_SELECT} WHERE (expires_at IS NULL OR expires_at > ?){where}", (now, *args)
        ).fetchall()
        return sorted((_record(row) for row in rows), key=sort_key)

    async def records(
        self, *, campaign: str | None = None, states: Collection[RecordState] | None = None
    ) -> list[JournalRecord]:
        """See `Journal.records`."""
        where, args = ("", ()) if campaign is None else (" AND campaign = ?", (campaign,))
        found = await self._run(lambda conn: self._select(conn, where, args))
        if states is None:
            return found
        wanted = frozenset(states)
        now = self._clock()
        return [record for record in found if record.effective_state(now) in wanted]

    async def unresolved(self, *, campaign: str | None = None) -> list[JournalRecord]:
        """See `Journal.unresolved`."""
        where = " AND state != 'sent'"
        args: tuple[Any, ...] = ()
        if campaign is not None:
            where += " AND campaign = ?"
            args = (campaign,)
        return await self._run(lambda conn: self._select(conn, where, args))

    async def resolve(
        self, key: str, *, package_id: int | None, recipient_count: int | None = None
    ) -> JournalRecord | None:
        """See `Journal.resolve`."""

        def body(conn: sqlite3.Connection) -> JournalRecord | None:
            now = self._clock()
            record = _fetch(conn, key, now)
            check_resolvable(key, record, package_id, now)
            assert record is not None
            if package_id is None:
                conn.execute("DELETE FROM records WHERE key = ?", (key,))
                return None
            if record.state is RecordState.SENT:
                return record
            conn.execute(
                "UPDATE records SET state = ?, owner = NULL, lease_expires = NULL,"
                " package_id = ?, recipient_count = COALESCE(?, recipient_count),"
                " updated_at = ? WHERE key = ?",
                (RecordState.SENT.value, package_id, recipient_count, now, key),
            )
            return _fetch(conn, key, now)

        return await self._run(lambda conn: _write(conn, lambda: body(conn)))

    async def put_campaign(self, campaign: str, header: Mapping[str, Any]) -> Mapping[str, Any]:
        """See `Journal.put_campaign`."""
        text = dump_json(header, "campaign header")

        def body(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT OR IGNORE INTO campaigns (campaign, header, created_at) VALUES (?, ?, ?)",
                (campaign, text, self._clock()),
            )
            row = conn.execute(
                "SELECT header FROM campaigns WHERE campaign = ?", (campaign,)
            ).fetchone()
            return str(row[0])

        return load_json(await self._run(lambda conn: _write(conn, lambda: body(conn))))

    async def get_campaign(self, campaign: str) -> Mapping[str, Any] | None:
        """See `Journal.get_campaign`."""
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT header FROM campaigns WHERE campaign = ?", (campaign,)
            ).fetchone()
        )
        return None if row is None else load_json(row[0])

    async def campaigns(self) -> dict[str, Mapping[str, Any]]:
        """See `Journal.campaigns`."""
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT campaign, header FROM campaigns ORDER BY campaign"
            ).fetchall()
        )
        return {name: load_json(header) for name, header in rows}

    async def aclose(self) -> None:
        """Close the connection and end the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            await self._run(None)
            self._thread = None

    async def __aenter__(self) -> Self:
        try:
            await self._run(lambda conn: None)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
