"""Maintainer sessions: `nox -s tests`, `coverage`, `lint`, `typecheck`, `bench`."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False

_CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d+)$")
_PROJECT = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
SUPPORTED = [m[1] for c in _PROJECT["classifiers"] if (m := _CLASSIFIER.match(c))]
# Every supported Python that is installed here; nox skips the missing ones.
PYTHONS = [v for v in SUPPORTED if shutil.which(f"python{v}")] or SUPPORTED[:1]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite on each supported Python found on this machine."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """The whole test suite under coverage, failing below the gate in pyproject.toml."""
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "-q")
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, tests and examples, and on the public API as users type it."""
    session.install("-e", ".[lint,test]")
    session.run("mypy", "--strict", "vairo_async", "tests", "examples")
    session.run("mypy", "--strict", "tests/typing/api.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script, each printing its table (pass --quick for a short run)."""
    session.install("-e", ".[bench]")
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
