"""Parking does not unwind: a waiting run stays suspended in its worker and resumes in place.

And the fences around it: an execution that must be unwound (evicted from the cache of
parked executions, its worker stopping) starts no effect while it unwinds; a workflow that
swallows its unwinding is failed; a worker never runs one run twice beside itself, even when
its heartbeats fail for longer than the lease; a cancel sent from another process reaches a
running run long before the next heartbeat.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from aiosys import App, Context
from aiosys.errors import RunFailed
from aiosys.kernel import Worker
from aiosys.store.base import now

pytestmark = pytest.mark.timeout(90)


def short(name: str) -> str:
    """A step's name without the function that defines it (steps are named by qualname)."""
    return name.rpartition(".")[2]


def cleanup_app(store_url: str, calls: Counter[str], *, max_parked: int = 10_000) -> App:
    app = App(store=store_url, lease=2.0, max_parked=max_parked)

    @app.step
    async def after_sleep() -> str:
        calls["after"] += 1
        return "after"

    @app.step
    async def cleanup() -> str:
        calls["cleanup"] += 1
        return "cleanup"

    @app.workflow
    async def guarded(ctx: Context, by_signal: bool = False) -> str:
        calls["executions"] += 1
        try:
            if by_signal:  # parks for sure (a short sleep may be over before it parks)
                await ctx.wait_for("go")
            else:
                await ctx.sleep(0.05)
            return await after_sleep()
        finally:
            await cleanup()

    @app.workflow
    async def catches_everything(ctx: Context) -> list[str]:
        caught: list[str] = []
        try:
            await ctx.wait_for("go")
        except BaseException as exc:
            caught.append(type(exc).__name__)
        return caught

    @app.workflow
    async def swallows(ctx: Context) -> str:
        try:
            await ctx.wait_for("go")  # parks for sure, and is evicted at once
        except BaseException:
            return "went on"
        return "woken"

    return app


async def test_finally_around_a_wait_runs_once_after_the_step_that_follows_it(store_url):
    calls: Counter[str] = Counter()
    app = cleanup_app(store_url, calls)
    async with app:
        run = await app.start("guarded")
        assert await run.result(timeout=20) == "after"
        effects = await app.effects(run.id)
    assert [(e.kind, short(e.name), e.status) for e in effects] == [
        ("sleep", "sleep", "ok"),
        ("step", "after_sleep", "ok"),
        ("step", "cleanup", "ok"),
    ]
    assert (calls["after"], calls["cleanup"], calls["executions"]) == (1, 1, 1)


async def test_except_clauses_around_a_wait_do_not_see_the_run_park(store_url, wait_status):
    calls: Counter[str] = Counter()
    app = cleanup_app(store_url, calls)
    async with app:
        run = await app.start("catches_everything")
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "go", 1)
        assert await run.result(timeout=20) == []


async def test_evicted_execution_unwinds_without_starting_effects_and_is_replayed(
    store_url, wait_status
):
    calls: Counter[str] = Counter()
    app = cleanup_app(store_url, calls, max_parked=0)  # every park evicts: every wake replays
    async with app:
        run = await app.start("guarded", {"by_signal": True})
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "go")
        assert await run.result(timeout=20) == "after"
        effects = await app.effects(run.id)
    # The evicted execution ran its `finally:` while unwinding, but its step was refused.
    assert calls["executions"] == 2
    assert (calls["after"], calls["cleanup"]) == (1, 1)
    assert [(e.kind, short(e.name), e.status) for e in effects] == [
        ("signal", "go", "ok"),
        ("step", "after_sleep", "ok"),
        ("step", "cleanup", "ok"),
    ]


async def test_workflow_that_swallows_its_unwinding_is_failed_with_the_reason(store_url, error_of):
    app = cleanup_app(store_url, Counter(), max_parked=0)
    async with app:
        run = await app.start("swallows")
        with pytest.raises(RunFailed):
            await run.result(timeout=20)
        row = await app.get_run(run.id)
    assert row.status == "failed"
    error = error_of(row)
    assert error["type"] == "aiosys.errors.UnwindSwallowed"
    assert "evicted" in error["message"] and "BaseException" in error["message"]


