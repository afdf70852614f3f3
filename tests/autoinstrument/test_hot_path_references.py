"""Each decision of the web middleware's per-request path has ONE reference function, and the middleware's answer
equals it over the same table of cases (issue 20). The inline copies are gone: benchmarks/bench_hot_path_copies.py
measured each saving < 1 us per request (docs_v2/benchmarks.md), so the middleware calls the references.

The middleware runs for real: a raw ASGI app written to tmp_path, installed from a manifest, driven through its
ASGI interface in process; the app's start message and its held event are exactly what each case says.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from fixture_app import applog
from telemetry_testkit import LOG_SECTION

import autoinstrument
from autoinstrument.runtime.scope import to_ms
from autoinstrument.web.gate import merged, status_level
from autoinstrument.web.middleware import _with_header

APP_SOURCE = """
import logging

from autoinstrument import TelemetryMiddleware
from autoinstrument.runtime.scope import CURRENT
from fixture_app import applog

CASE = {}
logger = logging.getLogger("fixture.app")


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    case = CASE
    if case.get("seconds") is not None:
        CURRENT.get().add("sample_ms", case["seconds"])
    if case.get("listed") is not None:  # a stage sample as the wrappers' hot path appends it
        CURRENT.get().lists.setdefault("sample_ms", []).append(case["listed"])
    if case.get("log") is not None:
        level, fields = case["log"]
        applog.log_json(logger, level, "case_served", **fields)
    if case.get("raise"):
        raise RuntimeError("case failed")
    await send({"type": "http.response.start", "status": case.get("status", 200),
                "headers": list(case.get("headers", [(b"content-type", b"text/plain")]))})
    await send({"type": "http.response.body", "body": b"ok"})


