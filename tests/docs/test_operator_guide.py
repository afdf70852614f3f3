"""`docs_v2/operator-guide.md` works as written on the sample configuration (issue 13).

Every stage example is added to the shipped manifest and run: its field must appear in `workflow_timing`.
Every field the guide lists for `workflow_timing` appears in a real run, the pasted event has the keys a real
run has, the commands it shows run, and the web publish example carries the per-platform fields.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from publisher_v2.cli.sample import main as make_sample
from tests.conftest import BIN, REPO_ROOT, json_events
from tests.manifest_fields import platform_fields

GUIDE = REPO_ROOT / "docs_v2" / "operator-guide.md"
MANIFEST = REPO_ROOT / "telemetry.yaml"
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
STAGE_LINE = re.compile(r"^\s*([\w.]+:[\w.]+):\s*([a-z][a-z0-9_]*_ms)\s*$")
PER_PLATFORM = platform_fields()  # telegram, instagram, email: read from telemetry.yaml

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_env")]


def blocks(language: str) -> List[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


def stage_examples() -> List[Tuple[str, str]]:
    found = [m.groups() for body in blocks("yaml") for m in map(STAGE_LINE.match, body.splitlines()) if m]
    assert found, "the guide shows how to add a stage"
    return found  # type: ignore[return-value]


def section(title: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start : end if end != -1 else len(text)]


def workflow_timing_table_fields() -> List[str]:
    rows = [line for line in section("### `workflow_timing`").splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])]


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """A folder laid out as the guide assumes: `sample_library/` and `telemetry.yaml` side by side."""
    assert make_sample([str(tmp_path / "sample_library"), "--count", "4", "--seed", "7"]) == 0
    (tmp_path / "telemetry.yaml").write_text(MANIFEST.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def run(cwd: Path, command: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    full = dict(os.environ)  # clean_env has removed secrets and telemetry switches
    full.update(env)
    return subprocess.run(command, cwd=str(cwd), env=full, capture_output=True, text=True, timeout=180)


def timing_event(stderr: str) -> dict:
    events = json_events(stderr)
    faults = [e for e in events if e["message"] == "autoinstrument_fault"]
    assert faults == [], faults
    (timing,) = [e for e in events if e["message"] == "workflow_timing"]
    return timing


def publish_with(cwd: Path, manifest: Path) -> dict:
    done = run(
        cwd,
        [str(BIN / "publisher"), "--config", "sample_library/publisher.ini"],
        {"PUBLISHER_AUTOINSTRUMENT": "1", "PUBLISHER_TELEMETRY_MANIFEST": str(manifest)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return timing_event(done.stderr)


@pytest.mark.parametrize(("target", "field"), stage_examples())
def test_each_stage_example_produces_its_field_on_the_sample_configuration(
    sample_dir: Path, target: str, field: str
) -> None:
    manifest = sample_dir / "telemetry.yaml"
    text = manifest.read_text(encoding="utf-8")
    if f"{target}:" not in text:
        text = text.replace("\nstages:\n", f"\nstages:\n  {target}: {field}\n", 1)
        manifest.write_text(text, encoding="utf-8")
    assert f"{target}:" in manifest.read_text(encoding="utf-8")
    timing = publish_with(sample_dir, manifest)
    assert isinstance(timing.get(field), int) and timing[field] >= 0, (field, timing)
    assert timing["stage_calls"][field] == 1


def test_every_listed_workflow_timing_field_is_in_a_real_run(sample_dir: Path) -> None:
    listed = workflow_timing_table_fields()
    assert {"publish_parallel_ms", *PER_PLATFORM} <= set(listed)
    timing = publish_with(sample_dir, sample_dir / "telemetry.yaml")
    missing = [name for name in listed if name not in timing]
    assert missing == [], (missing, timing)


def test_the_pasted_workflow_timing_event_has_the_keys_of_a_real_one(sample_dir: Path) -> None:
    (pasted,) = [json.loads(body) for body in blocks("json") if '"workflow_timing"' in body]
    timing = publish_with(sample_dir, sample_dir / "telemetry.yaml")
    assert set(pasted) == set(timing) and set(pasted["stage_calls"]) == set(timing["stage_calls"])
    summary = next(b for b in blocks("text") if b.startswith("Published "))
    assert f"[correlation_id={pasted['correlation_id']}]" in summary and pasted["image_name"] in summary


def guide_commands() -> List[str]:
    """The guide's one-line commands of the publisher and of `autoinstrument check` (not servers, not &&)."""
    found = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if "&&" in line or "uvicorn" in line or "||" in line:
                continue
            if re.search(r"\.venv/bin/(publisher|python -m publisher_v2|autoinstrument check) ", line):
                found.append(line)
    assert len(found) >= 3, found
    return found


@pytest.mark.parametrize("line", guide_commands())
def test_each_command_of_the_guide_runs_as_written(sample_dir: Path, line: str) -> None:
    words = shlex.split(line)
    env = {}
    while "=" in words[0]:
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    command = [str(BIN / w[len(".venv/bin/") :]) if w.startswith(".venv/bin/") else w for w in words]
    done = run(sample_dir, command, env)
    assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
    if env.get("PUBLISHER_AUTOINSTRUMENT") == "1":
        timing = timing_event(done.stderr)
        assert set(PER_PLATFORM) <= set(timing), timing
        assert done.stdout.startswith("Published ")


def test_the_web_publish_example_carries_the_per_platform_fields() -> None:
    examples = (REPO_ROOT / "docs_v2" / "examples.md").read_text(encoding="utf-8")
    # The web publish event (the app's own, with the telemetry's fields merged in) is the one with web_publish_ms.
    (line,) = [x for x in examples.splitlines() if '"web_publish_ms"' in x]
    event = json.loads(line)
    assert {"publish_parallel_ms", *PER_PLATFORM} <= set(event), event
