"""The middleware's contract on a tiny real FastAPI app (written to tmp_path as a module, so the manifest
can name it): unhandled exceptions, streaming, disconnects, websockets, lifespan, the app's own header,
hostile path parameters, JSON result keys, faults, a lazily built app and a non-Starlette app.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from fastapi.testclient import TestClient
from fixture_app import applog
from telemetry_testkit import LOG_SECTION, installed_labels

import autoinstrument

APP_SOURCE = """
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from fixture_app import applog

logger = logging.getLogger("fixture.web")
STARTED = []


@asynccontextmanager
async def lifespan(app):
    STARTED.append(True)
    yield


def build() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/boom")
    async def boom():
        applog.log_json(logger, logging.INFO, "about_to_fail")
        raise LookupError("kaboom")

    @app.get("/items/{name}")
    async def item(name: str):
        applog.log_json(logger, logging.INFO, "item_seen", name_length=len(name))
        return {"name": name, "ok": True, "count": 3, "nested": {"x": 1}}

    @app.get("/big")
    async def big():
        return {"ok": True, "pad": "p" * 70000}

    @app.get("/text")
    async def text():
        return PlainTextResponse('{"ok": true}')

    @app.get("/own-header")
    async def own_header():
        return JSONResponse({"ok": True}, headers={"X-Correlation-ID": "set-by-app"})

    @app.get("/stream")
    async def stream():
        async def chunks():
            for i in range(3):
                await asyncio.sleep(0.1)
                yield f"chunk{i}\\n".encode()
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("hello " + str(applog.correlation_id.get()))
        await websocket.close()

    return app


app = build()
"""

LAZY_SOURCE = """
from __future__ import annotations

BUILT = []


def __getattr__(name):
    if name == "app":
        from {base} import build

        application = build()
        BUILT.append(application)
        globals()["app"] = application
        return application
    raise AttributeError(name)
"""

PLAIN_SOURCE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain"})
"""

ROUTES = """
  routes:
    GET /boom: web_boom_ms
    GET /items/{name}:
      {field: web_item_ms, event: item_served, error_event: item_failed, result: [ok, count, nested, absent]}
    GET /big: {field: web_big_ms, result: [ok]}
    GET /text: {field: web_text_ms, result: [ok]}
    GET /own-header: web_own_ms
    GET /stream: web_stream_ms
"""

_counter = [0]


@pytest.fixture
def fixture_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """Write a module into tmp_path (on sys.path); returns its unique name. Removed from sys.modules after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: List[str] = []

    def write(prefix: str, source: str) -> str:
        _counter[0] += 1
        name = f"{prefix}_{_counter[0]}"
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def web_app(fixture_module, write_manifest) -> Iterator[Any]:
    """The fixture app's module, installed with a manifest naming its routes."""
    name = fixture_module("webfixture", APP_SOURCE)
    manifest = write_manifest(LOG_SECTION + f"web:\n  app: {name}:app\n" + ROUTES)
    assert autoinstrument.install(manifest)
    module = importlib.import_module(name)
    yield module


def events(prefix: str = "") -> List[Dict[str, Any]]:
    return [e for e in applog.events() if e["message"].startswith(prefix)]


