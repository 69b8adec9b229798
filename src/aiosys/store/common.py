"""What every SQL store shares: parameters for the named queries, and the errors it raises."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import InvalidRunState, RunNotFound, StoreRefused
from . import _sql
from .base import (
    PRUNE_BATCH,
    TERMINAL,
    Claim,
    EffectRow,
    Finish,
    NewRun,
    Park,
    PruneReport,
    RecordEffect,
    Release,
    RunRow,
    SignalRow,
    Write,
    now,
)
from .prune import START, Step

NOT_OPEN = "the store is not open: use `async with app:` or `await app.open()`"


def run_params(new: NewRun, owner: str | None, lease: float) -> dict[str, Any]:
    """Parameters of ``insert_run``: pending, or already leased to a worker of this process."""
    claimed = owner is not None
    return {
        "id": new.id,
        "workflow": new.workflow,
        "version": new.version,
        "wf_key": f"{new.workflow}@{new.version}",
        "tenant": new.tenant,
        "queue": new.queue,
        "priority": new.priority,
        "status": "running" if claimed else "pending",
        "input": new.input,
        "idempotency_key": new.idempotency_key,
        "parent_id": new.parent_id,
        "created_at": new.created_at,
        "started_at": new.created_at if claimed else None,
        "deadline_at": new.deadline_at,
        "available_at": new.created_at + lease if claimed else new.created_at,
        "lease_owner": owner,
        "epoch": 1 if claimed else 0,
        "detached": int(new.detached),
        "principal": new.principal,
        "traceparent": new.traceparent,
    }


def list_runs_params(
    status: str | None,
    workflow: str | None,
    tenant: str | None,
    since: float | None,
    until: float | None,
    after: tuple[float, str] | None,
    limit: int,
) -> dict[str, Any]:
    """The parameters of the ``list_runs`` query (``Store.list_runs``)."""
    after_at, after_id = (None, None) if after is None else (float(after[0]), str(after[1]))
    return {
        "status": status,
        "workflow": workflow,
        "tenant": tenant,
        "since": since,
        "until": until,
        "after_at": after_at,
        "after_id": after_id,
        "limit": limit,
    }


def effect_params(w: RecordEffect) -> dict[str, Any]:
    e = w.effect
    return {
        "run_id": e.run_id,
        "seq": e.seq,
        "kind": e.kind,
        "name": e.name,
        "status": e.status,
        "output": e.output,
        "error": e.error,
        "attempt": e.attempt,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "meta": e.meta,
        "owner": w.owner,
        "epoch": w.epoch,
    }


def finish_params(w: Finish, t: float) -> dict[str, Any]:
    return {
        "run_id": w.run_id,
        "owner": w.owner,
        "status": w.status,
        "result": w.result,
        "error": w.error,
        "failed_seq": w.failed_seq,
        "now": t,
        "epoch": w.epoch,
    }


def write_statement(q: dict[str, str], w: Write, t: float) -> tuple[str, dict[str, Any]]:
    """The named query and parameters of one write; it landed if it changed exactly one row."""
    if isinstance(w, RecordEffect):
        return q["record_effect"], effect_params(w)
    if isinstance(w, Park):
        params = {"run_id": w.run_id, "owner": w.owner, "now": t, "epoch": w.epoch}
        return q["park"], {**params, "wake_at": w.wake_at, "wake_seq": w.wake_seq}
    if isinstance(w, Finish):
        return q["finish_parked" if w.parked else "finish"], finish_params(w, t)
    if isinstance(w, Release):
        return q["release"], {"run_id": w.run_id, "owner": w.owner, "now": t, "epoch": w.epoch}
    raise TypeError(f"unknown write {w!r}")  # pragma: no cover - the Write union is closed


def write_run_id(w: Write) -> str:
    return w.effect.run_id if isinstance(w, RecordEffect) else w.run_id


def refused(exc: BaseException, writes: Sequence[Write]) -> StoreRefused:
    """``StoreRefused`` for a batch the store refused for what it holds (a dialect's data or
    integrity error), naming the runs and the driver's reason."""
    runs = sorted({write_run_id(w) for w in writes})
    which = f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} runs"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return StoreRefused(f"the store refused a write of {which}: {type(exc).__name__}: {reason}")


def run_row(row: Any) -> RunRow:
    fields = {k: row[k] for k in RunRow.__dataclass_fields__}
    fields["detached"] = bool(fields["detached"])  # stored as 0/1 in both dialects
    return RunRow(**fields)


def effect_row(row: Any) -> EffectRow:
    return EffectRow(**{k: row[k] for k in EffectRow.__dataclass_fields__})


def signal_row(row: Any) -> SignalRow:
    return SignalRow(**{k: row[k] for k in SignalRow.__dataclass_fields__})


