"""Validation: parsed YAML (`LineMapping`s) into a `Manifest`, collecting EVERY problem with its line first.

Validation collects every problem, then raises ONE `ManifestError` listing them all (`autoinstrument check` prints
them; the runtime reports them as one fault).
"""

from __future__ import annotations

import keyword
import os
from re import compile as regex
from typing import Any, Dict, List, Optional, Tuple

from autoinstrument.manifest.model import (
    PERCENTILES,
    Budget,
    ExportersSpec,
    LineMapping,
    LogSpec,
    Manifest,
    ManifestError,
    OpenTelemetrySpec,
    Problem,
    PrometheusSpec,
    Ref,
    RouteSpec,
    ScopeSpec,
    StageSpec,
    WebSpec,
)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET_RE = regex(rf"^({_IDENT}(?:\.{_IDENT})*):({_IDENT}(?:\.{_IDENT})*)$")
_FIELD_RE = regex(r"^[a-z][a-z0-9_]*_ms$")
_EVENT_RE = regex(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_RE = regex(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_ROUTE_RE = regex(r"^(\S+)\s+(\S+)$")
#: A path parameter in a route template: `{name}` or `{name:converter}` (Starlette's converters).
TEMPLATE_PARAM_RE = regex(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|path|int|float|uuid))?\}")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")



