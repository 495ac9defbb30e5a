"""Client configuration, ownership, closing, and the input rules."""

from __future__ import annotations

import asyncio
import json
import ssl

import httpx
import pytest

from tests.support import API_KEY, Raise, Recorder, Reply, accept_package, load_sample
from vairo_async import (
    AsyncVairoClient,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    Message,
    OutcomeUnknownError,
    PackageStatus,
    Submission,
    UnexpectedResponseError,
    VairoError,
    WrongEventLoopError,
)
from vairo_async._transport import AiohttpTransport
from vairo_async.testing import FakeVairo, Fault, SentMessage


@pytest.fixture
def fake() -> FakeVairo:
    return FakeVairo(api_key=API_KEY, first_package_id=52)


@pytest.fixture
def recorder(fake: FakeVairo) -> Recorder:
    return Recorder(fake)


@pytest.fixture
def client(recorder: Recorder) -> AsyncVairoClient:
    return AsyncVairoClient(API_KEY, sender="ACME", transport=recorder)


async def test_send_one_number(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    async with client:
        sub = await client.send("Kodunuz 1234", to="0539 999 99 99")
    assert sub == Submission(package_id=52, recipient_count=1, estimated_credits=1)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.path == "/Panel/api/v1/SmsGonder"
    assert request.url.params["api_key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert recorder.bodies == [
        {"baslik": "ACME", "mesajlar": [{"msg": "Kodunuz 1234", "dest": "5399999999"}]}
    ]
    assert fake.messages == (SentMessage(52, "5399999999", "Kodunuz 1234", "ACME", None),)


async def test_send_many_numbers_and_messages(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    async with client:
        sub = await client.send("Merhaba", to=("+90 539 999 99 99", "05554444444"))
        assert sub.recipient_count == 2
        await client.send_messages(
            [Message(to="5399999999", text="Merhaba Ali"), Message(to="5554444444", text="Selam")],
            sender="OTHER",
        )
    first, second = recorder.bodies
    assert [m["dest"] for m in first["mesajlar"]] == ["5399999999", "5554444444"]
    assert second["baslik"] == "OTHER"
    assert second["mesajlar"] == [
        {"msg": "Merhaba Ali", "dest": "5399999999"},
        {"msg": "Selam", "dest": "5554444444"},
    ]
    assert [(m.package_id, m.dest, m.sender) for m in fake.messages] == [
        (52, "5399999999", "ACME"),
        (52, "5554444444", "ACME"),
        (53, "5399999999", "OTHER"),
        (53, "5554444444", "OTHER"),
    ]


@pytest.mark.parametrize(
    ("texts", "tr_char", "credits"),
    [
        (["a" * 160], None, 1),
        (["a" * 161], None, 2),
        (["ş" * 77], None, 1),  # ş is two septets in the Turkish shift table: 154 of 155
        (["ş" * 78], None, 2),
        (["a" * 155, "ş"], None, 2),  # the package announces the shift: 155 fits one segment
        (["a" * 156, "ş"], None, 3),  # ...and 156 does not
        (["😀" * 35], None, 1),
        (["😀" * 36], None, 2),
        (["a" * 156], False, 1),
        (["a" * 156], True, 2),
    ],
)
async def test_submission_estimates_credits(
    client: AsyncVairoClient, texts: list[str], tr_char: bool | None, credits: int
) -> None:
    async with client:
        sub = await client.send_messages(
            [Message(to="5399999999", text=t) for t in texts], tr_char=tr_char
        )
    assert sub.estimated_credits == credits


@pytest.mark.parametrize(
    ("texts", "tr_char", "expected"),
    [
        (["Merhaba"], None, None),
        (["Öğrenci şifresi"], None, True),
        (["Çok güzel"], None, None),  # Ç and ü are in the GSM-7 default alphabet
        (["plain", "ılık"], None, True),
        (["Öğrenci şifresi"], False, None),
        (["plain"], True, True),
    ],
)
async def test_tr_char_is_automatic(
    client: AsyncVairoClient,
    recorder: Recorder,
    fake: FakeVairo,
    texts: list[str],
    tr_char: bool | None,
    expected: bool | None,
) -> None:
    async with client:
        await client.send_messages(
            [Message(to="5399999999", text=t) for t in texts], tr_char=tr_char
        )
    assert recorder.bodies[0].get("tr_char") is expected
    assert fake.packages[52].tr_char is expected


async def test_get_report(client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo) -> None:
    assert await accept_package(fake) == 52
    fake.complete_now(52)
    async with client:
        report = await client.get_report(52)
    assert report.package_id == 52
    assert report.status is PackageStatus.COMPLETED
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.path == "/Panel/api/v1/GonderimBilgisi/52"
    assert request.url.params["api_key"] == API_KEY
    assert fake.packages[52].polls == 1


async def test_a_report_of_another_package_is_an_unexpected_answer(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    assert await accept_package(fake) == 52
    sample = load_sample("report_completed.json")
    sample["aciklama"]["id"] = 1052
    recorder.script(Reply(200, json=sample))
    async with client:
        with pytest.raises(UnexpectedResponseError) as info:
            await client.get_report(52)
        assert "1052" in str(info.value)
        assert "52" in info.value.body
        assert (await client.get_report(52)).package_id == 52
    assert len(recorder.requests) == 2


async def test_answers_after_a_utf8_bom_are_read(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    bom = b"\xef\xbb\xbf"
    recorder.script(Reply(200, content=bom + b'{"durum":true,"aciklama":"52"}', after=True))
    async with client:
        sub = await client.send("Merhaba", to="5399999999")
        assert sub.package_id == 52
        report = load_sample("report_completed.json")
        report["aciklama"]["id"] = 52
        recorder.script(Reply(200, content=bom + json.dumps(report).encode()))
        assert (await client.get_report(52)).package_id == 52
    assert [p.package_id for p in fake.packages.values()] == [52]


@pytest.mark.parametrize("bad", [0, -1, "52", 5.0, None, True])
async def test_get_report_rejects_bad_ids(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo, bad: object
) -> None:
    with pytest.raises(InvalidRequestError, match="package_id") as caught:
        await client.get_report(bad)  # type: ignore[arg-type]
    assert caught.value.problems == (f"package_id={bad!r}: must be a positive integer",)
    assert recorder.requests == []
    assert fake.requests == ()


# --- input rules: every bad value named, nothing sent --------------------------------


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda c: c.send("hi", to="123"), ["'123'", "not a Turkish mobile number"]),
        (lambda c: c.send("", to="5399999999"), ["empty text"]),
        (lambda c: c.send("   ", to="5399999999"), ["empty text"]),
        (lambda c: c.send("yarım \ud83d", to="5399999999"), ["lone surrogate"]),
        (lambda c: c.send("hi", to=[]), ["no recipients"]),
        (lambda c: c.send_messages([]), ["no recipients"]),
        (lambda c: c.send("hi", to="5399999999", sender=""), ["sender", "empty sender"]),
        (lambda c: c.send("hi", to="5399999999", sender="   "), ["empty sender"]),
        (lambda c: c.send("hi", to="5399999999", sender="A" * 12), ["longer than 11"]),
        (lambda c: c.send("hi", to="5399999999", sender="1" * 17), ["longer than 16"]),
        (lambda c: c.send("hi", to="5399999999", tr_char="yes"), ["tr_char"]),
        (lambda c: c.send("hi", to=None), ["to=None", "must be a number as a string"]),
        (lambda c: c.send("hi", to=5399999999), ["to=5399999999", "as a string"]),
        (lambda c: c.send("hi", to=12), ["to=12", "as a string"]),
        (lambda c: c.send("hi", to=object()), ["to=<object object", "as a string"]),
        (lambda c: c.send("hi", to=[5399999999]), ["to=5399999999", "must be a string"]),
        (
            lambda c: c.send_messages([Message(to=5399999999, text="hi")]),  # type: ignore[arg-type]
            ["to=5399999999", "a phone number must be a string, not int"],
        ),
        (
            lambda c: c.send("hi", to="5399999999", sender="\u0661" * 13),  # Arabic-Indic digits
            ["longer than 11"],
        ),
        (
            lambda c: c.send_bulk([Message(to="5399999999", text="hi")], rate=float("inf")),
            ["rate=inf", "must be a number > 0"],
        ),
        (
            lambda c: c.send_bulk([Message(to="5399999999", text="hi")], rate=10**400),
            ["rate=1000", "must be a number > 0"],
        ),
        (
            lambda c: c.send_bulk([Message(to="5399999999", text="hi")], rate=1e-310),
            ["rate=1e-310", "too small"],
        ),
        (lambda c: c.send_messages(["5399999999"]), ["expected a Message"]),
        (
            lambda c: c.send_messages([Message(to="5399999999", text=None)]),  # type: ignore[arg-type]
            ["text must be a string"],
        ),
        (
            lambda c: c.send("", to=["5399999999", "12", "+90 539"], sender=""),
            ["4 invalid inputs", "'12'", "'+90 539'", "empty text", "empty sender"],
        ),
        (
            lambda c: c.send_messages(
                [Message(to="5399999999", text="ok"), Message(to="0212 555 12 34", text="")]
            ),
            ["messages[1]", "'0212 555 12 34'", "empty text"],
        ),
    ],
)
async def test_bad_input_raises_and_sends_nothing(
    client: AsyncVairoClient,
    recorder: Recorder,
    fake: FakeVairo,
    call: object,
    fragments: list[str],
) -> None:
    async with client:
        with pytest.raises(InvalidRequestError) as info:
            await call(client)  # type: ignore[operator]
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert recorder.requests == []
    assert fake.requests == ()


async def test_missing_sender_is_an_input_error(recorder: Recorder, fake: FakeVairo) -> None:
    async with AsyncVairoClient(API_KEY, transport=recorder) as client:
        with pytest.raises(InvalidRequestError, match="no sender"):
            await client.send("hi", to="5399999999")
    assert recorder.requests == []
    assert fake.requests == ()


# --- configuration -------------------------------------------------------------------


def test_missing_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="VAIRO_API_KEY"):
        AsyncVairoClient()
    with pytest.raises(ConfigurationError):
        AsyncVairoClient("  ")


