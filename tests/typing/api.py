"""The public API as a user types it; checked by mypy (`nox -s typecheck`), never run."""

from __future__ import annotations

import httpx

from vairo_async import (
    AsyncVairoClient,
    BatchOutcome,
    BatchState,
    BulkProgress,
    BulkResult,
    Claim,
    ClaimLostError,
    Encoding,
    Journal,
    JournalRecord,
    JournalUnavailableError,
    MemoryJournal,
    Message,
    Messages,
    OutcomeUnknownError,
    PackageReport,
    PackageStatus,
    ProgressHook,
    RecordState,
    RedisJournal,
    Segments,
    SentNotRecordedError,
    SqliteJournal,
    Submission,
    WrongEventLoopError,
    segments,
    transliterate_turkish,
)
from vairo_async.testing import (
    FakeVairo,
    Fault,
    Package,
    RandomFaults,
    RemoteFakeVairo,
    RequestRecord,
    SentMessage,
)


async def everything() -> None:
    fake = FakeVairo()
    fake.inject(Fault.server_error(503), times=2)
    async with AsyncVairoClient(
        "key", sender="ACME", base_url=fake.base_url, transport=fake.transport()
    ) as vairo:
        sub: Submission = await vairo.send("Kodunuz 1234", to="0539 999 99 99")
        sub = await vairo.send("Merhaba", to=["5399999999", "5554444444"], tr_char=None)
        sub = await vairo.send_messages([Message(to="5399999999", text="Merhaba Ali")])
        package_id: int = sub.package_id
        credits: int = sub.estimated_credits

        report: PackageReport = await vairo.get_report(package_id)
        final: bool = report.status.is_final
        failed = report.status is PackageStatus.FAILED

        def progress(p: BulkProgress) -> None:
            print(p.total, p.sent, p.estimated_credits)

        async for outcome in vairo.iter_bulk([Message(to="5399999999", text="x")], rate=5.0):
            batch: BatchOutcome = outcome
            if batch.state is BatchState.UNKNOWN:
                assert isinstance(batch.error, OutcomeUnknownError)
        rows: Messages = (Message(to="5399999999", text=str(n)) for n in range(3))
        hook: ProgressHook = progress
        result: BulkResult = await vairo.send_bulk(rows, on_progress=hook, concurrency=2)

        async def store(p: BulkProgress) -> None:
            print(p.outcome.package_id)

        result = await vairo.send_bulk(rows, on_progress=store)
        try:
            await vairo.get_report(package_id)
        except WrongEventLoopError as exc:
            print("build one client per event loop:", exc)
        ids: list[int] = result.package_ids
        rows = [Message(to="0539 999 99 99", text="Merhaba", ref=("customer", 42))]
        optout: set[str] = {"+90 539 999 99 98"}
        again = await vairo.send_bulk(rows, exclude=optout)
        print([r.message.ref for r in again.rejections])

        report = await vairo.wait_until_final(package_id, timeout=60.0)
        async for done in vairo.wait_all(ids, concurrency=5):
            print(done.package_id, done.failure)

    async with httpx.AsyncClient() as http:
        AsyncVairoClient("key", http_client=http, retry_unknown_outcomes=False)

    cost: Segments = segments("Şifre", tr_char=None)
    encoding: Encoding = cost.encoding
    plain: str = transliterate_turkish("Şifre")
    print(credits, final, failed, encoding, plain)


async def remote_emulator() -> None:
    async with RemoteFakeVairo("http://127.0.0.1:8080/Panel/api/v1/", api_key="key") as fake:
        await fake.inject(Fault.server_error(503), endpoint="send", times=2)
        await fake.set_random_faults(RandomFaults({Fault.drop_after_accept(): 0.1}, seed=1))
        messages: tuple[SentMessage, ...] = await fake.messages()
        mine: list[SentMessage] = await fake.sent_to("5399999999")
        package: Package = (await fake.packages())[1]
        records: tuple[RequestRecord, ...] = await fake.requests()
        twice: dict[tuple[str, str], int] = await fake.duplicates()
        count: int = await fake.request_count("send", "accepted")
        peak: int = await fake.peak_concurrency("report")
        await fake.complete_now(package.package_id)
        await fake.reset()
        print(messages, mine, records, twice, count, peak)


async def journals(path: str, url: str) -> None:
    stores: list[Journal] = [MemoryJournal(), SqliteJournal(path), RedisJournal(url)]
    for store in stores:
        async with store as journal:
            claim: Claim = await journal.claim(
                "send:k", fingerprint="f", owner="o", lease=30.0, retention=3600.0
            )
            record: JournalRecord = claim.record
            state: RecordState = record.effective_state(0.0)
            if claim.claimed:
                await journal.mark_sent(
                    "send:k", owner="o", package_id=1, recipient_count=1, estimated_credits=None
                )
            unresolved: list[JournalRecord] = await journal.unresolved(campaign=None)
            resolved: JournalRecord | None = await journal.resolve("send:k", package_id=None)
            header = await journal.put_campaign("c", {"sender": "ACME"})
            print(state, unresolved, resolved, header["sender"])
    try:
        pass
    except SentNotRecordedError as exc:
        package_id: int = exc.package_id
        print(package_id)
    except (JournalUnavailableError, ClaimLostError) as exc:
        retry_is_safe: bool = exc.certainly_not_sent
        print(exc, retry_is_safe)


async def durable_sends(path: str) -> None:
    async with (
        SqliteJournal(path) as journal,
        AsyncVairoClient(
            "key", sender="ACME", journal=journal, idempotency_retention=3600.0, journal_lease=600
        ) as client,
    ):
        sub: Submission = await client.send("x", to="5399999999", idempotency_key="order-1")
        again: Submission = await client.send_messages(
            [Message(to="5399999999", text="x")], idempotency_key="order-1"
        )
        replayed: bool = sub.replayed or again.replayed
        result: BulkResult = await client.send_bulk([], campaign="spring")
        async for outcome in client.iter_bulk([], batch_size=10, campaign="spring"):
            was_replayed: bool = outcome.replayed
            print(was_replayed)
        print(replayed, result.package_ids)
