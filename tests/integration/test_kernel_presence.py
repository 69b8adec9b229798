"""A worker's presence in the store, on both stores: it registers what it serves while it
runs and leaves when it stops; it logs ``run.unservable`` once per run that no live worker
serves (a workflow version no worker registered); and a worker that recovers a run from a
crashed one logs ``run.recovered`` naming it."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from aiosys import App, Context
from aiosys.kernel.worker import Worker

pytestmark = pytest.mark.timeout(60)


def intake_app(store_url: str, version: str, **kw: object) -> App:
    app = App(store=store_url, **kw)  # type: ignore[arg-type]

    @app.workflow(name="intake", version=version)
    async def intake(ctx: Context) -> str:
        return f"v{version}"

    return app


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiosys.runs" and r.event == event]


async def test_a_worker_is_registered_while_it_runs_and_leaves_when_it_stops(store_url) -> None:
    app = intake_app(store_url, "1")
    app.queue("gpu")
    async with app:
        worker = app._worker
        (me,) = await app.store.live_workers()
        assert (me.id, me.queues, me.wf_keys) == (worker.id, ("default", "gpu"), ("intake@1",))
        assert me.lease == app.lease
        # a heartbeat refreshes the registration
        await worker.presence.beat()
        (again,) = await app.store.live_workers()
        assert again.heartbeat_at >= me.heartbeat_at and again.started_at == me.started_at
        stopped_app = intake_app(store_url, "1")
    assert await _live(stopped_app) == []


async def _live(app: App) -> list[object]:
    await app.open()
    try:
        return list(await app.store.live_workers())
    finally:
        await app.close()


async def test_a_run_of_a_version_no_worker_serves_is_logged_unservable_once(
    store_url, caplog, wait_until
) -> None:
    caplog.set_level(logging.INFO, logger="aiosys.runs")
    old = intake_app(store_url, "1")
    await old.open()
    new = intake_app(store_url, "2")
    await new.open()
    worker = Worker(new, stranded_every=0.0, stranded_grace=0.0)
    await worker.start()
    new._worker = worker
    try:
        stranded = await old.start("intake")  # version 1: pending, and nobody runs it
        served = await new.start("intake")  # version 2: runs here
        assert await served.result(timeout=10) == "v2"
        await wait_until(lambda: bool(lines(caplog, "run.unservable")))
        for _ in range(3):  # more looks: the run is reported once per worker process
            await worker.presence.look()
        (line,) = lines(caplog, "run.unservable")
        assert (line.run_id, line.workflow, line.worker) == (stranded.id, "intake@1", worker.id)
        assert line.levelno == logging.WARNING
        assert (line.status, line.queue, line.served) == ("pending", "default", "intake@2")
        assert line.claimable_s >= 0
        text = line.getMessage()
        assert text.startswith(f"run.unservable run={stranded.id} workflow=intake@1 worker=")
        assert 'reason="no live worker serves intake@1 on queue default"' in text
        assert (await old.get_run(stranded.id)).status == "pending"
    finally:
        new._worker = None
        await worker.stop()
        await new.close()
        await old.close()


async def test_a_run_claimable_for_less_than_the_grace_is_not_reported(store_url, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aiosys.runs")
    old = intake_app(store_url, "1")
    await old.open()
    new = intake_app(store_url, "2")
    await new.open()
    worker = Worker(new, stranded_every=0.0, stranded_grace=3600.0)
    await worker.start()
    try:
        await old.start("intake")
        await worker.presence.look()
        assert lines(caplog, "run.unservable") == []
    finally:
        await worker.stop()
        await new.close()
        await old.close()


async def test_a_run_taken_over_from_a_crashed_worker_is_logged_recovered(
    store_url, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="aiosys.runs")
    block = asyncio.Event()
    started = asyncio.Event()
    first = App(store=store_url, lease=0.5)

    @first.step
    async def wait_here() -> int:
        started.set()
        await block.wait()
        return 1

    @first.workflow
    async def held(ctx: Context) -> int:
        return await wait_here()

    await first.open()
    crashed = Worker(first)
    await crashed.start()
    first._worker = crashed  # runs started here go straight to this worker
    run = await first.start("held")
    async with asyncio.timeout(10):
        await started.wait()
    # A hard crash: the worker's tasks vanish, nothing is released, no heartbeat any more.
    tasks = [*crashed._loops, *crashed._tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    first._worker = None
    lease_ended = (await first.get_run(run.id)).available_at
    await first.close()

    block.set()  # the next execution goes through
    async with first:
        rescuer = first._worker.id
        assert await first.handle(run.id).result(timeout=10) == 1

    (line,) = lines(caplog, "run.recovered")
    assert (line.run_id, line.workflow, line.worker) == (run.id, "held@1", rescuer)
    assert (line.lost_by, line.recoveries, line.claims, line.levelno) == (
        crashed.id,
        1,
        1,
        logging.WARNING,
    )
    assert datetime.fromisoformat(line.lease_expired_at).timestamp() == pytest.approx(
        lease_ended, abs=1e-3
    )
    assert f"lost_by={crashed.id} lease_expired_at={line.lease_expired_at}" in line.getMessage()
