"""Bulk campaigns: lazy batching, bounded concurrency, full accounting.

A producer task reads input rows only while a dispatch slot is free, checks each row, and
groups rows into batches of at most `batch_size` rows that share a `tr_char` value. Each
batch is sent by its own task through the `submit` callable it is given (the client's send
under its retry policy). Every batch settles
exactly once, as SENT, FAILED or UNKNOWN; `on_progress` hears of it at that moment, and the
consumer of `iter_bulk` receives it through a queue. A batch holds its slot until the
consumer has taken its outcome, so batches in flight plus outcomes not yet taken never
exceed `concurrency`: memory stays flat however long the input, however slow the consumer.

An async `on_progress` is called at the same moment, and the awaitable it returns is
awaited by one task of the campaign, call after call in settle order; each outcome reaches
the consumer once its call has returned. The batches in flight go on meanwhile; an outcome
waiting for its call keeps its slot, so a hook slower than the sends sets the campaign's
pace instead of growing memory.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

import attrs
from aiolimiter import AsyncLimiter

from . import _otel
from ._durable import BatchEntry, CampaignJournal, Replayed
from ._errors import (
    CampaignMismatchError,
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimiterError,
    SentNotRecordedError,
    TransportError,
    VairoError,
)
from ._models import BatchOutcome, BatchState, BulkProgress, Message, Rejection
from ._rate import Cooldown, RateLimiter, cooldown_of
from ._retry import BeforeAttempt
from ._segments import credits_of, needs_turkish_shift
from ._validate import check_message, describe
from ._wire import encode_send

__all__ = ["Campaign", "Messages", "ProgressHook", "Submit"]

logger = logging.getLogger("vairo_async")

Messages = Iterable[Message] | AsyncIterable[Message]
ProgressHook = Callable[[BulkProgress], object]
"""Told of each settled batch: a function, or a coroutine function (its result is awaited)."""
Submit = Callable[[bytes, int, BeforeAttempt | None], Awaitable[int]]
"""Sends one checked batch: `(body, message_count, before_attempt)` -> package id.

`body` is the batch's SmsGonder request body (`encode_send`), built once by the campaign,
which also fingerprints it for the journal.

It awaits `before_attempt` before every HTTP attempt, and raises `OutcomeUnknownError` when
the batch may have been sent, another `VairoError` when it certainly was not."""


@attrs.define(eq=False)
class _Batch:
    """Rows of one `tr_char` group, collected until the batch is full."""

    tr_char: bool
    messages: list[Message] = attrs.Factory(list)  # the caller's rows, as given
    # Position in `messages` -> that row with its number respelled in wire form.
    respelled: dict[int, Message] = attrs.Factory(dict)
    wire: list[Message] = attrs.Factory(list)  # the rows as sent: set as the batch closes
    body: bytes = b""  # the request body: set once the batch has its slot
    rejected: list[Rejection] = attrs.Factory(list)
    rows: int = 0
    index: int = -1
    started: bool = False
    credits: int = 0
    entry: BatchEntry | None = None  # its journal record's claim, in a journaled campaign


class _Stopped:
    """The queue's end marker."""


@attrs.frozen
class _Gate:
    """A batch's `before_attempt`, carrying the limiter's `cooldown` for the client to call
    when a 429 answer says Retry-After."""

    before: Callable[[int], Awaitable[None]]
    cooldown: Cooldown | None

    async def __call__(self, attempt: int) -> None:
        await self.before(attempt)


_END = _Stopped()


def _tr_group(row: Message) -> bool:
    return isinstance(row.text, str) and needs_turkish_shift(row.text)


def _cancelled() -> TransportError:
    return TransportError(
        "campaign stopped before this batch was sent", may_have_reached_server=False
    )


