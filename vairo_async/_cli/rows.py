"""Campaign files as Turkish teams export them: reading, matching, templates, checks.

Everything a command needs to turn a CSV file into rows lives here, so `bulk` and any later
command read files the same way: the encoding (UTF-8 unless told otherwise, with a guess
when it is not), the separator, header names matched case-insensitively with I ı İ i as one
letter, `{Column}` templates, an exclusion list, repeated rows, and the whole-file check
that runs before anything is sent.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import attrs

from .._models import Message
from .._phone import normalize_number
from .._segments import Encoding, segments
from .._validate import check_message, describe
from .common import CliError

__all__ = [
    "ByteLines",
    "CsvSource",
    "FileCheck",
    "Row",
    "RowRef",
    "Template",
    "check_file",
    "file_digest",
    "fold",
    "guess_encoding",
    "iter_rows",
    "open_source",
    "read_exclusions",
    "read_template_file",
    "resolve_text",
]

_DELIMITERS = ",;\t"
_QUOTED = re.compile(r'"[^"]*"')
# I, ı, İ and i are one letter for matching: Turkish and English casing disagree about them.
_I_FOLD = str.maketrans({"İ": "i", "I": "i", "ı": "i"})
_TURKISH_LETTERS = frozenset("çğıöşüÇĞİÖŞÜ")
# Single-byte encodings a Turkish file may be in, in order of preference on a tie (Excel on
# Windows writes Windows-1254; ISO-8859-9 decodes 0xA0-0xFF the same way; cp857 is DOS).
_SINGLE_BYTE = (
    ("cp1254", "Windows-1254"),
    ("iso-8859-9", "ISO-8859-9"),
    ("cp857", "DOS Turkish (cp857)"),
)
_SAMPLE = 1 << 20


def fold(name: str) -> str:
    """`name` for matching: whitespace collapsed, I ı İ i made one letter, case folded."""
    return unicodedata.normalize("NFC", " ".join(name.split())).translate(_I_FOLD).casefold()


# --- encodings ------------------------------------------------------------------------------


def guess_encoding(data: bytes) -> tuple[str, str] | None:
    """The likely encoding of bytes that are not UTF-8: (codec name, label), or None.

    A BOM or a pattern of NUL bytes says UTF-16 (or UTF-32). Otherwise each single-byte
    Turkish encoding that can decode the bytes is scored by the Turkish letters it yields,
    less the control characters it yields; the best wins, Windows-1254 on a tie.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32", "UTF-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16"
    if data.count(0) * 4 >= len(data) > 0:
        if data[1::2].count(0) > data[0::2].count(0):  # ASCII in UTF-16-LE: "a\0b\0"
            return "utf-16-le", "UTF-16 (little-endian, no BOM)"
        return "utf-16-be", "UTF-16 (big-endian, no BOM)"
    best: tuple[int, str, str] | None = None
    for codec, label in _SINGLE_BYTE:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        letters = sum(1 for char in text if char in _TURKISH_LETTERS)
        controls = sum(
            1 for char in text if unicodedata.category(char) == "Cc" and char not in "\r\n\t"
        )
        score = letters - 10 * controls
        if best is None or score > best[0]:
            best = (score, codec, label)
    return None if best is None else (best[1], best[2])


def _codec(encoding: str | None) -> str:
    """The codec to read with: UTF-8 (a BOM stripped) unless `encoding` names another."""
    if encoding is None:
        return "utf-8-sig"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise CliError(f"--encoding {encoding!r}: unknown encoding (try cp1254)") from None
    return "utf-8-sig" if name == "utf-8" else name


