"""The manifest: parse `telemetry.yaml`, remember where every key was written, validate into typed objects.

Why a custom loader: `yaml.safe_load` silently keeps the LAST of two equal keys (so a pasted stage line would
replace another without a word) and forgets line numbers, and an operator needs "telemetry.yaml:14: stages:
..." to fix a mistake. `_LineLoader` is a `SafeLoader` that builds `_Mapping` dicts carrying the line of each
key and refuses duplicate keys. Validation collects every problem, then raises ONE `ManifestError` listing
them all (`autoinstrument check` prints them; the runtime reports them as one fault).

yaml is imported lazily: importing this module must stay cheap for `import autoinstrument`.
"""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET_RE = re.compile(rf"^({_IDENT}(?:\.{_IDENT})*):({_IDENT}(?:\.{_IDENT})*)$")
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*_ms$")
_EVENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_ROUTE_RE = re.compile(r"^(\S+)\s+(\S+)$")
#: A path parameter in a route template: `{name}` or `{name:converter}` (Starlette's converters).
TEMPLATE_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|path|int|float|uuid))?\}")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: The percentile names a budget may bound.
PERCENTILES = ("p50", "p95", "p99", "max")


# --------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located: file, line (1-based, 0 = unknown) and key path."""

    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


class ManifestError(ValueError):
    """The manifest cannot be used. `problems` lists every mistake found; str() shows one per line."""

    def __init__(self, problems: List[Problem]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem("?", 0, "?", "invalid manifest")
        self.path, self.line, self.key = first.path, first.line, first.key
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------------------------- typed objects


@dataclass(frozen=True)
class Ref:
    """`package.module:Attr.path`, as written in the manifest."""

    module: str
    attr: str
    line: int = 0

    @property
    def text(self) -> str:
        return f"{self.module}:{self.attr}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class LogSpec:
    """How events are emitted: `function(logging.getLogger(logger), level, event, **fields)`; no function =
    a JSON line on stderr. `correlation` names the app's ContextVar holding the correlation id; `redact` a
    `str -> str` function of the app (request ids it would change are refused; the stderr fallback passes
    strings through it); `event_key` the JSON key that holds the event name in the app's lines."""

    function: Optional[Ref] = None
    logger: str = "autoinstrument"
    correlation: Optional[Ref] = None
    redact: Optional[Ref] = None
    event_key: str = "message"


@dataclass(frozen=True)
class StageSpec:
    """A callable whose duration is added to `field` of the innermost open scope."""

    target: Ref
    field: str
    shared: bool = False


@dataclass(frozen=True)
class ScopeSpec:
    """A callable that opens a timing context and emits ONE `event` when it exits."""

    target: Ref
    event: str
    total: str
    error_event: Optional[str] = None
    result: Tuple[str, ...] = ()
    result_correlation: Optional[str] = None


@dataclass(frozen=True)
class RouteSpec:
    """`METHOD /template` timed into `field`; `event` (or `error_event` for status >= 400 or an exception).
    `result` names top-level keys of the route's JSON response body copied into the event."""

    method: str
    template: str
    field: str
    event: str
    error_event: str
    line: int = 0
    result: Tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSpec:
    app: Ref
    request_header: str = "X-Request-ID"
    response_header: str = "X-Correlation-ID"
    routes: Tuple[RouteSpec, ...] = ()


@dataclass(frozen=True)
class Budget:
    """Upper bounds (ms) for one field's distribution; a bare number in YAML means p95."""

    field: str
    limits: Dict[str, float]
    line: int = 0


@dataclass(frozen=True)
class Manifest:
    path: str
    version: int
    log: LogSpec
    scopes: Tuple[ScopeSpec, ...] = ()
    stages: Tuple[StageSpec, ...] = ()
    web: Optional[WebSpec] = None
    budgets: Tuple[Budget, ...] = ()
    #: stage field → the stage fields called inside it at the same time (only the report reads it: it draws
    #: them overlapping, within the outer stage's bar, instead of end to end)
    parallel: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    @property
    def event_key(self) -> str:
        """The JSON key holding the event name in the app's log lines (`log.event_key`, default "message")."""
        return self.log.event_key

    def watched_modules(self) -> List[str]:
        """Every module an install hooks: the targets', the log function's when routes are mapped (its
        one-event-per-request gate), the web app's. In manifest order, each once."""
        names: List[str] = []
        refs = [s.target for s in self.scopes] + [s.target for s in self.stages]
        if self.web is not None and self.web.routes and self.log.function is not None:
            refs.append(self.log.function)
        if self.web is not None:
            refs.append(self.web.app)
        for ref in refs:
            if ref.module not in names:
                names.append(ref.module)
        return names

    @property
    def targets(self) -> Tuple[Ref, ...]:
        return tuple(s.target for s in self.scopes) + tuple(s.target for s in self.stages)

    def fields(self) -> List[str]:
        """Every `_ms` field this manifest can produce (stage fields, scope totals, route fields)."""
        out: List[str] = []
        for name in (
            [s.total for s in self.scopes]
            + [s.field for s in self.stages]
            + [r.field for r in (self.web.routes if self.web else ())]
        ):
            if name not in out:
                out.append(name)
        return out


# --------------------------------------------------------------------------------------------- YAML loading


class _Mapping(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.key_lines: Dict[Any, int] = {}


_LOADER = None


def _loader_class():
    """Build the line-recording, duplicate-refusing SafeLoader once (imports yaml on first use)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class _LineLoader(yaml.SafeLoader):
        duplicates: List[Tuple[Any, int, int]]

        def construct_mapping(self, node, deep=False):
            self.flatten_mapping(node)
            mapping = _Mapping()
            mapping.line = node.start_mark.line + 1
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    hash(key)
                except TypeError:
                    key = repr(key)
                if key in mapping:
                    self.duplicates.append((key, mapping.key_lines[key], line))
                    continue
                mapping[key] = self.construct_object(value_node, deep=True)
                mapping.key_lines[key] = line
            return mapping

    _LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
    _LOADER = _LineLoader
    return _LOADER


def parse_yaml(text: str, path: str) -> Any:
    """`yaml.safe_load` semantics, plus line numbers and a ManifestError on duplicate keys or bad YAML."""
    import yaml

    loader = _loader_class()(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ManifestError([Problem(path, line, "(yaml)", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ManifestError(
            [
                Problem(path, second, str(key), f"duplicate key (first written on line {first})")
                for key, first, second in loader.duplicates
            ]
        )
    return data


# --------------------------------------------------------------------------------------------- validation


class _Checker:
    """Walks the parsed YAML, collecting Problems instead of stopping at the first."""

    def __init__(self, path: str):
        self.path = path
        self.problems: List[Problem] = []

    def fail(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, key, message))

    @staticmethod
    def line_of(mapping: Any, key: Any = None) -> int:
        if isinstance(mapping, _Mapping):
            if key is not None and key in mapping.key_lines:
                return mapping.key_lines[key]
            return mapping.line
        return 0

    def mapping(self, value: Any, line: int, where: str) -> Optional[_Mapping]:
        if value is None:
            return _Mapping()
        if not isinstance(value, dict):
            self.fail(line, where, f"must be a mapping, got {type(value).__name__}")
            return None
        return value  # type: ignore[return-value]

    def known_keys(self, mapping: _Mapping, allowed: Tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.fail(
                    self.line_of(mapping, key),
                    f"{where}.{key}" if where else str(key),
                    f"unknown key (allowed: {', '.join(allowed)})",
                )

    def string(self, mapping: _Mapping, key: str, where: str, required: bool = False) -> Optional[str]:
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
    c.known_keys(data, ("version", "log", "scopes", "stages", "web", "budgets", "parallel"), "")

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
    if c.problems:
        raise ManifestError(c.problems)
    return Manifest(path, 1, log, tuple(scopes), tuple(stages), web, tuple(budgets), parallel)


def _validate_log(c: _Checker, data: _Mapping) -> LogSpec:
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


def _validate_scopes(c: _Checker, data: _Mapping) -> List[ScopeSpec]:
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


def _validate_stages(c: _Checker, data: _Mapping) -> List[StageSpec]:
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


def _validate_web(c: _Checker, data: _Mapping) -> Optional[WebSpec]:
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


def _validate_budgets(c: _Checker, data: _Mapping, fields: set) -> List[Budget]:
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


def _validate_parallel(c: _Checker, data: _Mapping, stage_fields: set) -> Dict[str, Tuple[str, ...]]:
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


# --------------------------------------------------------------------------------------------- resolving


def resolve_ref(ref: Ref, importer: Optional[Callable[[str], Any]] = None) -> Any:
    """The object `module:Attr.path` names: import the module (with `importer`, default importlib), then walk
    the attributes. The one resolution that install, the emitter and check share."""
    if importer is None:
        import importlib

        importer = importlib.import_module
    obj: Any = importer(ref.module)
    for part in ref.attr.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------------- entry points


def default_manifest_path() -> str:
    """`$AUTOINSTRUMENT_MANIFEST`, else `telemetry.yaml` in the working directory (an app's start-up switch
    passes its own manifest explicitly; see `_bootstrap.manifest_path`, the one place this is decided)."""
    from autoinstrument._bootstrap import manifest_path

    return manifest_path()


def load_manifest(path: Optional[str] = None) -> Manifest:
    """Read and validate a manifest file (default: see `default_manifest_path`). Raises ManifestError.

    A valid manifest is kept in the on-disk cache (`cache.py`, keyed by path, mtime and size), so the next
    interpreter does not import yaml to read the same file again."""
    path = os.fspath(path) if path is not None else default_manifest_path()
    import marshal

    from autoinstrument import cache

    absolute = os.path.abspath(path)
    plain = cache.read(absolute, "manifest", marshal.loads)
    if plain is not None:
        try:
            cached = _from_plain(plain)
            if isinstance(cached, Manifest) and cached.path == path:
                return cached
        except Exception:
            pass  # an entry of another shape: read the file again
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ManifestError(
            [Problem(str(path), 0, "(file)", f"cannot read the manifest: {exc.strerror or exc}")]
        ) from None
    manifest = validate(parse_yaml(text, path), path)
    cache.write(absolute, "manifest", _to_plain(manifest), marshal.dumps)
    return manifest


_PLAIN_TYPES: Dict[str, Any] = {}


def _to_plain(value: Any) -> Any:
    """A Manifest as marshal-able data (tuples, dicts, str, numbers): marshal needs no import at start-up."""
    if hasattr(value, "__dataclass_fields__"):
        name = type(value).__name__
        return ("@" + name, tuple(_to_plain(getattr(value, f)) for f in value.__dataclass_fields__))
    if isinstance(value, tuple):
        return ("()", tuple(_to_plain(v) for v in value))
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _from_plain(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        tag, items = value
        if tag == "()":
            return tuple(_from_plain(v) for v in items)
        if tag.startswith("@"):
            if not _PLAIN_TYPES:
                _PLAIN_TYPES.update(
                    (cls.__name__, cls)
                    for cls in (Manifest, LogSpec, StageSpec, ScopeSpec, RouteSpec, WebSpec, Budget, Ref)
                )
            return _PLAIN_TYPES[tag[1:]](*(_from_plain(v) for v in items))
    if isinstance(value, dict):
        return {k: _from_plain(v) for k, v in value.items()}
    return value


def loads_manifest(text: str, path: str = "<string>") -> Manifest:
    """Validate manifest text (tests and tools)."""
    return validate(parse_yaml(text, path), path)


__all__ = [
    "ManifestError",
    "Problem",
    "Manifest",
    "LogSpec",
    "StageSpec",
    "ScopeSpec",
    "WebSpec",
    "RouteSpec",
    "Budget",
    "Ref",
    "load_manifest",
    "loads_manifest",
    "resolve_ref",
    "budget_limits",
    "PERCENTILES",
    "default_manifest_path",
]
