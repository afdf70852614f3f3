"""`autoinstrument report`: latency statistics, budget checks and the slowest runs, from JSON log lines.

Why it streams: operators feed it a day of platform logs (hundreds of MB, sometimes GBs). Every line is
decoded, folded into per-field Counters of integer milliseconds, and dropped. Memory is bounded by the
number of DISTINCT millisecond values per (event, field) (at most the longest duration in ms, usually far
fewer), by the number of event names and routes (capped, see MAX_EVENTS / MAX_ROUTES), and by the `top`
slowest runs kept per total field in a min-heap; never by the number of lines. A line longer than
MAX_LINE_BYTES is skipped without being held.

Percentiles are EXACT and use the nearest-rank definition: for n samples sorted ascending x(1) <= ... <=
x(n), the p-th percentile is x(ceil(p / 100 * n)). It is always a value that was observed (p50 of [1, 2, 3,
4] is 2; p95 of 1..20 is 19; p100 is the max). Floats are rounded half up to whole ms; booleans, negatives,
NaN, infinities and non-numbers are counted as invalid, not as samples.

Input: one JSON object per line as `log_json` writes it (`message` is the event name). A prefix that log
platforms add before the JSON (`2026-11-28T10:00:00+00:00 app[web.1]: {...}`, syslog `<134>1 ... - - {...}`)
is ignored: parsing starts at the first `{`. Lines that cannot be used are counted by reason (SKIP_REASONS),
never fatal. Logs are untrusted: text from them is escaped for the terminal here and for HTML in
`report_html`.

Budgets map an `_ms` field to a limit in ms. A bare number is checked against p95 (as in telemetry.yaml and
the manifest's `Budget`); `{p95: 5000, max: 20000}` checks each named statistic (p50, p95, p99, max). A
budget is breached when the observed statistic is strictly greater than the limit; a field with no samples
is reported as "no data" and is not a breach. A field's samples are pooled across every event that carries
it (so `web_publish_ms` counts both `web_publish` and `web_publish_error`).

Public API (the CLI calls `main`): aggregate, aggregate_streams, Aggregator, Report, check_budgets,
evaluate_budgets, load_budgets, render_text, to_json, main.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

SCHEMA_VERSION = 1

#: Why a line was not used, in the order they are shown.
EMPTY, NOT_JSON, INVALID_JSON, NOT_OBJECT, NO_MS_FIELDS, TOO_LONG = (
    "empty",
    "not_json",
    "invalid_json",
    "not_object",
    "no_ms_fields",
    "too_long",
)
SKIP_REASONS = (EMPTY, NOT_JSON, INVALID_JSON, NOT_OBJECT, NO_MS_FIELDS, TOO_LONG)
SKIP_DESCRIPTIONS = {
    EMPTY: "blank line",
    NOT_JSON: "no JSON object on the line",
    INVALID_JSON: "truncated or invalid JSON",
    NOT_OBJECT: "JSON, but not an object",
    NO_MS_FIELDS: "object without any _ms field",
    TOO_LONG: f"line longer than {1 << 20:,} bytes",
}

MAX_LINE_BYTES = 1 << 20
MAX_EVENTS = 1000
MAX_ROUTES = 1000
MAX_FIELDS_PER_GROUP = 200
MAX_TOTALS = 100  # total fields with a slowest-runs list
CACHE_SIZE = 4096
MAX_TEXT = 200  # longest string kept from a log line (event names, ids, context values)
OTHER = "(other)"
NO_MESSAGE = "(no message)"

PERCENTILES = (50, 95, 99)
STATISTICS = ("p50", "p95", "p99", "max")  # what a budget may name
DEFAULT_STATISTIC = "p95"

#: Stage fields in the order a run goes through them; fields not listed come after, alphabetically.
STAGE_ORDER = (
    "dropbox_list_images_ms",
    "image_selection_ms",
    "vision_analysis_ms",
    "caption_generation_ms",
    "sidecar_write_ms",
    "publish_parallel_ms",
    "archive_ms",
)
#: Fields of a slow run kept beside its stages (strings are truncated to MAX_TEXT).
CONTEXT_KEYS = ("image_name", "filename", "method", "route", "status_code", "success", "archived", "error")

_decoder = json.JSONDecoder()
_JSON_STARTS = frozenset('["-0123456789tfnNI')  # first characters of any JSON value Python's json accepts


# ---------------------------------------------------------------------------------------------- statistics


class FieldStats:
    """The distribution of one `_ms` field: a Counter of whole milliseconds, so percentiles stay exact.

    Only `counts` is touched per event (the hot path); n, sum and the statistics are derived on demand.
    """

    __slots__ = ("counts", "invalid")

    def __init__(self) -> None:
        self.counts: Dict[int, int] = {}
        self.invalid = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def add(self, value: int, times: int = 1) -> None:
        counts = self.counts
        counts[value] = counts.get(value, 0) + times

    def merge(self, other: FieldStats) -> None:
        for value, times in other.counts.items():
            self.add(value, times)
        self.invalid += other.invalid

    def percentile(self, p: float) -> Optional[int]:
        """Nearest-rank p-th percentile (see the module docstring); None without samples."""
        return self.summary((p,))[f"p{p:g}"]

    def summary(self, percentiles: Sequence[float] = PERCENTILES) -> Dict[str, Any]:
        """count, invalid, the nearest-rank percentiles, max and mean (one sort of the distinct values)."""
        n = self.n
        out: Dict[str, Any] = {"count": n, "invalid": self.invalid}
        if not n:
            out.update({f"p{p:g}": None for p in percentiles})
            out.update({"max": None, "mean": None})
            return out
        ranks = sorted((_rank(p, n), f"p{p:g}") for p in percentiles)
        seen = 0
        i = 0
        items = sorted(self.counts.items())
        for value, times in items:
            seen += times
            while i < len(ranks) and ranks[i][0] <= seen:
                out[ranks[i][1]] = value
                i += 1
            if i == len(ranks):
                break
        out["max"] = items[-1][0]
        out["mean"] = round(sum(value * times for value, times in items) / n, 1)
        return out

    def over(self, limit: float) -> int:
        """How many samples are strictly greater than `limit`."""
        return sum(times for value, times in self.counts.items() if value > limit)


def _rank(p: float, n: int) -> int:
    """ceil(p / 100 * n), at least 1, in exact arithmetic (a float product can land a hair above an integer)."""
    exact = Fraction(p) if isinstance(p, int) else Fraction(repr(p))
    return max(1, math.ceil(exact * n / 100))


class _Group:
    """Counts and field distributions of one event name or one route."""

    __slots__ = ("count", "fields", "status")

    def __init__(self) -> None:
        self.count = 0
        self.fields: Dict[str, FieldStats] = {}
        self.status: Dict[str, int] = {}


@dataclass
class Run:
    """One slow run, for the waterfall: its total, the stage fields measured inside it, and how to find it."""

    event: str
    total_field: str
    total_ms: int
    correlation_id: Optional[str]
    timestamp: Optional[str]
    stages: Dict[str, int]
    context: Dict[str, str]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "event": self.event,
            "total_field": self.total_field,
            "total_ms": self.total_ms,
            "correlation_id": self.correlation_id,
            "timestamp": self.timestamp,
            "stages": dict(self.stages),
            "context": dict(self.context),
        }


@dataclass
class Report:
    """What `aggregate` learned from the lines. Event and route groups hold FieldStats per `_ms` field."""

    lines: int = 0
    events_used: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    events: Dict[str, _Group] = field(default_factory=dict)
    routes: Dict[Tuple[str, str, str], _Group] = field(default_factory=dict)
    slowest: Dict[str, List[Run]] = field(default_factory=dict)
    dropped: Dict[str, int] = field(default_factory=dict)
    top: int = 10

    def fields(self) -> List[str]:
        """Every `_ms` field seen, in stage order (totals first)."""
        names = {name for group in self.events.values() for name in group.fields}
        return sorted(names, key=field_sort_key)

    def field_stats(self, name: str) -> FieldStats:
        """One field's samples pooled across every event that carries it."""
        pooled = FieldStats()
        for group in self.events.values():
            stats = group.fields.get(name)
            if stats is not None:
                pooled.merge(stats)
        return pooled

    def distinct_values(self) -> int:
        """How many (group, field, ms value) entries are held: what the memory use grows with."""
        groups = list(self.events.values()) + list(self.routes.values())
        return sum(len(stats.counts) for group in groups for stats in group.fields.values())

    def events_with(self, name: str) -> List[str]:
        return sorted(event for event, group in self.events.items() if name in group.fields)


