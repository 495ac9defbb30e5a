"""The retry policy: what is retried, how long to wait, what is unknown.

There is no idempotency key in this API, so a send (POST SmsGonder) is retried only when
the server certainly did not act on it. Every other failure after the request may have
reached the server makes the send's outcome unknown, and it is not retried unless the
caller opted in with `retry_unknown_outcomes=True`.

| failure                                   | GET (report) | POST (send)       |
|-------------------------------------------|--------------|-------------------|
| connect error, connect or pool timeout    | retry        | retry             |
| read/write timeout, dropped connection    | retry        | unknown           |
| 408                                       | retry        | raised            |
| 429, 503                                  | retry        | retry             |
| 500, 502, 504, other 5xx                  | retry        | unknown           |
| 2xx with a malformed body                 | raised       | unknown           |
| durum: false, other 4xx, 401/403          | raised       | raised            |

`Retry-After` (seconds or an HTTP date) is honoured up to `retry_after_max`; a longer hint
is not waited for: the error is raised with its `retry_after` set.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import tenacity as _t

from ._errors import (
    APIError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
)

__all__ = [
    "RetryPolicy",
    "is_transient",
    "is_unknown_outcome",
    "parse_retry_after",
    "set_testing",
]

T = TypeVar("T")
P = ParamSpec("P")

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


def is_unknown_outcome(error: VairoError) -> bool:
    """True when a failed send may nevertheless have been acted on by the server."""
    if isinstance(error, TransportError):
        return error.may_have_reached_server
    if isinstance(error, ServerError):
        return error.status_code != 503
    return isinstance(error, UnexpectedResponseError)


def _certainly_not_acted(error: VairoError) -> bool:
    if isinstance(error, TransportError):
        return not error.may_have_reached_server
    if isinstance(error, ServerError):
        return error.status_code == 503
    return isinstance(error, RateLimitError)


def is_transient(error: VairoError) -> bool:
    """True for the failures a report request is retried on: network, 408, 429 and 5xx."""
    if isinstance(error, TransportError | RateLimitError | ServerError):
        return True
    return isinstance(error, APIError) and error.status_code == 408


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
        self._get = self._retrying(self._should_retry_get, "GET GonderimBilgisi")
        self._post = self._retrying(self._should_retry_post, "POST SmsGonder")

    def _retrying(
        self, should_retry: Callable[[BaseException], bool], what: str
    ) -> _t.AsyncRetrying:
        def log(state: _t.RetryCallState) -> None:
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

        return _t.AsyncRetrying(
            stop=_t.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=_t.retry_if_exception(should_retry),
            before_sleep=log,
            reraise=True,
        )

    def _honours_hint(self, error: VairoError) -> bool:
        hint = error.retry_after if isinstance(error, APIError) else None
        return hint is None or hint <= self._retry_after_max

    def _should_retry_get(self, error: BaseException) -> bool:
        return isinstance(error, VairoError) and is_transient(error) and self._honours_hint(error)

    def _should_retry_post(self, error: BaseException) -> bool:
        if not isinstance(error, VairoError) or not self._honours_hint(error):
            return False
        return _certainly_not_acted(error) or (self._retry_unknown and is_unknown_outcome(error))

    def _wait(self, state: _t.RetryCallState) -> float:
        if _testing:
            return 0.0
        assert state.outcome is not None
        error = state.outcome.exception()
        if isinstance(error, APIError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(state)

    async def _run(
        self,
        retrying: _t.AsyncRetrying,
        should_retry: Callable[[BaseException], bool],
        attempt: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        # The first attempt runs bare: most requests succeed, and tenacity's bookkeeping
        # costs more CPU than the rest of the SDK's per-request work. Only a retryable
        # failure hands over to tenacity, which sees it again as its own first attempt.
        try:
            return await attempt(*args, **kwargs)
        except VairoError as error:
            if not should_retry(error):
                raise
            first: list[VairoError] = [error]

        async def replay_then_attempt(*args: P.args, **kwargs: P.kwargs) -> T:
            if first:
                raise first.pop()
            return await attempt(*args, **kwargs)

        return await retrying.copy()(replay_then_attempt, *args, **kwargs)

    async def get(self, attempt: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `attempt(*args, **kwargs)` under the GET rules."""
        return await self._run(self._get, self._should_retry_get, attempt, *args, **kwargs)

    async def post(
        self, attempt: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `attempt(*args, **kwargs)` under the POST rules.

        Raises:
            OutcomeUnknownError: Some attempt failed in a way that may have sent the SMS.
        """
        unknown = False

        async def tracked(*args: P.args, **kwargs: P.kwargs) -> T:
            nonlocal unknown
            try:
                return await attempt(*args, **kwargs)
            except VairoError as error:
                unknown = unknown or is_unknown_outcome(error)
                raise

        try:
            return await self._run(self._post, self._should_retry_post, tracked, *args, **kwargs)
        except VairoError as error:
            if unknown:
                raise OutcomeUnknownError(error) from error
            raise
