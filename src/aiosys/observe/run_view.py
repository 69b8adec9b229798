"""What a person is shown of a run: its row and its effects' records as plain data.

One presenter for every surface (``aiosys runs show``, the web console): the records are
decoded as the store keeps them, so what a model saw redacted stays redacted here (its
pseudonyms are restored only for the workflow, by the gate's presenter, never in a view);
errors read ``Type: message`` with their recorded traceback apart; a model effect's record
gives its model, tokens and cost. Times are epoch seconds in, ISO 8601 (UTC) out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..store.base import EffectRow, RunRow


def decoded(text: str | None) -> Any:
    """A stored JSON text as its value (None stays None; text that is not JSON stays text)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def iso(t: float | None) -> str | None:
    """A store timestamp (epoch seconds) as ISO 8601 in UTC, for JSON."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def millis(start: float | None, end: float | None) -> float | None:
    """Milliseconds from ``start`` to ``end`` (epoch seconds), to 0.1; None if either is."""
    return None if start is None or end is None else round((end - start) * 1000, 1)


def run_dict(row: RunRow) -> dict[str, Any]:
    """The JSON object of a run (``runs list --json``): result and error decoded."""
    return {
        "id": row.id,
        "workflow": row.workflow,
        "version": row.version,
        "status": row.status,
        "tenant": row.tenant,
        "result": decoded(row.result),
        "error": decoded(row.error),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "updated_at": iso(row.updated_at),
    }


def run_detail(row: RunRow) -> dict[str, Any]:
    """``run_dict`` plus what ``runs show`` adds: input, queue, parent, idempotency key."""
    return {
        **run_dict(row),
        "input": decoded(row.input),
        "queue": row.queue,
        "priority": row.priority,
        "parent_id": row.parent_id,
        "idempotency_key": row.idempotency_key,
        "cancel_reason": row.cancel_reason,
    }


def effect_dict(e: EffectRow) -> dict[str, Any]:
    """An effect as JSON, with the run attempt (claim) it was last recorded under and that
    attempt's worker (None for records older than the store's keeping them)."""
    return {
        "seq": e.seq,
        "kind": e.kind,
        "name": e.name,
        "status": e.status,
        "attempt": e.attempt,
        "output": decoded(e.output),
        "error": decoded(e.error),
        "started_at": iso(e.started_at),
        "finished_at": iso(e.finished_at),
        "duration_ms": millis(e.started_at, e.finished_at),
        "meta": decoded(e.meta),
        "run_attempt": e.epoch,
        "worker": e.worker,
    }


def error_message(text: str | None) -> str:
    """``Type: message`` of a recorded error, with the type's module left out."""
    rec = decoded(text)
    if rec is None:
        return ""
    if not isinstance(rec, dict):
        return str(rec)
    kind = str(rec.get("type", "")).rpartition(".")[2]
    message = str(rec.get("message", ""))
    return f"{kind}: {message}" if kind else message


def traceback_of(text: str | None) -> str | None:
    """The traceback text a recorded error keeps, or None."""
    rec = decoded(text)
    tb = rec.get("traceback") if isinstance(rec, dict) else None
    return tb if isinstance(tb, str) and tb else None


def tracebacks(row: RunRow, effects: Iterable[EffectRow]) -> list[tuple[str, str]]:
    """``(title, traceback)`` of the failed effects and of the run, each traceback once (the
    run's error is often the last failed step's, rebuilt: its traceback is not repeated)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    sources = [
        (f"traceback of effect {e.seq} ({e.kind} {e.name}, attempt {e.attempt})", e.error)
        for e in effects
    ]
    for title, error in [*sources, (f"traceback of run {row.id}", row.error)]:
        tb = traceback_of(error)
        if tb is None or tb in seen:
            continue
        seen.add(tb)
        out.append((title, tb.rstrip("\n")))
    return out


def retries_of(meta: str | None) -> list[dict[str, Any]]:
    """The failed attempts a step's record keeps (``meta["retries"]``: ``attempt``,
    ``error``, ``retry_at``), oldest first."""
    data = decoded(meta)
    found = data.get("retries") if isinstance(data, dict) else None
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def model_columns(meta: str | None) -> tuple[str, str, str]:
    """Which model answered a model effect (``(cached)`` when the cache did), its tokens in/out
    and its cost to six places; three blanks for other effects."""
    data = decoded(meta)
    if not isinstance(data, dict) or "model" not in data:
        return "", "", ""
    usage = data.get("usage") or {}
    tokens = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}"
    cached = " (cached)" if data.get("cached") else ""
    return f"{data['model']}{cached}", tokens, f"{float(data.get('cost') or 0):.6f}"


def model_usage(effects: Iterable[EffectRow]) -> dict[str, Any]:
    """The run's model calls summed from its effects' records: ``calls``,
    ``input_tokens``, ``output_tokens``, ``cost``."""
    total: dict[str, Any] = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
    for e in effects:
        data = decoded(e.meta)
        if isinstance(data, dict) and "model" in data:
            usage = data.get("usage") or {}
            total["calls"] += 1
            total["input_tokens"] += int(usage.get("input_tokens", 0))
            total["output_tokens"] += int(usage.get("output_tokens", 0))
            total["cost"] += float(data.get("cost") or 0)
    return total


__all__ = [
    "decoded",
    "effect_dict",
    "error_message",
    "iso",
    "millis",
    "model_columns",
    "model_usage",
    "retries_of",
    "run_detail",
    "run_dict",
    "traceback_of",
    "tracebacks",
]
