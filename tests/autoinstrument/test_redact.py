"""`log.redact` (the app's `str -> str` redaction function): a request id it would change is hostile, and the
stderr fallback (log function raising) never writes an app string unredacted, in the app's line shape.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from fixture_app import applog
from telemetry_testkit import LOG_SECTION, stderr_events

import autoinstrument
from autoinstrument.check import run_check

APP_SOURCE = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{name}")
async def item(name: str):
    return {"ok": True}
"""

REDACT = "  redact: fixture_app.applog:redact_text\n"
WEB = "web:\n  app: {name}:app\n  routes:\n    GET /items/{{name}}: web_item_ms\n"
_counter = [0]


@pytest.fixture
def app_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_manifest) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def make(redact: bool) -> Any:
        _counter[0] += 1
        name = f"redactfixture_{_counter[0]}"
        (tmp_path / f"{name}.py").write_text(APP_SOURCE, encoding="utf-8")
        names.append(name)
        log = LOG_SECTION + (REDACT if redact else "")
        assert autoinstrument.install(write_manifest(log + WEB.format(name=name)))
        return importlib.import_module(name)

    yield make
    for name in names:
        sys.modules.pop(name, None)


def test_a_request_id_the_redaction_would_change_is_replaced_never_echoed_nor_logged(app_with):
    module = app_with(redact=True)
    with TestClient(module.app) as client:
        hostile = client.get("/items/a.jpg", headers={"X-Request-ID": applog.SECRET})
        plain = client.get("/items/b.jpg", headers={"X-Request-ID": "plain-id-1"})
    assert hostile.status_code == 200
    fresh = hostile.headers["x-correlation-id"]
    assert applog.SECRET not in fresh and len(fresh) == 36  # a UUID4
    assert plain.headers["x-correlation-id"] == "plain-id-1"
    first, second = applog.events("web_item")
    assert first["correlation_id"] == fresh and second["correlation_id"] == "plain-id-1"
    assert applog.SECRET not in repr(applog.events())


def test_without_redact_a_safe_looking_id_is_still_accepted(app_with):
    module = app_with(redact=False)
    with TestClient(module.app) as client:
        response = client.get("/items/a.jpg", headers={"X-Request-ID": applog.SECRET})
    assert response.headers["x-correlation-id"] == applog.SECRET


@pytest.mark.parametrize("redact", [True, False])
def test_the_fallback_writes_no_app_string_and_has_the_apps_line_shape(app_with, capsys, redact):
    module = app_with(redact=redact)
    applog.FAIL = True
    with TestClient(module.app) as client:
        assert client.get(f"/items/{applog.SECRET}.jpg", headers={"X-Request-ID": "id-7"}).status_code == 200
    err = capsys.readouterr().err
    assert applog.SECRET not in err
    lines = stderr_events(err)
    (event,) = [e for e in lines if e["message"] == "web_item"]
    assert list(event)[:4] == ["timestamp", "level", "logger", "message"]
    assert event["logger"] == "fixture.telemetry" and event["timestamp"].endswith("Z")
    assert event["correlation_id"] == "id-7"  # a validated id is written
    assert isinstance(event["web_item_ms"], int) and event["route"] == "/items/{name}"
    if redact:
        assert event["name"] == "[REDACTED].jpg"
    else:
        assert event["name"] == f"[{len(applog.SECRET) + 4} characters withheld: the manifest names no log.redact]"
    (fault,) = [e for e in lines if e["message"] == "autoinstrument_fault"]
    assert fault["fault"] == "log_function_raised" and fault["level"] == "WARNING"
    if not redact:
        assert fault["detail"].startswith("RuntimeError (message withheld")


def test_check_resolves_and_probes_the_redact_function(write_manifest):
    good = run_check(write_manifest(LOG_SECTION + REDACT))
    (line,) = [r for r in good.results if r.section == "log.redact"]
    assert line.status == "OK"
    bad = run_check(write_manifest(LOG_SECTION + "  redact: fixture_app.applog:EVENTS\n"))
    (line,) = [r for r in bad.results if r.section == "log.redact"]
    assert line.status == "FAIL" and "not callable" in line.detail


def test_event_key_is_read_from_the_manifest(write_manifest):
    default = autoinstrument.load_manifest(write_manifest(LOG_SECTION))
    assert default.event_key == "message"
    custom = autoinstrument.load_manifest(write_manifest(LOG_SECTION + "  event_key: event\n"))
    assert custom.event_key == "event"
    with pytest.raises(autoinstrument.ManifestError, match="log.event_key"):
        autoinstrument.load_manifest(write_manifest(LOG_SECTION + "  event_key: 'not valid'\n"))
