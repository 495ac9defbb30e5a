"""`vairo-sms`: every subcommand against the emulator on loopback, and every bad-usage case."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result
from rich.console import Console

from tests.support import API_KEY
from vairo_async import __main__ as entry
from vairo_async._cli import cli
from vairo_async._cli.bulk import Report, _bulk
from vairo_async._cli.common import Api, Session, figures
from vairo_async._cli.demo import FAILING_ROW, demo_figures, demo_number, demo_rows, run_demo
from vairo_async._cli.rows import check_file, open_source
from vairo_async._config import BulkSettings
from vairo_async._phone import normalize_number
from vairo_async.testing import FakeVairo, Fault, RandomFaults

ROOT = Path(__file__).resolve().parents[2]

# (to, text) rows of the bulk test's CSV, and the file line each starts on; None marks the
# blank line. Row 4's text spans two lines; bad rows are marked in BAD_LINES.
CSV_ROWS: list[tuple[str, str] | None] = [
    ("0539 999 99 01", "Merhaba Ali"),
    ("+90 539 999 99 02", "Şifreniz 4242"),
    ("905399999903", "İki satırlı\nbir metin"),
    None,
    ("0212 555 12 34", "Sabit hat"),
    ("(0539) 999 9904", "Kampanya başladı 🎉"),
    ("5399999905", "   "),
    ("+44 7911 123456", "Yurt dışı"),
    ("0539-999-9906", "a" * 170),
    ("", "Numarasız satır"),
    *[(f"05399999{n:03d}", f"Mesaj {n}") for n in range(7, 31)],
]
BAD_NUMBERS = {"0212 555 12 34", "+44 7911 123456", ""}


def csv_text() -> tuple[str, dict[int, tuple[str, str]]]:
    """The bulk test's CSV (semicolons, quoted fields) and its data rows by starting line."""
    lines = ["to;text"]
    rows: dict[int, tuple[str, str]] = {}
    for row in CSV_ROWS:
        if row is None:
            lines.append("")
            continue
        rows[sum(entry.count("\n") + 1 for entry in lines) + 1] = row
        to, text = row
        lines.append(f'{to};"{text}"')
    return "\n".join(lines) + "\n", rows


def is_bad(to: str, text: str) -> bool:
    try:
        normalize_number(to)
    except ValueError:
        return True
    return not text.strip()


def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=dict(env or {}), catch_exceptions=False)


