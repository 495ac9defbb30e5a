"""Bulk campaigns (DESIGN section 5): lazy batching, bounded concurrency, full accounting.

A producer task pulls input rows only while a dispatch slot is free, checks each row, and
groups rows into batches of at most `batch_size` rows that share a `tr_char` value. Each
batch is sent by its own task under the client's send retry policy. Every batch settles
exactly once, as SENT, FAILED or UNKNOWN; `on_progress` hears of it at that moment, and the
consumer of `iter_bulk` receives it through a small bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING

import attrs
from aiolimiter import AsyncLimiter

from ._errors import InvalidRequestError, OutcomeUnknownError, TransportError, VairoError
from ._models import BatchOutcome, BatchState, BulkProgress, Message, Rejection
from ._segments import credits_of, needs_turkish_shift
from ._validate import check_message

if TYPE_CHECKING:
    from ._client import AsyncVairoClient

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CONCURRENCY", "Messages", "ProgressHook", "run_bulk"]

logger = logging.getLogger("vairo_async")

DEFAULT_BATCH_SIZE = 1000
DEFAULT_CONCURRENCY = 4

Messages = Iterable[Message] | AsyncIterable[Message]
ProgressHook = Callable[[BulkProgress], object]


@attrs.define(eq=False)
class _Batch:
    """Rows of one `tr_char` group, collected until the batch is full."""

    tr_char: bool
    messages: list[Message] = attrs.Factory(list)  # the caller's rows, as given
    wire: list[Message] = attrs.Factory(list)  # the same rows, numbers in wire form
    rejected: list[Rejection] = attrs.Factory(list)
    rows: int = 0
    index: int = -1
    started: bool = False
    credits: int = 0


class _Stopped:
    """The queue's end marker."""


_END = _Stopped()


def _tr_group(row: Message) -> bool:
    return isinstance(row.text, str) and needs_turkish_shift(row.text)


