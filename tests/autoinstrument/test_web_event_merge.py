"""One event per request: when the app logs a mapped route's event name itself, the telemetry merges its
fields into that ONE event (autoinstrument/merge.py), on a real FastAPI app written to tmp_path.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from fastapi.testclient import TestClient
from fixture_app import applog
from telemetry_testkit import LOG_SECTION

import autoinstrument

APP_SOURCE = """
from __future__ import annotations

import logging
import time

from fastapi import FastAPI, HTTPException

from fixture_app import applog

logger = logging.getLogger("fixture.app")


def lookup(name):
    time.sleep(0.02)
    return len(name)


app = FastAPI()


@app.get("/items/{name}")
async def item(name: str):
    size = lookup(name)
    applog.log_json(logger, logging.INFO, "item_served", name=name, size=size, route="app-route")
    return {"ok": True, "size": size}


@app.get("/twice")
def twice():
    applog.log_json(logger, logging.INFO, "web_twice", n=1)
    applog.log_json(logger, logging.INFO, "web_twice", n=2)
    applog.log_json(logger, logging.INFO, "something_else", n=3)
    return {"ok": True}


@app.get("/missing")
def missing():
    applog.log_json(logger, logging.INFO, "web_missing_error", error="no such thing")
    raise HTTPException(status_code=404, detail="no such thing")


@app.get("/broken")
def broken():
    applog.log_json(logger, logging.WARNING, "web_broken", stage="half")
    raise RuntimeError("kaboom")


@app.get("/quiet")
def quiet():
    return {"ok": True}


@app.get("/refused")
def refused():
    raise HTTPException(status_code=403, detail="no")


def nested_work():
    applog.log_json(logger, logging.INFO, "web_nested", inner=True)
    return 1


@app.get("/nested")
def nested():
    nested_work()
    return {"ok": True}


@app.get("/unmapped")
def unmapped():
    applog.log_json(logger, logging.INFO, "item_served", unmapped=True)
    return {"ok": True}
"""

ROUTES = """
  routes:
    GET /items/{name}: {field: web_item_ms, event: item_served, result: [ok]}
    GET /twice: web_twice_ms
    GET /missing: web_missing_ms
    GET /broken: web_broken_ms
    GET /quiet: web_quiet_ms
    GET /refused: web_refused_ms
    GET /nested: web_nested_ms
"""

_counter = [0]


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_manifest) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(tmp_path))
    _counter[0] += 1
    name = f"mergefixture_{_counter[0]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE, encoding="utf-8")
    stages = f"stages:\n  {name}:lookup: lookup_ms\n"
    stages += f"scopes:\n  {name}:nested_work: {{event: nested_timing, total: nested_total_ms}}\n"
    manifest = write_manifest(LOG_SECTION + stages + f"web:\n  app: {name}:app\n" + ROUTES)
    assert autoinstrument.install(manifest)
    try:
        yield importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


def named(name: str) -> List[Dict[str, Any]]:
    return applog.events(name)


def test_the_apps_event_and_the_telemetry_are_one_event(app_module):
    with TestClient(app_module.app) as client:
        response = client.get("/items/one.jpg", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200 and response.json() == {"ok": True, "size": 7}
    (event,) = named("item_served")
    assert event["logger"] == "fixture.app"  # the app's logger, not the telemetry's
    assert event["level"] == "INFO"
    assert event["name"] == "one.jpg" and event["size"] == 7  # the app's fields
    assert event["route"] == "app-route"  # the app's field wins over the telemetry's of the same name
    assert event["correlation_id"] == "req-1"
    assert isinstance(event["web_item_ms"], int) and event["web_item_ms"] >= 20
    assert event["lookup_ms"] >= 20  # a stage measured inside the request
    assert event["ok"] is True and event["status_code"] == 200  # result key and status added


def test_only_the_first_matching_call_is_merged_and_others_pass_through(app_module):
    with TestClient(app_module.app) as client:
        assert client.get("/twice").status_code == 200
    # In writing order: the second call at once, untouched; the held first one, merged, when the request ended.
    passed, merged = named("web_twice")
    assert passed["n"] == 2 and "web_twice_ms" not in passed
    assert merged["n"] == 1 and "web_twice_ms" in merged
    (other,) = named("something_else")
    assert other["n"] == 3 and "web_twice_ms" not in other


def test_an_app_error_event_keeps_its_level_when_higher_and_gets_the_status_level_otherwise(app_module):
    with TestClient(app_module.app, raise_server_exceptions=False) as client:
        assert client.get("/missing").status_code == 404
        assert client.get("/broken").status_code == 500
    (missing,) = named("web_missing_error")
    assert missing["level"] == "WARNING"  # the app said INFO; a 404 is WARNING
    assert missing["error"] == "no such thing" and missing["status_code"] == 404
    assert isinstance(missing["web_missing_ms"], int)
    (broken,) = named("web_broken")  # the app's name is kept, even for a 500
    assert broken["level"] == "ERROR" and broken["error_type"] == "RuntimeError" and broken["stage"] == "half"
    assert not named("web_broken_error")


def test_without_an_app_event_the_telemetry_writes_its_own_with_the_status_level(app_module):
    with TestClient(app_module.app) as client:
        assert client.get("/quiet").status_code == 200
        assert client.get("/refused").status_code == 403
    (quiet,) = named("web_quiet")
    assert quiet["level"] == "INFO" and quiet["logger"] == "fixture.telemetry"
    (refused,) = named("web_refused_error")
    assert refused["level"] == "WARNING" and refused["status_code"] == 403


def test_outside_a_mapped_request_the_apps_calls_are_written_at_once(app_module):
    applog.log_json(logging.getLogger("fixture.app"), logging.INFO, "item_served", outside=True)
    assert named("item_served") == [{"level": "INFO", "logger": "fixture.app", "message": "item_served",
                                     "outside": True}]
    with TestClient(app_module.app) as client:
        assert client.get("/unmapped").status_code == 200
    assert [e.get("unmapped") for e in named("item_served")] == [None, True]
    assert "web_item_ms" not in named("item_served")[1]


def test_uninstall_restores_the_exact_log_function(app_module):
    gate = applog.log_json
    original = gate.__wrapped__
    assert autoinstrument.uninstall() >= 1
    assert applog.log_json is original
    with TestClient(app_module.app) as client:
        assert client.get("/items/two.jpg").status_code == 200
    (event,) = named("item_served")
    assert "web_item_ms" not in event and event["name"] == "two.jpg"


def test_without_routes_the_log_function_is_not_gated(write_manifest):
    before = applog.log_json
    assert autoinstrument.install(write_manifest(LOG_SECTION))
    assert applog.log_json is before


def test_the_apps_event_logged_inside_a_nested_scope_is_merged_too(app_module):
    with TestClient(app_module.app) as client:
        assert client.get("/nested", headers={"X-Request-ID": "nest-1"}).status_code == 200
    (event,) = named("web_nested")
    assert event["inner"] is True and event["correlation_id"] == "nest-1" and "web_nested_ms" in event
    (timing,) = named("nested_timing")
    assert timing["correlation_id"] == "nest-1" and "web_nested_ms" not in timing


RID_APP = """
import logging

