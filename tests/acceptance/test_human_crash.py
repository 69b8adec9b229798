"""Human tasks outlive their workers (issue 12): a worker SIGKILLed while a task is open loses
nothing (the task and its run wait on, the decision wakes the run on another worker), and a
worker SIGKILLed after the decision, mid-run, leaves a run whose replay returns the recorded
decision and makes no second task. Real ``aiosys worker`` processes, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import crashapp
import pytest
from workerprocs import Workers, poll_until

pytestmark = pytest.mark.timeout(150)


async def test_killed_workers_lose_no_human_task_and_make_no_second_one(
    store_url: str, crash_log: Path, workers_factory: Callable[..., Workers]
) -> None:
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=2, lease=1.0)
    marker = crash_log.with_suffix(".held")  # hold_once's (crashapp.held_marker)

    async def status() -> str:
        return await app.handle(run.id).status()

    async def tasks() -> list:
        return await app.list_tasks(run_id=run.id, status="any")

    try:
        first = pool.spawn()
        await pool.wait_ready()
        run = await app.start("reviewed")

        async def parked() -> bool:
            return await status() == "waiting" and len(await tasks()) == 1

        await poll_until(parked, 30, "the run to park on its task")
        pool.kill(first)  # the task is open, its run waiting: nothing holds it
        assert await status() == "waiting"
        (task,) = await tasks()
        assert task.status == "open"

        second = pool.spawn()
        await pool.wait_ready()
        await app.complete_task(task.id, "approve", comment="ok")  # from outside the run
        await poll_until(lambda: asyncio.to_thread(marker.exists), 30, "the run to resume")
        pool.kill(second)  # mid-run, after the decision was recorded as the effect's output

        pool.spawn()  # replays the run: the recorded decision, then hold_once returns
        async with asyncio.timeout(60):
            result = await app.handle(run.id).result()
        every = await tasks()
        effects = await app.effects(run.id)
    finally:
        pool.close()
        await app.close()
    assert result == {"action": "approve", "by": "local"}
    assert [(t.id, t.status, t.decided_by) for t in every] == [(task.id, "completed", "local")]
    assert [(e.kind, e.name, e.status) for e in effects] == [
        ("human_task", "review", "ok"),
        ("step", "build.<locals>.hold_once", "ok"),
    ]
