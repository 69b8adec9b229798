"""Durable waits: timers, signals and child workflows park a run, holding no worker."""

from __future__ import annotations

import asyncio
import time

import pytest

import aiosys
from aiosys import App, ChildFailed, Context, PermanentError, WaitTimeout
from aiosys.errors import InvalidRunState, RunNotFound
from aiosys.kernel import EffectCall, Next, Worker

pytestmark = pytest.mark.timeout(60)


def timing_app(store_url: str, *, concurrency: int = 64) -> App:
    app = App(store=store_url, lease=1.0, concurrency=concurrency)

    @app.step
    async def clock() -> float:
        return time.time()

    @app.workflow
    async def nap(ctx: Context, seconds: float) -> float:
        """Sleeps; returns how long it really slept, measured by steps around the sleep."""
        before = await clock()
        await ctx.sleep(seconds)
        after = await clock()
        return after - before

    @app.workflow
    async def quick(ctx: Context) -> str:
        return "done"

    return app


async def test_sleeping_run_waits_without_a_worker_slot_and_wakes_after_its_deadline(
    store_url, wait_status
):
    app = timing_app(store_url, concurrency=1)
    async with app:
        sleeper = await app.start("nap", {"seconds": 1.0})
        await wait_status(app, sleeper.id, "waiting")
        # The only slot is free: another run goes through while the first one sleeps.
        other = await app.start("quick")
        assert await other.result(timeout=10) == "done"
        assert await sleeper.status() == "waiting"
        slept = await sleeper.result(timeout=10)
    assert slept >= 1.0


async def test_sleep_survives_a_restart_and_keeps_its_deadline(store_url, wait_status):
    first = timing_app(store_url)
    async with first:
        run = await first.start("nap", {"seconds": 0.5})
        await wait_status(first, run.id, "waiting")
    second = timing_app(store_url)
    async with second:
        slept = await second.handle(run.id).result(timeout=10)
        effects = await second.effects(run.id)
    assert slept >= 0.5
    assert [(e.kind, e.status) for e in effects] == [
        ("step", "ok"),
        ("sleep", "ok"),
        ("step", "ok"),
    ]


def signal_app(store_url: str, *, step_started=None, step_release=None) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    async def prepare() -> str:
        if step_started is not None:
            step_started.set()
        if step_release is not None:
            await step_release.wait()
        return "prepared"

    @app.workflow
    async def approval(ctx: Context) -> dict:
        await prepare()
        decision = await ctx.wait_for("decision")
        return {"decision": decision}

    @app.workflow
    async def two_decisions(ctx: Context) -> list:
        first = await ctx.wait_for("decision")
        await ctx.sleep(0.05)  # a replay in between: the first signal must stay taken
        return [first, await ctx.wait_for("decision")]

    @app.workflow
    async def patient(ctx: Context, timeout: float) -> dict:
        started = await ctx.now()
        try:
            await ctx.wait_for("decision", timeout=timeout)
            outcome = "signalled"
        except WaitTimeout as exc:
            outcome = f"timed out: {type(exc).__name__}"
        await ctx.sleep(0.05)  # park once more: the replay must raise the recorded timeout
        ended = await ctx.now()
        return {"outcome": outcome, "waited": ended - started}

    return app


async def test_signal_sent_while_waiting_wakes_the_run_with_its_payload(store_url, wait_status):
    app = signal_app(store_url)
    async with app:
        run = await app.start("approval")
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "decision", {"approved": True, "by": "ana"})
        assert await run.result(timeout=10) == {"decision": {"approved": True, "by": "ana"}}


async def test_signal_sent_before_the_run_waits_is_kept_for_it(store_url):
    started, release = asyncio.Event(), asyncio.Event()
    app = signal_app(store_url, step_started=started, step_release=release)
    async with app:
        run = await app.start("approval")
        async with asyncio.timeout(10):
            await started.wait()
        await app.signal(run.id, "decision", "early")  # the run is busy in a step
        release.set()
        assert await run.result(timeout=10) == {"decision": "early"}


async def test_signal_sent_before_any_worker_runs_is_kept_for_it(store_url):
    app = signal_app(store_url)
    await app.open()
    try:
        run = await app.start("approval")  # no worker: the run stays pending
        await app.signal(run.id, "decision", "before")
        worker = Worker(app)
        await worker.start()
        try:
            assert await run.result(timeout=10) == {"decision": "before"}
        finally:
            await worker.stop()
    finally:
        await app.close()


async def test_each_signal_is_delivered_once_in_the_order_sent(store_url, wait_status):
    app = signal_app(store_url)
    async with app:
        run = await app.start("two_decisions")
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "decision", 1)
        await app.signal(run.id, "decision", 2)
        assert await run.result(timeout=10) == [1, 2]


async def test_wait_for_timeout_raises_wait_timeout_that_the_workflow_can_catch(store_url):
    app = signal_app(store_url)
    async with app:
        run = await app.start("patient", {"timeout": 0.3})
        out = await run.result(timeout=10)
        effects = await app.effects(run.id)
    assert out["outcome"] == "timed out: WaitTimeout"
    assert out["waited"] >= 0.3
    wait = next(e for e in effects if e.kind == "signal")
    assert wait.status == "error"
    assert "WaitTimeout" in wait.error


