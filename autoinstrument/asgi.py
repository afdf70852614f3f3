"""The web part: a pure ASGI middleware that binds a correlation id per request, answers it in a response
header, and emits ONE timing event per request of a route the manifest maps.

Why a pure ASGI middleware, outermost (instrumentation-lessons trap 3 and trap 10): context set inside
`BaseHTTPMiddleware` or a sync dependency never flows back out, and a middleware inside Starlette's
`ServerErrorMiddleware` never sees the 500 that middleware sends for an unhandled exception. Ours wraps the
whole stack, so the correlation id is bound in the app's ContextVar before any of the app's code runs (every
`log_json` inside carries it, including the workflow's events: `WorkflowOrchestrator.execute` reuses a bound
id), and every `http.response.start` passes through our `send`, the 500 included.

How it is attached, and why this way: the app object named by `web.app` gets an INSTANCE attribute
`build_middleware_stack` that calls the class's method and wraps the stack it returns in our middleware;
`middleware_stack` is reset so Starlette builds it again on the next request. Chosen over replacing the module
attribute with a proxy because:
- the app keeps its identity, so every reference gets the middleware: the one uvicorn imports, a
  `from publisher_v2.web.app import app` written before OR after `install()`, `TestClient(app)`; a proxy set
  on the module misses references taken before install, and `isinstance`/`is` checks on a proxy lie;
- the stack Starlette builds starts with `ServerErrorMiddleware`, so wrapping the built stack is by
  construction outside it, without touching `user_middleware` or `add_middleware`;
- `uninstall()` deletes the instance attribute (the class method shows through again, the exact original)
  and resets `middleware_stack`, so the next request runs without us.
A module that builds its app lazily (PEP 562 module `__getattr__`, as `publisher_v2.web.app` does so that
importing it needs no configuration) gets its `__getattr__` wrapped: the app is instrumented the moment it is
built. Only Starlette-style apps (FastAPI included) are supported; another ASGI callable is reported as a
fault and runs untouched.

Request ids: `X-Request-ID` (configurable) is used when it is 1..128 characters of `[A-Za-z0-9._-]`: UUIDs,
nginx `$request_id` (32 hex), ALB-style `1-67891233-abcdef012345678912345678` and dotted ids pass. Anything
else (empty, over-long, CR/LF, spaces, quotes, non-ASCII, and an AWS trace header `Root=1-...;Parent=...`,
whose `=` and `;` are outside the set) is replaced by a fresh UUID4 and neither echoed nor logged. Only the
first occurrence of the header is considered.

Routes are matched here, from the manifest's templates compiled once (`{param}` -> `[^/]+`, Starlette's
converters too), on the exact method and the path without `root_path`; events are keyed by the template, never
the raw path. A HEAD is not a GET, and `/x/` is not `/x` (Starlette redirects it): those emit nothing.

Path parameters (e.g. `filename`) are user input: a value of 1..128 characters of `[A-Za-z0-9._~@+,() -]` is
logged as is; any other value is logged escaped (`\\xNN`, `\\uNNNN`, so a backslash in the result always
starts an escape) and cut to 128 characters with `...` appended when cut.

Never changes behaviour: the app sees the same scope, receive and exceptions; the client gets the same
status, body and headers plus `X-Correlation-ID` (not added when the app set one itself). A fault of ours is
reported once (`autoinstrument_fault`, `fault: web_...`) and the request goes on as without us.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
import weakref
from contextvars import ContextVar
from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

from autoinstrument.manifest import TEMPLATE_PARAM_RE, Ref, RouteSpec, WebSpec
from autoinstrument.merge import HELD, merged, status_level
from autoinstrument.scope import CURRENT, Accumulator, to_ms

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MARK = "__autoinstrument_web__"
MAX_ID_LENGTH = 128
MAX_PARAM_LENGTH = 128
#: At most this many bytes of a route's JSON body are kept to read its `result` keys (a copy; the body
#: itself is passed on at once, chunk by chunk). A larger body yields no `result` fields.
BODY_LIMIT = 64 * 1024

_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")  # MAX_ID_LENGTH
_SAFE_PARAM = re.compile(r"[A-Za-z0-9._~@+,() -]{1,128}")  # MAX_PARAM_LENGTH
_SAFE_CHAR = re.compile(r"[A-Za-z0-9._~@+,() -]")
_CONVERTERS = {
    None: "[^/]+",
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
}
_ABSENT = object()


# --------------------------------------------------------------------------------------------- policies


def request_id_from(raw: bytes) -> Optional[str]:
    """The request id in a header value when it is safe to bind, echo and log; None otherwise."""
    if _SAFE_ID.fullmatch(raw) is None:
        return None
    return raw.decode("ascii")


_ID_BATCH = 64
_id_pool: List[str] = []


def _refill_ids() -> None:
    """Format a batch of UUID4s from ONE `os.urandom` call (a syscall per request cost more than the rest)."""
    raw = bytearray(os.urandom(16 * _ID_BATCH))
    fresh = []
    for at in range(0, len(raw), 16):
        raw[at + 6] = (raw[at + 6] & 0x0F) | 0x40  # version 4
        raw[at + 8] = (raw[at + 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw[at : at + 16].hex()
        fresh.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    _id_pool.extend(fresh)


def new_request_id() -> str:
    """A random UUID4 string, from a pool refilled in batches (`list.pop` is atomic: threads may share it)."""
    try:
        return _id_pool.pop()
    except IndexError:
        _refill_ids()
        return _id_pool.pop()


if hasattr(os, "register_at_fork"):  # a forked worker must not hand out the ids its parent will hand out
    os.register_at_fork(after_in_child=_id_pool.clear)


def loggable(value: str, limit: int = MAX_PARAM_LENGTH) -> str:
    """`value` when it is short and plain; otherwise escaped and cut (see the module docstring)."""
    if _SAFE_PARAM.fullmatch(value) is not None:
        return value
    out: List[str] = []
    size = 0
    for ch in value:
        if _SAFE_CHAR.fullmatch(ch) is not None:
            piece = ch
        else:
            code = ord(ch)
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        if size + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def compile_template(template: str) -> Optional[re.Pattern]:
    """A regex for a route template with `{param}` parts (None for a template without any)."""
    if TEMPLATE_PARAM_RE.search(template) is None:
        return None
    parts: List[str] = []
    last = 0
    for match in TEMPLATE_PARAM_RE.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        parts.append(f"(?P<{match.group(1)}>{_CONVERTERS[match.group(2)]})")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def json_result(body: bytes, keys: Iterable[str]) -> Dict[str, Any]:
    """The named top-level scalar values of a JSON object body (strings made loggable); {} otherwise."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: Dict[str, Any] = {}
    for key in keys:
        if key not in data:
            continue
        value = data[key]
        if value is None or isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, str):
            out[key] = loggable(value)
    return out


