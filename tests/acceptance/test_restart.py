"""Waits outlive the workers: a durable timer is neither lost nor shortened by SIGKILLed
workers and restarts, and a signal sent while no worker runs is delivered when one returns.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import crashapp
import pytest
from workerprocs import Workers, poll_until

from aiosys import App
from aiosys.store.base import TERMINAL


async def wait_status(app: App, run_id: str, statuses: set[str] | frozenset[str]) -> str:
    async def reached() -> bool:
        return await app.handle(run_id).status() in statuses

    await poll_until(reached, 30, f"run {run_id} to be {'/'.join(sorted(statuses))}")
    return await app.handle(run_id).status()


async def stays(app: App, run_id: str, status: str, until: float) -> None:
    """Check every 50 ms, until the wall clock reads ``until``, that the run keeps ``status``."""
    while time.time() < until:
        assert await app.handle(run_id).status() == status
        await asyncio.sleep(0.05)
    assert await app.handle(run_id).status() == status


@pytest.mark.timeout(180)
async def test_durable_timer_survives_killed_workers_and_never_wakes_early(
    store_url: str, workers_factory: Callable[..., Workers]
) -> None:
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=4, lease=1.5)
    try:
        # The sleep must outlast a worker's restart, which takes longer on a busy machine:
        # measure one, and sleep four times that (at least SLEEP_SECONDS), so the bounds
        # below follow the machine's speed instead of assuming it.
        started = time.monotonic()
        pool.spawn()
        await pool.wait_ready()
        restart = time.monotonic() - started
        seconds = max(crashapp.SLEEP_SECONDS, 4 * restart + 1.0)
        run = await app.start("nap", {"seconds": seconds})
        await wait_status(app, run.id, {"waiting"})
        sleep = [e for e in await app.effects(run.id) if e.kind == "sleep"]
        assert [e.status for e in sleep] == ["pending"]
        deadline = json.loads(sleep[0].output or "{}")["deadline"]

        pool.kill_all()
        assert await run.status() == "waiting"

        # A worker that comes back before the deadline leaves the run parked until then.
        pool.spawn()
        await pool.wait_ready()
        assert time.time() < deadline - 0.5, "the worker restarted too late to test anything"
        await stays(app, run.id, "waiting", deadline - 0.3)
        pool.kill_all()

        # With no worker at all, the deadline passing changes nothing: the run still waits.
        await stays(app, run.id, "waiting", deadline + 1.0)

        pool.spawn()
        assert await wait_status(app, run.id, TERMINAL) == "succeeded"
        out = await run.result()
    finally:
        await app.close()
    assert out["woke_at"] >= deadline
    assert deadline >= out["slept_at"] + seconds
    assert out["woke_at"] >= deadline + 1.0  # it could not wake while no worker ran


@pytest.mark.timeout(90)
async def test_signal_sent_while_no_worker_runs_is_delivered_when_one_returns(
    store_url: str, workers_factory: Callable[..., Workers]
) -> None:
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=4, lease=1.5)
    payload = {"approved": True, "by": "tester", "n": 7}
    try:
        pool.spawn()
        run = await app.start("gate")
        await wait_status(app, run.id, {"waiting"})
        pool.kill_all()

        await app.signal(run.id, "go", payload)
        # Woken and claimable, but nobody runs it yet; the signal waits in the store.
        assert await run.status() == "pending"
        await asyncio.sleep(0.3)
        assert await run.status() == "pending"

        pool.spawn()
        assert await run.result(timeout=30) == payload
        effects = await app.effects(run.id)
    finally:
        await app.close()
    assert [(e.kind, e.name, e.status) for e in effects] == [("signal", "go", "ok")]
