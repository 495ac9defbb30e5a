from __future__ import annotations

import importlib
import pkgutil

import pytest

import vairo_async


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(vairo_async) if not name.startswith("_")}
    assert vairo_async.__all__ == sorted(vairo_async.__all__)
    assert public - {"testing"} <= set(vairo_async.__all__) | {"annotations"}
    for name in vairo_async.__all__:
        assert hasattr(vairo_async, name), name


def test_version_is_a_string() -> None:
    assert isinstance(vairo_async.__version__, str)


@pytest.mark.parametrize(
    "module", [info.name for info in pkgutil.iter_modules(vairo_async.__path__)]
)
def test_every_module_declares_all(module: str) -> None:
    loaded = importlib.import_module(f"vairo_async.{module}")

    assert isinstance(loaded.__all__, list)
    for name in loaded.__all__:
        assert hasattr(loaded, name), f"{module}.{name}"
