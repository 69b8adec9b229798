"""Executing one run: replay its history, perform new effects through the gate, and end it.

An execution runs the workflow function once, from its start: effects already recorded
return their recorded outcome (the effect log), so replay is cheap and repeats nothing.

When the workflow must wait (a timer, a signal, a child), the execution is *suspended in
place*, never unwound: the wait is recorded, the run is parked in the store (``waiting``,
its lease given back, no worker slot held) and the coroutine stays where it is, in its
worker's bounded cache of parked executions (``Worker.suspend``). When the run is claimed
again by the same worker and no other claim came in between (the claim's epoch is ours plus
one), the execution resumes where it stopped. Only when it was evicted from the cache, its
worker stops, or another worker took the run, is it unwound (``Unwind`` through the
workflow's code, during which no effect may start) and the run replayed from its record.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import (
    NonDeterminismError,
    RunCancelled,
    RunTimedOut,
    StoreRefused,
    UnwindSwallowed,
)
from ..store.base import (
    CANCELLED,
    DEAD,
    FAILED,
    SUCCEEDED,
    Finish,
    History,
    Park,
    RunRow,
    SignalRow,
    WriteResult,
    child_cancel_reason,
)
from . import serde
from .control import LeaseLost, Unwind
from .gate import EffectCall
from .oplog import error_text, run_event
from .retry import NO_RETRY, Retry

if TYPE_CHECKING:
    from .app import App, WorkflowSpec
    from .commit import Committer

log = logging.getLogger("aiosys.runtime")

# The execution whose workflow code is running in this task (None inside a step).
current_execution: ContextVar[Execution | None] = ContextVar("aiosys_execution", default=None)


class Host(Protocol):
    """What an execution needs of the worker that runs it."""

    id: str
    committer: Committer

    async def suspend(self, execution: Execution, wake_at: float | None) -> RunRow:
        """Hold a parked execution until its run is claimed again; the claimed row, or
        ``Unwind`` when the execution must be dropped instead."""
        ...


class Execution:
    """One worker's execution of one run, from a claim until the run ends or the execution
    is unwound; it may span many parks and wakes."""

    def __init__(self, app: App, host: Host, history: History, spec: WorkflowSpec) -> None:
        self.app = app
        self.host = host
        self.owner = host.id
        self.committer = host.committer
        self.history = history
        self.run: RunRow = history.run
        self.epoch = history.run.epoch  # the claim this execution works under
        self.spec = spec
        self.signals: list[SignalRow] = list(history.signals)
        self._signals_as_of = history.run.wake_seq  # the wake-ups ``signals`` has seen
        self.cancel_reason: str | None = history.run.cancel_reason
        self.unwinding: str | None = None  # why the execution is being unwound, if it is
        self._seq = 0
        # id(exception) -> (exception, seq of the effect that raised it): the entry keeps the
        # exception alive, so its id() cannot be reused by a later object while it is here.
        self._failed: dict[int, tuple[BaseException, int]] = {}
        self._unflushed: list[asyncio.Future[WriteResult]] = []  # records not yet committed
        self._deadline: asyncio.Timeout | None = None
        self.random = random.Random(self.run.id)  # deterministic per run

    # ---- called by effects ------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def seq(self) -> int:
        """The number of the last effect this execution started (0 before its first)."""
        return self._seq

    def defer(self, record: asyncio.Future[WriteResult]) -> None:
        """Keep a queued record; the run's next effect or end waits for its commit."""
        self._unflushed.append(record)

    async def flush(self) -> None:
        """Wait until every record this execution queued is committed."""
        if not self._unflushed:
            return
        pending, self._unflushed = self._unflushed, []
        try:
            results = await asyncio.gather(*pending)
        except Exception as exc:
            raise self.lost(f"could not record an effect: {exc}") from exc
        if not all(r.ok for r in results):
            raise self.lost("a later claim of the run refused its record")

    def lost(self, why: str) -> LeaseLost:
        """The ``LeaseLost`` to raise: the execution unwinds from here on."""
        self.unwinding = self.unwinding or f"lease lost: {why}"
        return LeaseLost(f"run {self.run.id}: {why}")

    def check_unwinding(self) -> None:
        """No effect starts while the execution is being unwound."""
        if self.unwinding is not None:
            raise Unwind(f"run {self.run.id} is being unwound ({self.unwinding})")

    def check_cancelled(self) -> None:
        if self.cancel_reason is not None:
            raise RunCancelled(self.cancel_reason)

    def note_failed_effect(self, exc: BaseException, seq: int) -> None:
        self._failed[id(exc)] = (exc, seq)

    def failed_effect(self, exc: BaseException) -> int | None:
        """The seq of the effect that raised ``exc`` itself (not an equal or later error)."""
        entry = self._failed.get(id(exc))
        return entry[1] if entry is not None and entry[0] is exc else None

    def take_signal(self, name: str) -> SignalRow | None:
        for i, sig in enumerate(self.signals):
            if sig.name == name:
                return self.signals.pop(i)
        return None

    async def suspend(self, wake_at: float | None) -> None:
        """Park the run until ``wake_at`` (or a wake-up: signal, child end, cancel) and hold
        this execution until it is woken; then the wait is checked again by its caller.
        Signals sent meanwhile (every signal bumps the run's ``wake_seq``) are read again.

        Raises ``LeaseLost``/``Unwind`` when the execution must stop instead."""
        run = self.run
        if run.deadline_at is not None:
            wake_at = run.deadline_at if wake_at is None else min(wake_at, run.deadline_at)
        park = self.committer.submit(
            Park(self.owner, run.id, wake_at, run.wake_seq, epoch=self.epoch)
        )
        await self.flush()
        try:
            parked = (await park).ok
        except Exception as exc:
            raise self.lost(f"could not park: {exc}") from exc
        if parked:
            deadline, self._deadline = self._deadline, None
            if deadline is not None:
                deadline.reschedule(None)  # a parked run's deadline is its wake-up
            try:
                row = await self.host.suspend(self, wake_at)
            except Unwind as exc:
                self.unwinding = self.unwinding or str(exc) or "unwound"
                raise
            self._deadline = deadline
            self._resumed(row)
        else:
            # Something happened since the run's row was read: a wake-up (a signal, a child
            # ended), a cancel, or another claim. Look, and go on if the run is still ours.
            row_now = await self.app.store.get_run(run.id)
            if row_now is None or row_now.epoch != self.epoch or row_now.status != "running":
                raise self.lost("taken over while it parked")
            self._resumed(row_now)
        if self.run.cancel_reason is not None:
            self.cancel_reason = self.run.cancel_reason
        self.check_cancelled()
        if self.run.wake_seq != self._signals_as_of:
            woken_by = self.run.wake_seq
            self.signals = await self.app.store.load_signals(run.id)
            self._signals_as_of = woken_by

    def _resumed(self, row: RunRow) -> None:
        self.run = row
        self.epoch = row.epoch
        if self._deadline is not None and row.deadline_at is not None:
            loop = asyncio.get_running_loop()
            self._deadline.reschedule(loop.time() + row.deadline_at - self.app.store.clock())

    async def effect(
        self,
        kind: str,
        name: str,
        *,
        fn: Any = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        retry: Retry = NO_RETRY,
        timeout: float | None = None,
        returns: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.check_unwinding()
        call = EffectCall(
            run_execution=self,
            seq=self.next_seq(),
            kind=kind,
            name=name,
            fn=fn,
            args=args,
            kwargs=kwargs or {},
            retry=retry,
            timeout=timeout,
            returns=returns,
            params=params or {},
        )
        return await self.app.gate(call)

    # ---- the whole run ------------------------------------------------------------------

    async def execute(self) -> None:
        """Run the workflow to its end and write the outcome (unless it is unwound)."""
        from .context import Context

        run = self.run
        if self.cancel_reason is not None:
            await self._end(self._finish(CANCELLED, error=RunCancelled(self.cancel_reason)))
            return
        token = current_execution.set(self)
        try:
            try:
                kwargs = self.spec.decode_input(run.input)
                remaining = (
                    None if run.deadline_at is None else run.deadline_at - self.app.store.clock()
                )
                if remaining is not None and remaining <= 0:
                    raise RunTimedOut(f"run {run.id} passed its timeout of {self.spec.timeout}s")
                # The deadline cancels the workflow; ``asyncio.timeout`` turns that into a
                # TimeoutError only when its block exits, so it is caught outside the block.
                try:
                    async with asyncio.timeout(remaining) as cm:
                        self._deadline = cm
                        value = await self.spec.fn(Context(self), **kwargs)
                except TimeoutError:
                    if cm.expired():
                        raise RunTimedOut(
                            f"run {run.id} passed its timeout of {self.spec.timeout}s"
                        ) from None
                    raise
                finally:
                    self._deadline = None
                result = serde.dumps(value, f"the result of workflow {run.workflow!r}")
            finally:
                current_execution.reset(token)
        except Unwind as exc:
            if isinstance(exc, LeaseLost) and await self._if_refused(exc):
                return
            log.info("run %s: execution unwound (%s)", run.id, self.unwinding or exc)
            return
        except RunCancelled as cancelled:
            if await self._swallowed_unwind():
                return
            await self._end(self._finish(CANCELLED, error=cancelled))
            return
        except NonDeterminismError as exc:
            if await self._swallowed_unwind():
                return
            await self._end(self._finish(DEAD, error=exc))
            return
        except Exception as exc:
            if await self._swallowed_unwind():
                return
            failed_seq = self.failed_effect(exc)
            # An effect that failed for good makes the run dead (resumable from that effect);
            # an error of the workflow's own code, or its timeout, makes it failed.
            status = DEAD if failed_seq is not None else FAILED
            await self._end(self._finish(status, error=exc, failed_seq=failed_seq))
            return
        if await self._swallowed_unwind():
            return
        if self.cancel_reason is not None:  # a cancel that arrived before the end wins
            await self._end(self._finish(CANCELLED, error=RunCancelled(self.cancel_reason)))
            return
        await self._end(self._finish(SUCCEEDED, result=result))

    async def _swallowed_unwind(self) -> bool:
        """The workflow ended although its execution was being unwound: it caught the
        ``Unwind`` and went on. Its outcome cannot be trusted: fail the run, if no other
        claim has it (a parked run nobody claimed since; a running one still ours)."""
        if self.unwinding is None:
            return False
        error = UnwindSwallowed(
            f"workflow {self.run.workflow!r} caught the unwinding of its execution "
            f"({self.unwinding}) and went on; never catch BaseException (or use a bare "
            "except:) around an aiosys effect"
        )
        log.error("run %s: %s", self.run.id, error)
        finish = self._finish(FAILED, error=error, parked=True)
        try:
            await self.committer.submit(finish)
        except Exception as exc:  # the store failed too: the run stays as it was
            log.warning("run %s: could not fail it: %s", self.run.id, exc)
        return True

    def _finish(
        self,
        status: str,
        *,
        result: str | None = None,
        error: BaseException | None = None,
        failed_seq: int | None = None,
        parked: bool = False,
    ) -> Finish:
        # A run cancelled or timed out takes its children that are not detached with it.
        why = None
        if status == CANCELLED:
            why = f"was cancelled: {self.cancel_reason or error}"
        elif isinstance(error, RunTimedOut):
            why = f"timed out: {error}"
        return Finish(
            owner=self.owner,
            run_id=self.run.id,
            status=status,
            result=result,
            error=None if error is None else serde.dump_error(error),
            failed_seq=failed_seq,
            parent_id=self.run.parent_id,
            epoch=self.epoch,
            parked=parked,
            cancel_children=None if why is None else child_cancel_reason(self.run.id, why),
        )

    async def _end(self, finish: Finish) -> None:
        """Write the run's end in the same transaction as its last records, if it can."""
        done = self.committer.submit(finish)
        try:
            await self.flush()
            ok = (await done).ok
        except (LeaseLost, StoreRefused) as lost:
            if _refusal(finish.error) is None and await self._if_refused(lost):
                return
            ok = False
        except Exception as exc:
            log.warning("run %s: could not end it as %s: %s", self.run.id, finish.status, exc)
            ok = False
        if ok:
            run = self.run
            took = None if run.started_at is None else (self.app.store.clock() - run.started_at)
            run_event(
                "finished" if finish.status == SUCCEEDED else "failed",
                run.id,
                run.wf_key,
                self.owner,
                logging.INFO if finish.status == SUCCEEDED else logging.WARNING,
                traceparent=run.traceparent,
                status=finish.status,
                duration_ms=None if took is None else round(took * 1000, 1),
                error=error_text(finish.error),
            )
            self.app._notify_finished(self.run, finish)
        else:
            log.info("run %s: lease lost before it could end as %s", self.run.id, finish.status)

    async def _if_refused(self, lost: BaseException) -> bool:
        """If the store refused one of the run's writes (``StoreRefused``, directly or as the
        cause of ``LeaseLost``), end the run ``dead`` with that reason rather than leave it
        to be replayed into the same refusal forever; True if it was so."""
        refused = lost if isinstance(lost, StoreRefused) else lost.__cause__
        if not isinstance(refused, StoreRefused):
            return False
        log.warning("run %s: %s; it ends dead", self.run.id, refused)
        await self._end(self._finish(DEAD, error=refused))
        return True


def _refusal(error: str | None) -> str | None:
    """The refusal an end's error records, if it records one (so ending with it is not
    attempted twice)."""
    if error is not None and '"aiosys.errors.StoreRefused"' in error:
        return error
    return None
