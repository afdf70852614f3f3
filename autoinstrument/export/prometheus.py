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
from typing import Any, Dict, Iterable, Optional, Tuple

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


class PrometheusExporter:
    """The metrics side of the hub: `observe` one event's `_ms` fields, `exposition` for `/metrics`."""

    def __init__(self, manifest: Manifest):
        self.extra = manifest.exporters.prometheus.labels
        labels = BASE_LABELS + self.extra
        self.histograms = {
            field: _histogram(field, buckets_for(manifest, field), labels) for field in manifest.fields()
        }
        #: (field, label values) -> the labelled child (`labels()` costs a lock and a tuple per call)
        self.children: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
        self.registry = REGISTRY

    def observe(self, event: str, route: str, status_class: str, payload: Dict[str, Any]) -> None:
        values: Tuple[str, ...] = (event, route, status_class)
        if self.extra:
            values += tuple(str(payload.get(name, "")) for name in self.extra)
        children = self.children
        for field, value in payload.items():
            if field[-3:] != "_ms":
                continue
            child = children.get((field, values))
            if child is None:
                histogram = self.histograms.get(field)
                if histogram is None or not isinstance(value, (int, float)):
                    continue
                child = children[(field, values)] = histogram.labels(*values)
            child.observe(value / 1000.0)

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

    def families(self) -> Iterable[Any]:
        return self.registry.collect()


def status_class(status: Optional[int]) -> str:
    return f"{(status or 500) // 100}xx"
