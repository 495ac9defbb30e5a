"""`vairo-sms`: the group and its small commands. Bulk and demo live in `bulk`, `demo`.

Every failure ends as one line on stderr and an exit status (see `common`): no traceback
for bad usage or bad input, and no API key in any output.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.table import Table

from .._client import AsyncVairoClient
from .._config import WaitSettings
from .._constants import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_CONCURRENCY
from .._errors import (
    CampaignMismatchError,
    ConfigurationError,
    InvalidRequestError,
    VairoError,
    WaitAllError,
)
from .._models import PackageReport, PackageStatus
from .._segments import segments, transliterate_turkish
from .._version import __version__
from .bulk import bulk
from .campaign import campaign
from .common import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Api,
    CliError,
    Session,
    api_options,
    describe_report,
    one_line,
    require_sender,
    run_async,
    sender_option,
    session,
)
from .demo import demo
from .journal import journal

__all__ = ["cli"]


class _Cli(click.Group):
    """A click group whose every failure is one line and an exit status, never a traceback."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **options: Any,
    ) -> int:
        """Run the command; exit with its status, or return it when `standalone_mode=False`."""
        state = Session()
        try:
            status = super().main(
                args, prog_name or PROG, standalone_mode=False, obj=state, **options
            )
        except BaseException as exc:  # every way out gets its one line
            status = _report_failure(exc, state)
        if not isinstance(status, int):
            status = EXIT_OK
        if standalone_mode:
            sys.exit(status)
        return status


def _report_failure(exc: BaseException, state: Session) -> int:
    """Print one line for `exc` on stderr (its traceback only for a bug); return the status."""
    match exc:
        case click.UsageError():
            where = exc.ctx.command_path if exc.ctx is not None else PROG
            message, status = f"{where}: {exc.format_message()} (see {where} --help)", EXIT_USAGE
        case click.ClickException():
            message, status = f"{PROG}: {exc.format_message()}", exc.exit_code
        case click.Abort() | KeyboardInterrupt():
            message, status = f"{PROG}: interrupted", EXIT_INTERRUPTED
        case CliError():
            message, status = f"{PROG}: {exc}", exc.code
        case ConfigurationError() | InvalidRequestError() | CampaignMismatchError():
            message, status = f"{PROG}: {exc}", EXIT_USAGE
        case VairoError():
            message, status = f"{PROG}: {type(exc).__name__}: {exc}", EXIT_INCOMPLETE
        case SystemExit() if isinstance(exc.code, int):
            return exc.code
        case Exception():
            click.echo(state.redact("".join(traceback.format_exception(exc))), err=True, nl=False)
            return EXIT_INCOMPLETE
        case _:
            raise exc
    click.echo(state.redact(one_line(message)), err=True)
    return status


@click.group(PROG, cls=_Cli, no_args_is_help=False, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
@click.option(
    "-v", "--verbose", is_flag=True, help="Show the SDK's warnings: retries, failed polls."
)
def cli(verbose: bool) -> None:
    """Send SMS through VairoSMS, or try the SDK against its built-in emulator.

    The API key comes from $VAIRO_API_KEY or --api-key-file, never from a flag.
    Exit status: 0 all sent; 1 some rows or packages did not go through (failed, unknown);
    3 bulk sent every valid row and rejected some; 2 bad usage or input; 130 interrupted.
    """
    session().verbose = verbose


def _wait_options(command: Callable[..., int]) -> Callable[..., int]:
    """Add `--timeout` and `--poll-interval`."""
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        help="Seconds to wait at most (default: until final).",
    )(command)
    return click.option(
        "--poll-interval",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_POLL_INTERVAL,
        show_default=True,
        help="Seconds before the first poll; later polls back off to 30 s.",
    )(command)


def _wait_settings(timeout: float | None, poll_interval: float) -> WaitSettings:
    return WaitSettings(
        timeout=timeout,
        poll_interval=poll_interval,
        max_poll_interval=max(poll_interval, DEFAULT_MAX_POLL_INTERVAL),
    )


async def _wait_until_final(
    vairo: AsyncVairoClient, package_id: int, settings: WaitSettings
) -> PackageReport:
    return await vairo.wait_until_final(
        package_id,
        timeout=settings.timeout,
        poll_interval=settings.poll_interval,
        max_poll_interval=settings.max_poll_interval,
        expiry_grace=settings.expiry_grace,
    )


def _final_status(report: PackageReport) -> int:
    return EXIT_INCOMPLETE if report.status is PackageStatus.FAILED else EXIT_OK


