"""Traces and metrics through the OpenTelemetry API, when it is installed (the `otel` extra).

The SDK only calls the API (`opentelemetry-api`); the application brings the SDK, its
exporters and its sampling. Without the API package every hook here is a function that
returns at once; with it but no SDK configured, the API's no-op tracer and meter answer
and no attribute is computed (`is_recording()` is false).

- A span per API call (`vairo.SmsGonder`, `vairo.GonderimBilgisi`; kind CLIENT), around
  every attempt and retry wait of it, with a `vairo.retry` event per retry.
- A span per campaign (`vairo.campaign`), parent of its batches' call spans, with the
  counts of messages by outcome when it ends.
- `vairo.messages`: a counter of messages by outcome (sent, failed, unknown, rejected), and
  `vairo.call.duration`: a histogram of API call durations in seconds.

No attribute ever holds the API key, a phone number or a message text: only endpoint names,
methods, statuses, counts, class names, outcome names and package ids. Error messages are
never recorded (a server's `aciklama` may quote a number), only the error's class.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from ._endpoints import Endpoint
from ._errors import APIError, OutcomeUnknownError, TransportError, UnexpectedResponseError
from ._models import BatchState, PackageReport
from ._version import __version__

if TYPE_CHECKING:
    from ._retry import RetryPolicy

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the `otel` extra is not installed
    ENABLED = False
else:
    ENABLED = True

__all__ = [
    "ENABLED",
    "CallTrace",
    "CampaignTrace",
    "call",
    "campaign",
    "count_messages",
    "reason",
    "retrying",
]

T = TypeVar("T")

NAME = "vairo_async"
"""The instrumentation scope of the SDK's tracer and meter."""

_in_campaign: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "vairo_in_campaign", default=False
)


class _Call(Protocol):
    """What a traced call reads of the client's call: its attempts, its last answer's status."""

    @property
    def attempts(self) -> int: ...

    @property
    def status(self) -> int | None: ...


C = TypeVar("C", bound=_Call)


def reason(error: BaseException) -> str:
    """A retry reason or error name free of any text: `HTTP 503`, `ConnectError`, ..."""
    if isinstance(error, APIError):
        return f"HTTP {error.status_code}"
    if isinstance(error, TransportError) and error.__cause__ is not None:
        return type(error.__cause__).__name__
    return type(error).__name__


def _outcome(endpoint: Endpoint[object], error: BaseException | None, attempts: int) -> str:
    if error is None:
        return "sent" if endpoint.sends_sms else "ok"
    if not endpoint.sends_sms:
        return "failed"
    if isinstance(error, OutcomeUnknownError):
        return "unknown"
    if isinstance(error, Exception):
        return "failed"
    # Cancelled: once an attempt was under way the request may have left.
    return "unknown" if attempts else "failed"


_tracer: _trace.Tracer
_messages: _metrics.Counter
_duration: _metrics.Histogram


def _bind(
    tracer_provider: _trace.TracerProvider | None = None,
    meter_provider: _metrics.MeterProvider | None = None,
) -> None:
    """Take the tracer and the instruments from these providers (None: the global ones).

    The global ones delegate to whatever provider the application sets, whenever it does;
    tests bind providers of their own.
    """
    global _tracer, _messages, _duration
    _tracer = _trace.get_tracer(NAME, __version__, tracer_provider=tracer_provider)
    meter = _metrics.get_meter(NAME, __version__, meter_provider=meter_provider)
    _messages = meter.create_counter(
        "vairo.messages", unit="{message}", description="Messages by outcome."
    )
    _duration = meter.create_histogram(
        "vairo.call.duration",
        unit="s",
        description="Duration of VairoSMS API calls, retries and their waits included.",
    )


if ENABLED:
    _bind()


