"""The web runtime: a pure ASGI middleware that binds a correlation id per request, answers it in a response
header, and emits ONE timing event per request of a route the manifest maps.

Why a pure ASGI middleware, outermost: context set inside `BaseHTTPMiddleware` or a sync dependency never
flows back out, and a middleware inside Starlette's `ServerErrorMiddleware` never sees the 500 that middleware
sends for an unhandled exception. Ours wraps the whole stack, so the correlation id is bound in the app's
ContextVar before any of the app's code runs (every log call inside carries it), and every
`http.response.start` passes through our `send`, the 500 included.

Never changes behaviour: the app sees the same scope, receive and exceptions; the client gets the same
status, body and headers plus the response header (not added when the app set one itself). A fault of ours is
reported once (`autoinstrument_fault`, `fault: web_...`) and the request goes on as without us. Ids and
loggable values: `ids.py`; route matching: `routes.py`; attaching to an app: `attach.py`; the one event per
request: `merge.py`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from contextvars import ContextVar
from logging import ERROR, INFO, WARNING
from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

from autoinstrument import hooks
from autoinstrument.ids import loggable, new_request_id, refusing_redacted, request_id_from
from autoinstrument.manifest import WebSpec
from autoinstrument.merge import merged
from autoinstrument.routes import Route, RouteTable, json_result
from autoinstrument.scope import CURRENT, FOLD_AT, Accumulator, to_ms

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: At most this many bytes of a route's JSON body are kept to read its `result` keys (a copy; the body
#: itself is passed on at once, chunk by chunk). A larger body yields no `result` fields.
BODY_LIMIT = 64 * 1024

#: The lock every request accumulator shares (held only to fold samples: a few list sums).
_LOCK = threading.Lock()

#: True while a hand-made middleware serves a request (an attached one inside it then passes through).
_SERVING: ContextVar[bool] = ContextVar("autoinstrument_serving", default=False)


class WebTelemetry:
    """What every request of one manifest shares: header names, compiled routes, where events go.

    `emit(event, fields)` and `fault(kind, detail, **context)` are the installer's emitter; `correlation()`
    returns the app's ContextVar (or None); `ready()` is called at each request (flushes deferred start-up
    events); `fields` are the stage fields pre-allocated in each request's accumulator.
    """

    def __init__(
        self,
        spec: WebSpec,
        emit: Callable[..., None],
        fault: Callable[..., None],
        correlation: Callable[[], Optional[ContextVar]] = lambda: None,
        ready: Callable[[], None] = lambda: None,
        fields: Iterable[str] = (),
        validate: Callable[[bytes], Optional[str]] = request_id_from,
        generate: Callable[[], str] = new_request_id,
        redactor: Callable[[], Optional[Callable[[str], str]]] = lambda: None,
        emit_now: Optional[Callable[..., None]] = None,
    ):
        self.spec = spec
        self.emit = emit
        #: the per-request event's path: `emit` without the deferral check (the first request ends it)
        self.emit_now = emit_now or emit
        self.fault = fault
        self.correlation = correlation
        #: called at the first request only (the emitter never goes back to deferring)
        self.ready: Optional[Callable[[], None]] = ready
        #: the app's correlation ContextVar, resolved at the first request (`first_request`)
        self.var: Optional[ContextVar] = None
        self.fields = tuple(fields)
        self.validate = validate
        self.generate = generate
        self.redactor = redactor
        self.request_header = spec.request_header.lower().encode("latin-1")
        self.response_header = spec.response_header.lower().encode("latin-1")
        table = RouteTable(spec.routes, self)
        self.static = table.static
        self.dynamic = table.dynamic
        self.match = table.match

    def first_request(self) -> None:
        """Flush the deferred start-up events and resolve the correlation ContextVar, once."""
        self.var = self.correlation()  # first: a request must bind the id even if flushing went wrong
        redact = self.redactor()
        if redact is not None:
            self.validate = refusing_redacted(redact, self.validate)
        ready, self.ready = self.ready, None
        if ready is not None:
            ready()

    def failed(self, kind: str, exc: BaseException) -> None:
        """Report a fault of ours once per kind; never raises."""
        with contextlib.suppress(Exception):  # the emitter isolates its own faults; this is belt and braces
            self.fault(f"web_{kind}", f"{type(exc).__name__}: {exc}", target=self.spec.app.text)


class TelemetryMiddleware:
    """The pure ASGI middleware: usable by hand on any ASGI app, `app = TelemetryMiddleware(app)`.

    Made by hand (no `telemetry`), it serves the CURRENT install's `web:` section and passes every request
    straight through while nothing is installed, so an app can wrap itself unconditionally. Made by the
    attachment (`attach.py`) it carries its install's telemetry. An app both wrapped by hand and attached is
    served once, by the outer one. All state per request lives in `_Request`.
    """

    __slots__ = ("app", "telemetry")

    def __init__(self, app: ASGIApp, telemetry: Optional[WebTelemetry] = None):
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.telemetry
        by_hand = telemetry is None
        if by_hand:
            telemetry = installed_telemetry()
        if telemetry is None or scope["type"] != "http" or _SERVING.get():
            await self.app(scope, receive, send)
            return
        try:
            request = _Request(telemetry, scope, send)
        except Exception as exc:
            telemetry.failed("request_start_failed", exc)
            await self.app(scope, receive, send)
            return
        if by_hand:
            _SERVING.set(True)
        try:
            await self.app(scope, receive, request.send)
        except BaseException as exc:
            request.finish(exc)
            raise
        finally:
            if by_hand:
                _SERVING.set(False)
        request.finish(None)


def installed_telemetry() -> Optional[WebTelemetry]:
    """The current install's web telemetry (None when not installed or without a `web:` section)."""
    state = hooks.current()
    web = state.web if state is not None else None
    return web.telemetry if web is not None else None


