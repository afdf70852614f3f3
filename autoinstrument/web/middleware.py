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
from contextvars import ContextVar
from logging import INFO
from time import perf_counter
from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

from autoinstrument.manifest import WebSpec
from autoinstrument.runtime import install as hooks
from autoinstrument.runtime.scope import CURRENT, FOLD_AT, Accumulator, to_ms
from autoinstrument.web.gate import merged, status_level
from autoinstrument.web.ids import loggable, new_request_id, refusing_redacted, request_id_from
from autoinstrument.web.routes import RouteTable, json_result

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
#: True once a middleware was made by hand (before that no request can be inside one: `_SERVING` is not read).
_by_hand_made = False


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
        direct: Callable[[], Optional[Tuple[Callable[..., Any], Any]]] = lambda: None,
        direct_failed: Optional[Callable[..., None]] = None,
    ):
        self.spec = spec
        self.emit = emit
        #: the exporters' hub (export/hub.py) when the manifest turns one on, set by the attachment; else None
        self.export: Any = None
        #: the per-request event's path: `emit` without the deferral check (the first request ends it)
        self.emit_now = emit_now or emit
        self.fault = fault
        #: (log function, logger) for calling the app's log function inline, from the first request on
        self.direct = direct
        self.direct_failed = direct_failed
        self.function: Optional[Callable[..., Any]] = None
        self.logger: Any = None
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
        #: its length: a header of another length is skipped with one compare
        self.request_size = len(self.request_header)
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
        found = self.direct() if self.direct_failed is not None else None
        if found is not None:
            self.function, self.logger = found

    def failed(self, kind: str, exc: BaseException) -> None:
        """Report a fault of ours once per kind; never raises."""
        with contextlib.suppress(Exception):  # the emitter isolates its own faults; this is belt and braces
            self.fault(f"web_{kind}", f"{type(exc).__name__}: {exc}", target=self.spec.app.text)


_new = object.__new__


class _Request(Accumulator):
    """A mapped request's accumulator: the stages inside add into it, nested scopes collect into it, and the
    log gate (merge.py) finds the request through it and holds the app's call of the route's event in `held`.

    Made with `object.__new__` and filled in `TelemetryMiddleware.__call__` (no `__init__` frame per request).
    While the request runs, `request` is the object itself and `held` a list; when it ends both are set to None
    (the gate then passes calls straight through, and no reference cycle outlives the request). `owner` is the
    route (late stages are reported through it). What every request shares is on the class.
    """

    __slots__ = ("held",)

    inclusive = True  # the stages of scopes nested in a request count in it too
    lock = _LOCK  # held only to fold samples, never around app code
    unlocked_close = True  # closed in __call__ without the lock (see Accumulator.unlocked_close)

    def __contains__(self, field: object) -> bool:
        """Whether `field` of the request's event is the telemetry's own (it wins over the app's same key in
        `gate.merged`): the correlation id, the route's field, and each stage field that ran. Asked only for a
        key the app's held event shares with ours, so nothing is built per request."""
        return (
            field == "correlation_id"
            or field == self.owner.field
            or field in self.totals
            or bool(self.lists.get(field))  # type: ignore[arg-type]
        )


def _kept(body: bytearray, message: Message, telemetry: WebTelemetry) -> Optional[bytearray]:
    """`body` with the message's chunk appended; None once it would pass BODY_LIMIT (or on a fault)."""
    try:
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > BODY_LIMIT:
            return None
        body += chunk
        return body
    except Exception as exc:
        telemetry.failed("body_copy_failed", exc)
        return None


def _json_body(headers: Iterable[Tuple[bytes, bytes]]) -> Optional[bytearray]:
    """A buffer for the body copy when the response is uncompressed JSON (the `result` keys come from it)."""
    content_type = encoding = None
    for key, value in headers:
        lower = key.lower()
        if lower == b"content-type":
            content_type = value
        elif lower == b"content-encoding":
            encoding = value
    if content_type is not None and b"json" in content_type.lower() and encoding is None:
        return bytearray()
    return None


def _with_header(message: Message, header: Tuple[bytes, bytes]) -> Message:
    """A copy of the start message with our header appended (unless the app set it, in any case); the app's own
    message and header list are never mutated (a reused Response object must not grow headers).

    `header[0]` is lower case, so `key.lower() == name` is the whole case-insensitive compare, and a name of
    another length is skipped with one `len` compare (a C-level `in map(...)` search was fewer bytecodes but
    twice the time: `benchmarks/bench_hot_path_copies.py`)."""
    headers = message.get("headers") or ()
    name = header[0]
    size = len(name)
    for key, _value in headers:
        if len(key) == size and key.lower() == name:
            return message
    copy = dict(message)
    copy["headers"] = [*headers, header]
    return copy


