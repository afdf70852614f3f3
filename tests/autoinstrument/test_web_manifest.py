"""The manifest's `web:` routes: optional event names and JSON `result` keys, and templates that can be matched."""

from __future__ import annotations

import pytest
from telemetry_testkit import REPO

from autoinstrument.manifest import ManifestError, load_manifest, loads_manifest
from autoinstrument.web.ids import loggable, new_request_id, request_id_from
from autoinstrument.web.routes import compile_template


def test_the_repo_manifest_maps_the_three_routes_and_reads_publish_results():
    routes = {(r.method, r.template): r for r in load_manifest(str(REPO / "telemetry.yaml")).web.routes}
    publish = routes[("POST", "/api/images/{filename}/publish")]
    expected = ("web_publish_ms", "web_publish_complete", "web_publish_error")
    assert (publish.field, publish.event, publish.error_event) == expected
    assert publish.result == ("any_success", "archived")
    assert routes[("GET", "/api/images/random")].result == ()


@pytest.mark.parametrize(
    "template, message",
    [
        ("/a/{name", "a path parameter must be written"),
        ("/a/{na-me}", "a path parameter must be written"),
        ("/a/{x}/{x}", "used twice"),
        ("/a/{x:bogus}", "a path parameter must be written"),
    ],
)
def test_an_unmatchable_route_template_is_refused_with_its_line(template, message):
    with pytest.raises(ManifestError) as err:
        loads_manifest(f"web:\n  app: a.b:app\n  routes:\n    GET {template}: web_x_ms\n")
    assert err.value.line == 4 and message in str(err.value)


def test_a_result_entry_must_list_key_names():
    with pytest.raises(ManifestError, match="list of JSON key names"):
        loads_manifest("web:\n  app: a.b:app\n  routes:\n    GET /x: {field: web_x_ms, result: ok}\n")


def test_templates_compile_to_anchored_patterns_keyed_by_parameter():
    pattern = compile_template("/api/images/{filename}/analyze")
    assert pattern.fullmatch("/api/images/a.jpg/analyze").groupdict() == {"filename": "a.jpg"}
    assert pattern.fullmatch("/api/images/a/b.jpg/analyze") is None
    assert compile_template("/api/images/random") is None
    assert compile_template("/files/{rest:path}").fullmatch("/files/a/b").group("rest") == "a/b"


def test_request_id_policy_and_loggable_values():
    assert request_id_from(b"1-67891233-abcdef012345678912345678") == "1-67891233-abcdef012345678912345678"
    assert request_id_from(b"Root=1-6789") is None and request_id_from(b"") is None
    first, second = new_request_id(), new_request_id()
    assert first != second and first[14] == "4" and first[19] in "89ab" and len(first) == 36
    assert loggable("photo (1).jpg") == "photo (1).jpg"
    assert loggable("a\\b") == "a\\x5cb"


def test_pooled_request_ids_are_distinct_uuid4s_across_refills():
    import uuid

    ids = [new_request_id() for _ in range(1000)]  # many more than one batch
    assert len(set(ids)) == len(ids)
    for value in ids[:200]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_does_not_reuse_the_parents_pooled_ids():
    import os

    from autoinstrument.runtime import ids

    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    new_request_id()  # the pool now holds ids the parent will hand out next
    pending = set(ids._id_pool)
    assert pending
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the ids it would hand out, then leave at once
        os.close(read)
        os.write(write, ",".join(new_request_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    assert len(child_ids) == 5 and not child_ids & pending
