"""Faults are never silent and never in a library's words: each unusable manifest line gives ONE
`autoinstrument_fault` naming the line, in plain words, and the app runs as without it (issues 13 and 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from telemetry_testkit import LOG_SECTION, stderr_events, subprocess_env

PROGRAM = (
    "import autoinstrument, sys; autoinstrument.install(sys.argv[1]); import fixture_app.workflow, fixture_app.kinds"
)


def faults_of(tmp_path: Path, manifest: str) -> List[Dict[str, Any]]:
    path = tmp_path / "telemetry.yaml"
    path.write_text(LOG_SECTION.lstrip("\n") + manifest, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(path)], env=subprocess_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "PathResolutionError" not in proc.stderr
    return [e for e in stderr_events(proc.stderr) if e["message"] == "autoinstrument_fault"]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate((LOG_SECTION.lstrip("\n") + text).splitlines(), 1) if needle in line)


def test_a_web_app_in_a_module_that_does_not_exist(tmp_path):
    manifest = "web:\n  app: fixture_app.no_such_web:app\n  routes:\n    GET /x: web_x_ms\n"
    (fault,) = faults_of(tmp_path, manifest)
    assert fault["fault"] == "target_missing" and fault["line"] == line_of(manifest, "no_such_web")
    assert fault["detail"].startswith("module 'fixture_app.no_such_web' not found: manifest line")


def test_a_web_app_that_is_not_in_its_module(tmp_path):
    manifest = "web:\n  app: fixture_app.workflow:appp\n  routes:\n    GET /x: web_x_ms\n"
    (fault,) = faults_of(tmp_path, manifest)
    assert fault["fault"] == "web_app_unusable" and fault["line"] == line_of(manifest, "appp")
    assert "has no attribute 'appp'" in fault["detail"]


def test_a_typo_in_a_method_and_in_a_module(tmp_path):
    manifest = (
        "stages:\n"
        "  fixture_app.workflow:Orchestrator._select_imag: a_ms\n"
        "  fixture_app.workflw:Orchestrator.analyze: b_ms\n"
        "  nosuchpackage.mod:f: c_ms\n"
    )
    faults = {f["target"]: f for f in faults_of(tmp_path, manifest)}
    assert len(faults) == 3
    method = faults["fixture_app.workflow:Orchestrator._select_imag"]
    assert method["line"] == line_of(manifest, "_select_imag")
    assert method["detail"] == "class Orchestrator has no attribute '_select_imag'"
    assert method["fault"] == "target_missing"  # as the docs say (issue 22 item 7): not target_unusable
    module = faults["fixture_app.workflw:Orchestrator.analyze"]
    assert module["line"] == line_of(manifest, "workflw") and "'fixture_app.workflw' not found" in module["detail"]
    package = faults["nosuchpackage.mod:f"]  # found at once: the top-level package is looked up without importing
    assert package["line"] == line_of(manifest, "nosuchpackage")
    assert "there is no 'nosuchpackage'" in package["detail"]
