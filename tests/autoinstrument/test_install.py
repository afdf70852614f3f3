"""install() and uninstall(): import-time hooks, idempotency, exact restoration, faults that break nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import uuid

import pytest
from fixture_app import kinds, workflow
from fixture_app.kinds import Base, Child
from telemetry_testkit import LOG_SECTION, events, installed_labels, stderr_events, subprocess_env

import autoinstrument
from autoinstrument.runtime import install as hooks


def manifest(stages: str, scopes: str = "") -> str:
    text = LOG_SECTION
    if scopes:
        text += "scopes:\n" + textwrap.indent(textwrap.dedent(scopes), "  ")
    return text + "stages:\n" + textwrap.indent(textwrap.dedent(stages), "  ")


@pytest.fixture
def fresh_module(tmp_path, monkeypatch):
    """A brand-new importable module (unique name) that nothing has imported yet."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(source: str) -> str:
        name = f"ai_fresh_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


def test_a_module_imported_after_install_is_wrapped_by_the_post_import_hook(write_manifest, fresh_module):
    name = fresh_module("""
        def work(x):
            return x * 2

        class Job:
            def run(self):
                return work(3)
        """)
    user = fresh_module(f"""
        from {name} import work as imported_work
        """)
    assert autoinstrument.install(write_manifest(manifest(f"{name}:work: work_ms\n{name}:Job.run: run_ms\n")))
    assert name not in sys.modules
    assert installed_labels()["pending"] == [f"{name}:work", f"{name}:Job.run"]
    module = importlib.import_module(name)
    assert module.work.__wrapped__(2) == 4 and module.Job.__dict__["run"].__wrapped__ is not None
    # a `from x import f` done after the hook fired sees the wrapper
    assert importlib.import_module(user).imported_work is module.work
    report = installed_labels()
    assert report["late"] == [] and report["pending"] == [] and len(report["wrapped"]) == 2
    assert module.Job().run() == 6


def test_targets_of_already_imported_modules_are_wrapped_at_once_and_reported_late(write_manifest):
    assert "fixture_app.kinds" in sys.modules
    assert autoinstrument.install(write_manifest(manifest("fixture_app.kinds:Base.plain: plain_ms\n")))
    assert Base.__dict__["plain"].__wrapped__ is not None
    (installed,) = events("autoinstrument_installed")
    assert installed["late"] == 1 and installed["wrapped"] == 1  # counts; the list is installed_targets()
    assert installed_labels()["late"] == ["fixture_app.kinds:Base.plain"]
    assert installed_labels()["wrapped"] == ["fixture_app.kinds:Base.plain (sync)"]
    assert "wrapt_version" not in installed  # the event lists targets, nothing about the mechanism


def test_a_second_install_is_a_no_op_and_never_nests(write_manifest):
    path = write_manifest(manifest("fixture_app.kinds:Base.plain: plain_ms\n"))
    original = Base.__dict__["plain"]
    assert autoinstrument.install(path) is True
    wrapper = Base.__dict__["plain"]
    assert autoinstrument.install(path) is False
    assert Base.__dict__["plain"] is wrapper and wrapper.__wrapped__ is original
    assert len(events("autoinstrument_installed")) == 1


def test_uninstall_restores_the_exact_original_objects(write_manifest):
    names = ("plain", "coro", "gen", "agen", "make", "pure", "recurse")
    originals = {n: vars(Base)[n] for n in names}
    original_function = kinds.module_function
    stages = "".join(f"fixture_app.kinds:Base.{n}: {n}_ms\n" for n in names)
    stages += (
        "fixture_app.kinds:Child.plain: child_plain_ms\nfixture_app.kinds:module_function: mf_ms\n"
    )
    for _ in range(2):  # install / uninstall cycles leave no residue
        assert autoinstrument.install(write_manifest(manifest(stages)))
        assert all(vars(Base)[n] is not originals[n] for n in names)
        assert "plain" in vars(Child)
        assert autoinstrument.uninstall() == len(names) + 2
        for n in names:
            assert vars(Base)[n] is originals[n], n
        assert "plain" not in vars(Child)
        assert kinds.module_function is original_function
    assert autoinstrument.uninstall() == 0


