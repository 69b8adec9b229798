"""Human tasks outlive their workers (issue 12): a worker SIGKILLed while a task is open loses
nothing (the task and its run wait on, the decision wakes the run on another worker), and a
worker SIGKILLed after the decision, mid-run, leaves a run whose replay returns the recorded
decision and makes no second task. The same for human oversight (point 2): a model call a
policy forbids until a partner approves it waits as a task through a kill, runs once after the
approval, and is neither asked for again nor called again by the replay after the second kill.
Real ``aiosys worker`` processes, on both stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crashapp
import oversightapp
import pytest
from workerprocs import Workers, poll_until

from aiosys import App
from aiosys.errors import PolicyDenied
from aiosys.humans import TaskRow
from aiosys.kernel import Principal
from aiosys.store.base import EffectRow

pytestmark = pytest.mark.timeout(150)

PAT = Principal(id="pat", tenant="A", roles=frozenset({"partner"}))
VIC = Principal(id="vic", tenant="A", roles=frozenset({"paralegal"}))


@dataclass
class Outcome:
    task: TaskRow  # as it was while its first worker lay dead
    result: Any
    tasks: list[TaskRow]
    effects: list[EffectRow]


async def kill_around_a_task(
    app: App,
    pool: Workers,
    marker: Path,
    start: Callable[[], Awaitable[Any]],
    decide: Callable[[TaskRow], Awaitable[None]],
) -> Outcome:
    """``start`` a run on a first worker and SIGKILL it once the run waits on its one task;
    on a second worker ``decide`` the task from outside the run, and SIGKILL that worker once
    the run blocks in ``block_once`` (after what the task let through was recorded); a third
    worker replays the run to its end."""
    try:
        first = pool.spawn()
        await pool.wait_ready()
        run = await start()

        async def status() -> str:
            return await app.handle(run.id).status()

        async def tasks() -> list[TaskRow]:
            return await app.list_tasks(run_id=run.id, status="any")

        async def parked() -> bool:
            return await status() == "waiting" and len(await tasks()) == 1

        await poll_until(parked, 30, "the run to park on its task")
        pool.kill(first)  # the task is open, its run waiting: nothing holds it
        assert await status() == "waiting"
        (task,) = await tasks()
        assert task.status == "open"

        second = pool.spawn()
        await pool.wait_ready()
        await decide(task)
        await poll_until(lambda: asyncio.to_thread(marker.exists), 30, "the run to resume")
        pool.kill(second)  # mid-run, after the task's outcome was recorded

        pool.spawn()  # replays the run: the recorded outcome, then block_once returns
        async with asyncio.timeout(60):
            result = await app.handle(run.id).result()
        return Outcome(task, result, await tasks(), await app.effects(run.id))
    finally:
        pool.close()
        await app.close()


async def test_killed_workers_lose_no_human_task_and_make_no_second_one(
    store_url: str, crash_log: Path, workers_factory: Callable[..., Workers]
) -> None:
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=2, lease=1.0)

    async def decide(task: TaskRow) -> None:
        await app.complete_task(task.id, "approve", comment="ok")

    seen = await kill_around_a_task(
        app, pool, crashapp.held_marker_of(crash_log), lambda: app.start("reviewed"), decide
    )
    assert seen.result == {"action": "approve", "by": "local"}
    assert [(t.id, t.status, t.decided_by) for t in seen.tasks] == [
        (seen.task.id, "completed", "local")
    ]
    assert [(e.kind, e.name, e.status) for e in seen.effects] == [
        ("human_task", "review", "ok"),
        ("step", "build.<locals>.hold_once", "ok"),
    ]


async def test_killed_workers_lose_no_approval_and_the_gated_call_runs_once(
    store_url: str, crash_log: Path, workers_factory: Callable[..., Workers]
) -> None:
    app = await oversightapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=2, lease=1.0, app="oversightapp:app")

    def calls() -> list[str]:
        """The model's calls, in every process ("judge <text> <pid>")."""
        return crash_log.read_text().splitlines() if crash_log.exists() else []

    async def decide(task: TaskRow) -> None:
        assert (task.role, task.seq, calls()) == ("partner", 1, [])  # nothing ran yet
        async with app.as_principal(VIC):  # without the role: refused
            with pytest.raises(PolicyDenied, match="role partner"):
                await app.complete_task(task.id, "approve")
        assert calls() == []
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "approve", comment="ok")

    seen = await kill_around_a_task(
        app,
        pool,
        crashapp.held_marker_of(crash_log),
        lambda: app.start("assess", {"text": "the claim"}, tenant="A"),
        decide,
    )
    assert seen.result == "judged the claim"
    assert [c.rsplit(" ", 1)[0] for c in calls()] == ["judge the claim"]  # one call, ever
    assert [(t.id, t.status, t.decided_by) for t in seen.tasks] == [
        (seen.task.id, "completed", "pat")
    ]
    assert [(e.kind, e.name, e.status) for e in seen.effects] == [
        ("model", "call:judge", "ok"),
        ("step", "build.<locals>.hold_once", "ok"),
    ]
    approval = json.loads(seen.effects[0].meta or "{}")["approval"]
    assert (approval["action"], approval["decided_by"], approval["role"]) == (
        "approve",
        "pat",
        "partner",
    )