class _Request(Accumulator):
    """One HTTP request: its id, its route, the `send` that adds the header, and, on a mapped route, the
    request's own accumulator (this object: the stages inside add into it; one object per request, not two).

    The accumulator part is set up only for a mapped route. Its field lists are pre-allocated from the fields
    the route's earlier requests produced (`Route.known`), so a stage's first sample costs no exception and no
    lock in steady state; a new field takes the locked `add` once and is remembered for the next request.
    Request accumulators share one lock: it is held only to fold samples, never around app code.
    """

    __slots__ = (
        "t",
        "downstream",
        "cid",
        "header",
        "route",
        "params",
        "var",
        "previous_cid",
        "previous_acc",
        "start",
        "end",
        "status",
        "body",
        "done",
        "held",
    )

    @property
    def request(self) -> Optional[_Request]:  # type: ignore[override]
        """What the log gate checks (merge.py): this request when mapped (a property, not a slot holding
        itself: a reference cycle would leave every request to the garbage collector)."""
        return self if self.held is not None else None

    def __init__(self, t: WebTelemetry, scope: Scope, send: Send):
        if t.ready is not None:
            t.first_request()
        self.t = t
        self.downstream = send
        cid = None
        wanted = t.request_header
        for name, value in scope.get("headers") or ():
            if name == wanted or (len(name) == len(wanted) and name.lower() == wanted):
                cid = t.validate(value)
                break
        if cid is None:
            cid = t.generate()
        self.cid = cid
        self.header = (t.response_header, cid.encode("ascii"))
        path = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        method = scope["method"]
        route = t.static.get((method, path))
        self.params = None
        if route is None and t.dynamic:
            route, self.params = t.match(method, path)
        self.route: Optional[Route] = route
        self.status: Optional[int] = None
        self.body: Optional[bytearray] = None
        self.end = 0.0
        self.done = False
        # Bind last: nothing below can fail, so a fault above leaves no context changed.
        self.var = var = t.var
        self.previous_cid = None
        if var is not None:
            self.previous_cid = var.get(None)
            var.set(cid)
        if route is not None:
            # The accumulator part (see Accumulator.__init__; set here without a second call).
            lists: Dict[str, List[float]] = {}
            for field in route.known:
                lists[field] = []
            self.lists = lists
            self.totals = {}
            self.limit = FOLD_AT
            self.closed = False
            self.late = None
            self.owner = route
            self.correlation_id = cid
            self.inclusive = True
            self.lock = _LOCK
            self.previous_acc = previous = CURRENT.get()
            self.collector = None if previous is None else previous if previous.inclusive else previous.collector
            self.held: Optional[List[Any]] = []  # the app's call of this route's event, held (merge.py)
            CURRENT.set(self)
        else:
            self.held = None
        self.start = time.perf_counter()

    def send(self, message: Message) -> Awaitable[None]:
        """The app's `send`: a plain function returning the server's awaitable (no coroutine of our own per
        message). The request ends when its last body byte is handed to the server."""
        kind = message["type"]
        if kind == "http.response.body":
            if self.body is not None:
                self._keep(message)
            if not message.get("more_body", False):
                self.end = time.perf_counter()
        elif kind == "http.response.start":
            try:
                message = self._started(message)
            except Exception as exc:
                self.t.failed("response_header_failed", exc)
        elif kind == "http.response.pathsend":
            return self._path_sent(message)
        return self.downstream(message)

    async def _path_sent(self, message: Message) -> None:
        """A file the server sends itself: the request ends when the server says it has sent it."""
        await self.downstream(message)
        self.end = time.perf_counter()

    def _started(self, message: Message) -> Message:
        """A copy of the start message with our header appended (unless the app set it); the app's own
        message and header list are never mutated (a reused Response object must not grow headers)."""
        self.status = message.get("status")
        headers = message.get("headers") or ()
        name = self.header[0]
        route = self.route
        keep = route is not None and route.result
        content_type = encoding = None
        present = False
        for key, value in headers:
            if key == name or (len(key) == len(name) and key.lower() == name):
                present = True
            elif keep:
                lower = key.lower()
                if lower == b"content-type":
                    content_type = value
                elif lower == b"content-encoding":
                    encoding = value
        if keep and content_type is not None and b"json" in content_type.lower() and encoding is None:
            self.body = bytearray()
        if present:
            return message
        copy = dict(message)
        copy["headers"] = [*headers, self.header]
        return copy

    def _keep(self, message: Message) -> None:
        try:
            chunk = message.get("body", b"")
            if len(self.body) + len(chunk) > BODY_LIMIT:  # type: ignore[arg-type]
                self.body = None
            else:
                self.body += chunk  # type: ignore[operator]
        except Exception as exc:
            self.body = None
            self.t.failed("body_copy_failed", exc)

    def finish(self, exc: Optional[BaseException]) -> None:
        """Unbind, then emit the route's event (once, whatever happened). Never raises."""
        if self.done:
            return
        self.done = True
        end = self.end or time.perf_counter()
        route = self.route
        try:
            if route is not None:
                CURRENT.set(self.previous_acc)
            if self.var is not None:
                self.var.set(self.previous_cid)
        except Exception as err:  # pragma: no cover - ContextVar.set does not fail in the same context
            self.t.failed("unbind_failed", err)
        if route is None:
            return
        try:
            status = self.status if self.status is not None else 500
            ms = int((end - self.start) * 1000.0 + 0.5)  # scope.to_ms, inlined: this runs per request
            payload: Dict[str, Any] = {
                "correlation_id": self.cid,
                route.field: ms if ms > 0 else 0,
                "method": route.method,
                "route": route.template,
                "status_code": status,
            }
            params = self.params
            if params:
                for key, value in params.items():
                    payload[key if key not in payload else f"path_{key}"] = loggable(value)
            stages = self._close_into(payload) if (self.lists or self.totals) else ()
            if self.body is not None and route.result:
                payload.update(json_result(bytes(self.body), route.result))
            # The status-derived level (merge.status_level, inlined: this runs per request).
            if exc is not None or type(status) is not int or status >= 500:
                level = ERROR
            elif status >= 400:
                level = WARNING
            else:
                level = INFO
            if exc is not None:
                payload["error_type"] = type(exc).__name__
                name = route.error_event
            else:
                name = route.error_event if level != INFO else route.event
            if self.held:
                owned = ("correlation_id", route.field, *stages)
                logger, level, name, payload = merged(self.held[0], payload, level, owned)
                self.t.emit(name, payload, level, logger)
            else:
                self.t.emit_now(name, payload, level)
        except Exception as err:
            self.t.failed("event_failed", err)

    def _close_into(self, payload: Dict[str, Any]) -> Tuple[str, ...]:
        """Close the accumulator part (later samples are late) and add each stage field that ran, in ms;
        returns their names. New fields are remembered on the route for the next request's lists."""
        with self.lock:
            self.closed = True
            self.limit = -1
            totals = self.totals
            names = []
            for field, samples in self.lists.items():
                if samples:
                    seconds = sum(samples)
                    slot = totals.get(field)
                    if slot is not None:
                        seconds += slot[0]
                    payload[field] = to_ms(seconds)
                    names.append(field)
            for field, slot in totals.items():
                if field not in payload:
                    payload[field] = to_ms(slot[0])
                    names.append(field)
        route = self.route
        if totals:
            known = route.known  # type: ignore[union-attr]
            fresh = tuple(field for field in totals if field not in known)
            if fresh:
                route.known = known + fresh  # type: ignore[union-attr]
        return tuple(names)
