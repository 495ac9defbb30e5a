"""`vairo-sms demo`: a whole campaign against the emulator on a loopback port, faults on.

The campaign is generated lazily: valid numbers in many spellings, a few invalid rows,
Turkish, long and emoji texts. It goes through `iter_bulk`, then `wait_all` waits for every
package, and the result is checked against the emulator's own records.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterator

import attrs
import click
from rich.console import Console

from .._client import AsyncVairoClient
from .._config import BulkSettings
from .._errors import WaitAllError
from .._models import Message, PackageStatus
from ..testing import FakeVairo, Fault, RandomFaults
from .common import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, CliError, figures, run_async, session
from .rows import Template, fold
from .sending import Tally, progress_bar, run_campaign

__all__ = [
    "DEMO_FAULTS",
    "FAILING_ROW",
    "INVALID_EVERY",
    "DemoSummary",
    "demo",
    "demo_number",
    "demo_rows",
    "reconcile",
    "run_demo",
]

#: Every INVALID_EVERY-th row (the last of each run of that many) is a bad row.
INVALID_EVERY = 250
#: The row whose number the emulator fails (INVALID_DESTINATION_ADDRESS): one package FAILS.
FAILING_ROW = 42

#: Faults of the send endpoint, per request: retried (503, 429 with Retry-After 0), unknown
#: outcomes (500, 502 after acceptance, dropped connections), and a 429 asking for an hour,
#: longer than the client honours, so that batch FAILS.
DEMO_FAULTS = {
    Fault.server_error(503): 0.03,
    Fault.rate_limit(retry_after=0): 0.03,
    Fault.server_error(500): 0.005,
    Fault.server_error(502, accepted=True): 0.005,
    Fault.drop_before_accept(): 0.005,
    Fault.drop_after_accept(): 0.005,
    Fault.rate_limit(retry_after=3600): 0.005,
}

_NAMES = ("Ayşe", "Ali", "Çağrı", "Zeynep", "Mehmet", "Gül", "İbrahim", "Öykü", "Can", "Elif")
_TEXTS = (
    "Kodunuz {code}. Kimseyle paylasmayin.",
    "Merhaba {name}, siparişiniz yola çıktı. Teşekkürler!",
    "Merhaba {name}, randevunuz yarın saat 10:00'da.",
    "Sayın {name}, kampanyamız başladı: tüm ürünlerde %20 indirim sizi bekliyor. Bu fırsat "
    "yalnızca üyelerimize özel ve pazar günü gece yarısına kadar geçerli. Ayrıntılar için "
    "uygulamamızı açın ya da mağazalarımızı ziyaret edin. İyi alışverişler!",
    "Dear {name}, your parcel {code} is out for delivery today; track it in the app or reply "
    "STOP to opt out of delivery messages. Thank you for shopping with us, see you soon!",
    "Hoş geldin {name} 🎉 İlk siparişine özel kodun: HOS{code}",
)
# The same templates `bulk --template` reads: {Column} placeholders and nothing else.
_TEMPLATES = tuple(Template.parse(text) for text in _TEXTS)
_BAD_ROWS = (
    ("0212 555 12 34", "Sabit hatta SMS gitmez."),
    ("+44 7911 123456", "Yurt dışı numarası."),
    ("53999", "Eksik numara."),
    (None, "   "),
)


def demo_number(index: int) -> str:
    """The wire-form number of row `index`: unique per row."""
    return f"53{index:08d}"


def _spelling(number: str, index: int) -> str:
    a, b, c, d = number[:3], number[3:6], number[6:8], number[8:]
    spellings = (
        number,
        f"0{number}",
        f"+90 {a} {b} {c} {d}",
        f"0{a}-{b}-{c}{d}",
        f"90{number}",
        f"(0{a}) {b} {c}{d}",
    )
    return spellings[index % len(spellings)]


def demo_rows(count: int) -> Iterator[Message]:
    """`count` generated rows, made one at a time; every INVALID_EVERY-th one is bad."""
    for index in range(count):
        number = demo_number(index)
        if index % INVALID_EVERY == INVALID_EVERY - 1:
            to, text = _BAD_ROWS[(index // INVALID_EVERY) % len(_BAD_ROWS)]
            yield Message(to=to or number, text=text)
            continue
        template = _TEMPLATES[index % len(_TEMPLATES)]
        values = {"name": _NAMES[index % len(_NAMES)], "code": f"{index % 10000:04d}"}
        text, _ = template.render([values[fold(field)] for field in template.fields])
        yield Message(to=_spelling(number, index), text=text)


@attrs.frozen
class DemoSummary:
    """What the demo measured.

    Attributes:
        campaign: The campaign's counts, package ids and wall time.
        completed: Packages that ended COMPLETED.
        failed_packages: Packages that ended FAILED.
        unsettled: Packages `wait_all` could not wait for.
        charged_credits: Credits the final reports charged.
        wait_seconds: Wall time of the wait.
        seconds: Wall time of the whole demo, emulator start and stop included.
        problems: Where the result disagrees with the emulator's records (none expected).
    """

    campaign: Tally
    completed: int
    failed_packages: int
    unsettled: int
    charged_credits: int
    wait_seconds: float
    seconds: float
    problems: tuple[str, ...]


def reconcile(campaign: Tally, fake: FakeVairo, rows: int) -> list[str]:
    """Check the campaign's counts against what the emulator accepted; list disagreements."""
    problems = []
    if campaign.count("total") != rows:
        problems.append(f"{campaign.count('total')} rows settled of {rows}")
    if fake.duplicates():
        problems.append(f"{len(fake.duplicates())} messages accepted twice")
    in_sent = sum(len(fake.packages[i].messages) for i in campaign.package_ids)
    if in_sent != campaign.count("sent"):
        problems.append(f"sent {campaign.count('sent')}, but SENT packages hold {in_sent}")
    elsewhere = len(fake.messages) - in_sent
    if elsewhere > campaign.count("unknown"):
        problems.append(f"{elsewhere} accepted rows outside SENT packages, beyond unknown rows")
    return problems