class CallTrace:
    """The span and measurements of one API call; `run` makes the call under them."""

    __slots__ = ("_endpoint", "_errors", "_messages", "_package_id", "_span")

    def __init__(
        self, endpoint: Endpoint[object], messages: int | None, package_id: int | None
    ) -> None:
        self._endpoint = endpoint
        self._messages = messages
        self._package_id = package_id
        self._errors: list[BaseException] = []
        self._span = _tracer.start_span(f"vairo.{endpoint.name}", kind=_trace.SpanKind.CLIENT)

    async def _counted(self, number: int, attempt: Callable[[int, C], Awaitable[T]], call: C) -> T:
        try:
            return await attempt(number, call)
        except Exception as exc:
            self._errors.append(exc)
            raise

    async def run(
        self,
        retry: RetryPolicy,
        attempt: Callable[[int, C], Awaitable[T]],
        call: C,
    ) -> T:
        """`retry.run(endpoint, attempt, call)`, traced and measured."""
        span = self._span
        token = None
        start = time.perf_counter()
        try:
            if span.is_recording():
                token = _context.attach(_trace.set_span_in_context(span))
                result = await retry.run(self._endpoint, self._counted, attempt, call)
            else:  # nothing to record but the metrics: no wrapper, no context
                result = await retry.run(self._endpoint, attempt, call)
        except BaseException as exc:
            self._end(call, None, exc, start)
            raise
        finally:
            if token is not None:
                _context.detach(token)
        self._end(call, result, None, start)
        return result

    def _end(self, call: _Call, result: object, error: BaseException | None, start: float) -> None:
        endpoint = self._endpoint
        outcome = _outcome(endpoint, error, call.attempts)
        status = call.status if error is None else _status_of(error)
        labels: dict[str, str | int] = {"vairo.endpoint": endpoint.name, "vairo.outcome": outcome}
        if status is not None:
            labels["http.response.status_code"] = status
        _duration.record(time.perf_counter() - start, labels)
        if endpoint.sends_sms and self._messages and not _in_campaign.get():
            _messages.add(self._messages, {"vairo.outcome": outcome})
        span = self._span
        if not span.is_recording():
            return
        span.set_attributes(labels)
        span.set_attribute("http.request.method", endpoint.method)
        span.set_attribute("vairo.attempts", call.attempts)
        retried = self._errors if error is None else self._errors[:-1]
        if retried:
            span.set_attribute("vairo.retry_reasons", [reason(e) for e in retried])
        if self._messages is not None:
            span.set_attribute("vairo.batch_size", self._messages)
        package_id = result if endpoint.sends_sms and isinstance(result, int) else self._package_id
        if package_id is not None:
            span.set_attribute("vairo.package_id", package_id)
        if isinstance(result, PackageReport):
            span.set_attribute("vairo.package_status", result.status.name)
        if error is not None:
            span.set_attribute("error.type", reason(error))
            span.set_status(_trace.StatusCode.ERROR)
        span.end()


def _status_of(error: BaseException) -> int | None:
    cause = error.error if isinstance(error, OutcomeUnknownError) else error
    if isinstance(cause, APIError | UnexpectedResponseError):
        return cause.status_code
    return None


def call(
    endpoint: Endpoint[object],
    path_args: Mapping[str, object] | None,
    messages: int | None,
) -> CallTrace | None:
    """The trace of one API call about to start, or None when OpenTelemetry is absent.

    Args:
        endpoint: The endpoint called.
        path_args: Its path arguments (a report's `package_id` is recorded).
        messages: How many messages the call sends, for a send.
    """
    if not ENABLED:
        return None
    package_id = None if path_args is None else path_args.get("package_id")
    return CallTrace(endpoint, messages, package_id if isinstance(package_id, int) else None)


def retrying(error: BaseException | None, attempt: int, wait: float) -> None:
    """Note a retry on the current call's span: what failed, which attempt, the wait."""
    if not ENABLED or error is None:
        return
    span = _trace.get_current_span()
    if span.is_recording():
        span.add_event(
            "vairo.retry",
            {"vairo.attempt": attempt, "vairo.retry_reason": reason(error), "vairo.wait": wait},
        )


def count_messages(state: BatchState, messages: int, rejected: int) -> None:
    """Count a campaign batch's messages by its outcome, and its rejected rows."""
    if not ENABLED:
        return
    if messages:
        _messages.add(messages, {"vairo.outcome": state.name.lower()})
    if rejected:
        _messages.add(rejected, {"vairo.outcome": "rejected"})


class CampaignTrace:
    """The span of one campaign; `context` is where its batches' calls run."""

    __slots__ = ("_span", "context")

    def __init__(self, batch_size: int, concurrency: int, rate: object) -> None:
        span = _tracer.start_span("vairo.campaign", kind=_trace.SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({"vairo.batch_size": batch_size, "vairo.concurrency": concurrency})
            if isinstance(rate, int | float):  # a shared limiter object has no one figure
                span.set_attribute("vairo.rate", rate)
        self._span = span
        self.context = contextvars.copy_context()
        self.context.run(self._enter)

    def _enter(self) -> None:
        _in_campaign.set(True)
        if self._span.is_recording():
            _context.attach(_trace.set_span_in_context(self._span))

    def end(
        self,
        counts: Mapping[BatchState, int],
        rejected: int,
        batches: int,
        rows: int,
        error: BaseException | None,
    ) -> None:
        """End the span with the campaign's counts (and its input's error class, if any)."""
        span = self._span
        if not span.is_recording():
            return
        for state, count in counts.items():
            span.set_attribute(f"vairo.messages.{state.name.lower()}", count)
        span.set_attributes(
            {"vairo.messages.rejected": rejected, "vairo.batches": batches, "vairo.rows": rows}
        )
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(_trace.StatusCode.ERROR)
        span.end()


def campaign(batch_size: int, concurrency: int, rate: object) -> CampaignTrace | None:
    """The trace of a campaign about to start, or None when OpenTelemetry is absent."""
    return CampaignTrace(batch_size, concurrency, rate) if ENABLED else None
