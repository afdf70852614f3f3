"""publisher_v2 stands on floors (issue 23): no import circle, no import that runs back up, no module over 500 lines.

Floors, bottom up (a module imports only its own floor and those below; peers on one floor do not import
each other):

    domain  <-  utils  <-  config  <-  ledger | services  <-  core  <-  wiring  <-  cli | web  <-  top
    top: publisher_v2/__init__, __main__, and the re-exports publisher_v2.app and publisher_v2.sample
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Set

from tests.import_graph import graph, module_names, strongly_connected

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "publisher_v2"
MAX_LINES = 500

BELOW: Dict[str, Set[str]] = {
    "domain": set(),
    "utils": {"domain"},
    "config": {"domain", "utils"},
    "ledger": {"domain", "utils", "config"},
    "services": {"domain", "utils", "config"},
    "core": {"domain", "utils", "config", "ledger", "services"},
    "wiring": {"domain", "utils", "config", "ledger", "services", "core"},
    "cli": {"domain", "utils", "config", "ledger", "services", "core", "wiring"},
    "web": {"domain", "utils", "config", "ledger", "services", "core", "wiring"},
    "top": {"domain", "utils", "config", "ledger", "services", "core", "wiring", "cli", "web"},
}


def floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in BELOW:
        return parts[1]
    return "top"


def test_the_graph_is_read_from_the_real_package() -> None:
    edges = graph(ROOT, PACKAGE)
    assert {"publisher_v2.ledger.post_ledger", "publisher_v2.web.routes.admin", "publisher_v2.cli.app"} <= set(edges)
    assert "publisher_v2.ledger.stores" in edges["publisher_v2.ledger.schema"]
    assert "publisher_v2.wiring" in edges["publisher_v2.web.service"]  # a function-level import
    assert {floor(m) for m in edges} == set(BELOW)  # every floor is populated, none is misspelt


def test_the_cycle_finder_and_the_floor_rule_can_fail() -> None:
    assert sorted(map(len, strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == [1, 3]
    assert floor("publisher_v2.core.workflow") not in BELOW["ledger"]  # the ledger may not call the workflow
    assert floor("publisher_v2.web.app") not in BELOW["cli"]  # nor the CLI the web app


def test_no_import_circle_anywhere_in_publisher_v2() -> None:
    circles = [component for component in strongly_connected(graph(ROOT, PACKAGE)) if len(component) > 1]
    assert circles == []


def test_no_import_runs_back_up_a_floor() -> None:
    upward = [
        f"{source} ({floor(source)}) imports {target} ({floor(target)})"
        for source, targets in sorted(graph(ROOT, PACKAGE).items())
        for target in sorted(targets)
        if floor(target) != floor(source) and floor(target) not in BELOW[floor(source)]
    ]
    assert upward == []


def test_no_module_over_500_lines() -> None:
    modules = module_names(ROOT, PACKAGE)
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()}
    assert len(sizes) > 50
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
