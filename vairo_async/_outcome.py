"""What a failed request tells about the server: one mapping, every rule derived from it.

The API has no idempotency key, so for every failure the SDK must know whether the server may
have acted on the request. `RULES` decides it, row by row, for an httpx exception, an HTTP
status or a malformed answer:

- `Reach.NOT_SENT`: the server certainly did not act on it (the connection was never made,
  or the server said so: 429, 503). A send may be repeated safely.
- `Reach.MAYBE_SENT`: the request may have been acted on (the connection broke after it
  left, a gateway failed, a redirect came back, the answer made no sense). A send's outcome
  is unknown: any answer after the request reached the server that does not prove a refusal.
- `Reach.ANSWERED`: the server gave a definite answer (a refusal, `durum: false`).

and, separately, whether the failure is `transient`: worth repeating for a call that sends
nothing. The retry policy and `OutcomeUnknownError` both read these verdicts (see `_retry`);
the README's "Retries" table is checked against `RULES` by the tests.
"""

from __future__ import annotations

import enum

import attrs
import httpx

from ._errors import APIError, TransportError, UnexpectedResponseError

__all__ = [
    "RULES",
    "Answer",
    "Reach",
    "Rule",
    "Verdict",
    "certainly_not_sent",
    "classify",
    "is_transient",
    "may_have_been_sent",
    "reach_of_exception",
    "rule_for",
]


class Reach(enum.Enum):
    """Whether a failed request may have been acted on by the server."""

    NOT_SENT = "certainly not sent"
    MAYBE_SENT = "may have been sent"
    ANSWERED = "answered"


class Answer(enum.Enum):
    """Failures that are neither an httpx exception nor told apart by their status alone."""

    MALFORMED = "a success answer whose body is not the documented shape"
    OTHER = "any other answer: durum false, or any other status"


@attrs.frozen
class Verdict:
    """What one failure means.

    Attributes:
        reach: Whether the server may have acted on the request.
        transient: Whether a call that sends nothing is repeated after it.
    """

    reach: Reach
    transient: bool


Failure = type[httpx.RequestError] | int | range | Answer


@attrs.frozen
class Rule:
    """One row of `RULES`.

    Attributes:
        failure: An httpx exception class (its subclasses too), an HTTP status, a range of
            statuses, or an `Answer`.
        verdict: What that failure means.
    """

    failure: Failure
    verdict: Verdict


_NOT_SENT = Reach.NOT_SENT
_MAYBE_SENT = Reach.MAYBE_SENT
_ANSWERED = Reach.ANSWERED

#: The one mapping; the first row that matches a failure decides it.
RULES: tuple[Rule, ...] = (
    # The request never left: refused, DNS, TLS, no connection in time, a URL refused at once.
    Rule(httpx.ConnectError, Verdict(_NOT_SENT, transient=True)),
    Rule(httpx.ConnectTimeout, Verdict(_NOT_SENT, transient=True)),
    Rule(httpx.PoolTimeout, Verdict(_NOT_SENT, transient=True)),
    Rule(httpx.UnsupportedProtocol, Verdict(_NOT_SENT, transient=True)),
    # Anything else went wrong after the request may have left: read or write timeout,
    # a dropped connection, a broken answer.
    Rule(httpx.RequestError, Verdict(_MAYBE_SENT, transient=True)),
    # A redirect is never followed, and proves no refusal: a proxy or a moved panel may send
    # it after the request was acted on (a 303 "see other" is made for exactly that).
    Rule(range(300, 400), Verdict(_MAYBE_SENT, transient=False)),
    Rule(408, Verdict(_ANSWERED, transient=True)),
    Rule(429, Verdict(_NOT_SENT, transient=True)),
    Rule(503, Verdict(_NOT_SENT, transient=True)),
    Rule(range(500, 1000), Verdict(_MAYBE_SENT, transient=True)),  # every other 5xx
    Rule(Answer.MALFORMED, Verdict(_MAYBE_SENT, transient=False)),
    Rule(Answer.OTHER, Verdict(_ANSWERED, transient=False)),
)


def _matches(failure: Failure, what: BaseException | int | Answer) -> bool:
    if isinstance(failure, type):
        return isinstance(what, failure)
    if isinstance(what, BaseException):
        return False
    if isinstance(failure, Answer):
        return failure is what or failure is Answer.OTHER
    if isinstance(what, Answer):
        return False
    return what in failure if isinstance(failure, range) else what == failure


def rule_for(what: BaseException | int | Answer) -> Rule | None:
    """The row of `RULES` deciding an httpx exception, an HTTP status or an `Answer`.

    None for an exception outside httpx's `RequestError` tree (a bug, a foreign transport).
    """
    for rule in RULES:
        if _matches(rule.failure, what):
            return rule
    return None


def reach_of_exception(exc: BaseException) -> Reach:
    """Whether the request that raised `exc` may have reached the server.

    An exception outside the mapping counts as MAYBE_SENT: nothing proves otherwise.
    """
    rule = rule_for(exc)
    return Reach.MAYBE_SENT if rule is None else rule.verdict.reach


def classify(error: BaseException) -> Verdict | None:
    """The verdict on a request's failure, as the SDK raised it; None if it is not one.

    A `TransportError` keeps what its httpx exception's row said (`may_have_reached_server`);
    every transport row is transient.
    """
    if isinstance(error, TransportError):
        reach = Reach.MAYBE_SENT if error.may_have_reached_server else Reach.NOT_SENT
        return Verdict(reach, transient=True)
    if isinstance(error, APIError):
        rule = rule_for(error.status_code)
    elif isinstance(error, UnexpectedResponseError):
        rule = rule_for(Answer.MALFORMED)
    else:
        return None
    assert rule is not None  # Answer.OTHER matches every status and answer
    return rule.verdict


def is_transient(error: BaseException) -> bool:
    """True for the failures a call that sends nothing is repeated after."""
    verdict = classify(error)
    return verdict is not None and verdict.transient


def certainly_not_sent(error: BaseException) -> bool:
    """True when the server certainly did not act on the failed request."""
    verdict = classify(error)
    return verdict is not None and verdict.reach is Reach.NOT_SENT


def may_have_been_sent(error: BaseException) -> bool:
    """True when the server may have acted on the failed request."""
    verdict = classify(error)
    return verdict is not None and verdict.reach is Reach.MAYBE_SENT
