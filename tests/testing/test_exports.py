"""`vairo_async.testing` is a table of contents: `__all__` sorted, complete and importable."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import vairo_async.testing


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(vairo_async.testing).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert vairo_async.testing.__all__ == sorted(vairo_async.testing.__all__)
    assert public - {"annotations"} <= set(vairo_async.testing.__all__)
    for name in vairo_async.testing.__all__:
        assert hasattr(vairo_async.testing, name), name


@pytest.mark.parametrize(
    "module", [info.name for info in pkgutil.iter_modules(vairo_async.testing.__path__)]
)
def test_every_module_declares_all(module: str) -> None:
    loaded = importlib.import_module(f"vairo_async.testing.{module}")

    assert isinstance(loaded.__all__, list)
    for name in loaded.__all__:
        assert hasattr(loaded, name), f"{module}.{name}"


@pytest.mark.parametrize("name", vairo_async.testing.__all__)
def test_every_public_class_and_function_names_the_public_module(name: str) -> None:
    value = getattr(vairo_async.testing, name)
    if isinstance(value, type | types.FunctionType):
        assert value.__module__ == "vairo_async.testing", name


def test_reprs_name_the_public_module() -> None:
    assert repr(vairo_async.testing.FaultKind.LATENCY).startswith("<FaultKind.LATENCY")
    assert str(vairo_async.testing.FakeVairo) == "<class 'vairo_async.testing.FakeVairo'>"
