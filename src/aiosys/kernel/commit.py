"""Group commit: writes from every run in this process share transactions.

While one batch is being committed, new writes queue up; the next transaction takes them
all. With one run in flight this is one commit per write; with 64 in flight, one commit
carries dozens of runs' effect records, which is where most of the throughput comes from.

Poison is contained: when the store refuses a batch for what one write holds
(``StoreRefused``: a constraint, a value it cannot keep), the batch is written again one
write at a time, so the refused write fails only its own run's writer (and that run's later
writes in the batch, which must not land without it) and the other runs' records land. The
common path pays nothing for this: no savepoint, no extra statement; only a refused batch
is retried. A store that is down fails every writer of the batch, as before.

A batch that takes longer than ``timeout`` fails for its writers (their executions stop and
their runs are left to their leases); the committer also knows which runs have writes
waiting, and since when, so the worker stops renewing leases whose writes are stuck.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import StoreRefused
from ..store.base import Store, Write, WriteResult
from ..store.common import write_run_id

log = logging.getLogger("aiosys.commit")

MAX_BATCH = 512


class Committer:
    def __init__(self, store: Store, *, timeout: float | None = None) -> None:
        self._store = store
        self._timeout = timeout
        self._pending: list[tuple[Write, asyncio.Future[WriteResult]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # run id -> (monotonic time of its oldest unresolved write, writes unresolved)
        self._waiting: dict[str, tuple[float, int]] = {}
        # Who to tell whether a write's transaction committed (``submit(on_done=)``).
        self._hooks: dict[asyncio.Future[WriteResult], Callable[[bool], None]] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="aiosys-commit")

    async def stop(self) -> None:
        """Commit what is queued, let the batch in flight end (never cancelled halfway: its
        writers and hooks must hear how it ended), then stop the loop."""
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._wake.set()
            try:
                await task
            finally:
                self._closing = False
        await self.flush()  # written after the loop ended

    def submit(
        self, write: Write, on_done: Callable[[bool], None] | None = None
    ) -> asyncio.Future[WriteResult]:
        """Queue a write; the future resolves once its transaction has committed.
        ``on_done(committed)`` is called when the transaction ended, from what the store
        did, even if a waiter cancelled the future meanwhile (a cancelled run's records are
        still written when their batch is)."""
        fut: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._pending.append((write, fut))
        if on_done is not None:
            self._hooks[fut] = on_done
        run_id = write_run_id(write)
        since, n = self._waiting.get(run_id, (time.monotonic(), 0))
        self._waiting[run_id] = (since, n + 1)
        if self._task is None or self._task.done():
            self._task = None
            self.start()
        self._wake.set()
        return fut

    def stuck(self, older_than: float) -> set[str]:
        """Runs with a write submitted more than ``older_than`` seconds ago and not yet
        committed (or failed)."""
        limit = time.monotonic() - older_than
        return {run_id for run_id, (since, _) in self._waiting.items() if since < limit}

    def _resolved(self, write: Write) -> None:
        run_id = write_run_id(write)
        since, n = self._waiting.get(run_id, (0.0, 1))
        if n <= 1:
            self._waiting.pop(run_id, None)
        else:
            self._waiting[run_id] = (since, n - 1)

    async def flush(self) -> None:
        while self._pending:
            await self._commit_some()

    async def _loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._commit_some()

    async def _commit_some(self) -> None:
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._store.apply([w for w, _ in batch])
            for (_, fut), result in zip(batch, results, strict=True):
                self._settle(fut, result)
        except StoreRefused as exc:
            if len(batch) == 1:
                log.warning("a write was refused: %s", exc)
                self._fail(batch, exc)
            else:
                await self._one_by_one(batch)
        except Exception as exc:  # the store is down: every writer in the batch learns it
            log.warning("group commit of %d writes failed: %s", len(batch), exc)
            self._fail(batch, exc)
        finally:
            for w, _ in batch:
                self._resolved(w)

    async def _one_by_one(self, batch: list[tuple[Write, asyncio.Future[WriteResult]]]) -> None:
        """Write a refused batch one write at a time: each writer learns its own outcome.
        Once a run's write is refused, its later writes in the batch fail with it (a run's
        end must not land without the record before it)."""
        poisoned: dict[str, StoreRefused] = {}
        for write, fut in batch:
            run_id = write_run_id(write)
            if run_id in poisoned:
                self._fail([(write, fut)], poisoned[run_id])
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    (result,) = await self._store.apply([write])
            except StoreRefused as exc:
                log.warning("a write of run %s was refused: %s", run_id, exc)
                poisoned[run_id] = exc
                self._fail([(write, fut)], exc)
            except Exception as exc:
                self._fail([(write, fut)], exc)
            else:
                self._settle(fut, result)

    def _settle(self, fut: asyncio.Future[WriteResult], result: WriteResult) -> None:
        """The write's transaction committed (whether the write itself landed or not)."""
        if not fut.done():
            fut.set_result(result)
        hook = self._hooks.pop(fut, None)
        if hook is not None:
            hook(True)

    def _fail(self, batch: list[tuple[Write, asyncio.Future[WriteResult]]], exc: Exception) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)
            hook = self._hooks.pop(fut, None)
            if hook is not None:
                hook(False)
