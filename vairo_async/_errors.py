"""The exception hierarchy of vairo-async.

VairoError                    .certainly_not_sent: True when the call sent no SMS (see below)
├── ConfigurationError        bad client set-up (no key, plain http to a remote host, ...)
├── ClientClosedError         the client was used after aclose()
├── WrongEventLoopError       the client was used from another event loop than its first
├── InvalidRequestError       bad input caught before anything was sent (also a ValueError)
├── APIError                  the server answered with an error (durum: false or HTTP 4xx/5xx)
│   ├── AuthenticationError   HTTP 401 / 403
│   ├── RateLimitError        HTTP 429, with retry_after
│   └── ServerError           HTTP 5xx
├── TransportError            no usable answer: connect failure, timeout, dropped connection
├── RateLimiterError          a campaign's rate limiter failed before a request left
├── UnexpectedResponseError   an answer that is not what the API documents
├── OutcomeUnknownError       a send may or may not have been acted on: not retried
├── BulkInputError            send_bulk's input raised; the rows read before were sent
├── WaitTimeoutError          a package was not final in time (also a TimeoutError)
│   └── PackageExpiredError   ... and never will be: still not final long after it expired
├── WaitAllError              packages a wait_all could not wait for (also an ExceptionGroup)
└── JournalError              the journal of sends could not do what was asked
    ├── JournalUnavailableError   the store could not be reached or written
    ├── ClaimLostError            a write by an owner whose claim is no longer its own
    ├── SentNotRecordedError      the SMS went out but its SENT record was not written
    ├── IdempotencyKeyReusedError a key reused for other content
    ├── SendInProgressError       the key is claimed, live, by another sender
    └── CampaignMismatchError     a rerun whose parameters or rows differ from the journal's

`certainly_not_sent` is True for bad input and configuration, a closed or wrong-loop
client, a failed rate limiter, refusals
(`durum: false`, 4xx), 429 and 503 (also once their retries ran out), connect failures and
the journal's refusals (a `ClaimLostError` only when it stopped a retry: `attempt` set);
False for unknown outcomes (`OutcomeUnknownError`, a dropped answer, 500/502/504, a malformed
answer) and for errors about packages that exist (waits, `SentNotRecordedError`). For the
errors of the request classes (`APIError`, `TransportError`, `UnexpectedResponseError`) it is
read from the one failure mapping, `_outcome.RULES`: a call that sends nothing (a report) has
it too, and there it says whether the server may have acted on the request, never whether an
SMS went out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from ._journal import JournalRecord
    from ._models import BulkResult, PackageReport

__all__ = [
    "APIError",
    "AuthenticationError",
    "BulkInputError",
    "CampaignMismatchError",
    "ClaimLostError",
    "ClientClosedError",
    "ConfigurationError",
    "IdempotencyKeyReusedError",
    "InvalidRequestError",
    "JournalError",
    "JournalUnavailableError",
    "OutcomeUnknownError",
    "PackageExpiredError",
    "RateLimitError",
    "RateLimiterError",
    "SendInProgressError",
    "SentNotRecordedError",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
    "VairoError",
    "WaitAllError",
    "WaitTimeoutError",
    "WrongEventLoopError",
    "api_error_class",
]


class VairoError(Exception):
    """Base class of every error this SDK raises.

    Attributes:
        certainly_not_sent: True when the call that raised it certainly sent no SMS, so it
            may be made again (tell a caller "retry"); False when an SMS may have gone out
            (tell it "do not resend"). The module's opening lines say which error is which.

    .. versionadded:: 0.1.0
    """

    #: The value of `certainly_not_sent` for errors that are no request's failure.
    _not_sent: ClassVar[bool] = False

    @property
    def certainly_not_sent(self) -> bool:
        """True when the call that raised this certainly sent no SMS.

        .. versionadded:: 0.2.0
        """
        from ._outcome import Reach, classify  # _outcome imports this module

        verdict = classify(self)
        if verdict is None:
            return self._not_sent
        return verdict.reach is not Reach.MAYBE_SENT


class ConfigurationError(VairoError):
    """The client cannot be built as asked: no API key, an unsafe base URL, a bad knob.

    Attributes:
        problems: One line per bad setting, each naming the setting and what is wrong with
            it; the API key's value is never quoted.

    .. versionadded:: 0.1.0
    """

    _not_sent = True

    def __init__(self, problems: str | list[str] | tuple[str, ...]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        count = len(self.problems)
        head = "" if count == 1 else f"{count} configuration problems: "
        super().__init__(head + "; ".join(self.problems))


class ClientClosedError(VairoError, RuntimeError):
    """The client was used after `aclose()` or after its `async with` block ended.

    .. versionadded:: 0.1.0
    """

    _not_sent = True


class WrongEventLoopError(VairoError, RuntimeError):
    """The client was used from an event loop other than the one it first sent a request on.

    Its connections belong to that loop, so the call is refused before any request: nothing
    was sent. Build one client inside each event loop (each `asyncio.run()`, or the
    application's lifespan).

    .. versionadded:: 0.2.0
    """

    _not_sent = True


class InvalidRequestError(VairoError, ValueError):
    """Input broke the SDK's input rules (the README's "Input rules"); nothing was sent.

    Attributes:
        problems: One line per bad value, each naming the value and what is wrong with it.

    .. versionadded:: 0.1.0
    """

    _not_sent = True

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "invalid request" if count == 1 else f"{count} invalid inputs"
        super().__init__(f"{head}: " + "; ".join(self.problems))


class APIError(VairoError):
    """The server answered with an error.

    Attributes:
        message: The server's own words (its `aciklama`), or a summary of a non-JSON body.
        status_code: The HTTP status of the answer.
        body: An excerpt of the answer's body, with the API key removed.
        retry_after: Seconds the server asked us to wait (`Retry-After`), if it said.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        super().__init__(f"HTTP {status_code}: {message}")


