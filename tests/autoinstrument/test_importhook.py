"""The library's own post-import hooks (`autoinstrument.importhook`), on real modules written to tmp_path."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, List

import pytest

from autoinstrument import importhook

_counter = [0]


@pytest.fixture
def module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _counter[0] += 1
    name = f"hooked_{_counter[0]}"
    (tmp_path / f"{name}.py").write_text("VALUE = 41\n", encoding="utf-8")
    yield name
    sys.modules.pop(name, None)


def test_the_callback_runs_once_after_the_module_body_with_the_real_loader(module_name):
    seen: List[Any] = []

    def callback(module: Any) -> None:
        seen.append((module.__name__, module.VALUE))
        module.VALUE += 1

    importhook.register(module_name, callback)
    try:
        assert importhook.FINDER in sys.meta_path
        module = importlib.import_module(module_name)
        assert seen == [(module_name, 41)] and module.VALUE == 42
        assert type(module.__loader__).__name__ == "SourceFileLoader"
        assert type(module.__spec__.loader).__name__ == "SourceFileLoader"
        importlib.reload(module)  # the real loader reloads it; the hook does not run again
        assert seen == [(module_name, 41)] and module.VALUE == 41
    finally:
        importhook.unregister(callback)
    assert importhook.FINDER not in sys.meta_path


def test_an_imported_module_is_handed_over_at_once(module_name):
    module = importlib.import_module(module_name)
    seen: List[Any] = []
    importhook.register(module_name, seen.append)
    assert seen == [module]


def test_a_raising_callback_never_fails_the_import(module_name):
    errors: List[BaseException] = []
    previous, importhook.on_error = importhook.on_error, errors.append

    def broken(module: Any) -> None:
        raise RuntimeError("our bug")

    importhook.register(module_name, broken)
    try:
        assert importlib.import_module(module_name).VALUE == 41
        assert [str(e) for e in errors] == ["our bug"]
    finally:
        importhook.on_error = previous
        importhook.unregister(broken)
