"""The one failure mapping, checked against tables written out by hand and the README's table."""

from __future__ import annotations

import httpx
import pytest

from tests.sdk.test_retry import ALL, TABLE
from tests.support import ROOT, Raise, Reply
from vairo_async import (
    APIError,
    AuthenticationError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
)
from vairo_async._outcome import (
    RULES,
    Answer,
    Reach,
    Verdict,
    certainly_not_sent,
    classify,
    may_have_been_sent,
    reach_of_exception,
    rule_for,
)
from vairo_async.testing import Fault, FaultKind

NOT_SENT, MAYBE_SENT, ANSWERED = Reach.NOT_SENT, Reach.MAYBE_SENT, Reach.ANSWERED

Failure = type[httpx.RequestError] | int | Answer

# Every failure, by hand: (reach, transient).
EXPECTED: dict[Failure, tuple[Reach, bool]] = {
    httpx.ConnectError: (NOT_SENT, True),
    httpx.ConnectTimeout: (NOT_SENT, True),
    httpx.PoolTimeout: (NOT_SENT, True),
    httpx.UnsupportedProtocol: (NOT_SENT, True),
    httpx.ReadTimeout: (MAYBE_SENT, True),
    httpx.WriteTimeout: (MAYBE_SENT, True),
    httpx.ReadError: (MAYBE_SENT, True),
    httpx.WriteError: (MAYBE_SENT, True),
    httpx.RemoteProtocolError: (MAYBE_SENT, True),
    httpx.LocalProtocolError: (MAYBE_SENT, True),
    httpx.ProxyError: (MAYBE_SENT, True),
    httpx.DecodingError: (MAYBE_SENT, True),
    408: (ANSWERED, True),
    429: (NOT_SENT, True),
    503: (NOT_SENT, True),
    500: (MAYBE_SENT, True),
    501: (MAYBE_SENT, True),
    502: (MAYBE_SENT, True),
    504: (MAYBE_SENT, True),
    599: (MAYBE_SENT, True),
    Answer.MALFORMED: (MAYBE_SENT, False),
    200: (ANSWERED, False),  # durum: false
    300: (MAYBE_SENT, False),  # an answer that proves no refusal: a proxy's redirect
    302: (MAYBE_SENT, False),
    303: (MAYBE_SENT, False),
    307: (MAYBE_SENT, False),
    399: (MAYBE_SENT, False),
    400: (ANSWERED, False),
    401: (ANSWERED, False),
    403: (ANSWERED, False),
    404: (ANSWERED, False),
    Answer.OTHER: (ANSWERED, False),
}

# The README's "Retries" table, row by row: (the failures it names, get_report, send).
README_ROWS: dict[str, tuple[tuple[Failure, ...], str, str]] = {
    "connect error, connect or pool timeout": (
        (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout),
        "retried",
        "retried",
    ),
    "read or write timeout, dropped connection": (
        (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError),
        "retried",
        "`OutcomeUnknownError`",
    ),
    "HTTP 408": ((408,), "retried", "`APIError`"),
    "HTTP 3xx (a redirect is never followed)": (
        (300, 301, 302, 303, 307, 308),
        "`APIError`",
        "`OutcomeUnknownError`",
    ),
    "HTTP 429, 503": ((429, 503), "retried", "retried"),
    "HTTP 500, 502, 504 (also as an HTML page)": (
        (500, 502, 504),
        "retried",
        "`OutcomeUnknownError`",
    ),
    "200 with a body that is not the documented shape": (
        (Answer.MALFORMED,),
        "`UnexpectedResponseError`",
        "`OutcomeUnknownError`",
    ),
    "`durum: false`, other 4xx, 401, 403": ((200, 400, 404, 401, 403), "raised", "raised"),
}


def verdict_of(failure: Failure) -> Verdict:
    what = failure("x") if isinstance(failure, type) else failure
    rule = rule_for(what)
    assert rule is not None
    return rule.verdict


@pytest.mark.parametrize("failure", EXPECTED, ids=str)
def test_the_mapping_decides_each_failure_as_written_by_hand(failure: Failure) -> None:
    verdict = verdict_of(failure)
    assert (verdict.reach, verdict.transient) == EXPECTED[failure]


