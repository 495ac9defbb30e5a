"""Journals of sends: records written before each request, so crashes never send twice."""

from ._base import (
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