def _undecodable(path: Path) -> str:
    """Where a file stops being UTF-8: `line N, byte 0xXX`. UTF-8 never puts \\n in a character."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}, byte 0x{line[exc.start]:02x}"
    return "a line"


def _not_utf8(path: Path) -> CliError:
    """The one-line refusal of a file that is not UTF-8, naming the likely encoding."""
    with path.open("rb") as file:
        sample = file.read(_SAMPLE)
    guess = guess_encoding(sample)
    where = "a UTF-16 BOM" if guess is not None and guess[0] == "utf-16" else _undecodable(path)
    advice = (
        f"looks like {guess[1]}: pass --encoding {guess[0]}"
        if guess is not None
        else "save it as UTF-8, or pass --encoding NAME"
    )
    return CliError(f"{path} is not UTF-8 ({where}); {advice}")


def _decode_error(path: Path, codec: str, exc: UnicodeDecodeError) -> CliError:
    if codec == "utf-8-sig":
        return _not_utf8(path)
    byte = exc.object[exc.start : exc.start + 1].hex()
    return CliError(f"{path} is not {codec} text (byte 0x{byte}: {exc.reason}); check --encoding")


def _check_not_utf8(path: Path, codec: str) -> None:
    """Refuse a single-byte `--encoding` for a file that is plainly UTF-8 (it would garble)."""
    if codecs.lookup(codec).name.startswith(("utf", "mbcs")):
        return
    with path.open("rb") as file:
        sample = file.read(_SAMPLE)
    if sample.isascii():
        return
    with contextlib.suppress(UnicodeDecodeError):
        sample.decode("utf-8")
        raise CliError(f"{path} looks like UTF-8, not {codec}: leave out --encoding")


# --- templates ------------------------------------------------------------------------------


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@attrs.frozen
class Template:
    """A message text with `{Column Name}` placeholders; `{{` and `}}` are literal braces.

    Nothing else is evaluated: no attribute access, indexing or format specs, so a value
    or a name holding `.`, `[` or `:` is just text.

    Attributes:
        source: The template as written.
        fields: The placeholder names, each once, in order of first use.
        parts: Literal strings, and indices into `fields` where a value goes.
    """

    source: str
    fields: tuple[str, ...]
    parts: tuple[str | int, ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """Read a template.

        Raises:
            CliError: A lone `{` or `}`, or an empty placeholder; exit status 2.
        """
        fields: list[str] = []
        folded: list[str] = []
        parts: list[str | int] = []
        literal: list[str] = []
        at = 0
        for match in _TOKEN.finditer(source):
            literal.append(source[at : match.start()])
            at = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            name = match.group(1)
            if name is None:
                raise CliError(
                    f"template: lone {token!r} at character {match.start() + 1}; "
                    f"write {token * 2} for a literal brace"
                )
            if not name.strip():
                raise CliError("template: empty placeholder {}; name a column, as {Ad Soyad}")
            key = fold(name)
            if key not in folded:
                folded.append(key)
                fields.append(name.strip())
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(folded.index(key))
        literal.append(source[at:])
        if any(literal):
            parts.append("".join(literal))
        return cls(source, tuple(fields), tuple(parts))

    def render(self, values: Sequence[str]) -> tuple[str, tuple[int, ...]]:
        """The text with `values` (one per field, in order) put in, and the empty fields'
        indices."""
        if len(values) != len(self.fields):
            raise ValueError(f"{len(self.fields)} values expected, not {len(values)}")
        empty = tuple(i for i, value in enumerate(values) if not value)
        text = "".join(part if isinstance(part, str) else values[part] for part in self.parts)
        return text, empty


def read_template_file(path: Path) -> str:
    """A template from a UTF-8 file (a BOM is fine), its final line break dropped.

    Raises:
        CliError: The file is missing, unreadable or not UTF-8; exit status 2.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text.removesuffix("\n").removesuffix("\r")


def resolve_text(text: str | None, template: str | None, template_file: Path | None) -> str | None:
    """Check `--text`, `--template` and `--template-file`; the template's source, if any.

    Raises:
        CliError: A text or template is empty, both template options are given, or the
            template file cannot be read; exit status 2.
    """
    if text is not None and not text.strip():
        raise CliError("--text is empty")
    if template is not None and template_file is not None:
        raise CliError("--template and --template-file exclude each other: give one")
    if template_file is not None:
        template = read_template_file(template_file)
    if template is not None and not template.strip():
        raise CliError("--template is empty")
    return template


# --- the exclusion list ---------------------------------------------------------------------


def read_exclusions(path: Path) -> frozenset[str]:
    """The numbers of an exclusion file, in wire form: one a line, any spelling.

    Blank lines and lines starting with `#` are skipped.

    Raises:
        CliError: The file is unreadable, not UTF-8, or a line is not a Turkish mobile
            number (named with its line); exit status 2.
    """
    numbers: set[str] = set()
    try:
        with path.open(encoding="utf-8-sig") as file:
            for number, line in enumerate(file, start=1):
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                try:
                    numbers.add(normalize_number(entry))
                except ValueError as exc:
                    raise CliError(f"{path} line {number}: {entry!r}: {exc}") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return frozenset(numbers)