# --------------------------------------------------------------------------------------------- runtime


class _Route:
    """One mapped route, compiled once; also the owner of its requests' accumulators (late stages)."""

    __slots__ = ("spec", "regex", "method", "template", "field", "event", "error_event", "result", "telemetry")

    def __init__(self, spec: RouteSpec, telemetry: WebTelemetry):
        self.spec = spec
        self.regex = compile_template(spec.template)
        self.method = spec.method
        self.template = spec.template
        self.field = spec.field
        self.event = spec.event
        self.error_event = spec.error_event
        self.result = spec.result
        self.telemetry = telemetry

    def late(self, acc: Accumulator, field: str, seconds: float) -> None:
        """A stage ended after this route's event was sent: say so (once per request and field)."""
        try:
            self.telemetry.emit(
                "autoinstrument_late_stage",
                {
                    "correlation_id": acc.correlation_id,
                    "scope_event": self.event,
                    "field": field,
                    field: to_ms(seconds),
                },
            )
        except Exception as exc:
            self.telemetry.failed("late_report_failed", exc)


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
    ):
        self.spec = spec
        self.emit = emit
        self.fault = fault
        self.correlation = correlation
        #: called at the first request only (the emitter never goes back to deferring)
        self.ready: Optional[Callable[[], None]] = ready
        #: the app's correlation ContextVar, resolved at the first request (`first_request`)
        self.var: Optional[ContextVar] = None
        self.fields = tuple(fields)
        self.validate = validate
        self.generate = generate
        self.request_header = spec.request_header.lower().encode("latin-1")
        self.response_header = spec.response_header.lower().encode("latin-1")
        self.static: Dict[Tuple[str, str], _Route] = {}
        self.dynamic: Dict[str, List[_Route]] = {}
        for route_spec in spec.routes:
            route = _Route(route_spec, self)
            if route.regex is None:
                self.static[(route.method, route.template)] = route
            else:
                self.dynamic.setdefault(route.method, []).append(route)

    def first_request(self) -> None:
        """Flush the deferred start-up events and resolve the correlation ContextVar, once."""
        self.var = self.correlation()  # first: a request must bind the id even if flushing went wrong
        ready, self.ready = self.ready, None
        if ready is not None:
            ready()

    def match(self, method: str, path: str) -> Tuple[Optional[_Route], Optional[Dict[str, str]]]:
        route = self.static.get((method, path))
        if route is not None:
            return route, None
        for candidate in self.dynamic.get(method, ()):
            found = candidate.regex.fullmatch(path)  # type: ignore[union-attr]
            if found is not None:
                return candidate, found.groupdict()
        return None, None

    def failed(self, kind: str, exc: BaseException) -> None:
        """Report a fault of ours once per kind; never raises."""
        with contextlib.suppress(Exception):  # the emitter isolates its own faults; this is belt and braces
            self.fault(f"web_{kind}", f"{type(exc).__name__}: {exc}", target=self.spec.app.text)


