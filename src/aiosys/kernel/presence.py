"""A worker's presence in the store: its row in the workers registry, and what it reports of
runs that no live worker serves.

The worker registers when it starts, beats with every heartbeat and unregisters when it
stops (``Store.beat_worker``, ``drop_worker``), so ``aiosys runs list --stranded`` can tell,
from any process, which claimable runs no live worker would claim. A run of a
workflow@version that no live worker registered (code deployed as version "2" while runs of
"1" are pending) waits forever, and nothing would say so: every ``every`` seconds the worker
looks for such runs in the queues it serves, claimable for more than ``grace`` seconds, and
logs one ``run.unservable`` line (WARNING) per run, once per run in this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from ..store.base import RunRow, Store, WorkerInfo
from .oplog import run_event

log = logging.getLogger("aiosys.worker")

REMEMBERED = 100_000  # runs reported once per process; beyond it the oldest are forgotten
PAGE = 500  # stranded runs read per look


class Presence:
    def __init__(
        self,
        store: Store,
        describe: Callable[[], WorkerInfo],
        *,
        timeout: float,
        every: float,
        grace: float,
    ) -> None:
        """``describe``: the worker's registration as of now (its workflows may grow);
        ``timeout``: seconds a registry call may take; ``every``: seconds between looks for
        stranded runs; ``grace``: seconds a run must have been claimable to be reported."""
        self.store = store
        self.describe = describe
        self.timeout = timeout
        self.every = every
        self.grace = grace
        self._last_look: float | None = None
        self._reported: OrderedDict[str, None] = OrderedDict()

    async def beat(self) -> None:
        """Register, or refresh the registration; a failure is logged (the next beat retries)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.store.beat_worker(self.describe())
        except Exception as exc:
            log.warning("worker %s: registering in the store failed (%s)", self.describe().id, exc)

    async def leave(self) -> None:
        """Unregister; a failure only leaves the row to expire."""
        worker_id = self.describe().id
        try:
            async with asyncio.timeout(self.timeout):
                await self.store.drop_worker(worker_id)
        except Exception as exc:
            log.warning("worker %s: unregistering failed (%s); its row expires", worker_id, exc)

    async def look(self) -> None:
        """Report the stranded runs of this worker's queues not reported yet, at most once
        every ``every`` seconds."""
        t = time.monotonic()
        if self._last_look is not None and t - self._last_look < self.every:
            return
        self._last_look = t
        me = self.describe()
        try:
            async with asyncio.timeout(self.timeout):
                rows = await self.store.stranded_runs(
                    queues=me.queues, claimable_for=self.grace, limit=PAGE
                )
                new = [r for r in rows if r.id not in self._reported]
                served = await self._served() if new else {}
        except Exception as exc:
            log.warning("worker %s: looking for stranded runs failed (%s)", me.id, exc)
            return
        now = self.store.clock()
        for row in new:
            self._report(row, me, served.get(row.workflow, []), now)

    async def _served(self) -> dict[str, list[str]]:
        """workflow name -> the workflow@version live workers serve (any queue)."""
        served: dict[str, set[str]] = {}
        for w in await self.store.live_workers():
            for key in w.wf_keys:
                served.setdefault(key.rpartition("@")[0], set()).add(key)
        return {name: sorted(keys) for name, keys in served.items()}

    def _report(self, row: RunRow, me: WorkerInfo, served: list[str], now: float) -> None:
        self._reported[row.id] = None
        while len(self._reported) > REMEMBERED:
            self._reported.popitem(last=False)
        run_event(
            "unservable",
            row.id,
            row.wf_key,
            me.id,
            logging.WARNING,
            traceparent=row.traceparent,
            status=row.status,
            queue=row.queue,
            claimable_s=round(now - (row.available_at or now), 1),
            served=",".join(served) or "none",
            reason=f"no live worker serves {row.wf_key} on queue {row.queue}",
        )
