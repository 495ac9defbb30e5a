"""What the `vairo-sms` subcommands share: the API key, options, errors, consoles, tables."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import attrs
import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from .._client import AsyncVairoClient
from .._constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CONNECTIONS,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_SENDER,
)
from .._errors import ConfigurationError
from .._journal import Journal, RedisJournal, SqliteJournal
from .._models import PackageReport
from .._redact import redact
from .._redis_client import redacted_url
from .._validate import check_sender

__all__ = [
    "ENV_API_KEY_FILE",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "JOURNAL_SUFFIX",
    "PROG",
    "REDIS_SCHEMES",
    "Api",
    "CliError",
    "JournalTarget",
    "Session",
    "api_options",
    "describe_report",
    "figures",
    "file_options",
    "journal_target",
    "one_line",
    "require_sender",
    "run_async",
    "send_options",
    "sender_option",
    "session",
]

T = TypeVar("T")

PROG = "vairo-sms"
ENV_API_KEY_FILE = "VAIRO_API_KEY_FILE"
#: `bulk`'s default journal is the report's path with this added: `out.jsonl.journal`.
JOURNAL_SUFFIX = ".journal"
#: A `--journal` value starting with one of these is a Redis server, anything else a file.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

#: Every row sent, none rejected; every package COMPLETED.
EXIT_OK = 0
#: Some rows failed or are unknown (or the report could not be written); a package FAILED
#: or could not be waited for; an API or network error.
EXIT_INCOMPLETE = 1
#: Bad usage or a bad input file: nothing was sent.
EXIT_USAGE = 2
#: `bulk`: every valid row was sent, and some rows were rejected (bad number, empty text or
#: template field, excluded, repeat); the dry run: some rows would be rejected.
EXIT_REJECTED = 3
#: Ctrl-C.
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the command reports as one line on stderr, ending with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def one_line(text: str) -> str:
    """`text` with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


@attrs.define
class Session:
    """One run of the command: its consoles, and the secrets no output may show.

    Attributes:
        out: Tables and results (stdout).
        err: Progress bars and log lines (stderr), so stdout stays clean for pipes.
        secrets: API keys read during the run.
        verbose: Show the SDK's warnings on stderr.
    """

    out: Console = attrs.Factory(lambda: Console(highlight=False))
    err: Console = attrs.Factory(lambda: Console(stderr=True, highlight=False))
    secrets: list[str] = attrs.field(factory=list, repr=False)
    verbose: bool = False

    def redact(self, text: str) -> str:
        """`text` without any key this run has seen, nor the one in the environment."""
        for secret in [*self.secrets, os.environ.get(ENV_API_KEY, "").strip()]:
            text = redact(text, secret)
        return text

    def capture_logs(self) -> Callable[[], None]:
        """Route the SDK's warnings (retries, failed polls): shown above any progress bar
        with `--verbose`, else dropped rather than left to Python's plain last-resort output.

        Returns:
            A function that removes the handler again.
        """
        handler: logging.Handler = logging.NullHandler()
        if self.verbose:
            handler = RichHandler(console=self.err, show_time=False, show_path=False)
            handler.setLevel(logging.WARNING)
        logger = logging.getLogger("vairo_async")
        logger.addHandler(handler)
        return functools.partial(logger.removeHandler, handler)