def test_an_unhandled_exception_gets_a_500_with_the_header_and_one_error_event(web_app):
    with TestClient(web_app.app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-correlation-id"] == "boom-1"
    (event,) = events("web_boom")
    assert event["message"] == "web_boom_error" and event["status_code"] == 500
    assert event["error_type"] == "LookupError" and event["correlation_id"] == "boom-1"
    (inside,) = events("about_to_fail")
    assert inside["correlation_id"] == "boom-1"


def test_the_apps_exception_propagates_unchanged(web_app):
    with TestClient(web_app.app) as client, pytest.raises(LookupError, match="kaboom"):
        client.get("/boom")
    assert len(events("web_boom_error")) == 1


def test_routes_are_keyed_by_template_with_named_events_and_json_result_keys(web_app):
    with TestClient(web_app.app) as client:
        assert client.get("/items/one.jpg").status_code == 200
        assert client.get("/items/two.jpg").status_code == 200
    served = events("item_served")
    assert [e["name"] for e in served] == ["one.jpg", "two.jpg"]
    for event in served:
        assert event["route"] == "/items/{name}" and isinstance(event["web_item_ms"], int)
        assert event["ok"] is True and event["count"] == 3
        assert "nested" not in event and "absent" not in event  # only top-level scalars are copied


def test_a_hostile_path_parameter_is_escaped_and_bounded(web_app):
    with TestClient(web_app.app) as client:
        assert client.get("/items/evil%0A%7B%22injected%22%3A1%7D%E2%80%AE.jpg").status_code == 200
        assert client.get("/items/" + "z" * 300).status_code == 200
    first, second = events("item_served")
    assert first["name"] == r"evil\x0a\x7b\x22injected\x22\x3a1\x7d\u202e.jpg"
    assert "\n" not in first["name"] and '"' not in first["name"]
    assert len(second["name"]) <= 131 and second["name"].endswith("...")


def test_result_keys_are_read_only_from_small_json_bodies_and_the_body_is_untouched(web_app):
    with TestClient(web_app.app) as client:
        big = client.get("/big")
        text = client.get("/text")
    assert big.json()["pad"] == "p" * 70000
    assert text.text == '{"ok": true}'
    (big_event,) = events("web_big")
    (text_event,) = events("web_text")
    assert "ok" not in big_event and "ok" not in text_event


def test_a_header_set_by_the_app_is_not_duplicated(web_app):
    with TestClient(web_app.app) as client:
        response = client.get("/own-header", headers={"X-Request-ID": "mine"})
    assert response.headers.get_list("x-correlation-id") == ["set-by-app"]
    (event,) = events("web_own")
    assert event["correlation_id"] == "mine"


def test_a_streaming_response_is_timed_to_its_last_byte(web_app):
    with TestClient(web_app.app) as client:
        response = client.get("/stream")
    assert response.text == "chunk0\nchunk1\nchunk2\n"
    assert response.headers["x-correlation-id"]
    (event,) = events("web_stream")
    assert event["web_stream_ms"] >= 280


def test_websocket_and_lifespan_pass_straight_through(web_app):
    with TestClient(web_app.app) as client:
        assert web_app.STARTED == [True]
        with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as ws:
            assert ws.receive_text() == "hello None"  # nothing bound for a websocket
    assert not [e for e in applog.events() if e["message"].startswith("web_")]


async def _drive(app: Any, path: str, send: Callable[[Dict[str, Any]], Any]) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"x-request-id", b"gone-1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = [False]

    async def receive() -> Dict[str, Any]:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    await app(scope, receive, send)


async def test_a_client_disconnect_mid_stream_emits_exactly_one_event(web_app):
    messages: List[Dict[str, Any]] = []

    async def send(message: Dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and len(messages) >= 2:
            raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        await _drive(web_app.app, "/stream", send)
    (event,) = events("web_stream")
    assert event["message"] == "web_stream_error" and event["status_code"] == 200
    assert event["correlation_id"] == "gone-1" and event["error_type"] == "OSError"


async def test_a_cancelled_request_emits_exactly_one_event(web_app):
    async def send(message: Dict[str, Any]) -> None:
        return None

    task = asyncio.ensure_future(_drive(web_app.app, "/stream", send))
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (event,) = events("web_stream")
    assert event["message"] == "web_stream_error" and event["error_type"] == "CancelledError"


def test_a_raising_log_function_never_breaks_a_request(web_app, capsys):
    applog.FAIL = True
    with TestClient(web_app.app) as client:
        for _ in range(3):
            response = client.get("/items/a.jpg", headers={"X-Request-ID": "still-fine"})
            assert response.status_code == 200 and response.json()["name"] == "a.jpg"
            assert response.headers["x-correlation-id"] == "still-fine"
    err = capsys.readouterr().err
    assert err.count('"log_function_raised"') == 1


def test_a_lazily_built_app_is_instrumented_when_first_accessed(fixture_module, write_manifest):
    base = fixture_module("webbase", APP_SOURCE)
    lazy = fixture_module("weblazy", LAZY_SOURCE.replace("{base}", base))
    assert autoinstrument.install(write_manifest(LOG_SECTION + f"web:\n  app: {lazy}:app\n" + ROUTES))
    assert installed_labels()["pending"] == [f"{lazy}:app"]
    module = importlib.import_module(lazy)  # the post-import hook wraps its __getattr__
    assert "app" not in vars(module)
    app = module.app
    assert [app] == module.BUILT
    with TestClient(app) as client:
        assert client.get("/items/x.jpg", headers={"X-Request-ID": "lazy-1"}).headers["x-correlation-id"] == "lazy-1"
    assert len(events("item_served")) == 1
    autoinstrument.uninstall()
    assert not hasattr(vars(module)["__getattr__"], "__autoinstrument_web__")
    with TestClient(app) as client:
        assert "x-correlation-id" not in client.get("/items/x.jpg").headers


def test_an_app_that_is_not_starlette_is_reported_once_and_runs_untouched(fixture_module, write_manifest, capsys):
    name = fixture_module("webplain", PLAIN_SOURCE)
    assert autoinstrument.install(write_manifest(LOG_SECTION + f"web:\n  app: {name}:app\n"))
    module = importlib.import_module(name)
    response = TestClient(module.app).get("/")  # no lifespan: this app does not speak it
    assert response.text == "plain" and "x-correlation-id" not in response.headers
    (fault,) = events("autoinstrument_fault")
    assert fault["fault"] == "web_app_unusable" and "not a Starlette" in fault["detail"]
    assert any(m.startswith(f"{name}:app (") for m in installed_labels()["missing"])


def test_a_fault_inside_the_middleware_is_reported_once_and_the_request_proceeds(web_app):
    from autoinstrument.runtime import install as hooks

    telemetry = hooks.current().web.telemetry

    def broken(raw: bytes) -> str:
        raise ValueError("validator bug")

    telemetry.validate = broken
    with TestClient(web_app.app) as client:
        for _ in range(2):
            response = client.get("/items/a.jpg", headers={"X-Request-ID": "abc"})
            assert response.status_code == 200 and response.json()["ok"] is True
    faults = events("autoinstrument_fault")
    assert len(faults) == 1 and faults[0]["fault"] == "web_request_start_failed"
    assert not events("item_served")  # that request ran without us
