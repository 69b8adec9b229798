"""Replay: a run taken over by another worker (or process) repeats no recorded effect,
and a replay that meets different code fails loudly instead of doing something else."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import aiosys
from aiosys import App, Context
from aiosys.kernel import Worker

pytestmark = pytest.mark.timeout(60)


def billing_app(
    store_url: str,
    calls: list[tuple[str, str, int]],
    *,
    started: asyncio.Event | None = None,
    block: asyncio.Event | None = None,
    lease: float = 1.0,
    charged: str = "charged",
) -> App:
    """The same workflow as every process would load it; ``block`` holds ``charge`` in flight
    (so the test can "crash" the worker there)."""
    app = App(store=store_url, lease=lease)

    def note(name: str) -> None:
        info = aiosys.current_step()
        calls.append((name, info.run_id, info.seq))

    @app.step
    async def fetch(doc: str) -> str:
        note("fetch")
        return doc.upper()

    @app.step
    async def charge(text: str) -> str:
        note("charge")
        if started is not None:
            started.set()
        if block is not None:
            await block.wait()
        return f"{charged} {text}"

    @app.step
    async def notify(receipt: str) -> str:
        note("notify")
        return receipt + "!"

    @app.workflow
    async def billing(ctx: Context, doc: str) -> str:
        text = await fetch(doc)
        receipt = await charge(text)
        return await notify(receipt)

    return app


async def test_run_released_by_a_stopping_worker_is_finished_elsewhere_without_rerunning_steps(
    store_url,
):
    calls: list[tuple[str, str, int]] = []
    started = asyncio.Event()
    first = billing_app(store_url, calls, started=started, block=asyncio.Event())
    async with first:
        run = await first.start("billing", {"doc": "a"})
        async with asyncio.timeout(10):
            await started.wait()
        # leaving `async with` stops the worker with `charge` in flight
    second = billing_app(store_url, calls)
    async with second:
        assert await second.get_run(run.id) is not None
        assert await second.handle(run.id).result(timeout=10) == "charged A!"
        effects = await second.effects(run.id)

    per_effect = Counter(calls)
    assert per_effect[("fetch", run.id, 1)] == 1  # recorded before the crash: never again
    assert per_effect[("charge", run.id, 2)] == 2  # in flight at the crash: at least once
    assert per_effect[("notify", run.id, 3)] == 1
    assert len(calls) == 4
    assert [(e.seq, e.status) for e in effects] == [(1, "ok"), (2, "ok"), (3, "ok")]


async def test_run_of_a_crashed_worker_is_replayed_after_its_lease_expires(store_url):
    calls: list[tuple[str, str, int]] = []
    started = asyncio.Event()
    first = billing_app(store_url, calls, started=started, block=asyncio.Event(), lease=0.5)
    await first.open()
    crashed = Worker(first)
    await crashed.start()
    first._worker = crashed  # runs started here go straight to this worker
    run = await first.start("billing", {"doc": "b"})
    async with asyncio.timeout(10):
        await started.wait()
    # A hard crash: the worker's tasks vanish, nothing is released, no heartbeat any more.
    tasks = [*crashed._loops, *crashed._tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    first._worker = None
    assert (await first.get_run(run.id)).status == "running"
    await first.close()

    second = billing_app(store_url, calls, lease=1.0)
    async with second:
        assert await second.handle(run.id).result(timeout=10) == "charged B!"
        row = await second.get_run(run.id)

    per_effect = Counter(calls)
    assert per_effect[("fetch", run.id, 1)] == 1
    assert per_effect[("charge", run.id, 2)] == 2
    assert per_effect[("notify", run.id, 3)] == 1
    assert row.claims == 1  # leased to the first worker at start, claimed once after expiry


async def test_worker_that_lost_its_lease_cannot_record_over_the_new_owner(store_url, wait_until):
    calls: list[tuple[str, str, int]] = []
    started = asyncio.Event()
    release_zombie = asyncio.Event()
    zombie_app = billing_app(
        store_url, calls, started=started, block=release_zombie, lease=0.5, charged="zombie"
    )
    await zombie_app.open()
    zombie = Worker(zombie_app)
    await zombie.start()
    zombie_app._worker = zombie
    run = await zombie_app.start("billing", {"doc": "c"})
    async with asyncio.timeout(10):
        await started.wait()
    # The worker stalls (no heartbeat) but its run keeps going: a GC pause, a partition.
    for task in zombie._loops:
        task.cancel()
    await asyncio.gather(*zombie._loops, return_exceptions=True)

    rescuer = billing_app(store_url, calls, lease=1.0)
    async with rescuer:
        assert await rescuer.handle(run.id).result(timeout=10) == "charged C!"
        # Now the stalled worker wakes up and tries to go on with the run.
        release_zombie.set()
        await wait_until(lambda: not zombie._running)
        row = await rescuer.get_run(run.id)
        effects = await rescuer.effects(run.id)
    zombie_app._worker = None
    await zombie.committer.stop()
    await zombie_app.close()

    assert row.status == "succeeded"
    assert row.result == '"charged C!"'  # the zombie's "zombie C" was never recorded
    assert Counter(name for name, _, _ in calls) == {"fetch": 1, "charge": 2, "notify": 1}
    assert [(e.seq, e.status, e.output) for e in effects] == [
        (1, "ok", '"C"'),
        (2, "ok", '"charged C"'),
        (3, "ok", '"charged C!"'),
    ]


def ordering_app(store_url: str, first_step: str) -> App:
    """Version "1" of ``order`` as deployed: ``first_step`` names the step it starts with."""
    app = App(store=store_url, lease=1.0)

    @app.step(name="reserve_stock")
    async def reserve_stock(item: str) -> str:
        return f"reserved {item}"

    @app.step(name="charge_card")
    async def charge_card(item: str) -> str:
        return f"charged {item}"

    steps = {"reserve_stock": reserve_stock, "charge_card": charge_card}

    @app.workflow(name="order", version="1")
    async def order(ctx: Context, item: str) -> str:
        done = await steps[first_step](item)
        await ctx.wait_for("go")
        return done

    @app.workflow
    async def bystander(ctx: Context) -> str:
        await ctx.wait_for("go")
        return "fine"

    return app


async def test_replay_meeting_a_different_effect_ends_the_run_dead_naming_both(
    store_url, wait_status, error_of
):
    old = ordering_app(store_url, "reserve_stock")
    async with old:
        run = await old.start("order", {"item": "book"})
        await wait_status(old, run.id, "waiting")

    changed = ordering_app(store_url, "charge_card")  # same name and version, new code
    async with changed:
        other = await changed.start("bystander")
        fresh = await changed.start("order", {"item": "pen"})
        await wait_status(changed, other.id, "waiting")
        await wait_status(changed, fresh.id, "waiting")
        await changed.signal(run.id, "go")
        row = await wait_status(changed, run.id, "dead", "succeeded", "failed")
        await changed.signal(other.id, "go")
        await changed.signal(fresh.id, "go")
        assert await other.result(timeout=10) == "fine"
        assert await fresh.result(timeout=10) == "charged pen"
        effects = await changed.effects(run.id)

    assert row.status == "dead"
    error = error_of(row)
    assert error["type"] == "aiosys.errors.NonDeterminismError"
    assert "reserve_stock" in error["message"]
    assert "charge_card" in error["message"]
    assert "#1" in error["message"]
    # The recorded history is kept as it was, for inspection.
    assert [(e.seq, e.name, e.status) for e in effects] == [
        (1, "reserve_stock", "ok"),
        (2, "go", "pending"),
    ]


def versioned_app(store_url: str, *, with_v2: bool) -> App:
    app = App(store=store_url, lease=1.0)

    @app.workflow(name="review", version="1")
    async def review_v1(ctx: Context, doc: str) -> str:
        verdict = await ctx.wait_for("verdict")
        return f"v1 {doc} {verdict}"

    if with_v2:

        @app.workflow(name="review", version="2")
        async def review_v2(ctx: Context, doc: str) -> str:
            verdict = await ctx.wait_for("verdict")
            return f"v2 {doc} {verdict}"

    return app


async def test_running_run_keeps_its_version_when_a_new_one_is_deployed(store_url, wait_status):
    old = versioned_app(store_url, with_v2=False)
    async with old:
        run = await old.start("review", {"doc": "a"})
        await wait_status(old, run.id, "waiting")
        assert (await old.get_run(run.id)).version == "1"

    new = versioned_app(store_url, with_v2=True)
    async with new:
        newer = await new.start("review", {"doc": "b"})
        assert (await new.get_run(newer.id)).version == "2"
        await wait_status(new, newer.id, "waiting")
        await new.signal(run.id, "verdict", "ok")
        await new.signal(newer.id, "verdict", "ok")
        assert await run.__class__(new, run.id).result(timeout=10) == "v1 a ok"
        assert await newer.result(timeout=10) == "v2 b ok"
        pinned = await new.start("review", {"doc": "c"}, version="1")
        assert (await new.get_run(pinned.id)).version == "1"