async def test_signal_to_a_finished_run_is_refused_and_to_a_missing_run_not_found(store_url):
    app = signal_app(store_url)
    async with app:
        run = await app.start("approval")
        await app.signal(run.id, "decision", "yes")
        await run.result(timeout=10)
        with pytest.raises(InvalidRunState):
            await app.signal(run.id, "decision", "again")
        with pytest.raises(RunNotFound):
            await app.signal("no-such-run", "decision", "x")


def family_app(
    store_url: str, child_runs: list[str], handles: list[str], *, max_parked: int = 0
) -> App:
    app = App(store=store_url, lease=1.0, max_parked=max_parked)  # 0: every wake-up replays

    @app.step
    async def square(n: int) -> int:
        child_runs.append(aiosys.current_step().run_id)
        return n * n

    @app.step
    async def explode() -> None:
        raise PermanentError("the child cannot do this")

    @app.workflow
    async def child(ctx: Context, n: int) -> int:
        return await square(n)

    @app.workflow
    async def failing_child(ctx: Context) -> int:
        await explode()
        return 0

    @app.workflow
    async def parent(ctx: Context, n: int) -> dict:
        handle = await ctx.start_child("child", {"n": n})
        handles.append(handle.id)
        return {"child": handle.id, "result": await handle}

    @app.workflow
    async def patient_parent(ctx: Context, n: int) -> dict:
        handle = await ctx.start_child("child", {"n": n})
        handles.append(handle.id)
        await ctx.wait_for("go")  # replayed at least twice: when the child ends, on the signal
        return {"child": handle.id, "result": await handle.result()}

    @app.workflow
    async def brave_parent(ctx: Context) -> dict:
        handle = await ctx.start_child("failing_child")
        try:
            await handle
        except ChildFailed as exc:
            return {"caught": type(exc).__name__, "child_id": exc.child_id, "status": exc.status}
        return {"caught": None}

    return app


async def test_awaiting_a_child_gives_its_result(store_url):
    child_runs: list[str] = []
    handles: list[str] = []
    app = family_app(store_url, child_runs, handles)
    async with app:
        run = await app.start("parent", {"n": 7})
        out = await run.result(timeout=10)
        child = await app.get_run(out["child"])
    assert out["result"] == 49
    assert child.parent_id == run.id
    assert child.status == "succeeded"
    assert child_runs == [child.id]


async def test_failing_child_raises_child_failed_in_the_parent(store_url):
    app = family_app(store_url, [], [])
    async with app:
        run = await app.start("brave_parent")
        out = await run.result(timeout=10)
        child = await app.get_run(out["child_id"])
    assert out == {"caught": "ChildFailed", "child_id": child.id, "status": "dead"}
    assert child.parent_id == run.id


async def test_replayed_parent_does_not_start_its_child_twice(store_url, wait_status):
    child_runs: list[str] = []
    handles: list[str] = []
    app = family_app(store_url, child_runs, handles)
    async with app:
        run = await app.start("patient_parent", {"n": 3})
        await wait_until_child_done_and_parent_waiting(app, run.id, wait_status)
        await app.signal(run.id, "go")
        out = await run.result(timeout=10)
        children = await app.list_runs(workflow="child")
    assert out["result"] == 9
    assert [c.id for c in children] == [out["child"]]
    assert len(handles) >= 2  # the parent ran more than once...
    assert set(handles) == {out["child"]}  # ...and always saw the same child
    assert child_runs == [out["child"]]  # which ran once


async def wait_until_child_done_and_parent_waiting(app: App, parent_id: str, wait_status) -> None:
    async with asyncio.timeout(10):
        while True:
            children = await app.list_runs(workflow="child")
            if children and children[0].status == "succeeded":
                break
            await asyncio.sleep(0.01)
    # The child's end wakes the parent, which replays and parks again on its signal.
    await wait_status(app, parent_id, "waiting")


class CrashAfter:
    """An interceptor that holds an effect of ``kind`` after it ran, before it is recorded:
    stopping the worker there is a crash between the effect and its record."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reached = asyncio.Event()

    async def __call__(self, call: EffectCall, next: Next):
        out = await next(call)
        if call.kind == self.kind:
            self.reached.set()
            await asyncio.Event().wait()
        return out


async def test_parent_crashing_right_after_starting_its_child_does_not_start_another(
    store_url, wait_status
):
    handles: list[str] = []
    first = family_app(store_url, [], handles)
    crash = CrashAfter("child_start")
    first.gate.add("crash", crash, before="retry")
    async with first:
        run = await first.start("patient_parent", {"n": 4})
        async with asyncio.timeout(10):
            await crash.reached.wait()
    second = family_app(store_url, [], handles)
    async with second:
        await wait_status(second, run.id, "waiting")
        await second.signal(run.id, "go")
        out = await second.handle(run.id).result(timeout=10)
        children = await second.list_runs(workflow="child")
    assert out["result"] == 16
    assert [c.id for c in children] == [out["child"]]
    assert handles[-1] == out["child"]