def field_sort_key(name: str) -> Tuple[int, int, str]:
    """Scope totals first, then web endpoint totals, the known stages in run order, the rest by name."""
    if name.endswith("_total_ms"):
        return (0, 0, name)
    if name.startswith("web_") and name not in STAGE_ORDER:
        return (0, 1, name)
    if name in STAGE_ORDER:
        return (1, STAGE_ORDER.index(name), name)
    return (2, 0, name)


def family_of(event: str) -> str:
    """`web_publish_error` and `web_publish` are one family (same route, same total field)."""
    return event[: -len("_error")] if event.endswith("_error") else event


# ---------------------------------------------------------------------------------------------- aggregation


def _ms_value(value: Any) -> Optional[int]:
    """Whole non-negative milliseconds, or None for anything that is not a duration (bools included)."""
    kind = type(value)
    if kind is int:
        return value if value >= 0 else None
    if kind is float and value >= 0 and value != math.inf:  # NaN fails `>= 0`
        return int(value + 0.5)
    return None


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def decode_line(line: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(object, None) when the line holds a JSON object (after any prefix), else (None, skip reason)."""
    if len(line) > MAX_LINE_BYTES:
        return None, TOO_LONG
    text = line.strip()
    if not text:
        return None, EMPTY
    try:
        if text[0] == "{":
            try:
                return json.loads(text), None
            except ValueError:
                pass  # trailing text after the object: raw_decode below
            start = 0
        else:
            if text[0] in _JSON_STARTS:  # maybe a whole non-object JSON value; a platform prefix is not
                try:
                    json.loads(text)
                    return None, NOT_OBJECT  # an array, a string, a number...
                except (ValueError, RecursionError):
                    pass
            start = text.find("{")
            if start < 0:
                return None, NOT_JSON
        obj, _ = _decoder.raw_decode(text, start)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None, INVALID_JSON
    return obj, None


class Aggregator:
    """Feed lines (or binary streams) one at a time; `report()` gives the result. Holds no line after use.

    `totals` maps an event name to its total field (the manifest knows them: scope `total`, route `field`).
    Without an entry, an event's total is `<family>_ms` when present (`web_publish_error` → `web_publish_ms`),
    else its first `*_total_ms` field; events with neither have no slowest-runs list.
    """

    def __init__(self, top: int = 10, totals: Optional[Mapping[str, str]] = None) -> None:
        self.top = max(0, int(top))
        self.totals = dict(totals or {})
        self.lines = 0
        self.used = 0
        self.skipped: Counter = Counter()
        self.dropped: Counter = Counter()
        self.events: Dict[str, _Group] = {}
        self.routes: Dict[Tuple[str, str, str], _Group] = {}
        self._heaps: Dict[str, List[Tuple[int, int, Run]]] = {}
        self._seq = 0
        # Memo tables for the hot path (bounded: past CACHE_SIZE entries, results are computed, not stored).
        self._ms_keys: Dict[Tuple[str, ...], Tuple[str, ...]] = {}
        self._route_keys: Dict[Tuple[str, Any, str], Tuple[str, str, str]] = {}
        self._own_total: Dict[str, str] = {}

    # -- input

    def feed(self, line: Union[str, bytes]) -> None:
        """Fold one line in; anything unusable is counted under a skip reason."""
        self.lines += 1
        if isinstance(line, bytes):
            if len(line) > MAX_LINE_BYTES:
                self.skipped[TOO_LONG] += 1
                return
            line = line.decode("utf-8", "replace")
        obj, reason = decode_line(line)
        if obj is None:
            self.skipped[reason] += 1
            return
        self._fold(obj)

    def feed_stream(self, stream: IO[bytes]) -> None:
        """Read a binary stream line by line; a line over MAX_LINE_BYTES is drained in bounded chunks."""
        readline = stream.readline
        limit = MAX_LINE_BYTES
        while True:
            raw = readline(limit + 1)
            if not raw:
                return
            if len(raw) > limit and not raw.endswith(b"\n"):
                while True:
                    more = readline(limit)
                    if not more or more.endswith(b"\n"):
                        break
                self.lines += 1
                self.skipped[TOO_LONG] += 1
                continue
            self.feed(raw.decode("utf-8", "replace"))

    # -- folding one event

    def _group(self, table: Dict[Any, _Group], key: Any, cap: int, overflow: Any, what: str) -> _Group:
        group = table.get(key)
        if group is None:
            if len(table) >= cap:
                self.dropped[what] += 1
                key = overflow
                group = table.get(key)
            if group is None:
                group = table[key] = _Group()
        return group

    def _fold(self, obj: Dict[str, Any]) -> None:
        # The hot path: one pass over the keys, ints taken as they are, one dict update per sample.
        keys = tuple(obj)
        ms_keys = self._ms_keys.get(keys)
        if ms_keys is None:
            ms_keys = tuple(k for k in keys if k.endswith("_ms"))
            if len(self._ms_keys) < CACHE_SIZE and len(keys) <= 64:  # a hostile 50,000-key line is not kept
                self._ms_keys[keys] = ms_keys
        if not ms_keys:
            self.skipped[NO_MS_FIELDS] += 1
            return
        self.used += 1
        durations: List[Tuple[str, Optional[int]]] = []
        valid: Dict[str, int] = {}
        for key in ms_keys:
            raw = obj[key]
            value = raw if type(raw) is int and raw >= 0 else _ms_value(raw)
            durations.append((key, value))
            if value is not None:
                valid[key] = value
        name = obj.get("message")
        name = _text(name) if type(name) is str and name else NO_MESSAGE
        group = self.events.get(name) or self._group(self.events, name, MAX_EVENTS, OTHER, "events_over_cap")
        self._add(group, durations)
        route = obj.get("route")
        if type(route) is str and route:
            self._add(self._route_group(name, obj, route), durations)
        if self.top and valid:
            self._track_slow(name, obj, valid)

    def _add(self, group: _Group, durations: List[Tuple[str, Optional[int]]]) -> None:
        group.count += 1
        fields = group.fields
        for key, value in durations:
            stats = fields.get(key)
            if stats is None:
                if len(fields) >= MAX_FIELDS_PER_GROUP:
                    self.dropped["fields_over_cap"] += 1
                    continue
                stats = fields[key] = FieldStats()
            if value is None:
                stats.invalid += 1
            else:
                counts = stats.counts
                counts[value] = counts.get(value, 0) + 1

    def _route_group(self, name: str, obj: Dict[str, Any], route: str) -> _Group:
        raw_method = obj.get("method")
        memo = (name, raw_method if type(raw_method) is str else None, route)
        key = self._route_keys.get(memo)
        if key is None:
            method = raw_method.upper() if isinstance(raw_method, str) else ""
            head, _, rest = route.partition(" ")
            if rest and head.isalpha() and head.isupper():  # "POST /api/images/{filename}/publish"
                method = method or head
                route = rest.strip()
            key = (family_of(name), _text(method), _text(route))
            if len(self._route_keys) < CACHE_SIZE and len(route) <= MAX_TEXT:
                self._route_keys[memo] = key
        group = self._group(self.routes, key, MAX_ROUTES, (OTHER, "", OTHER), "routes_over_cap")
        status = obj.get("status_code", obj.get("status"))
        if status is not None and not isinstance(status, (dict, list)):
            code = _text(status if isinstance(status, str) else str(status))
            if code in group.status or len(group.status) < 100:
                group.status[code] = group.status.get(code, 0) + 1
        return group

    def _total_field(self, name: str, valid: Dict[str, int]) -> Optional[str]:
        total = self.totals.get(name)
        if total is not None:
            return total if total in valid else None
        own = self._own_total.get(name)
        if own is None:
            own = family_of(name) + "_ms"
            if len(self._own_total) < CACHE_SIZE:
                self._own_total[name] = own
        if own in valid:
            return own
        for key in valid:
            if key.endswith("_total_ms"):
                return key
        return None

    def _track_slow(self, name: str, obj: Dict[str, Any], valid: Dict[str, int]) -> None:
        total_field = self._total_field(name, valid)
        if total_field is None:
            return
        total = valid[total_field]
        heap = self._heaps.get(total_field)
        if heap is None:
            if len(self._heaps) >= MAX_TOTALS:
                return
            heap = self._heaps[total_field] = []
        if len(heap) >= self.top and total <= heap[0][0]:
            return  # the common case: not among the slowest, build nothing
        cid = obj.get("correlation_id")
        stamp = obj.get("timestamp")
        run = Run(
            event=name,
            total_field=_text(total_field),
            total_ms=total,
            correlation_id=_text(cid) if cid is not None else None,
            timestamp=_text(stamp) if stamp is not None else None,
            stages={_text(k): v for k, v in list(valid.items())[:MAX_FIELDS_PER_GROUP] if k != total_field},
            context={k: _text(obj[k]) for k in CONTEXT_KEYS if k in obj and obj[k] is not None},
        )
        self._seq += 1
        entry = (total, -self._seq, run)  # on equal totals the earlier run stays
        if len(heap) < self.top:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    def report(self) -> Report:
        slowest = {
            total_field: [entry[2] for entry in sorted(heap, reverse=True)]
            for total_field, heap in sorted(self._heaps.items(), key=lambda item: field_sort_key(item[0]))
        }
        return Report(
            lines=self.lines,
            events_used=self.used,
            skipped={reason: self.skipped[reason] for reason in SKIP_REASONS if self.skipped[reason]},
            events=self.events,
            routes=self.routes,
            slowest=slowest,
            dropped=dict(self.dropped),
            top=self.top,
        )


def aggregate(lines: Iterable[Union[str, bytes]], top: int = 10, totals: Optional[Mapping[str, str]] = None) -> Report:
    """Fold an iterable of log lines (str, or bytes decoded as UTF-8 with replacement) into a Report."""
    agg = Aggregator(top=top, totals=totals)
    for line in lines:
        agg.feed(line)
    return agg.report()


def aggregate_streams(
    streams: Iterable[IO[bytes]], top: int = 10, totals: Optional[Mapping[str, str]] = None
) -> Report:
    """Fold binary streams (files opened 'rb', gzip files, stdin.buffer) into one Report."""
    agg = Aggregator(top=top, totals=totals)
    for stream in streams:
        agg.feed_stream(stream)
    return agg.report()


# ---------------------------------------------------------------------------------------------- budgets


class BudgetError(ValueError):
    """A budgets file that cannot be used (unreadable, not YAML, wrong shape); the message names the place."""


@dataclass
class BudgetCheck:
    """One (field, statistic) budget against the observed value."""

    field: str
    statistic: str
    limit: float
    observed: Optional[int]
    count: int
    over_limit: int
    events: List[str]

    @property
    def breached(self) -> bool:
        return self.observed is not None and self.observed > self.limit

    @property
    def status(self) -> str:
        if self.observed is None:
            return "no data"
        return "BREACH" if self.breached else "ok"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "field": self.field,
            "statistic": self.statistic,
            "limit": _number(self.limit),
            "observed": self.observed,
            "count": self.count,
            "over_limit": self.over_limit,
            "events": list(self.events),
            "status": self.status,
            "breached": self.breached,
        }


def _number(value: float) -> Union[int, float]:
    return int(value) if float(value).is_integer() else value


BudgetSpec = Union[int, float, Mapping[str, Union[int, float]]]


def normalize_budgets(
    budgets: Mapping[str, BudgetSpec], default_statistic: str = DEFAULT_STATISTIC, where: str = "budgets"
) -> Dict[str, Dict[str, float]]:
    """`{field: 5000}` / `{field: {p95: 5000, max: 20000}}` → `{field: {statistic: limit}}`; BudgetError if
    malformed."""
    if not isinstance(budgets, Mapping):
        raise BudgetError(f"{where}: expected a mapping of field → milliseconds")
    out: Dict[str, Dict[str, float]] = {}
    for name, spec in budgets.items():
        if not isinstance(name, str) or not name.endswith("_ms"):
            raise BudgetError(f"{where}.{name}: a budget names an `_ms` field")
        limits = dict(spec) if isinstance(spec, Mapping) else {default_statistic: spec}
        if not limits:
            raise BudgetError(f"{where}.{name}: no statistic given (one of {', '.join(STATISTICS)})")
        for stat, limit in limits.items():
            if stat not in STATISTICS:
                raise BudgetError(f"{where}.{name}.{stat}: unknown statistic (one of {', '.join(STATISTICS)})")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
                raise BudgetError(f"{where}.{name}.{stat}: a budget must be a positive number of milliseconds")
        out[name] = {stat: float(limits[stat]) for stat in STATISTICS if stat in limits}
    return out


def evaluate_budgets(
    report: Report, budgets: Mapping[str, BudgetSpec], default_statistic: str = DEFAULT_STATISTIC
) -> List[BudgetCheck]:
    """Every budget against the pooled samples of its field, breached or not (for the budget table)."""
    checks: List[BudgetCheck] = []
    for name, limits in normalize_budgets(budgets, default_statistic).items():
        stats = report.field_stats(name)
        summary = stats.summary()
        for stat, limit in limits.items():
            checks.append(
                BudgetCheck(
                    field=name,
                    statistic=stat,
                    limit=limit,
                    observed=summary[stat],
                    count=stats.n,
                    over_limit=stats.over(limit),
                    events=report.events_with(name),
                )
            )
    return checks


def check_budgets(
    report: Report, budgets: Mapping[str, BudgetSpec], default_statistic: str = DEFAULT_STATISTIC
) -> List[BudgetCheck]:
    """Only the breached budgets (empty list: the logs are within budget). A bare number means p95."""
    return [check for check in evaluate_budgets(report, budgets, default_statistic) if check.breached]


def load_budgets(path: str) -> Dict[str, Dict[str, float]]:
    """Read the top-level `budgets:` mapping of a YAML file (telemetry.yaml works as is).

    Kept as one small function so the CLI can swap it for the manifest loader (`Manifest.budgets`).
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise BudgetError(f"{path}: cannot read the budgets file: {exc.strerror or exc}") from None
    import yaml  # lazy: `import autoinstrument.report` stays cheap

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BudgetError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("budgets"), dict):
        raise BudgetError(f"{path}: no top-level `budgets:` mapping")
    return normalize_budgets(data["budgets"], where=f"{path}: budgets")


