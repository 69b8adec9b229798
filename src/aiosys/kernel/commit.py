"""Group commit: writes from every run in this process share transactions.

While one batch is being committed, new writes queue up; the next transaction takes them
all. With one run in flight this is one commit per write; with 64 in flight, one commit
carries dozens of runs' effect records, which is where most of the throughput comes from.
"""

from __future__ import annotations

import asyncio
import logging

from ..store.base import Store, Write, WriteResult

log = logging.getLogger("aiosys.commit")

MAX_BATCH = 512


class Committer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[Write, asyncio.Future[WriteResult]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="aiosys-commit")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await self.flush()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def submit(self, write: Write) -> asyncio.Future[WriteResult]:
        """Queue a write; the future resolves once its transaction has committed."""
        fut: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._pending.append((write, fut))
        if self._task is None:
            self.start()
        self._wake.set()
        return fut

    async def flush(self) -> None:
        while self._pending:
            await self._commit_some()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._commit_some()

    async def _commit_some(self) -> None:
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        try:
            results = await self._store.apply([w for w, _ in batch])
        except Exception as exc:  # the store is down: every writer in the batch learns it
            log.warning("group commit of %d writes failed: %s", len(batch), exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
