"""Journals of sends: records written before each request, so crashes never send twice."""

from ._base import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Claim,
    Journal,
    JournalRecord,
    RecordState,
    batch_key,
    fingerprint,
    new_owner,
    send_key,
)
from ._memory import MemoryJournal
from ._redis import RedisJournal
from ._sqlite import SqliteJournal

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "Claim",
    "Journal",
    "JournalRecord",
    "MemoryJournal",
    "RecordState",
    "RedisJournal",
    "SqliteJournal",
    "batch_key",
    "fingerprint",
    "new_owner",
    "send_key",
]
