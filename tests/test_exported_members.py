from __future__ import annotations

import vairo_async


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(vairo_async) if not name.startswith("_")}
    assert vairo_async.__all__ == sorted(vairo_async.__all__)
    assert public - {"testing"} <= set(vairo_async.__all__) | {"annotations"}
    for name in vairo_async.__all__:
        assert hasattr(vairo_async, name), name


def test_version_is_a_string() -> None:
    assert isinstance(vairo_async.__version__, str)
