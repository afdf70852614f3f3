"""Start-up activation through the `.pth` lines: on with AUTOINSTRUMENT=1 (or an app's declared alias), nothing
imported until a target's package is, truly nothing when off."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from telemetry_testkit import HERE, LOG_SECTION, REPO, WORKFLOW_MANIFEST, stderr_events, subprocess_env

LOG_ONLY = LOG_SECTION.lstrip("\n")

PTH_SOURCE = REPO / "autoinstrument" / "autoinstrument.pth"
INSTALLED_PTH = Path(sysconfig.get_paths()["purelib"]) / "autoinstrument.pth"

PROBE = textwrap.dedent("""
    import json, sys
    import fixture_app.workflow as wf
    raw = vars(wf.Orchestrator)["_select_image"]
    print(json.dumps({
        "modules": sorted(m for m in ("autoinstrument", "wrapt", "yaml") if m in sys.modules),
        "finders": [type(f).__name__ for f in sys.meta_path],
        "wrapped": hasattr(raw, "__wrapped__"),
    }))
""")


@pytest.fixture
def fixture_manifest(tmp_path: Path) -> str:
    path = tmp_path / "telemetry.yaml"
    path.write_text(WORKFLOW_MANIFEST.lstrip("\n"))
    return str(path)


def run_python(code: str, env: dict, *args: str, sitedir: str = "") -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; with `sitedir`, that directory's .pth files are processed first."""
    if sitedir:
        code = f"import site; site.addsitedir({sitedir!r})\n" + code
    return subprocess.run(
        [sys.executable, *args, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(params=["installed", "pth-line"])
def activation(request, tmp_path: Path) -> str:
    """'installed': the .pth that `pip install` put in site-packages; 'pth-line': the source .pth via
    addsitedir."""
    if request.param == "installed":
        assert INSTALLED_PTH.is_file(), (
            f"{INSTALLED_PTH} is missing: run `pip install -e .` (or `pip install .`)"
        )
        assert INSTALLED_PTH.read_text() == PTH_SOURCE.read_text()
        return ""
    sitedir = tmp_path / "site"
    sitedir.mkdir()
    (sitedir / "autoinstrument.pth").write_text(PTH_SOURCE.read_text())
    return str(sitedir)


def test_the_pth_file_is_one_import_line_guarded_by_the_env_var():
    lines = PTH_SOURCE.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("import os;")
    assert '"AUTOINSTRUMENT"' in lines[0] and "autoinstrument._bootstrap" in lines[0]
    assert "publisher" not in lines[0].lower()


@pytest.mark.parametrize("value", [None, "0", "", "no"])
def test_with_the_env_var_off_nothing_is_imported_hooked_or_wrapped(activation, value):
    env = subprocess_env() if value is None else subprocess_env(AUTOINSTRUMENT=value)
    proc = run_python(PROBE, env, sitedir=activation)
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)
    assert probe == {"modules": [], "finders": probe["finders"], "wrapped": False}
    assert "ImportHookFinder" not in probe["finders"] and "_Trigger" not in probe["finders"]
    assert proc.stderr == ""


def test_with_the_env_var_on_targets_are_wrapped_when_imported(activation, fixture_manifest):
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=fixture_manifest)
    proc = run_python(PROBE, env, sitedir=activation)
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)
    assert probe["wrapped"] is True and "ImportHookFinder" in probe["finders"]
    assert "_Trigger" not in probe["finders"]  # disarmed by the first import of a target's package
    assert {"autoinstrument", "yaml", "wrapt"} <= set(probe["modules"])  # issue 20: wrapt is the mechanism
    # no scope ran, but the app's module was imported: the deferred report is flushed at exit
    (installed,) = [e for e in stderr_events(proc.stderr) if e["message"] == "autoinstrument_installed"]
    assert installed["late"] == 0 and installed["wrapped"] == 9


def test_python_dash_m_run_emits_the_workflow_event_with_the_result_correlation_id(
    activation, fixture_manifest
):
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=fixture_manifest)
    code = "import runpy; runpy.run_module('fixture_app', run_name='__main__')"
    proc = run_python(code, env, sitedir=activation)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    events = stderr_events(proc.stderr)
    messages = [e["message"] for e in events]
    assert messages.count("workflow_timing") == 1 and messages[0] == "autoinstrument_installed"
    timing = next(e for e in events if e["message"] == "workflow_timing")
    assert timing["correlation_id"] == result["correlation_id"]
    assert {e["correlation_id"] for e in events if e["message"] in ("workflow_start", "published")} == {
        result["correlation_id"]
    }


