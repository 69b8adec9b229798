"""What an operator reads about who runs what: live workers, stranded runs, recoveries.

Workers register in the ``workers`` table (``beat_worker`` at start and with every
heartbeat, ``drop_worker`` when they stop): what they serve (queues, workflow@version) and
when they last beat. A worker is live until ``LIVE_LEASES`` of its leases have passed since
its last beat, so a CLI process, which runs no worker, can tell which runs no live worker
would ever claim (``stranded_runs``). A run's recoveries (``run_recoveries``) are written by
the claim itself (a trigger on ``runs.epoch`` that fires only for a recovery), so the
kernel's hot path writes nothing more; every effect record names its claim and worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .base import LIVE_LEASES, RECOVERY_COLUMNS, RecoveryRow, RunRow, WorkerInfo, WorkerRow
from .common import run_row

FORGET_AFTER = 86_400.0  # seconds: rows of workers dead this long are deleted


class OperatorViews:
    """The workers registry, stranded runs and recoveries, on top of a store's named queries.
    A mixin listed after ``CommonStore``: the methods below it only declares are the
    store's own."""

    async def fetch(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def execute(self, query: str, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def clock(self) -> float:
        raise NotImplementedError

    async def check_tenant(self, run_id: str, tenant: str | None) -> None:
        raise NotImplementedError

    def lists(self, values: Sequence[str] | None) -> Any:
        """A list parameter of a named query (a JSON array for SQLite, an array for
        PostgreSQL); None stays None."""
        raise NotImplementedError

    async def list_recoveries(self, run_id: str, *, tenant: str | None = None) -> list[RecoveryRow]:
        await self.check_tenant(run_id, tenant)
        rows = await self.fetch("list_recoveries", {"run_id": run_id})
        return [RecoveryRow(**{k: r[k] for k in RECOVERY_COLUMNS}) for r in rows]

    async def beat_worker(self, worker: WorkerInfo) -> None:
        t = self.clock()
        params = {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "queues": json.dumps(list(worker.queues)),
            "wf_keys": json.dumps(list(worker.wf_keys)),
            "lease": worker.lease,
            "now": t,
            "expires_at": t + LIVE_LEASES * worker.lease,
        }
        await self.execute("upsert_worker", params)

    async def drop_worker(self, worker_id: str) -> None:
        await self.execute("delete_worker", {"id": worker_id})
        await self.execute("forget_workers", {"before": self.clock() - FORGET_AFTER})

    async def live_workers(self) -> list[WorkerRow]:
        rows = await self.fetch("live_workers", {"now": self.clock()})
        return [
            WorkerRow(
                id=r["id"],
                host=r["host"],
                pid=int(r["pid"]),
                queues=tuple(json.loads(r["queues"])),
                wf_keys=tuple(json.loads(r["wf_keys"])),
                lease=float(r["lease"]),
                started_at=float(r["started_at"]),
                heartbeat_at=float(r["heartbeat_at"]),
                expires_at=float(r["expires_at"]),
            )
            for r in rows
        ]

    async def stranded_runs(
        self,
        *,
        queues: Sequence[str] | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        claimable_for: float = 0.0,
        limit: int = 50,
    ) -> list[RunRow]:
        t = self.clock()
        params = {
            "now": t,
            "before": t - claimable_for,
            "queues": self.lists(queues),
            "workflow": workflow,
            "tenant": tenant,
            "limit": limit,
        }
        return [run_row(r) for r in await self.fetch("stranded_runs", params)]
