"""The `exporters:` section: off by default, every mistake named with its YAML line, and `autoinstrument check`
reporting what would stop an exporter before start-up (a missing extra, an unwritable textfile folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest
from telemetry_testkit import HERE, subprocess_env

from autoinstrument.check import FAIL, OK, CheckReport, Result, run_check
from autoinstrument.manifest import ManifestError, load_manifest, loads_manifest

Write = Callable[[str], str]
SHOP = HERE / "shop_app" / "telemetry.yaml"
SHOP_EXPORT = HERE / "shop_app" / "telemetry-export.yaml"

BASE = """\
version: 1
log: {function: shop_app.shoplog:emit, logger: shop.telemetry, correlation: shop_app.shoplog:request_id}
scopes:
  shop_app.catalog:Checkout.run: {event: checkout_timing, total: checkout_total_ms, result: [total, items, paid]}
stages:
  shop_app.catalog:Catalog.lookup: lookup_ms
web:
  app: shop_app.web:app
  routes:
    GET /orders/{skus}: {field: web_order_ms, event: order_served, result: [total, paid]}
budgets:
  web_order_ms: {p95: 120, max: 900}
"""


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def problems(text: str) -> List[str]:
    with pytest.raises(ManifestError) as caught:
        loads_manifest(text, "t.yaml")
    return [str(p) for p in caught.value.problems]


def test_exporters_are_off_by_default_and_on_when_asked() -> None:
    manifest = load_manifest(str(SHOP))
    assert not manifest.exporters.enabled
    on = load_manifest(str(SHOP_EXPORT))
    assert on.exporters.opentelemetry.enabled and on.exporters.prometheus.enabled
    assert on.exporters.prometheus.labels == ("paid",)
    # a relative textfile folder is the manifest's folder's, not the working directory's
    assert on.exporters.prometheus.textfile_dir == str(SHOP_EXPORT.parent / "metrics")
    text = SHOP_EXPORT.read_text(encoding="utf-8")
    assert on.exporters.prometheus.line == line_of(text, "  prometheus:")
    assert on.exporters.prometheus.textfile_line == line_of(text, "textfile_dir:")


def test_a_label_by_path_parameter_or_id_is_refused_with_its_line() -> None:
    text = BASE + "exporters:\n  prometheus:\n    enabled: true\n    labels: [skus, correlation_id, order_id, nope]\n"
    found = problems(text)
    line = line_of(text, "labels:")
    assert found[0] == (
        f"t.yaml:{line}: exporters.prometheus.labels: 'skus' is a path parameter of GET /orders/{{skus}}: one "
        "series per distinct path would explode the metric's cardinality (the route template is already a label)"
    )
    assert found[1] == f"t.yaml:{line}: exporters.prometheus.labels: 'correlation_id' is an id: one series per " \
        "request would explode cardinality"
    assert "'order_id' is an id" in found[2] and "'nope' is not a `result` key" in found[3]
    assert len(found) == 4


def test_bad_values_name_their_lines() -> None:
    text = BASE + (
        "exporters:\n"
        "  opentelemetry: {enabled: maybe}\n"
        "  prometheus:\n"
        "    enabled: true\n"
        "    buckets: [50, 10]\n"
        "    textfile_dir: 7\n"
        "    colour: red\n"
        "  zipkin: {enabled: true}\n"
    )
    found = problems(text)
    assert f"t.yaml:{line_of(text, 'opentelemetry:')}: exporters.opentelemetry.enabled: must be true or false" in found
    assert f"t.yaml:{line_of(text, 'buckets:')}: exporters.prometheus.buckets: must be in increasing order" in found
    assert f"t.yaml:{line_of(text, 'textfile_dir:')}: exporters.prometheus.textfile_dir: must be a non-empty string" \
        in found
    assert any(p.startswith(f"t.yaml:{line_of(text, 'colour:')}: exporters.prometheus.colour: unknown key")
               for p in found)
    assert any(p.startswith(f"t.yaml:{line_of(text, 'zipkin:')}: exporters.zipkin: unknown key") for p in found)


def exporter_results(report: CheckReport) -> List[Result]:
    return [r for r in report.results if r.section.startswith("exporters")]


def test_check_passes_an_installed_extra_and_a_writable_folder(write_manifest: Write, tmp_path: Path) -> None:
    path = write_manifest(BASE + f"exporters:\n  opentelemetry: {{enabled: true}}\n  prometheus:\n"
                                 f"    enabled: true\n    textfile_dir: {tmp_path / 'new' / 'metrics'}\n")
    results = exporter_results(run_check(path))
    assert [(r.status, r.section) for r in results] == [
        (OK, "exporters.opentelemetry"), (OK, "exporters.prometheus"), (OK, "exporters.prometheus.textfile_dir"),
    ]


def test_check_reports_an_unwritable_textfile_folder_with_its_line(write_manifest: Write, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    text = BASE + f"exporters:\n  prometheus:\n    enabled: true\n    textfile_dir: {blocker / 'metrics'}\n"
    path = write_manifest(text)
    (failure,) = [r for r in exporter_results(run_check(path)) if r.status == FAIL]
    assert failure.line == line_of(text, "textfile_dir:")
    assert failure.detail == f"a CLI run cannot write its textfile there: {blocker} is not a folder"


def test_check_reports_a_missing_extra_with_its_line(write_manifest: Write, tmp_path: Path) -> None:
    """The real CLI in an interpreter where prometheus_client and opentelemetry cannot be imported (a
    `sys.modules[name] = None` entry: Python's own way of saying "not installed")."""
    text = BASE + "exporters:\n  opentelemetry: {enabled: true}\n  prometheus: {enabled: true}\n"
    path = write_manifest(text)
    code = (
        "import sys; sys.modules['prometheus_client'] = None; sys.modules['opentelemetry'] = None; "
        "from autoinstrument.cli import main; sys.exit(main(['check', sys.argv[1]]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache")), cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    otel_line, prom_line = line_of(text, "opentelemetry:"), line_of(text, "prometheus:")
    assert (f"FAIL {otel_line:>3}  opentelemetry: opentelemetry.trace is not installed: pip install "
            "opentelemetry-api (the `otel` extra), or turn exporters.opentelemetry.enabled off") in proc.stdout
    assert (f"FAIL {prom_line:>3}  prometheus: prometheus_client is not installed: pip install prometheus-client "
            "(the `prometheus` extra), or turn exporters.prometheus.enabled off") in proc.stdout


