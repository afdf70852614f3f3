"""Fold JSON log lines into per-event, per-route and per-field distributions, and keep the slowest runs.

Why it looks like this: operators feed it a day of platform logs (hundreds of MB). Each line is parsed with
orjson (a line it rejects gets the forgiving stdlib path below, so the result is the same), its `_ms` fields
are counted as whole milliseconds, and the line is dropped. The per-line work is a handful of dict operations:
the `_ms` keys and the counters to update are looked up once per distinct line shape (its key tuple).
Memory is bounded by distinct ms values per (event, field), the caps below, the `top` slowest runs per total
field, and a window of recent correlation ids; never by the number of lines.

Input: one JSON object per line, the event name under `event_key` ("message" unless the manifest says
otherwise). A platform prefix before the JSON (`2026-11-28T10:00:00+00:00 app[web.1]: {...}`) is ignored:
parsing starts at the first `{`. Unusable lines are counted by reason (SKIP_REASONS), never fatal.

Once per run: an event of a request (a route event) and the scope event inside it can both carry the same
stage sample (one `publish_parallel_ms` in `workflow_timing` and in `web_publish`). Events are joined on
`correlation_id`: a stage field already counted for that id by an event of another name is counted in the
event's own table but not again in the pooled per-field distribution (budgets, charts). The join remembers the
last 2 x JOIN_WINDOW ids that carried stage fields; runs log their events close together.
"""

from __future__ import annotations

import gc
import heapq
import json
from collections import Counter
from contextlib import contextmanager
from operator import itemgetter
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from autoinstrument.report.decode import (
    CORRELATION_KEY,
    DEFAULT_EVENT_KEY,
    MAX_TEXT,
    NO_MESSAGE,
    NO_MS_FIELDS,
    OTHER,
    SKIP_REASONS,
    TOO_LONG,
    decode_line,
    family_of,
    text_of,
)
from autoinstrument.report.read import MAX_LINE_BYTES, line_batches
from autoinstrument.report.records import Group, Report, Run
from autoinstrument.report.stats import FieldStats, ms_value

try:  # orjson is a core dependency of the package; the stdlib path keeps the module usable without it
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads

MAX_EVENTS = 1000
MAX_ROUTES = 1000
MAX_FIELDS_PER_GROUP = 200
MAX_TOTALS = 100  # total fields with a slowest-runs list
CACHE_SIZE = 4096
JOIN_WINDOW = 8192  # ids per generation; a run logs its events within a few hundred lines
#: Fields of a slow run kept beside its stages (strings are truncated to MAX_TEXT).
CONTEXT_KEYS = ("image_name", "filename", "method", "route", "status_code", "success", "archived", "error")

_INT = {int}
NO_MS: Dict[Any, Any] = {}  # the marker for key tuples without any `_ms` key (never filled)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while reading (back as it was after). Why: a batch makes thousands of
    dicts and tuples, none in a cycle, and the collector would walk them again and again (about 3% of the
    instructions, more in cache misses); every object is still freed by its reference count."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Shape:
    """Lines of one event name with one key tuple: which values to take (one C call per line) and where
    they are counted. Rows wait in `rows` until the batch is folded column by column."""

    __slots__ = (
        "group",
        "name",
        "keys",
        "getter",
        "rows",
        "append",
        "ms",
        "total",
        "stages",
        "cid",
        "route",
        "method",
        "status",
        "stamp",
        "context",
        "dropped",
    )

    def __init__(self, group: Group, name: str, keys: Tuple[str, ...]) -> None:
        self.group = group
        self.name = name
        self.keys = keys
        # itemgetter of ONE key returns the value, not a tuple: ask for it twice to keep rows uniform
        self.getter = itemgetter(*keys) if len(keys) > 1 else itemgetter(keys[0], keys[0])
        self.rows: List[Tuple[Any, ...]] = []
        self.append = self.rows.append
        self.ms: List[Tuple[str, int, FieldStats]] = []
        self.total: Optional[int] = None
        self.stages: Tuple[str, ...] = ()
        self.cid = self.route = self.method = self.status = self.stamp = None  # type: Optional[int]
        self.context: List[Tuple[str, int]] = []
        self.dropped = 0


