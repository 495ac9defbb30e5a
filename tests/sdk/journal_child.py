"""A child process for the crash and race tests: runs against the parent's emulator.

python journal_child.py campaign URL KEY JOURNAL KILL
    Runs the test campaign (200 rows, batches of 10, concurrency 3) with a SqliteJournal
    at JOURNAL. KILL is "none" or "<point>:<n>": the process SIGKILLs itself right after
    the n-th claim is committed (after_claim), right before the n-th mark_sent
    (before_sent: the answer is in, SENT not written), or right after it (after_sent:
    between batches). Prints the result as JSON when it ends.
python journal_child.py sends URL KEY JOURNAL IDEMPOTENCY_KEY
    Prints "ready", waits for a line on stdin, then makes 25 concurrent sends with
    IDEMPOTENCY_KEY; JOURNAL is a SQLite path or a redis:// URL. Prints each call's
    result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from vairo_async import (
    AsyncVairoClient,
    Claim,
    Journal,
    JournalRecord,
    Message,
    RedisJournal,
    SqliteJournal,
    VairoError,
)

ROWS = 200
BATCH_SIZE = 10
CONCURRENCY = 3
CAMPAIGN = "crash-test"
SENDS = 25


def rows() -> list[Message]:
    return [Message(to=f"53{i:08d}", text=f"Kampanya {i}", ref=i) for i in range(ROWS)]


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingJournal(SqliteJournal):
    """A SqliteJournal whose process is killed at one chosen write."""

    def __init__(self, path: str, kill: str) -> None:
        super().__init__(path)
        point, _, n = kill.partition(":")
        self.point = point
        self.n = int(n or 0)
        self.counts = {"claim": 0, "mark_sent": 0}

    async def claim(self, key: str, **kwargs: Any) -> Claim:
        self.counts["claim"] += 1
        nth = self.counts["claim"]  # others may be counted while this one is written
        claim = await super().claim(key, **kwargs)
        if self.point == "after_claim" and nth == self.n:
            die()
        return claim

    async def mark_sent(self, key: str, **kwargs: Any) -> JournalRecord:
        self.counts["mark_sent"] += 1
        nth = self.counts["mark_sent"]
        if self.point == "before_sent" and nth == self.n:
            die()
        record = await super().mark_sent(key, **kwargs)
        if self.point == "after_sent" and nth == self.n:
            die()
        return record


async def campaign(url: str, key: str, path: str, kill: str) -> None:
    async with (
        KillingJournal(path, kill) as journal,
        AsyncVairoClient(key, sender="ACME", base_url=url, journal=journal) as vairo,
    ):
        result = await vairo.send_bulk(
            rows(), batch_size=BATCH_SIZE, concurrency=CONCURRENCY, campaign=CAMPAIGN
        )
    print(
        json.dumps(
            {
                "total": result.total,
                "sent": result.sent,
                "failed": result.failed,
                "unknown": result.unknown,
                "rejected": result.rejected,
                "package_ids": result.package_ids,
                "replayed": sorted(o.index for o in result.outcomes if o.replayed),
                "unknown_batches": sorted(
                    o.index for o in result.outcomes if o.state.value == "unknown"
                ),
            }
        )
    )


async def sends(url: str, key: str, where: str, idempotency_key: str) -> None:
    journal: Journal = RedisJournal(where) if where.startswith("redis://") else SqliteJournal(where)
    async with (
        journal,
        AsyncVairoClient(key, sender="ACME", base_url=url, journal=journal) as vairo,
    ):
        await journal.records()  # connected before the race starts
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def one() -> dict[str, Any]:
            try:
                sub = await vairo.send(
                    "Siparisiniz alindi", to="5399999999", idempotency_key=idempotency_key
                )
            except VairoError as exc:
                return {"error": type(exc).__name__}
            return {"package_id": sub.package_id, "replayed": sub.replayed}

        results = await asyncio.gather(*(one() for _ in range(SENDS)))
    print(json.dumps(results), flush=True)


def main() -> None:
    mode, url, key, where, *rest = sys.argv[1:]
    if mode == "campaign":
        asyncio.run(campaign(url, key, where, rest[0]))
    else:
        asyncio.run(sends(url, key, where, rest[0]))


if __name__ == "__main__":
    main()