def manifest_settings(path: str) -> Tuple[Dict[str, Dict[str, float]], Dict[str, str]]:
    """(budgets, totals) read from a telemetry manifest with the manifest's own loader.

    `totals` maps every event the manifest can emit to its exact total field: a scope's `event` and
    `error_event` to its `total`, a route's `event` and `error_event` to its `field`. Raises the loader's
    `ManifestError` (it names the file, line and key) when the file is not a valid manifest.
    """
    from autoinstrument.manifest import load_manifest

    manifest = load_manifest(path)
    budgets = {budget.field: dict(budget.limits) for budget in manifest.budgets}
    totals: Dict[str, str] = {}
    for scope in manifest.scopes:
        totals[scope.event] = scope.total
        if scope.error_event:
            totals[scope.error_event] = scope.total
    for route in manifest.web.routes if manifest.web else ():
        totals[route.event] = route.field
        totals[route.error_event] = route.field
    return normalize_budgets(budgets, where=f"{path}: budgets"), totals


def _settings(manifest: Optional[str], budgets: Optional[str]) -> Tuple[Dict[str, Dict[str, float]], Dict[str, str]]:
    """`--manifest`: a manifest, or an error. `--budgets`: a manifest when it is one, else any YAML with a
    top-level `budgets:` mapping (`load_budgets`)."""
    from autoinstrument.manifest import ManifestError

    if manifest:
        try:
            return manifest_settings(manifest)
        except ManifestError as exc:
            raise BudgetError(f"not a valid manifest:\n{exc}") from None
    if budgets:
        try:
            return manifest_settings(budgets)
        except ManifestError:
            return load_budgets(budgets), {}
    return {}, {}


