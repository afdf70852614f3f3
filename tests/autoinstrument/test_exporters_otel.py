"""OpenTelemetry end to end: the shop (tests/autoinstrument/shop_app), installed by the start-up switch with
`exporters.opentelemetry` on, configures the OpenTelemetry SDK the standard way with the SDK's real OTLP/HTTP
exporter; a receiver on 127.0.0.1 decodes the protobuf payload (`ExportTraceServiceRequest`). The span tree,
names, attributes and each span's duration against the event's `_ms` field (within 1 ms) are checked, for the
CLI-like scope (two direct checkouts) and for the mapped web route (two requests, the checkout nested in each).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from telemetry_testkit import HERE, subprocess_env

SHOP_EXPORT = HERE / "shop_app" / "telemetry-export.yaml"
pytestmark = pytest.mark.slow

#: The app's own SDK set-up, as a user writes it (the OTLP endpoint comes from the standard variables).
RUN_SHOP = """
import asyncio, json, sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

import shop_app.__main__ as shop
json.dump(asyncio.run(shop.main()), sys.stdout)
provider.shutdown()
"""


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint: keeps every decoded span."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: List[Any] = []
        self.paths: List[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.server.spans.extend(scope_spans.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def attributes(span: Any) -> Dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def ms(span: Any) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


def test_scopes_stages_and_routes_reach_an_otlp_receiver_as_a_span_tree(receiver: Receiver, tmp_path: Path) -> None:
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(SHOP_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    port = receiver.server_address[1]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SHOP], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=subprocess_env(
            AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest), XDG_CACHE_HOME=str(tmp_path / "cache"),
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_BSP_SCHEDULE_DELAY="50",
        ),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["event"] == "autoinstrument_fault"], proc.stderr
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    spans = receiver.spans
    by_id = {span.span_id: span for span in spans}
    children: Dict[bytes, List[Any]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)

    checkouts = {e["correlation_id"]: e for e in events if e["event"] == "checkout_timing"}
    orders = {e["correlation_id"]: e for e in events if e["event"] == "order_served"}
    assert len(checkouts) == 4 and set(orders) == {"order-1", "order-2"}

    # Every checkout is a span named after its event, carrying the correlation id and the result keys, its
    # duration the event's total; its children are one span per stage CALL, at the call's own start and end:
    # each at least the call's own sleep (lookup 10 ms, price fetch 20 ms), inside the scope, and a field's
    # spans add up to its `_ms` field. The two price fetches of a two-item checkout run under asyncio.gather:
    # their spans overlap; the lookups run one after the other: theirs do not.
    sleeps = {"lookup_ms": 10.0, "price_fetch_ms": 20.0}
    overlapping = 0
    scope_spans = [s for s in spans if s.name == "checkout_timing"]
    assert len(scope_spans) == 4
    for span in scope_spans:
        attrs = attributes(span)
        event = checkouts[attrs["autoinstrument.correlation_id"]]
        assert {k: attrs[f"autoinstrument.{k}"] for k in ("total", "items", "paid")} == {
            k: event[k] for k in ("total", "items", "paid")
        }
        assert abs(ms(span) - event["checkout_total_ms"]) <= 1.0, (ms(span), event)
        stages: Dict[str, List[Any]] = {}
        for child in children.get(span.span_id, []):
            stages.setdefault(child.name, []).append(child)
        assert set(stages) == {"lookup_ms", "price_fetch_ms"}
        for name, calls in stages.items():
            assert len(calls) == event["stage_calls"][name] == event["items"]  # one span per call
            assert abs(sum(ms(child) for child in calls) - event[name]) <= 1.0, (name, [ms(c) for c in calls], event)
            for child in calls:
                assert ms(child) >= sleeps[name], (name, ms(child))
                assert attributes(child)["autoinstrument.calls"] == 1
                assert child.trace_id == span.trace_id
                assert span.start_time_unix_nano <= child.start_time_unix_nano
                assert child.end_time_unix_nano <= span.end_time_unix_nano
        lookups = sorted((c.start_time_unix_nano, c.end_time_unix_nano) for c in stages["lookup_ms"])
        assert all(a[1] <= b[0] for a, b in zip(lookups, lookups[1:])), lookups  # sequential calls
        fetches = [(c.start_time_unix_nano, c.end_time_unix_nano) for c in stages["price_fetch_ms"]]
        if len(fetches) == 2:
            assert max(f[0] for f in fetches) < min(f[1] for f in fetches), fetches  # they overlap
            overlapping += 1
        assert span.status.code == 0  # unset: no error
    assert overlapping == 2  # the direct ["tea", "mug"] checkout and the request for /orders/tea,pot

    # The two direct checkouts are roots; the two web checkouts are children of their request's server span.
    roots = [s for s in scope_spans if not s.parent_span_id]
    assert len(roots) == 2
    servers = [s for s in spans if s.name == "GET /orders/{skus}"]
    assert len(servers) == 2
    for server in servers:
        attrs = attributes(server)
        event = orders[attrs["autoinstrument.correlation_id"]]
        assert server.kind == server.SPAN_KIND_SERVER and not server.parent_span_id
        assert attrs["http.route"] == "/orders/{skus}" and attrs["http.request.method"] == "GET"
        assert attrs["http.response.status_code"] == 200
        assert (attrs["autoinstrument.total"], attrs["autoinstrument.paid"]) == (event["total"], event["paid"])
        assert abs(ms(server) - event["web_order_ms"]) <= 1.0, (ms(server), event)
        # the stages ran inside the nested checkout: drawn there once, not again under the request
        (nested,) = children[server.span_id]
        assert nested.name == "checkout_timing"
        assert attributes(nested)["autoinstrument.correlation_id"] == event["correlation_id"]
    # The unmapped request (/nothing) made no span; nothing else was sent.
    assert len(spans) == 4 + 2 + sum(sum(e["stage_calls"].values()) for e in checkouts.values()) == 4 + 2 + 12
    assert all(s.parent_span_id in by_id for s in spans if s.parent_span_id)


def test_an_error_sets_the_span_status(receiver: Receiver, tmp_path: Path) -> None:
    """A checkout that raises: its span has status ERROR with the exception recorded; the app's exception is
    unchanged."""
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(SHOP_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    run = RUN_SHOP.replace(
        "json.dump(asyncio.run(shop.main()), sys.stdout)",
        "from shop_app.catalog import Checkout\n"
        "try:\n    asyncio.run(Checkout().run(None))\nexcept TypeError as exc:\n    print(type(exc).__name__)",
    )
    port = receiver.server_address[1]
    proc = subprocess.run(
        [sys.executable, "-c", run], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=subprocess_env(
            AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest), XDG_CACHE_HOME=str(tmp_path / "cache"),
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_BSP_SCHEDULE_DELAY="50",
        ),
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "TypeError", proc.stderr
    (span,) = receiver.spans
    assert span.name == "checkout_timing"
    assert span.status.code == span.status.STATUS_CODE_ERROR and span.status.message == "TypeError"
    assert [e.name for e in span.events] == ["exception"]
    assert attributes(span)["autoinstrument.error_type"] == "TypeError"


#: OpenTelemetry's own ASGI instrumentation OUTSIDE the shop's middleware: its server span is current when our
#: middleware starts, so the route annotates it (route, correlation id) and times itself in a child span
#: instead of opening a second server span.
RUN_UNDER_OTEL_ASGI = """
import asyncio, json, sys
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)

