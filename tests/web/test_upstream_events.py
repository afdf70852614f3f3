"""Upstream's business log events from a real `uvicorn publisher_v2.web.app:app`, telemetry off and on.

One web session (login, random, analyze, publish, a 404, a 401, logout) must log upstream's event names, fields
and levels in both modes. With `PUBLISHER_AUTOINSTRUMENT=1` each request of a mapped route has exactly ONE event
carrying its `web_*_ms` field and the correlation id: the app's own event, with the telemetry's fields merged in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Tuple

import httpx
import pytest

from tests.cli_output import stderr_events
from tests.web.conftest import Server

pytestmark = pytest.mark.slow

PASSWORD = "events-admin-password"
TOKEN = "events-api-token"
BUSINESS = {
    "web_admin_login_success",
    "web_admin_login_failure",
    "web_admin_login_unconfigured",
    "web_admin_logout",
    "web_random_image",
    "web_random_image_error",
    "web_analyze_complete",
    "web_analyze_error",
    "web_publish_complete",
    "web_publish_error",
}
#: request id → (the route's timing field or None for an unmapped route, the one event name it must log, level)
EXPECTED: Dict[str, Tuple[object, str, str]] = {
    "s-login": (None, "web_admin_login_success", "INFO"),
    "s-random": ("web_random_image_ms", "web_random_image", "INFO"),
    "s-analyze": ("web_analyze_ms", "web_analyze_complete", "INFO"),
    "s-publish": ("web_publish_ms", "web_publish_complete", "INFO"),
    "s-404": ("web_analyze_ms", "web_analyze_error", "WARNING"),
    "s-401": ("web_publish_ms", "web_publish_error", "WARNING"),
    "s-logout": (None, "web_admin_logout", "INFO"),
}


def run_session(server: Server) -> str:
    """Drive the session; returns the image it published."""
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def rid(name: str, with_auth: bool = True) -> Dict[str, str]:
        return {"X-Request-ID": name, **(auth if with_auth else {})}

    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        assert client.post("/api/admin/login", json={"password": PASSWORD}, headers=rid("s-login")).status_code == 200
        name = client.get("/api/images/random", headers=rid("s-random")).json()["filename"]
        assert client.post(f"/api/images/{name}/analyze", headers=rid("s-analyze")).status_code == 200
        published = client.post(f"/api/images/{name}/publish", headers=rid("s-publish"))
        assert published.status_code == 200 and published.json()["any_success"] is True
        missing = client.post("/api/images/missing.jpg/analyze", headers=rid("s-404"))
        assert missing.status_code == 404 and missing.json()["detail"] == "Image not found"
        refused = client.post(f"/api/images/{name}/publish", headers=rid("s-401", with_auth=False))
        assert refused.status_code == 401 and refused.json()["detail"] == "Unauthorized"
        assert client.post("/api/admin/logout", headers=rid("s-logout")).status_code == 200
    return name


def events_of(server: Server) -> List[dict]:
    return stderr_events(server.log())  # a plain-text line fails the test


def business(events: List[dict]) -> List[Tuple[str, str]]:
    return [(e["message"], e["level"]) for e in events if e["message"] in BUSINESS]


def check_upstream_events(events: List[dict], name: str) -> None:
    """Names, fields and levels as upstream logged them (plus additions), in the session's order."""
    assert [(e["message"], e["level"]) for e in events if e["message"] == "web_server_start"] == [
        ("web_server_start", "INFO")
    ]
    assert business(events) == [(event, level) for _, event, level in EXPECTED.values()]
    by_name = {e["message"]: e for e in events if e["message"] in BUSINESS}
    assert by_name["web_random_image"]["filename"] == name
    assert by_name["web_analyze_complete"]["filename"] == name
    publish = by_name["web_publish_complete"]
    assert (publish["filename"], publish["any_success"], publish["archived"]) == (name, True, True)
    errors = [e for e in events if e["message"] in ("web_analyze_error", "web_publish_error")]
    assert [e["error"] for e in errors] == ["Image not found", "Authentication required"]
    assert [e["filename"] for e in errors] == ["missing.jpg", name]
    vision = [e for e in events if e["message"] == "vision_analysis"]  # the analyze ran the analyser once
    assert len(vision) == 1 and vision[0]["level"] == "INFO"
    assert (vision[0]["event"], vision[0]["ok"], vision[0]["error_type"]) == ("vision_analysis", True, None)


@pytest.fixture
def server_env(sample_library: Path) -> Dict[str, str]:
    return {"CONFIG_PATH": str(sample_library), "web_admin_pw": PASSWORD, "WEB_AUTH_TOKEN": TOKEN}


def test_telemetry_off_logs_upstreams_events_and_no_timing(
    server_env: Dict[str, str], start_server: Callable[..., Server]
) -> None:
    server = start_server(server_env)
    name = run_session(server)
    events = events_of(server)
    check_upstream_events(events, name)
    assert not [e for e in events if any(k.startswith("web_") and k.endswith("_ms") for k in e)]
    assert not [e for e in events if e["message"] in BUSINESS and "correlation_id" in e]
    assert not [e for e in events if e["level"] == "DEBUG"]


def test_web_debug_turns_on_debug_events(server_env: Dict[str, str], start_server: Callable[..., Server]) -> None:
    server = start_server({**server_env, "WEB_DEBUG": "true"})
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        assert client.get("/api/images/random").status_code == 200
    events = events_of(server)
    assert [e["level"] for e in events if e["message"] == "web_server_start"] == ["INFO"]
    assert [e for e in events if e["level"] == "DEBUG"]


def test_telemetry_on_merges_the_timing_into_the_one_app_event_per_request(
    server_env: Dict[str, str], start_server: Callable[..., Server]
) -> None:
    server = start_server({**server_env, "PUBLISHER_AUTOINSTRUMENT": "1"})
    name = run_session(server)
    events = events_of(server)
    check_upstream_events(events, name)
    for request_id, (field, event, level) in EXPECTED.items():
        own = [e for e in events if e.get("correlation_id") == request_id]
        web_names = [e["message"] for e in own if e["message"].startswith("web_")]
        assert len(web_names) == len(set(web_names)), (request_id, web_names)  # no name twice per request
        timed = [e for e in own if any(k.startswith("web_") and k.endswith("_ms") for k in e)]
        if field is None:
            assert timed == [], request_id
            continue
        assert len(timed) == 1, (request_id, [e["message"] for e in timed])
        [one] = timed
        assert (one["message"], one["level"], one["logger"]) == (event, level, "publisher_v2.web"), one
        assert isinstance(one[field], int) and one[field] >= 0
        assert one["status_code"] == {"INFO": 200, "WARNING": 404 if request_id == "s-404" else 401}[level]
    publish_run = [e for e in events if e.get("correlation_id") == "s-publish"]
    timing = [e for e in publish_run if e["message"] == "workflow_timing"]
    assert len(timing) == 1 and timing[0]["image_name"] == name and timing[0]["success"] is True
