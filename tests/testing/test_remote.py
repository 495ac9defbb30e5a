"""`RemoteFakeVairo` steering `python -m vairo_async.testing` run as a real process.

The SDK sends to the emulator process over loopback; every look and every control goes through
`RemoteFakeVairo` only, as a test of a service in another process would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from vairo_async import AsyncVairoClient, Message, OutcomeUnknownError, PackageStatus, VairoError
from vairo_async.testing import (
    FakeVairo,
    Fault,
    Outcome,
    Package,
    RandomFaults,
    RemoteFakeVairo,
    RemoteFakeVairoError,
)
from vairo_async.testing._codec import Records, decode

from ..support import ROOT, emulator

KEY = "remote-key"
PHONE = "5399999999"


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """One emulator process for the module; each test starts from `reset()`."""
    with emulator(api_key=KEY) as (_, url):
        yield url


@pytest.fixture
async def remote(served: str) -> AsyncIterator[RemoteFakeVairo]:
    async with RemoteFakeVairo(served, api_key=KEY) as steer:
        await steer.reset()
        yield steer


@pytest.fixture
async def vairo(served: str) -> AsyncIterator[AsyncVairoClient]:
    async with AsyncVairoClient(api_key=KEY, sender="ACME", base_url=served) as client:
        yield client


async def test_the_remote_client_sees_what_the_sdk_sent(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    submission = await vairo.send_messages(
        [Message(to=PHONE, text="Merhaba Ali"), Message(to="5554444444", text="Merhaba Ayşe")]
    )

    messages = await remote.messages()
    packages = await remote.packages()
    [sms] = await remote.sent_to(PHONE)

    assert [(m.dest, m.text) for m in messages] == [
        (PHONE, "Merhaba Ali"),
        ("5554444444", "Merhaba Ayşe"),
    ]
    assert sms.package_id == submission.package_id
    assert packages[submission.package_id].sender == "ACME"
    assert packages[submission.package_id].messages == messages
    assert await remote.request_count("send", Outcome.ACCEPTED) == 1
    assert [r.outcome for r in await remote.requests()] == [Outcome.ACCEPTED]
    assert await remote.duplicates() == {}
    assert await remote.peak_concurrency("send") == 1
    assert await remote.peak_concurrency("report") == 0


async def test_two_injected_503s_are_retried_by_the_sdk(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    await remote.inject(Fault.server_error(503), endpoint="send", times=2)
    pending = await remote.pending_faults()

    await vairo.send("Kodunuz 1234", to=PHONE)

    assert pending == 2
    assert [(r.outcome, r.status) for r in await remote.requests()] == [
        (Outcome.SERVER_ERROR, 503),
        (Outcome.SERVER_ERROR, 503),
        (Outcome.ACCEPTED, 200),
    ]
    assert len(await remote.sent_to(PHONE)) == 1
    assert await remote.pending_faults() == 0


async def test_a_drop_after_accept_is_unknown_and_sent_once(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    await remote.inject(Fault.drop_after_accept())

    with pytest.raises(OutcomeUnknownError):
        await vairo.send("Kodunuz 1234", to=PHONE)

    assert len(await remote.sent_to(PHONE)) == 1
    assert await remote.request_count(outcome="dropped") == 1


async def run_campaign(remote: RemoteFakeVairo, vairo: AsyncVairoClient) -> list[Outcome]:
    faults = RandomFaults({Fault.server_error(503): 0.3, Fault.html_page(): 0.1}, seed=11)
    await remote.set_random_faults(faults)
    assert await remote.random_faults() == faults
    for n in range(12):
        with contextlib.suppress(VairoError):
            await vairo.send(f"Kampanya {n}", to=PHONE)
    return [record.outcome for record in await remote.requests()]


async def test_random_faults_with_a_seed_repeat(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    first = await run_campaign(remote, vairo)
    await remote.reset()
    second = await run_campaign(remote, vairo)

    assert first == second
    assert Outcome.SERVER_ERROR in first
    assert Outcome.HTML_PAGE in first
    assert await remote.duplicates() == {}
    await remote.set_random_faults(None)
    assert await remote.random_faults() is None


async def test_complete_now_one_package_or_all(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    first = await vairo.send("Bir", to=PHONE)
    second = await vairo.send("İki", to=PHONE)
    third = await vairo.send("Üç", to=PHONE)

    await remote.complete_now(second.package_id)
    one = await vairo.get_report(second.package_id)
    still = await vairo.get_report(first.package_id)
    await remote.complete_now()
    packages = await remote.packages()

    assert one.status is PackageStatus.COMPLETED
    assert still.status is PackageStatus.SENDING
    assert [packages[s.package_id].status for s in (first, second, third)] == [1, 1, 1]
    with pytest.raises(KeyError):
        await remote.complete_now(third.package_id + 100)


async def test_reset_forgets_records_and_faults(
    remote: RemoteFakeVairo, vairo: AsyncVairoClient
) -> None:
    before = await vairo.send("Bir", to=PHONE)
    await remote.inject(Fault.rate_limit(), times=3)
    await remote.set_random_faults(RandomFaults({Fault.drop_before_accept(): 0.5}, seed=1))

    await remote.reset()

    assert await remote.messages() == ()
    assert await remote.packages() == {}
    assert await remote.requests() == ()
    assert await remote.pending_faults() == 0
    assert await remote.random_faults() is None
    after = await vairo.send("İki", to=PHONE)
    assert after.package_id == before.package_id + 1


async def test_clear_faults(remote: RemoteFakeVairo, vairo: AsyncVairoClient) -> None:
    await remote.inject(Fault.server_error(500), times=5)
    await remote.set_random_faults(RandomFaults({Fault.server_error(500): 1.0}))

    await remote.clear_faults()
    await vairo.send("Bir", to=PHONE)

    assert await remote.pending_faults() == 0
    assert await remote.random_faults() is None
    assert await remote.request_count(outcome=Outcome.ACCEPTED) == 1


async def test_a_wrong_key_is_refused(served: str, remote: RemoteFakeVairo) -> None:
    async with RemoteFakeVairo(served, api_key="not-the-key") as wrong:
        with pytest.raises(RemoteFakeVairoError, match="refused the API key") as refused:
            await wrong.messages()
        with pytest.raises(RemoteFakeVairoError):
            await wrong.reset()

    assert refused.value.status_code == 401
    assert "not-the-key" not in str(refused.value)
    assert "not-the-key" not in repr(wrong)
    assert await remote.request_count() == 0


async def test_refused_arguments_are_value_errors(remote: RemoteFakeVairo) -> None:
    with pytest.raises(ValueError, match="times must be at least 1, not 0"):
        await remote.inject(Fault.latency(1), times=0)
    with pytest.raises(ValueError, match="'sms'"):
        await remote.request_count(endpoint="sms")
    with pytest.raises(ValueError, match="'sms'"):
        await remote.inject(Fault.latency(1), endpoint="sms")  # type: ignore[arg-type]

    assert await remote.pending_faults() == 0


async def test_a_base_url_without_an_emulator_is_named(served: str) -> None:
    async with RemoteFakeVairo(served + "elsewhere/", api_key=KEY) as lost:
        with pytest.raises(RemoteFakeVairoError, match="base URL the emulator printed") as error:
            await lost.messages()

    assert error.value.status_code == 404


def file_names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize(
    ("sig", "returncode"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)]
)
async def test_dump_on_exit_writes_the_records(
    tmp_path: Path, sig: signal.Signals, returncode: int
) -> None:
    dump = tmp_path / "records.json"
    with emulator("--dump-on-exit", str(dump), api_key=KEY) as (process, url):
        async with (
            AsyncVairoClient(api_key=KEY, sender="ACME", base_url=url) as vairo,
            RemoteFakeVairo(url, api_key=KEY) as remote,
        ):
            await remote.inject(Fault.server_error(503))
            await vairo.send("Kodunuz 1234", to=PHONE)
            seen = (await remote.messages(), await remote.requests())
        process.send_signal(sig)
        _, errors = process.communicate(timeout=30)

    records: Records = decode(dump.read_bytes(), Records)
    written = file_names(tmp_path)
    assert process.returncode == returncode, errors
    assert "Traceback" not in errors
    assert (records.messages, records.requests) == seen
    assert [package.package_id for package in records.packages] == [1]
    assert records.peak_concurrency == {"send": 1, "report": 0}
    assert written == ["records.json"]  # no partial file left behind


def test_dump_on_exit_needs_an_existing_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vairo_async.testing",
            "--port",
            "0",
            "--dump-on-exit",
            str(tmp_path / "missing" / "records.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "--dump-on-exit" in result.stderr
    assert "missing" in result.stderr


# -- the same scenario, in-process and remote ------------------------------------------------


class InProcess:
    """`FakeVairo`'s members as coroutines of the same names, as `RemoteFakeVairo` has them."""

    def __init__(self, fake: FakeVairo) -> None:
        self._fake = fake

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        member = getattr(self._fake, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return member(*args, **kwargs) if callable(member) else member

        return call


async def retried_503s(steer: Any, vairo: AsyncVairoClient) -> None:
    await steer.inject(Fault.server_error(503), times=2)
    await vairo.send("Kodunuz 1234", to=PHONE)


async def dropped_and_resent(steer: Any, vairo: AsyncVairoClient) -> None:
    await steer.inject(Fault.drop_after_accept())
    with contextlib.suppress(OutcomeUnknownError):
        await vairo.send("Kodunuz 1234", to=PHONE)
    await vairo.send("Kodunuz 1234", to=PHONE)


async def seeded_random_faults(steer: Any, vairo: AsyncVairoClient) -> None:
    faults = {Fault.server_error(503): 0.3, Fault.server_error(500): 0.1}
    await steer.set_random_faults(RandomFaults(faults, seed=5, endpoint="send"))
    for n in range(10):
        with contextlib.suppress(VairoError):
            await vairo.send(f"Kampanya {n}", to=PHONE)


async def life_cycle_and_reset(steer: Any, vairo: AsyncVairoClient) -> None:
    first = await vairo.send("Bir", to=PHONE)
    await vairo.get_report(first.package_id)
    await steer.reset()
    second = await vairo.send("İki", to="5554444444")
    third = await vairo.send("Üç", to=PHONE)
    await steer.inject(Fault.rate_limit(None), endpoint="report")
    await vairo.get_report(second.package_id)
    await steer.complete_now(third.package_id)
    await vairo.get_report(third.package_id)


EPOCH = datetime(2000, 1, 1)


def comparable(package: Package) -> Package:
    """The package without what depends on the machine: times and the port in its route."""
    return attrs.evolve(package, created_at=EPOCH, accepted_at=0.0, route="")


async def answers(steer: Any) -> dict[str, Any]:
    """Everything the record methods answer."""
    return {
        "messages": await steer.messages(),
        "packages": {n: comparable(p) for n, p in (await steer.packages()).items()},
        "requests": await steer.requests(),
        "sent_to": await steer.sent_to(PHONE),
        "duplicates": await steer.duplicates(),
        "counts": [
            await steer.request_count(),
            await steer.request_count("send"),
            await steer.request_count("report", "ok"),
            await steer.request_count(outcome=Outcome.SERVER_ERROR),
        ],
        "peaks": [await steer.peak_concurrency(), await steer.peak_concurrency("report")],
        "pending_faults": await steer.pending_faults(),
        "random_faults": await steer.random_faults(),
    }


Scenario = Callable[[Any, AsyncVairoClient], Awaitable[None]]


async def run(scenario: Scenario, steer: Any, url: str) -> dict[str, Any]:
    async with AsyncVairoClient(api_key=KEY, sender="ACME", base_url=url) as vairo:
        await scenario(steer, vairo)
    return await answers(steer)


@pytest.mark.parametrize(
    "scenario", [retried_503s, dropped_and_resent, seeded_random_faults, life_cycle_and_reset]
)
async def test_in_process_and_remote_answer_alike(scenario: Scenario) -> None:
    fake = FakeVairo(api_key=KEY)
    async with fake.serve() as url:
        in_process = await run(scenario, InProcess(fake), url)
    with emulator(api_key=KEY) as (_, url):
        async with RemoteFakeVairo(url, api_key=KEY) as remote:
            remote_answers = await run(scenario, remote, url)

    assert remote_answers == in_process
    assert in_process["messages"]
