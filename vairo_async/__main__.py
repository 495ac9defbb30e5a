"""`python -m vairo_async` and the `vairo-sms` command; the command line needs the `cli` extra."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["MISSING_CLI", "main"]

MISSING_CLI = 'vairo-sms needs the cli extra: pip install "vairo-async[cli]"'

# The `cli` extra's own packages; any other ImportError is a bug and is not hidden.
_CLI_PACKAGES = frozenset({"click", "rich"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns its exit status (2 when the `cli` extra is missing)."""
    try:
        from ._cli import cli
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in _CLI_PACKAGES:
            raise
        print(MISSING_CLI, file=sys.stderr)
        return 2
    status: int = cli.main(argv, prog_name="vairo-sms", standalone_mode=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
