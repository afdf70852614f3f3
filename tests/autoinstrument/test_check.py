"""`autoinstrument check`: every target resolved without running the app, every fault named with its YAML line.

The targets are real modules of the fixture app (`fixture_app/checked*.py`); nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, List

import pytest
from fixture_app import checked, checked_web
from telemetry_testkit import LOG_SECTION, REPO, subprocess_env

from autoinstrument.check import FAIL, OK, SKIP, CheckReport, Result, main, render_text, run_check
from autoinstrument.runtime import install as hooks

Write = Callable[[str], str]


def line_of(path: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle` (how an operator would find it)."""
    for number, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def only(report: CheckReport, status: str) -> List[Result]:
    return [r for r in report.results if r.status == status]


def the_failure(report: CheckReport) -> Result:
    failures = only(report, FAIL)
    assert len(failures) == 1, render_text(report)
    return failures[0]


def stages(write_manifest: Write, body: str) -> str:
    return write_manifest(LOG_SECTION + "stages:\n" + textwrap.indent(textwrap.dedent(body), "  "))


# ---------------------------------------------------------------------------------------------- good manifests


def test_every_kind_of_target_is_ok_with_its_kind_and_nothing_is_called(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:Kinds.plain: plain_ms
        fixture_app.checked:Kinds.coro: coro_ms
        fixture_app.checked:Kinds.gen: gen_ms
        fixture_app.checked:Kinds.agen: agen_ms
        fixture_app.checked:Kinds.make: make_ms
        fixture_app.checked:Kinds.pure: pure_ms
        fixture_app.checked:ChildKinds.plain: child_plain_ms
        fixture_app.checked:helper: helper_ms
        """,
    )
    report = run_check(path)
    assert report.ok, render_text(report)
    kinds = {r.field: r.kind for r in report.results if r.section == "stages"}
    assert kinds == {
        "plain_ms": "sync",
        "coro_ms": "async",
        "gen_ms": "generator",
        "agen_ms": "async generator",
        "make_ms": "sync, classmethod",
        "pure_ms": "sync, staticmethod",
        "child_plain_ms": "sync, inherited from Kinds",
        "helper_ms": "sync",
    }
    text = render_text(report)
    line = line_of(path, "Kinds.coro")
    assert f"OK   {line:>3}  fixture_app.checked:Kinds.coro  -> coro_ms  (async)" in text
    assert checked.CALLED == []
    assert "plain" not in vars(checked.ChildKinds)  # nothing was installed on the classes


def test_the_shipped_telemetry_yaml_is_all_ok_or_skip() -> None:
    report = run_check(str(REPO / "telemetry.yaml"))
    assert report.ok, render_text(report)
    assert {r.status for r in report.results} <= {OK, SKIP}
    targets = {r.target for r in report.results}
    assert "publisher_v2.core.workflow:WorkflowOrchestrator.execute" in targets
    assert "POST /api/images/{filename}/publish" in targets
    scope = next(r for r in report.results if r.section == "scopes")
    assert scope.kind == "async, scope: event workflow_timing" and scope.field == "workflow_total_ms"


def test_a_scope_and_the_log_section_are_resolved(write_manifest: Write) -> None:
    path = write_manifest(
        LOG_SECTION
        + """
scopes:
  fixture_app.workflow:Orchestrator.execute: {event: workflow_timing, total: workflow_total_ms}
"""
    )
    report = run_check(path)
    assert report.ok, render_text(report)
    sections = {r.section: r for r in report.results}
    assert sections["log.function"].kind == "log function"
    assert sections["log.correlation"].kind == "correlation ContextVar"
    assert sections["scopes"].line == line_of(path, "Orchestrator.execute")


def test_a_base_and_subclass_on_one_shared_field_are_counted_once_so_ok(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:Storage.list_images: {field: list_images_ms, shared: true}
        fixture_app.checked:CachedStorage.list_images: {field: list_images_ms, shared: true}
        """,
    )
    report = run_check(path)
    assert report.ok, render_text(report)


def test_an_installed_wrapper_is_looked_through_and_then_removed(write_manifest: Write) -> None:
    path = stages(write_manifest, "fixture_app.checked:Kinds.coro: coro_ms\n")
    original = vars(checked.Kinds)["coro"]
    assert hooks.install(path) is True
    assert vars(checked.Kinds)["coro"] is not original
    report = run_check(path)
    assert report.ok and only(report, OK)[-1].kind == "async"
    assert vars(checked.Kinds)["coro"] is original  # check never leaves wrappers behind


