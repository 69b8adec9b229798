"""A run's trace as the store keeps it: the run's span (its runs row) and its effects' spans
(the ``spans`` table, written with their records)."""

from __future__ import annotations

import json
from typing import Any

from ..store import Store
from ..store.base import RunRow
from .traceids import run_trace

NS = 1_000_000_000


def run_attributes(run: RunRow, status: str) -> dict[str, Any]:
    """The run span's attributes."""
    return {
        "aiosys.run_id": run.id,
        "aiosys.workflow": run.workflow,
        "aiosys.workflow.version": run.version,
        "aiosys.tenant": run.tenant,
        "aiosys.run.status": status,
    }


def run_span(run: RunRow, now: float) -> dict[str, Any]:
    """The run's span, from its row: from ``created_at`` to ``finished_at`` (a run not ended
    yet: to ``now``, ``status`` ``open``)."""
    ids = run_trace(run.id, run.traceparent)
    ended = run.finished_at is not None
    error = None
    if run.error:
        try:
            rec = json.loads(run.error)
            error = f"{rec.get('type', 'Error').rsplit('.', 1)[-1]}: {rec.get('message', '')}"
        except ValueError:
            error = run.error
    return {
        "run_id": run.id,
        "span_id": f"{ids.span_id:016x}",
        "trace_id": f"{ids.trace_id:032x}",
        "parent_id": None if ids.parent_id is None else f"{ids.parent_id:016x}",
        "seq": 0,
        "name": f"run {run.workflow}",
        "kind": "run",
        "start_ns": int(run.created_at * NS),
        "end_ns": int((run.finished_at if ended else now) * NS),  # type: ignore[operator]
        "status": ("ok" if run.status == "succeeded" else "error") if ended else "open",
        "error": error,
        "attributes": run_attributes(run, run.status),
        "events": [],
    }


async def stored_trace(store: Store, run: RunRow) -> list[dict[str, Any]]:
    """The run's span, then its effects' spans in the order they started, as dicts:
    ``run_id``, ``span_id`` (16 hex), ``trace_id`` (32 hex), ``parent_id`` (16 hex or None:
    the run's span's parent is the caller's span it joined, if any), ``seq`` (the effect's
    number; 0 for the run), ``name``, ``kind``, ``start_ns`` / ``end_ns`` (Unix time in
    nanoseconds), ``status`` (``ok``, ``error``, ``open`` for a run not ended), ``error``,
    ``attributes`` (dict) and ``events`` (list of ``{name, time_ns, attributes}``)."""
    rows = await store.fetch("spans_of_run", {"run_id": run.id})
    spans = [run_span(run, store.clock())]
    for row in rows:
        span = dict(row)
        span["attributes"] = json.loads(span["attributes"] or "{}")
        span["events"] = json.loads(span["events"]) if span["events"] else []
        spans.append(span)
    return spans
