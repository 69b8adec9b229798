"""A run of a workflow version no worker serves (code deployed as version "2" while a run of
another version is pending), with a real ``aiosys worker`` process running: the worker logs
one ``run.unservable`` line for it, and ``aiosys runs list --stranded`` lists it and names
the live worker, on both stores."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import crashapp
import pytest
from tests.unit.clirunner import aiosys, ok
from workerprocs import Workers, poll_until

from aiosys import App, Context

pytestmark = pytest.mark.timeout(120)


def other_version(store_url: str) -> App:
    app = App(store_url)

    @app.workflow(name="chain", version="0")  # the worker's crashapp serves chain@1
    async def chain(ctx: Context, n: int = 1) -> int:
        return n

    return app


async def test_a_run_no_live_worker_serves_is_logged_by_the_worker_and_listed_stranded(
    store_url: str, workers_factory: Callable[..., Workers]
) -> None:
    old = await other_version(store_url).open()
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=2, lease=1.0)
    try:
        stranded = await old.start("chain", {"n": 1})
        worker = pool.spawn()
        await pool.wait_ready()
        served = await app.start("chain", {"n": 2})
        assert await app.handle(served.id).result(timeout=60) == 2

        async def logged() -> bool:
            pool.check_alive()
            return "run.unservable" in worker.log.read_text()

        await poll_until(logged, 60, "the worker to log run.unservable")
        listed = json.loads(
            ok(
                await asyncio.to_thread(
                    aiosys, "runs", "list", "--stranded", "--json", "--store", store_url
                )
            ).stdout
        )
        assert (await old.get_run(stranded.id)).status == "pending"
    finally:
        pool.close()
        await app.close()
        await old.close()

    (line,) = [ln for ln in worker.log.read_text().splitlines() if "run.unservable" in ln]
    found = re.search(r"run\.unservable run=(\S+) workflow=(\S+) worker=(\S+)", line)
    assert found is not None
    assert found.groups()[:2] == (stranded.id, "chain@0")
    assert f":{worker.pid}:" in found.group(3)
    assert "served=chain@1" in line and "queue=default" in line

    assert [r["id"] for r in listed["stranded"]] == [stranded.id]
    (live,) = listed["live_workers"]
    assert live["pid"] == worker.pid and "chain@1" in live["serves"]
