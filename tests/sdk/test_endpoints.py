"""Endpoint descriptions, and the one request function that serves them all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import vairo_async
from tests.support import API_KEY
from vairo_async import AsyncVairoClient, Message, ServerError, TransportError
from vairo_async._endpoints import ENDPOINTS, REPORT, SEND
from vairo_async._models import PackageId, PackageReport
from vairo_async._wire import encode_send
from vairo_async.testing import FakeVairo, Fault


def test_the_two_endpoints_as_the_api_document_names_them() -> None:
    assert [(e.name, e.method, e.path, e.sends_sms, e.answer) for e in ENDPOINTS] == [
        ("SmsGonder", "POST", "SmsGonder", True, PackageId),
        ("GonderimBilgisi", "GET", "GonderimBilgisi/{package_id}", False, PackageReport),
    ]
    assert SEND.placeholders == ()
    assert REPORT.placeholders == ("package_id",)


def test_paths_are_filled_and_matched() -> None:
    assert REPORT.path_for(package_id=52) == "GonderimBilgisi/52"
    assert SEND.path_for() == "SmsGonder"
    assert REPORT.match("GonderimBilgisi/52") == {"package_id": "52"}
    assert REPORT.match("GonderimBilgisi/52/") == {"package_id": "52"}
    assert SEND.match("SmsGonder/") == {}
    for path in ("GonderimBilgisi", "GonderimBilgisi/", "GonderimBilgisi/1/2", "SmsGonder"):
        assert REPORT.match(path) is None, path
    assert SEND.match("SmsGonderX") is None


@pytest.mark.parametrize(
    "arguments", [{}, {"package_id": ""}, {"package_id": "1/2"}, {"package_id": 1, "x": 2}]
)
def test_bad_path_arguments_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="GonderimBilgisi"):
        REPORT.path_for(**arguments)


async def test_one_request_is_built_and_sent_on_every_attempt() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(503, json={"durum": False, "aciklama": "meşgul"})
        return httpx.Response(200, json={"durum": True, "aciklama": 9})

    async with AsyncVairoClient(
        API_KEY, sender="ACME", transport=httpx.MockTransport(answer)
    ) as client:
        submission = await client.send("hi", to="5399999999")
    assert submission.package_id == 9
    assert len(seen) == 3
    assert all(request is seen[0] for request in seen)


async def test_before_attempt_hears_each_attempts_number(fake: FakeVairo) -> None:
    fake.inject(Fault.server_error(503), times=5)
    numbers: list[int] = []

    async def before_attempt(number: int) -> None:
        numbers.append(number)

    async with AsyncVairoClient(
        fake.api_key, sender="ACME", transport=fake.transport(), base_url=fake.base_url
    ) as client:
        body = encode_send("ACME", [Message(to="5399999999", text="hi")], False)
        with pytest.raises(ServerError):
            await client._submit(body, 1, before_attempt)
    assert numbers == [1, 2, 3, 4]
    assert fake.request_count("send") == 4


async def test_the_sdks_frames_hold_no_key_in_a_local_repr() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with AsyncVairoClient(
        API_KEY, sender="ACME", transport=httpx.MockTransport(refuse), max_retries=0
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.send("hi", to="5399999999")
    frames = []
    error: BaseException | None = info.value
    while error is not None:
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith(str(Path(vairo_async.__file__).parent)):
                frames.append(tb.tb_frame)
            tb = tb.tb_next
        error = error.__cause__
    names = {frame.f_code.co_name for frame in frames}
    assert {"_request", "_attempt", "run"} <= names
    for frame in frames:
        for name, value in frame.f_locals.items():
            assert API_KEY not in repr(value), (frame.f_code.co_name, name)