def test_a_pytest_process_is_instrumented_too(fixture_manifest, tmp_path):
    assert INSTALLED_PTH.is_file(), "pytest is started as a command: only the installed .pth can activate it"
    test_file = tmp_path / "test_inside.py"
    test_file.write_text(
        textwrap.dedent("""
        from autoinstrument.runtime import install as hooks
        import fixture_app.workflow as wf

        def test_wrapped():
            assert hooks.current() is not None
            assert hasattr(vars(wf.Orchestrator)["execute"], "__wrapped__")
    """)
    )
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=fixture_manifest)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_a_broken_manifest_at_start_up_never_breaks_the_app(activation, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  fixture_app.workflow:Orchestrator._select_image: selection\n")
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(bad))
    code = "import runpy; runpy.run_module('fixture_app', run_name='__main__')"
    proc = run_python(code, env, sitedir=activation)
    assert proc.returncode == 0 and json.loads(proc.stdout)["success"] is True
    events = stderr_events(proc.stderr)
    faults = [e for e in events if e["message"] == "autoinstrument_fault"]
    assert len(faults) == 1 and faults[0]["line"] == 2 and faults[0]["manifest"] == str(bad)
    assert not [e for e in events if e["message"] == "workflow_timing"]
    assert "Traceback" not in proc.stderr


def test_importing_the_package_alone_stays_cheap():
    code = "import sys, autoinstrument; print(sorted(m for m in ('yaml', 'wrapt') if m in sys.modules))"
    proc = run_python(code, subprocess_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


NO_TARGET = textwrap.dedent("""
    import json, sys
    import email.message, fixture_app.applog  # a stdlib package and a module outside the manifest's packages
    print(json.dumps({
        "modules": sorted(
            m for m in ("autoinstrument.runtime.install", "wrapt", "yaml", "asyncio") if m in sys.modules
        ),
        "finders": [type(f).__name__ for f in sys.meta_path],
    }))
""")


def test_a_process_that_never_imports_a_target_loads_nothing_heavy(activation, tmp_path):
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(WORKFLOW_MANIFEST.replace("fixture_app.", "fixture_shop.").lstrip("\n"))
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest), XDG_CACHE_HOME=str(tmp_path))
    first = run_python(NO_TARGET, env, sitedir=activation)  # a cache miss parses the manifest (yaml) once
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "autoinstrument").glob("manifest-*.modules"))
    second = run_python(NO_TARGET, env, sitedir=activation)
    assert second.returncode == 0, second.stderr
    probe = json.loads(second.stdout)
    assert probe["modules"] == [] and "_Trigger" in probe["finders"]
    assert second.stderr == ""


def test_an_edited_manifest_is_read_again(activation, tmp_path, fixture_manifest):
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=fixture_manifest, XDG_CACHE_HOME=str(tmp_path))
    assert json.loads(run_python(PROBE, env, sitedir=activation).stdout)["wrapped"] is True
    Path(fixture_manifest).write_text(LOG_ONLY + "stages:\n  fixture_app.workflow:Orchestrator.analyze: a_ms\n")
    probe = json.loads(run_python(PROBE, env, sitedir=activation).stdout)
    assert probe["wrapped"] is False  # _select_image is no longer a stage


def test_an_app_declares_its_own_switches_and_default_manifest(tmp_path, fixture_manifest):
    """What publisher_v2 ships as `publisher_v2-telemetry.pth`: its aliases and `package:file` default."""
    app_pth = (REPO / "telemetry.pth").read_text()
    assert '"PUBLISHER_AUTOINSTRUMENT"' in app_pth and '"publisher_v2:telemetry.yaml"' in app_pth
    sitedir = tmp_path / "site"
    sitedir.mkdir()
    (sitedir / "shop.pth").write_text(
        'import os; os.environ.get("SHOP_TELEMETRY", "") == "1" and __import__("autoinstrument._bootstrap")'
        '._bootstrap.activate("SHOP_TELEMETRY", "SHOP_MANIFEST", "fixture_app:shop_telemetry.yaml")\n'
    )
    env = subprocess_env(SHOP_TELEMETRY="1", SHOP_MANIFEST=fixture_manifest, XDG_CACHE_HOME=str(tmp_path))
    assert json.loads(run_python(PROBE, env, sitedir=str(sitedir)).stdout)["wrapped"] is True
    off = subprocess_env(SHOP_TELEMETRY="0", SHOP_MANIFEST=fixture_manifest)
    assert json.loads(run_python(PROBE, off, sitedir=str(sitedir)).stdout)["wrapped"] is False
    # No manifest variable: the default `fixture_app:shop_telemetry.yaml` is found beside the package.
    beside = HERE / "shop_telemetry.yaml"
    beside.write_text(Path(fixture_manifest).read_text())
    try:
        env = subprocess_env(SHOP_TELEMETRY="1", XDG_CACHE_HOME=str(tmp_path))
        assert json.loads(run_python(PROBE, env, sitedir=str(sitedir)).stdout)["wrapped"] is True
    finally:
        beside.unlink()


def test_an_unchanged_manifest_is_not_parsed_again(activation, fixture_manifest, tmp_path):
    """The second interpreter reads the validated manifest from the cache: yaml is never imported."""
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=fixture_manifest, XDG_CACHE_HOME=str(tmp_path))
    first = json.loads(run_python(PROBE, env, sitedir=activation).stdout)
    second = json.loads(run_python(PROBE, env, sitedir=activation).stdout)
    assert first["wrapped"] is True and "yaml" in first["modules"]
    assert second["wrapped"] is True and "yaml" not in second["modules"]