class _Checker:
    """Walks the parsed YAML, collecting Problems instead of stopping at the first."""

    def __init__(self, path: str):
        self.path = path
        self.problems: List[Problem] = []

    def fail(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, key, message))

    @staticmethod
    def line_of(mapping: Any, key: Any = None) -> int:
        if isinstance(mapping, LineMapping):
            if key is not None and key in mapping.key_lines:
                return mapping.key_lines[key]
            return mapping.line
        return 0

    def mapping(self, value: Any, line: int, where: str) -> Optional[LineMapping]:
        if value is None:
            return LineMapping()
        if not isinstance(value, dict):
            self.fail(line, where, f"must be a mapping, got {type(value).__name__}")
            return None
        return value  # type: ignore[return-value]

    def known_keys(self, mapping: LineMapping, allowed: Tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.fail(
                    self.line_of(mapping, key),
                    f"{where}.{key}" if where else str(key),
                    f"unknown key (allowed: {', '.join(allowed)})",
                )

    def string(self, mapping: LineMapping, key: str, where: str, required: bool = False) -> Optional[str]:
        if key not in mapping:
            if required:
                self.fail(self.line_of(mapping), f"{where}.{key}", "required key is missing")
            return None
        value = mapping[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(self.line_of(mapping, key), f"{where}.{key}", "must be a non-empty string")
            return None
        return value.strip()

    def ref(self, text: Any, line: int, key: str, what: str = "target") -> Optional[Ref]:
        if not isinstance(text, str):
            self.fail(line, key, f"{what} must be a string 'package.module:Class.method'")
            return None
        match = _TARGET_RE.match(text.strip())
        if not match:
            self.fail(
                line,
                key,
                f"malformed {what} {text!r}: expected 'package.module:Class.method' "
                "or 'package.module:function'",
            )
            return None
        module, attr = match.group(1), match.group(2)
        if module == "__main__" or module.endswith(".__main__"):
            self.fail(line, key, f"{what} in {module!r} cannot be hooked by name (it runs as __main__)")
            return None
        if any(keyword.iskeyword(part) for part in module.split(".") + attr.split(".")):
            self.fail(line, key, f"malformed {what} {text!r}: a part is a Python keyword")
            return None
        return Ref(module, attr, line)

    def field_name(self, value: Any, line: int, key: str) -> Optional[str]:
        if not isinstance(value, str) or not _FIELD_RE.match(value):
            self.fail(line, key, f"field {value!r} must be lower_snake_case and end with '_ms'")
            return None
        return value

    def event_name(self, value: Any, line: int, key: str) -> Optional[str]:
        if not isinstance(value, str) or not _EVENT_RE.match(value):
            self.fail(line, key, f"event name {value!r} must be an identifier")
            return None
        return value


def validate(data: Any, path: str) -> Manifest:
    """Turn parsed YAML into a Manifest, or raise ManifestError listing every problem."""
    c = _Checker(path)
    if not isinstance(data, dict):
        raise ManifestError([Problem(path, 1, "(top)", "the manifest must be a YAML mapping")])
    c.known_keys(
        data, ("version", "log", "scopes", "stages", "web", "budgets", "parallel", "exporters"), ""
    )

    version = data.get("version", 1)
    if version != 1:
        c.fail(c.line_of(data, "version"), "version", f"unsupported version {version!r} (only 1)")

    log = _validate_log(c, data)
    scopes = _validate_scopes(c, data)
    stages = _validate_stages(c, data)
    web = _validate_web(c, data)

    # One target is either a scope or a stage, once.
    seen: Dict[str, int] = {}
    for ref in [s.target for s in scopes] + [s.target for s in stages]:
        if ref.text in seen:
            c.fail(ref.line, ref.text, f"target is listed twice (also on line {seen[ref.text]})")
        seen.setdefault(ref.text, ref.line)

    # A scope total must not collide with a stage or route field.
    stage_fields = {s.field for s in stages}
    for scope in scopes:
        if scope.total in stage_fields:
            c.fail(scope.target.line, f"{scope.target.text}.total", f"{scope.total!r} is also a stage field")

    manifest = Manifest(path, 1, log, tuple(scopes), tuple(stages), web, ())
    budgets = _validate_budgets(c, data, set(manifest.fields()))
    parallel = _validate_parallel(c, data, stage_fields)
    exporters = _validate_exporters(c, data, manifest)
    if c.problems:
        raise ManifestError(c.problems)
    return Manifest(path, 1, log, tuple(scopes), tuple(stages), web, tuple(budgets), parallel, exporters)


def _validate_log(c: _Checker, data: LineMapping) -> LogSpec:
    log = c.mapping(data.get("log"), c.line_of(data, "log"), "log")
    if log is None:
        return LogSpec()
    c.known_keys(log, ("function", "logger", "correlation", "redact", "event_key"), "log")
    function = correlation = redact = None
    if "function" in log:
        function = c.ref(log["function"], c.line_of(log, "function"), "log.function", "log function")
    if "correlation" in log:
        correlation = c.ref(
            log["correlation"], c.line_of(log, "correlation"), "log.correlation", "ContextVar"
        )
    if "redact" in log:
        redact = c.ref(log["redact"], c.line_of(log, "redact"), "log.redact", "redaction function")
    logger = c.string(log, "logger", "log") or "autoinstrument"
    event_key = c.string(log, "event_key", "log") or "message"
    if not _EVENT_RE.match(event_key):
        c.fail(c.line_of(log, "event_key"), "log.event_key", f"{event_key!r} must be an identifier (a JSON key)")
    return LogSpec(function, logger, correlation, redact, event_key)


def _validate_scopes(c: _Checker, data: LineMapping) -> List[ScopeSpec]:
    scopes = c.mapping(data.get("scopes"), c.line_of(data, "scopes"), "scopes")
    out: List[ScopeSpec] = []
    for text, body in (scopes or {}).items():
        line = c.line_of(scopes, text)
        ref = c.ref(text, line, f"scopes.{text}")
        where = f"scopes.{text}"
        spec = c.mapping(body, line, where)
        if spec is None:
            continue
        c.known_keys(spec, ("event", "error_event", "total", "result", "result_correlation"), where)
        event = c.event_name(spec.get("event"), c.line_of(spec, "event"), f"{where}.event")
        error_event = None
        if "error_event" in spec:
            error_event = c.event_name(
                spec["error_event"], c.line_of(spec, "error_event"), f"{where}.error_event"
            )
        total = c.field_name(spec.get("total"), c.line_of(spec, "total"), f"{where}.total")
        result = spec.get("result", [])
        if not isinstance(result, list) or not all(isinstance(r, str) and r.isidentifier() for r in result):
            c.fail(c.line_of(spec, "result"), f"{where}.result", "must be a list of attribute names")
            result = []
        result_correlation = None
        if "result_correlation" in spec:
            rc = spec["result_correlation"]
            if isinstance(rc, str) and rc.isidentifier():
                result_correlation = rc
            else:
                c.fail(
                    c.line_of(spec, "result_correlation"),
                    f"{where}.result_correlation",
                    "must be an attribute name",
                )
        if ref and event and total:
            out.append(ScopeSpec(ref, event, total, error_event, tuple(result), result_correlation))
    return out


def _validate_stages(c: _Checker, data: LineMapping) -> List[StageSpec]:
    stages = c.mapping(data.get("stages"), c.line_of(data, "stages"), "stages")
    out: List[StageSpec] = []
    for text, body in (stages or {}).items():
        line = c.line_of(stages, text)
        where = f"stages.{text}"
        ref = c.ref(text, line, where)
        shared = False
        if isinstance(body, dict):
            c.known_keys(body, ("field", "shared"), where)
            name = c.field_name(body.get("field"), c.line_of(body, "field"), f"{where}.field")
            shared = body.get("shared", False)
            if not isinstance(shared, bool):
                c.fail(c.line_of(body, "shared"), f"{where}.shared", "must be true or false")
                shared = False
        else:
            name = c.field_name(body, line, where)
        if ref and name:
            out.append(StageSpec(ref, name, shared))

    # The same field from two targets is a mistake unless every one of them says `shared: true`.
    by_field: Dict[str, List[StageSpec]] = {}
    for stage in out:
        by_field.setdefault(stage.field, []).append(stage)
    for name, group in by_field.items():
        if len(group) > 1 and not all(s.shared for s in group):
            others = ", ".join(f"{s.target.text} (line {s.target.line})" for s in group)
            for s in group:
                if not s.shared:
                    c.fail(
                        s.target.line,
                        f"stages.{s.target.text}",
                        f"field {name!r} is mapped from several targets: {others}; "
                        "if deliberate, write each as "
                        f"{{field: {name}, shared: true}}",
                    )
    return out


def _validate_web(c: _Checker, data: LineMapping) -> Optional[WebSpec]:
    if "web" not in data:
        return None
    web = c.mapping(data.get("web"), c.line_of(data, "web"), "web")
    if web is None:
        return None
    c.known_keys(web, ("app", "request_header", "response_header", "routes"), "web")
    app = None
    if "app" in web:
        app = c.ref(web["app"], c.line_of(web, "app"), "web.app", "ASGI app")
    else:
        c.fail(c.line_of(web), "web.app", "required key is missing")
    headers = {}
    for key, default in (("request_header", "X-Request-ID"), ("response_header", "X-Correlation-ID")):
        value = c.string(web, key, "web") or default
        if not _HEADER_RE.match(value):
            c.fail(c.line_of(web, key), f"web.{key}", f"{value!r} is not a valid HTTP header name")
        headers[key] = value
    routes: List[RouteSpec] = []
    route_map = c.mapping(web.get("routes"), c.line_of(web, "routes"), "web.routes")
    seen_fields: Dict[str, int] = {}
    for text, body in (route_map or {}).items():
        line = c.line_of(route_map, text)
        where = f"web.routes.{text}"
        match = _ROUTE_RE.match(text.strip()) if isinstance(text, str) else None
        if not match or match.group(1).upper() not in _METHODS or match.group(1) != match.group(1).upper():
            c.fail(
                line, where, f"a route must be 'METHOD /template' with METHOD one of {', '.join(_METHODS)}"
            )
            continue
        method, template = match.group(1), match.group(2)
        if not template.startswith("/"):
            c.fail(line, where, "the route template must start with '/'")
            continue
        problem = _template_problem(template)
        if problem:
            c.fail(line, where, problem)
            continue
        event = error_event = None
        result: List[str] = []
        if isinstance(body, dict):
            c.known_keys(body, ("field", "event", "error_event", "result"), where)
            name = c.field_name(body.get("field"), c.line_of(body, "field"), f"{where}.field")
            if "event" in body:
                event = c.event_name(body["event"], c.line_of(body, "event"), f"{where}.event")
            if "error_event" in body:
                error_event = c.event_name(
                    body["error_event"], c.line_of(body, "error_event"), f"{where}.error_event"
                )
            result = body.get("result", [])
            if not isinstance(result, list) or not all(isinstance(r, str) and r.isidentifier() for r in result):
                c.fail(c.line_of(body, "result"), f"{where}.result", "must be a list of JSON key names")
                result = []
        else:
            name = c.field_name(body, line, where)
        if not name:
            continue
        if name in seen_fields:
            c.fail(line, where, f"field {name!r} is already used by the route on line {seen_fields[name]}")
        seen_fields.setdefault(name, line)
        event = event or name[: -len("_ms")]
        routes.append(
            RouteSpec(method, template, name, event, error_event or f"{event}_error", line, tuple(result))
        )
    if app is None:
        return None
    return WebSpec(app, headers["request_header"], headers["response_header"], tuple(routes))


def _template_problem(template: str) -> Optional[str]:
    """Why a route template cannot be matched (None when it can): stray braces, a repeated parameter."""
    names = [m.group(1) for m in TEMPLATE_PARAM_RE.finditer(template)]
    rest = TEMPLATE_PARAM_RE.sub("", template)
    if "{" in rest or "}" in rest:
        return "a path parameter must be written {name} or {name:str|path|int|float|uuid}"
    if len(set(names)) != len(names):
        return "a path parameter name is used twice"
    return None


def budget_limits(body: Any) -> Tuple[Dict[str, float], List[Tuple[str, str]]]:
    """One field's budget as written (a bare number = p95, or a mapping of PERCENTILES) -> (limits in ms,
    problems as (key, message)). The one validation of budgets and percentile names: the manifest, `check`
    and `report` share it."""
    problems: List[Tuple[str, str]] = []
    if isinstance(body, dict):
        for key in body:
            if key not in PERCENTILES:
                problems.append((str(key), f"unknown key (allowed: {', '.join(PERCENTILES)})"))
        raw = {k: body[k] for k in PERCENTILES if k in body}
    else:
        raw = {"p95": body}
    limits: Dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append((key, "a budget must be a positive number of milliseconds"))
        else:
            limits[key] = float(value)
    return limits, problems


def _validate_budgets(c: _Checker, data: LineMapping, fields: set) -> List[Budget]:
    budgets = c.mapping(data.get("budgets"), c.line_of(data, "budgets"), "budgets")
    out: List[Budget] = []
    for name, body in (budgets or {}).items():
        line = c.line_of(budgets, name)
        where = f"budgets.{name}"
        if not c.field_name(name, line, where):
            continue
        if name not in fields:
            c.fail(line, where, "no scope, stage or route produces this field")
        limits, problems = budget_limits(body)
        for key, message in problems:
            c.fail(c.line_of(body, key) if isinstance(body, dict) else line, f"{where}.{key}", message)
        if limits and not problems:
            out.append(Budget(name, limits, line))
    return out


def _validate_parallel(c: _Checker, data: LineMapping, stage_fields: set) -> Dict[str, Tuple[str, ...]]:
    """`parallel: {outer_ms: [inner_ms, ...]}`: stage fields called inside the outer stage, at the same time."""
    section = c.mapping(data.get("parallel"), c.line_of(data, "parallel"), "parallel")
    out: Dict[str, Tuple[str, ...]] = {}
    owner: Dict[str, str] = {}
    for outer, inner in (section or {}).items():
        line = c.line_of(section, outer)
        where = f"parallel.{outer}"
        if not c.field_name(outer, line, where):
            continue
        if outer not in stage_fields:
            c.fail(line, where, "no stage produces this field")
        if not isinstance(inner, list) or not inner:
            c.fail(line, where, "must be a list of the stage fields that run inside it at the same time")
            continue
        for name in inner:
            if not c.field_name(name, line, where):
                continue
            if name not in stage_fields or name == outer:
                c.fail(line, where, f"{name!r} must be another stage's field")
            elif name in owner:
                c.fail(line, where, f"{name!r} is already listed under {owner[name]}")
            else:
                owner[name] = outer
        out[outer] = tuple(inner)
    return out


#: Label names that are an id (one series per request): refused like a path parameter.
_ID_LABELS = ("correlation_id", "request_id", "trace_id", "span_id")


def _enabled(c: _Checker, section: LineMapping, where: str) -> bool:
    value = section.get("enabled", False)
    if not isinstance(value, bool):
        c.fail(c.line_of(section, "enabled"), f"{where}.enabled", "must be true or false")
        return False
    return value


def _validate_exporters(c: _Checker, data: LineMapping, manifest: Manifest) -> ExportersSpec:
    """`exporters: {opentelemetry: {enabled}, prometheus: {enabled, textfile_dir, buckets, labels}}`, off by
    default. A label that would give one series per request (a path parameter, an id) is refused here, with
    its line: Prometheus keeps every label combination as a series forever."""
    if "exporters" not in data:
        return ExportersSpec()
    section = c.mapping(data.get("exporters"), c.line_of(data, "exporters"), "exporters")
    if section is None:
        return ExportersSpec()
    c.known_keys(section, ("opentelemetry", "prometheus"), "exporters")
    otel = OpenTelemetrySpec()
    body = c.mapping(section.get("opentelemetry"), c.line_of(section, "opentelemetry"), "exporters.opentelemetry")
    if body is not None and "opentelemetry" in section:
        c.known_keys(body, ("enabled",), "exporters.opentelemetry")
        otel = OpenTelemetrySpec(_enabled(c, body, "exporters.opentelemetry"), c.line_of(section, "opentelemetry"))
    prom = PrometheusSpec()
    where = "exporters.prometheus"
    body = c.mapping(section.get("prometheus"), c.line_of(section, "prometheus"), where)
    if body is not None and "prometheus" in section:
        c.known_keys(body, ("enabled", "textfile_dir", "buckets", "labels"), where)
        enabled = _enabled(c, body, where)
        textfile = c.string(body, "textfile_dir", where)
        if textfile is not None:
            textfile = os.path.expanduser(textfile)
            if not os.path.isabs(textfile):  # relative to the manifest's folder, not to wherever cron starts
                textfile = os.path.join(os.path.dirname(os.path.abspath(c.path)), textfile)
            textfile = os.path.normpath(textfile)
        buckets: List[float] = []
        raw = body.get("buckets", [])
        line = c.line_of(body, "buckets")
        if not isinstance(raw, list) or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in raw
        ):
            c.fail(line, f"{where}.buckets", "must be a list of positive numbers of milliseconds")
        elif any(b >= a for a, b in zip(raw[1:], raw)):
            c.fail(line, f"{where}.buckets", "must be in increasing order")
        else:
            buckets = [float(b) for b in raw]
        labels = _labels(c, body, where, manifest)
        prom = PrometheusSpec(
            enabled, c.line_of(section, "prometheus"), textfile, c.line_of(body, "textfile_dir"), tuple(buckets),
            tuple(labels),
        )
    return ExportersSpec(otel, prom, c.line_of(data, "exporters"))


def _labels(c: _Checker, body: LineMapping, where: str, manifest: Manifest) -> List[str]:
    """Extra labels: `result` keys of a scope or route. A path parameter or an id is refused (cardinality)."""
    raw = body.get("labels", [])
    line = c.line_of(body, "labels")
    if not isinstance(raw, list) or not all(isinstance(r, str) and r.isidentifier() for r in raw):
        c.fail(line, f"{where}.labels", "must be a list of result key names")
        return []
    params: Dict[str, str] = {}
    keys = set()
    for scope in manifest.scopes:
        keys.update(scope.result)
    for route in manifest.web.routes if manifest.web else ():
        keys.update(route.result)
        for match in TEMPLATE_PARAM_RE.finditer(route.template):
            params.setdefault(match.group(1), f"{route.method} {route.template}")
    out: List[str] = []
    for name in raw:
        if name in params:
            c.fail(
                line, f"{where}.labels",
                f"{name!r} is a path parameter of {params[name]}: one series per distinct path would explode "
                "the metric's cardinality (the route template is already a label)",
            )
        elif name in _ID_LABELS or name.endswith("_id"):
            c.fail(line, f"{where}.labels", f"{name!r} is an id: one series per request would explode cardinality")
        elif name in ("event", "route", "status_class", "le"):
            c.fail(line, f"{where}.labels", f"{name!r} is already a label")
        elif name not in keys:
            c.fail(line, f"{where}.labels", f"{name!r} is not a `result` key of any scope or route")
        else:
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------- resolving
