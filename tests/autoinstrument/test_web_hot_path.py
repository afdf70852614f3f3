"""The rebuilt per-request path (middleware.py: one `__call__`, a closure `send`, the log function called
inline): what it must still do, on a real FastAPI app written to tmp_path and driven through its ASGI
interface in process (no mocks of our classes).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from fixture_app import applog
from telemetry_testkit import LOG_SECTION

import autoinstrument
from autoinstrument.web.middleware import _Request

APP_SOURCE = """
import contextvars
import logging
import threading
import time

from fastapi import FastAPI

from fixture_app import applog

logger = logging.getLogger("fixture.app")


def lookup(name):
    time.sleep(0.005)
    return len(name)


def later_stage():
    return 1


THREADS = []


def late_work():
    time.sleep(0.05)
    later_stage()


app = FastAPI()


@app.get("/items/{item}")
async def item(item: str):
    size = lookup(item)
    if item == "more":
        later_stage()
    if item == "late":  # a thread of the request (its context) runs a stage after the response
        thread = threading.Thread(target=contextvars.copy_context().run, args=(late_work,))
        thread.start()
        THREADS.append(thread)
    applog.log_json(logger, logging.INFO, "item_served", name=item, size=size)
    applog.log_json(logger, logging.INFO, "app_detail", inside=True)
    return {"ok": True}


@app.get("/plain")
def plain():
    applog.log_json(logger, logging.INFO, "plain_served", n=1)
    return {"ok": True}
"""

_counter = [0]


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_manifest) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(tmp_path))
    _counter[0] += 1
    name = f"hotpathfixture_{_counter[0]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE, encoding="utf-8")
    stages = f"stages:\n  {name}:lookup: lookup_ms\n  {name}:later_stage: later_ms\n"
    routes = "  routes:\n    GET /items/{item}: {field: web_item_ms, event: item_served}\n"
    manifest = write_manifest(LOG_SECTION + stages + f"web:\n  app: {name}:app\n" + routes)
    assert autoinstrument.install(manifest)
    try:
        yield importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


def get(app: Any, path: str, headers: List[Any] = ()) -> List[Dict[str, Any]]:  # type: ignore[assignment]
    """One GET through the app's ASGI interface; returns the messages the server was sent."""
    sent: List[Dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_one_event_with_the_apps_fields_first_then_the_telemetrys_and_other_calls_pass(app_module):
    sent = get(app_module.app, "/items/abc", [(b"x-request-id", b"req-42")])
    assert dict(sent[0]["headers"])[b"x-correlation-id"] == b"req-42"
    (event,) = applog.events("item_served")
    keys = [k for k in event if k not in ("level", "logger", "message")]
    # the app's own fields keep their place, ours follow (no key in both: the one-call path)
    assert keys == ["name", "size", "correlation_id", "web_item_ms", "method", "route", "status_code", "item",
                    "lookup_ms"]  # fmt: skip
    assert event["correlation_id"] == "req-42" and event["lookup_ms"] >= 5 and event["web_item_ms"] >= 5
    assert event["route"] == "/items/{item}" and event["status_code"] == 200 and event["logger"] == "fixture.app"
    (detail,) = applog.events("app_detail")  # not the route's event: written at once, with the bound id
    assert detail["correlation_id"] == "req-42" and detail["inside"] is True


def test_a_request_leaves_no_reference_cycle_behind(app_module):
    get(app_module.app, "/items/warm")  # the first request resolves what the later ones reuse
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            get(app_module.app, "/items/abc")
        alive = [o for o in gc.get_objects() if type(o) is _Request]
    finally:
        gc.enable()
    assert alive == []  # each request's accumulator was freed by reference counting, not left to the collector
    assert len(applog.events("item_served")) == 6


def test_after_the_request_the_apps_calls_pass_straight_through(app_module):
    get(app_module.app, "/items/abc")
    applog.clear()
    applog.log_json(logging.getLogger("fixture.app"), logging.INFO, "item_served", outside=True)
    (event,) = applog.events("item_served")
    assert event == {"level": "INFO", "logger": "fixture.app", "message": "item_served", "outside": True}


def test_a_stage_new_to_the_route_is_counted_and_made_up_front_from_then_on(app_module):
    from autoinstrument.runtime import install as hooks

    route = hooks.current().web.telemetry.static.get(("GET", "/items/more"))
    assert route is None  # templated: found through the route table
    get(app_module.app, "/items/abc")
    get(app_module.app, "/items/more")
    get(app_module.app, "/items/more")
    first, second, third = applog.events("item_served")
    assert "later_ms" not in first and second["later_ms"] >= 0 and third["later_ms"] >= 0
    (template_route,) = hooks.current().web.telemetry.dynamic["GET"]
    assert set(template_route.known) == {"lookup_ms", "later_ms"}


def test_an_unmapped_route_gets_the_id_in_and_out_and_no_event(app_module):
    sent = get(app_module.app, "/plain", [(b"X-Request-ID", b"plain-1")])
    assert dict(sent[0]["headers"])[b"x-correlation-id"] == b"plain-1"
    (event,) = applog.events("plain_served")
    assert event["correlation_id"] == "plain-1" and "web_item_ms" not in event
    assert not applog.events("item_served")


@pytest.mark.parametrize("known", [False, True], ids=["field-new-to-the-route", "field-made-up-front"])
def test_a_stage_ending_after_the_request_is_reported_late_not_lost(app_module, known):
    if known:  # the route learns `later_ms`: the next request makes its list up front (the append path)
        get(app_module.app, "/items/more")
    get(app_module.app, "/items/late")
    for thread in app_module.THREADS:
        thread.join(5)
    event = applog.events("item_served")[-1]
    assert "later_ms" not in event  # the event left before the stage ended
    (late,) = applog.events("autoinstrument_late_stage")
    assert late["field"] == "later_ms" and late["scope_event"] == "item_served"
    assert late["correlation_id"] == event["correlation_id"] and late["later_ms"] >= 0