def test_a_property_is_refused_with_a_fault_naming_the_manifest_line(write_manifest):
    path = write_manifest(
        manifest(
            "fixture_app.kinds:Base.plain: plain_ms\nfixture_app.kinds:Base.prop: prop_ms\n"
            "fixture_app.kinds:not_a_function: naf_ms\n"
        )
    )
    assert autoinstrument.install(path)
    assert isinstance(vars(Base)["prop"], property) and Base().prop == 1
    assert vars(Base)["plain"].__wrapped__ is not None  # the good target is still wrapped
    faults = {f["target"]: f for f in events("autoinstrument_fault")}
    prop = faults["fixture_app.kinds:Base.prop"]
    assert prop["fault"] == "target_unusable" and "property" in prop["detail"] and prop["line"] == 7
    assert prop["manifest"] == path
    assert "NotAFunction" in faults["fixture_app.kinds:not_a_function"]["detail"]
    assert kinds.not_a_function() == 1
    report = installed_labels()
    assert len(report["missing"]) == 2 and len(report["wrapped"]) == 1


def test_missing_modules_and_attributes_are_reported_once_and_break_nothing(write_manifest):
    path = write_manifest(
        manifest(
            "fixture_app.gone:Thing.run: gone_ms\n"
            "fixture_app.kinds:Base.renamed: renamed_ms\n"
            "fixture_app.workflow:Orchestrator._select_image: image_selection_ms\n",
            scopes="fixture_app.workflow:Orchestrator.execute:"
            " {event: workflow_timing, total: workflow_total_ms}\n",
        )
    )
    assert autoinstrument.install(path)
    result = workflow.run()
    workflow.run()
    assert result.success
    faults = events("autoinstrument_fault")
    assert sorted(f["target"] for f in faults) == [
        "fixture_app.gone:Thing.run",
        "fixture_app.kinds:Base.renamed",
    ]
    by_target = {f["target"]: f for f in faults}
    gone, renamed = by_target["fixture_app.gone:Thing.run"], by_target["fixture_app.kinds:Base.renamed"]
    assert (gone["line"], renamed["line"]) == (line_of(path, "fixture_app.gone"), line_of(path, "Base.renamed"))
    assert gone["detail"].startswith("module 'fixture_app.gone' not found: manifest line")
    assert renamed["detail"] == "class Base has no attribute 'renamed'"  # plain words, not wrapt's text
    assert "PathResolutionError" not in repr(faults) and "unable to resolve" not in repr(faults)
    (installed,) = events("autoinstrument_installed")
    assert "fixture_app.gone:Thing.run (module 'fixture_app.gone' not found)" in installed["missing"]
    assert any(m.startswith("fixture_app.kinds:Base.renamed") for m in installed["missing"])
    assert len(events("workflow_timing")) == 2 and "image_selection_ms" in events("workflow_timing")[0]


def test_a_broken_manifest_installs_nothing_and_the_app_runs_unchanged(write_manifest, capsys):
    original = vars(Base)["plain"]
    path = write_manifest(manifest("fixture_app.kinds:Base.plain: plain_seconds\n"))
    assert autoinstrument.install(path) is False
    assert vars(Base)["plain"] is original and hooks.current() is None
    assert workflow.run().success
    (fault,) = [e for e in stderr_events(capsys.readouterr().err) if e["message"] == "autoinstrument_fault"]
    assert fault["fault"] == "manifest_invalid" and fault["manifest"] == path and fault["line"] == 6
    assert "_ms" in fault["detail"]


def test_a_missing_manifest_file_installs_nothing(tmp_path, capsys):
    assert autoinstrument.install(str(tmp_path / "absent.yaml")) is False
    (fault,) = stderr_events(capsys.readouterr().err)
    assert fault["fault"] == "manifest_invalid" and "cannot read" in fault["detail"]


