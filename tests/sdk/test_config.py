"""The client's configuration and the campaign and wait settings: every bad value is named,
all of them in one error, the environment fills in what is not given, the key is never shown."""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator

import httpx
import pytest

from tests.support import API_KEY
from vairo_async import AsyncVairoClient, ConfigurationError, InvalidRequestError, Message
from vairo_async._config import BulkSettings, ClientSettings, WaitSettings
from vairo_async.testing import FakeVairo

NAN, INF = math.nan, math.inf


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"durum": True, "aciklama": 1})


MOCK = httpx.MockTransport(ok)


def assert_key_not_shown(error: BaseException, key: str = API_KEY) -> None:
    for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
        assert key not in text
        assert key[-12:] not in text


# Each bad value alone, and what its one problem line must say (the value, named).
BAD_VALUES: list[tuple[dict[str, object], list[str]]] = [
    ({"api_key": None}, ["no API key", "VAIRO_API_KEY"]),
    ({"api_key": ""}, ["no API key", "VAIRO_API_KEY"]),
    ({"api_key": "   "}, ["api_key is blank (3 whitespace characters)"]),
    ({"api_key": 1234567890}, ["api_key must be a string, not int"]),
    ({"api_key": API_KEY.encode()}, ["api_key must be a string, not bytes"]),
    ({"sender": ""}, ["sender=''", "empty sender"]),
    ({"sender": "TWELVE-CHARS"}, ["sender='TWELVE-CHARS'", "longer than 11"]),
    ({"sender": 7}, ["sender=7", "must be a string"]),
    ({"base_url": "http://10.0.0.5/"}, ["refusing plain http to 'http://10.0.0.5/'"]),
    ({"base_url": "ftp://vairosms.com/"}, ["base_url must be an http(s) URL", "'ftp://"]),
    ({"base_url": "https://vairosms.com:port/"}, ["base_url is not a valid URL"]),
    ({"base_url": "https://h/?debug=1"}, ["base_url must not carry a query string"]),
    ({"timeout": -1}, ["timeout=-1: must be a number > 0, an httpx.Timeout, or None"]),
    ({"timeout": 0}, ["timeout=0:"]),
    ({"timeout": NAN}, ["timeout=nan:"]),
    ({"timeout": INF}, ["timeout=inf:"]),
    ({"timeout": "30"}, ["timeout='30':"]),
    ({"timeout": True}, ["timeout=True:"]),
    ({"timeout": httpx.Timeout(5.0, connect=-1)}, ["timeout=Timeout(", "its connect must be"]),
    ({"timeout": httpx.Timeout(5.0, read=NAN)}, ["its read must be a number > 0, or None"]),
    ({"max_retries": -1}, ["max_retries=-1: must be an integer >= 0"]),
    ({"max_retries": 1.5}, ["max_retries=1.5: must be an integer >= 0"]),
    ({"max_retries": True}, ["max_retries=True:"]),
    ({"max_retries": "3"}, ["max_retries='3':"]),
    ({"max_retries": None}, ["max_retries=None:"]),
    ({"retry_backoff": -1}, ["retry_backoff=-1: must be a number >= 0"]),
    ({"retry_backoff": NAN}, ["retry_backoff=nan:"]),
    ({"retry_backoff": INF}, ["retry_backoff=inf:"]),
    ({"retry_backoff": "0.5"}, ["retry_backoff='0.5':"]),
    ({"retry_backoff": True}, ["retry_backoff=True:"]),
    ({"retry_backoff_max": -1}, ["retry_backoff_max=-1: must be a number >= retry_backoff (0.5)"]),
    ({"retry_backoff_max": 0.25}, ["retry_backoff_max=0.25: must be a number >= retry_backoff"]),
    ({"retry_backoff": 10, "retry_backoff_max": 5}, ["retry_backoff_max=5:", "(10)"]),
    ({"retry_backoff_max": INF}, ["retry_backoff_max=inf:"]),
    ({"retry_after_max": -1}, ["retry_after_max=-1: must be a number >= 0"]),
    ({"retry_after_max": NAN}, ["retry_after_max=nan:"]),
    ({"retry_after_max": None}, ["retry_after_max=None:"]),
    ({"retry_unknown_outcomes": "yes"}, ["retry_unknown_outcomes='yes': must be True or False"]),
    ({"retry_unknown_outcomes": 1}, ["retry_unknown_outcomes=1:"]),
    ({"http_client": object()}, ["http_client must be an httpx.AsyncClient, not object"]),
    ({"transport": "aiohttp"}, ["transport must be an httpx.AsyncBaseTransport, not str"]),
    ({"transport": MOCK, "http_client": httpx.AsyncClient()}, ["pass http_client or transport"]),
    ({"max_connections": 0}, ["max_connections=0: must be a positive integer"]),
    ({"max_connections": -1}, ["max_connections=-1:"]),
    ({"max_connections": 1.5}, ["max_connections=1.5:"]),
    ({"max_connections": True}, ["max_connections=True:"]),
    ({"max_connections": None}, ["max_connections=None:"]),
]


