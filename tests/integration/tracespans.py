"""Exported spans in the shape the store reads them back (``app.trace``), to compare."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


def as_stored(span: ReadableSpan) -> dict[str, Any]:
    """An exported span in the shape ``app.trace`` gives (lists for sequences)."""

    def plain(attrs: Any) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(attrs or {}).items()}

    code = span.status.status_code
    return {
        "span_id": f"{span.context.span_id:016x}",
        "trace_id": f"{span.context.trace_id:032x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": {StatusCode.OK: "ok", StatusCode.ERROR: "error"}.get(code, "open"),
        "error": span.status.description,
        "attributes": plain(span.attributes),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": plain(e.attributes)}
            for e in span.events
        ],
    }


def stored_shape(span: dict[str, Any]) -> dict[str, Any]:
    """A stored span without the fields an exported one does not have."""
    return {k: v for k, v in span.items() if k not in ("run_id", "seq", "kind")}