def test_an_unimportable_log_function_falls_back_to_stderr(write_manifest, capsys):
    text = manifest(
        "fixture_app.workflow:Orchestrator._select_image: image_selection_ms\n",
        scopes="fixture_app.workflow:Orchestrator.execute: {event: workflow_timing, total: t_ms}\n",
    )
    text = text.replace("fixture_app.applog:log_json", "fixture_app.nolog:log_json")
    assert autoinstrument.install(write_manifest(text))
    result = workflow.run()
    lines = stderr_events(capsys.readouterr().err)
    (fault,) = [e for e in lines if e.get("fault") == "log_function_unusable"]
    assert fault["target"] == "fixture_app.nolog:log_json"
    (timing,) = [e for e in lines if e["message"] == "workflow_timing"]
    assert timing["correlation_id"] == result.correlation_id and "image_selection_ms" in timing


def test_installed_targets_lists_kinds_and_inheritance(write_manifest):
    assert autoinstrument.install(
        write_manifest(
            manifest(
                "fixture_app.kinds:Base.make: make_ms\nfixture_app.kinds:Child.gen: child_gen_ms\n"
                "fixture_app.kinds:Base.agen: agen_ms\n"
            )
        )
    )
    wrapped = installed_labels()["wrapped"]
    assert wrapped == [
        "fixture_app.kinds:Base.make (classmethod sync)",
        "fixture_app.kinds:Child.gen (generator, inherited)",
        "fixture_app.kinds:Base.agen (async generator)",
    ]


def test_installed_targets_are_records_with_state_kind_line_and_reason(write_manifest):
    from autoinstrument.runtime.install import TargetRecord

    assert autoinstrument.install(
        write_manifest(
            manifest(
                "fixture_app.kinds:Base.make: make_ms\nfixture_app.kinds:Child.gen: child_gen_ms\n"
                "fixture_app.kinds:Base.prop: prop_ms\nfixture_app.not_yet_written:job: job_ms\n"
            )
        )
    )
    records = {r.target: r for r in autoinstrument.installed_targets()}
    assert records["fixture_app.kinds:Base.make"] == TargetRecord(
        "fixture_app.kinds:Base.make", "late", "classmethod sync", 6, "", False
    )
    gen = records["fixture_app.kinds:Child.gen"]
    assert (gen.state, gen.kind, gen.line, gen.inherited) == ("late", "generator", 7, True)
    prop = records["fixture_app.kinds:Base.prop"]
    assert (prop.state, prop.line, prop.kind) == ("missing", 8, "") and "is a property" in prop.reason
    absent = records["fixture_app.not_yet_written:job"]
    assert (absent.state, absent.line) == ("missing", 9) and "not found" in absent.reason
    autoinstrument.uninstall()
    assert autoinstrument.installed_targets() == []


def test_a_generator_cannot_be_a_scope(write_manifest):
    path = write_manifest(
        manifest("", scopes="fixture_app.kinds:Base.gen: {event: gen_timing, total: gen_total_ms}\n")
    )
    assert autoinstrument.install(path)
    assert not hasattr(vars(Base)["gen"], "__wrapped__")
    (fault,) = events("autoinstrument_fault")
    assert fault["target"] == "fixture_app.kinds:Base.gen" and "plain or async function" in fault["detail"]
    assert list(Base().gen(2)) == [0, 1]


def line_of(path: str, text: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return next(number for number, line in enumerate(handle, 1) if text in line)


def test_a_module_missing_from_a_package_the_app_imports_later_is_reported_at_exit(tmp_path):
    """In a real process: a typo in a module name is pending until its package is imported, then reported."""
    path = tmp_path / "telemetry.yaml"
    path.write_text(manifest("fixture_app.workflow_typo:Orchestrator.run: run_ms\n"))
    code = f"import autoinstrument; autoinstrument.install({str(path)!r}); import fixture_app.workflow"
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (fault,) = [e for e in stderr_events(proc.stderr) if e["message"] == "autoinstrument_fault"]
    assert fault["fault"] == "target_missing" and fault["line"] == line_of(str(path), "workflow_typo")
    assert fault["detail"].startswith("module 'fixture_app.workflow_typo' not found")