def _add_totals(
    route: Any, lists: Dict[str, List[float]], totals: Tuple[Tuple[str, List[float]], ...], payload: Dict[str, Any]
) -> None:
    """Each stage field of a request that also has totals (new to the route, a generator's steps, folded
    samples), in ms; the new fields get their lists made up front in the route's next requests."""
    folded = dict(totals)
    for field, samples in lists.items():
        if samples:
            slot = folded.get(field)
            seconds = sum(samples) + (slot[0] if slot is not None else 0.0)
            payload[field] = to_ms(seconds)
    for field, slot in totals:
        if field not in payload:
            payload[field] = to_ms(slot[0])
    known = route.known
    fresh = tuple(field for field, _slot in totals if field not in known)
    if fresh:
        route.known = known + fresh


class TelemetryMiddleware:
    """The pure ASGI middleware: usable by hand on any ASGI app, `app = TelemetryMiddleware(app)`.

    Made by hand (no `telemetry`), it serves the CURRENT install's `web:` section and passes every request
    straight through while nothing is installed, so an app can wrap itself unconditionally. Made by the
    attachment (`attach.py`) it carries its install's telemetry. An app both wrapped by hand and attached is
    served once, by the outer one.

    The per-request path is written like the cheapest middleware that could do the job: one `__call__` with
    locals, a closure `send`, no request object with methods; what is the same for every request (header
    names as bytes, compiled routes, the resolved log function and ContextVar) was worked out once. A mapped
    route gets one small accumulator object (`_Request`), because the stages inside must find it.
    """

    __slots__ = ("app", "telemetry")

    def __init__(self, app: ASGIApp, telemetry: Optional[WebTelemetry] = None):
        global _by_hand_made
        self.app = app
        self.telemetry = telemetry
        if telemetry is None:
            _by_hand_made = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901 - one frame on purpose
        t = self.telemetry
        by_hand = t is None
        if by_hand:
            t = installed_telemetry()
        if t is None or scope["type"] != "http" or (_by_hand_made and _SERVING.get()):
            await self.app(scope, receive, send)
            return
        # Start: the id in, the route, the accumulator. A fault here: reported once, the request runs without us.
        try:
            if t.ready is not None:
                t.first_request()
            cid = None
            wanted = t.request_header
            size = t.request_size
            for name, value in scope.get("headers") or ():
                if len(name) == size and name.lower() == wanted:  # `wanted` is lower case
                    cid = t.validate(value)
                    break
            if cid is None:
                cid = t.generate()
            header = (t.response_header, cid.encode("ascii"))
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :] or "/"
            method = scope["method"]
            route = t.static.get((method, path))
            params = None
            if route is None and t.dynamic:
                route, params = t.match(method, path)
            var = t.var
            if route is not None:
                previous_acc = CURRENT.get()
                acc = _new(_Request)
                lists: Dict[str, List[float]] = {}
                for field in route.known:  # the fields this route's requests produced: no first-sample miss
                    lists[field] = []
                acc.lists = lists
                acc.totals = {}
                acc.limit = FOLD_AT
                acc.closed = False
                acc.late = None
                acc.records = None
                acc.owner = route
                acc.correlation_id = cid
                acc.collector = (
                    None if previous_acc is None else previous_acc if previous_acc.inclusive else previous_acc.collector
                )
                acc.held = []
                acc.request = acc
        except Exception as exc:
            t.failed("request_start_failed", exc)
            await self.app(scope, receive, send)
            return

        if route is None:  # not mapped: the id in and out, no event

            def send_with_id(message: Message) -> Awaitable[None]:
                if message["type"] == "http.response.start":
                    try:
                        message = _with_header(message, header)
                    except Exception as exc:
                        t.failed("response_header_failed", exc)
                return send(message)

            previous_cid = None
            if var is not None:
                previous_cid = var.get(None)
                var.set(cid)
            if by_hand:
                _SERVING.set(True)
            try:
                if t.export is None or not t.export.answers(method, path):
                    await self.app(scope, receive, send_with_id)
                else:  # GET /metrics with Prometheus on (export/hub.py)
                    await t.export.serve(scope, send_with_id)
            finally:
                if by_hand:
                    _SERVING.set(False)
                if var is not None:
                    try:
                        var.set(previous_cid)
                    except Exception as err:  # pragma: no cover - ContextVar.set does not fail in the same context
                        t.failed("unbind_failed", err)
            return

        status: Any = None
        end = 0.0
        body: Optional[bytearray] = None
        keep = route.result

        def send_timed(message: Message) -> Awaitable[None]:
            """The app's `send`: a plain function returning the server's awaitable (no coroutine of ours per
            message). The request ends when its last body byte is handed to the server."""
            nonlocal status, end, body
            kind = message["type"]
            if kind == "http.response.body":
                if body is not None:
                    body = _kept(body, message, t)
                if not message.get("more_body", False):
                    end = perf_counter()
            elif kind == "http.response.start":
                try:
                    status = message.get("status")
                    if keep:
                        body = _json_body(message.get("headers") or ())
                    message = _with_header(message, header)
                except Exception as exc:
                    t.failed("response_header_failed", exc)
            elif kind == "http.response.pathsend":  # a file the server sends itself: ends when it says so

                async def file_sent() -> None:
                    nonlocal end
                    await send(message)
                    end = perf_counter()

                return file_sent()
            return send(message)

        # Bind last: nothing below can fail, so a fault above leaves no context changed.
        previous_cid = None
        if var is not None:
            previous_cid = var.get(None)
            var.set(cid)
        CURRENT.set(acc)
        if by_hand:
            _SERVING.set(True)
        error: Optional[BaseException] = None
        start = perf_counter()
        export = t.export
        span = None if export is None else export.request_started(scope, route, start, cid, acc)  # never raises
        try:
            await self.app(scope, receive, send_timed)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if not end:
                end = perf_counter()
            if by_hand:
                _SERVING.set(False)
            try:
                CURRENT.set(previous_acc)
            except Exception as err:  # pragma: no cover - ContextVar.set does not fail in the same context
                t.failed("unbind_failed", err)
            held = acc.held
            acc.held = acc.request = None  # ended: the gate lets calls through; no cycle outlives the request
            # The one event (never raises).
            try:
                code = status if status is not None else 500
                payload: Dict[str, Any] = {
                    "correlation_id": cid,
                    route.field: to_ms(end - start),
                    "method": route.method,
                    "route": route.template,
                    "status_code": code,
                }
                if params:
                    for key, value in params.items():
                        payload[key if key not in payload else f"path_{key}"] = loggable(value)
                # Close the accumulator and add each stage field that ran, in ms. Without the lock: `closed`
                # first, then `limit` (a sample appended after sees it and is reported late, never folded),
                # then the reads; an `add` or `fold` racing with this reports its sample late
                # (Accumulator.unlocked_close). The lists' keys never change; totals are read as a snapshot.
                acc.closed = True
                acc.limit = -1
                totals = acc.totals
                if not totals:
                    for field, samples in lists.items():
                        if samples:
                            payload[field] = to_ms(sum(samples))
                else:  # fields with no list made up front (new, or a generator's steps), or folded samples
                    _add_totals(route, lists, tuple(totals.items()), payload)
                if body is not None and keep:
                    payload.update(json_result(bytes(body), keep))
                level = status_level(code, error)
                if error is not None:
                    payload["error_type"] = type(error).__name__
                    event = route.error_event
                else:
                    event = route.error_event if level != INFO else route.event
                if held:  # the app's held call and ours as ONE event (`gate.merged`, the one reference)
                    logger, written_level, name, fields = merged(held[0], payload, level, acc)
                else:
                    logger, written_level, name, fields = t.logger, level, event, payload
                function = t.function
                if function is not None:
                    try:
                        function(logger, written_level, name, **fields)
                    except Exception as exc:
                        t.direct_failed(exc, name, fields, written_level)  # type: ignore[misc]
                elif held:
                    t.emit(name, fields, written_level, logger)
                else:
                    t.emit_now(event, payload, level)
                if export is not None:
                    export.request_ended(span, route, start, end, payload, code, error, event)
            except Exception as err:
                t.failed("event_failed", err)
            # Unbound only now: the app's log function, writing the request's one event above, reads the
            # request's id from the correlation ContextVar as it did for its own calls during the request.
            if var is not None:
                try:
                    var.set(previous_cid)
                except Exception as err:  # pragma: no cover - ContextVar.set does not fail in the same context
                    t.failed("unbind_failed", err)
            error = None  # the exception's traceback holds this frame: no cycle


def installed_telemetry() -> Optional[WebTelemetry]:
    """The current install's web telemetry (None when not installed or without a `web:` section)."""
    state = hooks.current()
    web = state.web if state is not None else None
    return web.telemetry if web is not None else None
