"""The worker: claims runs under a lease, executes them, and keeps the lease alive.

A worker serves named queues with a concurrency limit of its own. It sleeps until there is
work: a run started in this process, a notification from the store (PostgreSQL's
LISTEN/NOTIFY), a timer of a run it parked, the next timer or expiring lease, or a poll.

Parked runs hold no slot and no lease, but their executions stay suspended here, in a bounded
cache (least recently parked evicted first, as Temporal's sticky workflow cache does): when
such a run is claimed again and no other claim came in between (the claim's epoch is the
parked execution's plus one), it resumes in place instead of being replayed.

Invariants: a worker never executes one run twice at once (its claims exclude the runs it
executes, and a claimed run found in the cache resumes that execution or unwinds it first);
heartbeats renew only the runs it executes whose writes are not stuck, so a run nobody here
executes expires and is claimed again. Its loops (claim, heartbeat, notifications, commit)
are supervised: one that dies unexpectedly is restarted, and a loop that keeps dying stops
the worker loudly.

Stopping drains: the worker stops claiming, lets the runs in flight go on (their leases
still renewed) until they end or park or ``grace`` seconds pass, then interrupts the rest
and gives them back to the queue (``Release``) for another worker to replay. ``force()``
cuts the grace period short (the ``aiosys worker`` command's second signal). Parked
executions are dropped at once: their runs stay parked in the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..store.base import Claim, History, Release, RunRow, WorkerInfo
from .commit import Committer
from .control import Unwind
from .gcfreeze import freeze_once
from .oplog import run_event
from .presence import Presence
from .principal import bind_principal, principal_of_run
from .recovery import log_recovered, over_cap
from .retention import Pruner, configured_retention
from .runtime import Execution

if TYPE_CHECKING:
    from .app import App, WorkflowSpec

log = logging.getLogger("aiosys.worker")

# A loop that dies this many times within RESTART_WINDOW seconds stops the worker.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
CANCEL_POLL = 0.25  # seconds between looks for cancel requests of runs executing here


class Worker:
    def __init__(
        self,
        app: App,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        lease: float | None = None,
        idle_poll: float = 1.0,
        max_parked: int | None = None,
        store_timeout: float | None = None,
        drain_grace: float = 30.0,
        stranded_every: float = 10.0,
        stranded_grace: float | None = None,
        only: Iterable[str] | None = None,
    ) -> None:
        """``stranded_every``: seconds between looks for runs no live worker serves in
        this worker's queues (logged as ``run.unservable``); ``stranded_grace``: seconds
        such a run must have been claimable to be reported (default: the lease). ``only``:
        serve only these runs (ids), the runs added with ``include`` and their descendants
        (the children they start, recursively), instead of every run of the app's
        workflows in ``queues``. A run this worker leased at its start (``adopt_new``) is
        one of its own."""
        self.app = app
        self.only: set[str] | None = None if only is None else set(only)
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.queues = queues or list(app.queues)
        self.concurrency = concurrency or app.concurrency
        self.lease = lease or app.lease
        self.idle_poll = idle_poll
        self.max_parked = app.max_parked if max_parked is None else max_parked
        self.drain_grace = drain_grace
        # A store call (claim, heartbeat, group commit) that takes longer fails: a hung
        # connection must not hold the loops forever. Default: the lease.
        self.store_timeout = store_timeout or self.lease
        self.committer = Committer(app.store, timeout=self.store_timeout)
        self.presence = Presence(
            app.store,
            self.describe,
            timeout=self.store_timeout,
            every=stranded_every,
            grace=self.lease if stranded_grace is None else stranded_grace,
        )
        # Runs holding a slot (being loaded, replayed, or executing), as claimed.
        self._running: dict[str, RunRow] = {}
        self._executions: dict[str, Execution] = {}  # the execution of each running run
        self._parked: OrderedDict[str, Execution] = OrderedDict()  # least recently parked first
        self._wakes: dict[Execution, asyncio.Future[RunRow]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
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
        self._last_cancel_poll = 0.0
        self.stopped = asyncio.Event()
        # Prunes runs ended longer ago than the app's retention (None: kept forever).
        keep = configured_retention(app.retention)
        self.pruner = None if keep is None else Pruner(app.store, keep)

    # ---- lifecycle ------------------------------------------------------------------------

    def describe(self) -> WorkerInfo:
        """This worker's entry in the store's workers registry."""
        return WorkerInfo(
            id=self.id,
            host=self.host,
            pid=os.getpid(),
            queues=tuple(self.queues),
            wf_keys=tuple(self.app.wf_keys),
            lease=self.lease,
        )

    async def start(self) -> None:
        freeze_once()  # what the process holds now is not the collector's (gcfreeze)
        await self.presence.beat()
        self.committer.start()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.create_task(
            self._supervise("heartbeat", self._heartbeat_loop), name="aiosys-heartbeat"
        )
        self._loops = [
            loop.create_task(self._supervise("claim", self._claim_loop), name="aiosys-claim"),
            self._heartbeat,
            loop.create_task(self._supervise("listen", self._listen_loop), name="aiosys-listen"),
        ]
        if self.pruner is not None:
            self._loops.append(
                loop.create_task(
                    self._supervise("retention", self.pruner.loop), name="aiosys-retention"
                )
            )
        log.info("worker %s serving queues %s", self.id, ", ".join(self.queues))

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming; let the runs in flight go on until they end or park, for up to
        ``grace`` seconds (or until ``force()``); then interrupt the rest and give them back
        to the queue. ``grace=0`` (the default, and ``async with app:``) gives back at once.
        Parked executions are dropped (their runs stay parked in the store)."""
        # The flag ends the loops even if a cancellation is swallowed on its way (Python
        # 3.11's wait_for drops one that races with the awaited event being set).
        self._stopping = True
        claiming = [t for t in self._loops if t is not self._heartbeat]  # leases go on
        for task in claiming:
            task.cancel()
        await asyncio.gather(*claiming, return_exceptions=True)
        for run_id in list(self._parked):
            self._drop_parked(run_id, "its worker is stopping")
        if self._running and grace > 0 and not self._forced.is_set():
            await self._drain(grace)
        running = {run_id: row.epoch for run_id, row in self._running.items()}
        for run_id, ex in self._executions.items():
            ex.unwinding = ex.unwinding or "its worker is stopping"
            running[run_id] = ex.epoch
        if running:
            log.warning(
                "worker %s: giving back %d run(s) still in flight: %s",
                self.id,
                len(running),
                ", ".join(running),
            )
        tasks = list(self._tasks)
        for task in tasks:
            if task.get_name() in running:  # parked ones unwind by themselves (Unwind)
                task.cancel()
        if tasks:
            _, hung = await asyncio.wait(tasks, timeout=5.0)
            for task in hung:  # a workflow that swallowed its unwinding and still waits
                log.error("worker %s: run %s would not unwind; cancelling it", self.id, task)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        releases = [
            self.committer.submit(Release(self.id, run_id, epoch=epoch))
            for run_id, epoch in running.items()
        ]
        await asyncio.gather(*releases, return_exceptions=True)
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self.presence.leave()
        await self.committer.stop()
        self.stopped.set()

    async def drain(self) -> None:
        """``stop`` with this worker's ``drain_grace`` (what SIGTERM does to a worker)."""
        await self.stop(self.drain_grace)

    def force(self) -> None:
        """End a drain now: the runs still in flight are given back."""
        self._forced.set()

    async def _drain(self, grace: float) -> None:
        in_flight = list(self._running)
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
        done = [run_id for run_id in in_flight if run_id not in self._running]
        if done:
            log.info(
                "worker %s: drained %d run(s) (ended or parked): %s",
                self.id,
                len(done),
                ", ".join(done),
            )
        if self._running:
            why = "forced" if self._forced.is_set() else f"grace period of {grace:g}s over"
            log.warning("worker %s: %s with %d run(s) in flight", self.id, why, len(self._running))

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self.stopped.wait()
        finally:
            if not self.stopped.is_set():
                await self.stop()

    async def _supervise(self, name: str, loop_fn: Callable[[], Awaitable[None]]) -> None:
        """Run one of the worker's loops; restart it if it dies, stop the worker loudly if it
        keeps dying (a worker never runs on half-alive)."""
        deaths: list[float] = []
        while not self._closing:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                t = time.monotonic()
                deaths = [d for d in deaths if t - d < RESTART_WINDOW] + [t]
                if len(deaths) >= MAX_RESTARTS:
                    log.critical(
                        "worker %s: its %s loop died %d times in %.0f s; stopping the worker",
                        self.id,
                        name,
                        len(deaths),
                        RESTART_WINDOW,
                        exc_info=True,
                    )
                    asyncio.get_running_loop().create_task(self.stop())
                    return
                log.exception("worker %s: its %s loop died; restarting it", self.id, name)
                await asyncio.sleep(min(1.0, 0.05 * 2 ** len(deaths)))

    # ---- taking work --------------------------------------------------------------------

    def kick(self) -> None:
        self._more = True
        self._kick.set()

    def include(self, run_id: str) -> None:
        """Serve ``run_id`` (and its children) too, when this worker serves only some runs:
        it is claimed when it is claimable. A worker that serves every run ignores it."""
        if self.only is not None and run_id not in self.only:
            self.only.add(run_id)
            self.kick()

    def _free(self, queue: str) -> int:
        free = self.concurrency - len(self._running)
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
        if not self._fits(row) or row.id in self._running:
            self._give_back([row])
            return
        self._spawn(row, History(run=row, effects={}, signals=[]))

    def _fits(self, row: RunRow) -> bool:
        return self._free(row.queue) > 0 and not self._stopping

    def _give_back(self, rows: list[RunRow]) -> None:
        """Release runs leased to this worker that it has no slot for (a claim and a start
        raced for the last slot); if the release fails, their leases expire."""
        for row in rows:
            release = Release(self.id, row.id, epoch=row.epoch)
            self.committer.submit(release).add_done_callback(_quiet)

    @property
    def _active(self) -> dict[str, RunRow]:
        """The runs holding a slot here (the name earlier versions used)."""
        return self._running

    def is_running(self, run_id: str) -> bool:
        return run_id in self._running

    def cancel_local(self, run_id: str, reason: str) -> None:
        ex = self._executions.get(run_id)
        if ex is not None:
            ex.cancel_reason = reason
        if run_id in self._parked:  # its run ended in the store: nothing will wake it
            self._drop_parked(run_id, "its run was cancelled")

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

    def _take_slot(self, row: RunRow) -> None:
        if self.only is not None:  # a run it executes: its children are served here too
            self.only.add(row.id)
        self._running[row.id] = row
        self._per_queue[row.queue] += 1

    def _free_slot(self, run_id: str) -> None:
        row = self._running.pop(run_id, None)
        if row is None:
            return
        queue = row.queue
        self._per_queue[queue] -= 1
        if self._more or queue in self._limited:
            self._kick.set()
        if self._stopping and not self._running:
            self._idle.set()

    def _spawn(self, row: RunRow, history: History | None) -> None:
        self._take_slot(row)
        task = asyncio.get_running_loop().create_task(self._execute(row, history), name=row.id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, row: RunRow, history: History | None) -> None:
        ex: Execution | None = None
        try:
            buried = over_cap(row, self.app.spec(row.workflow, row.version), self.id)
            if buried is not None:  # recovered too often: end it, never execute it again
                log.warning("run %s: recovered %d times; it ends dead", row.id, row.recoveries)
                if (await self.committer.submit(buried)).ok:
                    self.app._notify_finished(row, buried)
                return
            if history is None:
                history = await self.app.store.load_history(row.id)
                if history is None:
                    return
            if history.run.epoch != row.epoch:  # claimed again meanwhile: not ours anymore
                return
            spec = self.app.spec(history.run.workflow, history.run.version)
            run = history.run
            run_event(
                "started",
                run.id,
                run.wf_key,
                self.id,
                logging.WARNING if run.recoveries else logging.INFO,
                traceparent=run.traceparent,
                claims=run.claims,
                recoveries=run.recoveries,
            )
            ex = Execution(self.app, self, history, spec)
            self._executions[row.id] = ex
            if run.principal is None:  # the local principal's run
                await ex.execute()
            else:  # its effects (a child's start, a step's calls) act as who started it
                with bind_principal(principal_of_run(run)):
                    await ex.execute()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store failed under us: leave the run to its lease; another claim replays it.
            log.exception("run %s: worker could not finish it; its lease will expire", row.id)
        finally:
            if ex is None or self._executions.get(row.id) is ex:
                self._executions.pop(row.id, None)
                self._free_slot(row.id)
            if ex is not None and self._parked.get(row.id) is ex:
                self._drop_parked(row.id, "its execution ended")

    # ---- parked executions ----------------------------------------------------------------

    async def suspend(self, ex: Execution, wake_at: float | None) -> RunRow:
        """Hold ``ex`` (whose run was just parked in the store) until its run is claimed
        again: its slot is freed meanwhile. Returns the run as claimed, or raises ``Unwind``
        when the execution is evicted, the worker stops, or another claim came in between."""
        run_id = ex.run.id
        if self._stopping:
            raise Unwind("its worker is stopping")
        if self._executions.get(run_id) is ex:
            del self._executions[run_id]
            self._free_slot(run_id)
        wake: asyncio.Future[RunRow] = asyncio.get_running_loop().create_future()
        self._wakes[ex] = wake
        self._parked[run_id] = ex
        if wake_at is not None:
            loop = asyncio.get_running_loop()
            self._timers[run_id] = loop.call_at(
                loop.time() + wake_at - self.app.store.clock(), self.kick
            )
        while len(self._parked) > self.max_parked:
            oldest = next(iter(self._parked))
            self._drop_parked(oldest, f"evicted: more than {self.max_parked} parked executions")
        self._kick.set()  # a slot is free; the run may also have been woken already
        try:
            return await wake
        finally:
            self._wakes.pop(ex, None)

    def _drop_parked(self, run_id: str, why: str) -> None:
        ex = self._parked.pop(run_id, None)
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        if ex is None:
            return
        ex.unwinding = ex.unwinding or why
        wake = self._wakes.get(ex)
        if wake is not None and not wake.done():
            wake.set_exception(Unwind(why))

    def _resume(self, row: RunRow) -> bool:
        """A claimed run whose execution is parked here: resume it in place if no other
        claim came in between; else drop that execution (the run is replayed)."""
        ex = self._parked.get(row.id)
        if ex is None:
            return False
        if row.epoch != ex.epoch + 1:
            self._drop_parked(row.id, "the run was claimed elsewhere meanwhile")
            return False
        self._parked.pop(row.id)
        timer = self._timers.pop(row.id, None)
        if timer is not None:
            timer.cancel()
        self._take_slot(row)
        self._executions[row.id] = ex
        self._wakes[ex].set_result(row)
        return True

    # ---- loops ------------------------------------------------------------------------------

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
                    exclude=list(self._running),
                    only=None if self.only is None else sorted(self.only),
                )
                try:
                    async with asyncio.timeout(self.store_timeout):
                        rows, next_at = await self.app.store.claim(claim)
                except Exception as exc:
                    log.warning("worker %s: claim failed (%s); retrying", self.id, exc)
                    await asyncio.sleep(self.idle_poll)
                    continue
                # A run started here may have taken a slot while the claim was in flight.
                spare: list[RunRow] = []
                for row in rows:
                    if row.recovered_from is not None:
                        log_recovered(row, self.id)
                    if row.id in self._running:  # cannot happen (excluded); never twice
                        log.error("worker %s: claimed run %s it executes", self.id, row.id)
                    elif self._fits(row):
                        if not self._resume(row):
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
                timeout = max(0.0, min(timeout, next_at - self.app.store.clock()))
            try:
                async with asyncio.timeout(timeout):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()

    async def _heartbeat_loop(self) -> None:
        while not self._closing:  # a draining worker keeps the leases of its runs
            await asyncio.sleep(self.lease / 3)
            # A run whose writes have hung for a third of the lease is not renewed: if the
            # store took them after all, the run moves on; if not, another worker can.
            stuck = self.committer.stuck(self.lease / 3)
            runs = [run_id for run_id in self._running if run_id not in stuck]
            if stuck:
                log.warning(
                    "worker %s: writes of %d runs are stuck; not renewing their leases",
                    self.id,
                    len(stuck),
                )
            try:
                async with asyncio.timeout(self.store_timeout):
                    held = await self.app.store.heartbeat(self.id, self.lease, runs)
            except Exception as exc:
                log.warning("worker %s: heartbeat failed (%s)", self.id, exc)
                continue
            for run_id, reason in held.items():
                if reason is not None:
                    self.cancel_local(run_id, reason)
            await self.presence.beat()

    async def _listen_loop(self) -> None:
        while not self._stopping:
            try:
                await self.app.store.wait_for_work(self.idle_poll)
            except Exception as exc:
                log.warning("worker %s: waiting for notifications failed (%s)", self.id, exc)
                await asyncio.sleep(self.idle_poll)
            self._kick.set()
            await self._poll_cancels()
            await self.presence.look()

    async def _poll_cancels(self) -> None:
        """Look for cancels sent from other processes: to the runs executing here, so a run
        stops at its next effect (not at the next heartbeat), and to runs parked here, so
        their executions are unwound at once (a cancel ends a parked run in the store)."""
        t = time.monotonic()
        if not (self._executions or self._parked) or t - self._last_cancel_poll < CANCEL_POLL:
            return
        self._last_cancel_poll = t
        parked = list(self._parked)
        try:
            async with asyncio.timeout(self.store_timeout):
                requests = await self.app.store.cancel_requests(self.id) if self._executions else {}
                ended = await self.app.store.ended(parked) if parked else set()
        except Exception as exc:
            log.warning("worker %s: reading cancel requests failed (%s)", self.id, exc)
            return
        for run_id, reason in requests.items():
            self.cancel_local(run_id, reason)
        for run_id in ended:
            self._drop_parked(run_id, "its run ended meanwhile (cancelled, or ended elsewhere)")


def _quiet(fut: asyncio.Future[Any]) -> None:
    """Retrieve a background write's outcome; a failure only means the lease will expire."""
    if not fut.cancelled():
        fut.exception()
