"""The retry policy: what is retried, how long to wait, what is unknown.

Each call names its endpoint (`_endpoints`), and the endpoint's `sends_sms` picks the rule;
the verdicts come from the one mapping in `_outcome`:

- A call that sends nothing (a report) is repeated after every transient failure.
- A send is repeated only when the server certainly did not act on it. A failure that may
  have been acted on makes its outcome unknown (`OutcomeUnknownError`), and it is not
  repeated unless the caller opted in with `retry_unknown_outcomes=True`.

`Retry-After` (seconds or an HTTP date) is honoured up to `retry_after_max`; a longer hint
is not waited for: the error is raised with its `retry_after` set.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import tenacity as _t

from . import _otel
from ._endpoints import Endpoint
from ._errors import APIError, OutcomeUnknownError, VairoError
from ._outcome import certainly_not_sent, is_transient, may_have_been_sent

__all__ = ["BeforeAttempt", "RetryPolicy", "parse_retry_after", "set_testing"]

T = TypeVar("T")
P = ParamSpec("P")

BeforeAttempt = Callable[[int], Awaitable[None]]
"""Awaited before every HTTP attempt of a call with the attempt's number, 1 for the first."""

logger = logging.getLogger("vairo_async")

_testing = False


def set_testing(testing: bool = True) -> _TestingSwitch:
    """Make every retry wait zero seconds (backoff and `Retry-After` alike), for test suites.

    Use it plainly (`set_testing(True)`) or as a context manager that restores the previous
    setting on exit.
    """
    global _testing
    previous, _testing = _testing, testing
    return _TestingSwitch(previous)


class _TestingSwitch:
    """Returned by `set_testing`; as a context manager it restores the previous setting."""

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        global _testing
        _testing = self._previous


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryPolicy:
    """How one client retries its requests; built once, shared by every call.

    Args:
        max_retries: Retries after the first attempt (0 disables retrying).
        backoff: First backoff in seconds; doubles each retry, plus jitter.
        backoff_max: Cap of a single backoff.
        retry_after_max: Longest `Retry-After` honoured.
        retry_unknown_outcomes: Also resend after failures that leave a send's outcome
            unknown. This can deliver an SMS twice.
    """

    def __init__(
        self,
        *,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        retry_after_max: float,
        retry_unknown_outcomes: bool,
    ) -> None:
        self.max_retries = max_retries
        self._retry_after_max = retry_after_max
        self._retry_unknown = retry_unknown_outcomes
        self._backoff = _t.wait_exponential_jitter(
            multiplier=backoff, max=backoff_max, jitter=backoff
        )
        self._retrying = _t.AsyncRetrying(
            stop=_t.stop_after_attempt(max_retries + 1), wait=self._wait, reraise=True
        )

    def _log(self, what: str, state: _t.RetryCallState) -> None:
        assert state.outcome is not None
        assert state.next_action is not None
        error = state.outcome.exception()
        logger.warning(
            "%s failed (%s: %s); retry %d of %d in %.2fs",
            what,
            type(error).__name__,
            error,
            state.attempt_number,
            self.max_retries,
            state.next_action.sleep,
        )
        _otel.retrying(error, state.attempt_number, state.next_action.sleep)

    def _honours_hint(self, error: VairoError) -> bool:
        hint = error.retry_after if isinstance(error, APIError) else None
        return hint is None or hint <= self._retry_after_max

    def _should_retry(self, error: BaseException) -> bool:
        """The rule of calls that send nothing: every transient failure."""
        return isinstance(error, VairoError) and is_transient(error) and self._honours_hint(error)

    def _should_resend(self, error: BaseException) -> bool:
        """The rule of sends: only a failure the server certainly did not act on."""
        if not isinstance(error, VairoError) or not self._honours_hint(error):
            return False
        if certainly_not_sent(error):
            return True
        return self._retry_unknown and may_have_been_sent(error)

    def _wait(self, state: _t.RetryCallState) -> float:
        if _testing:
            return 0.0
        assert state.outcome is not None
        error = state.outcome.exception()
        if isinstance(error, APIError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(state)

    async def run(
        self,
        endpoint: Endpoint[object],
        attempt: Callable[Concatenate[int, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `attempt(number, *args, **kwargs)` under `endpoint`'s rule until it succeeds,
        is not to be repeated, or the retries run out; `number` is 1 for the first attempt.

        Raises:
            OutcomeUnknownError: `endpoint` sends SMS and some attempt failed in a way that
                may have sent it.
        """
        sends = endpoint.sends_sms
        should_retry = self._should_resend if sends else self._should_retry
        # The first attempt runs bare: most requests succeed, and tenacity's bookkeeping
        # costs more CPU than the rest of the SDK's per-request work. Only a retryable
        # failure hands over to tenacity, which sees it again as its own first attempt.
        try:
            return await attempt(1, *args, **kwargs)
        except VairoError as error:
            unknown = sends and may_have_been_sent(error)
            if not should_retry(error):
                if unknown:
                    raise OutcomeUnknownError(error) from error
                raise
            first: list[VairoError] = [error]
        number = 1

        async def replay_then_attempt(*args: P.args, **kwargs: P.kwargs) -> T:
            nonlocal unknown, number
            if first:
                raise first.pop()
            number += 1
            try:
                return await attempt(number, *args, **kwargs)
            except VairoError as error:
                unknown = unknown or (sends and may_have_been_sent(error))
                raise

        retrying = self._retrying.copy(
            retry=_t.retry_if_exception(should_retry),
            before_sleep=functools.partial(self._log, f"{endpoint.method} {endpoint.name}"),
        )
        try:
            return await retrying(replay_then_attempt, *args, **kwargs)
        except VairoError as error:
            if unknown:
                raise OutcomeUnknownError(error) from error
            raise
