from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import traceback
import types
import typing

import cattrs
import pytest

import vairo_async


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(vairo_async) if not name.startswith("_")}
    assert vairo_async.__all__ == sorted(vairo_async.__all__)
    assert public - {"testing", "taskiq"} <= set(vairo_async.__all__) | {"annotations"}
    for name in vairo_async.__all__:
        assert hasattr(vairo_async, name), name


def test_the_taskiq_module_s_all_is_sorted_and_complete() -> None:
    import vairo_async.taskiq as module

    assert module.__all__ == sorted(module.__all__)
    defined = set()  # the module's own top-level names, imported ones left out
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    public = {name for name in defined if not name.startswith("_")}
    assert {"broker", "register", "RateLimiterFactory", "TASK_NAME"} <= public
    assert public <= set(module.__all__)


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


@pytest.mark.parametrize("name", vairo_async.__all__)
def test_every_public_class_and_function_names_the_public_module(name: str) -> None:
    value = getattr(vairo_async, name)
    if isinstance(value, type | types.FunctionType):
        assert value.__module__ == "vairo_async", name


def test_the_type_aliases_of_public_signatures_are_exported() -> None:
    hints = typing.get_type_hints(vairo_async.AsyncVairoClient.iter_bulk)
    assert hints["messages"] == vairo_async.Messages
    assert hints["on_progress"] == vairo_async.ProgressHook | None


def test_a_traceback_names_exceptions_by_their_public_path() -> None:
    cause = vairo_async.ServerError("Sunucu hatası", status_code=500)
    try:
        raise vairo_async.OutcomeUnknownError(cause) from cause
    except vairo_async.OutcomeUnknownError:
        text = traceback.format_exc()
    lines = text.splitlines()
    assert "vairo_async.ServerError: HTTP 500: Sunucu hatası" in lines
    assert lines[-1].startswith("vairo_async.OutcomeUnknownError: the send may or may not")
    assert "_errors" not in text


def test_models_still_convert_with_a_fresh_converter() -> None:
    # The public `__module__` must not break tools that resolve the models' annotations.
    converter = cattrs.Converter()
    converter.register_structure_hook_func(lambda t: t is object, lambda value, _: value)
    data = {"to": "5399999999", "text": "hi", "ref": 7}
    message = converter.structure(data, vairo_async.Message)
    assert message == vairo_async.Message(to="5399999999", text="hi")
    assert message.ref == 7
    assert converter.unstructure(message) == data
