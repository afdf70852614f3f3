"""Web telemetry on the real app: `from publisher_v2.web.app import app` after `autoinstrument.install()` with the
repo's telemetry.yaml, a real sample library, TestClient. Every mapped route on success and on each error status;
correlation ids in and out; the web_publish <-> workflow_timing join; install/uninstall on a live app.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from fastapi.testclient import TestClient
from telemetry_testkit import REPO, installed_labels

import autoinstrument

MANIFEST = str(REPO / "telemetry.yaml")
ADMIN = "correct horse battery staple"
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_MISSING = object()


@pytest.fixture
def webapp(sample_library: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Dict[str, str]) -> Iterator[Any]:
    """The `publisher_v2.web.app` module with its lazily built `app` reset, configured for the sample library.

    The next `from publisher_v2.web.app import app` builds the app from CONFIG_PATH (as uvicorn would); the
    fixture puts the module back as it found it, and removes the root log handler the app's start-up adds.
    """
    monkeypatch.setenv("CONFIG_PATH", str(sample_library))
    monkeypatch.setenv("web_admin_pw", ADMIN)
    for name in ("ENV_PATH", "WEB_ADMIN_PW", "WEB_AUTH_TOKEN", "WEB_AUTH_USER", "WEB_AUTH_PASS"):
        monkeypatch.delenv(name, raising=False)
    module = importlib.import_module("publisher_v2.web.app")
    saved = vars(module).pop("app", _MISSING)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield module
    vars(module).pop("app", None)
    if saved is not _MISSING:
        module.app = saved
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def client(webapp: Any) -> Iterator[TestClient]:
    assert autoinstrument.install(MANIFEST) is True
    from publisher_v2.web.app import app

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture):
    """Every JSON line logged through the app's loggers during the test, parsed."""
    caplog.set_level(logging.DEBUG)

    def lines() -> List[Dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]

    return lines


def only(lines: List[Dict[str, Any]], message: str) -> Dict[str, Any]:
    found = [line for line in lines if line.get("message") == message]
    assert len(found) == 1, (message, [line.get("message") for line in lines])
    return found[0]


def login(client: TestClient) -> None:
    assert client.post("/api/admin/login", json={"password": ADMIN}).status_code == 200


def images(sample_library: Path) -> List[str]:
    folder = sample_library.parent / "images"
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


# --------------------------------------------------------------------------------------------- mapped routes


def test_random_image_emits_one_event_with_its_route_template_and_echoes_the_request_id(client, logged):
    response = client.get("/api/images/random", headers={"X-Request-ID": "req-0001"})
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "req-0001"
    event = only(logged(), "web_random_image")
    assert event["correlation_id"] == "req-0001"
    assert event["method"] == "GET" and event["route"] == "/api/images/random" and event["status_code"] == 200
    assert isinstance(event["web_random_image_ms"], int) and event["web_random_image_ms"] >= 0
    assert isinstance(event["dropbox_list_images_ms"], int)  # the listing stage, measured inside the request


def test_analyze_reports_its_stages_and_filename_and_every_app_log_carries_the_id(client, logged, sample_library):
    login(client)
    name = images(sample_library)[0]
    response = client.post(f"/api/images/{name}/analyze", headers={"X-Request-ID": "analyze-1"})
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == "analyze-1"
    lines = logged()
    event = only(lines, "web_analyze_complete")
    assert event["route"] == "/api/images/{filename}/analyze" and event["filename"] == name
    for field in ("vision_analysis_ms", "caption_generation_ms", "sidecar_write_ms", "web_analyze_ms"):
        assert isinstance(event[field], int), field
    inside = [line for line in lines if line["message"] in ("web_vision_analysis_start", "web_analyze_complete")]
    assert len(inside) == 2 and {line["correlation_id"] for line in inside} == {"analyze-1"}


