"""Shadow outcomes in the store: what a plan's shadow model answered beside the model that
served the caller (``router.py``, shadow mode), kept for comparison in ``model_shadows``."""

from __future__ import annotations

import json
import time
from typing import Any

import pydantic

from ..store.base import Store
from .contracts import RouteContext
from .router import ShadowResult


async def record_shadow(store: Store, result: ShadowResult, ctx: RouteContext) -> None:
    """Keep one shadow outcome (the router calls this in its background task)."""
    row = {
        "at": time.time(),
        "tenant": ctx.tenant,
        "task": result.task,
        "run_id": ctx.run_id,
        "seq": ctx.seq,
        "primary_model": result.primary,
        "shadow_model": result.shadow,
        "primary_output": _json(result.primary_output),
        "output": None if result.output is None else _json(result.output),
        "error": result.error,
        "same": int(result.same),
        "latency_ms": result.latency_ms,
        "cost": result.cost,
    }
    await store.execute("insert_shadow", row)


async def shadow_results(
    store: Store, task: str | None = None, *, tenant: str = "default", limit: int = 100
) -> list[dict[str, Any]]:
    """A tenant's shadow outcomes, newest first (of one task, or of all): ``primary_model``
    and ``shadow_model`` (deployments), ``primary_output`` and ``output`` (decoded JSON),
    ``error``, ``same``, ``latency_ms``, ``cost``, and the ``run_id`` / ``seq`` of the call."""
    rows = await store.fetch("list_shadows", {"tenant": tenant, "task": task, "limit": limit})
    for row in rows:
        row["same"] = bool(row["same"])
        for key in ("primary_output", "output"):
            row[key] = None if row[key] is None else json.loads(row[key])
    return rows


def _json(value: Any) -> str:
    """An output as JSON (a task's output model as its fields)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str)
