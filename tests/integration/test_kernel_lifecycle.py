"""Lifecycle: cancelling or timing out a parent cancels its children (recursively) unless
they were started detached."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aiosys import App, Context, Retry, TransientError, current_step

pytestmark = pytest.mark.timeout(60)


def family_app(store_url: str, charged: list[str], *, timeout: float | None = None) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    async def charge(order: str) -> None:
        charged.append(order)

    @app.workflow
    async def grandchild(ctx: Context, order: str) -> None:
        await ctx.wait_for("go")
        await charge(f"grandchild {order}")

    @app.workflow
    async def child(ctx: Context, order: str) -> None:
        await ctx.start_child("grandchild", {"order": order})
        await ctx.wait_for("go")
        await charge(order)

    @app.workflow
    async def loner(ctx: Context, order: str) -> None:
        await ctx.wait_for("go")
        await charge(f"loner {order}")

    @app.workflow(timeout=timeout)
    async def parent(ctx: Context, order: str) -> None:
        await ctx.start_child("loner", {"order": order}, detached=True)
        await ctx.child("child", {"order": order})

    @app.workflow
    async def detached_waiter(ctx: Context, order: str) -> None:
        await ctx.child("loner", {"order": order}, detached=True)

    return app


async def _runs_of(app: App, workflow: str):
    """The runs of ``workflow``, once there is one."""
    async with asyncio.timeout(10):
        while True:
            runs = await app.list_runs(workflow=workflow)
            if runs:
                return runs
            await asyncio.sleep(0.01)


async def _family(app: App, parent_id: str, wait_status) -> dict[str, str]:
    """workflow name -> run id of the parent's descendants, once all are waiting."""
    async with asyncio.timeout(10):
        while True:
            runs = {r.workflow: r for r in await app.list_runs(limit=100)}
            if {"child", "grandchild", "loner"} <= set(runs):
                break
            await asyncio.sleep(0.01)
    for name in ("child", "grandchild", "loner"):
        await wait_status(app, runs[name].id, "waiting")
    return {name: r.id for name, r in runs.items()}


async def test_cancelling_a_parent_cancels_its_children_but_not_detached_ones(
    store_url, wait_status, error_of
):
    charged: list[str] = []
    app = family_app(store_url, charged)
    async with app:
        parent = await app.start("parent", {"order": "o-1"})
        family = await _family(app, parent.id, wait_status)
        await app.cancel(parent.id, "customer withdrew")
        child = await wait_status(app, family["child"], "cancelled")
        grandchild = await wait_status(app, family["grandchild"], "cancelled")
        assert (await app.get_run(family["loner"])).status == "waiting"
        assert (await app.get_run(family["loner"])).detached
        assert not child.detached
        # A signal to a cancelled child is refused; the detached one still works.
        await app.signal(family["loner"], "go")
        await wait_status(app, family["loner"], "succeeded")
    assert charged == ["loner o-1"]
    assert parent.id in child.cancel_reason and "customer withdrew" in child.cancel_reason
    assert error_of(grandchild)["type"] == "aiosys.errors.RunCancelled"
    assert "customer withdrew" in error_of(grandchild)["message"]


async def test_a_parent_timing_out_cancels_its_children_but_not_detached_ones(
    store_url, wait_status
):
    charged: list[str] = []
    app = family_app(store_url, charged, timeout=0.5)
    async with app:
        parent = await app.start("parent", {"order": "o-2"})
        row = await wait_status(app, parent.id, "failed", timeout=20)
        assert "timeout" in row.error
        runs = {r.workflow: r for r in await app.list_runs(limit=100)}
        child = await wait_status(app, runs["child"].id, "cancelled")
        await wait_status(app, runs["grandchild"].id, "cancelled")
        assert (await app.get_run(runs["loner"].id)).status == "waiting"
    assert "timed out" in child.cancel_reason and parent.id in child.cancel_reason
    assert charged == []