def test_every_row_of_the_mapping_is_reached_by_a_failure_written_by_hand() -> None:
    used = set()
    for failure in EXPECTED:
        what = failure("x") if isinstance(failure, type) else failure
        used.add(rule_for(what))
    assert set(RULES) <= used


def test_every_transport_row_is_transient() -> None:
    # A TransportError keeps only `may_have_reached_server` of its row; this makes that enough.
    assert all(rule.verdict.transient for rule in RULES if isinstance(rule.failure, type))


def readme_retry_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Retries", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    table = {}
    for line in rows[2:]:  # past the header and the separator
        failure, get, send = (cell.strip() for cell in line.strip("|").split("|"))
        table[failure] = (get, send)
    return table


def test_the_readme_table_is_the_hand_written_one() -> None:
    assert readme_retry_table() == {row: (get, send) for row, (_, get, send) in README_ROWS.items()}


@pytest.mark.parametrize("row", README_ROWS)
def test_the_readme_table_agrees_with_the_mapping(row: str) -> None:
    failures, get, send = README_ROWS[row]
    for failure in failures:
        verdict = verdict_of(failure)
        assert verdict.transient is (get == "retried"), failure
        expected_reach = {"retried": NOT_SENT, "`OutcomeUnknownError`": MAYBE_SENT}
        assert verdict.reach is expected_reach.get(send, ANSWERED), failure


def failure_of(case: str) -> Failure:
    """The mapping's key for one case of the retry tests' table."""
    step = TABLE[case][0]
    if isinstance(step, Raise):
        assert issubclass(step.error, httpx.RequestError)
        return step.error
    if isinstance(step, Fault):
        if step.kind is FaultKind.DROP_AFTER_ACCEPT:
            return httpx.RemoteProtocolError  # what the client sees of the emulator's drop
        assert step.status is not None
        return step.status
    assert isinstance(step, Reply)
    response = step.response()
    if response.status_code != 200:
        return response.status_code
    try:
        durum = response.json()["durum"]
    except ValueError:
        return Answer.MALFORMED  # not JSON
    return Answer.MALFORMED if durum else 200  # a success in the wrong shape, or durum: false


@pytest.mark.parametrize("case", [case for case in TABLE if case != "429 past the cap"])
def test_the_retry_tests_table_agrees_with_the_mapping(case: str) -> None:
    # "429 past the cap" is left out: its Retry-After, not the mapping, stops its retries.
    _, (get_attempts, _), (post_attempts, post_error) = TABLE[case]
    verdict = verdict_of(failure_of(case))
    assert verdict.transient is (get_attempts == ALL)
    assert (verdict.reach is NOT_SENT) is (post_attempts == ALL)
    assert (verdict.reach is MAYBE_SENT) is (post_error is OutcomeUnknownError)


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (TransportError("x", may_have_reached_server=False), Verdict(NOT_SENT, True)),
        (TransportError("x", may_have_reached_server=True), Verdict(MAYBE_SENT, True)),
        (RateLimitError("x", status_code=429), Verdict(NOT_SENT, True)),
        (ServerError("x", status_code=503), Verdict(NOT_SENT, True)),
        (ServerError("x", status_code=502), Verdict(MAYBE_SENT, True)),
        (APIError("x", status_code=408), Verdict(ANSWERED, True)),
        (AuthenticationError("x", status_code=401), Verdict(ANSWERED, False)),
        (APIError("x", status_code=200), Verdict(ANSWERED, False)),
        (UnexpectedResponseError("x", status_code=200), Verdict(MAYBE_SENT, False)),
        (VairoError("not a request failure"), None),
        (ValueError("not ours"), None),
    ],
)
def test_classify_reads_the_errors_the_sdk_raises(
    error: BaseException, verdict: Verdict | None
) -> None:
    assert classify(error) == verdict
    assert certainly_not_sent(error) is (verdict is not None and verdict.reach is NOT_SENT)
    assert may_have_been_sent(error) is (verdict is not None and verdict.reach is MAYBE_SENT)


def test_an_exception_outside_httpx_may_have_reached_the_server() -> None:
    assert rule_for(RuntimeError("foreign transport")) is None
    assert reach_of_exception(RuntimeError("foreign transport")) is MAYBE_SENT
    assert reach_of_exception(httpx.ConnectError("x")) is NOT_SENT
