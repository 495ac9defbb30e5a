"""The control endpoints under `{prefix}_emulator/`, seen by a raw httpx client, and their JSON."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from vairo_async.testing import FakeVairo, Fault, FaultKind, Outcome, Package, RandomFaults
from vairo_async.testing._codec import Records, converter, decode, encode, records_of
from vairo_async.testing._control import ENDPOINTS, control_name

KEY = {"api_key": "test-api-key"}
BEARER = {"authorization": "Bearer test-api-key"}
BODY = {"baslik": "ACME", "mesajlar": [{"msg": "Kodunuz 1234", "dest": "5399999999"}]}


async def control(
    http: httpx.AsyncClient, name: str, body: Any = None, **params: str
) -> httpx.Response:
    url = f"_emulator/{name}"
    if ENDPOINTS[name].method == "GET":
        return await http.get(url, params=params, headers=BEARER)
    return await http.post(url, json=body, headers=BEARER)


async def test_records_of_an_accepted_send(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    await http.post("SmsGonder", params=KEY, json=BODY)

    messages = await control(http, "messages")
    count = await control(http, "request_count", endpoint="send", outcome="accepted")
    records = await control(http, "records")

    assert messages.json() == [
        {
            "package_id": 1,
            "dest": "5399999999",
            "text": "Kodunuz 1234",
            "sender": "ACME",
            "tr_char": None,
        }
    ]
    assert count.json() == 1
    assert decode(records.content, Records) == records_of(fake)
    assert fake.request_count() == 1  # control requests are not among the records


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic test-api-key"}],
)
async def test_a_missing_or_wrong_key_is_refused(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await http.get("_emulator/messages", headers=headers)
    by_query = await http.get("_emulator/messages", params=KEY)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer.json()["error"]
    assert by_query.status_code == 401


async def test_unknown_endpoint_and_wrong_method(http: httpx.AsyncClient) -> None:
    unknown = await http.get("_emulator/mesages", headers=BEARER)
    directory = await http.get("_emulator", headers=BEARER)
    wrong_method = await http.get("_emulator/reset", headers=BEARER)

    assert unknown.status_code == 404
    assert "'mesages'" in unknown.json()["error"]
    assert "messages" in unknown.json()["error"]
    assert directory.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("name", "body", "params", "named"),
    [
        ("inject", {"fault": {"kind": "server_error", "status": 200}}, {}, "200"),
        ("inject", {"fault": {"kind": "boom"}}, {}, "'boom'"),
        ("inject", {"fault": {"kind": "latency", "seconds": -1}}, {}, "-1"),
        ("inject", {"fault": {"kind": "latency", "colour": 1}}, {}, "'colour'"),
        ("inject", {"fault": {"kind": "latency"}, "times": "2"}, {}, "'2' @ $.times"),
        ("inject", {"fault": {"kind": "latency"}, "times": 0}, {}, "not 0"),
        ("inject", {"fault": {"kind": "latency"}, "endpoint": "sms"}, {}, "'sms'"),
        ("inject", {"fault": {"kind": "latency"}, "extra": 1}, {}, "extra"),
        ("inject", [1, 2], {}, "[1, 2]"),
        ("inject", {"fault": {"kind": "rate_limit", "retry_after": True}}, {}, "True"),
        ("complete_now", {"package_id": "1"}, {}, "'1'"),
        (
            "set_random_faults",
            {"rates": [{"fault": {"kind": "drop_after_accept"}, "rate": 1.5}]},
            {},
            "1.5",
        ),
        ("set_random_faults", {"rates": [], "seed": 1.5}, {}, "1.5"),
        ("set_random_faults", {"rates": [], "speed": 1}, {}, "'speed'"),
        ("request_count", None, {"endpoint": "sms"}, "'sms'"),
        ("request_count", None, {"outcome": "fine"}, "'fine'"),
        ("peak_concurrency", None, {"endpoint": "other"}, "'other'"),
        ("messages", None, {"dest": "5399999999"}, "'dest'"),
        ("sent_to", None, {}, "dest"),
    ],
)
async def test_bad_input_is_a_400_naming_the_value(
    http: httpx.AsyncClient,
    fake: FakeVairo,
    name: str,
    body: Any,
    params: dict[str, str],
    named: str,
) -> None:
    answer = await control(http, name, body, **params)

    assert answer.status_code == 400
    assert named in answer.json()["error"]
    assert fake.pending_faults == 0
    assert fake.random_faults is None


async def test_a_body_that_is_not_json_is_a_400(http: httpx.AsyncClient) -> None:
    answer = await http.post("_emulator/inject", content=b"{nope", headers=BEARER)

    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]


async def test_complete_now_of_an_unknown_package_is_a_404(http: httpx.AsyncClient) -> None:
    answer = await control(http, "complete_now", {"package_id": 7})

    assert answer.status_code == 404
    assert answer.json() == {"error": "no package 7"}


async def test_faults_and_latency_never_hit_control_requests(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    fake.inject(Fault.drop_before_accept(), endpoint="both")
    fake.latency = 30.0

    pending = await control(http, "pending_faults")

    assert pending.status_code == 200
    assert pending.json() == 1


async def test_inject_from_json_uses_the_class_method_defaults(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    for fault in ({"kind": "rate_limit"}, {"kind": "server_error", "status": 503}):
        answer = await control(http, "inject", {"fault": fault, "endpoint": "both", "times": 2})
        assert answer.status_code == 204

    sent = await http.post("SmsGonder", params=KEY, json=BODY)

    assert sent.status_code == 429
    assert sent.headers["retry-after"] == "1"
    assert fake.pending_faults == 3


async def test_random_faults_set_read_and_cleared(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    body = {"rates": [{"fault": {"kind": "html_page"}, "rate": 1}], "seed": 4, "endpoint": "send"}

    assert (await control(http, "set_random_faults", body)).status_code == 204
    read = await control(http, "random_faults")
    page = await http.post("SmsGonder", params=KEY, json=BODY)
    assert (await control(http, "set_random_faults", None)).status_code == 204

    assert read.json() == {**body, "rates": [{"fault": {"kind": "html_page"}, "rate": 1.0}]}
    assert fake.random_faults is None
    assert page.status_code == 502
    assert page.headers["content-type"] == "text/html"


async def test_complete_now_and_reset(http: httpx.AsyncClient, fake: FakeVairo) -> None:
    await http.post("SmsGonder", params=KEY, json=BODY)
    await http.post("SmsGonder", params=KEY, json=BODY)

    assert (await control(http, "complete_now", {"package_id": 2})).status_code == 204
    statuses = [package.status for package in fake.packages.values()]
    duplicates = await control(http, "duplicates")
    assert (await control(http, "reset")).status_code == 204

    assert statuses == [0, 1]
    assert duplicates.json() == [{"dest": "5399999999", "text": "Kodunuz 1234", "count": 2}]
    assert fake.messages == ()
    assert fake.requests == ()


def test_reset_forgets_random_faults_too(fake: FakeVairo) -> None:
    fake.set_random_faults(RandomFaults({Fault.server_error(500): 0.5}, seed=1))

    fake.reset()

    assert fake.random_faults is None


def test_only_the_reserved_directory_is_control() -> None:
    prefix = "/Panel/api/v1/"

    assert control_name("/Panel/api/v1/_emulator/messages", prefix) == "messages"
    assert control_name("/Panel/api/v1/_emulator/reset/", prefix) == "reset"
    assert control_name("/Panel/api/v1/_emulator", prefix) == ""
    assert control_name("/Panel/api/v1/_emulatorx", prefix) is None
    assert control_name("/_emulator/messages", prefix) is None
    assert control_name("/Panel/api/v1/SmsGonder", prefix) is None


FAULTS = [
    Fault.latency(0.25),
    Fault.rate_limit(),
    Fault.rate_limit(None),
    Fault.rate_limit("Wed, 21 Oct 2015 07:28:00 GMT"),
    Fault.server_error(503, retry_after=2),
    Fault.server_error(500, accepted=True),
    Fault.html_page(),
    Fault.html_page(404, accepted=True),
    Fault.drop_before_accept(),
    Fault.drop_after_accept(),
    Fault(FaultKind.LATENCY, seconds=1.0, accepted=False),
]


@pytest.mark.parametrize("fault", FAULTS, ids=repr)
def test_every_fault_round_trips(fault: Fault) -> None:
    assert decode(encode(fault), Fault) == fault


def test_random_faults_round_trip() -> None:
    faults = RandomFaults(
        {Fault.server_error(503): 0.1, Fault.drop_after_accept(): 0.05}, seed=9, endpoint="report"
    )

    assert decode(encode(faults), RandomFaults) == faults


def test_a_fault_in_json_names_only_what_differs_from_its_defaults() -> None:
    assert converter.unstructure(Fault.server_error(503)) == {
        "kind": "server_error",
        "status": 503,
    }
    assert converter.unstructure(Fault.drop_after_accept()) == {"kind": "drop_after_accept"}


async def test_packages_round_trip_with_their_times(
    http: httpx.AsyncClient, fake: FakeVairo
) -> None:
    await http.post("SmsGonder", params=KEY, json=BODY)
    await http.get("GonderimBilgisi/1", params=KEY)

    answer = await control(http, "packages")

    assert decode(answer.content, tuple[Package, ...]) == (fake.packages[1],)
    assert fake.packages[1].polls == 1
    assert fake.request_count("report", Outcome.OK) == 1