async def test_cache_of_parked_executions_is_bounded_and_the_evicted_run_still_ends(
    store_url, wait_status
):
    executions: Counter[str] = Counter()
    app = App(store=store_url, lease=2.0, max_parked=1)

    @app.workflow
    async def waiter(ctx: Context, name: str) -> str:
        executions[name] += 1
        return name + str(await ctx.wait_for("go"))

    async with app:
        first = await app.start("waiter", {"name": "a"})
        await wait_status(app, first.id, "waiting")
        second = await app.start("waiter", {"name": "b"})
        await wait_status(app, second.id, "waiting")
        async with asyncio.timeout(20):  # parked in the store first, then in the cache
            while second.id not in app._worker._parked:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert list(app._worker._parked) == [second.id]  # the oldest was evicted
        await app.signal(first.id, "go", 1)
        await app.signal(second.id, "go", 2)
        assert await first.result(timeout=20) == "a1"
        assert await second.result(timeout=20) == "b2"
    assert executions == {"a": 2, "b": 1}  # a was replayed, b resumed in place


async def test_worker_whose_heartbeats_fail_never_runs_its_run_twice(store_url):
    """Heartbeats fail for longer than the lease while a slow step runs: the worker's own
    claim loop must not start the run again beside itself (fencing by claim epoch)."""
    runs: Counter[str] = Counter()
    lease_lapsed = asyncio.Event()
    app = App(store=store_url, lease=0.6)

    @app.step
    async def charge_card() -> str:
        runs["charge"] += 1
        await lease_lapsed.wait()  # a slow payment API, outliving the lease
        return "charged"

    @app.step
    async def ship() -> str:
        runs["ship"] += 1
        return "shipped"

    @app.workflow
    async def order(ctx: Context) -> str:
        await charge_card()
        return await ship()

    async def broken_heartbeat(*args: object, **kwargs: object) -> dict[str, str | None]:
        raise OSError("claim connection reset")

    async with app:
        app.store.heartbeat = broken_heartbeat  # type: ignore[method-assign]
        run = await app.start("order")
        async with asyncio.timeout(20):
            while True:  # until the lease has expired in the store (claims go on meanwhile)
                row = await app.get_run(run.id)
                if row.available_at is not None and row.available_at < now() - 0.5:
                    break
                await asyncio.sleep(0.05)
        lease_lapsed.set()
        assert await run.result(timeout=20) == "shipped"
        row = await app.get_run(run.id)
        effects = await app.effects(run.id)
    assert runs == {"charge": 1, "ship": 1}
    assert [(short(e.name), e.status) for e in effects] == [("charge_card", "ok"), ("ship", "ok")]
    assert row.epoch == 1  # never claimed again


async def test_cancel_from_another_process_reaches_a_running_run_before_any_heartbeat(
    store_url, error_of
):
    ticks: list[int] = []
    app = App(store=store_url, lease=120.0)  # a heartbeat every 40 s: it is not what tells

    @app.step
    async def tick(n: int) -> int:
        ticks.append(n)
        await asyncio.sleep(0.01)
        return n

    @app.workflow
    async def ticker(ctx: Context) -> None:
        n = 0
        while True:
            n = await tick(n + 1)

    elsewhere = App(store=store_url)  # a CLI or API process: no worker, no shared memory
    async with app:
        await elsewhere.open()
        try:
            run = await app.start("ticker")
            async with asyncio.timeout(20):
                while len(ticks) < 3:  # noqa: ASYNC110 - the run is going
                    await asyncio.sleep(0.01)
            await elsewhere.cancel(run.id, "stop ticking")
            with pytest.raises(RunFailed):
                await run.result(timeout=20)  # well before the first heartbeat (40 s)
            row = await elsewhere.get_run(run.id)
        finally:
            await elsewhere.close()
    assert row.status == "cancelled"
    assert error_of(row)["message"] == "stop ticking"


async def test_signal_from_another_process_wakes_a_run_parked_in_this_one(store_url, wait_status):
    executions: list[str] = []
    app = App(store=store_url, lease=2.0)

    @app.workflow
    async def approval(ctx: Context) -> dict:
        executions.append(ctx.run_id)
        return {"decision": await ctx.wait_for("decision")}

    elsewhere = App(store=store_url)
    async with app:
        await elsewhere.open()
        try:
            run = await app.start("approval")
            await wait_status(app, run.id, "waiting")
            await elsewhere.signal(run.id, "decision", {"ok": True})
            assert await run.result(timeout=20) == {"decision": {"ok": True}}
        finally:
            await elsewhere.close()
    assert len(executions) == 1  # resumed in place


# ---- a worker never runs half-alive ----------------------------------------------------------


