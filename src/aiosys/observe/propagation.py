"""W3C trace context for outgoing HTTP: the model providers (and later connectors) add the
current span's ``traceparent`` (and ``tracestate``, baggage: the global propagator,
``OTEL_PROPAGATORS``) to their requests."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.propagate import inject


def trace_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the current span's trace context (none when no span is current:
    tracing off, or outside any effect)."""
    carrier = dict(headers or {})
    inject(carrier)
    return carrier
