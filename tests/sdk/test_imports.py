"""Importing the SDK or its testing package loads neither the command line nor its libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

# httpx's own `__init__` imports click and rich for its `httpx` command whenever they are
# installed, so the modules httpx loads are the baseline; the SDK must add none of them.
_LOADED = """
import json, sys
import httpx
before = set(sys.modules)
import {module}
print(json.dumps({{"loaded": sorted(sys.modules), "added": sorted(set(sys.modules) - before)}}))
"""


_CLI = ("vairo_async._cli", "vairo_async.__main__", "vairo_async.testing.__main__")


def _is_command_line(name: str) -> bool:
    top = name.partition(".")[0]
    return top in {"click", "rich"} or any(name == m or name.startswith(m + ".") for m in _CLI)


@pytest.mark.parametrize("module", ["vairo_async", "vairo_async.testing"])
def test_import_loads_no_command_line_module(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _LOADED.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    modules = json.loads(result.stdout)
    assert module in modules["added"]
    assert "vairo_async._client" in modules["added"]
    assert [name for name in modules["added"] if _is_command_line(name)] == []
    assert [name for name in modules["loaded"] if _is_command_line(name)] == [
        name for name in modules["loaded"] if name.partition(".")[0] in {"click", "rich"}
    ]