@pytest.mark.parametrize(("options", "fragments"), BAD_VALUES, ids=lambda v: repr(v)[:60])
def test_each_bad_value_is_one_configuration_error_naming_it(
    options: dict[str, object], fragments: list[str]
) -> None:
    arguments: dict[str, object] = {"api_key": API_KEY, **options}
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient(**arguments)  # type: ignore[arg-type]
    error = info.value
    assert len(error.problems) == 1, error.problems
    for fragment in fragments:
        assert fragment in str(error)
    assert_key_not_shown(error)
    assert "1234567890" not in str(error)  # a key of the wrong type is not shown either


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_connections": 0}, "max_connections=0:"),
        ({"retry_backoff": -1}, "retry_backoff=-1:"),
        ({"timeout": -1}, "timeout=-1:"),
        ({"max_retries": 1.5}, "max_retries=1.5:"),
    ],
)
def test_values_once_accepted_are_refused(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient("k", **options)  # type: ignore[arg-type]
    assert info.value.problems == (str(info.value),)
    assert str(info.value).startswith(fragment)


def test_every_bad_value_is_listed_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient(
            "  \t",
            sender="",
            base_url="http://remote.example/",
            timeout=-1,
            max_retries=1.5,  # type: ignore[arg-type]
            retry_backoff=-1,
            retry_backoff_max=NAN,
            retry_after_max=-2,
            retry_unknown_outcomes="no",  # type: ignore[arg-type]
            http_client=httpx.AsyncClient(),
            transport=MOCK,
            max_connections=0,
        )
    problems = info.value.problems
    assert [line.split("=")[0].split(" ")[0] for line in problems] == [
        "api_key",
        "sender",
        "refusing",
        "timeout",
        "max_retries",
        "retry_backoff",
        "retry_backoff_max",
        "retry_after_max",
        "retry_unknown_outcomes",
        "pass",
        "max_connections",
    ]
    message = str(info.value)
    assert message.startswith("11 configuration problems: api_key is blank (3 whitespace")
    for line in problems:
        assert line in message


def test_good_values_at_their_limits_are_accepted() -> None:
    settings = ClientSettings(
        api_key=API_KEY,
        timeout=httpx.Timeout(None, connect=0.5),
        max_retries=0,
        retry_backoff=0,
        retry_backoff_max=0,
        retry_after_max=0,
        max_connections=1,
        retry_unknown_outcomes=True,
    )
    assert settings.max_connections == 1
    assert settings.http_timeout == httpx.Timeout(None, connect=0.5)


def test_the_timeout_defaults_and_converts() -> None:
    assert ClientSettings(api_key=API_KEY).http_timeout == httpx.Timeout(30.0, connect=10.0)
    assert ClientSettings(api_key=API_KEY, timeout=2.5).http_timeout == httpx.Timeout(2.5)


def test_the_settings_never_show_the_key() -> None:
    settings = ClientSettings(api_key=API_KEY, sender="ACME")
    assert API_KEY not in repr(settings)
    assert settings.base_url == "https://vairosms.com/Panel/api/v1/"


@pytest.mark.parametrize(
    "base_url",
    [
        f"http://remote.example/?api_key={API_KEY}",
        f"https://h/{API_KEY}?x=1",
        f"ftp://h/{API_KEY}",
        f"https://h:{API_KEY}/",
    ],
)
def test_a_key_inside_a_bad_base_url_is_not_quoted(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient(API_KEY, base_url=base_url, max_connections=0)
    assert len(info.value.problems) == 2
    assert_key_not_shown(info.value)


# --- the environment ------------------------------------------------------------------


async def test_key_sender_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, fake: FakeVairo
) -> None:
    async with fake.serve() as base_url:
        monkeypatch.setenv("VAIRO_API_KEY", fake.api_key)
        monkeypatch.setenv("VAIRO_SENDER", "ENVSENDER")
        monkeypatch.setenv("VAIRO_BASE_URL", base_url.rstrip("/"))
        async with AsyncVairoClient() as client:
            assert client.base_url == base_url.rstrip("/") + "/"
            submission = await client.send("hi", to="0539 999 99 99")
    package = fake.packages[submission.package_id]
    assert package.sender == "ENVSENDER"
    assert [m.dest for m in fake.messages] == ["5399999999"]


async def test_arguments_take_precedence_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, fake: FakeVairo
) -> None:
    monkeypatch.setenv("VAIRO_API_KEY", "not-the-key-0123456789")
    monkeypatch.setenv("VAIRO_SENDER", "ENVSENDER")
    monkeypatch.setenv("VAIRO_BASE_URL", "http://remote.example/")  # would be refused
    async with (
        fake.serve() as base_url,
        AsyncVairoClient(fake.api_key, sender="ARG", base_url=base_url) as client,
    ):
        submission = await client.send("hi", to="5399999999")
    assert fake.packages[submission.package_id].sender == "ARG"


