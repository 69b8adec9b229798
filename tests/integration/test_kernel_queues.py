"""Queues: priority orders a backlog; concurrency limits hold per worker and across workers.

Limits are observed from inside the steps: each counts the executions in flight and keeps
the peak. A step waits (briefly) for a second execution to join it, so a broken limit shows
up as a peak above it; the unlimited queue beside it proves the overlap is detectable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from aiosys import App, Context
from aiosys.kernel import Worker

pytestmark = pytest.mark.timeout(60)


class Occupancy:
    """Executions in flight per queue, their peak, and a wait for company."""

    def __init__(self) -> None:
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self._joined: dict[str, asyncio.Event] = {}

    async def occupy(self, queue: str, patience: float = 0.2) -> None:
        joined = self._joined.setdefault(queue, asyncio.Event())
        self.active[queue] += 1
        self.peak[queue] = max(self.peak[queue], self.active[queue])
        if self.active[queue] >= 2:
            joined.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):
                    await joined.wait()
        finally:
            self.active[queue] -= 1


def queued_app(store_url: str, occupancy: Occupancy, **app_kw) -> App:
    app = App(store=store_url, lease=1.0, **app_kw)
    app.queue("narrow", worker_concurrency=1)
    app.queue("serial", concurrency=1)

    @app.step
    async def occupy(queue: str) -> None:
        await occupancy.occupy(queue)

    @app.workflow
    async def wide(ctx: Context) -> str:
        await occupy("default")
        return "wide"

    @app.workflow(queue="narrow")
    async def narrow(ctx: Context) -> str:
        await occupy("narrow")
        return "narrow"

    @app.workflow(queue="serial")
    async def serial(ctx: Context) -> str:
        await occupy("serial")
        return "serial"

    return app


async def _run_all(app: App, workflows: list[str]) -> list[str]:
    handles = [await app.start(name) for name in workflows]
    return await asyncio.gather(*(h.result(timeout=20) for h in handles))


async def test_backlog_is_taken_highest_priority_first(store_url):
    app = App(store=store_url, lease=1.0)
    order: list[int] = []

    @app.step
    async def mark(priority: int) -> int:
        order.append(priority)
        return priority

    @app.workflow
    async def job(ctx: Context, priority: int) -> int:
        return await mark(priority)

    @app.workflow(priority=7)
    async def urgent(ctx: Context) -> int:
        return await mark(7)

    await app.open()
    try:
        handles = [await app.start("job", {"priority": p}, priority=p) for p in (1, 5, 0, 9)]
        handles.append(await app.start("urgent"))
        handles.append(await app.start("job", {"priority": 3}, priority=3))
        worker = Worker(app, concurrency=1)
        await worker.start()
        try:
            results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
        finally:
            await worker.stop()
    finally:
        await app.close()
    assert results == [1, 5, 0, 9, 7, 3]
    assert order == [9, 7, 5, 3, 1, 0]


async def test_queue_worker_concurrency_caps_that_queue_in_one_worker(store_url):
    occupancy = Occupancy()
    app = queued_app(store_url, occupancy, concurrency=8)
    async with app:
        results = await _run_all(app, ["narrow", "wide"] * 3)
    assert results == ["narrow", "wide"] * 3
    assert occupancy.peak["narrow"] == 1
    assert occupancy.peak["default"] >= 2  # the unlimited queue did overlap


async def test_worker_concurrency_caps_runs_across_its_queues(store_url):
    occupancy = Occupancy()
    app = queued_app(store_url, occupancy, concurrency=1)
    async with app:
        await _run_all(app, ["wide", "wide", "narrow"])
    assert max(occupancy.peak.values()) == 1
    assert occupancy.active.total() == 0


async def test_queue_concurrency_caps_that_queue_across_workers(store_url):
    occupancy = Occupancy()
    first = queued_app(store_url, occupancy, concurrency=8)
    second = queued_app(store_url, occupancy, concurrency=8)
    async with first, second:
        half = [await first.start(name) for name in ["serial", "wide"] * 2]
        rest = [await second.start(name) for name in ["serial", "wide"] * 2]
        results = await asyncio.gather(*(h.result(timeout=20) for h in half + rest))
    assert results == ["serial", "wide"] * 4
    assert occupancy.peak["serial"] == 1
    assert occupancy.peak["default"] >= 2