class TelemetryMiddleware:
    """The pure ASGI middleware (one instance per built stack; all state per request lives in `_Request`)."""

    __slots__ = ("app", "telemetry")

    def __init__(self, app: ASGIApp, telemetry: WebTelemetry):
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            request = _Request(self.telemetry, scope, send)
        except Exception as exc:
            self.telemetry.failed("request_start_failed", exc)
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, request.send)
        except BaseException as exc:
            request.finish(exc)
            raise
        request.finish(None)


class _Request:
    """One HTTP request: its id, its route, its accumulator, and the `send` that adds the header."""

    __slots__ = (
        "t",
        "downstream",
        "cid",
        "header",
        "route",
        "params",
        "acc",
        "var",
        "previous_cid",
        "previous_acc",
        "start",
        "end",
        "status",
        "body",
        "done",
        "held",
        "previous_held",
    )

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
        self.route = route
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
        self.previous_acc = previous = CURRENT.get()
        if route is not None:
            # No pre-allocated field lists: a request runs few stages, so its lists are made on first use.
            self.acc = acc = Accumulator(route, cid, (), previous, inclusive=True)
            CURRENT.set(acc)
            self.held: Optional[List[Any]] = []  # the app's call of this route's event, held (merge.py)
            self.previous_held = HELD.get()
            HELD.set(self)
        else:
            self.acc = None
            self.held = None
        self.start = time.perf_counter()

    def send(self, message: Message) -> Awaitable[None]:
        """The app's `send`: a plain function returning the server's awaitable (no coroutine of our own per
        message). The request ends when its last body byte is handed to the server."""
        kind = message["type"]
        if kind == "http.response.start":
            try:
                message = self._started(message)
            except Exception as exc:
                self.t.failed("response_header_failed", exc)
        elif kind == "http.response.body":
            if self.body is not None:
                self._keep(message)
            if not message.get("more_body", False):
                self.end = time.perf_counter()
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
            lower = key.lower()
            if lower == name:
                present = True
            elif keep and lower == b"content-type":
                content_type = value
            elif keep and lower == b"content-encoding":
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
        try:
            if self.acc is not None:
                CURRENT.set(self.previous_acc)
                HELD.set(self.previous_held)
            if self.var is not None:
                self.var.set(self.previous_cid)
        except Exception as err:  # pragma: no cover - ContextVar.set does not fail in the same context
            self.t.failed("unbind_failed", err)
        if self.route is None:
            return
        try:
            name, payload, owned = self._event(end, exc)
            level = status_level(self.status, exc)
            if self.held:
                logger, level, name, payload = merged(self.held[0], payload, level, owned)
                self.t.emit(name, payload, level, logger)
            else:
                self.t.emit(name, payload, level)
        except Exception as err:
            self.t.failed("event_failed", err)

    def _event(self, end: float, exc: Optional[BaseException]) -> Tuple[str, Dict[str, Any], Tuple[str, ...]]:
        """(event name, fields, the telemetry-owned field names that win over the app's in a merge)."""
        route = self.route
        assert route is not None and self.acc is not None
        fields = self.acc.close()
        status = self.status if self.status is not None else 500
        payload: Dict[str, Any] = {
            "correlation_id": self.cid,
            route.field: to_ms(end - self.start),
            "method": route.method,
            "route": route.template,
            "status_code": status,
        }
        if self.params:
            for key, value in self.params.items():
                payload[key if key not in payload else f"path_{key}"] = loggable(value)
        for key, (seconds, _calls) in fields.items():
            payload[key] = to_ms(seconds)
        if self.body is not None and route.result:
            payload.update(json_result(bytes(self.body), route.result))
        if exc is not None:
            payload["error_type"] = type(exc).__name__
        error = exc is not None or not isinstance(status, int) or status >= 400
        owned = ("correlation_id", route.field, *fields)
        return (route.error_event if error else route.event), payload, owned


# --------------------------------------------------------------------------------------------- attaching


class UnsupportedApp(TypeError):
    """The object named by `web.app` is not an app we can attach to (not Starlette-like)."""


