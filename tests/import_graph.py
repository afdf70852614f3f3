"""A package's import graph drawn from its source with `ast`, and its strongly connected components.

Every `import` counts, module-level or inside a function (TYPE_CHECKING blocks included), so a lazy import
cannot hide a circle. Used for publisher_v2 (tests/test_publisher_layers.py) and autoinstrument
(tests/autoinstrument/test_import_layers.py).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set


def module_names(root: Path, package: str) -> Dict[str, Path]:
    """Dotted module name -> file, for every module of `package` (a folder under `root`)."""
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: Set[str], package: str) -> Set[str]:
    """Every module of `package` that `module` imports, resolved to the module actually loaded."""
    is_package = path.name == "__init__.py"
    found: Set[str] = set()

    def nearest(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    found.add(nearest(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != package:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else nearest(base))
    found.discard(module)
    return found


def graph(root: Path, package: str) -> Dict[str, Set[str]]:
    known = module_names(root, package)
    return {name: imports(name, path, set(known), package) for name, path in known.items()}


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
