"""Attaching the middleware to the app the manifest's `web.app` names, without any code in the app.

How, and why this way: the app object gets an INSTANCE attribute `build_middleware_stack` that calls the
class's method and wraps the stack it returns in `TelemetryMiddleware`; `middleware_stack` is reset so
Starlette builds it again on the next request. Chosen over replacing the module attribute with a proxy because:
- the app keeps its identity, so every reference gets the middleware: the one uvicorn imports, an import of
  the app written before OR after `install()`, `TestClient(app)`; a proxy set on the module misses references
  taken before install, and `isinstance`/`is` checks on a proxy lie;
- the stack Starlette builds starts with `ServerErrorMiddleware`, so wrapping the built stack is by
  construction outside it, without touching `user_middleware` or `add_middleware`;
- `uninstall()` deletes the instance attribute (the class method shows through again, the exact original)
  and resets `middleware_stack`, so the next request runs without us.
A module that builds its app lazily (PEP 562 module `__getattr__`) gets its `__getattr__` wrapped: the app is
instrumented the moment it is built. This is the one place that knows Starlette's `build_middleware_stack`;
another ASGI app is reported once as a fault and runs untouched: such an app wraps itself by hand,
`app = autoinstrument.TelemetryMiddleware(app)` (see `middleware.py`).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import Any, Callable, List, Optional, Tuple

from autoinstrument.manifest import Ref
from autoinstrument.web.middleware import ASGIApp, TelemetryMiddleware, WebTelemetry

MARK = "__autoinstrument_web__"
_ABSENT = object()


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
        self.by_hand = False  # the app wraps itself in TelemetryMiddleware: nothing to attach

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
        plain = isinstance(exc, (AttributeError, UnsupportedApp))  # our own words already
        self.problem = str(exc) if plain else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            self.telemetry.fault("web_app_unusable", self.problem, target=self.ref.text, line=self.ref.line)

    # ------------------------------------------------------------------------ applying

    def instrument(self, app: Any) -> bool:
        """Attach to one app instance (False if it already has our middleware)."""
        for ref, _ours, _previous in self.apps:
            if ref() is app:
                return False
        if isinstance(app, TelemetryMiddleware):
            self.by_hand = True
            return False
        build = getattr(app, "build_middleware_stack", None)
        if not callable(build) or not hasattr(app, "middleware_stack"):
            raise UnsupportedApp(
                f"{self.ref.text} is a {type(app).__name__}, not a Starlette/FastAPI application "
                "(no build_middleware_stack); it runs without the web telemetry unless it wraps itself in "
                "autoinstrument.TelemetryMiddleware"
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
        """("wrapped" | "missing" | "pending", what was wrapped or why it is missing) for `installed_targets()`."""
        if self.problem:
            return "missing", self.problem
        if self.by_hand:
            return "wrapped", "TelemetryMiddleware, by the app"
        count = self.attached()
        if count:
            return "wrapped", "asgi middleware"
        if self.getattr_patch is not None:
            return "wrapped", "asgi middleware, attached when the app is built"
        return "pending", ""


def attach(state: Any) -> AppAttachment:
    """The web part of an install (`runtime.install.WebPart.attach`): the middleware's telemetry, fed by the
    install's emitter and scopes, and the attachment that puts it in front of the manifest's app."""
    emitter = state.emitter
    telemetry = WebTelemetry(
        state.manifest.web,
        emitter.emit,
        emitter.fault,
        state.correlation_var,
        emitter.ready,
        state.stage_fields,
        redactor=emitter.redactor,
        emit_now=emitter.emit_now,
        direct=emitter.direct,
        direct_failed=emitter.direct_failed,
    )
    telemetry.export = getattr(state, "export", None)
    return AppAttachment(state.manifest.web.app, telemetry)
