"""The record states of every store against a model of a few lines, driven by hypothesis."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vairo_async import (
    ClaimLostError,
    Journal,
    JournalError,
    MemoryJournal,
    RecordState,
    RedisJournal,
    SendInProgressError,
    SqliteJournal,
)
from vairo_async._journal import send_key

_T = TypeVar("_T")
KEYS = [send_key(name) for name in ("a", "b", "c")]
OWNERS = ["o1", "o2", "o3"]
LEASE = 10.0


@attrs.define
class Model:
    state: RecordState
    owner: str | None
    lease_expires: float | None
    package_id: int | None = None

    def effective(self, now: float) -> RecordState:
        lease_passed = self.lease_expires is not None and self.lease_expires <= now
        if self.state is RecordState.CLAIMED and lease_passed:
            return RecordState.UNKNOWN
        return self.state


class JournalStates(RuleBasedStateMachine):
    """Claims, renewals, settlements, releases, resolutions and the passing of time, in any
    order."""

    make: Callable[[Callable[[], float]], Journal]

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0
        self.loop = asyncio.new_event_loop()
        self.journal = self.make(lambda: self.now)
        self.model: dict[str, Model] = {}

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.journal.aclose())
        self.loop.close()

    def _owned(self, key: str, owner: str) -> bool:
        current = self.model.get(key)
        return (
            current is not None and current.state is RecordState.CLAIMED and current.owner == owner
        )

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def claim(self, key: str, owner: str) -> None:
        result = self.run(self.journal.claim(key, fingerprint="f", owner=owner, lease=LEASE))
        assert result.claimed == (key not in self.model)
        if result.claimed:
            self.model[key] = Model(RecordState.CLAIMED, owner, self.now + LEASE)
        assert result.record.owner == self.model[key].owner

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS), package=st.integers(1, 3))
    def mark_sent(self, key: str, owner: str, package: int) -> None:
        current = self.model.get(key)
        repeat = (
            current is not None
            and current.state is RecordState.SENT
            and current.owner == owner
            and current.package_id == package
        )
        call = self.journal.mark_sent(
            key, owner=owner, package_id=package, recipient_count=1, estimated_credits=None
        )
        if repeat or self._owned(key, owner):
            record = self.run(call)
            assert (record.state, record.package_id) == (RecordState.SENT, package)
            self.model[key] = Model(RecordState.SENT, owner, None, package)
        else:
            with pytest.raises(ClaimLostError):
                self.run(call)

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def mark_unknown(self, key: str, owner: str) -> None:
        current = self.model.get(key)
        repeat = current is not None and current.state is RecordState.UNKNOWN
        call = self.journal.mark_unknown(key, owner=owner, detail="x")
        if (repeat and current is not None and current.owner == owner) or self._owned(key, owner):
            assert self.run(call).state is RecordState.UNKNOWN
            self.model[key] = Model(RecordState.UNKNOWN, owner, None)
        else:
            with pytest.raises(ClaimLostError):
                self.run(call)

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def renew(self, key: str, owner: str) -> None:
        call = self.journal.renew(key, owner=owner, lease=LEASE)
        if self._owned(key, owner):
            record = self.run(call)
            assert record.lease_expires == self.now + LEASE
            self.model[key].lease_expires = self.now + LEASE
        else:
            before = self.run(self.journal.get(key))
            with pytest.raises(ClaimLostError):
                self.run(call)
            assert self.run(self.journal.get(key)) == before

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def release(self, key: str, owner: str) -> None:
        call = self.journal.release(key, owner=owner)
        if key not in self.model or self._owned(key, owner):
            self.run(call)
            self.model.pop(key, None)
        else:
            with pytest.raises(ClaimLostError):
                self.run(call)

    @rule(key=st.sampled_from(KEYS), package=st.none() | st.integers(1, 3))
    def resolve(self, key: str, package: int | None) -> None:
        current = self.model.get(key)
        call = self.journal.resolve(key, package_id=package)
        if current is None:
            with pytest.raises(JournalError, match="nothing to resolve"):
                self.run(call)
            return
        state = current.effective(self.now)
        if state is RecordState.CLAIMED:
            with pytest.raises(SendInProgressError):
                self.run(call)
        elif state is RecordState.SENT and current.package_id != package:
            with pytest.raises(JournalError, match="cannot be resolved again"):
                self.run(call)
        elif package is None:
            assert self.run(call) is None
            del self.model[key]
        else:
            record = self.run(call)
            assert record is not None
            assert (record.state, record.package_id) == (RecordState.SENT, package)
            if state is not RecordState.SENT:
                self.model[key] = Model(RecordState.SENT, None, None, package)

    @rule(seconds=st.sampled_from([1.0, 5.0, LEASE]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def records_match_the_model(self) -> None:
        for key in KEYS:
            record = self.run(self.journal.get(key))
            expected = self.model.get(key)
            if expected is None:
                assert record is None
                continue
            assert record is not None
            assert (record.state, record.owner, record.package_id, record.lease_expires) == (
                expected.state,
                expected.owner,
                expected.package_id,
                expected.lease_expires,
            )
            assert record.effective_state(self.now) is expected.effective(self.now)
        unresolved = {r.key for r in self.run(self.journal.unresolved())}
        assert unresolved == {k for k, m in self.model.items() if m.state is not RecordState.SENT}
        unknown = {r.key for r in self.run(self.journal.records(states={RecordState.UNKNOWN}))}
        assert unknown == {
            k for k, m in self.model.items() if m.effective(self.now) is RecordState.UNKNOWN
        }


_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _machine(make: Callable[[Callable[[], float]], Journal]) -> type[JournalStates]:
    return type("Machine", (JournalStates,), {"make": staticmethod(make)})


def test_memory_journal_states() -> None:
    machine = _machine(lambda clock: MemoryJournal(clock=clock))
    machine.TestCase.settings = _SETTINGS
    machine.TestCase().runTest()


def test_sqlite_journal_states(tmp_path: Path) -> None:
    def make(clock: Callable[[], float]) -> Journal:
        return SqliteJournal(Path(tempfile.mkdtemp(dir=tmp_path)) / "journal.db", clock=clock)

    machine = _machine(make)
    machine.TestCase.settings = _SETTINGS
    machine.TestCase().runTest()


def test_redis_journal_states(redis_url: str) -> None:
    def make(clock: Callable[[], float]) -> Journal:
        return RedisJournal(redis_url, prefix=f"test-{uuid.uuid4().hex}:", clock=clock)

    machine = _machine(make)
    machine.TestCase.settings = _SETTINGS
    machine.TestCase().runTest()
