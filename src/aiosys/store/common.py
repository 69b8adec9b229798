"""What every SQL store shares: parameters for the named queries, and the errors it raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import InvalidRunState, RunNotFound
from .base import TERMINAL, Claim, Finish, NewRun, RecordEffect, RunRow


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
        "owner": w.owner,
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
    }


class CommonStore:
    """Behaviour shared by the SQL stores; each dialect supplies the I/O."""

    url: str
    dialect: str

    async def get_run(self, run_id: str) -> RunRow | None:
        raise NotImplementedError

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

    async def raise_not_active(self, run_id: str, action: str) -> None:
        run = await self.get_run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if run.status in TERMINAL:
            raise InvalidRunState(f"cannot {action} run {run_id}: it has ended ({run.status})")
        raise InvalidRunState(f"cannot {action} run {run_id} in status {run.status}")

    async def raise_not_resumable(self, run_id: str) -> None:
        run = await self.get_run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        raise InvalidRunState(
            f"cannot resume run {run_id}: it is {run.status}; only dead or failed runs resume"
        )
