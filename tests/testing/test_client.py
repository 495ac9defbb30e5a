"""Every emulator fault through AsyncVairoClient, in-process and over a loopback socket.

Each test checks the outcome the README's Retries table prescribes and that the emulator's
records show no SMS accepted twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest

from vairo_async import (
    APIError,
    AsyncVairoClient,
    AuthenticationError,
    BatchState,
    Encoding,
    Message,
    OutcomeUnknownError,
    PackageStatus,
    RateLimitError,
    ServerError,
    TransportError,
    VairoError,
    segments,
)
from vairo_async.testing import FakeVairo, Fault, Outcome, RandomFaults

MakeClient = Callable[..., AsyncVairoClient]


@pytest.fixture(params=["in_process", "loopback", "loopback_httpx"])
async def make_client(request: pytest.FixtureRequest, fake: FakeVairo) -> AsyncIterator[MakeClient]:
    """Builds clients on the emulator: in-process, or over a loopback socket through the
    default (aiohttp) stack or the pure httpx stack."""
    async with contextlib.AsyncExitStack() as stack:
        transport: Callable[[], httpx.AsyncBaseTransport] | None
        if request.param == "in_process":
            base_url, transport = fake.base_url, fake.transport
        else:
            base_url = await stack.enter_async_context(fake.serve())
            transport = httpx.AsyncHTTPTransport if request.param == "loopback_httpx" else None

        def make(**options: object) -> AsyncVairoClient:
            settings: dict[str, object] = {
                "api_key": fake.api_key,
                "sender": "ACME",
                "base_url": base_url,
                **options,
            }
            if transport is not None:
                settings["transport"] = transport()
            client = AsyncVairoClient(**settings)  # type: ignore[arg-type]
            stack.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> AsyncVairoClient:
    return make_client()


def assert_sent_once_at_most(fake: FakeVairo) -> None:
    assert fake.duplicates() == {}


async def test_send_and_report_round_trip(client: AsyncVairoClient, fake: FakeVairo) -> None:
    submission = await client.send_messages(
        [Message(to="0539 999 99 99", text="Merhaba Ali"), Message(to="5554444444", text="Ayşe")]
    )
    sending = await client.get_report(submission.package_id)
    final = await client.get_report(submission.package_id)

    assert (submission.package_id, submission.recipient_count) == (1, 2)
    assert submission.estimated_credits == fake.packages[1].credits
    assert [m.text for m in fake.sent_to("5399999999")] == ["Merhaba Ali"]
    assert fake.packages[1].tr_char is True
    assert sending.status is PackageStatus.SENDING
    assert final.status is PackageStatus.COMPLETED
    assert final.package_id == 1
    assert final.sender == "ACME"
    assert final.recipient_count == 2
    assert final.credits == fake.packages[1].credits == 2
    assert final.validity == timedelta(hours=24)
    assert final.expires_at - final.created_at == timedelta(hours=24)
    assert final.scheduled_at is None
    assert final.failure is None
    assert final.created_at.utcoffset() == timedelta(hours=3)


async def test_turkish_text_without_tr_char_is_priced_alike_by_both_sides(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    text = "Şifreniz: 1234, iyi günler dileriz " * 5
    assert segments(text, tr_char=False).encoding is Encoding.UCS2

    submission = await client.send(text, to="5399999999", tr_char=False)
    report = await client.get_report(submission.package_id)

    assert fake.packages[submission.package_id].tr_char is None  # left out of the body
    assert submission.estimated_credits == segments(text, tr_char=False).count == 3
    assert report.credits == fake.packages[submission.package_id].credits == 3


async def test_failed_package_report_carries_the_log(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.fail_senders = {"BADSENDER"}
    fake.complete_after_polls = 0

    submission = await client.send("Kodunuz 1234", to="5399999999", sender="BADSENDER")
    report = await client.get_report(submission.package_id)

    assert report.status is PackageStatus.FAILED
    assert report.credits == 0
    assert report.failure is not None
    assert report.failure.message.endswith("INVALID_SOURCE_ADDRESS")
    assert report.failure.kind == "error"


async def test_string_ids_are_understood(client: AsyncVairoClient, fake: FakeVairo) -> None:
    fake.ids_as_strings = True

    submission = await client.send("a", to="5399999999")

    assert submission.package_id == 1
    assert (await client.get_report(1)).package_id == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error(503),
        Fault.html_page(503),
        Fault.rate_limit(1),
        Fault.rate_limit("Wed, 21 Oct 2015 07:28:00 GMT"),
    ],
)
async def test_send_is_retried_when_the_server_certainly_did_not_act(
    client: AsyncVairoClient, fake: FakeVairo, fault: Fault
) -> None:
    fake.inject(fault, times=2)

    submission = await client.send("Kodunuz 1234", to="5399999999")

    assert submission.package_id == 1
    assert fake.request_count("send") == 3
    assert fake.request_count("send", "accepted") == 1
    assert len(fake.packages) == 1
    assert_sent_once_at_most(fake)


@pytest.mark.parametrize(
    ("fault", "accepted"),
    [
        (Fault.server_error(500), 0),
        (Fault.server_error(502), 0),
        (Fault.server_error(504), 0),
        (Fault.server_error(500, accepted=True), 1),
        (Fault.server_error(504, accepted=True), 1),
        (Fault.html_page(502), 0),
        (Fault.html_page(502, accepted=True), 1),
        (Fault.drop_before_accept(), 0),
        (Fault.drop_after_accept(), 1),
    ],
)
async def test_send_with_unknown_outcome_is_not_retried(
    client: AsyncVairoClient, fake: FakeVairo, fault: Fault, accepted: int
) -> None:
    fake.inject(fault)

    with pytest.raises(OutcomeUnknownError):
        await client.send("Kodunuz 1234", to="5399999999")

    assert fake.request_count("send") == 1
    assert len(fake.sent_to("5399999999")) == accepted
    assert_sent_once_at_most(fake)


async def test_drops_reach_the_client_as_transport_errors(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.drop_before_accept())
    fake.inject(Fault.drop_after_accept())

    for _ in range(2):
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.send("Kodunuz 1234", to="5399999999")
        error = caught.value.error
        assert isinstance(error, TransportError)
        assert error.may_have_reached_server
        # A drop before any byte of the answer, or in the middle of its body.
        assert isinstance(error.__cause__, httpx.RemoteProtocolError | httpx.ReadError)


async def test_read_timeout_after_acceptance_is_an_unknown_outcome(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(timeout=httpx.Timeout(5, read=0.05))
    fake.inject(Fault.latency(30))

    with pytest.raises(OutcomeUnknownError) as caught:
        await client.send("Kodunuz 1234", to="5399999999")

    assert isinstance(caught.value.error.__cause__, httpx.ReadTimeout)
    assert len(fake.sent_to("5399999999")) == 1
    assert fake.request_count("send") == 1


async def test_latency_within_the_timeout_just_answers(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.latency(0.01), endpoint="both", times=2)

    submission = await client.send("a", to="5399999999")
    report = await client.get_report(submission.package_id)

    assert report.package_id == submission.package_id


async def test_503_until_retries_run_out_is_raised_with_nothing_sent(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(max_retries=2)
    fake.inject(Fault.server_error(503), times=3)

    with pytest.raises(ServerError) as caught:
        await client.send("a", to="5399999999")

    assert caught.value.status_code == 503
    assert fake.request_count("send") == 3
    assert fake.messages == ()


async def test_retry_after_beyond_the_cap_is_raised(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(retry_after_max=60)
    fake.inject(Fault.rate_limit(3600))

    with pytest.raises(RateLimitError) as caught:
        await client.send("a", to="5399999999")

    assert caught.value.retry_after == 3600
    assert fake.request_count("send") == 1
    assert fake.messages == ()


async def test_opting_in_to_unknown_retries_can_send_twice(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(retry_unknown_outcomes=True)
    fake.inject(Fault.drop_after_accept())

    await client.send("Kodunuz 1234", to="5399999999")

    assert fake.duplicates() == {("5399999999", "Kodunuz 1234"): 2}


@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limit(1),
        Fault.server_error(500),
        Fault.server_error(502),
        Fault.server_error(503),
        Fault.server_error(504),
        Fault.html_page(502),
        Fault.drop_before_accept(),
        Fault.drop_after_accept(),
    ],
)
async def test_report_faults_are_retried(
    client: AsyncVairoClient, fake: FakeVairo, fault: Fault
) -> None:
    submission = await client.send("a", to="5399999999")
    fake.inject(fault, endpoint="report", times=2)

    report = await client.get_report(submission.package_id)

    assert report.package_id == submission.package_id
    assert fake.request_count("report") == 3
    assert fake.request_count("report", "ok") == 1


async def test_report_read_timeout_is_retried(make_client: MakeClient, fake: FakeVairo) -> None:
    client = make_client(timeout=httpx.Timeout(5, read=0.05))
    submission = await client.send("a", to="5399999999")
    fake.inject(Fault.latency(30), endpoint="report")

    report = await client.get_report(submission.package_id)

    assert report.package_id == submission.package_id
    assert fake.request_count("report") == 2


async def test_unknown_package_is_raised_not_retried(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    with pytest.raises(APIError) as caught:
        await client.get_report(999)

    assert caught.value.status_code == 404
    assert fake.request_count("report", "not_found") == 1
    assert fake.request_count() == 1


async def test_wrong_key_is_an_authentication_error(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(api_key="wrong")

    with pytest.raises(AuthenticationError):
        await client.send("a", to="5399999999")
    with pytest.raises(AuthenticationError):
        await client.get_report(1)

    assert fake.request_count(outcome=Outcome.UNAUTHORIZED) == 2
    assert fake.messages == ()


async def test_no_sms_is_accepted_twice_under_random_faults(
    make_client: MakeClient, fake: FakeVairo
) -> None:
    client = make_client(max_retries=8)
    rates = {
        Fault.rate_limit(1): 0.05,
        Fault.server_error(500): 0.04,
        Fault.server_error(502): 0.04,
        Fault.server_error(503): 0.05,
        Fault.server_error(504, accepted=True): 0.04,
        Fault.html_page(502): 0.03,
        Fault.drop_before_accept(): 0.04,
        Fault.drop_after_accept(): 0.04,
    }
    fake.set_random_faults(RandomFaults(rates, seed=20240601, endpoint="both"))
    sent: dict[str, int] = {}
    unknown: list[str] = []
    failed: list[str] = []

    for index in range(150):
        text = f"Kodunuz {index:04d}"
        try:
            sent[text] = (await client.send(text, to="5399999999")).package_id
        except OutcomeUnknownError:
            unknown.append(text)
        except VairoError:
            failed.append(text)

    accepted = {m.text: m.package_id for m in fake.sent_to("5399999999")}
    assert_sent_once_at_most(fake)
    assert len(sent) + len(unknown) + len(failed) == 150
    assert all(accepted[text] == package_id for text, package_id in sent.items())
    assert not set(failed) & set(accepted)
    assert unknown
    assert any(text in accepted for text in unknown)
    assert any(text not in accepted for text in unknown)
    for package_id in sent.values():
        assert (await client.get_report(package_id)).package_id == package_id


async def test_bulk_accounting_matches_the_emulators_records_under_faults(
    client: AsyncVairoClient, fake: FakeVairo
) -> None:
    rates = {
        Fault.server_error(503): 0.1,
        Fault.rate_limit(1): 0.05,
        Fault.server_error(500): 0.05,
        Fault.server_error(504, accepted=True): 0.05,
        Fault.drop_before_accept(): 0.05,
        Fault.drop_after_accept(): 0.05,
    }
    fake.set_random_faults(RandomFaults(rates, seed=5, endpoint="send"))
    rows = [Message(to=f"5{index:09d}", text=f"Kampanya {index}") for index in range(400)]
    rows.append(Message(to="12345", text="bad number"))

    result = await client.send_bulk(rows, batch_size=10, concurrency=4)

    accepted = {(m.dest, m.text): m.package_id for m in fake.messages}
    assert fake.duplicates() == {}
    assert result.sent + result.failed + result.unknown + result.rejected == result.total == 401
    assert result.rejected == 1
    assert result.unknown > 0
    unknown_accepted = 0
    for outcome in result.outcomes:
        keys = [(m.to, m.text) for m in outcome.messages]
        if outcome.state is BatchState.SENT:
            assert all(accepted[key] == outcome.package_id for key in keys)
        elif outcome.state is BatchState.FAILED:
            assert not any(key in accepted for key in keys)
        else:
            present = [key in accepted for key in keys]
            assert all(present) or not any(present)
            unknown_accepted += len(keys) if all(present) else 0
    assert len(accepted) == result.sent + unknown_accepted
    assert set(result.package_ids) <= set(fake.packages)
