"""The real app: `publisher` with PUBLISHER_AUTOINSTRUMENT=1 emits `workflow_timing`; unset, nothing changes.

These tests run the installed console scripts in subprocesses on a sample library made by `publisher-sample`,
and read the JSON lines the app writes on stderr. They are the end-to-end proof that publisher_v2 has no
timing code and still gets its telemetry from telemetry.yaml alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from telemetry_testkit import REPO

from tests.cli_output import stderr_events
from tests.manifest_fields import stage_fields

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow]


def test_the_app_and_its_scripts_are_installed():
    """The tests below run the real CLI: a missing piece is a failure, never a skip."""
    for name in ("publisher_v2.sample", "publisher_v2.app", "publisher_v2.services.ai.service"):
        assert importlib.util.find_spec(name) is not None, name
    for script in ("publisher", "publisher-sample"):
        assert (BIN / script).exists(), f"{BIN / script} missing: run `.venv/bin/pip install -e .`"

CORE_FIELDS = ("workflow_total_ms", "dropbox_list_images_ms", "image_selection_ms")
STAGE_FIELDS = stage_fields()  # read from telemetry.yaml


def base_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "PYTHONPATH"))}
    for secret in ("OPENAI_API_KEY", "DROPBOX_APP_KEY", "DROPBOX_REFRESH_TOKEN", "TELEGRAM_BOT_TOKEN"):
        env.pop(secret, None)
    env.update(extra)
    return env


@pytest.fixture
def library(tmp_path: Path, sample_copy: Callable[..., Path]) -> Path:
    """A fresh sample library (`publisher-sample`'s defaults) and its INI: a copy of its own per test, since the
    ledger remembers what was posted."""
    return sample_copy(tmp_path / "library", count=36, seed=1)


def run_cli(ini: Path, env: Dict[str, str], module: bool = False) -> Tuple[int, List[dict], str]:
    command = [sys.executable, "-m", "publisher_v2"] if module else [str(BIN / "publisher")]
    proc = subprocess.run(
        [*command, "--config", str(ini)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ini.parent),
    )
    return proc.returncode, stderr_events(proc.stderr), proc.stderr  # fails on a plain-text line


def only(events: List[dict], message: str) -> dict:
    found = [e for e in events if e.get("message") == message]
    assert len(found) == 1, f"{message}: {len(found)} events"
    return found[0]


def find(events: List[dict], message: str) -> Optional[dict]:
    return next((e for e in events if e.get("message") == message), None)


def test_publisher_with_autoinstrument_emits_one_workflow_timing(library):
    code, events, stderr = run_cli(library, base_env(PUBLISHER_AUTOINSTRUMENT="1"))
    assert code == 0, stderr
    timing = only(events, "workflow_timing")
    for name in CORE_FIELDS:
        assert name in timing, name
    for name in STAGE_FIELDS + ("workflow_total_ms",):
        if name in timing:
            assert isinstance(timing[name], int) and timing[name] >= 0, name
    assert {"image_name", "success", "archived"} <= set(timing)
    assert timing["logger"] == "publisher_v2.telemetry"
    # one correlation id for the whole run, equal to the workflow's own
    start = find(events, "workflow_start")
    assert start is not None and timing["correlation_id"] == start["correlation_id"]
    run_ids = {e["correlation_id"] for e in events if e.get("correlation_id")}
    assert run_ids == {timing["correlation_id"]}
    installed = only(events, "autoinstrument_installed")
    assert installed["missing"] == [] and installed["late"] == 0 and installed["wrapped"] == 11
    assert len(json.dumps(installed)) < 300  # counts and problems only (issue 22): the list is `autoinstrument check`
    assert not [e for e in events if e.get("message") == "autoinstrument_fault"]


def test_publisher_without_the_env_var_emits_no_telemetry_and_behaves_the_same(library, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(library.parent, other)
    code_off, events_off, _ = run_cli(library, base_env())
    code_on, events_on, _ = run_cli(other / library.name, base_env(PUBLISHER_AUTOINSTRUMENT="1"))
    assert code_off == code_on
    assert not [
        e for e in events_off if str(e.get("message", "")).startswith(("workflow_timing", "autoinstrument"))
    ]

    def app_events(events: List[dict]) -> List[str]:
        return [
            e["message"] for e in events if not str(e["message"]).startswith(("workflow_timing", "autoinst"))
        ]

    # the app's own events are the same sequence with and without the library
    assert app_events(events_off) == app_events(events_on)


def test_python_dash_m_publisher_v2_is_instrumented_too(library):
    code, events, stderr = run_cli(library, base_env(PUBLISHER_AUTOINSTRUMENT="1"), module=True)
    assert code == 0, stderr
    assert (
        only(events, "workflow_timing")["correlation_id"] == only(events, "workflow_start")["correlation_id"]
    )


@pytest.mark.parametrize("value", ["", "0"])
def test_targets_are_the_original_functions_when_off(value):
    probe = (
        "import json, publisher_v2.core.workflow as w, sys\n"
        "raw = vars(w.WorkflowOrchestrator)['execute']\n"
        "print(json.dumps([hasattr(raw, '__wrapped__'), 'autoinstrument' in sys.modules]))"
    )
    env = base_env(PUBLISHER_AUTOINSTRUMENT=value) if value else base_env()
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [False, False]
    on = subprocess.run(
        [sys.executable, "-c", probe],
        env=base_env(PUBLISHER_AUTOINSTRUMENT="1"),
        capture_output=True,
        text=True,
    )
    assert json.loads(on.stdout) == [True, True]


def test_the_operators_promise_one_manifest_line_adds_a_field(library, tmp_path):
    manifest = tmp_path / "telemetry.yaml"
    text = (REPO / "telemetry.yaml").read_text()
    line = "  publisher_v2.services.storage.local:LocalStorage.download_image: download_image_ms\n"
    assert "\nstages:\n" in text
    manifest.write_text(text.replace("\nstages:\n", "\nstages:\n" + line, 1))
    env = base_env(PUBLISHER_AUTOINSTRUMENT="1", PUBLISHER_TELEMETRY_MANIFEST=str(manifest))
    code, events, stderr = run_cli(library, env)
    assert code == 0, stderr
    timing = only(events, "workflow_timing")
    assert isinstance(timing.get("download_image_ms"), int), timing
    assert timing["stage_calls"]["download_image_ms"] >= 1
    assert only(events, "autoinstrument_installed")["manifest"] == str(manifest)
