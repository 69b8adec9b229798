"""The worker: claims runs under a lease, executes them, and keeps the lease alive.

A worker serves named queues with a concurrency limit of its own. It sleeps until there is
work: a run started in this process, a notification from the store (PostgreSQL's
LISTEN/NOTIFY), the next timer or expiring lease, or a poll. Parked runs hold no slot.

Stopping drains: the worker stops claiming, lets the runs in flight go on (their leases
still renewed) until they end or park or ``grace`` seconds pass, then interrupts the rest
and gives them back to the queue (``Release``) for another worker to replay. ``force()``
cuts the grace period short (the ``aiosys worker`` command's second signal).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..store.base import Claim, History, Release, RunRow, now
from .commit import Committer
from .runtime import Execution

if TYPE_CHECKING:
    from .app import App, WorkflowSpec

log = logging.getLogger("aiosys.worker")


class Worker:
    def __init__(
        self,
        app: App,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        lease: float | None = None,
        idle_poll: float = 1.0,
        drain_grace: float = 30.0,
    ) -> None:
        self.app = app
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.queues = queues or list(app.queues)
        self.concurrency = concurrency or app.concurrency
        self.lease = lease or app.lease
        self.idle_poll = idle_poll
        self.drain_grace = drain_grace
        self.committer = Committer(app.store)
        self._active: dict[str, tuple[asyncio.Task[None], str]] = {}
        self._executions: dict[str, Execution] = {}
        self._per_queue: Counter[str] = Counter()
        self._kick = asyncio.Event()
        self._more = True  # the last claim filled every slot: more work may be waiting
        # Queues the last claim could not fully serve for want of a slot (a per-worker or a
        # global limit): a run of theirs ending may let their backlog through.
        self._limited: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False  # no more claims
        self._closing = False  # no more heartbeats
        self._idle = asyncio.Event()  # set when the last run in flight left, while stopping
        self._forced = asyncio.Event()
        self.stopped = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.committer.start()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.create_task(self._heartbeat_loop(), name="aiosys-heartbeat")
        self._loops = [
            loop.create_task(self._claim_loop(), name="aiosys-claim"),
            self._heartbeat,
            loop.create_task(self._listen_loop(), name="aiosys-listen"),
        ]
        log.info("worker %s serving queues %s", self.id, ", ".join(self.queues))

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming; let the runs in flight go on until they end or park, for up to
        ``grace`` seconds (or until ``force()``); then interrupt the rest and give them back
        to the queue. ``grace=0`` (the default, and ``async with app:``) gives back at once."""
        # The flag ends the loops even if a cancellation is swallowed on its way (Python
        # 3.11's wait_for drops one that races with the awaited event being set).
        self._stopping = True
        claiming = [t for t in self._loops if t is not self._heartbeat]  # leases go on
        for task in claiming:
            task.cancel()
        await asyncio.gather(*claiming, return_exceptions=True)
        if self._active and grace > 0 and not self._forced.is_set():
            await self._drain(grace)
        running = dict(self._active)
        if running:
            log.warning(
                "worker %s: giving back %d run(s) still in flight: %s",
                self.id,
                len(running),
                ", ".join(running),
            )
        for task, _ in running.values():
            task.cancel()
        await asyncio.gather(*(t for t, _ in running.values()), return_exceptions=True)
        releases = [self.committer.submit(Release(self.id, run_id)) for run_id in running]
        await asyncio.gather(*releases, return_exceptions=True)
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self.committer.stop()
        self.stopped.set()

    async def drain(self) -> None:
        """``stop`` with this worker's ``drain_grace`` (what SIGTERM does to a worker)."""
        await self.stop(self.drain_grace)

    def force(self) -> None:
        """End a drain now: the runs still in flight are given back."""
        self._forced.set()

    async def _drain(self, grace: float) -> None:
        in_flight = list(self._active)
        log.info(
            "worker %s: draining %d run(s) in flight for up to %gs: %s",
            self.id,
            len(in_flight),
            grace,
            ", ".join(in_flight),
        )
        self._idle.clear()
        waits = [
            asyncio.ensure_future(self._idle.wait()),
            asyncio.ensure_future(self._forced.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        done = [run_id for run_id in in_flight if run_id not in self._active]
        if done:
            log.info(
                "worker %s: drained %d run(s) (ended or parked): %s",
                self.id,
                len(done),
                ", ".join(done),
            )
        if self._active:
            why = "forced" if self._forced.is_set() else f"grace period of {grace:g}s over"
            log.warning("worker %s: %s with %d run(s) in flight", self.id, why, len(self._active))

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self.stopped.wait()
        finally:
            if not self.stopped.is_set():
                await self.stop()

    # ---- taking work --------------------------------------------------------------------

    def kick(self) -> None:
        self._more = True
        self._kick.set()

    def _free(self, queue: str) -> int:
        free = self.concurrency - len(self._active)
        limit = self.app.queues.get(queue)
        if limit is not None and limit.worker_concurrency is not None:
            free = min(free, limit.worker_concurrency - self._per_queue[queue])
        return free

    def can_take(self, queue: str) -> bool:
        """Whether a run started in this process can be leased to this worker directly."""
        spec = self.app.queues.get(queue)
        return (
            queue in self.queues
            and (spec is None or spec.concurrency is None)
            and self._free(queue) > 0
            and not self._stopping
        )

    def adopt_new(self, row: RunRow, spec: WorkflowSpec) -> None:
        """Execute a run this worker leased at creation: it has no history to read."""
        if not self._fits(row):  # a claim filled the slot while the run was being written
            self._give_back([row])
            return
        self._spawn(row, History(run=row, effects={}, signals=[]))

    def _fits(self, row: RunRow) -> bool:
        return self._free(row.queue) > 0 and not self._stopping

    def _give_back(self, rows: list[RunRow]) -> None:
        """Release runs leased to this worker that it has no slot for (a claim and a start
        raced for the last slot); if the release fails, their leases expire."""
        for row in rows:
            self.committer.submit(Release(self.id, row.id)).add_done_callback(_quiet)

    def is_running(self, run_id: str) -> bool:
        return run_id in self._active

    def cancel_local(self, run_id: str, reason: str) -> None:
        ex = self._executions.get(run_id)
        if ex is not None:
            ex.cancel_reason = reason

    def cancel_children_local(self, run_id: str, reason: str) -> None:
        """Flag the runs this worker executes that descend from ``run_id`` through children
        not started detached, as the store's cancel cascade did, so they stop at their next
        effect rather than at the next heartbeat (which finds the rest)."""
        cancelled = {run_id}
        while True:
            found = [
                ex
                for ex in self._executions.values()
                if ex.run.parent_id in cancelled
                and not ex.run.detached
                and ex.run.id not in cancelled
            ]
            if not found:
                return
            for ex in found:
                ex.cancel_reason = ex.cancel_reason or reason
                cancelled.add(ex.run.id)

    def _spawn(self, row: RunRow, history: History | None) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(row, history))
        self._active[row.id] = (task, row.queue)
        self._per_queue[row.queue] += 1

    async def _execute(self, row: RunRow, history: History | None) -> None:
        try:
            if history is None:
                history = await self.app.store.load_history(row.id)
                if history is None:
                    return
            spec = self.app.spec(history.run.workflow, history.run.version)
            ex = Execution(self.app, self.id, self.committer, history, spec)
            self._executions[row.id] = ex
            await ex.execute()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store failed under us: leave the run to its lease; another claim replays it.
            log.exception("run %s: worker could not finish it; its lease will expire", row.id)
        finally:
            self._active.pop(row.id, None)
            self._executions.pop(row.id, None)
            self._per_queue[row.queue] -= 1
            if self._more or row.queue in self._limited:
                self._kick.set()
            if self._stopping and not self._active:
                self._idle.set()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            slots = {q: n for q in self.queues if (n := self._free(q)) > 0}
            if not slots:
                self._limited = set(self.queues)
            next_at: float | None = None
            if slots:
                claim = Claim(
                    owner=self.id,
                    wf_keys=self.app.wf_keys,
                    slots=slots,
                    global_limits={
                        q: s.concurrency
                        for q, s in self.app.queues.items()
                        if s.concurrency is not None and q in slots
                    },
                    lease=self.lease,
                )
                try:
                    rows, next_at = await self.app.store.claim(claim)
                except Exception as exc:
                    log.warning("worker %s: claim failed (%s); retrying", self.id, exc)
                    await asyncio.sleep(self.idle_poll)
                    continue
                # A run started here may have taken a slot while the claim was in flight.
                spare: list[RunRow] = []
                for row in rows:
                    if self._fits(row):
                        self._spawn(row, None)
                    else:
                        spare.append(row)
                self._give_back(spare)
                self._more = len(rows) >= sum(slots.values())
                self._limited = {
                    q
                    for q in self.queues
                    if q not in slots or q in claim.global_limits or self._free(q) <= 0
                }
                if self._more:
                    continue
            timeout = self.idle_poll
            if next_at is not None:
                timeout = max(0.0, min(timeout, next_at - now()))
            try:
                async with asyncio.timeout(timeout):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()

    async def _heartbeat_loop(self) -> None:
        while not self._closing:  # a draining worker keeps the leases of its runs
            await asyncio.sleep(self.lease / 3)
            try:
                held = await self.app.store.heartbeat(self.id, self.lease)
            except Exception as exc:
                log.warning("worker %s: heartbeat failed (%s)", self.id, exc)
                continue
            for run_id, reason in held.items():
                if reason is not None:
                    self.cancel_local(run_id, reason)
            # A run leased to us that no task executes was abandoned (its writes failed):
            # give it back rather than renew its lease forever, so it is replayed.
            stale = [run_id for run_id in held if run_id not in self._active]
            for run_id in stale:
                log.warning("worker %s: run %s was abandoned; releasing it", self.id, run_id)
                self.committer.submit(Release(self.id, run_id)).add_done_callback(_quiet)

    async def _listen_loop(self) -> None:
        while not self._stopping:
            try:
                await self.app.store.wait_for_work(self.idle_poll)
            except Exception as exc:
                log.warning("worker %s: waiting for notifications failed (%s)", self.id, exc)
                await asyncio.sleep(self.idle_poll)
            self._kick.set()


def _quiet(fut: asyncio.Future[Any]) -> None:
    """Retrieve a background write's outcome; a failure only means the lease will expire."""
    if not fut.cancelled():
        fut.exception()