class Campaign:
    """One bulk campaign: `run(rows)` sends it and yields each batch's outcome as it settles.

    Args:
        submit: Sends one batch (the client's send, under its retry policy).
        sender: The campaign's checked sender.
        batch_size: Rows per batch, at most.
        concurrency: Batches in flight (plus outcomes not yet taken), at most.
        rate: HTTP attempts per second, retries included, at most; a `RateLimiter` to
            wait for instead (its `cooldown`, if any, hears of every 429's Retry-After);
            None for no limit.
        on_progress: Told of every batch the moment it settles; an awaitable it returns is
            awaited, in settle order, before the outcome is yielded.
        exclude: Wire-form numbers whose rows are rejected as excluded, never sent.
        journal: The campaign's journal: each batch is claimed right before its first
            attempt and marked SENT after it; batches it already holds are not sent again.
    """

    def __init__(
        self,
        submit: Submit,
        *,
        sender: str,
        batch_size: int,
        concurrency: int,
        rate: float | RateLimiter | None,
        on_progress: ProgressHook | None,
        exclude: frozenset[str] = frozenset(),
        journal: CampaignJournal | None = None,
    ) -> None:
        self._submit = submit
        self._journal = journal
        #: The journal's refusal of a batch (its rows changed): raised once the rest settled.
        self.mismatch: CampaignMismatchError | None = None
        self._exclude = exclude
        self._sender = sender
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._rate = rate
        self._slots = asyncio.Semaphore(concurrency)
        self._limiter: RateLimiter | AsyncLimiter | None = (
            AsyncLimiter(1, 1 / rate) if isinstance(rate, int | float) else rate
        )
        self._cooldown = cooldown_of(rate)
        self._on_progress = on_progress
        self._forming = {False: _Batch(False), True: _Batch(True)}
        # Batches that left formation and have not settled (waiting for a slot, or sending).
        self._unsettled: dict[_Batch, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: asyncio.Queue[BatchOutcome | _Stopped] = asyncio.Queue()
        # Outcomes (and the end marker) behind an awaited hook call, in settle order; each
        # with the call still to await. `_hooks` awaits them while there are any.
        self._due: collections.deque[tuple[Awaitable[object] | None, BatchOutcome | _Stopped]]
        self._due = collections.deque()
        self._hooks: asyncio.Task[None] | None = None
        self._next_index = 0
        self._counts = dict.fromkeys(BatchState, 0)
        self._rejected = 0
        self._batches = 0
        self._credits = 0
        #: Rows read from the input so far.
        self.rows_read = 0
        #: What the input raised, if it did; raised once every outcome has been yielded.
        self.source_error: BaseException | None = None

    async def run(self, rows: Messages) -> AsyncGenerator[BatchOutcome, None]:
        """Send the campaign, yielding each batch's outcome as it settles.

        Raises:
            BaseException: Whatever the input raised (a row that is not a `Message` is a
                `TypeError`), after every outcome of the rows read before it.
        """
        if self._journal is not None:
            await self._journal.open()
        traced = _otel.campaign(self._batch_size, self._concurrency, self._rate)
        producer = asyncio.create_task(
            self._produce(rows), context=None if traced is None else traced.context
        )
        try:
            while not isinstance(outcome := await self._results.get(), _Stopped):
                self._slots.release()  # the outcome is taken: its slot may carry another batch
                yield outcome
            await producer
        finally:
            await self._stop(producer)
            if traced is not None:
                traced.end(
                    self._counts, self._rejected, self._batches, self.rows_read, self.source_error
                )
        if self.mismatch is not None:
            raise self.mismatch
        if self.source_error is not None:
            raise self.source_error

    # --- forming batches -----------------------------------------------------------

    def _add(self, row: Message) -> _Batch | None:
        """Check one row into its group; return the group's batch when it is full.

        Raises:
            TypeError: The row is not a `Message`: the input is broken, not the row.
        """
        to = text = None
        if type(row) is Message:
            to = row.to
            text = row.text
        # Most rows hold a number in wire form and a plain ASCII text, which needs no
        # `tr_char` and has nothing `check_message` could reject: they join at once.
        if (
            type(to) is str
            and type(text) is str
            and len(to) == 10
            and to[0] == "5"
            and to.isdigit()
            and to.isascii()
            and text.isascii()
            and text
            and not text.isspace()
            and to not in self._exclude
        ):
            batch = self._forming[False]
            batch.messages.append(row)
        else:
            try:
                message = check_message(row)
                if message.to in self._exclude:
                    raise ValueError(f"to={describe(row.to)}: excluded")
            except ValueError as exc:
                batch = self._forming[_tr_group(row)]
                batch.rejected.append(Rejection(row, str(exc)))
            else:
                batch = self._forming[needs_turkish_shift(message.text)]
                if message is not row:
                    batch.respelled[len(batch.messages)] = message
                batch.messages.append(row)
        self.rows_read += 1
        batch.rows += 1
        if batch.rows < self._batch_size:
            return None
        self._forming[batch.tr_char] = _Batch(batch.tr_char)
        return batch

    async def _produce(self, rows: Messages) -> None:
        """Read rows, dispatch full batches, flush the rest, wait, and always end the queue."""
        try:
            try:
                if isinstance(rows, AsyncIterable):
                    async for row in rows:
                        if (batch := self._add(row)) is not None:
                            await self._dispatch(batch)
                else:
                    for row in rows:
                        if (batch := self._add(row)) is not None:
                            await self._dispatch(batch)
            except CampaignMismatchError as exc:
                self.mismatch = exc  # send nothing more: the input is not the journal's
            except BaseException as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the campaign is being stopped, not failed by its input
                self.source_error = exc  # send what was read, then raise it to the caller
            for tr_char in (False, True):
                batch = self._forming[tr_char]
                if batch.rows:
                    self._forming[tr_char] = _Batch(tr_char)
                    if self.mismatch is not None:  # never sent: yielded as FAILED
                        self._close(batch)
                        self._settle(batch, BatchState.FAILED, error=self.mismatch)
                        continue
                    try:
                        await self._dispatch(batch)
                    except CampaignMismatchError as exc:
                        self.mismatch = exc
            if self._tasks:
                await asyncio.wait(self._tasks)
        finally:
            self._deliver(_END)

    def _close(self, batch: _Batch) -> None:
        """Give a batch leaving formation its number, its rows as sent, and its price."""
        batch.index = self._next_index
        self._next_index += 1
        respelled = batch.respelled
        if respelled:
            batch.wire = [respelled.get(at, row) for at, row in enumerate(batch.messages)]
        else:
            batch.wire = batch.messages
        batch.credits = credits_of([m.text for m in batch.wire], batch.tr_char)

    async def _dispatch(self, batch: _Batch) -> None:
        self._close(batch)
        self._unsettled[batch] = None
        await self._slots.acquire()
        if not batch.messages:  # every row was rejected: nothing to send
            error = InvalidRequestError([f"all {len(batch.rejected)} rows were rejected"])
            self._settle(batch, BatchState.FAILED, error=error)
            return
        batch.body = encode_send(self._sender, batch.wire, batch.tr_char)
        if self._journal is not None:
            try:
                prepared = self._journal.prepare(batch.index, batch.body, batch.messages)
            except CampaignMismatchError as exc:
                self._settle(batch, BatchState.FAILED, error=exc)
                raise
            if not isinstance(prepared, BatchEntry):  # the journal settles it: no request
                self._settle(
                    batch,
                    prepared.state,
                    package_id=prepared.package_id,
                    error=prepared.error,
                    replayed=prepared.replayed,
                )
                return
            batch.entry = prepared
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending and settling ------------------------------------------------------

    async def _before_attempt(self, batch: _Batch, attempt: int) -> None:
        """Wait for the rate limiter; from then on the batch may reach the server.

        Raises:
            RateLimiterError: The limiter raised: the request never left.
        """
        if self._limiter is not None:
            try:
                await self._limiter.acquire()
            except RateLimiterError:
                raise
            except Exception as exc:
                raise RateLimiterError(
                    f"the rate limiter {self._limiter!r} failed before the request left:"
                    f" {type(exc).__name__}: {exc}"
                ) from exc
        if batch.entry is not None:  # claimed, or renewed, before the request may leave
            await batch.entry.before_attempt(attempt)
        batch.started = True

    async def _send(self, batch: _Batch) -> None:
        try:
            request = self._submit(
                batch.body,
                len(batch.wire),
                _Gate(functools.partial(self._before_attempt, batch), self._cooldown),
            )
            if batch.entry is not None:
                request = batch.entry.run(request, len(batch.wire), batch.credits)
            package_id = await request
        except Replayed as replay:  # another run of the campaign sent it meanwhile
            self._settle(batch, BatchState.SENT, package_id=replay.record.package_id, replayed=True)
        except SentNotRecordedError as exc:
            self._settle(batch, BatchState.SENT, package_id=exc.package_id, error=exc)
        except asyncio.CancelledError:
            if batch.entry is not None and batch.entry.package_id is not None:
                # Answered, then stopped while the journal wrote SENT: keep its id.
                self._settle(batch, BatchState.SENT, package_id=batch.entry.package_id)
            raise
        except OutcomeUnknownError as exc:
            self._settle(batch, BatchState.UNKNOWN, error=exc)
        except VairoError as exc:
            self._settle(batch, BatchState.FAILED, error=exc)
        except Exception as exc:  # a bug or a foreign transport: the batch may be out
            error = VairoError(f"unexpected {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._settle(batch, BatchState.UNKNOWN, error=OutcomeUnknownError(error))
        else:
            self._settle(batch, BatchState.SENT, package_id=package_id)

    def _settle(
        self,
        batch: _Batch,
        state: BatchState,
        *,
        package_id: int | None = None,
        error: VairoError | None = None,
        replayed: bool = False,
    ) -> None:
        """Record a batch's end exactly once, tell the progress hook, deliver the outcome."""
        self._unsettled.pop(batch, None)
        outcome = BatchOutcome(
            index=batch.index,
            state=state,
            messages=tuple(batch.messages),
            rejected=tuple(batch.rejected),
            package_id=package_id,
            error=error,
            estimated_credits=batch.credits,
            replayed=replayed,
        )
        self._counts[state] += len(batch.messages)
        _otel.count_messages(state, len(batch.messages), len(batch.rejected))
        self._rejected += len(batch.rejected)
        self._batches += 1
        if state is BatchState.SENT:
            self._credits += batch.credits
        call = None
        if self._on_progress is not None:
            progress = BulkProgress(
                outcome=outcome,
                batches=self._batches,
                read=self.rows_read,
                sent=self._counts[BatchState.SENT],
                failed=self._counts[BatchState.FAILED],
                unknown=self._counts[BatchState.UNKNOWN],
                rejected=self._rejected,
                estimated_credits=self._credits,
            )
            try:
                returned = self._on_progress(progress)
            except Exception:
                logger.exception("on_progress raised; the campaign goes on")
            else:
                if inspect.isawaitable(returned):
                    call = returned
        self._deliver(outcome, call)

    def _deliver(
        self, item: BatchOutcome | _Stopped, call: Awaitable[object] | None = None
    ) -> None:
        """Hand `item` to the consumer, after `call` and every hook call due before it."""
        if call is None and not self._due:
            self._results.put_nowait(item)
            return
        self._due.append((call, item))
        if self._hooks is None:
            self._hooks = asyncio.create_task(self._await_hooks())

    async def _await_hooks(self) -> None:
        """Await the hook calls due, one at a time in settle order, delivering behind each."""
        task = asyncio.current_task()
        try:
            # Once cancelled (the campaign stopped waiting), no further call is started,
            # even when the current one swallowed the cancellation.
            while self._due and (task is None or not task.cancelling()):
                call, item = self._due[0]  # left in place: what settles meanwhile queues behind
                if call is not None:
                    try:
                        await call
                    except Exception:
                        logger.exception("on_progress raised; the campaign goes on")
                    except asyncio.CancelledError:
                        if task is not None and task.cancelling():
                            raise  # the campaign or the loop is stopping, not the hook failing
                        logger.exception("on_progress raised; the campaign goes on")
                self._due.popleft()
                self._results.put_nowait(item)
        finally:
            self._hooks = None
            if task is not None and task.cancelling():  # calls never to be awaited: closed
                while self._due:
                    call, _ = self._due.popleft()
                    if inspect.iscoroutine(call):
                        call.close()

    async def _stop(self, producer: asyncio.Task[None]) -> None:
        """Cancel everything still running and settle what never finished.

        A batch whose request had started may have been sent: UNKNOWN. One still waiting
        for a slot or for the rate limiter, or still forming, was certainly not sent:
        FAILED. Outcomes settled but never taken by the consumer are logged with their
        package ids (`on_progress` has seen them too), so stopping early loses no id.

        A cancellation arriving meanwhile (a timeout and a task-group abort at once, an
        anyio scope cancelling at every await) does not cut the settling short: it is raised
        once every batch has settled. The hook calls still due are awaited then, but a
        cancellation arriving while they run cancels them (a hung hook cannot hold the
        campaign), logging the package ids whose calls did not complete.
        """
        producer.cancel()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        interrupted = await _wait_out(asyncio.gather(producer, *pending, return_exceptions=True))
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
        if self._hooks is not None:  # hook calls still due: awaited until a cancellation
            interrupted = await self._wait_for_hooks(self._hooks) or interrupted
        untaken = []
        while not self._results.empty():
            item = self._results.get_nowait()
            if isinstance(item, BatchOutcome) and item.package_id is not None:
                untaken.append(item.package_id)
        if untaken:
            logger.warning(
                "bulk campaign stopped before yielding %d sent batches; their package ids: %s",
                len(untaken),
                ", ".join(map(str, untaken)),
            )
        if interrupted is not None:
            raise interrupted

    async def _wait_for_hooks(self, hooks: asyncio.Task[None]) -> asyncio.CancelledError | None:
        """Await the hook calls due; on a cancellation, cancel them and return it."""
        try:
            await asyncio.shield(hooks)
        except asyncio.CancelledError as cancelled:
            interrupted = cancelled
            unheard = [
                item.package_id
                for _, item in self._due
                if isinstance(item, BatchOutcome) and item.package_id is not None
            ]
            hooks.cancel()
            logger.warning(
                "bulk campaign cancelled while on_progress calls were still running; they"
                " were cancelled; package ids whose hook calls did not complete: %s",
                ", ".join(map(str, unheard)) or "none",
            )
            try:
                await asyncio.wait([hooks])
            except asyncio.CancelledError as again:  # the hook call ignored its cancellation
                interrupted = again
            return interrupted
        return None


async def _wait_out(future: asyncio.Future[Any]) -> asyncio.CancelledError | None:
    """Wait until `future` is done, whatever cancellations arrive; the last one, if any."""
    interrupted = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            interrupted = exc
    return interrupted
