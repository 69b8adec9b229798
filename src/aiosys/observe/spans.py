"""A run's trace, read from what the store already keeps: the run's span is its runs row, and
each effect's span is its effect record (``effects``: run, number, kind, name, status, error,
attempt, start, end, worker, and ``meta`` for what the record alone does not say).

So a span costs the hot path no write of its own, and a span exists exactly when its effect's
record does: a crash keeps both or neither, and a replayed effect (its record read back, not
written) makes no new one. The same functions build the spans that are exported
(``aiosys.observe.tracing``), so exported and stored spans have the same ids and contents.

What an effect record does not say goes in its ``meta`` under ``"span"`` (written by the
``trace`` interceptor with the record, only when there is something to say): ``name`` (a
model call's ``<operation> <model>``), ``attributes`` (the GenAI conventions of a model call,
its content when the operator turned that on) and ``events`` (policy decisions, a model
call's failed attempts and skipped candidates), ``[{name, time_ns, attributes}]``. A step's
retries are read from ``meta["retries"]`` (the kernel's), its error from the record's error.
A model call's attempts, each a child span of the call's, are read from the attempts the
model plane keeps in its record (``meta["attempts"]``: deployment, start, end, error).
"""

from __future__ import annotations

import json
from typing import Any

from ..store import Store
from ..store.base import EffectRow, RunRow
from . import genai
from .traceids import attempt_span_id, effect_span_id, run_trace

NS = 1_000_000_000
SPAN = "span"  # the key of an effect record's meta that holds its span's extras
ATTEMPT = "attempt"  # the ``kind`` of a model call's attempt span (a child of the call's)
#: Effect kinds that make no span: the kernel's read of the clock.
UNTRACED = frozenset({"now"})


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
        "error": _error_text(run.error)[0] if run.error else None,
        "attributes": run_attributes(run, run.status),
        "events": [],
    }


def span_name(kind: str, name: str) -> str:
    """An effect span's name when its record does not give one: ``step <last part of the
    step's qualified name>``, ``sleep``, ``<kind> <name>`` (``signal go``, ``child_start
    leaf``)."""
    if kind == "step":
        return f"step {name.rsplit('.', 1)[-1]}"
    return kind if kind == "sleep" else f"{kind} {name}"


def effect_spans(run: RunRow, row: EffectRow, now: float) -> list[dict[str, Any]]:
    """Effect ``row``'s span (a dict as ``stored_trace`` gives), a child of ``run``'s span,
    then its own children: a model call's attempts.

    The effect's span: its id ``effect_span_id(run, seq)``, from the record's start to its
    end (a ``pending`` record, a wait or a step between retries: to ``now``, status
    ``open``); status ``error`` with ``error.type`` and an ``exception`` event when the
    effect failed; its retries as ``aiosys.retry`` events. A model call's attempts
    (``genai.attempt_spans``: each try of a deployment, retries and fallbacks alike): kind
    ``attempt``, ids ``attempt_span_id(run, seq, index)``, from the attempt's start to its
    end. All are read from the one record, so a replayed call makes none anew."""
    meta = _meta(row.meta)
    span = _effect_span(run, row, now, meta)
    if row.kind != "model":
        return [span]
    children = genai.attempt_spans(meta)
    for index, child in enumerate(children):
        child["span_id"] = f"{attempt_span_id(run.id, row.seq, index):016x}"
        child |= {"run_id": run.id, "trace_id": span["trace_id"], "parent_id": span["span_id"]}
        child |= {"seq": row.seq, "kind": ATTEMPT}
    return [span, *children]


