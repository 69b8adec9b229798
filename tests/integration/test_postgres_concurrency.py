"""PostgreSQL only: writes racing a claim in another transaction.

Under READ COMMITTED a statement reads the last committed state and does not wait for a
transaction that is changing it. SQLite has one writer at a time, so there the race cannot
happen; on PostgreSQL the store must lock the runs it writes so that a lease checked by a
write is still the lease when it commits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from aiosys.store import Store, open_store
from aiosys.store.base import EffectRow, NewRun, RecordEffect, WriteResult, now


async def lock_waiters(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.datname = current_database()"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    s = open_store(pg_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def held_run(store: Store, *, started: float) -> str:
    run, _ = await store.create_run(
        NewRun(
            id=uuid.uuid4().hex,
            workflow="wf",
            version="1",
            tenant="t",
            queue="default",
            priority=0,
            input="{}",
            created_at=started,
        ),
        owner="w1",
        lease=10,
    )
    return run.id


def record(run_id: str) -> RecordEffect:
    t = now()
    return RecordEffect("w1", EffectRow(run_id, 0, "step", "s", "ok", "1", None, 1, t, t), epoch=1)


@pytest.mark.parametrize("batch", ["alone", "in a batch"])
async def test_effect_record_waits_for_a_claim_in_flight_and_is_fenced_by_it(
    store: Store, pg_url: str, batch: str
) -> None:
    taken = await held_run(store, started=now() - 100)  # lease expired: may be taken over
    kept = await held_run(store, started=now())
    writes = [record(taken)] if batch == "alone" else [record(kept), record(taken)]
    async with (
        await psycopg.AsyncConnection.connect(pg_url) as claimer,
        await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as watcher,
    ):
        # w2 takes the run over in a transaction that has not committed yet
        await claimer.execute(
            "UPDATE runs SET lease_owner = 'w2', epoch = epoch + 1, available_at = %s"
            " WHERE id = %s",
            (now() + 60, taken),
        )
        write = asyncio.create_task(store.apply(writes))
        async with asyncio.timeout(10):
            # the database is what changes: there is no event to wait on
            while not write.done() and await lock_waiters(watcher) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await claimer.commit()
    assert (await write)[-1] == WriteResult(False)
    assert await store.list_effects(taken) == []
    assert len(await store.list_effects(kept)) == len(writes) - 1
