"""Sync steps with a timeout: stuck attempts never starve healthy steps, and a retry never
overlaps the timed-out attempt that still runs on its thread."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from aiosys import App, Context, Retry
from aiosys.kernel import step_threads

pytestmark = pytest.mark.timeout(60)


async def test_stuck_timed_out_sync_steps_do_not_starve_healthy_steps(
    store_url, wait_status, error_of
):
    app = App(store=store_url, lease=5.0)
    release = threading.Event()
    stuck_runs = 12  # more than the default pool's threads on this machine (min(32, cpus+4))

    name = f"hang-{uuid.uuid4().hex}"  # abandoned threads are counted per process and name

    @app.step(name=name, timeout=0.05, retry=Retry(attempts=1))
    def hang() -> None:
        release.wait(30)

    @app.step(timeout=30.0, retry=Retry(attempts=1))
    def fast_timed() -> str:
        return "timed ok"

    @app.step(retry=Retry(attempts=1))
    def fast_untimed() -> str:
        return "untimed ok"

    @app.workflow
    async def stuck(ctx: Context) -> None:
        await hang()

    @app.workflow
    async def healthy(ctx: Context) -> list[str]:
        return [await fast_timed(), await fast_untimed()]

    try:
        async with app:
            runs = [await app.start("stuck") for _ in range(stuck_runs)]
            for run in runs:
                row = await wait_status(app, run.id, "dead")
                assert error_of(row)["type"] == "aiosys.errors.StepTimeout"
            assert step_threads.abandoned(name) == stuck_runs
            assert await app.run("healthy") == ["timed ok", "untimed ok"]
    finally:
        release.set()


async def test_the_retry_of_a_timed_out_sync_step_waits_for_its_thread(
    store_url, wait_until, caplog
):
    app = App(store=store_url, lease=5.0)
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    calls: list[int] = []

    @app.step(timeout=0.05, retry=Retry(attempts=3, backoff=0.0, jitter=0.0))
    def flaky() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            calls.append(1)
            first = len(calls) == 1
        try:
            if first:
                release.wait(30)  # the first attempt hangs past its timeout
            return "done"
        finally:
            with lock:
                running -= 1

    @app.workflow
    async def wf(ctx: Context) -> str:
        return await flaky()

    caplog.set_level(logging.INFO, logger="aiosys.steps")
    try:
        async with app:
            run = await app.start("wf")
            # The first attempt timed out and its thread still runs: the retry waits.
            await wait_until(lambda: "waiting for the previous attempt" in caplog.text)
            assert len(calls) == 1
            release.set()
            assert await run.result(timeout=30) == "done"
            effects = await app.effects(run.id)
    finally:
        release.set()
    assert most == 1 and len(calls) == 2
    assert [(e.status, e.attempt) for e in effects] == [("ok", 2)]


async def test_abandoned_threads_of_one_step_are_bounded(
    store_url, wait_status, error_of, monkeypatch
):
    monkeypatch.setattr(step_threads, "ABANDONED_PER_STEP", 2)
    app = App(store=store_url, lease=5.0)
    release = threading.Event()
    started: list[int] = []

    @app.step(name=f"hang-{uuid.uuid4().hex}", timeout=0.05, retry=Retry(attempts=1))
    def hang_bounded() -> None:
        started.append(1)
        release.wait(30)

    @app.workflow
    async def stuck(ctx: Context) -> None:
        await hang_bounded()

    try:
        async with app:
            rows = []
            for _ in range(3):
                run = await app.start("stuck")
                rows.append(await wait_status(app, run.id, "dead"))
    finally:
        release.set()
    assert len(started) == 2
    assert "was not started: 2 of its timed-out attempts" in error_of(rows[2])["message"]
    assert error_of(rows[2])["type"] == "aiosys.errors.StepTimeout"
