"""The borders between the app and the library, checked on the source with `ast`, not by eye.

- `publisher_v2/` has no timing code (perf_counter, monotonic, process_time, in any spelling) and never
  imports autoinstrument: every duration comes from the manifest.
- `autoinstrument/` never imports publisher_v2 and does not even name it: it is a library for any app.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

from telemetry_testkit import REPO

TIMING = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "process_time", "process_time_ns"}


def sources(package: str) -> Iterator[Tuple[Path, ast.AST]]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    for path in files:
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported(tree: ast.AST) -> Iterator[Tuple[int, str]]:
    """(line, module) of every import, including `__import__("x")` and `importlib.import_module("x")`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def top(module: str) -> str:
    return module.split(".")[0]


def timing_calls(tree: ast.AST) -> Iterator[Tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in TIMING:
            yield node.lineno, node.attr
        elif isinstance(node, ast.Name) and node.id in TIMING:
            yield node.lineno, node.id
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if alias.name in TIMING:
                    yield node.lineno, alias.name


def test_the_app_has_no_timing_code_and_never_imports_the_library() -> None:
    found: List[str] = []
    for path, tree in sources("publisher_v2"):
        rel = path.relative_to(REPO)
        found += [f"{rel}:{line}: {name}" for line, name in timing_calls(tree)]
        found += [f"{rel}:{line}: imports {name}" for line, name in imported(tree) if top(name) == "autoinstrument"]
    assert found == []


def test_the_library_never_imports_or_names_the_app() -> None:
    found: List[str] = []
    for path, tree in sources("autoinstrument"):
        rel = path.relative_to(REPO)
        found += [f"{rel}:{line}: imports {name}" for line, name in imported(tree) if top(name) == "publisher_v2"]
    assert found == []
    named = [
        str(path.relative_to(REPO))
        for path in (REPO / "autoinstrument").rglob("*")
        if path.is_file() and path.suffix in (".py", ".pth", ".yaml", ".md", ".txt")
        and "publisher" in path.read_text(encoding="utf-8").lower()
    ]
    assert named == []


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The detectors themselves, on code that breaks each rule."""
    bad = ast.parse(
        "import time\nfrom time import monotonic\nimport autoinstrument.runtime.install\n"
        "t = time.perf_counter()\nx = __import__('publisher_v2.app')\n"
    )
    assert [name for _line, name in timing_calls(bad)] == ["monotonic", "perf_counter"]
    assert [top(name) for _line, name in imported(bad)] == ["time", "time", "autoinstrument", "publisher_v2"]
