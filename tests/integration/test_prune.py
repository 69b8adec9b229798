"""Pruning (``Store.prune``): what goes with a run that ended long ago and what stays, on both
stores. Every table that holds rows of a run is counted before and after.

Time is never waited for: a run that "ended 40 days ago" has its ``finished_at`` moved back in
the row (``backdate``), as the store contract moves leases and timers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from aiosys.store import Store, open_store
from aiosys.store.base import (
    EffectRow,
    Finish,
    NewRun,
    Park,
    PruneReport,
    RecordEffect,
    Release,
    RunRow,
    now,
)
from aiosys.store.prune import prunable

DAY = 86_400.0
# Each table a run owns rows in, and the column that names the run.
TABLES = {
    "runs": "id",
    "effects": "run_id",
    "signals": "run_id",
    "model_usage": "run_id",
    "model_shadows": "run_id",
    "model_cache": "run_id",
    "human_tasks": "run_id",
    "pseudonyms": "run_id",
}


def sql(store_url: str, text: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Run SQL straight on the store's database (``?`` placeholders)."""
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            cur = conn.execute(text, params)
            return [dict(r) for r in cur.fetchall()] if cur.description else []
    with psycopg.connect(store_url, autocommit=True, row_factory=dict_row) as pg:
        cur = pg.execute(text.replace("?", "%s").encode(), params)
        return list(cur.fetchall()) if cur.description else []


def backdate(store_url: str, run_ids: list[str], days: float) -> None:
    """Make runs look as if they ended ``days`` days ago."""
    for run_id in run_ids:
        sql(
            store_url,
            "UPDATE runs SET finished_at = finished_at - ? WHERE id = ?",
            (days * DAY, run_id),
        )


def rows_of(store_url: str, run_ids: list[str]) -> dict[str, int]:
    """How many rows each table holds for these runs."""
    marks = ", ".join("?" for _ in run_ids)
    return {
        table: sql(
            store_url, f"SELECT count(*) AS n FROM {table} WHERE {col} IN ({marks})", tuple(run_ids)
        )[0]["n"]
        for table, col in TABLES.items()
    }


def new_run(tenant: str = "acme", parent: str | None = None) -> NewRun:
    return NewRun(
        id=uuid.uuid4().hex,
        workflow="wf",
        version="1",
        tenant=tenant,
        queue="default",
        priority=0,
        input="{}",
        parent_id=parent,
    )


def effect(run_id: str, seq: int) -> EffectRow:
    t = now()
    return EffectRow(run_id, seq, "step", f"s{seq}", "ok", "1", None, 1, t, t)


async def own_rows(store: Store, run: RunRow, *, effects: int = 2) -> None:
    """Give a run (held by worker w) effects, a signal, a usage row, a shadow, a cache entry
    a human task and a pseudonym."""
    await store.apply(
        [RecordEffect("w", effect(run.id, i), epoch=run.epoch) for i in range(effects)]
    )
    await store.send_signal(run.id, "go", "{}")
    t = now()
    usage = {
        "at": t,
        "tenant": run.tenant,
        "workflow": "wf",
        "run_id": run.id,
        "seq": 0,
        "task": None,
        "model": "m",
        "deployment": "m@1",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost": 0.25,
        "latency_ms": 1.0,
        "status": "ok",
        "error": None,
        "reservation": None,
    }
    await store.execute("insert_usage", usage)
    shadow = {
        "at": t,
        "tenant": run.tenant,
        "task": "t",
        "run_id": run.id,
        "seq": 0,
        "primary_model": "m@1",
        "shadow_model": "n@1",
        "primary_output": "1",
        "output": "1",
        "error": None,
        "same": 1,
        "latency_ms": 1.0,
        "cost": 0.0,
    }
    await store.execute("insert_shadow", shadow)
    entry = {
        "key": f"k-{run.id}",
        "scope": "m@1",
        "response": "{}",
        "embedding": None,
        "now": t,
        "expires_at": None,
        "run_id": run.id,
    }
    await store.execute("cache_put", entry)
    task = {
        "id": f"t-{run.id}",
        "tenant": run.tenant,
        "run_id": run.id,
        "seq": effects,
        "workflow": "wf",
        "name": "review",
        "role": "paralegal",
        "data": None,
        "form": None,
        "sla": None,
        "due_at": None,
        "escalate_to": "[]",
        "return_escalated": 0,
        "assignee": None,
        "claimed_by": None,
        "claimed_at": None,
        "status": "open",
        "now": t,
    }
    assert await store.change("human_task_insert", task)
    pseudonym = {"run_id": run.id, "token": "<PERSON_1>", "tenant": run.tenant}
    pseudonym |= {"entity": "PERSON", "value": "Ada", "now": t, "epoch": run.epoch}
    assert await store.execute("pseudonym_put", pseudonym) == 1


