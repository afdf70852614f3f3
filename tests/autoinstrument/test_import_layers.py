"""autoinstrument is three one-way parts (issue 20): no import circle, and no import that runs back up.

The graph is built from the source with `ast` (every `import`, module-level or inside a function, TYPE_CHECKING
blocks included), so a lazy import cannot hide a circle. Floors, bottom up:

    manifest  <-  runtime  <-  web          (each imports only its own floor and those below)
    manifest  <-  report                    (the report reads log lines and the manifest, nothing of the runtime)
    manifest  <-  export                    (the exporters: handed to the runtime and web by the top floor)
    top: autoinstrument/__init__, _bootstrap, assembly, check, cli, __main__ (may import any floor)
"""

from __future__ import annotations

from typing import Dict, Set

from telemetry_testkit import REPO

from tests import import_graph
from tests.import_graph import strongly_connected

ALLOWED = {
    "manifest": {"manifest"},
    "runtime": {"manifest", "runtime"},
    "web": {"manifest", "runtime", "web"},
    "report": {"manifest", "report"},
    "export": {"manifest", "export"},
    "top": {"manifest", "runtime", "web", "report", "export", "top"},
}


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


def graph() -> Dict[str, Set[str]]:
    """autoinstrument's import graph (tests/import_graph.py: every import, function-level ones included)."""
    return import_graph.graph(REPO, "autoinstrument")


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
