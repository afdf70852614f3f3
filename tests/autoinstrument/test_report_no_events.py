"""`autoinstrument report` as a release gate never passes on nothing: no events read is exit status 3.

Run through the installed console script in a subprocess, as CI runs it: an empty file, a console-format log
written by the real `publisher` CLI, JSON lines of another app, and the JSON events the same CLI appends to a
file with the documented `2>>events.jsonl` (which pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from telemetry_testkit import REPO, subprocess_env

BIN = Path(sys.executable).parent
SCRIPT = BIN / "autoinstrument"
MANIFEST = str(REPO / "telemetry.yaml")
HINT = "`APP 2>>events.jsonl`"


def report(*args: str) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"{SCRIPT} missing: run `.venv/bin/pip install -e .`"
    return subprocess.run(
        [str(SCRIPT), "report", *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )


def test_an_empty_file_exits_3_and_says_no_line_was_read(tmp_path: Path) -> None:
    empty = tmp_path / "events.jsonl"
    empty.write_text("", encoding="utf-8")
    proc = report("--manifest", MANIFEST, str(empty))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "all budgets met" not in proc.stdout
    assert proc.stdout.splitlines()[-1] == "no budget checked: no samples of any budgeted field"
    first, hint = proc.stderr.splitlines()
    assert first.startswith(
        "autoinstrument report: no events read: 0 lines read, none of them a JSON event of the manifest (with "
        "workflow_total_ms, "
    )
    assert HINT in hint and "console-format" in hint and "Exit status 3." in hint
    page = tmp_path / "report.html"
    assert report("--manifest", MANIFEST, "--html", str(page), str(empty)).returncode == 3
    assert "No events read: not one line was a JSON event" in page.read_text(encoding="utf-8")


def test_without_budgets_or_manifest_an_empty_file_still_exits_3(tmp_path: Path) -> None:
    empty = tmp_path / "app.log"
    empty.write_text("\n\n", encoding="utf-8")
    proc = report("--json", str(empty))
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)  # the document is still written, for the artefact
    assert (doc["lines"], doc["events_used"], doc["skipped"]["empty"]) == (2, 0, 2)
    assert "no events read: 2 lines read, none of them a JSON event with _ms fields; skipped: blank line: 2." in (
        proc.stderr
    )


def test_json_events_of_another_app_are_no_events_of_the_manifest(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"message": "checkout", "checkout_ms": 12}) + "\n", encoding="utf-8")
    proc = report("--manifest", MANIFEST, str(other))
    assert proc.returncode == 3
    assert "none of them a JSON event of the manifest" in proc.stderr
    assert "1 JSON event(s) with _ms fields of other names" in proc.stderr
    assert report(str(other)).returncode == 0  # without a manifest, any event with _ms fields counts


def test_a_breach_is_still_1_and_an_unreadable_input_still_2(tmp_path: Path) -> None:
    slow = tmp_path / "slow.jsonl"
    slow.write_text(json.dumps({"message": "workflow_timing", "workflow_total_ms": 99000}) + "\n", encoding="utf-8")
    assert report("--manifest", MANIFEST, str(slow)).returncode == 1
    assert report("--manifest", MANIFEST, str(tmp_path / "missing.jsonl")).returncode == 2


# ---------------------------------------------------------------------------------------------- the real CLI


def app_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "AUTOINSTRUMENT", "PYTHONPATH"))}
    env.update(PUBLISHER_AUTOINSTRUMENT="1", **extra)
    return env


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-no-events") / "library"
    proc = subprocess.run(
        [str(BIN / "publisher-sample"), str(root)], env=app_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    [ini] = sorted(root.rglob("*.ini"))
    return ini


@pytest.mark.slow
def test_a_console_log_of_the_publisher_exits_3_and_its_json_events_in_a_file_pass(library: Path) -> None:
    console = library.parent / "console.log"
    events = library.parent / "events.jsonl"
    publisher = BIN / "publisher"
    # What an operator sees on a terminal, kept in a file: the console format (the switch stands in for a tty).
    with console.open("w", encoding="utf-8") as stderr:
        run = subprocess.run(
            [str(publisher), "--config", str(library)],
            env=app_env(PUBLISHER_LOG_FORMAT="console"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=300,
            cwd=library.parent,
        )
    assert run.returncode == 0
    lines: List[str] = console.read_text(encoding="utf-8").splitlines()
    assert any("workflow_timing" in line for line in lines) and not any(line.startswith("{") for line in lines)
    proc = report("--manifest", MANIFEST, str(console))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"no events read: {len(lines)} lines read, none of them a JSON event of the manifest" in proc.stderr
    assert "all budgets met" not in proc.stdout

    # The documented cron line: stderr appended to a file is not a terminal, so the CLI logs JSON there.
    for _ in range(2):
        cron = subprocess.run(
            ["sh", "-c", f'"{publisher}" --config "{library}" 2>>"{events}"'],
            env=app_env(),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=library.parent,
        )
        assert cron.returncode == 0, cron.stdout
    proc = report("--manifest", MANIFEST, str(events))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "all budgets met" and proc.stderr == ""
    assert "workflow_timing (2)" in proc.stdout
