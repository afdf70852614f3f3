"""The library installed alone (issue 20): its own wheel, built from this repository
(packaging/autoinstrument/pyproject.toml), in a fresh venv WITHOUT publisher_v2: only wrapt and pyyaml come with
it, `autoinstrument.__version__` is its own metadata's, and a small app of one's own (tests' fixture_app) gets
its timing event through the start-up switch alone. The test process itself keeps running the repository's own
autoinstrument/ source (the dev install is editable and nothing here installs into it)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from telemetry_testkit import HERE, REPO, WORKFLOW_MANIFEST

import autoinstrument
from autoinstrument._version import __version__ as LIBRARY_VERSION

pytestmark = pytest.mark.slow

PROBE = """
import importlib.metadata as md, json, autoinstrument
print(json.dumps({
    "file": autoinstrument.__file__,
    "version": autoinstrument.__version__,
    "requires": md.requires("autoinstrument"),
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
}))
"""


def test_the_library_installs_alone_from_its_own_wheel_and_times_an_app(tmp_path: Path) -> None:
    assert Path(autoinstrument.__file__).resolve().parent == REPO / "autoinstrument"  # the source, not a copy
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO / "packaging" /
                                                                                          "autoinstrument")],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("autoinstrument-*.whl")
    assert wheel.name == f"autoinstrument-{LIBRARY_VERSION}-py3-none-any.whl"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True,
                               text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=120, env=clean,
                           cwd=str(tmp_path))
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(env_dir)) and found["version"] == LIBRARY_VERSION
    assert sorted(r.split(">")[0].split("<")[0].split(";")[0].strip().lower() for r in found["requires"]
                  if "extra ==" not in r) == ["pyyaml", "wrapt"]
    third_party = set(found["dists"]) - {"autoinstrument", "pip", "setuptools"}
    assert third_party == {"pyyaml", "wrapt"}, found["dists"]  # no publisher_v2, fastapi, pydantic, orjson...
    version = subprocess.run([str(env_dir / "bin" / "autoinstrument"), "--version"], capture_output=True,
                             text=True, timeout=120, env=clean)
    assert version.returncode == 0 and version.stdout.strip() == f"autoinstrument {LIBRARY_VERSION}"

    # A small app of one's own, timed through the start-up switch alone (the wheel's .pth hook).
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(WORKFLOW_MANIFEST.lstrip("\n"), encoding="utf-8")
    app_env = dict(clean, AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest), PYTHONPATH=str(HERE))
    run = subprocess.run([str(python), "-m", "fixture_app"], capture_output=True, text=True, timeout=120,
                         env=app_env, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    (timing,) = [e for e in events if e["message"] == "workflow_timing"]
    assert timing["workflow_total_ms"] >= 0 and "image_selection_ms" in timing
    assert timing["correlation_id"] == json.loads(run.stdout)["correlation_id"]
    assert not [e for e in events if e["message"] == "autoinstrument_fault"]
