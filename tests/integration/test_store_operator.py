"""What the store keeps for operators, on SQLite and PostgreSQL: a run's recoveries (the gaps
where a worker's lease expired), the claim and worker of each effect record, the workers
registry and the runs no live worker serves. Time is never waited for: a lease that expired is
written in the past, and a worker that stopped beating is registered on a clock set back."""

from __future__ import annotations

import pytest
from tests.integration.test_store_contract import claim_for, effect, get, pending, running

from aiosys.errors import RunNotFound
from aiosys.store import Store
from aiosys.store.base import (
    LIVE_LEASES,
    Finish,
    Park,
    RecordEffect,
    Release,
    WorkerInfo,
    WriteResult,
    now,
)

pytestmark = pytest.mark.timeout(60)


def info(
    worker_id: str,
    *,
    wf_keys: tuple[str, ...] = ("wf@1",),
    queues: tuple[str, ...] = ("default",),
    lease: float = 30.0,
) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id, host="h1", pid=4242, queues=queues, wf_keys=wf_keys, lease=lease
    )


async def test_a_claim_of_an_expired_lease_names_the_worker_that_lost_it(store: Store) -> None:
    run = await running(store, "w1", lease=10, created_at=now() - 100)  # lease ended 90 s ago
    (row,), _ = await store.claim(claim_for("w2"))
    assert (row.id, row.lease_owner, row.recoveries, row.epoch) == (run.id, "w2", 1, 2)
    assert row.recovered_from == "w1"
    assert row.lease_expired_at == pytest.approx(run.available_at, abs=1e-3)
    (recovery,) = await store.list_recoveries(run.id)
    assert (recovery.epoch, recovery.worker, recovery.recovered_from) == (2, "w2", "w1")
    assert recovery.lease_expired_at == pytest.approx(run.available_at, abs=1e-3)
    assert recovery.claimed_at == pytest.approx(row.updated_at, abs=1e-3)
    assert recovery.claimed_at > recovery.lease_expired_at


async def test_a_claim_of_a_run_nobody_held_is_no_recovery(store: Store) -> None:
    run = await pending(store)
    (row,), _ = await store.claim(claim_for("w1"))
    assert (row.recovered_from, row.lease_expired_at, row.recoveries) == (None, None, 0)
    # given back (a drain), then claimed by another worker: a hand-over, not a gap
    assert await store.apply([Release("w1", run.id, epoch=row.epoch)]) == [WriteResult(True)]
    (again,), _ = await store.claim(claim_for("w2"))
    assert (again.recovered_from, again.lease_expired_at) == (None, None)
    assert await store.list_recoveries(run.id) == []


async def test_a_plain_claim_after_a_recovery_clears_the_recovery_from_the_run(
    store: Store,
) -> None:
    run = await running(store, "w1", lease=10, created_at=now() - 100)
    (row,), _ = await store.claim(claim_for("w2"))
    assert row.recovered_from == "w1"
    park = Park("w2", run.id, now() - 1, row.wake_seq, epoch=row.epoch)  # a timer already due
    assert await store.apply([park]) == [WriteResult(True)]
    (woken,), _ = await store.claim(claim_for("w3"))
    assert (woken.recovered_from, woken.lease_expired_at) == (None, None)
    assert [(r.epoch, r.worker) for r in await store.list_recoveries(run.id)] == [(2, "w2")]


async def test_an_effect_keeps_the_claim_and_worker_it_was_recorded_under(store: Store) -> None:
    run = await running(store, "w1", lease=10, created_at=now() - 100)
    first = RecordEffect("w1", effect(run.id, 1), epoch=1)
    timer = RecordEffect("w1", effect(run.id, 2, status="pending"), epoch=1)
    assert await store.apply([first, timer]) == [WriteResult(True)] * 2
    (row,), _ = await store.claim(claim_for("w2"))
    done = RecordEffect("w2", effect(run.id, 2), epoch=row.epoch)
    third = RecordEffect("w2", effect(run.id, 3), epoch=row.epoch)
    assert await store.apply([done, third]) == [WriteResult(True)] * 2
    assert [(e.seq, e.epoch, e.worker) for e in await store.list_effects(run.id)] == [
        (1, 1, "w1"),
        (2, 2, "w2"),  # completed by the claim that recovered it
        (3, 2, "w2"),
    ]


