"""The manifest: valid files load into typed objects; every mistake names the file, the line and the key."""

from __future__ import annotations

import textwrap

import pytest
from telemetry_testkit import REPO

from autoinstrument.manifest import (
    Manifest,
    ManifestError,
    default_manifest_path,
    load_manifest,
    loads_manifest,
)

GOOD = """\
version: 1
log:
  function: app.logs:log_json
  logger: app.telemetry
  correlation: app.logs:correlation_id
scopes:
  app.flow:Runner.execute:
    event: workflow_timing
    total: workflow_total_ms
    result: [image_name, success]
stages:
  app.store:Local.list: {field: list_ms, shared: true}
  app.store:Remote.list: {field: list_ms, shared: true}
  app.flow:Runner._pick: pick_ms
  app.util:helper: helper_ms
web:
  app: app.web:app
  routes:
    GET /api/images/random: web_random_image_ms
    POST /api/images/{filename}/publish: {field: web_publish_ms, event: web_publish}
budgets:
  workflow_total_ms: 30000
  web_random_image_ms: {p95: 5000, max: 9000}
"""


def problems(text: str):
    with pytest.raises(ManifestError) as caught:
        loads_manifest(textwrap.dedent(text), "t.yaml")
    return caught.value.problems


def test_good_manifest_loads_into_typed_objects():
    m = loads_manifest(GOOD, "good.yaml")
    assert isinstance(m, Manifest)
    assert m.log.function.text == "app.logs:log_json" and m.log.logger == "app.telemetry"
    assert m.log.correlation.module == "app.logs" and m.log.correlation.attr == "correlation_id"
    (scope,) = m.scopes
    assert (scope.target.text, scope.event, scope.total, scope.result) == (
        "app.flow:Runner.execute",
        "workflow_timing",
        "workflow_total_ms",
        ("image_name", "success"),
    )
    assert scope.target.line == 7
    assert [(s.target.text, s.field, s.shared) for s in m.stages] == [
        ("app.store:Local.list", "list_ms", True),
        ("app.store:Remote.list", "list_ms", True),
        ("app.flow:Runner._pick", "pick_ms", False),
        ("app.util:helper", "helper_ms", False),
    ]
    routes = {(r.method, r.template): (r.field, r.event, r.error_event) for r in m.web.routes}
    assert routes == {
        ("GET", "/api/images/random"): ("web_random_image_ms", "web_random_image", "web_random_image_error"),
        ("POST", "/api/images/{filename}/publish"): ("web_publish_ms", "web_publish", "web_publish_error"),
    }
    assert m.web.request_header == "X-Request-ID" and m.web.response_header == "X-Correlation-ID"
    budgets = {b.field: b.limits for b in m.budgets}
    assert budgets == {
        "workflow_total_ms": {"p95": 30000.0},
        "web_random_image_ms": {"p95": 5000.0, "max": 9000.0},
    }


def test_the_repository_manifest_is_valid_and_names_every_workflow_field():
    m = load_manifest(str(REPO / "telemetry.yaml"))
    fields = set(m.fields())
    for name in (
        "workflow_total_ms",
        "dropbox_list_images_ms",
        "image_selection_ms",
        "vision_analysis_ms",
        "caption_generation_ms",
        "sidecar_write_ms",
        "publish_parallel_ms",
        "archive_ms",
        "web_random_image_ms",
        "web_analyze_ms",
        "web_publish_ms",
    ):
        assert name in fields
    shared = [s for s in m.stages if s.field == "dropbox_list_images_ms"]
    assert len(shared) == 2 and all(s.shared for s in shared)
    assert m.log.function.text == "publisher_v2.utils.logging:log_json"


