"""Waiting for packages to become final: `wait_until_final`, `wait_all`.

A wait polls GonderimBilgisi on a growing schedule: the first poll after `poll_interval`
seconds, each later interval `POLL_BACKOFF` times the one before, up to `max_poll_interval`;
every interval is shortened at random by up to `POLL_JITTER` of itself, so that many waits
started together spread their polls out. A wait ends when:

- the status is COMPLETED or FAILED: that report is returned (a FAILED one with `failure`);
- a poll fails with a non-transient error (e.g. 'no such package'): it is raised;
- the package is still not final `expiry_grace` seconds after its validity ended:
  `PackageExpiredError`, since the service will not deliver it any more;
- `timeout` passes: `WaitTimeoutError` with the last report seen.

Transient failures (network errors, 408, 429, 5xx) are retried inside `get_report` by the
client's GET policy; when one outlasts those retries, the wait carries on with its next poll.
Unknown statuses (`PackageStatus.UNKNOWN_<n>`) are not final: the wait carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

from ._config import WaitSettings
from ._constants import POLL_BACKOFF, POLL_JITTER
from ._errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    InvalidRequestError,
    PackageExpiredError,
    VairoError,
    WaitAllError,
    WaitTimeoutError,
)
from ._models import PackageReport
from ._outcome import is_transient
from ._validate import Problems, describe

__all__ = [
    "GetReport",
    "check_wait",
    "expiry_of",
    "poll_delays",
    "run_wait",
    "run_wait_all",
]

logger = logging.getLogger("vairo_async")

GetReport = Callable[[int], Awaitable[PackageReport]]

# Errors about the client rather than one package: every other package would fail the same.
_CLIENT_WIDE = (AuthenticationError, ClientClosedError)


def check_wait(
    package_ids: Iterable[int],
    *,
    single: bool,
    concurrency: int,
    timeout: float | None,
    poll_interval: float,
    max_poll_interval: float,
    expiry_grace: float | None,
) -> tuple[list[int], WaitSettings]:
    """Check a wait's ids and arguments before any poll.

    Returns:
        The distinct ids, in first-seen order, and the settings.

    Raises:
        InvalidRequestError: Listing every bad id and argument.
    """
    ids = list(package_ids)
    problems = Problems(InvalidRequestError)
    problems.extend(
        f"{'package_id' if single else f'package_ids[{index}]'}={describe(value)}: "
        "must be a positive integer"
        for index, value in enumerate(ids)
        if type(value) is not int or value < 1
    )
    problems.integer("concurrency", concurrency, minimum=1)
    settings = problems.build(
        WaitSettings,
        timeout=timeout,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        expiry_grace=expiry_grace,
    )
    problems.check()
    assert settings is not None
    return list(dict.fromkeys(ids)), settings


def poll_delays(first: float, cap: float) -> Iterator[float]:
    """Seconds to sleep before each poll: `first`, growing by `POLL_BACKOFF` up to `cap`.

    Each value is shortened at random by up to `POLL_JITTER` of itself, never lengthened,
    so the first poll comes within `first` seconds and no interval exceeds `cap`.
    """
    interval = min(first, cap)
    while True:
        yield interval * (1.0 - POLL_JITTER * random.random())
        interval = min(interval * POLL_BACKOFF, cap)


def expiry_of(report: PackageReport) -> datetime:
    """When a package's delivery window ends: `expires_at`, or for a package scheduled
    later, its scheduled time plus its validity if that is later still."""
    if report.scheduled_at is None:
        return report.expires_at
    return max(report.expires_at, report.scheduled_at + report.validity)


async def _wait(
    get_report: GetReport,
    package_id: int,
    settings: WaitSettings,
    deadline: float | None,
    limiter: AbstractAsyncContextManager[object],
) -> PackageReport:
    """Poll one package until it is final; `deadline` is on the event loop's clock."""
    last: PackageReport | None = None
    delays = poll_delays(settings.poll_interval, settings.max_poll_interval)
    hint = 0.0
    timer = asyncio.timeout_at(deadline)
    try:
        async with timer:
            while True:
                await asyncio.sleep(max(next(delays), hint))
                try:
                    async with limiter:
                        report = await get_report(package_id)
                except VairoError as error:
                    if not is_transient(error):
                        raise
                    # A Retry-After longer than the client honours is honoured here instead.
                    hint = (error.retry_after if isinstance(error, APIError) else None) or 0.0
                    logger.warning(
                        "polling package %d failed (%s: %s); polling again later",
                        package_id,
                        type(error).__name__,
                        error,
                    )
                    continue
                hint = 0.0
                last = report
                if report.status.is_final:
                    return report
                if settings.expiry_grace is not None:
                    expired_at = expiry_of(report)
                    grace = timedelta(seconds=settings.expiry_grace)
                    if datetime.now(UTC) > expired_at + grace:
                        raise PackageExpiredError(
                            package_id, report, expired_at, settings.expiry_grace
                        )
    except TimeoutError:
        if not timer.expired():
            raise  # a TimeoutError of our own, such as PackageExpiredError
        assert settings.timeout is not None
        raise WaitTimeoutError(package_id, last, settings.timeout) from None


def _deadline(settings: WaitSettings) -> float | None:
    if settings.timeout is None:
        return None
    return asyncio.get_running_loop().time() + settings.timeout


async def run_wait(get_report: GetReport, package_id: int, settings: WaitSettings) -> PackageReport:
    """Poll one package until it is final (see `AsyncVairoClient.wait_until_final`)."""
    deadline = _deadline(settings)
    return await _wait(get_report, package_id, settings, deadline, contextlib.nullcontext())


async def run_wait_all(
    get_report: GetReport, package_ids: list[int], settings: WaitSettings, concurrency: int
) -> AsyncGenerator[PackageReport, None]:
    """Wait for distinct packages at once, yielding each final report as it comes.

    One task per package polls on its own schedule; a shared semaphore keeps at most
    `concurrency` polls in flight. The tasks never raise: each hands its report or error to
    this generator, so that its `finally` is the one place that stops them.
    """
    deadline = _deadline(settings)
    limiter = asyncio.Semaphore(concurrency)
    settled: asyncio.Queue[tuple[int, PackageReport | Exception]] = asyncio.Queue()

    async def watch(package_id: int) -> None:
        try:
            outcome: PackageReport | Exception = await _wait(
                get_report, package_id, settings, deadline, limiter
            )
        except Exception as error:
            outcome = error
        settled.put_nowait((package_id, outcome))

    tasks = [
        asyncio.create_task(watch(package_id), name=f"vairo-wait-{package_id}")
        for package_id in package_ids
    ]
    errors: dict[int, VairoError] = {}
    try:
        for _ in tasks:
            package_id, outcome = await settled.get()
            if isinstance(outcome, PackageReport):
                yield outcome
            elif isinstance(outcome, VairoError) and not isinstance(outcome, _CLIENT_WIDE):
                logger.warning(
                    "waiting for package %d failed (%s: %s); waiting for the others goes on",
                    package_id,
                    type(outcome).__name__,
                    outcome,
                )
                if not isinstance(outcome, WaitTimeoutError):  # those name their package
                    outcome.add_note(f"while waiting for package {package_id}")
                errors[package_id] = outcome
            else:
                raise outcome
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
    if errors:
        raise WaitAllError(errors)