# --- the file -------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """The SHA-256 hex digest of the file's bytes: what a rerun must find unchanged.

    Raises:
        CliError: The file cannot be read; exit status 2.
    """
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


@attrs.frozen
class CsvSource:
    """A campaign file whose header has been read and matched.

    Attributes:
        path: The file.
        codec: The codec it is read with (`utf-8-sig` by default).
        delimiter: The separator: comma, semicolon or tab.
        header: The column names as written.
        to_column: Index of the number column.
        text_column: Index of the text column; None with `text` or `template`.
        id_column: Index of the id column, or None.
        text: The one text of every row (`--text`), or None.
        template: The template the texts are made from, or None.
        template_columns: Index of each template field's column.
    """

    path: Path
    codec: str
    delimiter: str
    header: tuple[str, ...]
    to_column: int
    text_column: int | None
    id_column: int | None = None
    text: str | None = None
    template: Template | None = None
    template_columns: tuple[int, ...] = ()

    @property
    def encoding_label(self) -> str:
        """The encoding, as a person would name it."""
        return "UTF-8" if self.codec == "utf-8-sig" else self.codec


def _delimiter(line: str) -> str:
    """The separator a header line uses most, quoted names aside; a comma on a tie."""
    bare = _QUOTED.sub("", line)
    counts = [(bare.count(d), -i, d) for i, d in enumerate(_DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


def _records(
    file: Iterable[str], delimiter: str, first_line: int = 1
) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank CSV record with the file line it starts on (quoted fields may span).

    `first_line` is the file line of the first line given (a shard starts mid-file).
    """
    reader = csv.reader(file, delimiter=delimiter)
    start = first_line
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield start, cells
        start = first_line + reader.line_num


def _column(path: Path, header: Sequence[str], name: str, option: str) -> int:
    """The index of the column called `name`, matched as `fold` does."""
    key = fold(name)
    found = [i for i, column in enumerate(header) if fold(column) == key]
    if len(found) > 1:
        raise CliError(f"{path}: {len(found)} columns match {name!r}; rename one of them")
    if not found:
        hint = f" (pass {option} NAME)" if option else ""
        raise CliError(
            f"{path} has no {name!r} column{hint}; its columns: {', '.join(header) or 'none'}"
        )
    return found[0]