async def invoke_async(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Result:
    """Run the command in a thread: it runs its own event loop, the emulator runs on ours."""
    return await asyncio.to_thread(invoke, args, env)


def assert_one_line_error(result: Result, status: int = 2) -> str:
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    # A progress bar that ran before the failure stays on stderr above the line.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("sending ")]
    assert len(lines) == 1, result.stderr
    assert API_KEY not in result.output
    return lines[0]


def table_values(text: str) -> dict[str, str]:
    """A rendered `figures` table as {label: value}."""
    values = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2:
            values[cells[0]] = cells[1]
    return values


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[FakeVairo, dict[str, str]]]:
    """An emulator with a secret-looking key on a loopback port, and the env to reach it."""
    fake = FakeVairo(api_key=API_KEY, complete_after_polls=0)
    async with fake.serve() as url:
        yield fake, {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": url, "VAIRO_SENDER": "ACME"}


# --- demo ---------------------------------------------------------------------------------


async def test_demo_summary_matches_the_emulator_records() -> None:
    rates = {
        Fault.server_error(503): 0.08,
        Fault.rate_limit(retry_after=0): 0.08,
        Fault.server_error(500): 0.04,
        Fault.server_error(502, accepted=True): 0.04,
        Fault.drop_before_accept(): 0.04,
        Fault.drop_after_accept(): 0.04,
        Fault.rate_limit(retry_after=3600): 0.06,
    }
    console = Console(file=io.StringIO())

    summary, fake = await run_demo(
        2000, console=console, batch_size=40, faults=RandomFaults(rates, seed=4, endpoint="send")
    )

    campaign = summary.campaign
    counts = {name: campaign.count(name) for name in ("sent", "failed", "unknown", "rejected")}
    assert sum(counts.values()) == campaign.count("total") == 2000
    assert counts["rejected"] == sum(1 for m in demo_rows(2000) if is_bad(m.to, m.text)) > 0
    # Sent rows are exactly the messages of the packages reported SENT.
    sent_packages = [fake.packages[package_id] for package_id in campaign.package_ids]
    assert counts["sent"] == sum(len(p.messages) for p in sent_packages)
    # Every other accepted message came from a batch reported UNKNOWN; none was sent twice.
    assert len(fake.messages) - counts["sent"] <= counts["unknown"]
    assert fake.duplicates() == {}
    assert counts["unknown"] > 0
    assert counts["failed"] > 0
    # The wait saw every SENT package final, as the emulator has them.
    assert summary.completed == sum(1 for p in sent_packages if p.status == 1)
    assert summary.failed_packages == sum(1 for p in sent_packages if p.status == -1)
    assert summary.completed + summary.failed_packages == len(sent_packages)
    assert summary.charged_credits == sum(p.credits for p in sent_packages if p.status == 1)
    assert campaign.count("estimated_credits") == sum(p.credits for p in sent_packages)
    failing = [p for p in sent_packages if demo_number(FAILING_ROW) in {m.dest for m in p.messages}]
    assert summary.failed_packages == len(failing)
    assert summary.problems == ()

    # The printed table says the same.
    out = io.StringIO()
    Console(file=out, width=120).print(figures("demo", demo_figures(summary, fake)))
    shown = table_values(out.getvalue())
    for name, value in counts.items():
        assert shown[name] == f"{value:,}"
    assert shown["rows"] == "2,000"
    assert shown["packages"] == f"{len(sent_packages):,}"
    assert shown["estimated credits"] == f"{campaign.count('estimated_credits'):,}"
    assert shown["matches emulator records"] == "yes"
    retries = fake.request_count(endpoint="send") - campaign.with_rows
    assert retries > 0
    assert shown["send requests"].endswith(f"retries: {retries:,}")


def test_demo_command_prints_its_table() -> None:
    result = invoke(["demo", "--messages", "600", "--batch-size", "50"])

    assert result.exit_code == 0, result.output
    shown = table_values(result.stdout)
    assert shown["rows"] == "600"
    assert shown["rejected"] == "2"
    assert shown["matches emulator records"] == "yes"


# --- bulk ---------------------------------------------------------------------------------


async def test_bulk_report_reconciles_with_the_csv_and_the_emulator(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    text, rows = csv_text()
    source = tmp_path / "campaign.csv"
    source.write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = tmp_path / "out.jsonl"
    for fault in (
        Fault.server_error(503),
        Fault.drop_after_accept(),
        Fault.rate_limit(retry_after=3600),
        Fault.server_error(500),
    ):
        fake.inject(fault)

    result = await invoke_async(
        ["bulk", str(source), "--report", str(report), "--batch-size", "4", "--concurrency", "1"],
        env,
    )

    assert result.exit_code == 1, result.output  # rows rejected, failed and unknown
    assert API_KEY not in result.output
    records = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert API_KEY not in report.read_text(encoding="utf-8")
    header, *batches, summary = records
    assert header["type"] == "campaign"
    assert header["rows"] == len(rows)
    assert summary["type"] == "summary"
    assert summary["interrupted"] is False

    # Every CSV row appears once, on its own line, with its fate.
    fate: dict[int, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for batch in batches:
        assert batch["type"] == "batch"
        for row in batch["rows"]:
            assert row["line"] not in fate
            fate[row["line"]] = (batch["state"], row, batch)
        for row in batch["rejected"]:
            assert row["line"] not in fate
            fate[row["line"]] = ("rejected", row, batch)
    assert sorted(fate) == sorted(rows)
    for line, (to, body) in rows.items():
        state, row, batch = fate[line]
        assert row["text"] == body
        if is_bad(to, body):
            assert state == "rejected"
            assert row["to"] == to.strip()
            assert row["reason"]
        else:
            assert state in {"sent", "failed", "unknown"}
            assert row["to"] == normalize_number(to)
        if state in {"failed", "unknown"}:
            assert batch["error"]
    assert {fate[line][0] for line in rows} == {"sent", "failed", "unknown", "rejected"}

    # Each SENT batch is the emulator's package, row for row; the rest is unknown or unsent.
    in_fake: dict[int, list[tuple[str, str]]] = {}
    for message in fake.messages:
        in_fake.setdefault(message.package_id, []).append((message.dest, message.text))
    sent_ids = set()
    for batch in batches:
        if batch["state"] == "sent":
            sent_ids.add(batch["package_id"])
            assert in_fake[batch["package_id"]] == [(r["to"], r["text"]) for r in batch["rows"]]
    unknown = {(r["to"], r["text"]) for b in batches if b["state"] == "unknown" for r in b["rows"]}
    failed = {(r["to"], r["text"]) for b in batches if b["state"] == "failed" for r in b["rows"]}
    elsewhere = {
        pair
        for package_id, pairs in in_fake.items()
        if package_id not in sent_ids
        for pair in pairs
    }
    assert elsewhere
    assert elsewhere <= unknown
    assert not failed & {pair for pairs in in_fake.values() for pair in pairs}
    assert fake.duplicates() == {}

    states = [fate[line][0] for line in rows]
    for name in ("sent", "failed", "unknown", "rejected"):
        assert summary[name] == states.count(name)
    assert summary["packages"] == len(sent_ids)
    shown = table_values(result.stdout)
    assert shown["sent"] == str(summary["sent"])
    assert shown["rejected"] == str(summary["rejected"])


async def test_bulk_with_one_text_for_every_row(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = tmp_path / "numbers.csv"
    source.write_text("To\n05399999901\n0539 999 99 02\n", encoding="utf-8")
    key_file = tmp_path / "key"
    key_file.write_text(f"  {API_KEY}\n", encoding="utf-8")
    without_key: dict[str, str | None] = {**env, "VAIRO_API_KEY": None}
    args = ["--text", "Merhaba", "--api-key-file", str(key_file)]

    result = await invoke_async(
        ["bulk", str(source), "--report", str(tmp_path / "r"), *args], without_key
    )

    assert result.exit_code == 0, result.output
    assert [(m.dest, m.text) for m in fake.messages] == [
        ("5399999901", "Merhaba"),
        ("5399999902", "Merhaba"),
    ]


async def test_bulk_writes_the_batches_settled_while_it_is_cancelled(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = tmp_path / "campaign.csv"
    source.write_text("to,text\n" + "".join(f"05399999{n:03d},m{n}\n" for n in range(20)))
    report = tmp_path / "out.jsonl"
    fake.inject(Fault.latency(60), times=20)  # accepted, then no answer for a minute
    campaign: asyncio.Task[int] | None = None

    def cancel_at_the_second_package(_: object) -> None:
        if len(fake.packages) == 1 and campaign is not None:  # this call adds the second
            campaign.cancel()

    fake.fail_when = cancel_at_the_second_package
    api = Api(API_KEY, env["VAIRO_BASE_URL"])
    layout = open_source(source)
    check = check_file(layout)
    settings = BulkSettings(batch_size=3, concurrency=2)
    out = io.StringIO()
    with click.Context(cli, obj=Session(out=Console(file=out, width=120))):
        campaign = asyncio.create_task(_bulk(api, "ACME", layout, check, report, settings))
        with pytest.raises(asyncio.CancelledError):
            await campaign

    records = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    batches = [r for r in records if r["type"] == "batch"]
    assert records[-1]["type"] == "summary"
    assert records[-1]["interrupted"] is True
    states = sorted(b["state"] for b in batches)
    assert states.count("unknown") == 2  # the two in flight, both accepted by the emulator
    assert set(states) == {"unknown", "failed"}
    lines = sorted(r["line"] for b in batches for r in b["rows"])
    assert lines == list(range(2, 2 + len(lines)))  # every row read is in the report
    assert records[-1]["rows"] == len(lines)
    unknown = {r["to"] for b in batches if b["state"] == "unknown" for r in b["rows"]}
    assert {m.dest for m in fake.messages} == unknown
    # The summary says the run was interrupted and how many rows were never read.
    assert records[-1]["not_read"] == 20 - len(lines) > 0
    assert "(interrupted)" in out.getvalue()
    assert table_values(out.getvalue())["interrupted"] == f"yes, {20 - len(lines)} rows not read"


# --- bad usage: exit status 2, one line, no traceback, no key -------------------------------


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing file", "cannot read"),
        ("no to column", "no 'to' column"),
        ("latin-1", "(line 2, byte 0xfc); looks like Windows-1254: pass --encoding cp1254"),
        ("windows-1254", "line 3, byte 0xfe"),
        ("utf-16", "not UTF-8 (a UTF-16 BOM); looks like UTF-16: pass --encoding utf-16"),
        ("no text", "no 'text' column"),
        ("text twice", "--text is for files without one"),
        ("empty text option", "--text is empty"),
        ("header only", "no rows"),
        ("empty file", "no header"),
        ("report exists", "exists"),
        ("no key", "no API key"),
        ("key flag", "--api-key is not accepted"),
        ("key flag with =", "--api-key is not accepted"),
        ("missing key file", "cannot read the API key file"),
        ("empty key file", "is empty"),
        ("no sender", "no sender"),
        ("long sender", "longer than 11"),
        ("bad batch size", "--batch-size"),
        ("remote http", "refusing plain http"),
    ],
)
def test_bulk_bad_usage(case: str, expected: str, tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", b"to,text\n05399999999,Merhaba\n")
    files = {
        "missing file": str(tmp_path / "missing.csv"),
        "no to column": write(tmp_path / "a.csv", b"phone,text\n05399999999,x\n"),
        "latin-1": write(tmp_path / "b.csv", "to,text\n05399999999,Günaydın\n".encode("cp1254")),
        "windows-1254": write(tmp_path / "c.csv", "to,text\n1,a\n2,ş\n".encode("cp1254")),
        "utf-16": write(tmp_path / "d.csv", "to,text\n05399999999,x\n".encode("utf-16")),
        "no text": write(tmp_path / "e.csv", b"to\n05399999999\n"),
        "header only": write(tmp_path / "f.csv", b"to,text\n"),
        "empty file": write(tmp_path / "g.csv", b""),
    }
    report = tmp_path / "report.jsonl"
    args = ["bulk", files.get(case, good), "--report", str(report), "--sender", "ACME"]
    env: dict[str, str | None] = {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": "http://127.0.0.1:9/"}
    extra = {
        "text twice": ["--text", "x"],
        "empty text option": ["--text", " "],
        "key flag": ["--api-key", API_KEY],
        "key flag with =": [f"--api-key={API_KEY}"],
        "missing key file": ["--api-key-file", str(tmp_path / "nope")],
        "empty key file": ["--api-key-file", write(tmp_path / "key", b"\n")],
        "long sender": ["--sender", "ACME-MARKETING"],
        "bad batch size": ["--batch-size", "0"],
        "remote http": ["--base-url", "http://example.com/api/"],
    }
    args += extra.get(case, [])
    if case == "report exists":
        report.write_text("{}\n")
    if case == "no key":
        env["VAIRO_API_KEY"] = None
    if case == "no sender":
        args.remove("--sender")
        args.remove("ACME")

    result = invoke(args, env)

    assert expected in assert_one_line_error(result)
    if case == "report exists":
        assert report.read_text() == "{}\n"
    elif case != "remote http":
        assert not report.exists()


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_a_key_given_as_the_key_file_is_not_printed(where: str, tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", b"to,text\n05399999999,Merhaba\n")
    args = ["bulk", good, "--sender", "ACME", "--base-url", "http://127.0.0.1:9/"]
    env: dict[str, str | None] = {"VAIRO_API_KEY": None}
    if where == "flag":
        args += ["--api-key-file", API_KEY]
    else:
        env["VAIRO_API_KEY_FILE"] = API_KEY
    result = invoke(args, env)
    assert "cannot read the API key file given with --api-key-file" in assert_one_line_error(result)
    assert API_KEY not in result.output
    assert API_KEY[-12:] not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "Missing command"),
        (["nope"], "No such command"),
        (["send", "--text", "x"], "Missing option '--to'"),
        (["send", "--to", "0212 555 12 34", "--text", "x"], "not a Turkish mobile number"),
        (["send", "--to", "05399999999", "--text", " "], "empty text"),
        (["send", "--to", ",", "--text", "x"], "no recipients"),
        (["status", "abc"], "not a valid integer"),
        (["status", "-1"], "No such option '-1'"),
        (["status", "0"], "'ID': 0 is not in the range x>=1"),
        (["wait"], "Missing argument"),
        (["wait", "1", "0"], "'ID...': 0 is not in the range x>=1"),
        (["wait", "1", "--timeout", "-1"], "--timeout"),
        (["segments"], "Missing argument"),
        (["emulator", "--port", "x"], "invalid int value"),
        (["emulator", "--host", "0.0.0.0", "--port", "0"], "non-loopback"),
    ],
)
def test_bad_usage(args: list[str], expected: str) -> None:
    env = {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": "http://127.0.0.1:9/", "VAIRO_SENDER": "A"}
    result = invoke(args, env)

    assert expected in assert_one_line_error(result)


def test_without_the_cli_extra_one_line_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)
    for name in [m for m in sys.modules if m.partition(".")[2].startswith("_cli")]:
        monkeypatch.delitem(sys.modules, name)

    assert entry.main(["demo"]) == 2

    assert (
        capsys.readouterr().err == 'vairo-sms needs the cli extra: pip install "vairo-async[cli]"\n'
    )


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "vairo_async", "segments", "Çiçek"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "GSM7_TURKISH" in result.stdout


# --- send, status, wait, segments -------------------------------------------------------------


async def test_send_and_wait(served: tuple[FakeVairo, dict[str, str]]) -> None:
    fake, env = served
    args = ["--to", "0539 999 99 99", "--to", "+90 555 444 44 44,05321234567", "--text", "Şifre 1"]

    result = await invoke_async(["send", *args, "--wait", "--poll-interval", "0.01"], env)

    assert result.exit_code == 0, result.output
    package_id, final = result.stdout.splitlines()
    assert final == f"{package_id} COMPLETED recipients=3 credits=3"
    assert [m.dest for m in fake.packages[int(package_id)].messages] == [
        "5399999999",
        "5554444444",
        "5321234567",
    ]
    assert API_KEY not in result.output


async def test_send_prints_only_the_id_without_wait(
    served: tuple[FakeVairo, dict[str, str]],
) -> None:
    fake, env = served

    result = await invoke_async(["send", "--to", "5399999999", "--text", "Kod 1"], env)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{fake.messages[0].package_id}\n"


async def test_send_with_an_unknown_outcome_is_one_line_and_status_1(
    served: tuple[FakeVairo, dict[str, str]],
) -> None:
    fake, env = served
    fake.inject(Fault.drop_after_accept())

    result = await invoke_async(["send", "--to", "5399999999", "--text", "Kod 1"], env)

    assert "OutcomeUnknownError" in assert_one_line_error(result, status=1)
    assert len(fake.messages) == 1


async def test_status_and_status_wait(served: tuple[FakeVairo, dict[str, str]]) -> None:
    fake, env = served
    fake.complete_after_polls = 2
    fake.fail_destinations = {"5550000000"}
    sent = await invoke_async(["send", "--to", "5399999999", "--text", "a"], env)
    failing = await invoke_async(["send", "--to", "5550000000", "--text", "b"], env)
    good, bad = sent.stdout.strip(), failing.stdout.strip()

    first = await invoke_async(["status", good], env)
    final = await invoke_async(["status", good, "--wait", "--poll-interval", "0.01"], env)
    failed = await invoke_async(["status", bad, "--wait", "--poll-interval", "0.01"], env)
    missing = await invoke_async(["status", "999"], env)

    assert (first.exit_code, first.stdout) == (0, f"{good} SENDING recipients=1 credits=1\n")
    assert (final.exit_code, final.stdout) == (0, f"{good} COMPLETED recipients=1 credits=1\n")
    assert failed.exit_code == 1
    assert failed.stdout.startswith(f"{bad} FAILED recipients=1 credits=0 failure=")
    assert "INVALID_DESTINATION_ADDRESS" in failed.stdout
    assert "Gönderim bulunamadı" in assert_one_line_error(missing, status=1)


async def test_wait_reports_each_package_as_it_settles(
    served: tuple[FakeVairo, dict[str, str]],
) -> None:
    fake, env = served
    fake.fail_destinations = {"5550000000"}
    ids = []
    for number in ("5399999999", "5550000000"):
        sent = await invoke_async(["send", "--to", number, "--text", "x"], env)
        ids.append(sent.stdout.strip())

    result = await invoke_async(["wait", *ids, "999", "--poll-interval", "0.01"], env)

    assert result.exit_code == 1
    lines = sorted(result.stdout.splitlines())
    assert lines[0] == f"{ids[0]} COMPLETED recipients=1 credits=1"
    assert lines[1].startswith(f"{ids[1]} FAILED recipients=1 credits=0 failure=")
    assert lines[2].startswith("999 ERROR APIError: HTTP 404")
    everything_fine = await invoke_async(["wait", ids[0], "--poll-interval", "0.01"], env)
    assert everything_fine.exit_code == 0


def test_segments_shows_both_costs() -> None:
    result = invoke(["segments", "Sayın müşterimiz, İndirim kodunuz: ÇAĞRI. Teşekkürler."])

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:6]}
    assert rows["encoding"] == ["│", "GSM7_TURKISH", "│", "GSM7"]
    assert rows["units"] == ["│", "59", "│", "54"]
    assert "transliterated: Sayin müsterimiz, Indirim kodunuz: ÇAGRI. Tesekkürler." in result.stdout


async def test_bulk_stops_when_the_report_cannot_be_written(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, env = served
    source = tmp_path / "campaign.csv"
    source.write_text("to,text\n" + "".join(f"05399999{n:03d},m{n}\n" for n in range(10)))
    report = tmp_path / "out.jsonl"
    write = Report.write
    writes = 0

    def full_disk(self: Report, record: dict[str, Any]) -> None:
        nonlocal writes
        writes += 1
        if writes > 2:  # the header and the first batch fit
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, record)

    monkeypatch.setattr(Report, "write", full_disk)
    args = ["bulk", str(source), "--report", str(report), "--batch-size", "2", "--concurrency", "1"]

    result = await invoke_async(args, env)

    line = assert_one_line_error(result, status=1)
    assert "No space left on device" in line
    written = {json.loads(r).get("package_id") for r in report.read_text().splitlines()}
    missing = sorted(set(fake.packages) - written)
    assert missing
    assert line.endswith("packages missing from the report: " + ", ".join(map(str, missing)))


async def test_a_refused_key_from_a_file_is_not_printed(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    _, env = served
    wrong = "sk-live-WRONG-KEY-0000000000"
    key_file = tmp_path / "key"
    key_file.write_text(wrong + "\n", encoding="utf-8")
    without_key: dict[str, str | None] = {**env, "VAIRO_API_KEY": None}

    result = await invoke_async(["status", "1", "--api-key-file", str(key_file)], without_key)

    assert "AuthenticationError" in assert_one_line_error(result, status=1)
    assert wrong not in result.output


def test_an_unreachable_server_is_one_line_without_the_key() -> None:
    env = {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": "http://127.0.0.1:9/", "VAIRO_SENDER": "A"}

    result = invoke(["send", "--to", "5399999999", "--text", "x"], env)

    assert "TransportError" in assert_one_line_error(result, status=1)