def _effect_span(run: RunRow, row: EffectRow, now: float, meta: dict[str, Any]) -> dict[str, Any]:
    ids = run_trace(run.id, run.traceparent)
    extra = meta.get(SPAN) or {}
    attrs: dict[str, Any] = {
        "aiosys.effect.kind": row.kind,
        "aiosys.effect.name": row.name,
        "aiosys.effect.seq": row.seq,
        "aiosys.effect.attempt": row.attempt,
    }
    if row.worker is not None:
        attrs["aiosys.worker"] = row.worker
    attrs.update(extra.get("attributes") or {})
    events: list[dict[str, Any]] = list(extra.get("events") or ())
    for retry in meta.get("retries") or ():
        at = {"attempt": retry["attempt"], "error": str(retry["error"])}
        at["retry_at"] = float(retry["retry_at"])
        events.append(
            {"name": "aiosys.retry", "time_ns": int(retry["failed_at"] * NS), "attributes": at}
        )
    end = row.finished_at
    status = {"ok": "ok", "error": "error"}.get(row.status, "open")
    error = None
    if row.status == "error":
        error, exception = _error_text(row.error)
        attrs["error.type"] = exception["exception.type"].rsplit(".", 1)[-1]
        events.append(
            {"name": "exception", "time_ns": int((end or now) * NS), "attributes": exception}
        )
    events.sort(key=lambda e: e["time_ns"])
    return {
        "run_id": run.id,
        "span_id": f"{effect_span_id(run.id, row.seq):016x}",
        "trace_id": f"{ids.trace_id:032x}",
        "parent_id": f"{ids.span_id:016x}",
        "seq": row.seq,
        "name": extra.get("name") or span_name(row.kind, row.name),
        "kind": row.kind,
        "start_ns": int(row.started_at * NS),
        "end_ns": int((end if end is not None and status != "open" else now) * NS),
        "status": status,
        "error": error,
        "attributes": attrs,
        "events": events,
    }


async def stored_trace(store: Store, run: RunRow) -> list[dict[str, Any]]:
    """The run's span, then its effects' spans in the order they started, each followed by
    its children (a model call's attempts, kind ``attempt``), as dicts:
    ``run_id``, ``span_id`` (16 hex), ``trace_id`` (32 hex), ``parent_id`` (16 hex or None:
    the run's span's parent is the caller's span it joined, if any), ``seq`` (the effect's
    number; 0 for the run), ``name``, ``kind``, ``start_ns`` / ``end_ns`` (Unix time in
    nanoseconds), ``status`` (``ok``, ``error``, ``open`` for a run or an effect not ended),
    ``error`` ("Type: message"), ``attributes`` (dict) and ``events`` (list of
    ``{name, time_ns, attributes}``). Read from the runs row and the run's effect records
    (``RunNotFound`` if the run is gone)."""
    effects = await store.list_effects(run.id, tenant=run.tenant)
    now = store.clock()
    groups = [effect_spans(run, e, now) for e in effects if e.kind not in UNTRACED]
    groups.sort(key=lambda g: (g[0]["start_ns"], g[0]["seq"]))
    return [run_span(run, now), *(span for group in groups for span in group)]


def span_tree(spans: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """``stored_trace``'s spans depth first, each with its depth (the run's span 0), each
    under its parent in start order; a span whose parent is not among them goes under the
    run's. How a waterfall lays them out (``aiosys runs show --trace``, the console)."""
    ids = {s["span_id"] for s in spans}
    root = spans[0]
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans[1:]:
        parent = s["parent_id"] if s["parent_id"] in ids else root["span_id"]
        children.setdefault(parent, []).append(s)
    out: list[tuple[dict[str, Any], int]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        out.append((span, depth))
        for child in sorted(children.get(span["span_id"], []), key=lambda c: c["start_ns"]):
            walk(child, depth + 1)

    walk(root, 0)
    return out


def _meta(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _error_text(text: str | None) -> tuple[str, dict[str, str]]:
    """``("Type: message", exception event attributes)`` of a stored error record."""
    try:
        rec = json.loads(text or "")
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        return (text or "Error", {"exception.type": "Error", "exception.message": text or ""})
    full = str(rec.get("type") or "Error")
    message = str(rec.get("message", ""))
    event = {"exception.type": full, "exception.message": message}
    if rec.get("traceback"):
        event["exception.stacktrace"] = str(rec["traceback"])
    return f"{full.rsplit('.', 1)[-1]}: {message}", event
