"""A CLI run's histograms in node_exporter's textfile format, so a cron job's timings reach Prometheus too.

One file per app (`autoinstrument-<log.logger>.prom` in `textfile_dir`), CUMULATIVE across runs: each write
reads the file, adds what this process observed since its own last write, and replaces the file atomically
(prometheus_client's `write_to_textfile`: a temp file in the same folder, then `os.replace`; node_exporter
never reads half a file). So the buckets and counts only grow, as Prometheus expects of a histogram, and
`rate(...)` / `histogram_quantile` over the textfile series count every run (a file holding only the last run
would show two equal runs as no change at all). Concurrent runs take turns on a lock file beside it.
Written when the outermost scope of a process exits.
"""

from __future__ import annotations

import contextlib
import os
from re import compile as regex
from typing import Any, Dict, Iterable, List, Tuple

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock (one run at a time there)
    fcntl = None  # type: ignore[assignment]

_UNSAFE = regex(r"[^A-Za-z0-9._-]+")
#: (metric family, sample name, labels) -> value
Samples = Dict[Tuple[str, str, Tuple[Tuple[str, str], ...]], float]


def textfile_path(folder: str, logger: str) -> str:
    return os.path.join(folder, f"autoinstrument-{_UNSAFE.sub('_', logger) or 'app'}.prom")


def histogram_samples(families: Iterable[Any]) -> Samples:
    """The bucket, count and sum samples of every histogram family (no `_created`: it is per process)."""
    out: Samples = {}
    for family in families:
        if family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_count", "_sum")):
                out[(family.name, sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


class _Fixed:
    """A collector of fixed samples (what the merged file holds)."""

    def __init__(self, samples: Samples, docs: Dict[str, str]):
        self.samples = samples
        self.docs = docs

    def collect(self) -> List[Metric]:
        metrics: Dict[str, Metric] = {}
        for (family, name, labels), value in sorted(self.samples.items()):
            metric = metrics.get(family)
            if metric is None:
                metric = metrics[family] = Metric(family, self.docs.get(family, family), "histogram")
            metric.add_sample(name, dict(labels), value)
        return list(metrics.values())


class Textfile:
    """One process's writer: remembers what it already added to the file, adds only the rest."""

    def __init__(self, folder: str, logger: str):
        self.folder = folder
        self.path = textfile_path(folder, logger)
        self.lock_path = os.path.join(folder, f".{os.path.basename(self.path)}.lock")
        self.written: Samples = {}

    def write(self, registry: Any) -> str:
        os.makedirs(self.folder, exist_ok=True)
        families = list(registry.collect())
        current = histogram_samples(families)
        docs = {family.name: family.documentation for family in families}
        with open(self.lock_path, "a", encoding="utf-8") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            merged: Samples = {}
            with contextlib.suppress(FileNotFoundError), open(self.path, encoding="utf-8") as handle:
                merged = histogram_samples(text_string_to_metric_families(handle.read()))
            for key, value in current.items():
                added = value - self.written.get(key, 0.0)
                if added:
                    merged[key] = merged.get(key, 0.0) + added
                else:
                    merged.setdefault(key, 0.0)
            registry_out = CollectorRegistry(auto_describe=False)
            registry_out.register(_Fixed(merged, docs))  # type: ignore[arg-type]
            write_to_textfile(self.path, registry_out)
        self.written = current
        return self.path
