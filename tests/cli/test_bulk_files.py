"""`vairo-sms bulk` with the files Turkish teams export from Excel, end to end on loopback.

Files are written the way Excel writes them: "CSV" in Windows-1254 with `;` and CRLF, and
"CSV UTF-8" with a BOM; Turkish headers and names, numbers in messy spellings, bad numbers,
empty template fields and repeats. Each run is checked against what the emulator received.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import assert_one_line_error, invoke, invoke_async, served, table_values
from tests.support import API_KEY, ROOT
from vairo_async._cli.rows import Template, fold, guess_encoding, open_source
from vairo_async._segments import segments
from vairo_async.testing import FakeVairo, Fault

__all__ = ["served"]  # the emulator fixture, shared with test_cli

HEADER = ("Müşteri No", "Ad Soyad", "Cep Telefonu", "Şehir", "Mesaj")
# (id, name, number as typed, city, message); the comment says what becomes of the row.
CUSTOMERS = [
    ("M-001", "Ayşe Yılmaz", "0532 111 22 33", "İstanbul", "Siparişiniz yola çıktı"),  # sent
    ("M-002", "Çağrı Öztürk", "+90 (533) 444 55 66", "İzmir", "Kargonuz şubede"),  # sent
    ("M-003", "", "05345556677", "Ankara", "Randevunuz yarın"),  # empty name
    ("M-004", "Gül Şahin", "0212 555 12 34", "Bursa", "Sabit hat"),  # landline
    ("M-005", "Ayşe Yılmaz", "532-111-2233", "İstanbul", "Siparişiniz yola çıktı"),  # repeat
    ("M-006", "İbrahim Işık", "905351234567", "Iğdır", "Hoş geldiniz"),  # sent
    ("M-007", "Ümit Güneş", "0 536 765 43 21", "Çorum", "Fatura hazır"),  # sent
    ("M-008", "Şule Ağaoğlu", "5377778899", "Muğla", "İndirim başladı"),  # opted out
    ("M-009", "Öykü Çelik", "12345", "Eskişehir", "Eksik numara"),  # too short
]
WIRE = {
    "M-001": "5321112233",
    "M-002": "5334445566",
    "M-003": "5345556677",
    "M-005": "5321112233",
    "M-006": "5351234567",
    "M-007": "5367654321",
    "M-008": "5377778899",
}
TEMPLATE = "Merhaba {AD SOYAD}, {şehir} mağazamızda %20 indirim! Kod: {{İL-{ŞEHİR}}}"
OPTOUT = "# İYS: ret verenler\n\n+90 (537) 777 88 99\n"


def rendered(ident: str) -> str:
    _, name, _, city, _ = next(c for c in CUSTOMERS if c[0] == ident)
    return f"Merhaba {name}, {city} mağazamızda %20 indirim! Kod: {{İL-{city}}}"


def excel_csv(path: Path, rows: Sequence[Sequence[str]] = CUSTOMERS) -> Path:
    """Excel's "CSV" on a Turkish Windows: Windows-1254, `;`, CRLF."""
    lines = [";".join(HEADER), *(";".join(row) for row in rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1254"))
    return path


def excel_csv_utf8(path: Path, rows: Sequence[Sequence[str]] = CUSTOMERS) -> Path:
    """Excel's "CSV UTF-8": a BOM, `,`, CRLF, fields quoted when they need it."""
    lines = [",".join(HEADER), *(",".join(f'"{cell}"' for cell in row) for row in rows)]
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    return path


def read_report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def report_rows(records: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every row of a report by its id: (state or "rejected", the row's record)."""
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    for record in records:
        found = []
        if record["type"] == "batch":
            found = [(record["state"], row) for row in record["rows"]]
            found += [("rejected", row) for row in record["rejected"]]
        elif record["type"] == "rejected":
            found = [("rejected", record)]
        for state, row in found:
            assert row["id"] not in rows
            rows[row["id"]] = (state, row)
    return rows


def received(fake: FakeVairo) -> list[tuple[str, str]]:
    return sorted((m.dest, m.text) for m in fake.messages)


# --- the Excel exports, every option at once -------------------------------------------------


async def test_a_windows_1254_export_with_template_dedupe_and_exclusions(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = excel_csv(tmp_path / "müşteriler.csv")
    optout = tmp_path / "ret.txt"
    optout.write_text(OPTOUT, encoding="utf-8")
    report = tmp_path / "rapor.jsonl"
    args = [
        *("bulk", str(source), "--report", str(report), "--encoding", "cp1254"),
        *("--to-column", "CEP TELEFONU", "--id-column", "müşteri no", "--template", TEMPLATE),
        *("--dedupe", "--exclude", str(optout), "--batch-size", "2"),
    ]

    result = await invoke_async(args, env)

    assert result.exit_code == 3, result.output  # every valid row sent, some rejected
    sent = ["M-001", "M-002", "M-006", "M-007"]
    assert received(fake) == sorted((WIRE[i], rendered(i)) for i in sent)
    assert any(m.text.startswith("Merhaba İbrahim Işık, Iğdır mağazamızda") for m in fake.messages)
    assert fake.duplicates() == {}
    records = read_report(report)
    rows = report_rows(records)
    assert set(rows) == {c[0] for c in CUSTOMERS}
    assert {i for i, (state, _) in rows.items() if state == "sent"} == set(sent)
    reasons = {i: row["reason"] for i, (state, row) in rows.items() if state == "rejected"}
    assert reasons["M-003"] == "empty 'Ad Soyad' for the template"
    assert "not a Turkish mobile number" in reasons["M-004"]
    assert reasons["M-005"] == "repeats line 2 (same number and text)"
    assert reasons["M-008"] == "to='5377778899': excluded"
    assert "not a Turkish mobile number" in reasons["M-009"]
    for ident, (_, row) in rows.items():
        assert row["line"] == 2 + [c[0] for c in CUSTOMERS].index(ident)
    summary = records[-1]
    assert (summary["sent"], summary["rejected"], summary["repeats"]) == (4, 5, 1)
    assert (summary["rows"], summary["not_read"], summary["interrupted"]) == (9, 0, False)
    shown = table_values(result.stdout)
    assert (shown["sent"], shown["rejected"], shown["repeats"]) == ("4", "5", "1")


async def test_a_csv_utf8_export_with_a_bom_and_a_text_column(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = excel_csv_utf8(tmp_path / "liste.csv")
    report = tmp_path / "rapor.jsonl"
    args = ["--to-column", "cep telefonu", "--text-column", "MESAJ", "--id-column", "MÜŞTERİ NO"]

    result = await invoke_async(["bulk", str(source), "--report", str(report), *args], env)

    assert result.exit_code == 3, result.output
    # Without --dedupe a repeat goes out again, and the command says so first.
    sent = ["M-001", "M-002", "M-003", "M-005", "M-006", "M-007", "M-008"]
    texts = {c[0]: c[4] for c in CUSTOMERS}
    assert received(fake) == sorted((WIRE[i], texts[i]) for i in sent)
    assert "rows repeating an earlier row's number and text: 1;" in result.stderr
    rows = report_rows(read_report(report))
    assert {i for i, (state, _) in rows.items() if state == "rejected"} == {"M-004", "M-009"}
    assert rows["M-002"][1] == {
        "line": 3,
        "id": "M-002",
        "to": "5334445566",
        "text": "Kargonuz şubede",
    }
    assert read_report(report)[-1]["repeats"] == 1


async def test_utf16_export_is_read_with_its_encoding(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    source = tmp_path / "unicode.csv"  # Excel's "Unicode Text": UTF-16 with a BOM, tabs
    lines = ["\t".join(HEADER), *("\t".join(c) for c in CUSTOMERS[:2])]
    source.write_bytes("\r\n".join(lines).encode("utf-16"))
    args = ["--encoding", "utf-16", "--to-column", "Cep Telefonu", "--text-column", "Mesaj"]

    refused = await invoke_async(["bulk", str(source), "--report", str(tmp_path / "a")], env)
    result = await invoke_async(["bulk", str(source), "--report", str(tmp_path / "b"), *args], env)

    assert "looks like UTF-16: pass --encoding utf-16" in assert_one_line_error(refused)
    assert result.exit_code == 0, result.output
    assert received(fake) == [("5321112233", CUSTOMERS[0][4]), ("5334445566", CUSTOMERS[1][4])]


# --- encodings and separators ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Müşteri;Şehir\r\n1;Iğdır … “özel” €\r\n".encode("cp1254"), "cp1254"),
        ("Ad;Soyad\r\nGül;Öz\r\n".encode("cp1254"), "cp1254"),  # no 0x80-0x9F byte: a tie
        ("Müşteri;Şehir\r\nAyşe;Iğdır\r\n".encode("cp857"), "cp857"),
        ("Müşteri;Şehir\r\n".encode("utf-16"), "utf-16"),
        ("Müşteri;Şehir\r\n".encode("utf-16-le"), "utf-16-le"),
        ("Müşteri;Şehir\r\n".encode("utf-32"), "utf-32"),
    ],
)
def test_the_likely_encoding_of_a_file_that_is_not_utf8(data: bytes, expected: str) -> None:
    guess = guess_encoding(data)

    assert guess is not None
    assert guess[0] == expected
    assert data.decode(expected).replace("\ufeff", "").startswith(("Müşteri", "Ad"))


@pytest.mark.parametrize(
    ("encoding", "data", "expected"),
    [
        (None, "to;text\r\n05321112233;Şifreniz\r\n".encode("cp1254"), "Windows-1254"),
        (None, "to;text\r\n05321112233;Şifreniz\r\n".encode("cp857"), "DOS Turkish (cp857)"),
        ("cp1254", "to;text\r\n05321112233;Şifreniz\r\n".encode(), "looks like UTF-8"),
        ("klingon", b"to;text\r\n05321112233;x\r\n", "unknown encoding"),
        ("ascii", "to;text\r\n05321112233;Şifre\r\n".encode("cp1254"), "is not ascii text"),
    ],
)
def test_a_wrong_encoding_is_refused_before_anything_is_sent(
    tmp_path: Path, encoding: str | None, data: bytes, expected: str
) -> None:
    source = tmp_path / "x.csv"
    source.write_bytes(data)
    report = tmp_path / "r.jsonl"
    env = {"VAIRO_API_KEY": API_KEY, "VAIRO_BASE_URL": "http://127.0.0.1:9/", "VAIRO_SENDER": "A"}
    extra = [] if encoding is None else ["--encoding", encoding]

    result = invoke(["bulk", str(source), "--report", str(report), *extra], env)

    assert expected in assert_one_line_error(result)
    assert not report.exists()


def test_the_separator_is_the_one_the_header_uses_most(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text('"Ad, Soyad";to;text\n"Öz, Gül";5321112233;Merhaba\n', encoding="utf-8")

    layout = open_source(source)

    assert layout.delimiter == ";"
    assert layout.header == ("Ad, Soyad", "to", "text")


def test_header_names_fold_turkish_aware() -> None:
    assert fold("CEP TELEFONU") == fold("Cep Telefonu") == fold("cep  telefonu ")
    assert fold("MÜŞTERİ NO") == fold("Müşteri No") == fold("müşteri no")
    assert fold("İL") == fold("il") == fold("IL") == fold("ıl")  # I ı İ i: one letter
    assert fold("Şehir") == fold("ŞEHİR") != fold("Sehir")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--to-column", "Telefon"], "has no 'Telefon' column; its columns: Müşteri No, Ad Soyad"),
        ([], "has no 'to' column (pass --to-column NAME)"),
        (["--to-column", "cep telefonu"], "no 'text' column: add one, or pass --text-column"),
        (["--to-column", "cep telefonu", "--id-column", "No"], "has no 'No' column"),
        (["--to-column", "cep telefonu", "--text-column", "Mesaj", "--text", "x"], "exclude"),
    ],
)
def test_missing_columns_are_named(tmp_path: Path, args: list[str], expected: str) -> None:
    source = excel_csv(tmp_path / "x.csv", CUSTOMERS[:1])
    source.write_bytes(
        source.read_bytes().decode("cp1254").replace(";Mesaj", ";Not").encode("cp1254")
    )
    env = {"VAIRO_API_KEY": API_KEY, "VAIRO_SENDER": "A"}

    result = invoke(["bulk", str(source), "--encoding", "cp1254", "--dry-run", *args], env)

    assert expected in assert_one_line_error(result)


def test_two_columns_matching_one_name_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("İl,IL,text\nİstanbul,x,5321112233\n", encoding="utf-8")

    result = invoke(["bulk", str(source), "--dry-run", "--to-column", "il"])

    assert "2 columns match 'il'" in assert_one_line_error(result)


# --- templates -------------------------------------------------------------------------------


def test_a_template_evaluates_placeholders_only() -> None:
    template = Template.parse("{{a}} {Ad.upper} {Ad[0]} {Ad:>9} {Ad!r} }}{{ {ad}")

    assert template.fields == ("Ad.upper", "Ad[0]", "Ad:>9", "Ad!r", "ad")
    text, empty = template.render(["1", "2", "3", "{Şehir}", ""])
    assert (text, empty) == ("{a} 1 2 3 {Şehir} }{ ", (4,))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Merhaba {Adı}", "template: {Adı} is not a column of"),
        ("Merhaba {Ad Soyad:>10}", "{Ad Soyad:>10} is not a column"),
        ("Merhaba {Ad Soyad.upper}", "{Ad Soyad.upper} is not a column"),
        ("Merhaba {Ad Soyad", "lone '{' at character 9; write {{ for a literal brace"),
        ("Merhaba } {Ad Soyad}", "lone '}' at character 9"),
        ("Merhaba {}", "empty placeholder"),
        (" ", "--template is empty"),
    ],
)
async def test_a_bad_template_is_refused_before_anything_is_sent(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, template: str, expected: str
) -> None:
    fake, env = served
    source = excel_csv(tmp_path / "x.csv")
    report = tmp_path / "r.jsonl"
    args = ["--encoding", "cp1254", "--to-column", "Cep Telefonu", "--template", template]

    result = await invoke_async(["bulk", str(source), "--report", str(report), *args], env)

    assert expected in assert_one_line_error(result)
    assert len(fake.requests) == 0
    assert not report.exists()


async def test_a_template_file(served: tuple[FakeVairo, dict[str, str]], tmp_path: Path) -> None:
    fake, env = served
    source = excel_csv(tmp_path / "x.csv", CUSTOMERS[:2])
    template = tmp_path / "mesaj.txt"
    template.write_text("Sayın {Ad Soyad},\n{{kampanya}} başladı.\n", encoding="utf-8")
    args = ["--encoding", "cp1254", "--to-column", "Cep Telefonu", "--template-file", str(template)]

    result = await invoke_async(["bulk", str(source), "--report", str(tmp_path / "r"), *args], env)

    assert result.exit_code == 0, result.output
    assert received(fake) == [
        ("5321112233", "Sayın Ayşe Yılmaz,\n{kampanya} başladı."),
        ("5334445566", "Sayın Çağrı Öztürk,\n{kampanya} başladı."),
    ]


# --- the exclusion list ----------------------------------------------------------------------


def test_a_bad_exclusion_line_is_named(tmp_path: Path) -> None:
    source = excel_csv(tmp_path / "x.csv")
    optout = tmp_path / "ret.txt"
    optout.write_text("# ret\n05321112233\n0212 555 12 34\n", encoding="utf-8")
    args = ["--encoding", "cp1254", "--to-column", "Cep Telefonu", "--text-column", "Mesaj"]

    result = invoke(["bulk", str(source), "--dry-run", "--exclude", str(optout), *args])

    line = assert_one_line_error(result)
    assert f"{optout} line 3: '0212 555 12 34': not a Turkish mobile number" in line


# --- the dry run -----------------------------------------------------------------------------


async def test_the_dry_run_sends_nothing_and_prices_what_the_real_run_sends(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    long_text = "Çok uzun bir kampanya metni: " + "ş" * 160
    rows = [*CUSTOMERS, ("M-010", "Can Ak", "05381112233", "Van", long_text)]
    source = excel_csv(tmp_path / "x.csv", rows)
    optout = tmp_path / "ret.txt"
    optout.write_text(OPTOUT, encoding="utf-8")
    report = tmp_path / "r.jsonl"
    args = [
        *("--encoding", "cp1254", "--to-column", "Cep Telefonu", "--id-column", "Müşteri No"),
        *("--template", "{Mesaj} {Ad Soyad} 🎉", "--dedupe", "--exclude", str(optout)),
    ]
    no_key = {**env, "VAIRO_API_KEY": None}

    dry = await invoke_async(
        ["bulk", str(source), "--report", str(report), "--dry-run", *args], no_key
    )

    assert dry.exit_code == 3, dry.output
    assert len(fake.requests) == 0
    assert not report.exists()
    shown = table_values(dry.stdout)
    assert shown["rows"] == "10"
    assert shown["valid rows"] == "5"
    assert shown["rejected rows"] == "5"
    assert shown["rejected: not a Turkish mobile number"] == "2"
    assert shown["rejected: empty 'Ad Soyad' for the template"] == "1"
    assert shown["rejected: excluded"] == "1"
    assert shown["rejected: repeat of an earlier row"] == "1"
    assert shown["repeats"] == "1"
    assert shown["encoding"] == "cp1254"
    assert shown["separator"] == "semicolon"
    valid = ["M-001", "M-002", "M-006", "M-007", "M-010"]
    texts = [f"{c[4]} {c[1]} 🎉" for c in rows if c[0] in valid]
    credits = sum(segments(text).count for text in texts)
    assert shown["estimated credits"] == str(credits)
    assert "│ UCS-2    │        1 │    4 │       4 │" in dry.stdout.replace("─", "")
    assert "│ UCS-2    │        3 │    1 │       3 │" in dry.stdout

    real = await invoke_async(["bulk", str(source), "--report", str(report), *args], env)

    assert real.exit_code == 3, real.output
    assert received(fake) == sorted(
        (WIRE.get(c[0], "5381112233"), f"{c[4]} {c[1]} 🎉") for c in rows if c[0] in valid
    )
    assert read_report(report)[-1]["estimated_credits"] == credits


def test_a_clean_file_dry_runs_with_status_0_and_no_key(tmp_path: Path) -> None:
    source = excel_csv_utf8(tmp_path / "x.csv", [CUSTOMERS[0], CUSTOMERS[1]])

    result = invoke(
        ["bulk", str(source), "--dry-run", "--to-column", "cep telefonu", "--text-column", "mesaj"]
    )

    assert result.exit_code == 0, result.output
    shown = table_values(result.stdout)
    assert (shown["valid rows"], shown["rejected rows"], shown["estimated credits"]) == (
        "2",
        "0",
        "2",
    )
    assert "│ Turkish shift │        1 │    2 │       2 │" in result.stdout


def test_a_real_run_needs_a_report(tmp_path: Path) -> None:
    source = excel_csv_utf8(tmp_path / "x.csv", [CUSTOMERS[0]])
    env = {"VAIRO_API_KEY": API_KEY, "VAIRO_SENDER": "A"}

    result = invoke(["bulk", str(source), "--to-column", "cep telefonu"], env)

    assert "Missing option '--report' (needed unless --dry-run)" in assert_one_line_error(result)


# --- exit statuses ---------------------------------------------------------------------------


async def test_exit_statuses_and_ids_in_every_state(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served
    good = [c for c in CUSTOMERS if c[0] in {"M-001", "M-002", "M-006", "M-007"}]
    clean = excel_csv_utf8(tmp_path / "clean.csv", good)
    mixed = excel_csv_utf8(tmp_path / "mixed.csv")
    args = ["--to-column", "cep telefonu", "--text-column", "mesaj", "--id-column", "müşteri no"]
    one_by_one = [*args, "--batch-size", "1", "--concurrency", "1"]

    def run(source: Path, name: str, extra: list[str]) -> Any:
        report = tmp_path / name
        return invoke_async(["bulk", str(source), "--report", str(report), *extra], env)

    everything = await run(clean, "0.jsonl", args)
    some_rejected = await run(mixed, "3.jsonl", args)
    fake.inject(Fault.server_error(500))  # the first batch: unknown
    fake.inject(Fault.rate_limit(retry_after=3600))  # the second: failed
    some_unknown = await run(mixed, "1.jsonl", one_by_one)

    assert everything.exit_code == 0, everything.output
    assert some_rejected.exit_code == 3, some_rejected.output
    assert some_unknown.exit_code == 1, some_unknown.output
    rows = report_rows(read_report(tmp_path / "1.jsonl"))
    assert set(rows) == {c[0] for c in CUSTOMERS}
    states = {state for state, _ in rows.values()}
    assert states == {"sent", "failed", "unknown", "rejected"}
    for ident, (_, row) in rows.items():
        assert row["id"] == ident


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_ctrl_c_and_sigterm_exit_130_saying_how_many_rows_were_not_read(
    served: tuple[FakeVairo, dict[str, str]], tmp_path: Path, signum: signal.Signals
) -> None:
    fake, env = served
    rows = [(f"M-{n:03d}", f"Müşteri {n}", f"0539 999 {n:04d}", "Van", "Şifre") for n in range(40)]
    source = excel_csv(tmp_path / "x.csv", rows)
    report = tmp_path / "r.jsonl"
    fake.inject(Fault.latency(60), times=40)  # accepted, then no answer for a minute
    accepted = asyncio.Event()

    def note(_: object) -> None:
        accepted.set()

    fake.fail_when = note
    args = [
        *("-m", "vairo_async", "bulk", str(source), "--report", str(report)),
        *("--encoding", "cp1254", "--to-column", "Cep Telefonu", "--text-column", "Mesaj"),
        *("--batch-size", "2", "--concurrency", "1"),
    ]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env={**os.environ, **env, "COLUMNS": "120"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(accepted.wait(), 30)
    process.send_signal(signum)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130, stderr.decode()
    assert stderr.decode().splitlines()[-1] == "vairo-sms: interrupted"
    summary = read_report(report)[-1]
    assert summary["interrupted"] is True
    assert summary["unknown"] == 2
    assert summary["not_read"] == 40 - summary["rows"] > 0
    out = stdout.decode()
    assert "(interrupted)" in out
    assert table_values(out)["interrupted"] == f"yes, {summary['not_read']} rows not read"