@cli.command()
@click.option(
    "--to",
    "numbers",
    multiple=True,
    required=True,
    metavar="NUMBER",
    help="Recipient, in any Turkish mobile spelling; repeat it, or separate numbers with commas.",
)
@click.option("--text", required=True, help="The message text.")
@sender_option
@click.option("--wait", is_flag=True, help="Wait until the package is final; print its status.")
@_wait_options
@api_options
def send(
    api: Api,
    numbers: tuple[str, ...],
    text: str,
    sender: str | None,
    wait: bool,
    timeout: float | None,
    poll_interval: float,
) -> int:
    """Send one text as one package; print its id.

    Numbers may be spelt any common Turkish way. With --wait, a second line gives the final
    status, and the exit status is 1 when the package FAILED.
    """
    sender = require_sender(sender)
    recipients = [n.strip() for entry in numbers for n in entry.split(",") if n.strip()]
    settings = _wait_settings(timeout, poll_interval) if wait else None
    return run_async(_send(api, recipients, text, sender, settings))


async def _send(
    api: Api, to: list[str], text: str, sender: str | None, wait: WaitSettings | None
) -> int:
    async with api.client(sender) as vairo:
        submission = await vairo.send(text, to=to)
        click.echo(submission.package_id)
        if wait is None:
            return EXIT_OK
        report = await _wait_until_final(vairo, submission.package_id, wait)
    click.echo(describe_report(report))
    return _final_status(report)


@cli.command()
@click.argument("package_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--wait", is_flag=True, help="Poll until the package is final.")
@_wait_options
@api_options
def status(
    api: Api, package_id: int, wait: bool, timeout: float | None, poll_interval: float
) -> int:
    """Print a package's status line.

    The line reads ID STATUS recipients=N credits=N, plus failure="..." for a FAILED package
    (exit status 1).
    """
    settings = _wait_settings(timeout, poll_interval) if wait else None
    return run_async(_status(api, package_id, settings))


async def _status(api: Api, package_id: int, wait: WaitSettings | None) -> int:
    async with api.client() as vairo:
        if wait is not None:
            report = await _wait_until_final(vairo, package_id, wait)
        else:
            report = await vairo.get_report(package_id)
    click.echo(describe_report(report))
    return _final_status(report)


@cli.command()
@click.argument("package_ids", metavar="ID...", nargs=-1, required=True, type=click.IntRange(min=1))
@_wait_options
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_WAIT_CONCURRENCY,
    show_default=True,
    help="Report requests in flight at most.",
)
@api_options
def wait(
    api: Api,
    package_ids: tuple[int, ...],
    timeout: float | None,
    poll_interval: float,
    concurrency: int,
) -> int:
    """Wait until packages are final.

    Prints each package's status line as it becomes final, then ID ERROR ... for any that
    could not be waited for. Exit status 1 if any FAILED or could not be waited for.
    """
    return run_async(_wait(api, package_ids, _wait_settings(timeout, poll_interval), concurrency))


async def _wait(
    api: Api, package_ids: tuple[int, ...], settings: WaitSettings, concurrency: int
) -> int:
    status = EXIT_OK
    async with api.client() as vairo:
        finals = vairo.wait_all(
            package_ids,
            timeout=settings.timeout,
            concurrency=concurrency,
            poll_interval=settings.poll_interval,
            max_poll_interval=settings.max_poll_interval,
            expiry_grace=settings.expiry_grace,
        )
        try:
            async with contextlib.aclosing(finals):
                async for report in finals:
                    click.echo(describe_report(report))
                    status = max(status, _final_status(report))
        except WaitAllError as failures:
            for package_id, error in failures.errors.items():
                click.echo(one_line(f"{package_id} ERROR {type(error).__name__}: {error}"))
            status = EXIT_INCOMPLETE
    return status


@cli.command("segments")
@click.argument("text")
@click.option(
    "--tr-char/--no-tr-char",
    default=None,
    help="Price with or without the Turkish shift table (default: as send decides).",
)
def segments_command(text: str, tr_char: bool | None) -> int:
    """Show what a text costs as SMS.

    Encoding, units, segments and units per segment, beside the same for the text with its
    Turkish letters transliterated.
    """
    plain = transliterate_turkish(text)
    costs = [segments(text, tr_char=tr_char), segments(plain, tr_char=tr_char)]
    table = Table(show_edge=False)
    table.add_column("")
    table.add_column("as written", justify="right")
    table.add_column("transliterated", justify="right")
    table.add_row("encoding", *(cost.encoding.name for cost in costs))
    table.add_row("units", *(str(cost.units) for cost in costs))
    table.add_row("segments", *(str(cost.count) for cost in costs))
    table.add_row("per segment", *(str(cost.per_segment) for cost in costs))
    out = session().out
    out.print(table)
    if plain == text:
        out.print("Transliteration changes nothing in this text.")
    else:
        out.print("transliterated:", plain, markup=False)
    return EXIT_OK


@cli.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def emulator(args: tuple[str, ...]) -> int:
    """Serve the emulator on a loopback port.

    Takes the options of python -m vairo_async.testing: see vairo-sms emulator --help.
    """
    from ..testing._cli import main

    return main(list(args), prog=f"{PROG} emulator")


cli.add_command(bulk)
cli.add_command(campaign)
cli.add_command(demo)
cli.add_command(journal)