async def test_a_running_child_stops_at_its_next_effect_when_its_parent_is_cancelled(
    store_url, wait_status
):
    app = App(store=store_url, lease=1.0)
    entered = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    @app.step
    async def slow() -> None:
        entered.set()
        await release.wait()
        ran.append("slow")

    @app.step
    async def after() -> None:
        ran.append("after")

    @app.workflow
    async def busy_child(ctx: Context) -> None:
        await slow()
        await after()

    @app.workflow
    async def parent(ctx: Context) -> None:
        await ctx.child("busy_child")

    async with app:
        parent_run = await app.start("parent")
        await entered.wait()
        child_id = next(r.id for r in await app.list_runs(workflow="busy_child"))
        await app.cancel(parent_run.id)
        assert (await app.get_run(child_id)).cancel_reason is not None
        release.set()
        await wait_status(app, child_id, "cancelled")
        await wait_status(app, parent_run.id, "cancelled")
    assert ran == ["slow"]


async def test_ctx_child_detached_is_left_alone(store_url, wait_status):
    charged: list[str] = []
    app = family_app(store_url, charged)
    async with app:
        parent = await app.start("detached_waiter", {"order": "o-3"})
        loners = await _runs_of(app, "loner")
        await wait_status(app, loners[0].id, "waiting")
        await app.cancel(parent.id)
        await wait_status(app, parent.id, "cancelled")
        assert (await app.get_run(loners[0].id)).status == "waiting"


async def test_a_steps_attempt_count_survives_recovery(store_url, wait_status, error_of):
    """A step that failed 2 of its 3 attempts before its worker went away gets 1 more on
    the worker that recovers the run, after what was left of its backoff."""
    calls: list[int] = []
    second_failed = asyncio.Event()

    def make_app() -> App:
        app = App(store=store_url, lease=1.0)
        # delay(1) = 0.003 s, delay(2) = 3 s: the first worker goes away during the second.
        policy = Retry(attempts=3, backoff=0.003, multiplier=1000.0, jitter=0.0)

        @app.step(name="flaky", retry=policy)
        async def flaky() -> None:
            step = current_step()
            assert step is not None
            calls.append(step.attempt)
            if len(calls) == 2:
                second_failed.set()
            raise TransientError(f"attempt {step.attempt} failed")

        @app.workflow
        async def wf(ctx: Context) -> None:
            await flaky()

        return app

    first = make_app()
    async with first:
        run = await first.start("wf")
        await second_failed.wait()
        # The retry's record is committed before the wait for attempt 3 begins.
        async with asyncio.timeout(10):
            while True:
                (pending,) = await first.effects(run.id)
                if pending.attempt == 2:
                    break
                await asyncio.sleep(0.01)
        assert pending.status == "pending" and "attempt 2 failed" in pending.error
    assert calls == [1, 2]  # the first worker stopped before attempt 3 was due

    second = make_app()
    async with second:
        row = await wait_status(second, run.id, "dead")
        effects = await second.effects(run.id)
    assert calls == [1, 2, 3]
    assert [(e.status, e.attempt) for e in effects] == [("error", 3)]
    assert "attempt 3 failed" in error_of(row)["message"]


def test_one_app_runs_under_a_second_event_loop(store_url, caplog, recwarn):
    """``asyncio.run`` twice with one App (scripts, notebooks, tests): both loops start,
    execute and await runs; nothing is bound to the first loop, nothing warns."""
    app = App(store=store_url, lease=1.0)

    @app.workflow
    async def wf(ctx: Context, n: int) -> int:
        await ctx.sleep(0.05)  # parks and wakes: the worker's loops go round
        return n

    async def once(n: int) -> int:
        async with app:
            handle = await app.start("wf", {"n": n})
            return int(await handle.result(timeout=20))

    caplog.set_level(logging.WARNING, logger="aiosys")
    assert asyncio.run(once(1)) == 1
    assert asyncio.run(once(2)) == 2
    assert [r.getMessage() for r in caplog.records] == []
    assert [str(w.message) for w in recwarn] == []