def test_default_manifest_is_the_library_env_var_then_the_working_directorys(monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOINSTRUMENT_MANIFEST", raising=False)
    monkeypatch.setenv("PUBLISHER_TELEMETRY_MANIFEST", str(tmp_path / "app.yaml"))  # an app's alias: not ours
    assert default_manifest_path() == "telemetry.yaml"
    monkeypatch.setenv("AUTOINSTRUMENT_MANIFEST", str(tmp_path / "x.yaml"))
    assert default_manifest_path() == str(tmp_path / "x.yaml")


def test_unknown_key_names_file_line_and_key():
    (p,) = problems("""\
        version: 1
        stages:
          app.flow:Runner._pick: pick_ms
        stagse:
          app.flow:Runner.other: other_ms
        """)
    assert (p.path, p.line, p.key) == ("t.yaml", 4, "stagse")
    assert "unknown key" in p.message
    assert str(p).startswith("t.yaml:4: stagse: unknown key")


def test_unknown_key_inside_a_scope_is_reported_with_its_line():
    (p,) = problems("""\
        scopes:
          app.flow:Runner.execute:
            event: workflow_timing
            total: workflow_total_ms
            reslt: [image_name]
        """)
    assert p.line == 5 and p.key == "scopes.app.flow:Runner.execute.reslt"


def test_field_must_end_with_ms():
    (p,) = problems("""\
        stages:
          app.flow:Runner._pick: pick_seconds
        """)
    assert p.line == 2 and "_ms" in p.message and "pick_seconds" in p.message


def test_same_field_from_two_targets_is_an_error_unless_both_are_shared():
    found = problems("""\
        stages:
          app.store:Local.list: list_ms
          app.store:Remote.list: list_ms
        """)
    assert [p.line for p in found] == [2, 3]
    assert all("shared: true" in p.message and "list_ms" in p.message for p in found)
    # one side declaring it is not enough
    found = problems("""\
        stages:
          app.store:Local.list: {field: list_ms, shared: true}
          app.store:Remote.list: list_ms
        """)
    assert [p.line for p in found] == [3]


@pytest.mark.parametrize(
    "target",
    [
        "app.flow.Runner.execute",
        "app.flow:Runner:execute",
        "app flow:Runner",
        ":run",
        "app.flow:",
        "app.flow:1x",
        "__main__:main",
        "app.class:Runner.x",
    ],
)
def test_malformed_target_paths_are_rejected(target):
    (p,) = problems(f"""\
        stages:
          "{target}": x_ms
        """)
    assert p.line == 2
    assert "malformed" in p.message or "__main__" in p.message


def test_a_route_without_a_method_is_an_error():
    found = problems("""\
        web:
          app: app.web:app
          routes:
            /api/images/random: web_random_image_ms
            FETCH /api/x: web_x_ms
            get /api/y: web_y_ms
        """)
    assert [p.line for p in found] == [4, 5, 6]
    assert all("METHOD /template" in p.message for p in found)


def test_web_requires_an_app_and_valid_headers():
    found = problems("""\
        web:
          request_header: "X Request"
          routes: {}
        """)
    keys = {p.key for p in found}
    assert keys == {"web.app", "web.request_header"}


def test_duplicate_keys_are_refused_with_both_lines():
    (p,) = problems("""\
        stages:
          app.flow:Runner._pick: pick_ms
          app.flow:Runner._other: other_ms
          app.flow:Runner._pick: pick2_ms
        """)
    assert p.line == 4 and p.key == "app.flow:Runner._pick" and "line 2" in p.message


def test_budgets_must_name_a_known_field_and_be_positive():
    found = problems("""\
        stages:
          app.flow:Runner._pick: pick_ms
        budgets:
          pick_ms: -3
          unknown_ms: 100
          pick_seconds: 4
          other_ms: {p90: 1}
        """)
    by_line = {p.line: p.message for p in found}
    assert "positive" in by_line[4]
    assert "no scope, stage or route" in by_line[5]
    assert "_ms" in by_line[6]
    assert "unknown key" in by_line[7] or "no scope" in by_line[7]


def test_every_problem_is_listed_not_only_the_first():
    found = problems("""\
        version: 2
        stages:
          bad-target: x_ms
          app.flow:Runner._pick: pick
        """)
    assert [p.line for p in found] == [1, 3, 4]


def test_a_target_cannot_be_both_scope_and_stage_and_totals_do_not_collide():
    found = problems("""\
        scopes:
          app.flow:Runner.execute: {event: run, total: pick_ms}
        stages:
          app.flow:Runner.execute: run_ms
          app.flow:Runner._pick: pick_ms
        """)
    messages = " | ".join(p.message for p in found)
    assert "listed twice" in messages and "also a stage field" in messages


def test_unreadable_and_invalid_yaml_are_manifest_errors(tmp_path):
    with pytest.raises(ManifestError) as caught:
        load_manifest(str(tmp_path / "nope.yaml"))
    assert caught.value.key == "(file)" and "nope.yaml" in str(caught.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  a.b:C.d: [unclosed\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(str(bad))
    assert caught.value.line >= 2 and "not valid YAML" in str(caught.value)


def test_yaml_booleans_as_keys_are_not_silently_accepted():
    (p,) = problems("""\
        log:
          on: x
        """)
    assert p.line == 2 and "unknown key" in p.message


def test_manifest_error_is_exported_from_the_package():
    import autoinstrument

    assert autoinstrument.ManifestError is ManifestError