def _all_ints(column: Sequence[Any]) -> bool:
    """Every value a non-negative int (bools excluded): the column can be counted in C as it is.

    Cheap first: a sum that is an int rules out floats and non-numbers (they raise or make it a float), min
    rules out negatives; only a column whose min is 0 or 1 (it may hold a bool) is checked type by type.
    """
    try:
        if type(sum(column)) is not int:
            return False
        low = min(column)
    except TypeError:
        return False
    if low < 0:
        return False
    return low > 1 or set(map(type, column)) == _INT


class _Columns:
    """One batch's rows (the values a shape takes from each line) read column by column, each once, in C."""

    __slots__ = ("keys", "rows", "n", "_cache", "_ints")

    def __init__(self, keys: Tuple[str, ...], rows: List[Tuple[Any, ...]]) -> None:
        self.keys = keys
        self.rows = rows
        self.n = len(rows)
        self._cache: Dict[int, Tuple[Any, ...]] = {}
        self._ints: Dict[int, bool] = {}

    def __getitem__(self, index: int) -> Tuple[Any, ...]:
        column = self._cache.get(index)
        if column is None:
            column = self._cache[index] = tuple(map(itemgetter(index), self.rows))
        return column

    def all_ints(self, index: int) -> bool:
        """`_all_ints` of a column, worked out once per batch."""
        known = self._ints.get(index)
        if known is None:
            known = self._ints[index] = _all_ints(self[index])
        return known


def _count_slowly(stats: FieldStats, column: Sequence[Any]) -> None:
    """A column with floats, bools, negatives or non-numbers: value by value."""
    counts = stats.counts
    for raw in column:
        value = ms_value(raw)
        if value is None:
            stats.invalid += 1
        else:
            counts[value] = counts.get(value, 0) + 1


def _route_stats(group: Group, key: str) -> FieldStats:
    stats = group.fields.get(key)
    if stats is None:
        stats = group.fields[key] = FieldStats()
    return stats