async def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVairo(api_key=API_KEY, prefix="/api/")
    recorder = Recorder(fake)
    monkeypatch.setenv("VAIRO_API_KEY", API_KEY)
    monkeypatch.setenv("VAIRO_SENDER", "ENVSENDER")
    monkeypatch.setenv("VAIRO_BASE_URL", "http://127.0.0.1:9/api")
    async with AsyncVairoClient(transport=recorder) as client:
        assert client.base_url == "http://127.0.0.1:9/api/"
        await client.send("hi", to="5399999999")
    (request,) = recorder.requests
    assert str(request.url).startswith("http://127.0.0.1:9/api/SmsGonder?")
    assert request.url.params["api_key"] == API_KEY
    assert json.loads(request.content)["baslik"] == "ENVSENDER"
    assert [p.sender for p in fake.packages.values()] == ["ENVSENDER"]


def test_default_base_url() -> None:
    assert AsyncVairoClient(API_KEY).base_url == "https://vairosms.com/Panel/api/v1/"


@pytest.mark.parametrize(
    "url",
    [
        "http://vairosms.com/Panel/api/v1/",
        "http://10.0.0.5/",
        "ftp://vairosms.com/",
        "vairosms",
        "https://vairosms.com:port/",
    ],
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        AsyncVairoClient(API_KEY, base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/Panel/api/v1/", "http://localhost:1/", "http://[::1]:8/"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert AsyncVairoClient(API_KEY, base_url=url).base_url.startswith("http://")


def test_bad_default_sender_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="sender"):
        AsyncVairoClient(API_KEY, sender="")


def test_http_client_and_transport_are_exclusive() -> None:
    with pytest.raises(ConfigurationError):
        AsyncVairoClient(
            API_KEY,
            http_client=httpx.AsyncClient(),
            transport=Recorder(FakeVairo()),
        )


async def test_caller_owned_http_client_stays_open(recorder: Recorder, fake: FakeVairo) -> None:
    async with httpx.AsyncClient(transport=recorder) as http:
        async with AsyncVairoClient(API_KEY, sender="ACME", http_client=http) as client:
            await client.send("hi", to="5399999999")
        assert not http.is_closed
        url = f"{client.base_url}GonderimBilgisi/52"
        assert (await http.get(url, params={"api_key": API_KEY})).status_code == 200
    assert fake.request_count(endpoint="report", outcome="ok") == 1


async def test_own_http_client_is_closed(client: AsyncVairoClient) -> None:
    async with client:
        pass
    assert client._http.is_closed


async def test_use_after_close_is_a_clear_error(
    client: AsyncVairoClient, recorder: Recorder, fake: FakeVairo
) -> None:
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await client.send("hi", to="5399999999")
    with pytest.raises(ClientClosedError):
        await client.get_report(1)
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert recorder.requests == []
    assert fake.requests == ()


async def test_a_client_used_from_a_second_event_loop_fails_before_any_request(
    fake: FakeVairo,
) -> None:
    # A client built at module level and used by two event loops in turn: its connections
    # belong to the first. The second loop's send must fail before it reaches the server.
    async with fake.serve() as url:

        def two_loops() -> tuple[int, WrongEventLoopError, WrongEventLoopError]:
            client = AsyncVairoClient(fake.api_key, sender="ACME", base_url=url)
            first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
            try:
                sub = first.run_until_complete(client.send("bir", to="5399999999"))
                with pytest.raises(WrongEventLoopError) as send:
                    second.run_until_complete(client.send("iki", to="5399999999"))
                with pytest.raises(WrongEventLoopError) as report:
                    second.run_until_complete(client.get_report(sub.package_id))
                first.run_until_complete(client.aclose())
            finally:
                first.close()
                second.close()
            return sub.package_id, send.value, report.value

        package_id, send_error, report_error = await asyncio.to_thread(two_loops)
    assert isinstance(send_error, RuntimeError)
    assert "event loop" in str(send_error)
    assert [(m.package_id, m.text) for m in fake.messages] == [(package_id, "bir")]
    assert fake.request_count(endpoint="send") == 1
    assert fake.request_count(endpoint="report") == 0
    assert str(report_error) == str(send_error)


@pytest.mark.parametrize("error", [RuntimeError, KeyError, OSError])
@pytest.mark.parametrize("after", [False, True])
async def test_an_unexpected_exception_in_a_send_is_an_unknown_outcome(
    error: type[Exception],
    after: bool,
    client: AsyncVairoClient,
    recorder: Recorder,
    fake: FakeVairo,
) -> None:
    # Something no httpx transport should raise (a bug, a foreign transport), before or after
    # the server accepted: the SDK cannot know whether the SMS went out.
    recorder.script(Raise(error, after=after), Fault.rate_limit(retry_after=0), Raise(error))
    async with client:
        with pytest.raises(OutcomeUnknownError) as first:
            await client.send("bir", to="5399999999")
        with pytest.raises(OutcomeUnknownError) as second:  # on a retry, after a 429
            await client.send_messages([Message(to="5399999999", text="iki")])
    for info in (first, second):
        assert isinstance(info.value.error, VairoError)
        assert isinstance(info.value.error.__cause__, error)
        assert info.value.__cause__ is info.value.error
        assert f"unexpected {error.__name__}" in str(info.value)
    assert len(recorder.requests) == 3  # neither was resent
    assert [m.text for m in fake.messages] == (["bir"] if after else [])


def test_default_timeouts_are_set() -> None:
    client = AsyncVairoClient(API_KEY)
    timeout = client._http.timeout
    assert timeout.connect == 10.0
    assert timeout.read == 30.0


async def test_tls_verification_stays_on() -> None:
    async with AsyncVairoClient(API_KEY) as client:
        session = client._http._transport._open()  # type: ignore[attr-defined]
        context = session.connector._ssl
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname


async def test_the_default_stack_is_aiohttp() -> None:
    async with AsyncVairoClient(API_KEY) as client:
        assert isinstance(client._http._transport, AiohttpTransport)
