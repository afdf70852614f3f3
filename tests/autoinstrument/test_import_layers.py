"""autoinstrument is three one-way parts (issue 20): no import circle, and no import that runs back up.

The graph is built from the source with `ast` (every `import`, module-level or inside a function, TYPE_CHECKING
blocks included), so a lazy import cannot hide a circle. Floors, bottom up:

    manifest  <-  runtime  <-  web          (each imports only its own floor and those below)
    manifest  <-  report                    (the report reads log lines and the manifest, nothing of the runtime)
    manifest  <-  export                    (the exporters: handed to the runtime and web by the top floor)
    top: autoinstrument/__init__, _bootstrap, assembly, check, cli, __main__ (may import any floor)
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

from telemetry_testkit import REPO

PACKAGE = REPO / "autoinstrument"

ALLOWED = {
    "manifest": {"manifest"},
    "runtime": {"manifest", "runtime"},
    "web": {"manifest", "runtime", "web"},
    "report": {"manifest", "report"},
    "export": {"manifest", "export"},
    "top": {"manifest", "runtime", "web", "report", "export", "top"},
}


def module_names() -> Dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    head = parts[1]
    if head in ("manifest", "runtime", "web", "export"):
        return head
    if head == "report" or head.startswith("report_"):
        return "report"
    return "top"


def imports(module: str, path: Path, known: Set[str]) -> Set[str]:
    """Every autoinstrument module `module` imports, resolved to the module actually loaded."""
    is_package = path.name == "__init__.py"
    found: Set[str] = set()

    def nearest(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "autoinstrument":
                    found.add(nearest(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "autoinstrument":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else nearest(base))
    found.discard(module)
    return found


def graph() -> Dict[str, Set[str]]:
    known = module_names()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def strongly_connected(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's algorithm (iterative): the strongly connected components of the graph."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []
    counter = [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_the_graph_is_read_from_the_real_package():
    edges = graph()
    assert {"autoinstrument.manifest.model", "autoinstrument.runtime.install", "autoinstrument.web.middleware"} <= set(
        edges
    )
    assert "autoinstrument.runtime.scope" in edges["autoinstrument.runtime.wrappers"]
    assert "autoinstrument.web.attachment" in edges["autoinstrument.assembly"]  # a function-level import


def test_the_cycle_finder_finds_a_cycle():
    assert sorted(map(len, strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == [1, 3]


def test_no_import_circle_anywhere_in_autoinstrument():
    circles = [component for component in strongly_connected(graph()) if len(component) > 1]
    assert circles == []


def test_no_import_runs_back_up_a_floor():
    upward = [
        f"{source} ({floor(source)}) imports {target} ({floor(target)})"
        for source, targets in sorted(graph().items())
        for target in sorted(targets)
        if floor(target) not in ALLOWED[floor(source)]
    ]
    assert upward == []


def test_the_start_up_trigger_imports_only_the_switches_and_the_cache():
    edges = graph()
    assert edges["autoinstrument._bootstrap"] <= {
        "autoinstrument.manifest",
        "autoinstrument.manifest.cache",
        "autoinstrument.manifest.switches",
        "autoinstrument.assembly",
    }