def open_source(
    path: Path,
    *,
    encoding: str | None = None,
    to_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    text: str | None = None,
    template: Template | None = None,
) -> CsvSource:
    """Read a file's header and match the columns the campaign needs.

    Without `encoding` the file must be UTF-8 (a BOM is fine). The number column is
    `to_column` (default `to`); the text comes from `text`, `template` or a column
    (`text_column`, default `text`): exactly one of them.

    Raises:
        CliError: The file is missing or unreadable, in another encoding (the likely one
            named), has no header, lacks a column, or a template names an unknown column;
            one line each, exit status 2.
    """
    chosen = [n for n, v in (("--text", text), ("--template", template)) if v is not None]
    if text_column is not None:
        chosen.append("--text-column")
    if len(chosen) > 1:
        raise CliError(f"{' and '.join(chosen)} exclude each other: give one")
    codec = _codec(encoding)
    try:
        if encoding is not None:
            _check_not_utf8(path, codec)
        with path.open(encoding=codec, newline="") as file:
            first = file.readline().removeprefix("\ufeff")
            if not first.strip():
                raise CliError(f"{path} has no header line: expected a 'to' column")
            delimiter = _delimiter(first)
            header = tuple(cell.strip() for cell in next(_records([first], delimiter))[1])
    except UnicodeDecodeError as exc:
        raise _decode_error(path, codec, exc) from None
    except csv.Error as exc:
        raise CliError(f"{path} is not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    to_index = _column(path, header, to_column or "to", "" if to_column else "--to-column")
    id_index = None if id_column is None else _column(path, header, id_column, "")
    text_index = None
    fields: tuple[int, ...] = ()
    if template is not None:
        unknown = [n for n in template.fields if fold(n) not in {fold(c) for c in header}]
        if unknown:
            raise CliError(
                f"template: {', '.join('{' + n + '}' for n in unknown)} "
                f"{'is not a column' if len(unknown) == 1 else 'are not columns'} of {path}; "
                f"its columns: {', '.join(header)}"
            )
        fields = tuple(_column(path, header, n, "") for n in template.fields)
    elif text is None:
        has_text = "text" in {fold(c) for c in header}
        if text_column is None and not has_text:
            raise CliError(
                f"{path} has no 'text' column: add one, or pass --text-column, --text or --template"
            )
        text_index = _column(path, header, text_column or "text", "")
    elif "text" in {fold(c) for c in header}:
        raise CliError(f"{path} has a 'text' column; --text is for files without one")
    return CsvSource(
        path, codec, delimiter, header, to_index, text_index, id_index, text, template, fields
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RowRef:
    """What the command keeps on each `Message.ref`: where the row came from.

    A dataclass rather than attrs, so that orjson writes it as `{"line": N, "id": ...}`:
    a journaled campaign keeps its batches' refs in each batch record's `meta["refs"]`,
    which `vairo-sms journal unknown` shows.

    Attributes:
        line: The file line the row starts on.
        id: The row's `--id-column` value, or None.
    """

    line: int
    id: str | None = None


@attrs.frozen
class Row:
    """One data row, read and checked.

    Attributes:
        line: The file line the row starts on.
        id: The `--id-column` value (stripped), None without one or when it is empty.
        to: The number in wire form when valid, else as written (stripped).
        text: The text to send: the column's, `--text`, or the rendered template.
        reason: Why the row will be rejected, or None.
        kind: The reason's short name, for the check's table of reasons.
        own: Rejected by the command (template field, repeat), not by the SDK's row check.
        repeat_of: The line of the earlier row with the same number and text, or None.
    """

    line: int
    id: str | None
    to: str
    text: str
    reason: str | None = None
    kind: str | None = None
    own: bool = False
    repeat_of: int | None = None

    def message(self) -> Message:
        """The row as the `Message` to send, its line and id on `ref`."""
        return Message(to=self.to, text=self.text, ref=RowRef(self.line, self.id))


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _sdk_problem(to: str, text: str) -> tuple[str, str] | None:
    """The SDK's reason for rejecting this row, and its short name; None if it is fine."""
    try:
        check_message(Message(to=to, text=text))
    except ValueError as exc:
        try:
            normalize_number(to)
        except ValueError as number:
            return str(exc), str(number).split(" (")[0]
        kind = "empty text" if not text.strip() else "text no SMS can carry"
        return str(exc), kind
    return None


def _key(to: str, text: str) -> int:
    """A compact key for a (number, text) pair: 8 bytes of BLAKE2b, memory flat per row."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(to.encode())
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest(), "big")


class ByteLines:
    """A binary file's lines, decoded, counting the bytes and lines read so far.

    Read through `iter_rows(lines=...)`, `position` is the byte offset just past the last
    record yielded: a record boundary, quoted line breaks included, to cut a file at.
    Only for encodings where a line break is the byte 0x0A (UTF-8, the single-byte ones).
    """

    def __init__(self, file: BinaryIO, codec: str, *, start: int = 0, end: int | None = None):
        self._file = file
        self._decoder = codecs.getincrementaldecoder(codec)()
        self._end = end
        #: Bytes read, counted from the start of the file.
        self.position = start
        #: Lines read.
        self.lines = 0

    @staticmethod
    def supports(codec: str) -> bool:
        """Whether lines of `codec` text split on the byte 0x0A."""
        try:
            return '\n,;\t"'.encode(codec).removeprefix(codecs.BOM_UTF8) == b'\n,;\t"'
        except UnicodeError:  # pragma: no cover - every codec encodes ASCII
            return False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._end is not None and self.position >= self._end:
            raise StopIteration
        limit = -1 if self._end is None else self._end - self.position
        data = self._file.readline(limit)
        if not data:
            raise StopIteration
        self.position += len(data)
        self.lines += 1
        return self._decoder.decode(data)


def iter_rows(
    source: CsvSource,
    *,
    exclude: frozenset[str] = frozenset(),
    dedupe: bool = False,
    lines: Iterable[str] | None = None,
    first_line: int = 1,
) -> Iterator[Row]:
    """Read the file lazily, yielding each data row checked.

    A row's reason is, in this order: an empty template field (rejected by the command),
    the SDK's row check (a bad number, an empty text), an excluded number, and with
    `dedupe` a repeat of an earlier row's number and text (rejected by the command).
    With `lines`, those lines are read instead of the file: the whole file (header first)
    when `first_line` is 1, else a shard of data rows starting at file line `first_line`.

    Raises:
        CliError: The file cannot be decoded or parsed (exit status 2).
    """
    seen: dict[int, int] = {}
    try:
        with contextlib.ExitStack() as stack:
            if lines is None:
                lines = stack.enter_context(source.path.open(encoding=source.codec, newline=""))
            records = _records(lines, source.delimiter, first_line)
            if first_line == 1:
                next(records, None)
            for line, cells in records:
                yield _row(source, line, cells, exclude, dedupe, seen)
    except UnicodeDecodeError as exc:
        raise _decode_error(source.path, source.codec, exc) from None
    except csv.Error as exc:
        raise CliError(f"{source.path} is not a readable CSV file: {exc}") from None


def _row(
    source: CsvSource,
    line: int,
    cells: list[str],
    exclude: frozenset[str],
    dedupe: bool,
    seen: dict[int, int],
) -> Row:
    written = _cell(cells, source.to_column).strip()
    to = written
    with contextlib.suppress(ValueError):  # the check below names the reason
        to = normalize_number(written)
    ident = _cell(cells, source.id_column).strip() or None
    empty: tuple[int, ...] = ()
    if source.template is not None:
        values = [_cell(cells, i).strip() for i in source.template_columns]
        text, empty = source.template.render(values)
    elif source.text is not None:
        text = source.text
    else:
        text = _cell(cells, source.text_column)
    problem = _sdk_problem(to, text)
    if empty:
        names = ", ".join(repr(source.header[source.template_columns[i]]) for i in empty)
        reason = f"empty {names} for the template"
        if problem is not None:
            reason += f"; {problem[0]}"
        return Row(line, ident, to, text, reason, f"empty {names} for the template", own=True)
    if problem is not None:
        return Row(line, ident, to, text, problem[0], problem[1])
    if to in exclude:
        return Row(line, ident, to, text, f"to={describe(to)}: excluded", "excluded")
    key = _key(to, text)
    first = seen.setdefault(key, line)
    if first == line:
        return Row(line, ident, to, text)
    if dedupe:
        reason = f"repeats line {first} (same number and text)"
        kind = "repeat of an earlier row"
        return Row(line, ident, to, text, reason, kind, own=True, repeat_of=first)
    return Row(line, ident, to, text, repeat_of=first)


@attrs.define
class FileCheck:
    """What the whole-file check found.

    Attributes:
        rows: Data rows (blank lines not counted).
        valid: Rows that will be sent.
        rejected: Rejected rows by the short name of their (first) reason.
        repeats: Rows with the same number and text as an earlier row.
        costs: Valid rows by (encoding, segments per message).
    """

    rows: int = 0
    valid: int = 0
    rejected: collections.Counter[str] = attrs.Factory(collections.Counter)
    repeats: int = 0
    costs: collections.Counter[tuple[Encoding, int]] = attrs.Factory(collections.Counter)

    @property
    def credits(self) -> int:
        """Estimated credits of the valid rows: one per segment."""
        return sum(count * rows for (_, count), rows in self.costs.items())

    def add(self, row: Row) -> None:
        """Count one row."""
        self.rows += 1
        self.repeats += row.repeat_of is not None
        if row.kind is not None:
            self.rejected[row.kind] += 1
            return
        self.valid += 1
        cost = segments(row.text)
        self.costs[cost.encoding, cost.count] += 1


def check_file(
    source: CsvSource, *, exclude: frozenset[str] = frozenset(), dedupe: bool = False
) -> FileCheck:
    """Check every row of the file, before anything is sent.

    Raises:
        CliError: The file cannot be decoded or parsed, or has no data rows (exit 2).
    """
    check = FileCheck()
    for row in iter_rows(source, exclude=exclude, dedupe=dedupe):
        check.add(row)
    if not check.rows:
        raise CliError(f"{source.path} has a header but no rows to send")
    return check
