"""Route templates: compiled once, matched on the exact method and path, and the JSON `result` keys.

Templates come from the manifest (`{param}` -> `[^/]+`, Starlette's converters too); a request is matched on
the exact method and the path without `root_path`, and events are keyed by the template, never the raw path.
A HEAD is not a GET, and `/x/` is not `/x` (Starlette redirects it): those match nothing.
"""

from __future__ import annotations

import json
import re
from re import compile as regex
from typing import Any, Dict, Iterable, List, Optional, Tuple

from autoinstrument.manifest import TEMPLATE_PARAM_RE, RouteSpec
from autoinstrument.web.ids import loggable

_CONVERTERS = {
    None: "[^/]+",
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
}


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
    return regex("".join(parts))


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



class Route:
    """One mapped route, compiled once; also the owner of its requests' accumulators (late stages)."""

    __slots__ = (
        "spec", "regex", "method", "template", "field", "event", "error_event", "result", "telemetry", "known",
        "events",
    )

    def __init__(self, spec: RouteSpec, telemetry: Any):
        self.spec = spec
        self.regex = compile_template(spec.template)
        self.method = spec.method
        self.template = spec.template
        self.field = spec.field
        self.event = spec.event
        self.error_event = spec.error_event
        #: both names the log gate holds, as one tuple (`event in events`: one C-level compare per request)
        self.events = (spec.event, spec.error_event)
        self.result = spec.result
        self.telemetry = telemetry
        #: the stage fields this route's requests produced so far (pre-allocated in the next request)
        self.known: Tuple[str, ...] = ()

    def late(self, acc: Any, field: str, seconds: float) -> None:
        """A stage ended after this route's event was sent: say so (once per request and field)."""
        from autoinstrument.runtime.scope import to_ms

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


class RouteTable:
    """Every mapped route: static templates in a dict, templated ones tried in manifest order per method."""

    def __init__(self, specs: Iterable[RouteSpec], telemetry: Any):
        self.static: Dict[Tuple[str, str], Route] = {}
        self.dynamic: Dict[str, List[Route]] = {}
        for spec in specs:
            route = Route(spec, telemetry)
            if route.regex is None:
                self.static[(route.method, route.template)] = route
            else:
                self.dynamic.setdefault(route.method, []).append(route)

    def match(self, method: str, path: str) -> Tuple[Optional[Route], Optional[Dict[str, str]]]:
        route = self.static.get((method, path))
        if route is not None:
            return route, None
        for candidate in self.dynamic.get(method, ()):
            found = candidate.regex.fullmatch(path)  # type: ignore[union-attr]
            if found is not None:
                return candidate, found.groupdict()
        return None, None
