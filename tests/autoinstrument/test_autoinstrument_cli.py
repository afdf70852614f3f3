"""The `autoinstrument` console script, run as operators and CI run it: a real subprocess per command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from telemetry_testkit import LOG_SECTION, REPO, subprocess_env

from autoinstrument.cli import main

SCRIPT = Path(sys.executable).parent / "autoinstrument"



def test_the_console_script_is_installed():
    """Every test below runs the real script: a missing one is a failure, never a skip."""
    assert SCRIPT.exists(), f"{SCRIPT} missing: run `.venv/bin/pip install --no-deps -e .`"


def run(args: List[str], cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"{SCRIPT} missing: run `.venv/bin/pip install --no-deps -e .`"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=120
    )


def log_lines(path: Path, totals: List[int]) -> Path:
    lines = ["2026-01-01T00:00:00Z app[web.1]: not json at all"]
    for i, total in enumerate(totals):
        lines.append(
            json.dumps(
                {
                    "message": "workflow_timing",
                    "correlation_id": f"c{i}",
                    "workflow_total_ms": total,
                    "caption_generation_ms": 100,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_check_of_the_shipped_manifest_exits_0_with_one_line_per_target() -> None:
    proc = run(["check", "telemetry.yaml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "autoinstrument check: telemetry.yaml"
    body = lines[1:-1]
    assert body and all(line.startswith(("OK ", "SKIP ")) for line in body)
    assert any("WorkflowOrchestrator._publish_all  -> publish_parallel_ms  (async)" in line for line in body)
    assert lines[-1].endswith("0 failed")
    assert proc.stderr == ""  # no telemetry events, no tracebacks


def test_check_without_an_argument_uses_the_environment_manifest_else_the_working_directorys(
    write_manifest, tmp_path: Path
) -> None:
    default = run(["check"], cwd=REPO)
    assert default.returncode == 0
    assert default.stdout.splitlines()[0] == "autoinstrument check: telemetry.yaml"
    none_here = run(["check"], cwd=tmp_path)
    assert none_here.returncode == 2 and "telemetry.yaml:0: (file): cannot read the manifest" in none_here.stderr
    bad = write_manifest(LOG_SECTION + "stages:\n  fixture_app.checked:Kinds.prop: prop_ms\n")
    chosen = run(["check"], AUTOINSTRUMENT_MANIFEST=bad)
    assert chosen.returncode == 1
    assert "FAIL   6  fixture_app.checked:Kinds.prop: is a property" in chosen.stdout


@pytest.mark.parametrize("switch", ["AUTOINSTRUMENT", "PUBLISHER_AUTOINSTRUMENT"])
def test_check_with_autoinstrument_enabled_still_checks_the_raw_code_and_emits_nothing(switch: str) -> None:
    proc = run(["check", "--json", "telemetry.yaml"], **{switch: "1"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["counts"]["fail"] == 0
    assert "autoinstrument_installed" not in proc.stderr and "autoinstrument_fault" not in proc.stderr


def test_check_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run(["check", "--no-such-option"]).returncode == 2
    missing = run(["check", str(tmp_path / "nope.yaml")])
    assert missing.returncode == 2 and "cannot read the manifest" in missing.stderr


def test_report_json_reads_a_file(tmp_path: Path) -> None:
    proc = run(["report", "--json", str(log_lines(tmp_path / "app.log", [1000, 2000, 3000]))])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["lines"], doc["events_used"], doc["skipped"]["not_json"]) == (4, 3, 1)
    [event] = [e for e in doc["events"] if e["event"] == "workflow_timing"]
    fields = {f["field"]: f for f in event["fields"]}
    assert fields["workflow_total_ms"]["max"] == 3000 and fields["workflow_total_ms"]["count"] == 3


def test_report_with_the_manifest_gates_on_its_budgets(tmp_path: Path) -> None:
    within = run(["report", "--manifest", "telemetry.yaml", str(log_lines(tmp_path / "a.log", [1000] * 20))])
    assert within.returncode == 0, within.stdout + within.stderr
    assert "all budgets met" in within.stdout
    slow = run(["report", "--manifest", "telemetry.yaml", str(log_lines(tmp_path / "b.log", [31000] * 20))])
    assert slow.returncode == 1
    assert "workflow_total_ms" in slow.stdout and "budget(s) breached" in slow.stdout


def test_report_budgets_option_accepts_the_manifest_too(tmp_path: Path) -> None:
    proc = run(["report", "--json", "--budgets", "telemetry.yaml", str(log_lines(tmp_path / "a.log", [40000]))])
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    breached = [b for b in doc["budgets"] if b["field"] == "workflow_total_ms"]
    assert breached and breached[0]["limit"] == 30000 and breached[0]["observed"] == 40000


def test_version_and_missing_or_unknown_commands() -> None:
    version = run(["--version"])
    assert version.returncode == 0 and version.stdout.startswith("autoinstrument ")
    assert run([]).returncode == 2
    unknown = run(["frobnicate"])
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_python_dash_m_autoinstrument_dispatches_like_the_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autoinstrument", "check", "telemetry.yaml"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("autoinstrument check: telemetry.yaml")


def test_main_forwards_report_arguments_in_process(capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--top", "-1"]) == 2
    assert "--top must be >= 0" in capsys.readouterr().err


def test_report_takes_each_events_exact_total_field_from_the_manifest(
    write_manifest, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # `item_saved` / `save_ms` breaks the naming convention: only the manifest knows they belong together.
    manifest = write_manifest(
        LOG_SECTION
        + "web:\n  app: fixture_app.checked_web:app\n  routes:\n"
        + "    POST /api/items/{item_id}/publish: {field: save_ms, event: item_saved}\n"
        + "budgets:\n  save_ms: {max: 500}\n"
    )
    log = tmp_path / "web.log"
    log.write_text(
        "\n".join(
            json.dumps({"message": name, "correlation_id": cid, "save_ms": ms, "status_code": code})
            for name, cid, ms, code in [("item_saved", "a", 300, 200), ("item_saved_error", "b", 900, 500)]
        )
        + "\n",
        encoding="utf-8",
    )
    assert main(["report", "--json", str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["slowest"] == []  # the convention finds no total
    assert main(["report", "--json", "--manifest", manifest, str(log)]) == 1  # max 900 > 500
    doc = json.loads(capsys.readouterr().out)
    [slowest] = doc["slowest"]
    assert slowest["total_field"] == "save_ms"
    assert [run["correlation_id"] for run in slowest["runs"]] == ["b", "a"]
    assert doc["budgets"][0]["field"] == "save_ms" and doc["budgets"][0]["observed"] == 900


def test_report_with_an_invalid_manifest_is_an_error_naming_the_line(
    write_manifest, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = write_manifest(LOG_SECTION + "budgets:\n  nothing_ms: 100\n")
    log = tmp_path / "x.log"
    log.write_text("", encoding="utf-8")
    assert main(["report", "--manifest", manifest, str(log)]) == 2
    assert f"{manifest}:6: budgets.nothing_ms: no scope, stage or route produces this field" in capsys.readouterr().err


@pytest.mark.slow
def test_check_build_app_verifies_every_route_of_the_real_web_app(tmp_path: Path) -> None:
    sample = subprocess.run(
        [str(SCRIPT.parent / "publisher-sample"), "--count", "2", str(tmp_path / "lib")],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sample.returncode == 0, sample.stderr
    proc = run(["check", "--build-app", "telemetry.yaml"], CONFIG_PATH=str(tmp_path / "lib" / "publisher.ini"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    routes = [line for line in proc.stdout.splitlines() if " /api/images/" in line]
    assert len(routes) == 3 and all(line.startswith("OK ") for line in routes)
    assert proc.stdout.splitlines()[-1].endswith("0 skipped, 0 failed")
