"""OpenTelemetry: spans per API call and per campaign, message counts and call durations.

Each test binds the SDK's tracer and meter to an OpenTelemetry SDK of its own, with the
in-memory exporter and metric reader, and runs real calls through the emulator.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.support import API_KEY, ROOT, Recorder, Reply
from vairo_async import (
    AsyncVairoClient,
    Message,
    OutcomeUnknownError,
    ServerError,
    TransportError,
    _otel,
)
from vairo_async._endpoints import SEND
from vairo_async.testing import FakeVairo, Fault


@attrs.define
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found

    def messages(self) -> dict[str, int]:
        return {p.attributes["vairo.outcome"]: p.value for p in self.points("vairo.messages")}


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    _otel._bind(tracing, meters)
    try:
        yield Telemetry(spans, reader)
    finally:
        _otel._bind()
        tracing.shutdown()
        meters.shutdown()


def client_of(fake: FakeVairo, recorder: Recorder | None = None) -> AsyncVairoClient:
    return AsyncVairoClient(
        API_KEY, sender="ACME", transport=recorder or Recorder(fake), max_retries=2
    )


@pytest.fixture
def fake() -> FakeVairo:
    return FakeVairo(api_key=API_KEY)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for name, value in (span.attributes or {}).items()
    }


async def test_a_send_is_one_span(fake: FakeVairo, telemetry: Telemetry) -> None:
    async with client_of(fake) as client:
        submission = await client.send("Kodunuz 1234", to=["5399999999", "5554444444"])

    [span] = telemetry.finished()
    assert span.name == "vairo.SmsGonder"
    assert attributes(span) == {
        "vairo.endpoint": "SmsGonder",
        "vairo.outcome": "sent",
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "vairo.attempts": 1,
        "vairo.batch_size": 2,
        "vairo.package_id": submission.package_id,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert telemetry.messages() == {"sent": 2}
    [duration] = telemetry.points("vairo.call.duration")
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "vairo.endpoint": "SmsGonder",
        "vairo.outcome": "sent",
        "http.response.status_code": 200,
    }


async def test_retries_show_their_reasons_and_waits(fake: FakeVairo, telemetry: Telemetry) -> None:
    fake.inject(Fault.server_error(503), times=1)
    fake.inject(Fault.rate_limit(retry_after=0), times=1)
    async with client_of(fake) as client:
        await client.send("Kodunuz 1234", to="5399999999")

    [span] = telemetry.finished()
    assert attributes(span)["vairo.attempts"] == 3
    assert attributes(span)["vairo.retry_reasons"] == ["HTTP 503", "HTTP 429"]
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("vairo.retry", {"vairo.attempt": 1, "vairo.retry_reason": "HTTP 503", "vairo.wait": 0.0}),
        ("vairo.retry", {"vairo.attempt": 2, "vairo.retry_reason": "HTTP 429", "vairo.wait": 0.0}),
    ]


async def test_an_unknown_outcome(fake: FakeVairo, telemetry: Telemetry) -> None:
    fake.inject(Fault.drop_after_accept())
    async with client_of(fake) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.send("Kodunuz 1234", to="5399999999")

    [span] = telemetry.finished()
    found = attributes(span)
    assert (found["vairo.outcome"], found["error.type"]) == ("unknown", "OutcomeUnknownError")
    assert "http.response.status_code" not in found
    assert "vairo.package_id" not in found
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None
    assert telemetry.messages() == {"unknown": 1}


async def test_an_exhausted_503_failed(fake: FakeVairo, telemetry: Telemetry) -> None:
    fake.inject(Fault.server_error(503), times=3)
    async with client_of(fake) as client:
        with pytest.raises(ServerError):
            await client.send("Kodunuz 1234", to="5399999999")

    [span] = telemetry.finished()
    found = attributes(span)
    assert found["vairo.outcome"] == "failed"
    assert found["http.response.status_code"] == 503
    assert found["vairo.retry_reasons"] == ["HTTP 503", "HTTP 503"]
    assert found["error.type"] == "HTTP 503"
    assert telemetry.messages() == {"failed": 1}


async def test_a_report_span(fake: FakeVairo, telemetry: Telemetry) -> None:
    async with client_of(fake) as client:
        submission = await client.send("Kodunuz 1234", to="5399999999")
        await client.get_report(submission.package_id)

    [report] = telemetry.named("vairo.GonderimBilgisi")
    assert attributes(report) == {
        "vairo.endpoint": "GonderimBilgisi",
        "vairo.outcome": "ok",
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "vairo.attempts": 1,
        "vairo.package_id": submission.package_id,
        "vairo.package_status": "SENDING",
    }
    assert telemetry.messages() == {"sent": 1}  # a report sends nothing


async def test_a_campaign_is_the_parent_of_its_batches(
    fake: FakeVairo, telemetry: Telemetry
) -> None:
    rows = [Message(to=f"539000000{i}", text=f"Merhaba {i}") for i in range(5)]
    rows.append(Message(to="12", text="bad number"))
    fake.inject(Fault.server_error(500), times=1)  # one batch ends UNKNOWN
    async with client_of(fake) as client:
        result = await client.send_bulk(rows, batch_size=2, concurrency=1)

    [campaign] = telemetry.named("vairo.campaign")
    batches = telemetry.named("vairo.SmsGonder")
    assert len(batches) == 3
    assert {span.parent.span_id for span in batches if span.parent} == {campaign.context.span_id}
    assert {span.context.trace_id for span in batches} == {campaign.context.trace_id}
    assert attributes(campaign) == {
        "vairo.batch_size": 2,
        "vairo.concurrency": 1,
        "vairo.messages.sent": result.sent,
        "vairo.messages.failed": 0,
        "vairo.messages.unknown": result.unknown,
        "vairo.messages.rejected": 1,
        "vairo.batches": 3,
        "vairo.rows": 6,
    }
    assert (result.sent, result.unknown) == (3, 2)
    assert sorted(attributes(span)["vairo.outcome"] for span in batches) == [
        "sent",
        "sent",
        "unknown",
    ]
    assert telemetry.messages() == {"sent": 3, "unknown": 2, "rejected": 1}  # counted once


async def test_a_rate_is_recorded(fake: FakeVairo, telemetry: Telemetry) -> None:
    async with client_of(fake) as client:
        await client.send_bulk([Message(to="5399999999", text="x")], rate=1000)
    [campaign] = telemetry.named("vairo.campaign")
    assert attributes(campaign)["vairo.rate"] == 1000


async def test_a_failing_input_marks_the_campaign(fake: FakeVairo, telemetry: Telemetry) -> None:
    def rows() -> Iterator[Message]:
        yield Message(to="5399999999", text="x")
        raise RuntimeError("the file ended badly")

    async with client_of(fake) as client:
        with pytest.raises(Exception, match="input failed"):
            await client.send_bulk(rows())
    [campaign] = telemetry.named("vairo.campaign")
    assert attributes(campaign)["error.type"] == "RuntimeError"
    assert campaign.status.status_code is StatusCode.ERROR


def _all_attribute_values(telemetry: Telemetry) -> list[str]:
    values: list[str] = []
    for span in telemetry.finished():
        values.append(span.name)
        values.append(span.status.description or "")
        groups = [span.attributes or {}, *(event.attributes or {} for event in span.events)]
        for group in groups:
            for name, value in group.items():
                values.append(name)
                values.append(json.dumps(value if not isinstance(value, tuple) else list(value)))
    for metric in ("vairo.messages", "vairo.call.duration"):
        for point in telemetry.points(metric):
            values.append(json.dumps(dict(point.attributes)))
    return values


async def test_no_key_number_or_text_in_any_attribute(
    fake: FakeVairo, telemetry: Telemetry
) -> None:
    texts = ["Kodunuz 987654", "Merhaba Ayşe, siparişiniz yolda", "Şifreniz: 4321"]
    spellings = ["+90 539 111 22 33", "0555 444 55 66", "5321234567"]
    wire = ["5391112233", "5554445566", "5321234567"]
    recorder = Recorder(fake)
    recorder.script(
        None,
        Reply(400, json={"durum": False, "aciklama": "Geçersiz numara 5554445566"}),
        Fault.drop_after_accept(),
    )
    async with client_of(fake, recorder) as client:
        await client.send(texts[0], to=spellings[0])
        with pytest.raises(Exception, match="Geçersiz"):
            await client.send(texts[1], to=spellings[1])
        with pytest.raises(OutcomeUnknownError):
            await client.send(texts[2], to=spellings[2])
        rows = [Message(to=s, text=t) for s, t in zip(spellings, texts, strict=True)]
        result = await client.send_bulk([*rows, Message(to="12", text=texts[0])], batch_size=2)
        for package_id in result.package_ids:
            await client.get_report(package_id)

    values = _all_attribute_values(telemetry)
    assert len(telemetry.finished()) >= 6
    joined = "\n".join(values)
    assert API_KEY not in joined
    digits = {"".join(ch for ch in s if ch.isdigit()) for s in spellings}
    for secret in [*texts, *spellings, *wire, *digits, "4321", "987654", "Geçersiz", "Kodunuz"]:
        for value in values:
            assert secret not in value, (secret, value)


def test_not_recording_without_an_sdk() -> None:
    """With the API only (the default global providers), spans do not record."""
    traced = _otel.call(SEND, None, 1)
    assert traced is not None
    assert not traced._span.is_recording()


async def test_without_a_configured_sdk_calls_work(fake: FakeVairo) -> None:
    async with client_of(fake) as client:
        await client.send_bulk([Message(to="5399999999", text="x")])
        submission = await client.send("x", to="5399999999")
        await client.get_report(submission.package_id)
    assert len(fake.messages) == 2


_WITHOUT_API = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from vairo_async import AsyncVairoClient, Message, _otel
from vairo_async._endpoints import SEND
from vairo_async.testing import FakeVairo

async def main():
    fake = FakeVairo()
    async with AsyncVairoClient(fake.api_key, sender="ACME", transport=fake.transport()) as c:
        await c.send("x", to="5399999999")
        await c.send_bulk([Message(to="5399999999", text="y")])
    _otel.retrying(ValueError(), 1, 0.0)
    _otel.count_messages(None, 1, 1)
    print(_otel.ENABLED, _otel.call(SEND, None, 1), _otel.campaign(1, 1, None), len(fake.messages))

asyncio.run(main())
"""


def test_without_the_api_package_nothing_is_traced() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _WITHOUT_API],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "None", "None", "2"]


def test_the_readme_shows_what_a_campaign_trace_holds(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Tracing and metrics\n") :]
    section = section[: section.index("\n## ", 1)]
    script = re.search(r"```python\n# trace_a_campaign\.py\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert script is not None
    assert shown is not None
    (tmp_path / "trace_a_campaign.py").write_text(script[1], encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-W", "error", "trace_a_campaign.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == shown[1]


def test_reasons_name_no_text() -> None:
    assert _otel.reason(ServerError("Sunucu hatası", status_code=503)) == "HTTP 503"
    assert _otel.reason(TransportError("x", may_have_reached_server=True)) == "TransportError"
    refused = TransportError("could not connect", may_have_reached_server=False)
    refused.__cause__ = httpx.ConnectError("All connection attempts failed")
    assert _otel.reason(refused) == "ConnectError"
    assert _otel.reason(OutcomeUnknownError(ServerError("x", status_code=500))) == (
        "OutcomeUnknownError"
    )
