"""An effect's span while it is open: light (plain fields), so that tracing to the store only
costs a few microseconds per effect. Its ids are put in the OpenTelemetry context while the
effect runs (so the HTTP providers' ``traceparent``, a child run, a step's own spans join it);
when it ends it becomes the store's row and, when spans are exported, an SDK span with the
same ids (``Tracing._export``)."""

from __future__ import annotations

import json
import random
import time
import traceback
from typing import Any

from opentelemetry.trace import NonRecordingSpan, SpanContext

from .traceids import SAMPLED

_bits = random.getrandbits  # as the SDK's RandomIdGenerator
# One encoder, built once: json.dumps(..., default=str) builds one per call (~7 us).
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


class EffectSpan:
    __slots__ = (
        "attributes",
        "context",
        "end_ns",
        "error",
        "events",
        "name",
        "parent_id",
        "start_ns",
    )

    def __init__(
        self,
        name: str,
        trace_id: int,
        parent_id: int,
        attributes: dict[str, Any],
        start_ns: int | None = None,
    ) -> None:
        self.name = name
        self.context = SpanContext(trace_id, _bits(64) or 1, is_remote=False, trace_flags=SAMPLED)
        self.parent_id = parent_id
        self.attributes = attributes
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.end_ns = 0
        self.error: str | None = None  # "Type: message" when it ended in an error

    def otel(self) -> NonRecordingSpan:
        """The span to make current while the effect runs (its ids only)."""
        return NonRecordingSpan(self.context)

    def is_recording(self) -> bool:
        return self.end_ns == 0

    def add_event(
        self, name: str, attributes: dict[str, Any], timestamp: int | None = None
    ) -> None:
        self.events.append((name, time.time_ns() if timestamp is None else timestamp, attributes))

    def fail(self, error: BaseException) -> None:
        """End in ``error``: ``error.type`` and an ``exception`` event (OTel's shape)."""
        cls = type(error)
        self.error = f"{cls.__qualname__}: {error}"
        self.attributes["error.type"] = cls.__qualname__
        tb = "".join(traceback.format_exception(error))
        self.add_event(
            "exception",
            {
                "exception.type": f"{cls.__module__}.{cls.__qualname__}",
                "exception.message": str(error),
                "exception.stacktrace": tb,
            },
        )

    def end(self) -> None:
        self.end_ns = time.time_ns()

    def row(self, run_id: str, seq: int, kind: str) -> dict[str, Any]:
        """The ``span_record`` parameters of the ended span."""
        events = self.events
        return {
            "run_id": run_id,
            "span_id": f"{self.context.span_id:016x}",
            "trace_id": f"{self.context.trace_id:032x}",
            "parent_id": f"{self.parent_id:016x}",
            "seq": seq,
            "name": self.name,
            "kind": kind,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "status": "ok" if self.error is None else "error",
            "error": self.error,
            "attributes": _dumps(self.attributes),
            "events": None
            if not events
            else _dumps([{"name": n, "time_ns": t, "attributes": a} for n, t, a in events]),
        }