async def started(store: Store, tenant: str = "acme", parent: str | None = None) -> RunRow:
    row, created = await store.create_run(new_run(tenant, parent), owner="w", lease=60.0)
    assert created
    return row


async def ended(
    store: Store, status: str = "succeeded", tenant: str = "acme", parent: str | None = None
) -> RunRow:
    """A run with rows of every kind, ended with ``status``."""
    run = await started(store, tenant, parent)
    await own_rows(store, run)
    if status == "cancelled":  # given back to the queue, then cancelled there
        await store.apply([Release("w", run.id, epoch=run.epoch)])
        await store.cancel(run.id, "no longer needed")
    else:
        [done] = await store.apply([Finish("w", run.id, status, epoch=run.epoch)])
        assert done.ok
    row = await store.get_run(run.id)
    assert row is not None and row.status == status
    return row


async def live(
    store: Store, status: str, tenant: str = "acme", parent: str | None = None
) -> RunRow:
    """A run with rows of every kind, left ``pending``, ``running`` or ``waiting``."""
    run = await started(store, tenant, parent)
    await own_rows(store, run)
    if status == "waiting":
        fresh = await store.get_run(run.id)
        assert fresh is not None
        [parked] = await store.apply([Park("w", run.id, None, fresh.wake_seq, epoch=run.epoch)])
        assert parked.ok
    elif status == "pending":
        await store.apply([Release("w", run.id, epoch=run.epoch)])
    row = await store.get_run(run.id)
    assert row is not None and row.status == status
    return row


ONE_RUN = {
    "runs": 1,
    "effects": 2,
    "signals": 1,
    "model_usage": 1,
    "model_shadows": 1,
    "model_cache": 1,
    "human_tasks": 1,
    "pseudonyms": 1,
}


def times(n: int) -> dict[str, int]:
    return {k: v * n for k, v in ONE_RUN.items()}


# ---- what goes and what stays --------------------------------------------------------------


async def test_runs_ended_before_the_cutoff_go_with_every_row_and_the_others_stay(
    store: Store, store_url: str
) -> None:
    old = [await ended(store, s) for s in ("succeeded", "failed", "cancelled", "dead")]
    recent = [await ended(store, "succeeded")]
    alive = [await live(store, s) for s in ("running", "waiting")]
    backdate(store_url, [r.id for r in old], days=40)
    for run in alive:  # a live run's own finished_at is empty; nothing makes it prunable
        assert run.finished_at is None
    old_ids, kept_ids = [r.id for r in old], [r.id for r in recent + alive]
    assert rows_of(store_url, old_ids) == times(4)
    kept_before = rows_of(store_url, kept_ids)

    report = await store.prune(store.clock() - 30 * DAY)

    assert (report.runs, report.effects, report.signals) == (4, 8, 4)
    assert (report.usage, report.shadows, report.cache, report.pseudonyms) == (4, 4, 4, 4)
    assert rows_of(store_url, old_ids) == dict.fromkeys(TABLES, 0)
    assert rows_of(store_url, kept_ids) == kept_before
    assert kept_before["runs"] == 3


async def test_a_pending_run_is_never_pruned(store: Store, store_url: str) -> None:
    waiting = await live(store, "pending")
    report = await store.prune(store.clock() + DAY)  # a cutoff ahead of every end
    assert report.runs == 0
    assert rows_of(store_url, [waiting.id])["runs"] == 1


