"""The hub: the one object the runtime's scopes and the web middleware call when exporters are on.

Every method here is called from a hook that must never change the app's behaviour: a fault is reported once
(`autoinstrument_fault`, `fault: exporter_...`) and swallowed. A missing extra is reported at install, with
the manifest line, and that exporter stays off (`autoinstrument check` says so before start-up).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Optional, Tuple

from autoinstrument.manifest import Manifest

METRICS_PATH = "/metrics"


class Hub:
    """Scope and request hooks fanned out to the enabled exporters."""

    def __init__(self, manifest: Manifest, fault: Callable[..., None], otel: Any = None, prometheus: Any = None):
        self.fault = fault
        self.otel = otel
        self.prometheus = prometheus
        spec = manifest.exporters.prometheus
        self.textfile_dir = spec.textfile_dir if prometheus is not None else None
        #: the per-request call, bound once
        self.observe = prometheus.observe if prometheus is not None else None
        self.logger = manifest.log.logger
        self.textfile: Any = None  # export.textfile.Textfile, made at the first outermost scope exit

    @classmethod
    def for_manifest(cls, manifest: Manifest, fault: Callable[..., None]) -> Optional[Hub]:
        spec = manifest.exporters
        otel = prometheus = None
        if spec.opentelemetry.enabled:
            try:
                from autoinstrument.export.otel import OpenTelemetryExporter

                otel = OpenTelemetryExporter()
            except ImportError as exc:
                fault("exporter_unavailable", f"{exc}: pip install opentelemetry-api (the `otel` extra)",
                      target="exporters.opentelemetry", line=spec.opentelemetry.line, manifest=manifest.path)
        if spec.prometheus.enabled:
            try:
                from autoinstrument.export.prometheus import PrometheusExporter

                prometheus = PrometheusExporter(manifest)
            except ImportError as exc:
                fault("exporter_unavailable", f"{exc}: pip install prometheus-client (the `prometheus` extra)",
                      target="exporters.prometheus", line=spec.prometheus.line, manifest=manifest.path)
        if otel is None and prometheus is None:
            return None
        return cls(manifest, fault, otel, prometheus)

    def _failed(self, kind: str, exc: BaseException) -> None:
        with contextlib.suppress(Exception):  # the emitter isolates its own faults; belt and braces
            self.fault(f"exporter_{kind}", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------ scopes

    def scope_opened(self, spec: Any, start: float, acc: Any) -> Any:
        """At a scope's start reading: its span, current while it runs, and the scope's accumulator set to
        record each stage call (None without OpenTelemetry)."""
        if self.otel is None:
            return None
        try:
            return self.otel.scope_opened(spec.event, start, acc)
        except Exception as exc:
            self._failed("scope_open_failed", exc)
            return None

    def scope_closed(
        self,
        handle: Any,
        outermost: bool,
        start: float,
        end: float,
        fields: Dict[str, Tuple[float, int]],
        name: Optional[str],
        payload: Optional[Dict[str, Any]],
        exc: Optional[BaseException],
    ) -> None:
        """After the scope's event was emitted (`payload` None if building it failed)."""
        if handle is not None:
            try:
                self.otel.scope_closed(handle, end, payload or {}, exc)
            except Exception as err:
                self._failed("scope_close_failed", err)
        if self.prometheus is None or payload is None or name is None:
            return
        try:
            self.prometheus.observe(name, "", "ok" if exc is None else "error", payload)
            if outermost and self.textfile_dir:
                if self.textfile is None:
                    from autoinstrument.export.textfile import Textfile

                    self.textfile = Textfile(self.textfile_dir, self.logger)
                self.textfile.write(self.prometheus.registry)
        except Exception as err:
            self._failed("metrics_failed", err)

    # ------------------------------------------------------------------------------------------ requests

    def request_started(
        self, scope: Dict[str, Any], route: Any, start: float, correlation_id: str, acc: Any
    ) -> Any:
        """At a mapped request's start reading: its span, current while it runs, and the request's accumulator
        set to record each stage call (None without OpenTelemetry)."""
        if self.otel is None:
            return None
        try:
            return self.otel.request_started(scope, route.method, route.template, start, correlation_id, acc)
        except Exception as exc:
            self._failed("request_start_failed", exc)
            return None

    def request_ended(
        self, handle: Any, route: Any, start: float, end: float, payload: Dict[str, Any], status: int,
        error: Optional[BaseException], event: str,
    ) -> None:
        if handle is not None:
            try:
                self.otel.request_ended(handle, end, payload, status, error)
            except Exception as exc:
                self._failed("request_end_failed", exc)
        observe = self.observe
        if observe is not None:
            try:
                observe(event, route.template, status, payload)
            except Exception as exc:
                self._failed("metrics_failed", exc)

    # ------------------------------------------------------------------------------------------ /metrics

    def answers(self, method: str, path: str) -> bool:
        """Whether the middleware answers this (unmapped) request itself: `GET /metrics` with Prometheus on."""
        return self.prometheus is not None and path == METRICS_PATH and method in ("GET", "HEAD")

    async def serve(self, scope: Dict[str, Any], send: Callable[..., Any]) -> None:
        """The scrape: every worker's samples, in the format the scraper accepts."""
        method = scope["method"]
        try:
            accept = ""
            for name, value in scope.get("headers") or ():
                if name.lower() == b"accept":
                    accept = value.decode("latin-1")
            body, content_type = self.prometheus.exposition(accept)
            status = 200
        except Exception as exc:
            self._failed("metrics_exposition_failed", exc)
            body, content_type, status = b"metrics unavailable\n", "text/plain; charset=utf-8", 500
        headers = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
