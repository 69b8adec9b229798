"""Executing one run: replay its history, perform new effects through the gate, and end it.

A run is executed from the start of its workflow function every time a worker takes it.
Effects already recorded return their recorded outcome (the effect log), so replay is
cheap and repeats nothing. When the workflow must wait (a timer, a signal, a child) the
coroutine is unwound with ``Parked`` and the run is parked in the store, holding no worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..errors import NonDeterminismError, RunCancelled, RunTimedOut
from ..store.base import (
    CANCELLED,
    DEAD,
    FAILED,
    SUCCEEDED,
    Finish,
    History,
    Park,
    Release,
    RunRow,
    SignalRow,
    Write,
    WriteResult,
    child_cancel_reason,
    now,
)
from . import serde
from .control import LeaseLost, Parked
from .gate import EffectCall
from .retry import NO_RETRY, Retry

if TYPE_CHECKING:
    from .app import App, WorkflowSpec
    from .commit import Committer

log = logging.getLogger("aiosys.runtime")

# The execution whose workflow code is running in this task (None inside a step).
current_execution: ContextVar[Execution | None] = ContextVar("aiosys_execution", default=None)


class Execution:
    """One attempt of a worker at one run."""

    def __init__(
        self,
        app: App,
        owner: str,
        committer: Committer,
        history: History,
        spec: WorkflowSpec,
    ) -> None:
        self.app = app
        self.owner = owner
        self.committer = committer
        self.history = history
        self.run: RunRow = history.run
        self.spec = spec
        self.signals: list[SignalRow] = list(history.signals)
        self.cancel_reason: str | None = history.run.cancel_reason
        self._seq = 0
        self._failed: dict[int, int] = {}  # id(exception) -> seq of the effect that raised it
        self._unflushed: list[asyncio.Future[WriteResult]] = []  # records not yet committed
        self.random = random.Random(self.run.id)  # deterministic per run

    # ---- called by effects ------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
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
            raise LeaseLost(f"{self.run.id}: could not record an effect: {exc}") from exc
        if not all(r.ok for r in results):
            raise LeaseLost(self.run.id)

    def check_cancelled(self) -> None:
        if self.cancel_reason is not None:
            raise RunCancelled(self.cancel_reason)

    def note_failed_effect(self, exc: BaseException, seq: int) -> None:
        self._failed[id(exc)] = seq

    def take_signal(self, name: str) -> SignalRow | None:
        for i, sig in enumerate(self.signals):
            if sig.name == name:
                return self.signals.pop(i)
        return None

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
        """Run the workflow to its end or its next wait, and write the outcome."""
        from .context import Context

        run = self.run
        if self.cancel_reason is not None:
            await self._end(self._finish(CANCELLED, error=RunCancelled(self.cancel_reason)))
            return
        token = current_execution.set(self)
        try:
            try:
                kwargs = self.spec.decode_input(run.input)
                remaining = None if run.deadline_at is None else run.deadline_at - now()
                if remaining is not None and remaining <= 0:
                    raise RunTimedOut(f"run {run.id} passed its timeout of {self.spec.timeout}s")
                # The deadline cancels the workflow; ``asyncio.timeout`` turns that into a
                # TimeoutError only when its block exits, so it is caught outside the block.
                try:
                    async with asyncio.timeout(remaining) as cm:
                        value = await self.spec.fn(Context(self), **kwargs)
                except TimeoutError:
                    if cm.expired():
                        raise RunTimedOut(
                            f"run {run.id} passed its timeout of {self.spec.timeout}s"
                        ) from None
                    raise
                result = serde.dumps(value, f"the result of workflow {run.workflow!r}")
            finally:
                current_execution.reset(token)
        except Parked as parked:
            wake_at = parked.wake_at
            if run.deadline_at is not None:
                wake_at = run.deadline_at if wake_at is None else min(wake_at, run.deadline_at)
            park = self.committer.submit(Park(self.owner, run.id, wake_at, run.wake_seq))
            try:
                await self.flush()
                parked_ok = (await park).ok
            except LeaseLost:
                return
            if not parked_ok:
                await self._after_lost_park()
            return
        except RunCancelled as cancelled:
            await self._end(self._finish(CANCELLED, error=cancelled))
            return
        except LeaseLost:
            log.info("run %s: lease lost, another worker has it", run.id)
            return
        except NonDeterminismError as exc:
            await self._end(self._finish(DEAD, error=exc))
            return
        except Exception as exc:
            failed_seq = self._failed.get(id(exc))
            # An effect that failed for good makes the run dead (resumable from that effect);
            # an error of the workflow's own code, or its timeout, makes it failed.
            status = DEAD if failed_seq is not None else FAILED
            await self._end(self._finish(status, error=exc, failed_seq=failed_seq))
            return
        await self._end(self._finish(SUCCEEDED, result=result))

    def _finish(
        self,
        status: str,
        *,
        result: str | None = None,
        error: BaseException | None = None,
        failed_seq: int | None = None,
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
            cancel_children=None if why is None else child_cancel_reason(self.run.id, why),
        )

    async def _end(self, finish: Finish) -> None:
        """Write the run's end in the same transaction as its last records, if it can."""
        done = self.committer.submit(finish)
        try:
            await self.flush()
            ok = (await done).ok
        except LeaseLost:
            ok = False
        if ok:
            self.app._notify_finished(self.run, finish)
        else:
            log.info("run %s: lease lost before it could end as %s", self.run.id, finish.status)

    async def _after_lost_park(self) -> None:
        """Parking failed: the run was woken (signal, child), cancelled, or taken over."""
        row = await self.app.store.get_run(self.run.id)
        if row is None or row.lease_owner != self.owner or row.status != "running":
            return
        write: Write
        if row.cancel_reason is not None:
            write = self._finish(CANCELLED, error=RunCancelled(row.cancel_reason))
            await self._end(write)
        else:
            await self.committer.submit(Release(self.owner, self.run.id))
