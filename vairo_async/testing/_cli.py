"""`python -m vairo_async.testing`: serve a FakeVairo on a loopback port until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from ._app import DEFAULT_API_KEY, DEFAULT_PREFIX, FakeVairo
from ._codec import dump_records
from ._faults import Fault, RandomFaults
from ._server import MISSING_UVICORN, base_url, bind, import_uvicorn, make_config, silence_drops

__all__ = ["PROG", "build_parser", "fault_rates", "main", "write_records"]

_FAULT_NAMES = ("rate_limit", "500", "502", "503", "504", "html", "drop_before", "drop_after")


PROG = "python -m vairo_async.testing"


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line, as `vairo-sms` does, rather than usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command's arguments; `prog` names the command in usage and error lines."""
    parser = _Parser(
        prog=prog,
        description="Serve an in-memory VairoSMS emulator on a loopback port until Ctrl-C.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--allow-non-loopback", action="store_true", help="allow a host other than loopback"
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key to accept")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="path prefix of the endpoints")
    life = parser.add_argument_group("package life cycle")
    life.add_argument(
        "--complete-after-polls",
        type=int,
        default=1,
        metavar="N",
        help="answer SENDING to the first N polls of a package, then final (default 1)",
    )
    life.add_argument(
        "--complete-after-seconds",
        type=float,
        metavar="S",
        help="final S seconds after acceptance (replaces the poll rule)",
    )
    life.add_argument("--never-complete", action="store_true", help="packages stay SENDING")
    life.add_argument("--validity-hours", type=float, default=24.0, help="gecerlilik_suresi")
    life.add_argument(
        "--fail-sender",
        action="append",
        default=[],
        metavar="SENDER",
        help="packages from SENDER end FAILED (INVALID_SOURCE_ADDRESS); repeatable",
    )
    life.add_argument(
        "--fail-destination",
        action="append",
        default=[],
        metavar="NUMBER",
        help="packages to NUMBER end FAILED (INVALID_DESTINATION_ADDRESS); repeatable",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"random fault rate per request; KIND is one of {', '.join(_FAULT_NAMES)}",
    )
    faults.add_argument("--fault-endpoint", choices=("send", "report", "both"), default="both")
    faults.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of 429s")
    faults.add_argument("--seed", type=int, help="seed for random faults")
    parser.add_argument(
        "--dump-on-exit",
        type=Path,
        metavar="FILE",
        help="write the records (messages, packages, requests, ...) as JSON to FILE on exit",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def fault_rates(specs: Sequence[str], *, retry_after: float) -> dict[Fault, float]:
    """Parse `KIND=RATE` specs into random fault rates."""
    rates: dict[Fault, float] = {}
    for spec in specs:
        name, _, rate = spec.partition("=")
        if name == "rate_limit":
            fault = Fault.rate_limit(retry_after)
        elif name.isdigit():
            fault = Fault.server_error(int(name))
        elif name == "html":
            fault = Fault.html_page()
        elif name == "drop_before":
            fault = Fault.drop_before_accept()
        elif name == "drop_after":
            fault = Fault.drop_after_accept()
        else:
            raise ValueError(f"unknown fault {name!r}; use one of {', '.join(_FAULT_NAMES)}")
        try:
            rates[fault] = float(rate)
        except ValueError:
            raise ValueError(f"fault {spec!r} needs a rate, as in {name}=0.1") from None
    return rates


def write_records(fake: FakeVairo, path: Path) -> None:
    """Write `fake`'s records as JSON to `path`, whole or not at all (a reader never sees half)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(dump_records(fake))
    os.replace(partial, path)


def _dumping(
    capture_signals: Callable[[], AbstractContextManager[None]], fake: FakeVairo, path: Path
) -> Callable[[], AbstractContextManager[None]]:
    """Wrap uvicorn's signal capture so the records are written once the server has stopped.

    uvicorn re-raises a captured SIGINT or SIGTERM when its capture ends, and SIGTERM's default
    action ends the process there; writing inside the capture works for both.
    """

    @contextlib.contextmanager
    def capture() -> Iterator[None]:
        with capture_signals():
            try:
                yield
            finally:
                write_records(fake, path)

    return capture


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the command; returns the exit status. `vairo-sms emulator` calls it with its `prog`."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        uvicorn = import_uvicorn()
    except ImportError:
        print(MISSING_UVICORN, file=sys.stderr)
        return 1
    try:
        rates = fault_rates(args.fault, retry_after=args.retry_after)
        fake = FakeVairo(
            api_key=args.api_key,
            prefix=args.prefix,
            complete_after_polls=None if args.never_complete else args.complete_after_polls,
            complete_after_seconds=None if args.never_complete else args.complete_after_seconds,
            validity=timedelta(hours=args.validity_hours),
            fail_senders=frozenset(args.fail_sender),
            fail_destinations=frozenset(args.fail_destination),
            latency=args.latency,
            random_faults=RandomFaults(rates, seed=args.seed, endpoint=args.fault_endpoint)
            if rates
            else None,
        )
        if args.dump_on_exit is not None and not args.dump_on_exit.parent.is_dir():
            raise ValueError(f"--dump-on-exit: no directory {str(args.dump_on_exit.parent)!r}")
        sock = bind(args.host, args.port, allow_non_loopback=args.allow_non_loopback)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    server = uvicorn.Server(make_config(fake, log_level=args.log_level))
    if args.dump_on_exit is not None:
        server.capture_signals = _dumping(server.capture_signals, fake, args.dump_on_exit)
    silence_drops()
    print(f"VAIRO_BASE_URL={base_url(sock, fake.prefix)}", flush=True)
    print(f"VAIRO_API_KEY={fake.api_key}", flush=True)
    print("Serving the VairoSMS emulator; press Ctrl-C to stop.", file=sys.stderr, flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