app = TelemetryMiddleware(_app)  # a raw ASGI callable wraps itself (the manifest names it)
"""

_counter = [0]


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_manifest) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(tmp_path))
    _counter[0] += 1
    name = f"hotpathref_{_counter[0]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE, encoding="utf-8")
    routes = "  routes:\n    GET /case: {field: web_case_ms, event: case_served, error_event: case_failed}\n"
    assert autoinstrument.install(write_manifest(LOG_SECTION + f"web:\n  app: {name}:app\n" + routes))
    try:
        yield importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


def request(module: Any, case: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """One GET /case with `case`; (messages sent to the server, the one telemetry event)."""
    module.CASE.clear()
    module.CASE.update(case)
    applog.clear()
    sent: List[Dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/case", "raw_path": b"/case", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    try:
        asyncio.run(module.app(scope, receive, send))
    except RuntimeError as exc:
        assert case.get("raise") and str(exc) == "case failed"
    (event,) = [e for e in applog.events() if e["message"] in ("case_served", "case_failed")]
    return sent, event


STATUS_CASES = [200, 201, 204, 302, 399, 400, 404, 451, 499, 500, 502, 503, "raise"]


@pytest.mark.parametrize("case", STATUS_CASES)
def test_status_to_level_is_the_reference_for_every_case(app_module, case):
    if case == "raise":
        _sent, event = request(app_module, {"raise": True})
        expected = status_level(None, RuntimeError("case failed"))
    else:
        _sent, event = request(app_module, {"status": case})
        expected = status_level(case, None)
    assert event["level"] == logging.getLevelName(expected)
    assert event["message"] == ("case_served" if expected == logging.INFO else "case_failed")


MS_CASES = [(0.0, 0), (0.0004, 0), (0.0006, 1), (0.00149, 1), (0.00151, 2), (0.0123456, 12), (1.23449, 1234),
            (1.23451, 1235), (3600.0, 3_600_000)]  # fmt: skip


@pytest.mark.parametrize(("seconds", "ms"), MS_CASES)
def test_ms_rounding_is_the_reference_for_every_case(app_module, seconds, ms):
    assert to_ms(seconds) == ms
    _sent, event = request(app_module, {"seconds": seconds})
    assert event["sample_ms"] == to_ms(seconds)
    assert isinstance(event["web_case_ms"], int) and event["web_case_ms"] >= 0


HEADER_CASES = {
    "none of the app's": [(b"content-type", b"text/plain")],
    "no headers at all": [],
    "the app's own, same case": [(b"x-correlation-id", b"app-set")],
    "the app's own, other case": [(b"X-Correlation-ID", b"app-set")],
    "a longer name with our prefix": [(b"x-correlation-id-extra", b"v")],
}


@pytest.mark.parametrize("headers", HEADER_CASES.values(), ids=list(HEADER_CASES))
def test_response_header_injection_is_the_reference_for_every_case(app_module, headers):
    sent, event = request(app_module, {"headers": headers})
    start = sent[0]
    app_message = {"type": "http.response.start", "status": 200, "headers": list(headers)}
    expected = _with_header(app_message, (b"x-correlation-id", event["correlation_id"].encode()))
    assert start == expected
    assert headers == list(HEADER_CASES.values())[list(HEADER_CASES.values()).index(headers)]  # never mutated


MERGE_CASES = {
    "disjoint fields": (logging.INFO, {"image": "a.jpg", "size": 3}),
    "the app sets a field of ours": (logging.INFO, {"status_code": "app's", "method": "app's", "image": "b"}),
    "the app sets an owned field": (logging.INFO, {"correlation_id": "forged", "web_case_ms": -1, "image": "c"}),
    "the app's level is higher": (logging.WARNING, {"image": "d"}),
    "the app's level is lower": (logging.DEBUG, {"image": "e"}),
}


@pytest.mark.parametrize(("app_level", "fields"), MERGE_CASES.values(), ids=list(MERGE_CASES))
def test_the_merged_event_is_the_reference_for_every_case(app_module, app_level, fields):
    _sent, event = request(app_module, {"log": (app_level, fields)})
    ours = {
        "correlation_id": event["correlation_id"], "web_case_ms": event["web_case_ms"], "method": "GET",
        "route": "/case", "status_code": 200,
    }  # fmt: skip
    held = (logging.getLogger("fixture.app"), app_level, "case_served", dict(fields))
    logger, level, name, expected = merged(held, ours, status_level(200, None), ("correlation_id", "web_case_ms"))
    got = {k: v for k, v in event.items() if k not in ("level", "logger", "message")}
    assert got == expected and list(got) == list(expected)  # same fields, same order
    assert (event["level"], event["logger"], event["message"]) == (
        logging.getLevelName(level), logger.name, name
    )
    assert event["correlation_id"] != "forged" and event["web_case_ms"] >= 0


@pytest.mark.parametrize("how", ["seconds", "listed"])
def test_a_stage_field_the_app_also_sets_is_owned_by_the_telemetry_in_the_merged_event(app_module, how):
    """The middleware asks the request itself which keys are ours (`_Request.__contains__`, no set built):
    a stage field that ran wins over the app's same key, like the reference given the owned fields by name."""
    fields = {"sample_ms": "app's", "status_code": "app's", "image": "f"}
    _sent, event = request(app_module, {how: 0.0123, "log": (logging.INFO, fields)})
    ours = {
        "correlation_id": event["correlation_id"], "web_case_ms": event["web_case_ms"], "method": "GET",
        "route": "/case", "status_code": 200, "sample_ms": to_ms(0.0123),
    }  # fmt: skip
    held = (logging.getLogger("fixture.app"), logging.INFO, "case_served", dict(fields))
    owned = ("correlation_id", "web_case_ms", "sample_ms")
    _logger, _level, _name, expected = merged(held, ours, status_level(200, None), owned)
    got = {k: v for k, v in event.items() if k not in ("level", "logger", "message")}
    assert got == expected and got["sample_ms"] == 12 and got["status_code"] == "app's"
