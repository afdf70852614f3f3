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

import os
from typing import Any, Callable, Dict, Optional, Tuple

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


_NEW: Any = object()  # a slot's marker for a field not seen yet under a key


class PrometheusExporter:
    """The metrics side of the hub: `observe` one event's `_ms` fields, `exposition` for `/metrics`.

    Each value goes straight into prometheus_client's histogram with the labelled child's own `observe` (so
    a scrape, the textfile and the multiprocess mmap files see it at once, and nothing waits in a buffer of
    ours). What is cached is the lookup: the bound `child.observe` of each (event, route, status, extra
    labels) and field, resolved once with `histogram.labels(...)`, so a request costs one dict lookup for
    its key, then one per key of its event, plus prometheus_client's `observe` per `_ms` field.
    """

    def __init__(self, manifest: Manifest):
        self.extra = manifest.exporters.prometheus.labels
        labels = BASE_LABELS + self.extra
        self.histograms = {
            field: _histogram(field, buckets_for(manifest, field), labels) for field in manifest.fields()
        }
        #: (event, route, status code or "ok"/"error", extra label values...) -> field -> the child's bound
        #: `observe` (None for a key of the event that is no histogram's: correlation_id, method, ...)
        self.slots: Dict[Tuple[Any, ...], Dict[str, Optional[Callable[[float], None]]]] = {}
        self.registry = REGISTRY

    def observe(self, event: str, route: str, status: Any, payload: Dict[str, Any]) -> None:
        """Observe each `_ms` value of one event, in seconds. `status`: a route's status code, or "ok" /
        "error" for a scope."""
        key = (event, route, status)
        if self.extra:
            key += tuple(str(payload.get(name, "")) for name in self.extra)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots.setdefault(key, {})
        for field, value in payload.items():
            observe = slot.get(field, _NEW)
            if observe is None:  # most keys: no histogram's
                continue
            if observe is _NEW:
                observe = self._child(key, field, value)
                if observe is None:
                    if field not in self.histograms:  # never one: not looked at again
                        slot[field] = None
                    continue
                slot[field] = observe
            observe(value / 1000.0)

    def _child(self, key: Tuple[Any, ...], field: str, value: Any) -> Optional[Callable[[float], None]]:
        """The bound `observe` of the series of `field` under `key` (None for a field or value that is no
        histogram's)."""
        histogram = self.histograms.get(field)
        if histogram is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        status = key[2]
        values = (key[0], key[1], status_class(status) if isinstance(status, int) else str(status)) + key[3:]
        return histogram.labels(*values).observe

    def exposition(self, accept: str = "") -> Tuple[bytes, str]:
        """Every worker's samples (multiprocess mode) or this process's, in the format the scraper's Accept
        header asks for (OpenMetrics for Prometheus, else the text format)."""
        registry: Any = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type


def status_class(status: Optional[int]) -> str:
    return f"{(status or 500) // 100}xx"
