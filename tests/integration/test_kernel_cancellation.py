"""Cancellation: a parked run ends at once; a running one stops at its next effect."""

from __future__ import annotations

import asyncio

import pytest

from aiosys import App, Context, RunFailed
from aiosys.errors import InvalidRunState, RunNotFound
from aiosys.kernel import Worker

pytestmark = pytest.mark.timeout(60)


def cancellable_app(store_url: str, ran: list[str], started=None, release=None) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    async def first() -> str:
        ran.append("first")
        if started is not None:
            started.set()
        if release is not None:
            await release.wait()
        return "one"

    @app.step
    async def second() -> str:
        ran.append("second")
        return "two"

    @app.workflow
    async def parked(ctx: Context) -> str:
        await ctx.wait_for("never")
        return await second()

    @app.workflow
    async def busy(ctx: Context) -> str:
        await first()
        return await second()

    @app.workflow
    async def busy_then_waiting(ctx: Context) -> str:
        await first()
        await ctx.wait_for("go")
        return await second()

    return app


async def test_cancelling_a_waiting_run_ends_it_at_once_with_the_reason(
    store_url, wait_status, error_of
):
    ran: list[str] = []
    app = cancellable_app(store_url, ran)
    async with app:
        run = await app.start("parked")
        await wait_status(app, run.id, "waiting")
        row = await app.cancel(run.id, "customer withdrew")
        assert row.status == "cancelled"  # no worker involved: at once
        assert error_of(row)["message"] == "customer withdrew"
        with pytest.raises(RunFailed) as failed:
            await run.result(timeout=10)
        assert failed.value.status == "cancelled"
        assert failed.value.error["message"] == "customer withdrew"
        with pytest.raises(InvalidRunState):
            await app.signal(run.id, "never", None)
    assert ran == []


async def test_cancelling_a_running_run_stops_it_before_its_next_effect(store_url, error_of):
    ran: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()
    app = cancellable_app(store_url, ran, started, release)
    async with app:
        run = await app.start("busy")
        async with asyncio.timeout(10):
            await started.wait()
        row = await app.cancel(run.id, "operator stop")
        assert row.status == "running"  # the step in flight is not interrupted...
        release.set()
        with pytest.raises(RunFailed) as failed:
            await run.result(timeout=10)
        row = await app.get_run(run.id)
        effects = await app.effects(run.id)
    assert failed.value.status == "cancelled"
    assert row.status == "cancelled"
    assert error_of(row)["message"] == "operator stop"
    assert ran == ["first"]  # ...but the next step never runs
    assert [(e.seq, e.status) for e in effects] == [(1, "ok")]


async def test_cancel_from_another_process_stops_a_running_run(store_url, error_of):
    ran: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()
    app = cancellable_app(store_url, ran, started, release)
    elsewhere = App(store=store_url)  # a CLI or API process: no worker, no shared memory
    async with app:
        await elsewhere.open()
        try:
            run = await app.start("busy_then_waiting")
            async with asyncio.timeout(10):
                await started.wait()
            await elsewhere.cancel(run.id, "cancelled from the console")
            release.set()
            with pytest.raises(RunFailed):
                await run.result(timeout=10)
            row = await elsewhere.get_run(run.id)
        finally:
            await elsewhere.close()
    assert row.status == "cancelled"
    assert error_of(row)["message"] == "cancelled from the console"
    assert ran == ["first"]


async def test_cancelled_pending_run_never_runs(store_url, wait_status):
    ran: list[str] = []
    app = cancellable_app(store_url, ran)
    await app.open()
    try:
        run = await app.start("busy")  # no worker yet
        row = await app.cancel(run.id, "not needed")
        assert row.status == "cancelled"
        worker = Worker(app)
        await worker.start()
        other = await app.start("parked")
        try:
            # A run started after it is taken, so the worker has looked at the queue.
            await wait_status(app, other.id, "waiting")
        finally:
            await worker.stop()
        assert (await app.get_run(run.id)).status == "cancelled"
    finally:
        await app.close()
    assert ran == []


async def test_cancel_of_an_ended_run_is_refused_and_of_a_missing_run_not_found(store_url):
    app = cancellable_app(store_url, [])
    async with app:
        run = await app.start("busy")
        assert await run.result(timeout=10) == "two"
        with pytest.raises(InvalidRunState):
            await app.cancel(run.id)
        with pytest.raises(RunNotFound):
            await app.cancel("no-such-run")
