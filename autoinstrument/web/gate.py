"""One event per request: the app's own event for a mapped route is held and merged into the telemetry's.

Why: an app that already logs `web_random_image` for a request, plus the telemetry's `web_random_image` with
the timing, would write the same event name twice per request. So while a mapped route is served, the
manifest's log function is called through a *gate*: a call whose event name is the route's `event` or
`error_event` is held (not written), and when the request ends ONE event is written with the app's name, the
app's logger and fields, plus the telemetry's fields (correlation id, the route's `_ms` field, the stage
fields measured inside, the `result` keys, method/route/status when the app did not set them). Its level is
the higher of the app's and the status-derived one (`status_level`). Only the FIRST matching call per request
is held; any other call passes straight through. A request in which the app logged no such event gets the
telemetry's own event, as before.

Cost outside a mapped request: the gate reads one ContextVar (`scope.CURRENT`, which the middleware sets to
the request itself; a scope inside a request knows its `request`) and, inside a scope that is not in a
request, one attribute; then it calls the original function with the same arguments. The gate is ONE plain
closure (`gate`), set with wrapt's `apply_patch` like every target and restored by identity at uninstall, with
`__wrapped__` and the original's name and docstring (`functools.wraps`). It is not a wrapt FunctionWrapper on
purpose: the gate is neither a stage nor a scope, and wrapt's C `__call__` around a module function (a `__self__`
lookup per call) plus a wrapper frame cost ~0.5-0.9 us per app log call, several per request, measured side by
side in `benchmarks/bench_log_gate.py` (docs_v2/benchmarks.md, issue 20).
A held call returns None, as a `log_json(logger, level, event, **fields)` function does.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Container, Dict, Optional, Tuple

from autoinstrument.runtime.scope import CURRENT


def status_level(status: Any, exc: Optional[BaseException]) -> int:
    """The level a request's event gets from its outcome: < 400 INFO, 4xx WARNING, 5xx or an exception ERROR.

    One expression over module constants (it runs once per request): no attribute load, no second branch."""
    if exc is None and isinstance(status, int):
        return _INFO if status < 400 else _WARNING if status < 500 else _ERROR
    return _ERROR


_INFO, _WARNING, _ERROR = logging.INFO, logging.WARNING, logging.ERROR


def gate(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` behind the gate: inside a mapped request, the first call naming the route's event is held."""
    current = CURRENT.get

    def log_gate(*args: Any, **kwargs: Any) -> Any:
        acc = current()
        if acc is None:
            return fn(*args, **kwargs)
        request = acc.request
        if request is None:
            return fn(*args, **kwargs)
        slot = request.held  # None once the request has ended
        if slot is None:
            return fn(*args, **kwargs)
        try:
            event = args[2]
        except IndexError:  # fewer than 3 positional arguments: not an event call (free when not raised)
            return fn(*args, **kwargs)
        if event not in request.owner.events:  # (event, error_event): one C-level compare of both
            return fn(*args, **kwargs)
        entry = (args[0], args[1], event, kwargs)
        slot.append(entry)  # atomic: of two threads racing, only the one whose entry is first is held
        if slot[0] is not entry:
            return fn(*args, **kwargs)
        return None

    return functools.wraps(fn)(log_gate)


def merged(
    held: Tuple[Any, Any, str, Dict[str, Any]], payload: Dict[str, Any], level: int, owned: Container[str]
) -> Tuple[Any, int, str, Dict[str, Any]]:
    """(logger, level, event, fields) of the one event for a request whose app event was held.

    The app's fields are kept; the telemetry's fields are added where the app did not set them, and the
    telemetry-owned ones (`owned`: correlation id, the route's and the stages' `_ms` fields) always win.
    `owned` is any container: the middleware passes the request itself (`_Request.__contains__`), so the set
    of owned fields is never built; it is asked only for a key both sides set (the fast path: none).
    """
    logger, app_level, event, fields = held
    out = {**fields, **payload}  # the app's keys first, then the telemetry's new ones; no per-key loop
    if not fields.keys().isdisjoint(payload):  # usually not: a key in both is the app's unless ours
        for key in fields.keys() & payload.keys():
            if key not in owned:
                out[key] = fields[key]
    if isinstance(app_level, int) and app_level > level:
        level = app_level
    return logger, level, event, out