# ---------------------------------------------------------------------------------------------- target faults


def test_a_missing_module_file_fails_on_its_line(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:helper: helper_ms
        fixture_app.renamed_module:Thing.run: run_ms
        """,
    )
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "renamed_module")
    assert failure.detail.startswith("module 'fixture_app.renamed_module' not found")


def test_a_missing_top_level_package_fails(write_manifest: Write) -> None:
    path = stages(write_manifest, "no_such_package_xyz.mod:Thing.run: run_ms\n")
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "no_such_package_xyz")
    assert "not found" in failure.detail


@pytest.mark.parametrize(
    "target, expected",
    [
        ("fixture_app.checked:Kinds.renamed", "'renamed'"),
        ("fixture_app.checked:Renamed.plain", "'Renamed'"),
        ("fixture_app.checked:gone_function", "'gone_function'"),
    ],
)
def test_a_missing_attribute_fails_on_its_line(write_manifest: Write, target: str, expected: str) -> None:
    path = stages(write_manifest, f"fixture_app.checked:helper: helper_ms\n{target}: gone_ms\n")
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, target)
    assert failure.detail.startswith("attribute not found") and expected in failure.detail


@pytest.mark.parametrize(
    "attr, expected",
    [
        ("prop", "is a property"),
        ("cached", "is a cached_property"),
        ("limit", "is a int, not callable"),
        ("handler", "is a partial object, not a Python function"),
    ],
)
def test_a_descriptor_or_non_function_target_fails(write_manifest: Write, attr: str, expected: str) -> None:
    path = stages(write_manifest, f"fixture_app.checked:Kinds.{attr}: x_ms\n")
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, f"Kinds.{attr}")
    assert expected in failure.detail
    assert checked.CALLED == []


def test_a_generator_cannot_be_a_scope(write_manifest: Write) -> None:
    path = write_manifest(
        LOG_SECTION + "scopes:\n  fixture_app.checked:Kinds.gen: {event: gen_done, total: gen_total_ms}\n"
    )
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "Kinds.gen")
    assert "a scope must be a plain or async function, not a generator function" in failure.detail


def test_base_and_subclass_overlap_on_different_fields_fails_on_the_subclass_line(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:Storage.list_images: list_images_ms
        fixture_app.checked:CachedStorage.list_images: cached_list_ms
        """,
    )
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "CachedStorage.list_images")
    base_line = line_of(path, "checked:Storage.list_images")
    assert f"overlaps fixture_app.checked:Storage.list_images (line {base_line})" in failure.detail
    assert "super()" in failure.detail


def test_an_inherited_method_listed_on_base_and_child_is_not_an_overlap(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:Kinds.plain: plain_ms
        fixture_app.checked:ChildKinds.plain: child_plain_ms
        """,
    )
    assert run_check(path).ok


def test_a_missing_third_party_dependency_is_skipped_with_the_reason(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked_optional:Client.fetch: fetch_ms
        fixture_app.checked:Lazy.fetch: lazy_fetch_ms
        """,
    )
    report = run_check(path)
    assert report.ok, render_text(report)
    skipped = only(report, SKIP)
    assert [r.line for r in skipped] == [line_of(path, "checked_optional"), line_of(path, "Lazy.fetch")]
    assert all("optional dependency 'ai_missing_sdk' is not installed" in r.detail for r in skipped)
    assert f"SKIP {skipped[0].line:>3}  fixture_app.checked_optional:Client.fetch  -> fetch_ms: " in render_text(
        report
    )


def test_a_missing_module_of_the_targets_own_package_fails(write_manifest: Write) -> None:
    path = stages(write_manifest, "fixture_app.checked_broken:Client.fetch: fetch_ms\n")
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "checked_broken")
    assert "imports 'fixture_app.no_such_module', which does not exist" in failure.detail


def test_a_log_function_that_is_not_callable_and_a_correlation_that_is_not_a_contextvar_fail(
    write_manifest: Write,
) -> None:
    path = write_manifest(
        """
log:
  function: fixture_app.checked:CALLED
  correlation: fixture_app.checked:helper
"""
    )
    report = run_check(path)
    failures = {r.section: r for r in only(report, FAIL)}
    assert failures["log.function"].line == line_of(path, "function:")
    assert "is a list, not callable" in failures["log.function"].detail
    assert failures["log.correlation"].line == line_of(path, "correlation:")
    assert "not a contextvars.ContextVar" in failures["log.correlation"].detail