# ---------------------------------------------------------------------------------------------- rendering


def to_json(report: Report, breaches: Sequence[BudgetCheck] = ()) -> Dict[str, Any]:
    """A stable, versioned document (`schema_version`); `budgets` holds the checks passed in."""
    return {
        "schema_version": SCHEMA_VERSION,
        "percentile_method": "nearest-rank",
        "unit": "ms",
        "lines": report.lines,
        "events_used": report.events_used,
        "skipped": {reason: report.skipped.get(reason, 0) for reason in SKIP_REASONS},
        "dropped": dict(report.dropped),
        "distinct_values": report.distinct_values(),
        "events": [
            {"event": name, "count": group.count, "fields": _fields_json(group)}
            for name, group in sorted(report.events.items())
        ],
        "routes": [
            {
                "family": family,
                "method": method,
                "route": route,
                "count": group.count,
                "status_codes": dict(sorted(group.status.items())),
                "fields": _fields_json(group),
            }
            for (family, method, route), group in sorted(report.routes.items())
        ],
        "slowest": [
            {"total_field": total_field, "runs": [run.to_dict() for run in runs]}
            for total_field, runs in report.slowest.items()
        ],
        "budgets": [check.to_dict() for check in breaches],
        "breached": any(check.breached for check in breaches),
    }