def test_exporters_off_import_nothing_of_theirs(tmp_path: Path) -> None:
    """The shop, installed by the start-up switch with the exporters off, runs without importing the export
    floor, opentelemetry or prometheus_client."""
    code = (
        "import asyncio, json, sys, shop_app.__main__ as m; asyncio.run(m.main()); "
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('opentelemetry', 'prometheus_client') or n.startswith('autoinstrument.export'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(SHOP),
                           XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    assert '"checkout_timing"' in proc.stderr  # installed and timing
    assert proc.stdout.strip() == "[]"


def test_the_shipped_manifest_shows_the_exporters_commented_and_valid_when_uncommented(tmp_path: Path) -> None:
    """telemetry.yaml ships the `exporters:` example commented out (off); uncommented, it is a valid section."""
    from telemetry_testkit import REPO

    text = (REPO / "telemetry.yaml").read_text(encoding="utf-8")
    assert not load_manifest(str(REPO / "telemetry.yaml")).exporters.enabled
    head, example = text.split("# exporters:", 1)
    lines = ("# exporters:" + example).splitlines()
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in lines)
    path = tmp_path / "telemetry.yaml"
    path.write_text(head + uncommented + "\n", encoding="utf-8")
    exporters = load_manifest(str(path)).exporters
    assert exporters.opentelemetry.enabled and exporters.prometheus.enabled
    assert exporters.prometheus.labels == ("archived",)