def test_publish_and_its_workflow_share_one_correlation_id_and_stages_reach_the_web_event(
    client, logged, sample_library
):
    login(client)
    name = images(sample_library)[1]
    response = client.post(f"/api/images/{name}/publish", headers={"X-Request-ID": "publish-join-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    lines = logged()
    web = only(lines, "web_publish_complete")
    workflow = only(lines, "workflow_timing")
    assert web["correlation_id"] == workflow["correlation_id"] == "publish-join-1"
    assert response.headers["x-correlation-id"] == "publish-join-1"
    assert web["any_success"] is body["any_success"] and web["archived"] is body["archived"] is True
    assert web["filename"] == name and web["status_code"] == 200
    # the workflow's stages, measured in its own nested scope, are in the web event too
    for field in ("publish_parallel_ms", "archive_ms"):
        assert isinstance(web[field], int) and web[field] == workflow[field], field
    assert web["web_publish_ms"] >= workflow["workflow_total_ms"]
    assert "workflow_total_ms" not in web
    # the workflow event is exactly what it was: its own fields, no web fields
    assert "web_publish_ms" not in workflow and "route" not in workflow
    events = [line for line in lines if line["message"] in ("workflow_start", "workflow_complete", "publish_result")]
    assert events and {line["correlation_id"] for line in events} == {"publish-join-1"}


@pytest.mark.parametrize(
    "path, setup, status",
    [
        ("/api/images/{name}/analyze", "anonymous", 403),
        ("/api/images/{name}/publish", "anonymous", 403),
        ("/api/images/missing-image.jpg/analyze", "admin", 404),
        ("/api/images/missing-image.jpg/publish", "admin", 404),
        ("/api/images/notes.txt/analyze", "admin", 422),
        ("/api/images/notes.txt/publish", "admin", 422),
    ],
)
def test_each_error_status_emits_the_error_event_and_still_answers_the_header(
    client, logged, sample_library, path, setup, status
):
    if setup == "admin":
        login(client)
    url = path.format(name=images(sample_library)[0])
    response = client.post(url, headers={"X-Request-ID": f"err-{status}"})
    assert response.status_code == status, response.text
    assert response.headers["x-correlation-id"] == f"err-{status}"
    action = "analyze" if url.endswith("/analyze") else "publish"
    event = only(logged(), f"web_{action}_error")
    assert event["status_code"] == status and event["correlation_id"] == f"err-{status}"
    assert event["route"] == f"/api/images/{{filename}}/{action}"
    assert not [line for line in logged() if line["message"] == f"web_{action}"]


def test_a_body_too_large_is_a_413_error_event_with_the_header(client, logged, sample_library):
    login(client)
    name = images(sample_library)[0]
    response = client.post(
        f"/api/images/{name}/publish",
        content=b"{" + b" " * (70 * 1024) + b"}",
        headers={"Content-Type": "application/json", "X-Request-ID": "too-big"},
    )
    assert response.status_code == 413
    assert response.headers["x-correlation-id"] == "too-big"
    assert only(logged(), "web_publish_error")["status_code"] == 413


def test_api_auth_failure_is_a_401_error_event_with_the_header(webapp, logged, sample_library, monkeypatch):
    monkeypatch.setenv("WEB_AUTH_TOKEN", "api-token-123456")
    assert autoinstrument.install(MANIFEST)
    from publisher_v2.web.app import app

    with TestClient(app) as client:
        response = client.post(f"/api/images/{images(sample_library)[0]}/analyze")
    assert response.status_code == 401
    event = only(logged(), "web_analyze_error")
    assert event["status_code"] == 401 and response.headers["x-correlation-id"] == event["correlation_id"]


def test_no_admin_password_is_a_503_error_event_with_the_header(webapp, logged, sample_library, monkeypatch):
    monkeypatch.delenv("web_admin_pw")
    assert autoinstrument.install(MANIFEST)
    from publisher_v2.web.app import app

    with TestClient(app) as client:
        response = client.post(f"/api/images/{images(sample_library)[0]}/publish")
    assert response.status_code == 503
    event = only(logged(), "web_publish_error")
    assert event["status_code"] == 503 and response.headers["x-correlation-id"] == event["correlation_id"]


def test_unmapped_routes_emit_nothing_but_get_the_header_and_bind_the_id(client, logged):
    for path in ("/health", "/api/admin/status", "/no/such/page"):
        response = client.get(path, headers={"X-Request-ID": "unmapped.1"})
        assert response.headers["x-correlation-id"] == "unmapped.1", path
    assert client.get("/no/such/page").status_code == 404
    assert not [line for line in logged() if str(line.get("message", "")).startswith("web_") and "_ms" in str(line)]
    login_line = client.post("/api/admin/login", json={"password": "wrong"}, headers={"X-Request-ID": "login.7"})
    assert login_line.status_code == 401
    failure = only(logged(), "web_admin_login_failure")
    assert failure["correlation_id"] == "login.7"


# --------------------------------------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    "request_id",
    [
        "0f8fad5b-d9cb-469f-a165-70867728950e",  # UUID4
        "6e3b1ad2c8b4a0f9e1d2c3b4a5f60718",  # nginx $request_id (32 hex)
        "1-67891233-abcdef012345678912345678",  # ALB-style
        "svc.frontend.request.42",  # dotted
        "a",  # shortest
        "x" * 128,  # longest
    ],
)
def test_a_valid_request_id_is_echoed_and_bound(client, logged, request_id):
    response = client.get("/api/images/random", headers={"X-Request-ID": request_id})
    assert response.headers["x-correlation-id"] == request_id
    assert only(logged(), "web_random_image")["correlation_id"] == request_id


@pytest.mark.parametrize(
    "hostile",
    [
        "abc\r\nSet-Cookie: evil=1",  # CR/LF injection
        "abc\ndef",
        "y" * 129,  # over-long
        "caf\xc3\xa9".encode("latin-1"),  # non-ASCII (UTF-8 bytes)
        "two words",  # space
        '"quoted"',  # quotes
        "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8",  # AWS trace header: '=' and ';'
        "",  # empty
    ],
)
def test_hostile_request_id_is_replaced_and_never_echoed_or_logged(client, logged, caplog, hostile):
    raw = hostile if isinstance(hostile, bytes) else hostile.encode("latin-1")
    response = client.get("/api/images/random", headers={"X-Request-ID": raw})
    assert response.status_code == 200
    echoed = response.headers["x-correlation-id"]
    assert echoed != hostile
    import re

    assert re.match(UUID_RE, echoed), echoed
    assert only(logged(), "web_random_image")["correlation_id"] == echoed
    if raw:
        text = raw.decode("latin-1")
        assert all(text not in value for value in response.headers.values())
        assert all(text not in record.getMessage() for record in caplog.records)
        assert all(json.dumps(text)[1:-1] not in record.getMessage() for record in caplog.records)


def test_every_request_without_an_id_gets_a_fresh_uuid4(client, logged):
    ids = [client.get("/api/images/random").headers["x-correlation-id"] for _ in range(3)]
    import re

    assert len(set(ids)) == 3 and all(re.match(UUID_RE, i) for i in ids)
    assert [e["correlation_id"] for e in logged() if e["message"] == "web_random_image"] == ids


# --------------------------------------------------------------------------------------------- attach / detach


def test_an_app_built_before_install_gets_the_middleware_and_uninstall_removes_it(webapp, logged):
    from publisher_v2.web.app import app  # built now, without telemetry

    with TestClient(app) as client:
        assert "x-correlation-id" not in client.get("/health").headers
        assert autoinstrument.install(MANIFEST)
        wrapped = installed_labels()["wrapped"]
        assert any(t.startswith("publisher_v2.web.app:app (asgi") for t in wrapped)
        assert client.get("/health", headers={"X-Request-ID": "late-1"}).headers["x-correlation-id"] == "late-1"
        assert autoinstrument.uninstall() >= 1
        assert "build_middleware_stack" not in vars(app)
        assert "x-correlation-id" not in client.get("/health").headers
        assert "x-correlation-id" not in client.get("/api/images/random").headers
    # Detached: the app still logs its own business event, but nothing of the telemetry is merged into it.
    random_events = [e for e in logged() if e["message"] in ("web_random_image", "web_random_image_error")]
    assert random_events and not [e for e in random_events if "web_random_image_ms" in e or "correlation_id" in e]
    assert getattr(webapp.__getattr__, "__autoinstrument_web__", False) is False  # the module's own again


def test_responses_are_identical_with_and_without_the_middleware_apart_from_the_header(webapp, sample_library):
    from publisher_v2.web.app import app

    def answers(client: TestClient) -> List[Any]:
        out = []
        for method, path in (("GET", "/health"), ("GET", "/nope"), ("POST", "/api/images/x.jpg/analyze"), ("GET", "/")):
            r = client.request(method, path)
            headers = {k: v for k, v in r.headers.items() if k not in ("x-correlation-id", "date")}
            out.append((r.status_code, r.content, headers))
        return out

    with TestClient(app) as client:
        without = answers(client)
        autoinstrument.install(MANIFEST)
        with_it = answers(client)
    assert with_it == without
