"""The exporters floor: the manifest's `exporters:` section sends the same timings to OpenTelemetry (spans) and
Prometheus (histograms), next to the JSON events, which stay as they are.

Why a floor of its own, above `manifest` and beside `runtime`/`web`: a process whose manifest leaves the
exporters off never imports any of it (nor opentelemetry, nor prometheus_client); the runtime and the web
middleware only hold an `export` attribute that stays None and is read once per scope and request. The top
floor (`assembly.py`) builds the hub and hands it to the install, as it does the web part.

- `clock`: perf_counter readings as epoch nanoseconds (span times from the very readings the `_ms` come from);
- `hub`: the one object the hooks call (scope opened/closed, request started/ended, `/metrics`);
- `otel`: spans through the OpenTelemetry API only; `prometheus`: histograms, multiprocess mode, `/metrics`;
- `textfile`: a CLI run's node_exporter textfile, written atomically.
"""

from __future__ import annotations

from typing import Any, Optional

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from autoinstrument.manifest import Manifest


def build(manifest: Manifest, fault: Any) -> Optional[Any]:
    """The hub for `manifest` (None when every exporter is off: then nothing of this floor is imported but
    this package). `fault(kind, detail, **context)` reports an exporter that cannot start (missing extra)."""
    if not manifest.exporters.enabled:
        return None
    from autoinstrument.export.hub import Hub

    return Hub.for_manifest(manifest, fault)