async def test_a_worker_loop_that_dies_is_restarted(store_url, caplog):
    app = App(store=store_url, lease=2.0)

    @app.workflow
    async def hello(ctx: Context) -> str:
        return "hi"

    await app.open()
    worker = Worker(app)
    real = worker._claim_loop
    deaths: list[int] = []

    async def dies_once() -> None:
        if not deaths:
            deaths.append(1)
            raise RuntimeError("a bug in the claim loop")
        await real()

    worker._claim_loop = dies_once  # type: ignore[method-assign]
    app._worker = worker
    await worker.start()
    try:
        run = await app.start("hello")
        assert await run.result(timeout=20) == "hi"
    finally:
        app._worker = None
        await worker.stop()
        await app.close()
    assert deaths == [1]
    assert "its claim loop died; restarting it" in caplog.text


async def test_a_worker_whose_loop_keeps_dying_stops_loudly(store_url, caplog):
    app = App(store=store_url, lease=2.0)
    await app.open()
    worker = Worker(app)

    async def always_dies() -> None:
        raise RuntimeError("broken for good")

    worker._heartbeat_loop = always_dies  # type: ignore[method-assign]
    try:
        await worker.start()
        async with asyncio.timeout(30):
            await worker.stopped.wait()
    finally:
        await app.close()
    assert "its heartbeat loop died 5 times" in caplog.text


async def test_leases_of_runs_whose_writes_hang_are_not_renewed(store_url):
    app = App(store=store_url, lease=0.6)  # a heartbeat every 0.2 s
    held, unhang = asyncio.Event(), asyncio.Event()

    @app.step
    async def work() -> str:
        return "done"

    @app.workflow
    async def job(ctx: Context) -> str:
        return await work()

    async with app:
        app._worker.committer._timeout = 60.0  # the write hangs; it does not time out
        store = app.store
        apply, heartbeat = store.apply, store.heartbeat
        renewed: list[list[str]] = []

        async def hanging_apply(writes):  # the store takes the run's record, answers late
            if any(getattr(w, "effect", None) is not None for w in writes):
                held.set()
                await unhang.wait()
            return await apply(writes)

        async def watched_heartbeat(owner, lease, runs=None):
            renewed.append(list(runs or []))
            return await heartbeat(owner, lease, runs)

        store.apply = hanging_apply  # type: ignore[method-assign]
        store.heartbeat = watched_heartbeat  # type: ignore[method-assign]
        run = await app.start("job")
        await held.wait()
        before = len(renewed)
        async with asyncio.timeout(20):
            while not any(run.id not in r for r in renewed[before:]):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert app._worker.is_running(run.id)  # executing, but its lease is left to lapse
        unhang.set()
        assert await run.result(timeout=20) == "done"


async def test_cancel_from_another_process_unwinds_a_run_parked_here(store_url, wait_status):
    unwound: list[str] = []
    app = App(store=store_url, lease=120.0)  # heartbeats are not what tells

    @app.workflow
    async def patient(ctx: Context) -> str:
        try:
            return await ctx.wait_for("go")
        finally:
            unwound.append(ctx.run_id)

    elsewhere = App(store=store_url)
    async with app:
        await elsewhere.open()
        try:
            run = await app.start("patient")
            await wait_status(app, run.id, "waiting")
            async with asyncio.timeout(20):  # parked here just after its wait is committed
                while run.id not in app._worker._parked:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await elsewhere.cancel(run.id, "not needed")
            async with asyncio.timeout(20):
                while run.id in app._worker._parked or not unwound:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            await elsewhere.close()
    assert unwound == [run.id]
    assert (await elsewhere.get_run(run.id)).status == "cancelled"


async def test_a_cancel_that_arrives_before_the_run_ends_wins(store_url, error_of):
    started, release = asyncio.Event(), asyncio.Event()
    app = App(store=store_url, lease=2.0)

    @app.step
    async def last() -> str:
        started.set()
        await release.wait()
        return "done"

    @app.workflow
    async def short(ctx: Context) -> str:
        return await last()  # no effect after this one: the end is where the cancel lands

    async with app:
        run = await app.start("short")
        await started.wait()
        await app.cancel(run.id, "changed my mind")
        release.set()
        with pytest.raises(RunFailed):
            await run.result(timeout=20)
        row = await app.get_run(run.id)
    assert row.status == "cancelled"
    assert error_of(row)["message"] == "changed my mind"
