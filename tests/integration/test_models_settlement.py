"""How hard-budget reservations are made and settled cheaply, on both stores.

- The reservation is committed without a disk sync of its own (``Store.fetch(...,
  durable=False)``): it is still committed, and seen by every other connection, when the
  statement returns, and SQLite's later commits are fully synced again.
- A usage row that settles a reservation is written within ``settle_delay``, not the
  usual ``delay``: until it lands, its reservation holds the call's worst case everywhere.
- What this process's unwritten rows add to a budget beyond their reservations
  (``UsageLog.beyond_reservations``, read before every reserved call) is kept as running
  sums; it must equal the row-by-row count in every state a row can be in (pending,
  being written, held for a workflow effect) and with rows outside the period or with
  expired reservations.

No test sleeps: writes are awaited as events, with a generous timeout that only a broken
implementation reaches.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import psycopg
import pytest

from aiosys.models.links.metering import UsageLog
from aiosys.store import Store

T0 = 1_715_000_000.0


def select(store_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from the database, through a connection of its own (another process's
    view)."""
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(store_url, autocommit=True) as conn:
        return conn.execute(sql.encode()).fetchall()


def reserve_params(rid: str, amount: float, room: float) -> dict[str, Any]:
    budgets = [{"workflow": None, "since": 0.0, "full_from": 0.0, "room": room}]
    return {
        "id": rid,
        "tenant": "acme",
        "workflow": None,
        "amount": amount,
        "at": T0,
        "expires_at": T0 + 3600,
        "budgets": json.dumps(budgets),
    }


async def test_an_unsynced_reservation_is_committed_and_seen_by_others_at_once(
    store: Store, store_url: str
) -> None:
    first = await store.fetch("reserve_budget", reserve_params("r-1", 0.6, 1.0), durable=False)
    assert first == [{"id": "r-1"}]
    # Another connection (another process sharing the budget) counts it already...
    assert select(store_url, "SELECT id, amount FROM model_reservations") == [("r-1", 0.6)]
    # ...and so does the next reservation, which no longer fits beside it.
    assert await store.fetch("reserve_budget", reserve_params("r-2", 0.6, 1.0), durable=False) == []
    if store_url.startswith("sqlite"):
        # The kernel's own commits (run records) are fully synced again afterwards.
        conn = store._conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


class WatchedStore:
    """The real store; every usage batch is counted, and may be held until released."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[int] = []
        self.written = asyncio.Event()
        self.writing = asyncio.Event()
        self.go_on = asyncio.Event()
        self.go_on.set()

    async def execute_many(self, query: str, rows: Any) -> int:
        self.batches.append(len(rows))
        self.writing.set()
        await self.go_on.wait()
        try:
            return await self.store.execute_many(query, rows)
        finally:
            self.written.set()


def usage_row(
    cost: float,
    *,
    tenant: str = "acme",
    workflow: str | None = None,
    at: float = T0,
    reserved: float | None = None,
    reserved_until: float = T0 + 3600,
    run_id: str = "run-1",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "at": at,
        "tenant": tenant,
        "workflow": workflow,
        "run_id": run_id,
        "seq": None,
        "task": None,
        "model": "m",
        "deployment": "m@1",
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost": cost,
        "latency_ms": 1.0,
        "status": "ok",
        "error": None,
        "reservation": None,
    }
    if reserved is not None:
        row["reservation"] = f"res-{id(row)}"
        row["reserved"], row["reserved_until"] = reserved, reserved_until
    return row


async def test_a_row_that_settles_a_reservation_is_written_within_the_settle_delay(
    store: Store,
) -> None:
    watched = WatchedStore(store)
    log = UsageLog(watched, delay=3600.0, settle_delay=0.01)  # type: ignore[arg-type]
    log.add(usage_row(0.5))  # no reservation: it could wait an hour...
    log.add(usage_row(0.1, reserved=0.4))  # ...but this one settles one, so both go now
    await asyncio.wait_for(watched.written.wait(), 10)
    assert watched.batches == [2]
    rows = await store.fetch("usage_rows_of_run", {"run_id": "run-1"})
    assert sorted(r["cost"] for r in rows) == [0.1, 0.5]


def counted(
    groups: list[tuple[list[dict[str, Any]], bool]],
    tenant: str,
    workflow: str | None,
    since: float,
    now: float,
) -> float:
    """``beyond_reservations`` row by row, as documented (pending rows exact, the others
    floored at their reservation)."""
    total = 0.0
    for rows, exact in groups:
        for r in rows:
            if r["tenant"] != tenant or r["at"] < since:
                continue
            if workflow is not None and r["workflow"] != workflow:
                continue
            cost = float(r["cost"])
            if r["reservation"] is not None and r["reserved_until"] > now:
                cost -= r["reserved"]
                if not exact:
                    cost = max(0.0, cost)
            total += cost
    return total


QUERIES = [
    (tenant, workflow, since, now)
    for tenant in ("acme", "other")
    for workflow in (None, "w1", "w2")
    for since in (0.0, T0 + 5)  # the second leaves the earliest rows out of the period
    for now in (T0, T0 + 150)  # the second is past some reservations' expiry
]


def check(log: UsageLog, groups: list[tuple[list[dict[str, Any]], bool]]) -> None:
    for tenant, workflow, since, now in QUERIES:
        got = log.beyond_reservations(tenant, workflow, since, now)
        want = counted(groups, tenant, workflow, since, now)
        assert got == pytest.approx(want, abs=1e-12), (tenant, workflow, since, now)


async def test_running_sums_count_as_the_rows_do_in_every_state(store: Store) -> None:
    watched = WatchedStore(store)
    log = UsageLog(watched, delay=3600.0, settle_delay=3600.0)  # type: ignore[arg-type]
    pending = [
        usage_row(0.2, reserved=0.5),  # cost less than reserved: gives room back
        usage_row(0.7, reserved=0.5, workflow="w1", at=T0 + 10),  # cost more
        usage_row(0.3, workflow="w2", at=T0 + 10),  # no reservation: its whole cost
        usage_row(0.4, reserved=0.1, reserved_until=T0 + 100, at=T0 + 10),  # expires
        usage_row(0.9, reserved=1.0, tenant="other", workflow="w1", at=T0 + 10),
    ]
    held = [
        usage_row(0.1, reserved=0.6, workflow="w1", at=T0 + 10),
        usage_row(0.8, reserved=0.2, at=T0 + 10),
    ]
    for row in pending:
        log.add(row)
    for row in held:
        log.hold(row)
    check(log, [(pending, True), (held, False)])

    # Being written: the batch no longer counts exactly (it may have landed already).
    watched.go_on.clear()
    flushing = asyncio.ensure_future(log.flush())
    await asyncio.wait_for(watched.writing.wait(), 10)
    late = [usage_row(0.05, reserved=0.3, at=T0 + 10)]
    log.add(late[0])
    check(log, [(late, True), (pending, False), (held, False)])
    watched.go_on.set()
    await asyncio.wait_for(flushing, 10)
    check(log, [(held, False)])  # the late row went in the same flush

    # An effect's transaction ends: committed rows leave, a failed one's rows go pending.
    log.release(held[:1], committed=True)
    check(log, [(held[1:], False)])
    log.release(held[1:], committed=False)
    check(log, [(held[1:], True)])
    await log.flush()
    check(log, [])