class _Campaign:
    def __init__(
        self,
        client: AsyncVairoClient,
        sender: str,
        batch_size: int,
        concurrency: int,
        rate: float | None,
        on_progress: ProgressHook | None,
    ) -> None:
        self._client = client
        self._sender = sender
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._limiter = None if rate is None else AsyncLimiter(1, 1 / rate)
        self._on_progress = on_progress
        self._forming = {False: _Batch(False), True: _Batch(True)}
        # Dispatched batches not yet settled (waiting for a slot, or in flight).
        self._unsettled: dict[_Batch, None] = {}
        # Send tasks until they have handed their outcome to the queue.
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_index = 0
        self._counts = dict.fromkeys(BatchState, 0)
        self._rejected = 0
        self._batches = 0
        self._credits = 0
        self.results: asyncio.Queue[BatchOutcome | _Stopped] = asyncio.Queue(concurrency)
        self.source_error: BaseException | None = None

    # --- forming batches -----------------------------------------------------------

    def _add(self, row: Message) -> _Batch | None:
        """Check one row into its group; return the group's batch when it is full.

        Raises:
            TypeError: The row is not a `Message`: the input is broken, not the row.
        """
        try:
            message = check_message(row)
        except ValueError as exc:
            batch = self._forming[_tr_group(row)]
            batch.rejected.append(Rejection(row, str(exc)))
        else:
            batch = self._forming[needs_turkish_shift(message.text)]
            batch.messages.append(row)
            batch.wire.append(message)
        batch.rows += 1
        if batch.rows < self._batch_size:
            return None
        self._forming[batch.tr_char] = _Batch(batch.tr_char)
        return batch

    async def produce(self, rows: Messages) -> None:
        """Pull rows, dispatch full batches, flush the rest, wait, then end the queue."""
        try:
            if isinstance(rows, AsyncIterable):
                async for row in rows:
                    if (batch := self._add(row)) is not None:
                        await self._dispatch(batch)
            else:
                for row in rows:
                    if (batch := self._add(row)) is not None:
                        await self._dispatch(batch)
        except Exception as exc:  # the caller's input failed: send what was pulled, then raise
            self.source_error = exc
        for tr_char in (False, True):
            batch = self._forming[tr_char]
            if batch.rows:
                self._forming[tr_char] = _Batch(tr_char)
                await self._dispatch(batch)
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self.results.put(_END)

    def _close(self, batch: _Batch) -> None:
        """Give a batch leaving formation its number and its price."""
        batch.index = self._next_index
        self._next_index += 1
        batch.credits = credits_of([m.text for m in batch.wire], batch.tr_char)

    async def _dispatch(self, batch: _Batch) -> None:
        self._close(batch)
        if not batch.messages:  # every row was rejected: nothing to send
            error = InvalidRequestError([f"all {len(batch.rejected)} rows were rejected"])
            await self.results.put(self._settle(batch, BatchState.FAILED, error=error))
            return
        self._unsettled[batch] = None
        await self._slots.acquire()
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending and settling ------------------------------------------------------

    async def _send(self, batch: _Batch) -> None:
        try:
            if self._limiter is not None:
                await self._limiter.acquire()
            batch.started = True
            try:
                package_id = await self._client._submit(self._sender, batch.wire, batch.tr_char)
            except OutcomeUnknownError as exc:
                outcome = self._settle(batch, BatchState.UNKNOWN, error=exc)
            except VairoError as exc:
                outcome = self._settle(batch, BatchState.FAILED, error=exc)
            except Exception as exc:  # a bug or a foreign transport: the batch may be out
                error = VairoError(f"unexpected {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                outcome = self._settle(batch, BatchState.UNKNOWN, error=OutcomeUnknownError(error))
            else:
                outcome = self._settle(batch, BatchState.SENT, package_id=package_id)
            await self.results.put(outcome)
        finally:
            self._slots.release()

    def _settle(
        self,
        batch: _Batch,
        state: BatchState,
        *,
        package_id: int | None = None,
        error: VairoError | None = None,
    ) -> BatchOutcome:
        """Record a batch's end exactly once and tell the progress hook."""
        self._unsettled.pop(batch, None)
        outcome = BatchOutcome(
            index=batch.index,
            state=state,
            messages=tuple(batch.messages),
            rejected=tuple(batch.rejected),
            package_id=package_id,
            error=error,
            estimated_credits=batch.credits,
        )
        self._counts[state] += len(batch.messages)
        if state is BatchState.SENT:
            self._credits += batch.credits
        self._rejected += len(batch.rejected)
        self._batches += 1
        if self._on_progress is not None:
            progress = BulkProgress(
                outcome=outcome,
                batches=self._batches,
                sent=self._counts[BatchState.SENT],
                failed=self._counts[BatchState.FAILED],
                unknown=self._counts[BatchState.UNKNOWN],
                rejected=self._rejected,
                estimated_credits=self._credits,
            )
            try:
                self._on_progress(progress)
            except Exception:
                logger.exception("on_progress raised; the campaign goes on")
        return outcome

    async def stop(self, producer: asyncio.Task[None]) -> None:
        """Cancel everything still running and settle what never finished.

        A batch whose request had started may have been sent: UNKNOWN. One still waiting
        for the rate limiter, or still forming, was certainly not sent: FAILED.
        """
        producer.cancel()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(producer, *pending, return_exceptions=True)
        for batch in list(self._unsettled):
            if batch.started:
                cause = TransportError("cancelled while in flight", may_have_reached_server=True)
                self._settle(batch, BatchState.UNKNOWN, error=OutcomeUnknownError(cause))
            else:
                self._settle(batch, BatchState.FAILED, error=_cancelled())
        for tr_char in (False, True):
            batch = self._forming[tr_char]
            if batch.rows:
                self._forming[tr_char] = _Batch(tr_char)
                self._close(batch)
                self._settle(batch, BatchState.FAILED, error=_cancelled())


def _cancelled() -> TransportError:
    return TransportError(
        "campaign stopped before this batch was sent", may_have_reached_server=False
    )


async def run_bulk(
    client: AsyncVairoClient,
    messages: Messages,
    *,
    sender: str,
    batch_size: int,
    concurrency: int,
    rate: float | None,
    on_progress: ProgressHook | None,
) -> AsyncGenerator[BatchOutcome, None]:
    """Run a campaign, yielding each batch's outcome as it settles (see `iter_bulk`)."""
    campaign = _Campaign(client, sender, batch_size, concurrency, rate, on_progress)
    producer = asyncio.create_task(campaign.produce(messages))
    try:
        while not isinstance(outcome := await campaign.results.get(), _Stopped):
            yield outcome
        await producer
    finally:
        await campaign.stop(producer)
    if campaign.source_error is not None:
        raise campaign.source_error