def test_an_empty_base_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAIRO_BASE_URL", "http://127.0.0.1:9/api")
    assert AsyncVairoClient(API_KEY, base_url="").base_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("VAIRO_API_KEY", "   ", "api_key is blank"),
        ("VAIRO_API_KEY", "", "no API key"),
        ("VAIRO_SENDER", "", "sender=''"),
        ("VAIRO_BASE_URL", "http://remote.example/", "refusing plain http"),
    ],
)
def test_bad_environment_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv("VAIRO_API_KEY", API_KEY)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=fragment) as info:
        AsyncVairoClient()
    assert len(info.value.problems) == 1


def test_a_key_from_the_environment_is_not_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAIRO_API_KEY", API_KEY)
    monkeypatch.setenv("VAIRO_BASE_URL", f"http://remote.example/{API_KEY}/")
    with pytest.raises(ConfigurationError) as info:
        AsyncVairoClient(timeout=0)
    assert len(info.value.problems) == 2
    assert_key_not_shown(info.value)


# --- campaign and wait settings -------------------------------------------------------


def test_bulk_settings_list_every_bad_value() -> None:
    with pytest.raises(InvalidRequestError) as info:
        BulkSettings(batch_size=0, concurrency=1.5, rate=NAN)  # type: ignore[arg-type]
    assert info.value.problems == (
        "batch_size=0: must be a positive integer",
        "concurrency=1.5: must be a positive integer",
        "rate=nan: must be a number > 0, or None",
    )


@pytest.mark.parametrize("rate", [0, -1, INF, True, "5"])
def test_bulk_rate_must_be_a_positive_finite_number(rate: object) -> None:
    with pytest.raises(InvalidRequestError, match=f"rate={rate!r}"):
        BulkSettings(rate=rate)  # type: ignore[arg-type]


def test_wait_settings_list_every_bad_value() -> None:
    with pytest.raises(InvalidRequestError) as info:
        WaitSettings(timeout=-1, poll_interval=0, expiry_grace=INF)
    assert info.value.problems == (
        "timeout=-1: must be a number >= 0, or None",
        "poll_interval=0: must be a number > 0",
        "expiry_grace=inf: must be a number >= 0, or None",
    )
    with pytest.raises(InvalidRequestError, match=r"max_poll_interval=1: .* poll_interval \(2\)"):
        WaitSettings(poll_interval=2, max_poll_interval=1)


def test_good_bulk_and_wait_settings_keep_their_values() -> None:
    assert BulkSettings() == BulkSettings(batch_size=1000, concurrency=4, rate=None)
    assert WaitSettings(timeout=0, poll_interval=0.5, max_poll_interval=0.5).timeout == 0


async def test_a_campaigns_sender_limits_and_pool_are_checked_together() -> None:
    def rows() -> Iterator[Message]:
        raise AssertionError("input must not be read")
        yield  # pragma: no cover

    async with AsyncVairoClient(API_KEY, max_connections=8) as client:
        with pytest.raises(InvalidRequestError) as info:
            client.iter_bulk(rows(), batch_size=0, concurrency=9, rate=-1)
    assert [line.split(":")[0] for line in info.value.problems] == [
        "sender",
        "batch_size=0",
        "rate=-1",
        "concurrency=9 exceeds the client's max_connections=8",
    ]


async def test_the_pool_limit_only_binds_the_default_transport(fake: FakeVairo) -> None:
    async with AsyncVairoClient(
        fake.api_key, sender="ACME", transport=fake.transport(), max_connections=1
    ) as client:
        result = await client.send_bulk(
            [Message(to="5399999999", text="hi")] * 3, batch_size=1, concurrency=3
        )
    assert result.sent == 3
    assert {package.sender for package in fake.packages.values()} == {"ACME"}
