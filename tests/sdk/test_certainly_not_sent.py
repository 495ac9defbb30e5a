"""`VairoError.certainly_not_sent`: each kind of error, raised for real through the emulator.

True means "this call sent no SMS: tell your caller to retry"; False means "an SMS may have
gone out: do not resend". The request errors read the one failure mapping (`_outcome.RULES`),
so a test below also checks that no second table decides it.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import vairo_async
from tests.support import API_KEY, ROOT, Recorder, Reply
from vairo_async import (
    APIError,
    AsyncVairoClient,
    AuthenticationError,
    BulkInputError,
    CampaignMismatchError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    JournalError,
    JournalUnavailableError,
    Message,
    OutcomeUnknownError,
    RateLimitError,
    SentNotRecordedError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
    WaitTimeoutError,
)
from vairo_async._errors import api_error_class
from vairo_async._outcome import RULES, Reach, rule_for
from vairo_async.testing import FakeVairo, Fault


@contextlib.asynccontextmanager
async def client_of(fake: FakeVairo, **options: object) -> AsyncIterator[AsyncVairoClient]:
    async with AsyncVairoClient(
        fake.api_key,
        sender="ACME",
        transport=Recorder(fake),
        **options,  # type: ignore[arg-type]
    ) as client:
        yield client


async def send_error(fake: FakeVairo, **options: object) -> VairoError:
    async with client_of(fake, **options) as client:
        with pytest.raises(VairoError) as info:
            await client.send("Kodunuz 1234", to="5399999999")
    return info.value


# --- certainly not sent ----------------------------------------------------------------


def test_a_configuration_error_was_not_sent() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient()
    assert info.value.certainly_not_sent is True


async def test_bad_input_was_not_sent(fake: FakeVairo) -> None:
    async with client_of(fake) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.send("Kodunuz 1234", to="12")
    assert info.value.certainly_not_sent is True
    assert fake.requests == ()


async def test_a_closed_client_sent_nothing(fake: FakeVairo) -> None:
    async with client_of(fake) as client:
        pass
    with pytest.raises(ClientClosedError) as info:
        await client.send("Kodunuz 1234", to="5399999999")
    assert info.value.certainly_not_sent is True


async def test_a_refused_key_was_not_sent() -> None:
    fake = FakeVairo(api_key="another-key")
    async with AsyncVairoClient(API_KEY, sender="ACME", transport=Recorder(fake)) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send("Kodunuz 1234", to="5399999999")
    assert info.value.certainly_not_sent is True
    assert fake.messages == ()


async def test_durum_false_with_200_was_not_sent(fake: FakeVairo) -> None:
    recorder = Recorder(fake)
    recorder.script(Reply(200, json={"durum": False, "aciklama": "Yetersiz kredi"}))
    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=recorder) as client:
        with pytest.raises(APIError) as info:
            await client.send("Kodunuz 1234", to="5399999999")
    assert type(info.value) is APIError
    assert info.value.certainly_not_sent is True


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.rate_limit(retry_after=0), RateLimitError), (Fault.server_error(503), ServerError)],
)
async def test_exhausted_429_and_503_were_not_sent(
    fake: FakeVairo, fault: Fault, error: type[APIError]
) -> None:
    fake.inject(fault, times=3)
    raised = await send_error(fake, max_retries=2)
    assert type(raised) is error
    assert raised.certainly_not_sent is True
    assert (fake.request_count("send"), fake.messages) == (3, ())


async def test_a_connect_failure_was_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/Panel/api/v1/"
        async with AsyncVairoClient(API_KEY, sender="ACME", base_url=url) as client:
            with pytest.raises(TransportError) as info:
                await client.send("Kodunuz 1234", to="5399999999")
    assert info.value.may_have_reached_server is False
    assert info.value.certainly_not_sent is True


async def test_an_unknown_package_is_a_refusal(fake: FakeVairo) -> None:
    async with client_of(fake) as client:
        with pytest.raises(APIError) as info:
            await client.get_report(424242)
    assert info.value.status_code == 404
    assert info.value.certainly_not_sent is True


async def test_a_batch_of_rejected_rows_was_not_sent(fake: FakeVairo) -> None:
    async with client_of(fake) as client:
        result = await client.send_bulk([Message(to="12", text="x")])
    [outcome] = result.outcomes
    assert outcome.error is not None
    assert outcome.error.certainly_not_sent is True


# --- may have been sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error(500),
        Fault.server_error(502),
        Fault.server_error(504, accepted=True),
        Fault.drop_before_accept(),
        Fault.drop_after_accept(),
    ],
)
async def test_an_unknown_outcome_may_have_been_sent(fake: FakeVairo, fault: Fault) -> None:
    fake.inject(fault)
    raised = await send_error(fake)
    assert isinstance(raised, OutcomeUnknownError)
    assert raised.certainly_not_sent is False
    assert raised.error.certainly_not_sent is False


async def test_a_malformed_success_may_have_been_sent(fake: FakeVairo) -> None:
    recorder = Recorder(fake)
    recorder.script(Reply(200, json={"durum": True, "aciklama": "not a package id"}))
    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=recorder) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.send("Kodunuz 1234", to="5399999999")
    assert isinstance(info.value.error, UnexpectedResponseError)
    assert info.value.error.certainly_not_sent is False
    assert info.value.certainly_not_sent is False


async def test_a_report_call_says_whether_the_server_may_have_acted(fake: FakeVairo) -> None:
    """A report sends no SMS; there the attribute describes the request, per the mapping."""
    package_id = (await _send_one(fake)).package_id
    fake.inject(Fault.server_error(500), endpoint="report", times=2)
    async with client_of(fake, max_retries=1) as client:
        with pytest.raises(ServerError) as info:
            await client.get_report(package_id)
    assert info.value.certainly_not_sent is False


async def test_a_wait_timeout_concerns_a_package_that_exists() -> None:
    slow = FakeVairo(complete_after_polls=None)
    package_id = (await _send_one(slow)).package_id
    async with client_of(slow) as client:
        with pytest.raises(WaitTimeoutError) as info:
            await client.wait_until_final(package_id, timeout=0.05, poll_interval=0.01)
    assert info.value.certainly_not_sent is False


async def test_a_failed_input_after_sending_is_not_not_sent(fake: FakeVairo) -> None:
    def rows() -> Iterator[Message]:
        yield Message(to="5399999999", text="x")
        raise RuntimeError("the file ended badly")

    async with client_of(fake) as client:
        with pytest.raises(BulkInputError) as info:
            await client.send_bulk(rows(), batch_size=1)
    assert info.value.result.sent == 1
    assert info.value.certainly_not_sent is False


async def _send_one(fake: FakeVairo) -> vairo_async.Submission:
    async with client_of(fake) as client:
        return await client.send("Kodunuz 1234", to="5399999999")


# --- one mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504])
def test_api_errors_follow_the_mapping(status: int) -> None:
    rule = rule_for(status)
    assert rule is not None
    error = api_error_class(status)("x", status_code=status)
    assert error.certainly_not_sent is (rule.verdict.reach is not Reach.MAYBE_SENT)


@pytest.mark.parametrize(
    "exception",
    [rule.failure for rule in RULES if isinstance(rule.failure, type)],
    ids=lambda cls: cls.__name__,
)
def test_transport_errors_follow_the_mapping(exception: type[httpx.RequestError]) -> None:
    rule = rule_for(exception("x"))
    assert rule is not None
    error = TransportError("x", may_have_reached_server=rule.verdict.reach is not Reach.NOT_SENT)
    assert error.certainly_not_sent is (rule.verdict.reach is Reach.NOT_SENT)


def test_journal_errors() -> None:
    assert JournalError("x").certainly_not_sent is True
    assert JournalUnavailableError("x").certainly_not_sent is True
    assert CampaignMismatchError("c", "rows differ", batch=1).certainly_not_sent is True
    assert SentNotRecordedError("k", 7).certainly_not_sent is False


def _record() -> vairo_async.JournalRecord:
    return vairo_async.JournalRecord(
        key="k", state=vairo_async.RecordState.CLAIMED, fingerprint="f", created_at=1, updated_at=1
    )


def _report() -> vairo_async.PackageReport:
    now = datetime.now(UTC)
    return vairo_async.PackageReport(
        package_id=7,
        sender="ACME",
        recipient_count=1,
        credits=1,
        expires_at=now,
        scheduled_at=None,
        validity=timedelta(hours=24),
        status=vairo_async.PackageStatus.SENDING,
        created_at=now,
    )


def _examples() -> dict[type[VairoError], list[VairoError]]:
    """One instance of each public error class per value its `certainly_not_sent` can take."""
    unknown = OutcomeUnknownError(ServerError("x", status_code=500))
    return {
        ConfigurationError: [ConfigurationError("x")],
        ClientClosedError: [ClientClosedError("x")],
        vairo_async.WrongEventLoopError: [vairo_async.WrongEventLoopError("x")],
        InvalidRequestError: [InvalidRequestError(["x"])],
        APIError: [APIError("x", status_code=200), APIError("x", status_code=404)],
        AuthenticationError: [AuthenticationError("x", status_code=401)],
        RateLimitError: [RateLimitError("x", status_code=429)],
        ServerError: [ServerError("x", status_code=503), ServerError("x", status_code=500)],
        TransportError: [
            TransportError("x", may_have_reached_server=False),
            TransportError("x", may_have_reached_server=True),
        ],
        vairo_async.RateLimiterError: [vairo_async.RateLimiterError("x")],
        UnexpectedResponseError: [UnexpectedResponseError("x", status_code=200)],
        OutcomeUnknownError: [unknown],
        BulkInputError: [BulkInputError(vairo_async.BulkResult(outcomes=(), total=0))],
        WaitTimeoutError: [WaitTimeoutError(7, None, 1.0)],
        vairo_async.PackageExpiredError: [
            vairo_async.PackageExpiredError(7, _report(), datetime.now(UTC), 60.0)
        ],
        vairo_async.WaitAllError: [vairo_async.WaitAllError({7: unknown})],
        JournalError: [JournalError("x")],
        JournalUnavailableError: [JournalUnavailableError("x")],
        vairo_async.ClaimLostError: [
            vairo_async.ClaimLostError("k", None),
            vairo_async.ClaimLostError("k", None, attempt=2),
        ],
        SentNotRecordedError: [SentNotRecordedError("k", 7)],
        vairo_async.IdempotencyKeyReusedError: [
            vairo_async.IdempotencyKeyReusedError("k", _record())
        ],
        vairo_async.SendInProgressError: [vairo_async.SendInProgressError("k", _record())],
        CampaignMismatchError: [CampaignMismatchError("c", "rows differ", batch=1)],
    }


def test_every_public_error_has_a_documented_value() -> None:
    """Each public error class is in the README's error tree, and in the True/False table
    in exactly the rows of the values its `certainly_not_sent` takes."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    errors = [
        getattr(vairo_async, name)
        for name in vairo_async.__all__
        if isinstance(getattr(vairo_async, name), type)
        and issubclass(getattr(vairo_async, name), VairoError)
        and name != "VairoError"
    ]
    assert "VairoError                    .certainly_not_sent" in text
    for cls in errors:
        assert f"── {cls.__name__} " in text, cls.__name__
    rows = {
        value: re.search(rf"^\| `{value}` \|(.*)\|$", text, re.MULTILINE) for value in (True, False)
    }
    documented: dict[str, set[bool]] = {}
    for value, row in rows.items():
        assert row is not None, f"README has no `{value}` row in the certainly_not_sent table"
        for name in re.findall(r"`(\w+)`", row.group(1)):
            documented.setdefault(name, set()).add(value)
    examples = _examples()
    assert set(examples) == set(errors)
    for cls, instances in examples.items():
        assert all(type(error) is cls for error in instances)
        values = {error.certainly_not_sent for error in instances}
        assert documented.get(cls.__name__, set()) == values, cls.__name__
