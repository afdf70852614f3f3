"""Scopes, stages and mapped routes as spans, through the OpenTelemetry API only (the `otel` extra).

The user configures the SDK and exporter the standard way (`opentelemetry-instrument`, `OTEL_EXPORTER_OTLP_*`,
or their own `TracerProvider`); without an SDK every call here is the API's no-op. Composes with
OpenTelemetry's own instrumentations: a scope's span is a child of whatever span is current when it opens, and
is current while it runs (an httpx or SQL span of the app's lands under it).

- a scope: a span named after its event, opened at the scope's start reading and ended at its end reading;
- a stage field: a child span per field that ran, lasting exactly the seconds summed into that `_ms` field
  (`autoinstrument.calls` = how many calls). The calls' own start times are not kept (the hot path stores
  one float per call), so the stage spans are laid end to end from the scope's start, and a field listed
  under `parallel:` starts with its outer field, as `report`'s timeline draws them;
- a mapped route: a span `METHOD /template` lasting the route's `_ms` field: a SERVER span (parent: the
  request's `traceparent`), or, when an ASGI instrumentation outside ours already made the server span, an
  INTERNAL child of it, and the server span gets `http.route` and the correlation id at once (it may end as
  soon as the last body byte passes, before the request's fields are known);
- attributes: `autoinstrument.correlation_id`, every `_ms` field, the scope's/route's `result` keys;
  an exception or a 5xx sets the span status to ERROR.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Dict, Iterable, Optional, Set, Tuple

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from autoinstrument.export.clock import epoch_ns

PREFIX = "autoinstrument."
#: a request event's keys that the span carries under their semantic-convention names instead
_REQUEST_KEYS = ("method", "route", "status_code", "stage_calls")

#: The fields of the current mapped request that a nested scope already exported as its own stage spans
#: (the request's span gets stage spans only for the others: nothing is drawn twice).
_COVERED: ContextVar[Optional[Set[str]]] = ContextVar("autoinstrument_otel_covered", default=None)


def _attribute(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts (None when it has none)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return None


class OpenTelemetryExporter:
    """The span side of the hub."""

    def __init__(self, parallel: Dict[str, Tuple[str, ...]], version: str = ""):
        self.tracer = trace.get_tracer("autoinstrument", version or None)
        #: inner stage field -> its outer field (`parallel:`): drawn from the outer's start
        self.outer: Dict[str, str] = {inner: outer for outer, inners in parallel.items() for inner in inners}

    # ------------------------------------------------------------------------------------------ scopes

    def scope_opened(self, event: str, start: float) -> Tuple[Any, Any]:
        span = self.tracer.start_span(event, start_time=epoch_ns(start))
        return span, otel_context.attach(trace.set_span_in_context(span))

    def scope_closed(
        self,
        handle: Tuple[Any, Any],
        start: float,
        end: float,
        fields: Dict[str, Tuple[float, int]],
        payload: Dict[str, Any],
        exc: Optional[BaseException],
    ) -> None:
        span, token = handle
        otel_context.detach(token)
        covered = _COVERED.get()
        if covered is not None:
            covered.update(fields)
        self._annotate(span, payload)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self._stages(span, start, end, fields.items())
        span.end(end_time=epoch_ns(end))

    # ------------------------------------------------------------------------------------------ requests

    def request_started(
        self, scope: Dict[str, Any], method: str, template: str, start: float, correlation_id: str
    ) -> Tuple[Any, ...]:
        current = trace.get_current_span()
        covered: Set[str] = set()
        cover_token = _COVERED.set(covered)
        if current.is_recording():
            # An ASGI instrumentation outside ours made the server span: annotate it now (it may end as soon as
            # the last body byte passes, before this request's fields are known) and time the route in a child.
            current.set_attribute("http.route", template)
            current.set_attribute(PREFIX + "correlation_id", correlation_id)
            parent, kind = None, SpanKind.INTERNAL
        else:
            carrier = {}
            for name, value in scope.get("headers") or ():
                carrier[name.decode("latin-1").lower()] = value.decode("latin-1")
            parent, kind = propagate.extract(carrier), SpanKind.SERVER
        span = self.tracer.start_span(
            f"{method} {template}",
            context=parent,
            kind=kind,
            start_time=epoch_ns(start),
            attributes={"http.request.method": method, "http.route": template},
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent)), cover_token, covered

    def request_ended(
        self,
        handle: Tuple[Any, ...],
        start: float,
        end: float,
        payload: Dict[str, Any],
        status: int,
        error: Optional[BaseException],
        route_field: str,
    ) -> None:
        span, token, cover_token, covered = handle
        otel_context.detach(token)
        _COVERED.reset(cover_token)
        self._annotate(span, payload, _REQUEST_KEYS)
        span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        elif status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        own = [
            (name, (value / 1000.0, 1))
            for name, value in payload.items()
            if name.endswith("_ms") and name not in covered and name != route_field
        ]
        self._stages(span, start, end, own)
        span.end(end_time=epoch_ns(end))

    # ------------------------------------------------------------------------------------------ shared

    def _annotate(self, span: Any, payload: Dict[str, Any], skip: Tuple[str, ...] = ("stage_calls",)) -> None:
        for key, value in payload.items():
            if key in skip:
                continue
            value = _attribute(value)
            if value is not None:
                span.set_attribute(PREFIX + key, value)

    def _stages(
        self, parent: Any, start: float, end: float, fields: Iterable[Tuple[str, Tuple[float, int]]]
    ) -> None:
        """One child span per stage field, lasting exactly its summed seconds, laid end to end from `start`
        (moved back to end with the parent when it would run past it; a field whose calls overlapped, e.g.
        under `asyncio.gather`, may sum to more than the parent: it then starts with the parent)."""
        parent_context = trace.set_span_in_context(parent)
        cursor = start
        starts: Dict[str, float] = {}
        for name, (seconds, calls) in fields:
            outer = self.outer.get(name)
            begin = starts.get(outer, start) if outer is not None else cursor
            if begin + seconds > end:
                begin = max(start, end - seconds)
            starts[name] = begin
            span = self.tracer.start_span(
                name, context=parent_context, start_time=epoch_ns(begin),
                attributes={PREFIX + "calls": calls, PREFIX + "field": name},
            )
            span.end(end_time=epoch_ns(begin + seconds))
            if outer is None:
                cursor = begin + seconds