async def run_demo(
    count: int,
    *,
    console: Console,
    batch_size: int = 500,
    concurrency: int = 8,
    faults: RandomFaults | None = None,
) -> tuple[DemoSummary, FakeVairo]:
    """Run the demo campaign of `count` rows; return what it measured and the emulator."""
    if faults is None:
        faults = RandomFaults(DEMO_FAULTS, seed=30, endpoint="send")
    fake = FakeVairo(
        complete_after_polls=1,
        fail_destinations={demo_number(FAILING_ROW)},
        random_faults=faults,
    )
    started = time.perf_counter()
    campaign = Tally()
    completed = failed = unsettled = charged = 0
    async with fake.serve() as base_url:
        # Short retry waits: the emulator is local, and the demo is about seconds.
        client = AsyncVairoClient(
            fake.api_key,
            sender="DEMO",
            base_url=base_url,
            retry_backoff=0.01,
            retry_backoff_max=0.05,
        )
        async with client as vairo:
            await run_campaign(
                vairo,
                demo_rows(count),
                tally=campaign,
                total=count,
                console=console,
                settings=BulkSettings(batch_size=batch_size, concurrency=concurrency),
            )
            waiting = time.perf_counter()
            finals = vairo.wait_all(
                campaign.package_ids, poll_interval=0.02, max_poll_interval=0.2, concurrency=20
            )
            with progress_bar(console) as bar:
                task = bar.add_task("waiting", total=len(campaign.package_ids), detail="")
                try:
                    async with contextlib.aclosing(finals):
                        async for report in finals:
                            completed += report.status is PackageStatus.COMPLETED
                            failed += report.status is PackageStatus.FAILED
                            charged += report.credits
                            bar.update(task, advance=1, detail=f"{completed + failed:,} final")
                except WaitAllError as errors:
                    unsettled = len(errors.errors)
            wait_seconds = time.perf_counter() - waiting
    summary = DemoSummary(
        campaign=campaign,
        completed=completed,
        failed_packages=failed,
        unsettled=unsettled,
        charged_credits=charged,
        wait_seconds=wait_seconds,
        seconds=time.perf_counter() - started,
        problems=tuple(reconcile(campaign, fake, count)),
    )
    return summary, fake


def demo_figures(summary: DemoSummary, fake: FakeVairo) -> list[tuple[str, str]]:
    """The demo's summary table rows."""
    campaign = summary.campaign
    rows = campaign.count("total")
    faults = collections.Counter(
        "dropped" if r.status is None else str(r.status) for r in fake.requests if r.fault
    )
    answered = ", ".join(f"{kind} ×{n}" for kind, n in sorted(faults.items()))
    sends = fake.request_count(endpoint="send")
    return [
        *campaign.count_figures(),
        (
            "packages final",
            f"{summary.completed:,} completed, {summary.failed_packages:,} failed"
            + (f", {summary.unsettled:,} not final" if summary.unsettled else ""),
        ),
        ("estimated credits", f"{campaign.count('estimated_credits'):,}"),
        ("credits charged", f"{summary.charged_credits:,}"),
        ("send requests", f"{sends:,}, of which retries: {sends - campaign.with_rows:,}"),
        ("faults injected", answered or "none"),
        ("send time", f"{campaign.seconds:.2f} s"),
        ("wait time", f"{summary.wait_seconds:.2f} s"),
        ("wall time", f"{summary.seconds:.2f} s"),
        ("messages per second", f"{rows / max(campaign.seconds, 1e-9):,.0f} (sending)"),
        ("matches emulator records", "yes" if not summary.problems else "NO"),
    ]


@click.command()
@click.option(
    "--messages",
    type=click.IntRange(1, 10_000_000),
    default=100_000,
    show_default=True,
    help="Rows in the generated campaign.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 100), default=8, show_default=True)
def demo(messages: int, batch_size: int, concurrency: int) -> int:
    """Run a campaign against the built-in emulator.

    Generated rows go to the emulator on a loopback port, with faults on; nothing leaves this
    machine. Exit status 0 when the result matches the emulator's records.
    """
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise CliError(
            'the demo needs uvicorn: pip install "vairo-async[cli]"', EXIT_USAGE
        ) from None
    state = session()
    summary, fake = run_async(
        run_demo(messages, console=state.err, batch_size=batch_size, concurrency=concurrency)
    )
    title = f"Demo: {messages:,} messages to the emulator, faults on"
    state.out.print(figures(title, demo_figures(summary, fake)))
    for problem in summary.problems:
        state.err.print(f"mismatch: {problem}", markup=False)
    return EXIT_OK if not summary.problems else EXIT_INCOMPLETE
