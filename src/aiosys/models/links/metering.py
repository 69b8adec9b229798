"""Metering: every attempt at a deployment becomes one ``model_usage`` row.

The outermost link of the deployment chain, so it sees every outcome of the links below:

===========  ===============================================  ========  ======
status       when                                             tokens    cost
===========  ===============================================  ========  ======
``ok``       the provider answered                            reported  priced
``cached``   the cache answered (``response.cached``)         0         0
``error``    any failure below (provider, rate limit, ...)    0         0
``denied``   a hard budget stopped the call before it left    0         0
===========  ===============================================  ========  ======

A cache hit consumed nothing, so it records no tokens (its response still carries the
tokens of the original call). ``latency_ms`` is the wall time the caller waited for this
attempt, including the links below (cache lookup, rate-limit count).

Budgets are checked against these rows, so the row is written before the response goes
back to the caller. A failed write must not fail a call that already happened (and was
paid for), but must not vanish either: it is retried once, then logged at WARNING on the
``aiosys.models.metering`` logger with the whole row as JSON (enough to re-insert it) and
counted in ``MeteringLink.unrecorded``. A cancelled call (the caller went away) is not
metered: its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ...errors import BudgetExceeded
from ...store.base import Store
from ..chain import DeploymentCall, NextLink
from ..types import ModelResponse

log = logging.getLogger("aiosys.models.metering")

MAX_ERROR_CHARS = 2000
RETRY_DELAY = 0.05  # seconds before the one retry of a failed usage write


class MeteringLink:
    """Records each call's tokens, cost, latency and outcome in ``model_usage``."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.unrecorded = 0  # rows that could not be written (see the module docstring)

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        started = time.perf_counter()
        try:
            response = await next(call)
        except BudgetExceeded as exc:
            await self._record(call, started, "denied", error=_describe(exc))
            raise
        except Exception as exc:
            await self._record(call, started, "error", error=_describe(exc))
            raise
        if response.cached:
            await self._record(call, started, "cached")
        else:
            await self._record(
                call,
                started,
                "shadow" if call.meta.get("shadow") else "ok",
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cost=response.cost,
            )
        return response

    async def _record(
        self,
        call: DeploymentCall,
        started: float,
        status: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        error: str | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        call.meta["usage"] = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "latency_ms": latency_ms,
            "cached": status == "cached",
        }
        row: dict[str, Any] = {
            "at": self.clock(),
            "tenant": call.tenant,
            "workflow": call.workflow,
            "run_id": call.run_id,
            "seq": call.seq,
            "task": call.task,
            "model": call.card.id,
            "deployment": call.card.key,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "latency_ms": latency_ms,
            "status": status,
            "error": error,
        }
        await self._write(row)

    async def _write(self, row: dict[str, Any]) -> None:
        # Broad on purpose: each store driver raises its own errors (sqlite3, psycopg,
        # ConfigError when closed), and none of them may turn a finished call into a failure.
        try:
            await self.store.execute("insert_usage", row)
            return
        except Exception as first:
            log.info("writing a model usage row failed (%s); retrying once", first)
        await asyncio.sleep(RETRY_DELAY)
        try:
            await self.store.execute("insert_usage", row)
        except Exception as exc:
            self.unrecorded += 1
            log.warning(
                "model usage row not recorded after a retry (%s: %s): %s",
                type(exc).__name__,
                exc,
                json.dumps(row),
            )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


# ---- reading usage back ------------------------------------------------------------------


async def usage_by_run(store: Store, run_id: str) -> dict[str, Any]:
    """Tokens, cost and number of model calls of one run (every attempt, cache hits too)."""
    row = (await store.fetch("usage_by_run", {"run_id": run_id}))[0]
    return {
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost": float(row["cost"]),
        "calls": int(row["calls"]),
    }


async def usage_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every metered call of one run, in order: one dict per ``model_usage`` row."""
    return await store.fetch("usage_rows_of_run", {"run_id": run_id})


async def spent(
    store: Store, tenant: str, workflow: str | None = None, since: float = 0.0
) -> float:
    """What a tenant (or one of its workflows) spent on models since ``since`` (epoch
    seconds; default: ever), in the cards' currency units."""
    if workflow is None:
        rows = await store.fetch("spent_by_tenant", {"tenant": tenant, "since": since})
    else:
        params = {"tenant": tenant, "workflow": workflow, "since": since}
        rows = await store.fetch("spent_by_workflow", params)
    return float(rows[0]["cost"])


async def usage_by_model(store: Store, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Per model of a tenant since ``since``: calls, ok / cached / error / denied counts,
    tokens, cost and mean latency of the calls that reached a provider, by model id."""
    rows = await store.fetch("usage_by_model", {"tenant": tenant, "since": since})
    return [_stats(r, "model") for r in rows]


async def usage_by_workflow(store: Store, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The same sums per workflow of a tenant (calls made outside a workflow: ``None``)."""
    rows = await store.fetch("usage_by_workflow", {"tenant": tenant, "since": since})
    return [_stats(r, "workflow") for r in rows]


def _stats(row: dict[str, Any], by: str) -> dict[str, Any]:
    mean = row["mean_latency_ms"]
    return {
        by: row[by],
        "calls": int(row["calls"]),
        "ok": int(row["ok"]),
        "cached": int(row["cached"]),
        "errors": int(row["errors"]),
        "denied": int(row["denied"]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost": float(row["cost"]),
        "mean_latency_ms": None if mean is None else float(mean),
    }
