"""The scope: one accumulator per open scope, found through ONE ContextVar, plus the app's correlation id.

Why it is built this way (work in a task or a thread must reach the scope that started it, and nothing has
to flow back out of a context):
- `CURRENT` is set ONCE when a scope opens (and set back when it closes, in the same frame). It holds the
  scope's `Accumulator`. `asyncio.gather` tasks and `asyncio.to_thread` work copy the context, so they find
  the SAME accumulator object and add into it; nothing has to flow "back out".
- Adding is `lists[field].append(seconds)`: C calls, atomic under the GIL (and per-object locked on
  free-threaded builds), so threads can add at once without a lock on the hot path. The lock is taken only to
  fold samples into totals (C-level sum, every `FOLD_AT` samples of a field, and when the scope closes).
- Re-entry: each field has its own ContextVar holding a marker `[accumulator, running]`. A stage sets a fresh
  marker when it starts and flips `running` to False when it ends (a list store, not a second `set`, never
  `reset(token)`, so it cannot fail in another Context). A nested call of the same field in the same context
  (super(), recursion, two shared targets) finds a running marker of its scope and is not counted again. Tasks
  created inside a running stage inherit the marker: they are nested while it runs. Generators set and clear
  the marker around each step only, never across a `yield`.
- Nested scopes: a stage counts in the innermost scope. A scope that is `inclusive` (a web request) ALSO
  receives the stage fields of every scope nested in it: when an inner scope closes, its fields are added to
  its `collector`, the nearest enclosing inclusive scope (`add_to_parent`). So `web_publish` carries the
  stages of the workflow it ran, while `workflow_timing` stays exactly as it was, and a callable scope
  nested in another callable scope still reports only its own stages (nothing is counted twice).
- Outside any scope `CURRENT.get()` is None and a stage costs that one read.
- Each call's own interval, for OpenTelemetry: when the scope's span is exported, the exporter sets `records`
  to a list and `limit` to 0, so every stage call takes the rare branch (`overflow`), which appends
  `(field, start, end, calls)`; a scope without an exporter keeps `limit` at FOLD_AT and pays nothing more.
- A stage that finishes after its scope closed finds `closed` set and is reported as
  `autoinstrument_late_stage` (once per scope and field), not silently dropped. (A thread finishing in the
  same microsecond as the close may be both counted and reported; it is never lost.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from contextvars import ContextVar
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from autoinstrument.runtime.ids import new_request_id

CURRENT: ContextVar[Optional[Accumulator]] = ContextVar("autoinstrument_scope", default=None)

FOLD_AT = 8192
#: per scope, the stage calls kept for OpenTelemetry (a scope with more gets the first ones only, and says so)
RECORDS_MAX = 1000
IDLE = (None, False)  # a field's marker when no call of it runs in this context

_markers: Dict[str, ContextVar] = {}
_markers_lock = threading.Lock()


def marker_var(field: str) -> ContextVar:
    """The re-entry ContextVar of `field` (one per field, shared by every target mapped to it)."""
    with _markers_lock:
        var = _markers.get(field)
        if var is None:
            var = _markers[field] = ContextVar(f"autoinstrument_active_{field}", default=IDLE)
        return var


def to_ms(seconds: float) -> int:
    """Integer milliseconds, rounded half up, never negative (plain arithmetic: it runs per field per event)."""
    return int(seconds * 1000.0 + 0.5) if seconds > 0.0 else 0


class _LazyLists(dict):
    """Stage lists made on a field's first sample (a scope that cannot know its fields up front, such as a
    web request, would otherwise pay for an exception and the locked `add` at every first sample)."""

    def __missing__(self, field: str) -> List[float]:
        return self.setdefault(field, [])  # atomic: two threads racing get the same list


class Accumulator:
    """Per-scope durations. Shared by every task and thread of one scope.

    Hot path (the wrappers, inline): `lists[field].append(seconds)`, lock-free, into a plain dict made at
    scope open with one list per stage field of the manifest (or, given no fields, lists made on first use);
    then one compare `len(list) > limit`, whose rare branch (`overflow`) folds, or reports a late stage once
    `close()` has set `limit` to -1. `fold()` moves samples into `totals` (field -> [seconds, calls]) with
    C-level `sum`/`len` under the lock. Generator steps and fields missing from a pre-allocated dict
    use `add()`, which updates `totals` under the lock (`calls=0` for a later step of the same
    call).
    """

    __slots__ = (
        "lock",
        "lists",
        "totals",
        "limit",
        "closed",
        "late",
        "owner",
        "correlation_id",
        "inclusive",
        "collector",
        "request",
        "records",
    )

    def __init__(
        self,
        owner: Any = None,
        correlation_id: Optional[str] = None,
        fields: Iterable[str] = (),
        parent: Optional[Accumulator] = None,
        inclusive: bool = False,
    ):
        self.lock = threading.Lock()
        self.lists: Dict[str, List[float]] = {name: [] for name in fields} if fields else _LazyLists()
        self.totals: Dict[str, List[float]] = {}
        self.limit = FOLD_AT
        self.closed = False
        self.late: Optional[Dict[str, int]] = None  # field -> late samples, made on the first one
        self.owner = owner
        self.correlation_id = correlation_id
        self.inclusive = inclusive
        #: where this scope's fields also go when it closes: the nearest enclosing inclusive scope, if any
        self.collector: Optional[Accumulator] = None
        #: the mapped web request this scope runs in (middleware._Request), if any: the log gate's one check
        self.request: Any = None
        #: (field, start, end, calls) of each stage call, when an exporter draws them (export/otel.py); else None
        self.records: Optional[List[Tuple[str, float, float, int]]] = None
        if parent is not None:
            self.collector = parent if parent.inclusive else parent.collector
            self.request = parent.request

    #: how many stage calls `records` keeps (a class attribute: the exporter reads it without importing this floor)
    records_max = RECORDS_MAX

    #: True for an accumulator closed without taking the lock (a web request, middleware.py): it sets `closed`
    #: first, then reads; so an `add` or `fold` that sees `closed` set only after its own write reports the
    #: sample late (it may have been counted too: never lost).
    unlocked_close = False

    def add(self, field: str, seconds: float, calls: int = 1, start: Optional[float] = None) -> None:
        """`start`: the perf_counter reading the call (or generator step) started at; None for totals moved
        from a nested scope (its calls were recorded there)."""
        with self.lock:
            closed = self.closed
            if not closed:
                slot = self.totals.get(field)
                if slot is None:
                    self.totals[field] = [seconds, calls]
                else:
                    slot[0] += seconds
                    slot[1] += calls
                records = self.records
                if records is not None and start is not None and len(records) < self.records_max:
                    records.append((field, start, start + seconds, calls))
        if closed or (self.unlocked_close and self.closed):
            self.report_late(field, seconds)

    def overflow(self, field: str, seconds: float, start: float = 0.0) -> None:
        """The rare branch of the hot path: the list is long (fold it), the scope has closed (late), or the
        scope records each call for OpenTelemetry (`limit` 0: append the call's interval)."""
        if self.closed:
            self.report_late(field, seconds)
            return
        records = self.records
        if records is not None:
            if len(records) < self.records_max:
                records.append((field, start, start + seconds, 1))  # a list append: atomic under the GIL
            if len(self.lists.get(field, ())) <= FOLD_AT:
                return
        self.fold()

    def fold(self) -> None:
        """Move the samples present now into totals. Appends racing with this land after index n: kept."""
        with self.lock:
            moved = self._fold_locked()
        if self.unlocked_close and self.closed:  # closed meanwhile: what moved may have been missed
            for field, seconds in moved.items():
                self.report_late(field, seconds)

    def _fold_locked(self) -> Dict[str, float]:
        totals = self.totals
        moved: Dict[str, float] = {}
        for field, samples in list(self.lists.items()):
            n = len(samples)
            if not n:
                continue
            chunk = samples[:n]
            del samples[:n]
            seconds = moved[field] = sum(chunk)
            slot = totals.get(field)
            if slot is None:
                totals[field] = [seconds, n]
            else:
                slot[0] += seconds
                slot[1] += n
        return moved

    def close(self) -> Dict[str, Tuple[float, int]]:
        """Mark closed (later samples are late) and return field -> (seconds, calls)."""
        with self.lock:
            self.closed = True
            self.limit = -1
            if self.lists:
                self._fold_locked()
            result: Dict[str, Tuple[float, int]] = {}
            for name, slot in self.totals.items():  # a loop, not a comprehension: no extra frame (< 3.12)
                result[name] = (slot[0], int(slot[1]))
            return result

    def report_late(self, field: str, seconds: float) -> None:
        """Called by a stage that ended after close(): report once per field (never raises)."""
        try:
            with self.lock:
                late = self.late
                if late is None:
                    late = self.late = {}
                first = field not in late
                late[field] = late.get(field, 0) + 1
            if first and self.owner is not None:
                self.owner.late(self, field, seconds)
        except Exception:  # pragma: no cover - owner.late isolates its own faults
            pass


def add_to_parent(collector: Accumulator, fields: Dict[str, Tuple[float, int]]) -> None:
    """A closed inner scope's stage fields also count in its collector (its own total does not).

    A collector that has closed already reports them as late, like any late stage.
    """
    for name, (seconds, calls) in fields.items():
        collector.add(name, seconds, calls)


class ScopeRuntime:
    """Opens and closes one kind of scope (one manifest `scopes:` entry) and emits its event.

    `open()` and `close()` never raise: any fault is reported through `fault(kind, detail)` and the app's call
    goes on untouched.
    """

    #: the exporters' hub (export/hub.py) when the manifest turns one on; None otherwise (one read per open/close)
    export: Any = None

    def __init__(
        self,
        spec: Any,
        emit: Callable[[str, Dict[str, Any]], None],
        fault: Callable[..., None],
        correlation: Callable[[], Optional[ContextVar]],
        on_open: Optional[Callable[[], None]] = None,
        fields: Iterable[str] = (),
    ):
        self.fields = tuple(fields)
        self.spec = spec
        self.emit = emit
        self.fault = fault
        self.correlation = correlation
        self.on_open = on_open

    def open(self) -> Optional[tuple]:
        try:
            if self.on_open is not None:
                self.on_open()
            var = self.correlation()
            cid = previous = None
            bound = False
            if var is not None:
                previous = var.get(None)
                cid = previous
                if not cid:
                    cid = new_request_id()  # a UUID4 (ids.py: no `uuid` import at start-up)
                    var.set(cid)
                    bound = True
            parent = CURRENT.get()
            acc = Accumulator(self, cid, self.fields, parent)
            CURRENT.set(acc)
            start = time.perf_counter()
            export = self.export
            handle = None if export is None else export.scope_opened(self.spec, start, acc)  # never raises
            return (parent, acc, var, bound, previous, start, handle)
        except Exception as exc:  # our fault, never the app's
            self.fault("scope_open_failed", f"{type(exc).__name__}: {exc}", target=self.spec.target.text)
            return None

    def close(self, state: Optional[tuple], result: Any, exc: Optional[BaseException]) -> None:
        if state is None:
            return
        end = time.perf_counter()
        parent, acc, var, bound, previous, start, handle = state
        fields: Dict[str, Tuple[float, int]] = {}
        name = payload = None
        try:
            CURRENT.set(parent)
            fields = acc.close()
            if acc.collector is not None:
                add_to_parent(acc.collector, fields)
            name, payload = self.event(acc.correlation_id, end - start, fields, result, exc)
            self.emit(name, payload)
        except Exception as err:
            self.fault("scope_close_failed", f"{type(err).__name__}: {err}", target=self.spec.target.text)
        finally:
            if self.export is not None:  # never raises (export/hub.py)
                self.export.scope_closed(handle, parent is None, start, end, fields, name, payload, exc)
            if bound:
                with contextlib.suppress(Exception):
                    var.set(previous)

    def event(
        self,
        correlation_id: Optional[str],
        seconds: float,
        fields: Dict[str, Tuple[float, int]],
        result: Any,
        exc: Optional[BaseException],
    ) -> Tuple[str, Dict[str, Any]]:
        """The summary event: correlation_id, result attributes, total, every stage field that ran."""
        spec = self.spec
        payload: Dict[str, Any] = {"correlation_id": correlation_id}
        if exc is None:
            for attr in spec.result:
                try:
                    payload[attr] = getattr(result, attr)
                except Exception:
                    continue
            if spec.result_correlation:
                try:
                    value = getattr(result, spec.result_correlation, None)
                except Exception:
                    value = None
                if isinstance(value, str) and value:
                    payload["correlation_id"] = value
        else:
            # What the app says about a failed call on the exception itself (e.g. the item it was working on)
            # fills the same `result` keys; unset ones stay out.
            for attr in spec.result:
                value = getattr(exc, attr, None)
                if value is not None and isinstance(value, (str, int, float, bool)):
                    payload[attr] = value
            payload["success"] = False
            payload["error_type"] = type(exc).__name__
        payload[spec.total] = to_ms(seconds)
        for name, (secs, _calls) in fields.items():
            payload[name] = to_ms(secs)
        if fields:
            payload["stage_calls"] = {name: calls for name, (_secs, calls) in fields.items()}
        name = spec.event if exc is None else (spec.error_event or spec.event)
        return name, payload

    def late(self, acc: Accumulator, field: str, seconds: float) -> None:
        """A stage ended after this scope emitted its event: say so once per scope and field."""
        try:
            self.emit(
                "autoinstrument_late_stage",
                {
                    "correlation_id": acc.correlation_id,
                    "scope_event": self.spec.event,
                    "field": field,
                    field: to_ms(seconds),
                },
            )
        except Exception as exc:
            self.fault("late_report_failed", f"{type(exc).__name__}: {exc}", target=self.spec.target.text)
