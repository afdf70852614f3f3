"""The manifest's model: the typed objects `telemetry.yaml` validates into, and the errors naming its lines.

Imports nothing of yaml: the runtime and the report read these objects (often from the on-disk cache, `cache.py`)
without parsing anything. `LineMapping` is what the loader builds: a dict that remembers the line of each key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

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
class OpenTelemetrySpec:
    """`exporters.opentelemetry`: scopes, stages and mapped routes as spans through the OpenTelemetry API."""

    enabled: bool = False
    line: int = 0


@dataclass(frozen=True)
class PrometheusSpec:
    """`exporters.prometheus`: one histogram per `_ms` field. `textfile_dir` (absolute, resolved against the
    manifest's folder) receives a CLI run's node_exporter textfile; `buckets` (ms) replace the default ladder
    plus the budgets' thresholds; `labels` are extra `result` keys used as labels (never a path parameter)."""

    enabled: bool = False
    line: int = 0
    textfile_dir: Optional[str] = None
    textfile_line: int = 0
    buckets: Tuple[float, ...] = ()
    labels: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportersSpec:
    """The `exporters:` section. Off by default: the JSON events are written either way."""

    opentelemetry: OpenTelemetrySpec = field(default_factory=OpenTelemetrySpec)
    prometheus: PrometheusSpec = field(default_factory=PrometheusSpec)
    line: int = 0

    @property
    def enabled(self) -> bool:
        return self.opentelemetry.enabled or self.prometheus.enabled


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
    exporters: ExportersSpec = field(default_factory=ExportersSpec)

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



class LineMapping(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.key_lines: Dict[Any, int] = {}


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