async def test_a_pruned_parent_takes_its_ended_children_and_leaves_its_live_ones(
    store: Store, store_url: str
) -> None:
    parent = await started(store)
    done_child = await ended(store, parent=parent.id)  # ended just now: goes with its parent
    done_grandchild = await ended(store, parent=done_child.id)
    live_child = await live(store, "waiting", parent=parent.id)
    under_live = await ended(store, parent=live_child.id)  # below a live run: stays
    await own_rows(store, parent)
    [fin] = await store.apply([Finish("w", parent.id, "succeeded", epoch=parent.epoch)])
    assert fin.ok
    backdate(store_url, [parent.id], days=40)

    report = await store.prune(store.clock() - 30 * DAY)

    gone = [parent.id, done_child.id, done_grandchild.id]
    assert report.runs == 3
    assert rows_of(store_url, gone) == dict.fromkeys(TABLES, 0)
    assert rows_of(store_url, [live_child.id, under_live.id]) == times(2)

    # Once the live child has ended long enough, it goes (its parent is gone) with its own.
    row = await store.get_run(live_child.id)
    assert row is not None
    [fin] = await store.apply([Finish("w", row.id, "succeeded", epoch=row.epoch, parked=True)])
    assert fin.ok
    assert (await store.prune(store.clock() - 30 * DAY)).runs == 0  # ended just now
    backdate(store_url, [live_child.id], days=40)
    assert (await store.prune(store.clock() - 30 * DAY)).runs == 2
    assert rows_of(store_url, [live_child.id, under_live.id]) == dict.fromkeys(TABLES, 0)


async def test_a_child_that_ended_long_ago_waits_for_its_live_parent(
    store: Store, store_url: str
) -> None:
    parent = await started(store)
    child = await ended(store, parent=parent.id)
    backdate(store_url, [child.id], days=40)
    assert (await store.prune(store.clock() - 30 * DAY)).runs == 0
    assert rows_of(store_url, [child.id]) == ONE_RUN


async def test_a_tenant_prune_leaves_other_tenants_runs(store: Store, store_url: str) -> None:
    acme = [await ended(store, tenant="acme") for _ in range(2)]
    globex = [await ended(store, tenant="globex") for _ in range(3)]
    ids = [r.id for r in acme + globex]
    backdate(store_url, ids, days=40)

    report = await store.prune(store.clock() - 30 * DAY, tenant="acme")

    assert (report.runs, report.tenant) == (2, "acme")
    assert rows_of(store_url, [r.id for r in acme]) == dict.fromkeys(TABLES, 0)
    assert rows_of(store_url, [r.id for r in globex]) == times(3)
    assert (await store.prune(store.clock() - 30 * DAY)).runs == 3


async def test_a_dry_run_deletes_nothing_and_counts_what_a_prune_then_deletes(
    store: Store, store_url: str
) -> None:
    runs = [await ended(store) for _ in range(3)]
    ids = [r.id for r in runs]
    cutoff = store.clock() + 1

    dry = await store.prune(cutoff, dry_run=True)

    assert dry.dry_run and rows_of(store_url, ids) == times(3)
    real = await store.prune(cutoff)
    assert dry.counts() == real.counts()
    assert real.counts() == {
        "runs": 3,
        "effects": 6,
        "signals": 3,
        "usage": 3,
        "shadows": 3,
        "cache": 3,
        "tasks": 3,
        "pseudonyms": 3,
        "reservations": 0,
    }


async def test_batches_reach_every_run_oldest_first_and_a_limit_stops_early(
    store: Store, store_url: str
) -> None:
    runs = [await ended(store) for _ in range(7)]
    for i, run in enumerate(runs):  # the first ended longest ago
        backdate(store_url, [run.id], days=40 - i)
    seen: list[PruneReport] = []

    first = await store.prune(store.clock() - 30 * DAY, limit=3, batch=2, progress=seen.append)

    assert (first.runs, first.roots) == (3, 3)
    assert [rows_of(store_url, [r.id])["runs"] for r in runs] == [0, 0, 0, 1, 1, 1, 1]
    assert [r.roots for r in seen] == [2, 3, 3]  # two batches, then the reservations
    rest = await store.prune(store.clock() - 30 * DAY, batch=2)
    assert rest.runs == 4
    again = await store.prune(store.clock() - 30 * DAY, batch=2)
    assert again.counts() == dict.fromkeys(again.counts(), 0)  # idempotent