from shop_app.web import app
outer = OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"])

async def get(path):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": b"", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1), "headers": [(b"host", b"shop"), (b"x-request-id", b"order-9")]}
    await outer(scope, receive, send)
    return sent[0]["status"]

status = asyncio.run(get("/orders/tea"))
spans = [{"name": s.name, "kind": s.kind.name, "id": s.context.span_id,
          "parent": s.parent.span_id if s.parent else None, "ms": (s.end_time - s.start_time) / 1e6,
          "attributes": dict(s.attributes)} for s in memory.get_finished_spans()]
json.dump({"status": status, "spans": spans}, sys.stdout)
"""


def test_a_server_span_made_outside_ours_is_annotated_and_the_route_timed_in_a_child(tmp_path: Path) -> None:
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(SHOP_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", RUN_UNDER_OTEL_ASGI], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest),
                           XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == 200
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    (order,) = [e for e in events if e["event"] == "order_served"]
    # One server span, OpenTelemetry's (named by its instrumentation), annotated with our route and id
    (server,) = [s for s in out["spans"] if s["kind"] == "SERVER"]
    assert server["name"] == "GET /orders/tea" and server["parent"] is None
    assert server["attributes"]["http.route"] == "/orders/{skus}"
    assert server["attributes"]["autoinstrument.correlation_id"] == "order-9"
    # the route's span is its child, lasting the route's field, carrying the fields and the results
    (route,) = [s for s in out["spans"] if s["name"] == "GET /orders/{skus}"]
    assert route["kind"] == "INTERNAL" and route["parent"] == server["id"]
    assert abs(route["ms"] - order["web_order_ms"]) <= 1.0
    assert route["attributes"]["autoinstrument.web_order_ms"] == order["web_order_ms"]
    assert route["attributes"]["autoinstrument.total"] == order["total"]
    # the checkout nested in the route is the route span's child; nothing drawn twice
    (checkout,) = [s for s in out["spans"] if s["name"] == "checkout_timing"]
    assert checkout["parent"] == route["id"]
    assert sorted(s["name"] for s in out["spans"] if s["parent"] == checkout["id"]) == ["lookup_ms", "price_fetch_ms"]
    assert len(out["spans"]) == 5


#: Two different stages under asyncio.gather, and a recursive stage (re-entered: one call), in one scope.
GATHER_APP = '''
import asyncio, json, sys, time
from contextvars import ContextVar

request_id = ContextVar("request_id", default=None)


def emit(logger, level, event, **fields):
    sys.stderr.write(json.dumps(dict(fields, event=event), default=str) + "\\n")


class Walker:
    def walk(self, n):
        time.sleep(0.005)
        return n if n == 0 else self.walk(n - 1)


def items():
    for i in range(2):
        time.sleep(0.003)
        yield i


async def fetch():
    await asyncio.sleep(0.03)


async def store():
    await asyncio.sleep(0.04)


class Job:
    async def run(self):
        Walker().walk(2)
        list(items())
        await asyncio.gather(fetch(), store())
        return 1
'''
GATHER_MANIFEST = """\
version: 1
log: {function: gather_app:emit, logger: gather, correlation: gather_app:request_id}
scopes:
  gather_app:Job.run: {event: job_timing, total: job_total_ms}
