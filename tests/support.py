"""What the test modules share: the test key and the API document's sample answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["API_KEY", "DATA", "ROOT", "load_sample"]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
API_KEY = "sk-live-S3CR3T-0123456789abcdef"


def load_sample(name: str) -> Any:
    """A sample answer copied verbatim from the GonderimBilgisi API document."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))