class AuthenticationError(APIError):
    """The API key was refused (HTTP 401 or 403).

    .. versionadded:: 0.1.0
    """


class RateLimitError(APIError):
    """Too many requests (HTTP 429); `retry_after` says how long the server wants us to wait.

    .. versionadded:: 0.1.0
    """


class ServerError(APIError):
    """The server failed (HTTP 5xx).

    .. versionadded:: 0.1.0
    """


class TransportError(VairoError):
    """No usable answer arrived: the connection failed, timed out or was dropped.

    Attributes:
        may_have_reached_server: False only when the request certainly never reached the
            server (the connection could not be made), which makes a resend safe.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, may_have_reached_server: bool) -> None:
        self.may_have_reached_server = may_have_reached_server
        super().__init__(message)


class RateLimiterError(VairoError):
    """A campaign's rate limiter failed (`acquire()` raised): the batch's request never left.

    The limiter is awaited before each attempt, so the batch is FAILED and nothing was sent;
    the limiter's own exception is chained as the cause.

    .. versionadded:: 0.2.0
    """

    _not_sent = True


class UnexpectedResponseError(VairoError):
    """A success answer that does not match the documented shape, or is not about what was
    asked (a package id that is not a positive integer, the report of another package).

    Attributes:
        status_code: The HTTP status of the answer.
        body: An excerpt of the answer's body, with the API key removed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, status_code: int, body: str = "") -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class OutcomeUnknownError(VairoError):
    """A send may have been acted on by the server, or may not: it was not retried.

    Check the package list in the VairoSMS panel before sending again.

    Attributes:
        error: The failure behind the uncertainty (also the exception's `__cause__`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, error: VairoError) -> None:
        self.error = error
        super().__init__(
            f"the send may or may not have reached VairoSMS ({type(error).__name__}: {error}); "
            "it was not retried, to avoid sending the SMS twice"
        )


class BulkInputError(VairoError):
    """The input of `send_bulk` raised before it ended; the rows read before were sent.

    The input's own exception is the `__cause__`.

    Attributes:
        result: The campaign up to the failure: every row read is accounted for, and every
            package id of a batch sent is in it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, result: BulkResult) -> None:
        self.result = result
        super().__init__(
            f"the campaign's input failed after {result.total} rows "
            f"({result.sent} sent in {len(result.package_ids)} packages)"
        )


class WaitTimeoutError(VairoError, TimeoutError):
    """A package was not final before the wait's timeout.

    Attributes:
        package_id: The package waited on.
        last_report: The last report seen, or None if no poll succeeded.

    .. versionadded:: 0.1.0
    """

    def __init__(self, package_id: int, last_report: PackageReport | None, timeout: float) -> None:
        self.package_id = package_id
        self.last_report = last_report
        status = "no report" if last_report is None else f"last status {last_report.status.name}"
        super().__init__(f"package {package_id} not final after {timeout:g}s ({status})")


class PackageExpiredError(WaitTimeoutError):
    """A package still was not final long after its validity ended, so the wait gave up.

    The service should have settled it by then; ask VairoSMS about it rather than waiting.

    Attributes:
        package_id: The package waited on.
        last_report: The report that showed it still unsettled.
        expired_at: When its validity ended (`expires_at`, or later for a scheduled package).
        grace: Seconds past `expired_at` the wait allowed before giving up.

    .. versionadded:: 0.1.0
    """

    last_report: PackageReport

    def __init__(
        self, package_id: int, last_report: PackageReport, expired_at: datetime, grace: float
    ) -> None:
        self.package_id = package_id
        self.last_report = last_report
        self.expired_at = expired_at
        self.grace = grace
        VairoError.__init__(
            self,
            f"package {package_id} still {last_report.status.name} more than {grace:g}s "
            f"after its validity ended at {expired_at.isoformat()}",
        )


