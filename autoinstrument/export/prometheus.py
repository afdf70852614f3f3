"""One Prometheus histogram per `_ms` field (the `prometheus` extra), exposed at `/metrics` by the middleware.

- name: `autoinstrument_<field without _ms>_seconds` (Prometheus' base unit; the value is the event's `_ms`
  field / 1000, so `report` and PromQL read the very same numbers);
- labels: `event`, `route` (the manifest's template, "" for a scope), `status_class` (`2xx`..`5xx` for a
  route, `ok`/`error` for a scope), plus the manifest's `labels:` (`result` keys; validation refuses a path
  parameter or an id: one series per request would never be forgotten by Prometheus);
- buckets: a default ladder plus every budget threshold of the field (so `histogram_quantile` is exact at
  the budget), or the manifest's `buckets:`.

Several workers (`uvicorn --workers N`): prometheus_client's multiprocess mode. Set PROMETHEUS_MULTIPROC_DIR
to an empty folder before the server starts; each worker then writes its samples to mmap files there and
`/metrics`, whichever worker answers, sums them all (`MultiProcessCollector`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from bisect import bisect_left
from typing import Any, Dict, List, Optional, Tuple

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder

from autoinstrument.manifest import Manifest

#: ms; a field's budgets are added to it
DEFAULT_LADDER_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
BASE_LABELS = ("event", "route", "status_class")

#: The process's own registry (not prometheus_client's global one: an app's own metrics and ours never clash,
#: and a re-install with other buckets replaces only ours).
REGISTRY = CollectorRegistry(auto_describe=True)
_histograms: Dict[str, Tuple[Tuple[float, ...], Tuple[str, ...], Histogram]] = {}


def metric_name(field: str) -> str:
    """`web_order_ms` -> `autoinstrument_web_order_seconds`."""
    return f"autoinstrument_{field[:-3]}_seconds"


def buckets_for(manifest: Manifest, field: str) -> Tuple[float, ...]:
    """The field's bucket bounds in seconds: the manifest's `buckets:`, else the ladder plus its budgets."""
    spec = manifest.exporters.prometheus
    bounds = set(spec.buckets or DEFAULT_LADDER_MS)
    if not spec.buckets:
        for budget in manifest.budgets:
            if budget.field == field:
                bounds.update(budget.limits.values())
    return tuple(ms / 1000.0 for ms in sorted(bounds))


def _histogram(field: str, buckets: Tuple[float, ...], labels: Tuple[str, ...]) -> Histogram:
    """The histogram of `field`, made once per process (again only when its buckets or labels change)."""
    known = _histograms.get(field)
    if known is not None and known[0] == buckets and known[1] == labels:
        return known[2]
    if known is not None:
        REGISTRY.unregister(known[2])
    histogram = Histogram(
        metric_name(field), f"autoinstrument: the {field} field of the events, in seconds",
        labels, registry=REGISTRY, buckets=buckets,
    )
    _histograms[field] = (buckets, labels, histogram)
    return histogram


_NEW: Any = []  # a slot's marker for a key not seen yet (never appended to)


class _Series:
    """One labelled histogram child and the samples observed since they were last moved into it."""

    __slots__ = ("child", "bounds", "pending")

    def __init__(self, child: Any, bounds: Tuple[float, ...]):
        self.child = child
        self.bounds = bounds
        self.pending: List[float] = []


class PrometheusExporter:
    """The metrics side of the hub: `observe` one event's `_ms` fields, `exposition` for `/metrics`.

    The request path only appends each value to its series' list (one C call, atomic under the GIL, like the
    stages' accumulator); `sync()` moves what was appended into the prometheus_client histograms, counted per
    bucket with C-level `bisect`, once a second on a daemon thread, before every scrape or textfile write, and
    at exit. In multiprocess mode that is what reaches the worker's mmap files: a scrape answered by another
    worker sees this one's samples at most `SYNC_SECONDS` late.
    """

    def __init__(self, manifest: Manifest):
        self.extra = manifest.exporters.prometheus.labels
        labels = BASE_LABELS + self.extra
        self.bounds = {field: buckets_for(manifest, field) for field in manifest.fields()}
        self.histograms = {field: _histogram(field, self.bounds[field], labels) for field in manifest.fields()}
        #: (field, label values) -> its series
        self.series: Dict[Tuple[str, Tuple[str, ...]], _Series] = {}
        #: (event, route, status code or "ok"/"error", extra label values...) -> field -> the series' pending list
        self.slots: Dict[Tuple[Any, ...], Dict[str, List[float]]] = {}
        self.registry = REGISTRY
        self.lock = threading.Lock()
        _syncing(self)

    def observe(self, event: str, route: str, status: Any, payload: Dict[str, Any]) -> None:
        """Append each `_ms` value of one event to its series. `status`: a route's status code, or "ok" /
        "error" for a scope. The per-request cost is one small-tuple dict lookup, then one dict lookup and one
        list append per key of the event."""
        key = (event, route, status)
        if self.extra:
            key += tuple(str(payload.get(name, "")) for name in self.extra)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots.setdefault(key, {})
        for field, value in payload.items():
            pending = slot.get(field, _NEW)
            if pending is None:  # a key that is no histogram's (correlation_id, method, ...): known
                continue
            if pending is _NEW:
                pending = self._series(key, field, value)
                if pending is None:
                    if field not in self.histograms:  # never one: not looked at again
                        slot[field] = None
                    continue
                slot[field] = pending
            pending.append(value)

    def _series(self, key: Tuple[Any, ...], field: str, value: Any) -> Optional[List[float]]:
        """The pending list of a new series (None for a value or field that is no histogram's)."""
        histogram = self.histograms.get(field)
        if histogram is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        status = key[2]
        values = (key[0], key[1], status_class(status) if isinstance(status, int) else str(status)) + key[3:]
        with self.lock:
            found = self.series.get((field, values))
            if found is None:
                found = self.series[(field, values)] = _Series(histogram.labels(*values), self.bounds[field])
        return found.pending

    def sync(self) -> None:
        """Move the appended samples into the histograms (per bucket, one increment per distinct bucket)."""
        with self.lock:
            for series in list(self.series.values()):
                pending = series.pending
                n = len(pending)
                if not n:
                    continue
                chunk = pending[:n]
                del pending[:n]  # appends racing with this land after index n: kept for the next sync
                bounds = series.bounds
                counts = [0] * (len(bounds) + 1)
                for ms in chunk:
                    counts[bisect_left(bounds, ms / 1000.0)] += 1
                child = series.child
                child._sum.inc(sum(chunk) / 1000.0)  # prometheus_client's Histogram child: _sum, _buckets
                buckets = child._buckets
                for index, count in enumerate(counts):
                    if count:
                        buckets[index].inc(count)

    def exposition(self, accept: str = "") -> Tuple[bytes, str]:
        """Every worker's samples (multiprocess mode) or this process's, in the format the scraper's Accept
        header asks for (OpenMetrics for Prometheus, else the text format)."""
        self.sync()
        registry: Any = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type


SYNC_SECONDS = 1.0
#: every exporter of this process (an uninstalled one drops out when it is collected)
_exporters: weakref.WeakSet[PrometheusExporter] = weakref.WeakSet()
_thread_pid = 0


def _sync_all() -> None:
    for exporter in list(_exporters):
        with contextlib.suppress(Exception):  # retried at the next tick, at the scrape and at exit
            exporter.sync()


def _sync_loop() -> None:
    while True:
        time.sleep(SYNC_SECONDS)
        _sync_all()


def _syncing(exporter: PrometheusExporter) -> None:
    """Register `exporter` with the process's one sync thread (started on first use, again in a forked child:
    a worker of `gunicorn --preload` syncs its own samples) and the exit hook."""
    global _thread_pid
    _exporters.add(exporter)
    if _thread_pid != os.getpid():
        if _thread_pid == 0:
            atexit.register(_sync_all)
        _thread_pid = os.getpid()
        threading.Thread(target=_sync_loop, name="autoinstrument-prometheus-sync", daemon=True).start()


def status_class(status: Optional[int]) -> str:
    return f"{(status or 500) // 100}xx"
