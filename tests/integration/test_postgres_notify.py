"""PostgreSQL only: idle workers learn of claimable work through LISTEN/NOTIFY at once.

SQLite has no notifications across processes and polls instead; everything else both stores
share is in ``test_store_contract.py``. Each test first lets the listening store start
listening, then checks that it is not woken before the action and is woken right after it,
well before its own timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from aiosys.store import Store, open_store
from aiosys.store.base import Finish, NewRun, Park, Release, now

TIMEOUT = 60.0  # what the listener would wait without a notification
PROMPTLY = 5.0  # what the test allows after the action
QUIET = 0.3  # how long the listener must stay asleep before the action


def new_run(parent: str | None = None) -> NewRun:
    return NewRun(
        id=uuid.uuid4().hex,
        workflow="wf",
        version="1",
        tenant="acme",
        queue="default",
        priority=0,
        input="{}",
        parent_id=parent,
    )


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """A listening store and another one (as in another process) that acts."""
    listener, actor = open_store(pg_url), open_store(pg_url)
    await listener.open()
    await actor.open()
    try:
        yield listener, actor
    finally:
        await listener.close()
        await actor.close()


async def running(store: Store, parent: str | None = None) -> str:
    row, _ = await store.create_run(new_run(parent), owner="w1", lease=60)
    return row.id


async def parked(store: Store) -> str:
    run_id = await running(store)
    await store.apply([Park("w1", run_id, None, 0, epoch=1)])
    return run_id


async def woken_by(listener: Store, action: Callable[[], Awaitable[object]]) -> None:
    """Assert ``listener.wait_for_work`` sleeps until ``action`` and returns promptly after."""
    await listener.wait_for_work(PROMPTLY)  # starts listening; returns once it listens
    woke = asyncio.Event()

    async def wait() -> None:
        await listener.wait_for_work(TIMEOUT)
        woke.set()

    waiter = asyncio.create_task(wait())
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(woke.wait(), QUIET)
        await action()
        await asyncio.wait_for(woke.wait(), PROMPTLY)
    finally:
        waiter.cancel()


async def test_wait_for_work_returns_when_another_store_creates_a_run(
    stores: tuple[Store, Store],
) -> None:
    listener, actor = stores
    await woken_by(listener, lambda: actor.create_run(new_run()))


async def test_run_started_already_claimed_wakes_nobody(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    await listener.wait_for_work(PROMPTLY)
    await actor.create_run(new_run(), owner="w1", lease=60)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(listener.wait_for_work(TIMEOUT), QUIET * 2)


async def test_signal_to_waiting_run_wakes_listeners(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    run_id = await parked(actor)
    await woken_by(listener, lambda: actor.send_signal(run_id, "go", "null"))


async def test_released_run_wakes_listeners(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    run_id = await running(actor)
    await woken_by(listener, lambda: actor.apply([Release("w1", run_id, epoch=1)]))


async def test_finished_child_wakes_listeners_for_its_parent(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    parent = await parked(actor)
    child = await running(actor, parent)
    done = Finish("w1", child, "succeeded", result="1", parent_id=parent, epoch=1)
    await woken_by(listener, lambda: actor.apply([done]))


async def test_cancelled_child_wakes_listeners_for_its_parent(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    parent = await parked(actor)
    child, _ = await actor.create_run(new_run(parent))
    await woken_by(listener, lambda: actor.cancel(child.id, "enough"))


async def test_resumed_run_wakes_listeners(stores: tuple[Store, Store]) -> None:
    listener, actor = stores
    run_id = await running(actor)
    await actor.apply([Finish("w1", run_id, "dead", error='"x"', epoch=1)])
    await woken_by(listener, lambda: actor.resume(run_id))


async def test_listener_gives_up_at_its_timeout(stores: tuple[Store, Store]) -> None:
    listener, _ = stores
    await listener.wait_for_work(PROMPTLY)
    started = now()
    await listener.wait_for_work(0.2)
    assert now() - started >= 0.19