def session() -> Session:
    """The current run's `Session`."""
    return click.get_current_context().ensure_object(Session)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a subcommand's coroutine, the SDK's warnings shown only with `--verbose`.

    SIGTERM (what `docker stop`, systemd and Kubernetes send) stops it as Ctrl-C does: the
    coroutine is cancelled, its cleanup runs (a campaign writes its summary), and
    `KeyboardInterrupt` comes out, so the run ends with the interrupted status, 130.
    """
    remove_handler = session().capture_logs()
    terminated = False

    async def terminable() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None

        def terminate() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        # Only the main thread of a Unix process can take signals (tests run commands
        # in threads): elsewhere SIGTERM keeps its default.
        handled = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, terminate)
            handled = True
        try:
            return await coroutine
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(terminable())
    except BaseException as exc:
        # The cancellation (whatever else the cleanup raised on its way out) is the
        # SIGTERM's: report it as the interruption it is.
        if terminated and not isinstance(exc, Exception):
            raise KeyboardInterrupt from None
        raise
    finally:
        remove_handler()


@attrs.frozen
class Api:
    """How to reach VairoSMS: the key, and a base URL (None: `VAIRO_BASE_URL` or the default).

    Attributes:
        key: The API key; it never reaches any output.
        base_url: The API root, the emulator's included.
    """

    key: str = attrs.field(repr=False)
    base_url: str | None

    def client(self, sender: str | None = None, **options: Any) -> AsyncVairoClient:
        """An `AsyncVairoClient` for this key and URL (a `ConfigurationError` exits 2)."""
        return AsyncVairoClient(self.key, sender=sender, base_url=self.base_url, **options)


def _load_key(path: Path | None) -> str:
    """The key from `path` (stripped), else from `VAIRO_API_KEY`."""
    if path is not None:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            # A path that names nothing may be the key itself, given where the path belongs:
            # only a path that exists is quoted.
            where = f" {path}" if path.exists() else " given with --api-key-file"
            raise CliError(f"cannot read the API key file{where}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"the API key file {path} is not UTF-8 text") from None
        if not key:
            raise CliError(f"the API key file {path} is empty")
        return key
    key = os.environ.get(ENV_API_KEY, "").strip()
    if not key:
        raise CliError(f"no API key: set {ENV_API_KEY} or pass --api-key-file PATH")
    return key


def _refuse_key_flag(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--api-key is not accepted: a key on the command line shows in `ps` and in shell "
            f"history; set {ENV_API_KEY} or pass --api-key-file PATH",
            ctx=ctx,
        )


def api_options(command: Callable[..., int]) -> Callable[..., int]:
    """Add `--api-key-file` and `--base-url`; the command receives an `Api` as `api`.

    A command with a `dry_run` option receives None instead when it is set, and no key is read.
    """

    @click.option(
        "--api-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=ENV_API_KEY_FILE,
        show_envvar=True,
        help=f"File holding the API key (else ${ENV_API_KEY} is used).",
    )
    @click.option(
        "--base-url",
        envvar=ENV_BASE_URL,
        show_envvar=True,
        help="API root, e.g. the emulator's (default https://vairosms.com/Panel/api/v1/).",
    )
    @click.option(
        "--api-key", hidden=True, expose_value=False, is_eager=True, callback=_refuse_key_flag
    )
    @functools.wraps(command)
    def with_api(*args: Any, api_key_file: Path | None, base_url: str | None, **kwargs: Any) -> int:
        if kwargs.get("dry_run"):  # a dry run talks to no server: it needs no key
            return command(*args, api=None, **kwargs)
        key = _load_key(api_key_file)
        session().secrets.append(key)
        return command(*args, api=Api(key, base_url or None), **kwargs)

    return with_api


sender_option = click.option(
    "--sender",
    envvar=ENV_SENDER,
    show_envvar=True,
    help="Sender name (baslik) approved for the account.",
)


def _options(
    command: Callable[..., int], options: Iterable[Callable[[Callable[..., int]], Any]]
) -> Callable[..., int]:
    for option in reversed(list(options)):
        command = option(command)
    return command


def file_options(
    *, id_help: str, exclude_help: str
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Add how a campaign file is read (`bulk` and `campaign start` read files alike).

    The command receives `encoding`, `to_column`, `text_column`, `id_column`, `text`,
    `template`, `template_file`, `dedupe` and `exclude_path`.
    """
    return functools.partial(
        _options,
        options=[
            click.option(
                "--encoding",
                metavar="NAME",
                help="The file's encoding, e.g. cp1254 (Excel's CSV in Turkey); default UTF-8.",
            ),
            click.option("--to-column", metavar="NAME", help="The number column (default 'to')."),
            click.option("--text-column", metavar="NAME", help="The text column (default 'text')."),
            click.option("--id-column", metavar="NAME", help=id_help),
            click.option(
                "--text", help="The text for every row, for a file with a 'to' column only."
            ),
            click.option(
                "--template", metavar="TEXT", help="The text, with {Column Name} placeholders."
            ),
            click.option(
                "--template-file",
                metavar="PATH",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Read --template from a UTF-8 file.",
            ),
            click.option(
                "--dedupe",
                is_flag=True,
                help="Reject rows repeating an earlier row's number and text.",
            ),
            click.option(
                "--exclude",
                "exclude_path",
                metavar="FILE",
                type=click.Path(dir_okay=False, path_type=Path),
                help=exclude_help,
            ),
        ],
    )