class CommonStore:
    """Behaviour shared by the SQL stores; each dialect supplies the I/O."""

    url: str
    dialect: str

    def clock(self) -> float:
        """This host's clock; a store whose server keeps time overrides it. Every time a
        store writes or compares (claims, leases, timers, wake-ups) is read from here, so
        replacing it on an open store (a test's controlled clock) moves all of them."""
        return now()

    async def schema_behind(self) -> list[int]:
        """The migrations this code has that the store has not applied, in order (empty:
        its schema is current). Reads the store, so it raises what an unreachable store
        raises (``StoreUnavailable``, the driver's own error)."""
        applied = {int(r["version"]) for r in await self.fetch("schema_versions", {})}
        return [v for v, _ in _sql.migrations(self.dialect) if v not in applied]

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunRow | None:
        raise NotImplementedError

    async def fetch(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def execute(self, query: str, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def prune_batch(
        self,
        before: float,
        tenant: str | None,
        cursor: tuple[float, str],
        limit: int,
        dry_run: bool,
    ) -> Step:
        """One batch of ``prune`` in one transaction (see ``prune.py``)."""
        raise NotImplementedError

    async def prune(
        self,
        before: float,
        *,
        tenant: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        batch: int = PRUNE_BATCH,
        progress: Callable[[PruneReport], None] | None = None,
    ) -> PruneReport:
        """See ``Store.prune``."""
        if batch < 1:
            raise ValueError(f"a prune batch must hold at least one run, not {batch}")
        if limit is not None and limit < 0:
            raise ValueError(f"a prune limit must not be negative, not {limit}")
        if math.isnan(before):
            raise ValueError("a prune cutoff must be a time, not NaN")
        report = PruneReport(before=before, tenant=tenant, dry_run=dry_run)
        cursor = START
        while limit is None or report.roots < limit:
            size = batch if limit is None else min(batch, limit - report.roots)
            step = await self.prune_batch(before, tenant, cursor, size, dry_run)
            totals = {k: getattr(report, k) + n for k, n in step.counts.items()}
            report = replace(report, roots=report.roots + step.roots, **totals)
            if progress is not None:
                progress(report)
            if step.roots < size:
                break
            cursor = step.cursor
        # Reservations name no run: those that expired before the cutoff (and before now,
        # should the cutoff lie ahead) are what is left of calls long over.
        params = {"before": min(before, self.clock()), "tenant": tenant}
        if dry_run:
            rows = await self.fetch("prune_count_reservations", params)
            dropped = int(rows[0]["n"])
        else:
            dropped = await self.execute("prune_reservations", params)
        report = replace(report, reservations=dropped)
        if progress is not None:
            progress(report)
        return report

    @staticmethod
    def of_tenant(row: RunRow | None, tenant: str | None) -> RunRow | None:
        """The run if it belongs to ``tenant`` (None: any tenant), else None: another
        tenant's run reads exactly as a missing one, so its existence does not leak."""
        if row is None or (tenant is not None and row.tenant != tenant):
            return None
        return row

    async def check_tenant(self, run_id: str, tenant: str | None) -> None:
        """``RunNotFound`` unless the run exists in ``tenant`` (None: any tenant). A run's
        tenant never changes, so checking before acting in another transaction is safe."""
        if tenant is not None and await self.get_run(run_id, tenant=tenant) is None:
            raise RunNotFound(f"no run with id {run_id!r} in tenant {tenant!r}")

    @staticmethod
    def limit_for(
        queue: str,
        free: int,
        claim: Claim,
        running_count: Callable[[dict[str, Any]], int],
        t: float,
    ) -> int:
        """How many runs of ``queue`` this claim may take: the worker's free slots, capped
        by the queue's global concurrency limit minus the runs holding a live lease."""
        limit = free
        cap = claim.global_limits.get(queue)
        if cap is not None and limit > 0:
            limit = min(limit, cap - running_count({"queue": queue, "now": t}))
        return limit

    @staticmethod
    def cancel_error(reason: str) -> str:
        return json.dumps({"type": "aiosys.errors.RunCancelled", "message": reason})

    def cancel_children_params(self, run_id: str, reason: str, t: float) -> dict[str, Any]:
        """Parameters of ``cancel_children``: the descendants of ``run_id``, with ``reason``
        (the reason the parent ended: see ``child_cancel_reason``)."""
        return {"id": run_id, "reason": reason, "now": t, "error": self.cancel_error(reason)}

    async def raise_not_active(self, run_id: str, action: str, tenant: str | None = None) -> None:
        run = await self.get_run(run_id, tenant=tenant)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if run.status in TERMINAL:
            raise InvalidRunState(f"cannot {action} run {run_id}: it has ended ({run.status})")
        raise InvalidRunState(f"cannot {action} run {run_id} in status {run.status}")

    async def raise_not_resumable(self, run_id: str, tenant: str | None = None) -> None:
        run = await self.get_run(run_id, tenant=tenant)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        raise InvalidRunState(
            f"cannot resume run {run_id}: it is {run.status}; only dead or failed runs resume"
        )
