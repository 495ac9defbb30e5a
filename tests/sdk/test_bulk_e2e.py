"""Bulk campaigns end to end through the emulator: accounting under random faults, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vairo_async import AsyncVairoClient, BatchState, BulkResult, Message, Rejection
from vairo_async._phone import normalize_number
from vairo_async._segments import needs_turkish_shift
from vairo_async._validate import check_message
from vairo_async.testing import FakeVairo, Fault

FAULTS = [
    Fault.server_error(503),
    Fault.server_error(500),
    Fault.server_error(502, accepted=True),
    Fault.server_error(504),
    Fault.rate_limit(retry_after=0),
    Fault.html_page(502),
    Fault.drop_before_accept(),
    Fault.drop_after_accept(),
]
TEXTS = ["Merhaba", "Şifreniz 1234", "", "😀 kampanya", "   ", "a" * 170]
BAD_NUMBERS = ["123", "", "0212 555 12 34", "+44 7911 123456"]


@st.composite
def campaigns(draw: st.DrawFn) -> list[Message]:
    """Rows with unique valid numbers in many spellings, mixed with bad rows."""
    count = draw(st.integers(0, 40))
    rows = []
    for i in range(count):
        if draw(st.integers(0, 9)) == 0:
            to = draw(st.sampled_from(BAD_NUMBERS))
        else:
            spelling = draw(st.sampled_from(["5{}", "0 5{}", "+90 5{}", "905{}"]))
            to = spelling.format(f"{i:09d}")
        rows.append(Message(to=to, text=draw(st.sampled_from(TEXTS))))
    return rows


def check_against_emulator(result: BulkResult, rows: list[Message], fake: FakeVairo) -> None:
    # The invariant, and every input row accounted for exactly once.
    assert result.sent + result.failed + result.unknown + result.rejected == result.total
    assert result.total == len(rows)
    # No SMS accepted twice.
    assert fake.duplicates() == {}
    accepted = {(m.dest, m.text) for m in fake.messages}
    assert len(accepted) == len(fake.messages)
    # Outcomes hold the caller's rows; the emulator records numbers in wire form.
    by_state = {
        state: {
            (normalize_number(m.to), m.text)
            for o in result.outcomes
            if o.state is state
            for m in o.messages
        }
        for state in BatchState
    }
    # Every SENT package id is an accepted package holding exactly that batch's rows.
    for outcome in result.outcomes:
        if outcome.state is BatchState.SENT:
            assert outcome.package_id is not None
            package = [
                (m.dest, m.text) for m in fake.messages if m.package_id == outcome.package_id
            ]
            assert package == [(normalize_number(m.to), m.text) for m in outcome.messages]
    # Every accepted row belongs to a SENT or UNKNOWN batch; FAILED rows were never accepted.
    assert accepted <= by_state[BatchState.SENT] | by_state[BatchState.UNKNOWN]
    assert by_state[BatchState.SENT] <= accepted
    assert not accepted & by_state[BatchState.FAILED]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=campaigns(),
    faults=st.lists(st.sampled_from(FAULTS), max_size=10),
    batch_size=st.integers(1, 12),
    concurrency=st.integers(1, 4),
    max_retries=st.integers(0, 3),
)
def test_accounting_holds_under_random_faults(
    rows: list[Message],
    faults: list[Fault],
    batch_size: int,
    concurrency: int,
    max_retries: int,
) -> None:
    fake = FakeVairo()
    for fault in faults:
        fake.inject(fault)

    async def campaign() -> BulkResult:
        async with AsyncVairoClient(
            fake.api_key,
            sender="ACME",
            base_url=fake.base_url,
            transport=fake.transport(),
            max_retries=max_retries,
        ) as client:
            return await client.send_bulk(rows, batch_size=batch_size, concurrency=concurrency)

    result = asyncio.run(campaign())
    check_against_emulator(result, rows, fake)


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeVairo, AsyncVairoClient]]:
    fake = FakeVairo(latency=0.005)  # a little network time, so requests overlap
    async with (
        fake.serve() as base_url,
        AsyncVairoClient(fake.api_key, sender="ACME", base_url=base_url) as client,
    ):
        yield fake, client


async def test_limits_are_observed_at_the_emulator_over_loopback(
    served: tuple[FakeVairo, AsyncVairoClient],
) -> None:
    fake, client = served
    rows = [Message(to=f"53{i:08d}", text="Merhaba") for i in range(300)]
    result = await client.send_bulk(rows, batch_size=25, concurrency=3)
    assert result.sent == 300
    assert fake.peak_concurrency("send") == 3
    sizes = [len(p.messages) for p in fake.packages.values()]
    assert sizes == [25] * 12
    assert fake.duplicates() == {}


async def test_tr_char_groups_at_the_emulator_over_loopback(
    served: tuple[FakeVairo, AsyncVairoClient],
) -> None:
    fake, client = served
    rows = [
        Message(to=f"53{i:08d}", text="Şifreniz 1234" if i % 2 else "Kodunuz 1234")
        for i in range(40)
    ]
    result = await client.send_bulk(rows, batch_size=15)
    assert result.sent == 40
    for package in fake.packages.values():
        turkish = {m.text == "Şifreniz 1234" for m in package.messages}
        assert len(turkish) == 1
        assert bool(package.tr_char) is turkish.pop()
    # The emulator prices each package as the client estimated it.
    assert result.estimated_credits == sum(p.credits for p in fake.packages.values())


async def test_faults_over_loopback_keep_the_books_straight(
    served: tuple[FakeVairo, AsyncVairoClient],
) -> None:
    fake, client = served
    for fault in FAULTS:
        fake.inject(fault)
    rows = [Message(to=f"53{i:08d}", text="Merhaba") for i in range(200)] + [
        Message(to="12", text="x")
    ]
    result = await client.send_bulk(rows, batch_size=10, concurrency=2)
    check_against_emulator(result, rows, fake)
    assert result.unknown > 0
    assert result.rejected == 1


# Spellings at the edge of the wire form, and texts at the edge of plain ASCII.
EDGE_NUMBERS = [
    "5399999999",
    "5399999998",
    "\uff15399999999",  # a fullwidth 5: a digit, but not ASCII
    "5\u0663" + "9" * 8,  # an Arabic-Indic 3
    "539999999",
    "53999999990",
    "6399999999",
    " 5399999999",
    "0539 999 99 97",
]
EDGE_TEXTS = ["Merhaba", "", " ", "\t\n", "x\x00y", "a\ud800", "Şeker", "ç", "€", "Çok", "a" * 161]


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.builds(Message, to=st.sampled_from(EDGE_NUMBERS), text=st.sampled_from(EDGE_TEXTS)),
        max_size=30,
    ),
    batch_size=st.integers(1, 8),
)
def test_every_row_is_judged_as_check_message_judges_it(
    rows: list[Message], batch_size: int
) -> None:
    fake = FakeVairo()

    async def campaign() -> BulkResult:
        async with AsyncVairoClient(
            fake.api_key, sender="ACME", base_url=fake.base_url, transport=fake.transport()
        ) as client:
            return await client.send_bulk(rows, batch_size=batch_size)

    result = asyncio.run(campaign())
    expected_reasons = []
    for row in rows:
        try:
            check_message(row)
        except ValueError as exc:
            expected_reasons.append((row, str(exc)))
    assert sorted(map(repr, result.rejections)) == sorted(
        repr(Rejection(row, reason)) for row, reason in expected_reasons
    )
    assert result.sent == len(rows) - len(expected_reasons)
    for outcome in result.outcomes:
        if outcome.state is BatchState.SENT:
            assert outcome.package_id is not None
            package = fake.packages[outcome.package_id]
            wire = [check_message(m) for m in outcome.messages]
            assert [(m.dest, m.text) for m in package.messages] == [(m.to, m.text) for m in wire]
            turkish = {needs_turkish_shift(m.text) for m in wire}
            assert turkish == {bool(package.tr_char)}
