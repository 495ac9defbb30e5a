"""The "Testing your code" snippet runs, and the pytest plugin's fixtures work, in a fresh project.

The snippet is read from README.md's "## Testing your code" section, so the documentation
cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Testing your code"
FILE_BLOCK = re.compile(
    r"^```(?:python|toml)\n# (?P<name>[\w/]+\.(?:py|toml))\n(?P<code>.*?)^```", re.S | re.M
)

EXTRA_TEST = """
import pytest

from vairo_async import AsyncVairoClient
from vairo_async.testing import FakeVairo


@pytest.mark.asyncio
async def test_each_test_gets_a_fresh_emulator(fake_vairo: FakeVairo) -> None:
    assert fake_vairo.messages == ()


@pytest.mark.asyncio
async def test_served_emulator(fake_vairo: FakeVairo, fake_vairo_url: str) -> None:
    async with AsyncVairoClient(
        api_key=fake_vairo.api_key, sender="ACME", base_url=fake_vairo_url
    ) as client:
        submission = await client.send("Merhaba", to="5399999999")
    assert fake_vairo.packages[submission.package_id].sender == "ACME"
"""


def read_testing_section(root: Path = ROOT) -> str:
    """The "Testing your code" section of README.md, up to the next "## " heading."""
    text = (root / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(HEADING)}[ \t]*$", text, re.M)
    if match is None:
        raise AssertionError(f"no {HEADING!r} section in README.md")
    rest = text[match.end() :]
    end = re.search(r"^## ", rest, re.M)
    return rest[: end.start()] if end else rest


def run_pytest(directory: Path, mode: str | None = "strict") -> subprocess.CompletedProcess[str]:
    """Run pytest in `directory` as a project of its own, warnings as errors.

    With a `mode`, a `pytest.ini` sets it; with None the project's own configuration counts.
    """
    if mode is not None:
        ini = f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
        (directory / "pytest.ini").write_text(ini, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("VAIRO_API_KEY", "VAIRO_SENDER", "VAIRO_BASE_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_section_ends_at_the_next_heading(tmp_path: Path) -> None:
    readme = f"# x\n{HEADING}\nfrom readme\n### Sub\nkept\n## Next\nnot this\n"
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    assert read_testing_section(tmp_path).split() == ["from", "readme", "###", "Sub", "kept"]


def test_the_testing_section_has_a_conftest_and_a_test() -> None:
    names = [match["name"] for match in FILE_BLOCK.finditer(read_testing_section())]

    assert "conftest.py" in names
    assert any(Path(name).name.startswith("test_") for name in names)


def write_snippets(directory: Path) -> dict[str, str]:
    """Write every file the section shows into `directory`; their texts by name."""
    files = {}
    for match in FILE_BLOCK.finditer(read_testing_section()):
        target = directory / match["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(match["code"], encoding="utf-8")
        files[match["name"]] = match["code"]
    return files


@pytest.mark.parametrize("mode", [None, "strict"])
def test_the_testing_snippet_runs(tmp_path: Path, mode: str | None) -> None:
    """With the README's own pyproject.toml, and in strict mode, every shown test passes."""
    files = write_snippets(tmp_path)

    result = run_pytest(tmp_path, mode)

    assert {"pyproject.toml", "app.py", "test_app.py"} <= set(files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b7 passed\b", result.stdout), result.stdout


def test_an_unset_fixture_loop_scope_ends_the_run_as_the_readme_says(tmp_path: Path) -> None:
    files = write_snippets(tmp_path)
    line = 'asyncio_default_fixture_loop_scope = "function"\n'
    assert line in files["pyproject.toml"]
    (tmp_path / "pyproject.toml").write_text(
        files["pyproject.toml"].replace(line, ""), encoding="utf-8"
    )

    result = run_pytest(tmp_path, None)

    assert result.returncode != 0
    assert "INTERNALERROR" in result.stdout + result.stderr
    assert "asyncio_default_fixture_loop_scope" in result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_fixtures_in_a_fresh_project(tmp_path: Path, mode: str) -> None:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["vairo_async.testing.pytest_plugin"]\n', encoding="utf-8"
    )
    (tmp_path / "test_fixtures.py").write_text(EXTRA_TEST, encoding="utf-8")

    result = run_pytest(tmp_path, mode)

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout
