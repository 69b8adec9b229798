"""Span dicts (``aiosys.observe.spans``: what the store reads back) made SDK spans with the
same ids, times, attributes, events and status, for the app's span processors."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, Tracer

from .traceids import SAMPLED

_forced: ContextVar[tuple[int, int] | None] = ContextVar("aiosys_forced_ids", default=None)


class ForcedIds(RandomIdGenerator):
    """Random ids, except while ``export_span`` makes a span whose ids are given."""

    def generate_span_id(self) -> int:
        forced = _forced.get()
        return forced[1] if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced.get()
        return forced[0] if forced is not None else super().generate_trace_id()


def export_span(tracer: Tracer, span: dict[str, Any]) -> None:
    """Make ``span`` (a span dict) an ended SDK span of ``tracer`` (whose provider's id
    generator is a ``ForcedIds``): it goes to the provider's processors. A run's span's
    parent (a caller's span) is remote; an effect's (its run's span) is not."""
    trace_id, span_id = int(span["trace_id"], 16), int(span["span_id"], 16)
    parent = otel_context.Context()
    if span["parent_id"]:
        remote = span["kind"] == "run"
        ctx = SpanContext(trace_id, int(span["parent_id"], 16), remote, SAMPLED)
        parent = trace.set_span_in_context(NonRecordingSpan(ctx))
    token = _forced.set((trace_id, span_id))
    try:
        sdk = tracer.start_span(
            span["name"], context=parent, attributes=span["attributes"], start_time=span["start_ns"]
        )
    finally:
        _forced.reset(token)
    for event in span["events"]:
        sdk.add_event(event["name"], event["attributes"], timestamp=event["time_ns"])
    if span["status"] == "error":
        sdk.set_status(Status(StatusCode.ERROR, span["error"]))
    elif span["status"] == "ok":
        sdk.set_status(Status(StatusCode.OK))
    sdk.end(end_time=span["end_ns"])
