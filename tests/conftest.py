from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vairo_async._retry import set_testing

DATA = Path(__file__).parent / "data"
API_KEY = "sk-live-S3CR3T-0123456789abcdef"


def load_sample(name: str) -> Any:
    """A sample answer copied verbatim from the GonderimBilgisi API document."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries wait zero seconds in tests; a test that checks waits turns it off."""
    with set_testing(True):
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAIRO_API_KEY", "VAIRO_SENDER", "VAIRO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