stages:
  gather_app:Walker.walk: walk_ms
  gather_app:items: items_ms
  gather_app:fetch: fetch_ms
  gather_app:store: store_ms
exporters:
  opentelemetry: {enabled: true}
"""
RUN_GATHER = """
import asyncio, json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)

import autoinstrument
from autoinstrument.runtime.scope import Accumulator
Accumulator.records_max = int(sys.argv[2])
assert autoinstrument.install(sys.argv[1])
import gather_app
asyncio.run(gather_app.Job().run())
json.dump([{"name": s.name, "id": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
            "start": s.start_time, "end": s.end_time, "attributes": dict(s.attributes)}
           for s in memory.get_finished_spans()], sys.stdout)
"""


def run_gather(tmp_path: Path, records_max: int = 1000) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The gather app's one job under the SDK's in-memory exporter: its event and its finished spans."""
    (tmp_path / "gather_app.py").write_text(GATHER_APP, encoding="utf-8")
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(GATHER_MANIFEST, encoding="utf-8")
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-c", RUN_GATHER, str(manifest), str(records_max)],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    (event,) = [json.loads(line) for line in proc.stderr.splitlines() if '"job_timing"' in line]
    return event, json.loads(proc.stdout)


def test_stages_under_gather_overlap_and_a_reentered_stage_is_one_span(tmp_path: Path) -> None:
    event, spans = run_gather(tmp_path)
    (job,) = [s for s in spans if s["name"] == "job_timing"]
    assert "autoinstrument.stage_spans_truncated" not in job["attributes"]
    children = {s["name"]: [c for c in spans if c["parent"] == job["id"] and c["name"] == s["name"]]
                for s in spans if s["parent"] == job["id"]}
    # the recursion walk(2) -> walk(1) -> walk(0) is one call (re-entry counted once): one span, the whole walk
    assert event["stage_calls"] == {"walk_ms": 1, "items_ms": 1, "fetch_ms": 1, "store_ms": 1}
    # a generator stage: one span per step (its active time: 2 yields and the end), the first counting the call
    steps = sorted(children.pop("items_ms"), key=lambda s: s["start"])
    assert [s["attributes"]["autoinstrument.calls"] for s in steps] == [1, 0, 0]
    assert abs(sum(s["end"] - s["start"] for s in steps) / 1e6 - event["items_ms"]) <= 1.0, (steps, event)
    assert all(a["end"] <= b["start"] for a, b in zip(steps, steps[1:]))
    assert {name: len(found) for name, found in children.items()} == {"walk_ms": 1, "fetch_ms": 1, "store_ms": 1}
    assert len(spans) == 4 + 3
    (walk,), (fetch,), (store,) = children["walk_ms"], children["fetch_ms"], children["store_ms"]
    for name, span in (("walk_ms", walk), ("fetch_ms", fetch), ("store_ms", store)):
        assert abs((span["end"] - span["start"]) / 1e6 - event[name]) <= 1.0, (name, span, event)
        assert job["start"] <= span["start"] and span["end"] <= job["end"]
    assert (walk["end"] - walk["start"]) / 1e6 >= 15.0  # three sleeps of 5 ms
    # fetch and store ran under asyncio.gather: their spans overlap (both after the walk), as they ran
    assert walk["end"] <= min(fetch["start"], store["start"])
    assert max(fetch["start"], store["start"]) < min(fetch["end"], store["end"]), (fetch, store)
    assert (fetch["end"] - fetch["start"]) / 1e6 >= 30.0 and (store["end"] - store["start"]) / 1e6 >= 40.0


def test_a_scope_with_more_stage_calls_than_kept_says_so(tmp_path: Path) -> None:
    """Past `Accumulator.records_max` calls a scope gets spans for the first ones only, and an attribute saying
    how many it kept (the event's fields still count every call)."""
    event, spans = run_gather(tmp_path, records_max=2)
    (job,) = [s for s in spans if s["name"] == "job_timing"]
    assert job["attributes"]["autoinstrument.stage_spans_truncated"] == 2
    assert sorted(s["name"] for s in spans if s["parent"] == job["id"]) == ["items_ms", "walk_ms"]
    assert event["stage_calls"] == {"walk_ms": 1, "items_ms": 1, "fetch_ms": 1, "store_ms": 1}
