"""`autoinstrument.TelemetryMiddleware` by hand on FastAPI, Starlette and a raw ASGI app: it serves the current
install's `web:` section, passes through while nothing is installed, and never serves a request twice."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from fixture_app import applog
from telemetry_testkit import LOG_SECTION

import autoinstrument

APP_SOURCE = """
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import autoinstrument

fastapi_app = FastAPI()


@fastapi_app.get("/hello/{name}")
async def hello(name: str):
    return {"ok": True}


async def star(request):
    return JSONResponse({"ok": True})


starlette_app = Starlette(routes=[Route("/hello/{name}", star)])


async def raw(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


hand_fastapi = autoinstrument.TelemetryMiddleware(fastapi_app)
hand_starlette = autoinstrument.TelemetryMiddleware(starlette_app)
hand_raw = autoinstrument.TelemetryMiddleware(raw)
attached_and_by_hand = autoinstrument.TelemetryMiddleware(fastapi_app)
"""
_counter = [0]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(tmp_path))
    _counter[0] += 1
    name = f"handmade_{_counter[0]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE, encoding="utf-8")
    try:
        yield name
    finally:
        sys.modules.pop(name, None)


def install(write_manifest, name: str, app: str) -> None:
    web = f"web:\n  app: {name}:{app}\n  routes:\n    GET /hello/{{name}}: {{field: web_hello_ms, result: [ok]}}\n"
    assert autoinstrument.install(write_manifest(LOG_SECTION + web))


@pytest.mark.parametrize("kind", ["fastapi", "starlette", "raw"])
def test_by_hand_on_any_asgi_app(module, write_manifest, kind):
    install(write_manifest, module, f"hand_{kind}")
    app = getattr(importlib.import_module(module), f"hand_{kind}")
    with TestClient(app) as client:
        response = client.get("/hello/ann", headers={"X-Request-ID": f"{kind}-1"})
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.headers["x-correlation-id"] == f"{kind}-1"
    (event,) = applog.events("web_hello")
    assert event["correlation_id"] == f"{kind}-1" and event["name"] == "ann" and event["ok"] is True


def test_without_an_install_it_passes_straight_through(module):
    app = importlib.import_module(module).hand_raw
    with TestClient(app) as client:
        response = client.get("/hello/ann", headers={"X-Request-ID": "x-1"})
    assert response.status_code == 200 and "x-correlation-id" not in response.headers
    assert applog.events() == []


def test_an_app_both_attached_and_wrapped_by_hand_is_served_once(module, write_manifest):
    install(write_manifest, module, app="fastapi_app")  # the attachment wraps the FastAPI app's stack
    app = importlib.import_module(module).attached_and_by_hand
    with TestClient(app) as client:
        response = client.get("/hello/bob", headers={"X-Request-ID": "twice-1"})
    assert response.headers.get_list("x-correlation-id") == ["twice-1"]
    assert len(applog.events("web_hello")) == 1