class Aggregator:
    """Feed lines (or binary streams); `report()` gives the result. Holds no line after its batch.

    `totals` maps an event name to its total field (the manifest knows them: scope `total`, route `field`).
    Without an entry, an event's total is `<family>_ms` when present (`web_publish_error` → `web_publish_ms`),
    else its first `*_total_ms` field; events with neither have no slowest-runs list. `stage_order` is the
    manifest's stage fields in run order, `total_order` its scope totals then route fields; `event_key` the
    key holding the event name.

    How it stays fast: per line, orjson parses it and ONE `itemgetter` call takes the values this line's shape
    needs into a row (the rest of the line is freed at once, so the next line's parse reuses memory still in
    the cache); per batch, rows are turned into columns and counted with `Counter.update` (C).
    """

    def __init__(
        self,
        top: int = 10,
        totals: Optional[Mapping[str, str]] = None,
        stage_order: Sequence[str] = (),
        event_key: str = DEFAULT_EVENT_KEY,
        total_order: Sequence[str] = (),
        max_events: int = MAX_EVENTS,
        max_routes: int = MAX_ROUTES,
    ) -> None:
        self.top = max(0, int(top))
        self.totals = dict(totals or {})
        self.stage_order = list(stage_order)
        self.total_order = list(total_order)
        self.event_key = event_key
        self.max_events = max_events
        self.max_routes = max_routes
        self.lines = 0
        self.used = 0
        self.skipped: Dict[str, int] = {}
        self.dropped: Dict[str, int] = {}
        self.events: Dict[str, Group] = {}
        self.routes: Dict[Tuple[str, str, str], Group] = {}
        self.duplicates: Dict[str, Dict[int, int]] = {}
        self._heaps: Dict[str, List[Tuple[int, int, Run]]] = {}
        self._seq = 0
        self._seen_fields: Dict[str, None] = {}  # first-seen order
        self._total_fields: Dict[str, None] = {}
        # key tuple → {event name → shape}; NO_MS for objects without `_ms` keys. Bounded by CACHE_SIZE:
        # past it, shapes live for one batch only (`_spill`).
        self._shapes: Dict[Tuple[str, ...], Dict[Any, _Shape]] = {}
        self._shape_list: List[_Shape] = []
        self._spill: List[_Shape] = []
        self._route_keys: Dict[Tuple[str, Any, Any], Tuple[str, str, str]] = {}
        self._join_new: Dict[Any, Tuple[str, Tuple[str, ...]]] = {}
        self._join_old: Dict[Any, Tuple[str, Tuple[str, ...]]] = {}
        self._carriers: Dict[str, set] = {}  # stage field → the event names that carry it

    # -- input

    def feed(self, line: Union[str, bytes]) -> None:
        """Fold one line in; anything unusable is counted under a skip reason. (One line is one batch: for
        volume, `feed_lines` or `feed_stream`.)"""
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        if len(raw) > MAX_LINE_BYTES:
            self.lines += 1
            self._skip(TOO_LONG)
            return
        self.feed_lines([raw.rstrip(b"\r\n")])

    def feed_stream(self, stream: IO[bytes]) -> None:
        """Read a binary stream in large chunks (see `read.line_batches`)."""
        with gc_paused():
            for lines, too_long in line_batches(stream):
                if too_long:
                    self.lines += too_long
                    self._skip(TOO_LONG, too_long)
                self.feed_lines(lines)

    def _skip(self, reason: str, times: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + times

    # -- the hot path: one parse, one tuple of keys, two dict lookups, one itemgetter call per line

    def feed_lines(self, lines: List[bytes]) -> None:
        """Fold a batch of lines (bytes, a trailing newline allowed, none longer than MAX_LINE_BYTES)."""
        self.lines += len(lines)
        loads = _fast_loads
        shapes = self._shapes
        event_key = self.event_key
        no_ms = 0
        for line in lines:
            # most lines start with their JSON: a byte compare, not a method call (`find` parses its arguments)
            start = 0 if line and line[0] == 123 else line.find(b"{")  # 123: "{"
            obj = None
            if start >= 0:
                try:  # noqa: SIM105 - contextlib.suppress costs a context manager per line here
                    obj = loads(line[start:] if start else line)
                except ValueError:
                    pass
            if type(obj) is not dict:
                obj, reason = decode_line(line.decode("utf-8", "replace"))
                if obj is None:
                    self._skip(reason)  # type: ignore[arg-type]
                    continue
            keys = tuple(obj)
            by_name = shapes.get(keys)
            if by_name is None:
                by_name = self._learn_keys(keys)
            if by_name is NO_MS:
                no_ms += 1
                continue
            name = obj.get(event_key)
            shape = by_name.get(name) if type(name) is str else None
            if shape is None:
                shape = self._learn_shape(by_name, keys, name)
            shape.append(shape.getter(obj))
        if no_ms:
            self._skip(NO_MS_FIELDS, no_ms)
        self._fold()

    # -- learning a shape (once per distinct key tuple and event name)

    def _learn_keys(self, keys: Tuple[str, ...]) -> Dict[Any, _Shape]:
        has_ms = any(k.endswith("_ms") for k in keys)
        by_name: Dict[Any, _Shape] = {} if has_ms else NO_MS
        if len(self._shapes) < CACHE_SIZE and len(keys) <= 64:  # a hostile 50,000-key line is not kept
            self._shapes[keys] = by_name
        return by_name

    def _group(self, table: Dict[Any, Group], key: Any, cap: int, overflow: Any, what: str) -> Group:
        group = table.get(key)
        if group is None:
            if len(table) >= cap:
                self.dropped[what] = self.dropped.get(what, 0) + 1
                key = overflow
                group = table.get(key)
            if group is None:
                group = table[key] = Group()
        return group

    def total_field(self, name: str, ms_keys: Sequence[str]) -> str:
        """The event's total field when the line carries it, else ''."""
        total = self.totals.get(name)
        if total is not None:
            return total if total in ms_keys else ""
        own = family_of(name) + "_ms"
        if own in ms_keys:
            return own
        return next((key for key in ms_keys if key.endswith("_total_ms")), "")

    def _learn_shape(self, by_name: Dict[Any, _Shape], keys: Tuple[str, ...], raw_name: Any) -> _Shape:
        name = raw_name if type(raw_name) is str and raw_name else NO_MESSAGE
        if len(name) > MAX_TEXT or not name.isprintable():
            name = text_of(name)
        group = self.events.get(name) or self._group(self.events, name, self.max_events, OTHER, "events_over_cap")
        ms_keys = [k for k in keys if k.endswith("_ms")]
        total = self.total_field(name, ms_keys)
        wanted = list(ms_keys)
        for extra in (CORRELATION_KEY, "timestamp", "route", "method", "status_code", "status", *CONTEXT_KEYS):
            if extra in keys and extra not in wanted:
                wanted.append(extra)
        shape = _Shape(group, name, tuple(wanted))
        position = {key: i for i, key in enumerate(wanted)}
        for key in ms_keys:
            stats = group.fields.get(key)
            if stats is None:
                if len(group.fields) >= MAX_FIELDS_PER_GROUP:
                    shape.dropped += 1
                    continue
                stats = group.fields[key] = FieldStats()
            shape.ms.append((key, position[key], stats))
            if key not in self._seen_fields and len(self._seen_fields) < CACHE_SIZE:
                self._seen_fields[key] = None
        if total and (total in self._total_fields or len(self._total_fields) < CACHE_SIZE):
            self._total_fields[total] = None
            shape.total = position[total]
        shape.stages = tuple(k for k in ms_keys if k != total)
        for key in shape.stages:
            carriers = self._carriers.get(key)
            if carriers is None and len(self._carriers) < CACHE_SIZE:
                carriers = self._carriers[key] = set()
            if carriers is not None and len(carriers) < 2:  # only "one name or more than one" matters
                carriers.add(name)
        shape.cid = position.get(CORRELATION_KEY)
        shape.stamp = position.get("timestamp")
        shape.route = position.get("route")
        shape.method = position.get("method")
        shape.status = position.get("status_code", position.get("status"))
        shape.context = [(k, position[k]) for k in CONTEXT_KEYS if k in position]
        cached = type(raw_name) is str and len(self._shape_list) < CACHE_SIZE and by_name is self._shapes.get(keys)
        if cached:
            by_name[raw_name] = shape
            self._shape_list.append(shape)
        else:
            self._spill.append(shape)
        return shape

    # -- folding a batch, column by column

    def _fold(self) -> None:
        for shape in self._shape_list:
            if shape.rows:
                self._fold_shape(shape)
        for shape in self._spill:
            self._fold_shape(shape)
        self._spill = []

    def _fold_shape(self, shape: _Shape) -> None:
        rows = shape.rows
        n = len(rows)
        self.used += n
        shape.group.count += n
        if shape.dropped:
            self.dropped["fields_over_cap"] = self.dropped.get("fields_over_cap", 0) + n * shape.dropped
        columns = _Columns(shape.keys, rows)
        for _key, index, stats in shape.ms:
            if columns.all_ints(index):
                stats.counts.update(columns[index])
            else:
                _count_slowly(stats, columns[index])
        if shape.route is not None:
            self._fold_routes(shape, columns)
        if shape.stages and shape.cid is not None:
            self._fold_join(shape, columns)
        if self.top and shape.total is not None:
            self._fold_slowest(shape, rows, columns)
        rows.clear()

    def _route_group(self, name: str, method: Any, route: Any) -> Optional[Group]:
        memo = (name, method, route)
        key = self._route_keys.get(memo)
        if key is None:
            if type(route) is not str or not route:
                return None
            verb = method.upper() if isinstance(method, str) else ""
            path = route
            head, _, rest = route.partition(" ")
            if rest and head.isalpha() and head.isupper():  # "POST /api/images/{filename}/publish"
                verb = verb or head
                path = rest.strip()
            key = (text_of(family_of(name)), text_of(verb), text_of(path))
            if len(self._route_keys) < CACHE_SIZE and len(route) <= MAX_TEXT:
                self._route_keys[memo] = key
        return self._group(self.routes, key, self.max_routes, (OTHER, "", OTHER), "routes_over_cap")

    def _fold_routes(self, shape: _Shape, columns: _Columns) -> None:
        n = columns.n
        routes = columns[shape.route]  # type: ignore[index]
        methods = columns[shape.method] if shape.method is not None else (None,) * n
        # the usual batch: one route and method for the whole shape (found by counting equal strings, which
        # needs no hash of each line's new string); then its columns are counted in C
        route, method = routes[0], methods[0]
        if (
            type(route) is str
            and (method is None or type(method) is str)
            and routes.count(route) == n
            and methods.count(method) == n
        ):
            group = self._route_group(shape.name, method, route)
            if group is not None:
                group.count += n
                for key, index, _stats in shape.ms:
                    own = _route_stats(group, key)
                    if columns.all_ints(index):
                        own.counts.update(columns[index])
                    else:
                        _count_slowly(own, columns[index])
                if shape.status is not None:
                    self._fold_one_status(group, columns[shape.status])
            return
        try:
            pairs = Counter(zip(methods, routes))
        except TypeError:  # a list or an object as route or method: not a route
            routes = tuple(r if type(r) is str else None for r in routes)
            methods = tuple(m if type(m) is str else None for m in methods)
            pairs = Counter(zip(methods, routes))
        for (method, route), times in pairs.items():
            group = self._route_group(shape.name, method, route)
            if group is not None:
                group.count += times
        for key, index, _stats in shape.ms:
            column = columns[index]
            if columns.all_ints(index):
                for (method, route, value), times in Counter(zip(methods, routes, column)).items():
                    group = self._route_group(shape.name, method, route)
                    if group is not None:
                        _route_stats(group, key).add(value, times)
            else:
                for method, route, raw in zip(methods, routes, column):
                    group = self._route_group(shape.name, method, route)
                    if group is not None:
                        stats = _route_stats(group, key)
                        value = ms_value(raw)
                        if value is None:
                            stats.invalid += 1
                        else:
                            stats.add(value)
        self._fold_status(shape, columns, methods, routes)

    def _fold_one_status(self, group: Group, statuses: Sequence[Any]) -> None:
        """The status codes of a batch whose rows all have one route."""
        try:
            tally = Counter(statuses)
        except TypeError:  # a list or an object as status: not a status
            tally = Counter(None if isinstance(s, (dict, list)) else s for s in statuses)
        for status, times in tally.items():
            if status is None or isinstance(status, (dict, list)):
                continue
            code = text_of(status if isinstance(status, str) else str(status))
            if code in group.status or len(group.status) < 100:
                group.status[code] = group.status.get(code, 0) + times

    def _fold_status(self, shape: _Shape, columns: _Columns, methods: Sequence[Any], routes: Sequence[Any]) -> None:
        if shape.status is not None:
            statuses = columns[shape.status]
            try:
                tally = Counter(zip(methods, routes, statuses))
            except TypeError:  # a list or an object as status: not a status
                statuses = tuple(None if isinstance(s, (dict, list)) else s for s in statuses)
                tally = Counter(zip(methods, routes, statuses))
            for (method, route, status), times in tally.items():
                group = self._route_group(shape.name, method, route)
                if group is None or status is None or isinstance(status, (dict, list)):
                    continue
                code = text_of(status if isinstance(status, str) else str(status))
                if code in group.status or len(group.status) < 100:
                    group.status[code] = group.status.get(code, 0) + times

    def _fold_join(self, shape: _Shape, columns: _Columns) -> None:
        """Count a run's stage sample once: remember which event carried which stage fields for each recent
        correlation id; a later event of ANOTHER name with the same id and field is that run's second copy.

        While no other event name carries any of this shape's stage fields, ids are only remembered (in C);
        the comparison runs once a second carrier has been seen."""
        cids = columns[shape.cid]  # type: ignore[index]
        new, old = self._join_new, self._join_old
        if len(new) >= JOIN_WINDOW:
            self._join_old, old = new, new
            self._join_new = new = {}
        entry = (shape.name, shape.stages)
        carriers = self._carriers
        if all(len(carriers.get(key, ())) <= 1 for key in shape.stages):
            try:
                new.update(dict.fromkeys(cids, entry))
                return
            except TypeError:  # an unhashable id (a list, an object): value by value below
                pass
        position = {key: index for key, index, _ in shape.ms}
        for row_index, cid in enumerate(cids):
            if type(cid) is not str or not cid:
                continue  # no id, or not one that can name a run
            before = new.get(cid)
            if before is None:
                before = old.get(cid)
            if before is None or before[0] == shape.name:
                new[cid] = entry
                continue
            added = []
            for key in shape.stages:
                if key in before[1]:
                    value = ms_value(columns[position[key]][row_index]) if key in position else None
                    if value is not None:
                        dup = self.duplicates.get(key)
                        if dup is None:
                            dup = self.duplicates[key] = {}
                        dup[value] = dup.get(value, 0) + 1
                else:
                    added.append(key)
            if added:
                new[cid] = (before[0], tuple(before[1]) + tuple(added))

    def _fold_slowest(self, shape: _Shape, rows: List[Tuple[Any, ...]], columns: _Columns) -> None:
        total_field = shape.keys[shape.total]  # type: ignore[index]
        totals = columns[shape.total]  # type: ignore[index]
        heap = self._heaps.get(total_field)
        if heap is None:
            if len(self._heaps) >= MAX_TOTALS:
                return
            heap = self._heaps[total_field] = []
        values = (
            totals if columns.all_ints(shape.total) else [-1 if ms_value(v) is None else ms_value(v) for v in totals]
        )
        if len(heap) >= self.top and max(values) <= heap[0][0]:
            return  # the common case once the heap is full: nothing in this batch is among the slowest
        floor = heap[0][0] if len(heap) >= self.top else -1
        candidates = [index for index, total in enumerate(values) if total > floor]
        if len(candidates) > self.top:
            candidates = sorted(heapq.nlargest(self.top, candidates, key=values.__getitem__))
        for index in candidates:  # in log order, so on equal totals the earlier run stays
            total = values[index]
            if len(heap) >= self.top and total <= heap[0][0]:
                continue
            run = self._run(shape, rows[index], total_field, total)
            self._seq += 1
            entry = (total, -self._seq, run)
            if len(heap) < self.top:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)

    def _run(self, shape: _Shape, row: Tuple[Any, ...], total_field: str, total: int) -> Run:
        stages: Dict[str, int] = {}
        for key, index, _stats in shape.ms:
            if key != total_field:
                value = ms_value(row[index])
                if value is not None:
                    stages[text_of(key)] = value
        cid = row[shape.cid] if shape.cid is not None else None
        stamp = row[shape.stamp] if shape.stamp is not None else None
        return Run(
            event=shape.name,
            total_field=text_of(total_field),
            total_ms=total,
            correlation_id=text_of(cid) if cid is not None else None,
            timestamp=text_of(stamp) if stamp is not None else None,
            stages=stages,
            context={k: text_of(row[i]) for k, i in shape.context if row[i] is not None},
        )

    # -- result

    def field_order(self) -> Tuple[List[str], List[str]]:
        """(order, totals): totals in first-seen order, then the manifest's stages, then the rest as seen."""
        seen = list(self._seen_fields)
        totals = [name for name in self.total_order if name in self._total_fields]
        totals += [name for name in seen if name in self._total_fields and name not in totals]
        order = list(totals)
        order += [name for name in self.stage_order if name not in order]
        order += [name for name in seen if name not in order]
        return order, totals

    def report(self) -> Report:
        order, totals = self.field_order()
        rank = {name: i for i, name in enumerate(order)}
        slowest = {
            total_field: [entry[2] for entry in sorted(heap, reverse=True)]
            for total_field, heap in sorted(self._heaps.items(), key=lambda item: (rank.get(item[0], 1 << 30), item[0]))
        }
        for runs in slowest.values():
            for run in runs:
                run.stages = dict(sorted(run.stages.items(), key=lambda kv: (rank.get(kv[0], 1 << 30), kv[0])))
        return Report(
            lines=self.lines,
            events_used=self.used,
            skipped={reason: self.skipped[reason] for reason in SKIP_REASONS if self.skipped.get(reason)},
            events=self.events,
            routes=self.routes,
            slowest=slowest,
            dropped=dict(self.dropped),
            top=self.top,
            order=order,
            totals=totals,
            duplicates={k: dict(v) for k, v in self.duplicates.items()},
            event_key=self.event_key,
        )


def aggregate(
    lines: Iterable[Union[str, bytes]], top: int = 10, totals: Optional[Mapping[str, str]] = None, **options: Any
) -> Report:
    """Fold an iterable of log lines (str, or bytes decoded as UTF-8 with replacement) into a Report."""
    agg = Aggregator(top=top, totals=totals, **options)
    batch: List[bytes] = []
    for line in lines:
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        if len(raw) > MAX_LINE_BYTES:
            agg.lines += 1
            agg._skip(TOO_LONG)
            continue
        batch.append(raw.rstrip(b"\r\n"))
        if len(batch) >= 4096:
            agg.feed_lines(batch)
            batch = []
    agg.feed_lines(batch)
    return agg.report()


def aggregate_streams(
    streams: Iterable[IO[bytes]], top: int = 10, totals: Optional[Mapping[str, str]] = None, **options: Any
) -> Report:
    """Fold binary streams (files opened 'rb', gzip files, stdin.buffer) into one Report."""
    agg = Aggregator(top=top, totals=totals, **options)
    for stream in streams:
        agg.feed_stream(stream)
    return agg.report()


__all__ = ["Aggregator", "aggregate", "aggregate_streams", "gc_paused"]
