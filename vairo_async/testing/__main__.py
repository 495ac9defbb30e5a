"""Entry point of `python -m vairo_async.testing`."""

import sys

from ._cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