class WaitAllError(ExceptionGroup[VairoError], VairoError):
    """Some packages of a `wait_all` could not be waited for; the others were yielded.

    It is an `ExceptionGroup`, so `except* WaitTimeoutError` and friends work on it.

    Attributes:
        errors: Each such package's id and its error, in the order they failed.

    .. versionadded:: 0.1.0
    """

    errors: Mapping[int, VairoError]

    def __new__(cls, errors: Mapping[int, VairoError]) -> Self:
        ids = ", ".join(str(package_id) for package_id in list(errors)[:10])
        more = ", ..." if len(errors) > 10 else ""
        message = f"{len(errors)} package(s) could not be waited for: {ids}{more}"
        self = super().__new__(cls, message, list(errors.values()))
        self.errors = dict(errors)
        return self

    def __init__(self, errors: Mapping[int, VairoError]) -> None:
        super().__init__(self.message, list(errors.values()))


class JournalError(VairoError):
    """Base class of the errors of a journal (`MemoryJournal`, `SqliteJournal`, `RedisJournal`).

    .. versionadded:: 0.2.0
    """

    _not_sent = True


class JournalUnavailableError(JournalError):
    """The journal's store could not be reached or written (or the journal was closed).

    The store's own exception is the `__cause__`; the message never holds a password. Raised
    by a claim, it means nothing was sent: the claim comes before the first HTTP attempt.

    .. versionadded:: 0.2.0
    """


class ClaimLostError(JournalError):
    """A write by an owner whose claim on the key is no longer its own.

    The claim was resolved by hand, or resolved and claimed again by another sender: the
    newer record is kept, never overwritten by the stale owner. Raised by a send whose
    claim was lost between two attempts (`attempt` set), it means that attempt was not
    made: the call sent no SMS, since a send is retried only after a failure the server
    certainly did not act on (`certainly_not_sent` is True then).

    Attributes:
        key: The journal key.
        record: The record found instead of the owner's claim, or None if there was none.
        attempt: The HTTP attempt that was not made because the claim could not be
            renewed before it; None for a write after the request (`certainly_not_sent`
            is False then: the SMS may have gone out).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self, key: str, record: JournalRecord | None, *, attempt: int | None = None
    ) -> None:
        self.key = key
        self.record = record
        self.attempt = attempt
        found = "no record" if record is None else f"a {record.state.name} record"
        message = f"the claim on {key!r} is no longer this owner's: found {found}"
        if attempt is not None:
            message += f"; attempt {attempt} was not made, and no SMS was sent"
        super().__init__(message)

    @property
    def certainly_not_sent(self) -> bool:
        """True when the claim was lost before an attempt, which was then not made."""
        return self.attempt is not None


class SentNotRecordedError(JournalError):
    """The SMS went out, but its SENT record could not be written: store `package_id`.

    The store's failure is the `__cause__`. The key's record is still CLAIMED (UNKNOWN once
    its lease passes), so the SMS is not sent again for it.

    Attributes:
        key: The journal key.
        package_id: The package the server accepted.

    .. versionadded:: 0.2.0
    """

    _not_sent = False

    def __init__(self, key: str, package_id: int) -> None:
        self.key = key
        self.package_id = package_id
        super().__init__(
            f"package {package_id} was sent, but the journal could not record it for {key!r}"
        )


class IdempotencyKeyReusedError(JournalError):
    """An idempotency key was used again with other content (another fingerprint).

    Nothing was sent.

    Attributes:
        key: The key as the caller gave it.
        record: The record the key already holds.

    .. versionadded:: 0.2.0
    """

    def __init__(self, key: str, record: JournalRecord) -> None:
        self.key = key
        self.record = record
        super().__init__(
            f"idempotency key {key!r} was already used for other content "
            f"({record.state.name}); nothing was sent"
        )


class SendInProgressError(JournalError):
    """The key is claimed by another sender whose lease has not passed; nothing was sent.

    Attributes:
        key: The key as the caller gave it.
        record: The live claim.

    .. versionadded:: 0.2.0
    """

    def __init__(self, key: str, record: JournalRecord) -> None:
        self.key = key
        self.record = record
        super().__init__(f"a send for {key!r} is in progress elsewhere; nothing was sent")


class CampaignMismatchError(JournalError):
    """A campaign was run again with other parameters, or a batch's rows changed.

    Nothing of the mismatching batch (or, for parameters, of the campaign) was sent.

    Attributes:
        campaign: The campaign id.
        reason: What differs.
        batch: The batch index whose rows changed, or None for the campaign's parameters.

    .. versionadded:: 0.2.0
    """

    def __init__(self, campaign: str, reason: str, *, batch: int | None = None) -> None:
        self.campaign = campaign
        self.reason = reason
        self.batch = batch
        where = f"campaign {campaign!r}" if batch is None else f"batch {batch} of {campaign!r}"
        super().__init__(f"{where} does not match the journal: {reason}")


_STATUS_CLASSES: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    429: RateLimitError,
}


def api_error_class(status_code: int) -> type[APIError]:
    """The `APIError` subclass for an HTTP status."""
    if status_code >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status_code, APIError)
