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
request, one attribute; then it calls the original function with the same arguments (the gate is a wrapt
FunctionWrapper, `wrappers.gate_wrapper`, whose wrapper function is `hold`).
A held call returns None, as a `log_json(logger, level, event, **fields)` function does.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Tuple

from autoinstrument.runtime.scope import CURRENT


def status_level(status: Any, exc: Optional[BaseException]) -> int:
    """The level a request's event gets from its outcome: < 400 INFO, 4xx WARNING, 5xx or an exception ERROR."""
    if exc is not None or not isinstance(status, int) or status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


def hold(wrapped: Callable[..., Any], instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """The gate itself, a wrapt wrapper around the manifest's log function (`runtime.wrappers.gate_wrapper`,
    called only inside a scope): inside a mapped request, hold the first call naming the route's event."""
    acc = CURRENT.get()
    request = acc.request if acc is not None else None
    if request is None:
        return wrapped(*args, **kwargs)
    slot = request.held  # None once the request has ended
    if slot is None or len(args) < 3:
        return wrapped(*args, **kwargs)
    event = args[2]
    route = request.owner
    if event != route.event and event != route.error_event:
        return wrapped(*args, **kwargs)
    entry = (args[0], args[1], event, kwargs)
    slot.append(entry)  # atomic: of two threads racing, only the one whose entry is first is held
    if slot[0] is not entry:
        return wrapped(*args, **kwargs)
    return None


def merged(
    held: Tuple[Any, Any, str, Dict[str, Any]], payload: Dict[str, Any], level: int, owned: Tuple[str, ...]
) -> Tuple[Any, int, str, Dict[str, Any]]:
    """(logger, level, event, fields) of the one event for a request whose app event was held.

    The app's fields are kept; the telemetry's fields are added where the app did not set them, and the
    telemetry-owned ones (`owned`: correlation id, the route's and the stages' `_ms` fields) always win.
    """
    logger, app_level, event, fields = held
    out = dict(fields)
    for key, value in payload.items():
        if key in owned or key not in out:
            out[key] = value
    if isinstance(app_level, int) and app_level > level:
        level = app_level
    return logger, level, event, out
