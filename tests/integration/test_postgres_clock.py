"""On PostgreSQL, leases and timers are measured by the database server's clock, so workers on
hosts whose clocks disagree still agree on when a lease expires and a timer is due."""

from __future__ import annotations

import time

import pytest

from aiosys import App, Context
from aiosys.store.postgres import PostgresStore

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0


def fast_host_store(url: str) -> PostgresStore:
    """A store as a host whose clock runs an hour ahead sees it."""
    store = PostgresStore(url)
    store._host_clock = lambda: time.time() + HOUR
    return store


async def test_the_store_clock_is_the_servers_whatever_the_hosts_clock(pg_url):
    store = fast_host_store(pg_url)
    await store.open()
    try:
        assert abs(store.clock() - time.time()) < 5.0  # the server runs on this machine
    finally:
        await store.close()


def sleeper(store: str | PostgresStore) -> App:
    app = App(store=store, lease=1.0)

    @app.workflow
    async def nap(ctx: Context) -> str:
        await ctx.sleep(0.3)
        return "rested"

    return app


async def test_a_timer_set_on_a_host_with_a_fast_clock_is_due_on_time_elsewhere(
    pg_url, wait_status
):
    fast = sleeper(fast_host_store(pg_url))
    async with fast:
        run = await fast.start("nap")
        await wait_status(fast, run.id, "waiting")
        parked = await fast.get_run(run.id)
    # The timer is due 0.3 s from now by the server's clock, not an hour from now.
    assert parked.available_at is not None and parked.available_at < time.time() + 60
    honest = sleeper(pg_url)
    async with honest:
        assert await honest.handle(run.id).result(timeout=20) == "rested"