from fastapi import FastAPI

from fixture_app import applog

logger = logging.getLogger("fixture.app")
app = FastAPI()


@app.get("/rid/{name}")
def rid(name: str):
    applog.rid_log(logger, logging.INFO, "rid_inside", name=name)
    applog.rid_log(logger, logging.INFO, "web_rid", name=name)
    return {"ok": True}


@app.get("/own")
def own():
    return {"ok": True}
"""


def test_the_apps_log_function_reads_the_requests_id_in_the_merged_event(tmp_path, monkeypatch, write_manifest):
    """Issue 22 item 7: an app's log function that reads the correlation ContextVar itself (here as `rid`) sees
    the request's id in the one merged event and in the telemetry's own event, as in its calls during the
    request (it once read None: the id was unbound before the event was written)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "ridfixture.py").write_text(RID_APP, encoding="utf-8")
    log = LOG_SECTION.replace("fixture_app.applog:log_json", "fixture_app.applog:rid_log")
    routes = "  routes:\n    GET /rid/{name}: web_rid_ms\n    GET /own: web_own_ms\n"
    assert autoinstrument.install(write_manifest(log + "web:\n  app: ridfixture:app\n" + routes))
    try:
        module = importlib.import_module("ridfixture")
        with TestClient(module.app) as client:
            assert client.get("/rid/a.jpg", headers={"X-Request-ID": "rid-1"}).status_code == 200
            assert client.get("/own", headers={"X-Request-ID": "rid-2"}).status_code == 200
    finally:
        sys.modules.pop("ridfixture", None)
    (inside,) = named("rid_inside")
    assert inside["rid"] == "rid-1"
    (merged_event,) = named("web_rid")  # the app's event, merged with the telemetry's
    assert merged_event["rid"] == "rid-1" and merged_event["correlation_id"] == "rid-1"
    assert merged_event["name"] == "a.jpg" and "web_rid_ms" in merged_event
    (own,) = named("web_own")  # no app event: the telemetry's own, through the same function
    assert own["rid"] == "rid-2" and own["correlation_id"] == "rid-2"
    assert applog.correlation_id.get() is None  # unbound after the request


def test_the_gate_is_a_plain_closure_that_looks_like_the_log_function(app_module):
    """Not a wrapt proxy (its C call path cost ~0.9 us per app log call, benchmarks/bench_log_gate.py), yet it
    answers for the original: __wrapped__, name, docstring, signature; calls outside a request pass through."""
    import inspect

    import wrapt

    gate = applog.log_json
    original = gate.__wrapped__
    assert gate is not original and inspect.isfunction(gate) and not isinstance(gate, wrapt.ObjectProxy)
    assert (gate.__name__, gate.__qualname__, gate.__doc__) == (original.__name__, original.__qualname__,
                                                                original.__doc__)
    assert inspect.signature(gate) == inspect.signature(original)
    assert gate(logging.getLogger("fixture.app"), logging.INFO, "web_item", outside=1) is None
    assert named("web_item") == [{"level": "INFO", "logger": "fixture.app", "message": "web_item", "outside": 1}]