# ---------------------------------------------------------------------------------------------- manifest faults


@pytest.mark.parametrize(
    "body, needle, message",
    [
        ("stages:\n  fixture_app.checked:helper: helper_ms\nstagse: {}\n", "stagse", "unknown key"),
        ("stages:\n  fixture_app.checked:helper: helper_time\n", "helper_time", "must be lower_snake_case"),
        (
            "stages:\n  fixture_app.checked:helper: a_ms\n  fixture_app.checked:Kinds.plain: b_ms\n"
            "  fixture_app.checked:helper: c_ms\n",
            "c_ms",
            "duplicate key (first written on line",
        ),
        (
            "stages:\n  fixture_app.checked:Kinds.plain: same_ms\n"
            "  fixture_app.checked:Kinds.coro: {field: same_ms, shared: true}\n",
            "Kinds.plain",
            "is mapped from several targets",
        ),
        ("stages:\n  fixture_app.checked.helper: helper_ms\n", "checked.helper", "malformed target"),
        ("stages:\n  __main__:main: main_ms\n", "__main__", "cannot be hooked by name"),
        (
            "web:\n  app: fixture_app.checked_web:app\n  routes:\n    /items/{item_id}: item_ms\n",
            "/items/",
            "a route must be 'METHOD /template'",
        ),
        (
            "stages:\n  fixture_app.checked:helper: helper_ms\nbudgets:\n  nothing_ms: 100\n",
            "nothing_ms",
            "no scope, stage or route produces this field",
        ),
    ],
    ids=[
        "unknown-key",
        "field-not-ms",
        "duplicate-key",
        "field-not-shared",
        "malformed-target",
        "main-module",
        "route-without-method",
        "budget-without-producer",
    ],
)
def test_every_loader_error_is_a_fail_naming_its_yaml_line(
    write_manifest: Write, body: str, needle: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    path = write_manifest(LOG_SECTION + body)
    report = run_check(path)
    failures = [r for r in only(report, FAIL) if r.section == "manifest"]
    assert failures, render_text(report)
    assert failures[0].line == line_of(path, needle)
    assert message in failures[0].detail
    assert main([path]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {failures[0].line:>3}  " in out and message in out


def test_an_invalid_manifest_still_resolves_the_targets_on_good_lines(write_manifest: Write) -> None:
    path = stages(
        write_manifest,
        """
        fixture_app.checked:helper: helper_time
        fixture_app.checked:Kinds.coro: coro_ms
        fixture_app.checked:Kinds.renamed: renamed_ms
        """,
    )
    report = run_check(path)
    by_line = {r.line: r for r in report.results}
    assert by_line[line_of(path, "helper_time")].section == "manifest"
    assert by_line[line_of(path, "Kinds.coro")].status == OK
    assert by_line[line_of(path, "Kinds.renamed")].status == FAIL
    assert "attribute not found" in by_line[line_of(path, "Kinds.renamed")].detail


def test_an_unreadable_manifest_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the manifest" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- web section


def web_manifest(write_manifest: Write, app: str, routes: str) -> str:
    return write_manifest(
        LOG_SECTION + f"web:\n  app: fixture_app.checked_web:{app}\n  routes:\n"
        + textwrap.indent(textwrap.dedent(routes), "    ")
    )


def test_routes_of_an_app_built_at_import_are_verified(write_manifest: Write) -> None:
    path = web_manifest(
        write_manifest,
        "app",
        """
        GET /items/{item_id}: item_ms
        POST /api/items/{item_id:str}/publish: {field: publish_ms, event: item_published}
        """,
    )
    report = run_check(path)
    assert report.ok, render_text(report)
    routes = [r for r in report.results if r.section == "web.routes"]
    assert [r.kind for r in routes] == [
        "route, event item / item_error",
        "route, event item_published / item_published_error",
    ]


def test_a_route_the_app_does_not_serve_fails_on_its_line(write_manifest: Write) -> None:
    path = web_manifest(
        write_manifest,
        "app",
        """
        GET /items/{item_id}: item_ms
        GET /api/items/{item_id}/publish: publish_ms
        POST /items/{item_id}/renamed: renamed_ms
        """,
    )
    report = run_check(path)
    failures = only(report, FAIL)
    assert [(r.line, r.detail) for r in failures] == [
        (line_of(path, "GET /api/items"), "the app serves /api/items/{item_id}/publish only for POST"),
        (line_of(path, "renamed"), "no such route template in the app"),
    ]


def test_a_lazily_built_app_is_not_built_and_its_routes_are_unverified(write_manifest: Write) -> None:
    path = web_manifest(write_manifest, "lazy_app", "GET /lazy: lazy_ms\nGET /gone: gone_ms\n")
    report = run_check(path)
    assert report.ok, render_text(report)
    assert checked_web.BUILT == []
    app_line = next(r for r in report.results if r.section == "web.app")
    assert app_line.status == OK and "built lazily" in app_line.kind
    assert {r.status for r in report.results if r.section == "web.routes"} == {SKIP}
    assert all("unverified" in r.detail for r in only(report, SKIP))


def test_build_app_builds_a_lazy_app_and_verifies_its_routes(write_manifest: Write) -> None:
    path = web_manifest(write_manifest, "lazy_app", "GET /lazy: lazy_ms\nGET /gone: gone_ms\n")
    report = run_check(path, build_app=True)
    assert checked_web.BUILT == ["lazy_app"]
    failure = the_failure(report)
    assert failure.line == line_of(path, "/gone") and failure.detail == "no such route template in the app"


@pytest.mark.parametrize(
    "app, message",
    [
        ("renamed_app", "has no attribute 'renamed_app'"),
        ("not_an_app", "not a Starlette/FastAPI application"),
    ],
)
def test_a_web_app_that_is_missing_or_not_an_app_fails(write_manifest: Write, app: str, message: str) -> None:
    # checked_web has a module __getattr__, so a missing name only shows when it is built
    path = web_manifest(write_manifest, app, "GET /items/{item_id}: item_ms\n")
    report = run_check(path, build_app=True)
    failure = the_failure(report)
    assert failure.line == line_of(path, "app:")
    assert message in failure.detail
    assert [r.status for r in report.results if r.section == "web.routes"] == [SKIP]


def test_a_web_app_module_without_the_name_or_a_getattr_fails(write_manifest: Write) -> None:
    path = write_manifest(LOG_SECTION + "web:\n  app: fixture_app.kinds:application\n")
    failure = the_failure(run_check(path))
    assert failure.line == line_of(path, "app:")
    assert failure.detail == (
        "module 'fixture_app.kinds' has no attribute 'application' (and no module __getattr__ to build it)"
    )


# ---------------------------------------------------------------------------------------------- output


def test_json_output_lists_every_result_with_status_and_line(
    write_manifest: Write, capsys: pytest.CaptureFixture
) -> None:
    path = stages(write_manifest, "fixture_app.checked:helper: helper_ms\nfixture_app.checked:nope: n_ms\n")
    assert main([path, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["counts"] == {"ok": 3, "skip": 0, "fail": 1}
    failed = [r for r in doc["results"] if r["status"] == "FAIL"]
    assert failed[0]["line"] == line_of(path, "checked:nope") and failed[0]["target"] == "fixture_app.checked:nope"


def test_check_says_why_path_parameters_would_be_withheld_without_log_redact(write_manifest: Write) -> None:
    """Issue 22 item 7: without `log.redact` the stderr fallback withholds path parameters; `check` says so
    (installed console script, real process), and says nothing once a redaction function is named."""
    script = Path(sys.executable).parent / "autoinstrument"
    routes = "GET /items/{item_id}: item_ms\nPOST /api/items/{item_id}/publish: publish_ms\n"
    bare = web_manifest(write_manifest, "app", routes)
    redacted = write_manifest(
        LOG_SECTION + "  redact: fixture_app.applog:redact_text\n"
        + "web:\n  app: fixture_app.checked_web:app\n  routes:\n" + textwrap.indent(routes, "    ")
    )
    env = subprocess_env()
    out = subprocess.run([str(script), "check", bare], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (note,) = [line for line in out.stdout.splitlines() if line.startswith("note: ")]
    line = next(n for n, text in enumerate(Path(bare).read_text().splitlines(), 1) if "/items/" in text)
    assert f"GET /items/{{item_id}} (line {line}) and 1 more are, whenever the log function fails," in note
    assert "name a str -> str function as log.redact" in note
    quiet = subprocess.run([str(script), "check", redacted], env=env, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "note:" not in quiet.stdout
    as_json = subprocess.run([str(script), "check", "--json", bare], env=env, capture_output=True, text=True,
                             timeout=120)
    assert json.loads(as_json.stdout)["notes"] == [note[len("note: "):]]