def send_options(
    *, concurrency_help: str, rate_help: str
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Add `--batch-size`, `--concurrency` and `--rate`, the pace of a campaign."""
    return functools.partial(
        _options,
        options=[
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, DEFAULT_MAX_CONNECTIONS),
                default=DEFAULT_CONCURRENCY,
                show_default=True,
                help=concurrency_help,
            ),
            click.option("--rate", type=click.FloatRange(min=0, min_open=True), help=rate_help),
        ],
    )


def require_sender(sender: str | None) -> str:
    """The sender, checked as the SDK checks it, before anything is read or sent."""
    if sender is None:
        raise CliError(f"no sender: pass --sender NAME or set {ENV_SENDER}")
    try:
        return check_sender(sender)
    except ValueError as exc:
        raise CliError(f"--sender {sender!r}: {exc}") from None


def describe_report(report: PackageReport) -> str:
    """One line per package: `ID STATUS recipients=N credits=N [failure="..."]`."""
    line = (
        f"{report.package_id} {report.status.name} "
        f"recipients={report.recipient_count} credits={report.credits}"
    )
    if report.failure is not None:
        line += f" failure={json.dumps(report.failure.message, ensure_ascii=False)}"
    return line


def figures(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column table of labelled figures, values right-aligned."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


@attrs.frozen
class JournalTarget:
    """Where a journal lives, as `--journal` (or a JOURNAL argument) names it.

    Attributes:
        location: A SQLite file's path, or a Redis URL (password included: never shown).
        shown: How output names it: the file's absolute path, or the URL with its
            password replaced.
    """

    location: str = attrs.field(repr=False)
    shown: str

    @property
    def is_redis(self) -> bool:
        """True for a Redis URL, False for a SQLite file."""
        return self.location.startswith(REDIS_SCHEMES)

    def open(self, *, create: bool) -> Journal:
        """The journal, not yet connected (the stores connect on first use).

        Args:
            create: Make a missing SQLite file; else a missing one is an error (a journal
                command reading a misspelt path should not leave an empty journal behind).

        Raises:
            CliError: The file is missing (without `create`), its folder is, or the URL is
                not one Redis takes, or the `redis` extra is not installed; exit status 2.
        """
        if self.is_redis:
            try:
                return RedisJournal(self.location)
            except ConfigurationError as exc:
                raise CliError(str(exc)) from None
        path = Path(self.location)
        if path.is_dir():
            raise CliError(f"the journal {self.shown} is a folder, not a file")
        if not create and not path.exists():
            raise CliError(f"no journal at {self.shown}")
        if not path.parent.is_dir():
            raise CliError(f"cannot make the journal {self.shown}: its folder does not exist")
        return SqliteJournal(path)


def journal_target(value: str) -> JournalTarget:
    """Read a `--journal` value: a `redis://`, `rediss://` or `unix://` URL, else a path.

    A URL's password is added to the run's secrets, so no error line can show it either.

    Raises:
        CliError: The value is empty; exit status 2.
    """
    value = value.strip()
    if not value:
        raise CliError("--journal is empty: give a file path or a redis:// URL")
    if not value.startswith(REDIS_SCHEMES):
        return JournalTarget(value, str(Path(value).absolute()))
    shown, password = redacted_url(value)
    if password:
        session().secrets.extend({password, unquote(password)})
    return JournalTarget(value, shown)
