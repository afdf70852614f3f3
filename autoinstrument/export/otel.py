"""Scopes, stage calls and mapped routes as spans, through the OpenTelemetry API only (the `otel` extra).

The user configures the SDK and exporter the standard way (`opentelemetry-instrument`, `OTEL_EXPORTER_OTLP_*`,
or their own `TracerProvider`); without an SDK every call here is the API's no-op. Composes with
OpenTelemetry's own instrumentations: a scope's span is a child of whatever span is current when it opens, and
is current while it runs (an httpx or SQL span of the app's lands under it).

- a scope: a span named after its event, opened at the scope's start reading and ended at its end reading;
- a stage CALL: a child span of its innermost scope (or mapped request) named after its field, from the
  call's own start reading to its end reading (a generator stage: one span per step, its active time), so
  calls run under `asyncio.gather` overlap as they ran, and a field's spans add up to its `_ms` field. The
  wrappers record `(field, start, end, calls)` into the scope's accumulator only while a span is exported for
  it (`Accumulator.records`); the spans are made when the scope ends (a re-entered call is counted once:
  one span). A scope with more than `Accumulator.records_max` calls gets the first ones and
  `autoinstrument.stage_spans_truncated`;
- a mapped route: a span `METHOD /template` lasting the route's `_ms` field: a SERVER span (parent: the
  request's `traceparent`), or, when an ASGI instrumentation outside ours already made the server span, an
  INTERNAL child of it, and the server span gets `http.route` and the correlation id at once (it may end as
  soon as the last body byte passes, before the request's fields are known);
- attributes: `autoinstrument.correlation_id`, every `_ms` field, the scope's/route's `result` keys;
  an exception or a 5xx sets the span status to ERROR.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from autoinstrument.export.clock import epoch_ns

PREFIX = "autoinstrument."
#: a request event's keys that the span carries under their semantic-convention names instead
_REQUEST_KEYS = ("method", "route", "status_code", "stage_calls")


def _attribute(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts (None when it has none)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return None


class OpenTelemetryExporter:
    """The span side of the hub."""

    def __init__(self, version: str = ""):
        self.tracer = trace.get_tracer("autoinstrument", version or None)

    # ------------------------------------------------------------------------------------------ scopes

    def scope_opened(self, event: str, start: float, acc: Any) -> Tuple[Any, Any, Any]:
        span = self.tracer.start_span(event, start_time=epoch_ns(start))
        _record(acc)
        return span, otel_context.attach(trace.set_span_in_context(span)), acc

    def scope_closed(
        self, handle: Tuple[Any, Any, Any], end: float, payload: Dict[str, Any], exc: Optional[BaseException]
    ) -> None:
        span, token, acc = handle
        otel_context.detach(token)
        self._annotate(span, payload)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self._stages(span, acc)
        span.end(end_time=epoch_ns(end))

    # ------------------------------------------------------------------------------------------ requests

    def request_started(
        self, scope: Dict[str, Any], method: str, template: str, start: float, correlation_id: str, acc: Any
    ) -> Tuple[Any, ...]:
        current = trace.get_current_span()
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
        _record(acc)
        return span, otel_context.attach(trace.set_span_in_context(span, parent)), acc

    def request_ended(
        self,
        handle: Tuple[Any, ...],
        end: float,
        payload: Dict[str, Any],
        status: int,
        error: Optional[BaseException],
    ) -> None:
        span, token, acc = handle
        otel_context.detach(token)
        self._annotate(span, payload, _REQUEST_KEYS)
        span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        elif status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        self._stages(span, acc)
        span.end(end_time=epoch_ns(end))

    # ------------------------------------------------------------------------------------------ shared

    def _annotate(self, span: Any, payload: Dict[str, Any], skip: Tuple[str, ...] = ("stage_calls",)) -> None:
        for key, value in payload.items():
            if key in skip:
                continue
            value = _attribute(value)
            if value is not None:
                span.set_attribute(PREFIX + key, value)

    def _stages(self, parent: Any, acc: Any) -> None:
        """One child span per recorded stage call, from its start reading to its end reading."""
        records = acc.records
        if not records:
            return
        if len(records) >= acc.records_max:
            parent.set_attribute(PREFIX + "stage_spans_truncated", len(records))
        parent_context = trace.set_span_in_context(parent)
        for field, start, end, calls in tuple(records):  # a copy: a late call may still append
            span = self.tracer.start_span(
                field, context=parent_context, start_time=epoch_ns(start),
                attributes={PREFIX + "calls": calls, PREFIX + "field": field},
            )
            span.end(end_time=epoch_ns(end))


def _record(acc: Any) -> None:
    """Make the scope's stage wrappers record each call's interval (Accumulator.records; `limit` 0 sends every
    call through `overflow`, which appends it)."""
    acc.records = []
    acc.limit = 0