def _fields_json(group: _Group) -> List[Dict[str, Any]]:
    return [dict(field=name, **group.fields[name].summary()) for name in sorted(group.fields, key=field_sort_key)]


def printable(text: Any) -> str:
    """Log text made safe for a terminal: control characters (ANSI escapes included) shown as escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> List[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i >= numeric_from else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


_STAT_HEADERS = ["count", "p50", "p95", "p99", "max", "mean", "invalid"]


def _stat_cells(summary: Dict[str, Any]) -> List[str]:
    return [_fmt(summary[k]) for k in ("count", "p50", "p95", "p99", "max", "mean", "invalid")]


def render_text(report: Report, breaches: Sequence[BudgetCheck] = ()) -> str:
    """A readable plain-text report: totals, skipped lines, per-event and per-route tables, slowest runs,
    budgets (whatever checks are passed: all of them from `evaluate_budgets`, or only the breaches)."""
    out: List[str] = []
    skipped = sum(report.skipped.values())
    out.append(
        f"autoinstrument report: {report.lines:,} lines, {report.events_used:,} events with _ms fields, "
        f"{skipped:,} skipped (percentiles: nearest-rank, ms)"
    )
    if skipped:
        out.append("skipped: " + ", ".join(f"{r} {report.skipped[r]:,}" for r in SKIP_REASONS if r in report.skipped))
    if report.dropped:
        out.append("over the caps: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.dropped.items())))

    out += ["", "Events"]
    rows = []
    for name, group in sorted(report.events.items()):
        for i, fname in enumerate(sorted(group.fields, key=field_sort_key)):
            label = f"{printable(name)} ({group.count:,})" if i == 0 else ""
            rows.append([label, printable(fname)] + _stat_cells(group.fields[fname].summary()))
    out += _table(["event", "field"] + _STAT_HEADERS, rows, 2) if rows else ["(no events with _ms fields)"]

    if report.routes:
        out += ["", "Routes"]
        rows = []
        for (family, method, route), group in sorted(report.routes.items()):
            status = " ".join(f"{printable(c)}:{n:,}" for c, n in sorted(group.status.items())) or "-"
            for i, fname in enumerate(sorted(group.fields, key=field_sort_key)):
                head = [printable(f"{method} {route}".strip()), printable(family), status] if i == 0 else ["", "", ""]
                rows.append(head + [printable(fname)] + _stat_cells(group.fields[fname].summary()))
        out += _table(["route", "family", "status", "field"] + _STAT_HEADERS, rows, 4)

    for total_field, runs in report.slowest.items():
        out += ["", f"Slowest {len(runs)} by {printable(total_field)}"]
        for rank, run in enumerate(runs, 1):
            where = " ".join(f"{k}={printable(v)}" for k, v in run.context.items())
            cid = printable(run.correlation_id or "-")
            head = f"{rank:>3}. {run.total_ms:>10,} ms  {printable(run.event)}  correlation_id={cid}"
            out.append(f"{head}  {printable(run.timestamp or '')}  {where}".rstrip())
            if run.stages:
                stages = sorted(run.stages.items(), key=lambda kv: field_sort_key(kv[0]))
                out.append("       " + "  ".join(f"{printable(k)}={v:,}" for k, v in stages))

    if breaches:
        out += ["", "Budgets (breach: observed > limit)"]
        rows = [
            [
                c.field,
                c.statistic,
                c.status,
                _fmt(_number(c.limit)),
                _fmt(c.observed),
                _fmt(c.count),
                _fmt(c.over_limit),
            ]
            for c in breaches
        ]
        out += _table(["field", "stat", "status", "limit", "observed", "samples", "over limit"], rows, 3)
        failed = [c for c in breaches if c.breached]
        out.append(f"{len(failed)} budget(s) breached" if failed else "all budgets met")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- CLI


class InputError(Exception):
    """An input that cannot be opened or read (exit code 2)."""


def open_input(path: str) -> IO[bytes]:
    """A binary stream of the file's lines; gzip (by its magic bytes) is decompressed on the fly."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if handle.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _stdin() -> IO[bytes]:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None and hasattr(buffer, "peek") and buffer.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffer, mode="rb")  # type: ignore[return-value]
    if buffer is not None:
        return buffer
    import io

    return io.BytesIO(sys.stdin.read().encode("utf-8", "replace"))  # only for text-only stdin replacements


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoinstrument report",
        description="Latency statistics (count, p50, p95, p99, max per event and _ms field, per route), the "
        "slowest runs' stages, and a budget check, from JSON log lines. "
        "Exit: 0 ok, 1 budget breach, 2 error.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="log files (.gz ok); none or '-' = stdin")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of the text tables")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page to FILE")
    parser.add_argument(
        "--budgets",
        metavar="YAML",
        help="a YAML file with a top-level `budgets:` mapping (telemetry.yaml works); a bare number is p95",
    )
    parser.add_argument(
        "--manifest",
        metavar="YAML",
        help="a telemetry manifest: its budgets, and the exact total field of each event it emits",
    )
    parser.add_argument("--top", type=int, default=10, metavar="N", help="slowest runs kept per total (10)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`autoinstrument report [FILE ...] [--json] [--html FILE] [--budgets YAML | --manifest YAML] [--top N]`."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
        return int(exc.code or 0)
    if args.top < 0:
        print("autoinstrument report: --top must be >= 0", file=sys.stderr)
        return 2
    try:
        budgets, totals = _settings(args.manifest, args.budgets)
        files = args.files or ["-"]
        for path in files:  # fail before reading anything when a file is missing
            if path != "-" and not os.path.isfile(path):
                raise InputError(f"cannot read {path}: no such file")
        agg = Aggregator(top=args.top, totals=totals)
        for path in files:
            stream = _stdin() if path == "-" else open_input(path)
            try:
                agg.feed_stream(stream)
            except (OSError, EOFError) as exc:  # a corrupt or truncated .gz, a read error
                raise InputError(f"error reading {path}: {exc}") from None
            finally:
                if path != "-":
                    stream.close()
        report = agg.report()
    except (BudgetError, InputError) as exc:
        print(f"autoinstrument report: {exc}", file=sys.stderr)
        return 2
    checks = evaluate_budgets(report, budgets)
    if args.html:
        from autoinstrument.report_html import write_html

        try:
            write_html(report, checks, args.html)
        except OSError as exc:
            print(f"autoinstrument report: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        sys.stdout.write(json.dumps(to_json(report, checks), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report, checks))
    return 1 if any(check.breached for check in checks) else 0


__all__ = [
    "SCHEMA_VERSION",
    "SKIP_REASONS",
    "STAGE_ORDER",
    "STATISTICS",
    "Aggregator",
    "BudgetCheck",
    "BudgetError",
    "FieldStats",
    "InputError",
    "Report",
    "Run",
    "aggregate",
    "aggregate_streams",
    "build_parser",
    "check_budgets",
    "decode_line",
    "evaluate_budgets",
    "field_sort_key",
    "load_budgets",
    "main",
    "manifest_settings",
    "normalize_budgets",
    "open_input",
    "printable",
    "render_text",
    "to_json",
]


if __name__ == "__main__":  # `python -m autoinstrument.report` until the `autoinstrument` CLI dispatches here
    sys.exit(main())