class AppAttachment:
    """Finds the app named by `web.app` in its module and attaches / detaches the middleware.

    `on_import(module)` is the post-import hook body; `detach()` is the uninstall. See the module docstring
    for why the app instance's `build_middleware_stack` is the attachment point.
    """

    def __init__(self, ref: Ref, telemetry: WebTelemetry):
        self.ref = ref
        self.telemetry = telemetry
        head, _, rest = ref.attr.partition(".")
        self.head = head
        self.rest = rest
        # (weak reference to the app, the function we set, what the instance had before or _ABSENT)
        self.apps: List[Tuple[Any, Any, Any]] = []
        self.getattr_patch: Optional[Tuple[Any, Any, Any]] = None  # (module, original, ours)
        self.problem: Optional[str] = None
        self.late = False
        self.seen = False

    # ------------------------------------------------------------------------ finding

    def _walk(self, obj: Any) -> Any:
        for part in self.rest.split(".") if self.rest else ():
            obj = getattr(obj, part)
        return obj

    def on_import(self, module: Any, late: bool = False) -> None:
        """Instrument the app if the module holds it; wrap a PEP 562 `__getattr__` for a lazily built one."""
        self.seen = True
        self.late = late
        namespace = vars(module)
        if self.head in namespace:
            self.instrument(self._walk(namespace[self.head]))
        getter = namespace.get("__getattr__")
        if callable(getter) and self.getattr_patch is None:
            ours = self._lazy(getter)
            module.__getattr__ = ours
            self.getattr_patch = (module, getter, ours)
        elif self.head not in namespace:
            raise AttributeError(f"module {module.__name__!r} has no attribute {self.head!r}")
        self.problem = None

    def _lazy(self, original: Callable[[str], Any]) -> Callable[[str], Any]:
        head = self.head

        def __getattr__(name: str) -> Any:
            value = original(name)
            if name == head:
                try:
                    self.instrument(self._walk(value))
                except Exception as exc:
                    self.report(exc)
            return value

        functools.update_wrapper(__getattr__, original)
        setattr(__getattr__, MARK, True)
        return __getattr__

    def report(self, exc: BaseException) -> None:
        self.problem = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            self.telemetry.fault("web_app_unusable", self.problem, target=self.ref.text, line=self.ref.line)

    # ------------------------------------------------------------------------ applying

    def instrument(self, app: Any) -> bool:
        """Attach to one app instance (False if it already has our middleware)."""
        for ref, _ours, _previous in self.apps:
            if ref() is app:
                return False
        build = getattr(app, "build_middleware_stack", None)
        if not callable(build) or not hasattr(app, "middleware_stack"):
            raise UnsupportedApp(
                f"{self.ref.text} is a {type(app).__name__}, not a Starlette/FastAPI application "
                "(no build_middleware_stack); it runs without the web telemetry"
            )
        previous = vars(app).get("build_middleware_stack", _ABSENT)
        telemetry = self.telemetry

        def build_middleware_stack() -> ASGIApp:
            return TelemetryMiddleware(build(), telemetry)

        setattr(build_middleware_stack, MARK, True)
        app.build_middleware_stack = build_middleware_stack
        app.middleware_stack = None  # rebuilt, with us outermost, on the next call
        self.apps.append((weakref.ref(app), build_middleware_stack, previous))
        return True

    def detach(self) -> int:
        """Remove the middleware from every app and restore the module's `__getattr__`; returns how many."""
        restored = 0
        for ref, ours, previous in self.apps:
            app = ref()
            if app is None:
                continue
            try:
                if vars(app).get("build_middleware_stack") is not ours:
                    raise RuntimeError("build_middleware_stack was replaced after we attached")
                if previous is _ABSENT:
                    del app.build_middleware_stack
                else:
                    app.build_middleware_stack = previous
                app.middleware_stack = None
                restored += 1
            except Exception as exc:
                self.telemetry.fault("not_restored", f"{type(exc).__name__}: {exc}", target=self.ref.text)
        self.apps = []
        if self.getattr_patch is not None:
            module, original, ours = self.getattr_patch
            self.getattr_patch = None
            if vars(module).get("__getattr__") is ours:
                module.__getattr__ = original
                restored += 1
            else:
                self.telemetry.fault(
                    "not_restored", "the module's __getattr__ was replaced after we wrapped it", target=self.ref.text
                )
        return restored

    def attached(self) -> int:
        """How many live apps carry the middleware now."""
        return sum(1 for ref, _ours, _previous in self.apps if ref() is not None)

    def describe(self) -> Tuple[str, str]:
        """("wrapped" | "missing" | "pending", label) for `installed_targets()`."""
        text = self.ref.text
        if self.problem:
            return "missing", f"{text} ({self.problem})"
        count = self.attached()
        if count:
            return "wrapped", f"{text} (asgi middleware)"
        if self.getattr_patch is not None:
            return "wrapped", f"{text} (asgi middleware, attached when the app is built)"
        return "pending", text