async def test_recoveries_are_scoped_by_tenant(store: Store) -> None:
    run = await running(store, "w1", lease=10, created_at=now() - 100)
    await store.claim(claim_for("w2"))
    assert len(await store.list_recoveries(run.id, tenant="acme")) == 1
    with pytest.raises(RunNotFound):
        await store.list_recoveries(run.id, tenant="globex")
    assert await store.list_recoveries("no-such-run") == []


async def test_a_registered_worker_is_live_until_it_stops_beating_or_leaves(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await store.live_workers() == []
    await store.beat_worker(info("w1", wf_keys=("wf@1", "other@3"), queues=("default", "gpu")))
    (w1,) = await store.live_workers()
    assert (w1.id, w1.host, w1.pid) == ("w1", "h1", 4242)
    assert (w1.queues, w1.wf_keys, w1.lease) == (("default", "gpu"), ("wf@1", "other@3"), 30.0)
    assert w1.expires_at == pytest.approx(w1.heartbeat_at + LIVE_LEASES * 30.0)
    # a beat refreshes the row (and what it serves), never adds one
    await store.beat_worker(info("w1", wf_keys=("wf@2",)))
    (again,) = await store.live_workers()
    assert again.wf_keys == ("wf@2",) and again.started_at == w1.started_at
    # w2 last beat more than LIVE_LEASES leases ago: it died or hung
    real_clock = store.clock
    monkeypatch.setattr(store, "clock", lambda: real_clock() - LIVE_LEASES * 30.0 - 1)
    await store.beat_worker(info("w2"))
    monkeypatch.setattr(store, "clock", real_clock)
    assert [w.id for w in await store.live_workers()] == ["w1"]
    await store.drop_worker("w1")
    assert await store.live_workers() == []


async def test_with_no_live_worker_every_claimable_run_is_stranded(store: Store) -> None:
    waiting = await pending(store)
    expired = await running(store, "w1", lease=10, created_at=now() - 100)
    due = await running(store, "w1")
    assert await store.apply([Park("w1", due.id, now() - 1, due.wake_seq, epoch=1)]) == [
        WriteResult(True)
    ]
    held = await running(store, "w1")  # a live lease: not claimable
    later = await running(store, "w1")
    assert await store.apply([Park("w1", later.id, now() + 600, later.wake_seq, epoch=1)]) == [
        WriteResult(True)
    ]
    ended = await running(store, "w1")
    assert await store.apply([Finish("w1", ended.id, "succeeded", result="1", epoch=1)]) == [
        WriteResult(True)
    ]
    stranded = await store.stranded_runs()
    assert {r.id for r in stranded} == {waiting.id, expired.id, due.id}
    assert held.id not in {r.id for r in stranded}
    # longest claimable first
    assert stranded[0].id == expired.id


async def test_a_run_is_stranded_when_no_live_worker_serves_its_version_and_queue(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = await pending(store)  # wf@1 on default
    new_version = await pending(store, version="2")
    other_queue = await pending(store, queue="gpu")
    await store.beat_worker(info("w1", wf_keys=("wf@1",), queues=("default",)))
    await store.beat_worker(info("w2", wf_keys=("wf@2",), queues=("gpu",)))  # not default
    assert {r.id for r in await store.stranded_runs()} == {new_version.id, other_queue.id}
    assert [r.id for r in await store.stranded_runs(queues=["gpu"])] == [other_queue.id]
    assert await store.stranded_runs(workflow="nope") == []
    assert await store.stranded_runs(tenant="globex") == []
    assert await store.stranded_runs(claimable_for=3600) == []
    assert len(await store.stranded_runs(limit=1)) == 1
    # the worker that served wf@1 died: its runs are stranded too
    await store.drop_worker("w1")
    assert served.id in {r.id for r in await store.stranded_runs()}
    # one that serves wf@2 on default comes up
    await store.beat_worker(info("w3", wf_keys=("wf@1", "wf@2"), queues=("default", "gpu")))
    assert await store.stranded_runs() == []
    assert (await get(store, new_version.id)).status == "pending"