async def test_two_prunes_at_once_delete_each_run_once(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    await first.open()
    await second.open()
    try:
        runs = [await ended(first) for _ in range(30)]
        cutoff = first.clock() + 1
        a, b = await asyncio.gather(first.prune(cutoff, batch=4), second.prune(cutoff, batch=4))
        assert a.runs + b.runs == 30
        assert a.effects + b.effects == 60
        assert rows_of(store_url, [r.id for r in runs]) == dict.fromkeys(TABLES, 0)
    finally:
        await first.close()
        await second.close()


async def test_expired_reservations_go_and_live_ones_stay(store: Store, store_url: str) -> None:
    t = store.clock()
    for rid, expires in (("gone", t - 60), ("live", t + 600)):
        params = {
            "id": rid,
            "tenant": "acme",
            "workflow": None,
            "amount": 1.0,
            "at": t - 120,
            "expires_at": expires,
            "budgets": "[]",
        }
        assert await store.fetch("reserve_budget", params) == [{"id": rid}]
    report = await store.prune(t + DAY)  # a cutoff ahead: the live one still stays
    assert report.reservations == 1
    left = sql(store_url, "SELECT id FROM model_reservations")
    assert [r["id"] for r in left] == ["live"]


# ---- a run that changes under a prune ------------------------------------------------------


def test_a_root_resumed_after_the_batch_was_chosen_stays_with_its_children() -> None:
    tree = [
        {"id": "r", "parent_id": None, "status": "dead", "finished_at": 1.0, "root_n": 1},
        {"id": "c", "parent_id": "r", "status": "succeeded", "finished_at": 2.0, "root_n": None},
        {"id": "s", "parent_id": None, "status": "failed", "finished_at": 1.5, "root_n": 2},
    ]
    now_rows = [
        {"id": "r", "parent_id": None, "status": "pending", "finished_at": None},  # resumed
        {"id": "c", "parent_id": "r", "status": "succeeded", "finished_at": 2.0},
        {"id": "s", "parent_id": None, "status": "failed", "finished_at": 1.5},
    ]
    assert prunable(tree, tree, before=10.0) == ["c", "r", "s"]
    assert prunable(tree, now_rows, before=10.0) == ["s"]
    # Resumed and ended again after the cutoff: not a root of this prune any more.
    again = [dict(now_rows[0], status="succeeded", finished_at=20.0), *now_rows[1:]]
    assert prunable(tree, again, before=10.0) == ["s"]
    # Pruned by another process meanwhile: nothing left to delete.
    assert prunable(tree, [], before=10.0) == []


async def test_a_run_resumed_before_the_prune_stays(store: Store, store_url: str) -> None:
    dead = await ended(store, "dead")
    backdate(store_url, [dead.id], days=40)
    await store.resume(dead.id)
    assert (await store.prune(store.clock() - 30 * DAY)).runs == 0
    assert rows_of(store_url, [dead.id])["runs"] == 1


# ---- the cache ---------------------------------------------------------------------------


async def test_a_cache_entry_refreshed_by_a_later_run_follows_that_run(
    store: Store, store_url: str
) -> None:
    first = await ended(store)
    second = await ended(store)
    entry = {
        "key": "shared",
        "scope": "m@1",
        "response": "{}",
        "embedding": None,
        "now": now(),
        "expires_at": None,
    }
    await store.execute("cache_put", {**entry, "run_id": first.id})
    await store.execute("cache_put", {**entry, "run_id": second.id})
    backdate(store_url, [first.id], days=40)
    await store.prune(store.clock() - 30 * DAY)
    assert sql(store_url, "SELECT run_id FROM model_cache WHERE key = 'shared'") == [
        {"run_id": second.id}
    ]


async def test_a_pruned_run_takes_its_recoveries_and_a_kept_run_keeps_them(
    store: Store, store_url: str
) -> None:
    """``run_recoveries`` rows (written when a claim took a run over from a dead worker)
    belong to their run: they go when it is pruned, and stay with a run that is kept."""
    old, recent = await ended(store, "succeeded"), await ended(store, "succeeded")
    backdate(store_url, [old.id], days=40)
    for run in (old, recent):
        sql(
            store_url,
            "INSERT INTO run_recoveries (run_id, epoch, worker, claimed_at) VALUES (?, 2, 'w', 0)",
            (run.id,),
        )
    await store.prune(store.clock() - 30 * DAY)
    left = sql(store_url, "SELECT run_id FROM run_recoveries ORDER BY run_id")
    assert [r["run_id"] for r in left] == [recent.id]
