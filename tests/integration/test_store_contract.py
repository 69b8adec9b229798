"""The store contract: what the kernel relies on, checked against SQLite and PostgreSQL.

Every test runs once per store (the ``store`` fixture of ``tests/conftest.py``). Time is never
waited for: a lease that expired or a timer that is due is written in the past.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest

from aiosys.errors import ConfigError, InvalidRunState, RunNotFound
from aiosys.store import Store, open_store
from aiosys.store.base import (
    Claim,
    EffectRow,
    Finish,
    NewRun,
    Park,
    RecordEffect,
    Release,
    RunRow,
    WriteResult,
    now,
)

WF = "wf@1"


def new_run(
    *,
    queue: str = "default",
    priority: int = 0,
    version: str = "1",
    tenant: str = "acme",
    key: str | None = None,
    parent: str | None = None,
    created_at: float | None = None,
) -> NewRun:
    return NewRun(
        id=uuid.uuid4().hex,
        workflow="wf",
        version=version,
        tenant=tenant,
        queue=queue,
        priority=priority,
        input='{"x": 1}',
        idempotency_key=key,
        parent_id=parent,
        created_at=now() if created_at is None else created_at,
    )


def claim_for(
    owner: str,
    slots: dict[str, int] | None = None,
    *,
    wf_keys: tuple[str, ...] = (WF,),
    global_limits: dict[str, int] | None = None,
    lease: float = 60.0,
) -> Claim:
    return Claim(
        owner=owner,
        wf_keys=list(wf_keys),
        slots={"default": 10} if slots is None else slots,
        global_limits=global_limits or {},
        lease=lease,
    )


def effect(run_id: str, seq: int, *, status: str = "ok", error: str | None = None) -> EffectRow:
    t = now()
    return EffectRow(
        run_id=run_id,
        seq=seq,
        kind="step",
        name=f"step{seq}",
        status=status,
        output=None if status != "ok" else json.dumps(seq),
        error=error,
        attempt=1,
        started_at=t,
        finished_at=None if status == "pending" else t,
    )


async def pending(store: Store, **kwargs: object) -> RunRow:
    row, created = await store.create_run(new_run(**kwargs))  # type: ignore[arg-type]
    assert created
    return row


async def running(store: Store, owner: str = "w1", lease: float = 60.0, **kwargs: object) -> RunRow:
    """A run held by ``owner``, as a worker that starts a run in its own process has it."""
    row, created = await store.create_run(new_run(**kwargs), owner=owner, lease=lease)  # type: ignore[arg-type]
    assert created and row.status == "running" and row.lease_owner == owner
    return row


async def parked(store: Store, wake_at: float | None, owner: str = "w1") -> RunRow:
    run = await running(store, owner)
    assert await store.apply([Park(owner, run.id, wake_at, run.wake_seq, epoch=run.epoch)]) == [
        WriteResult(True)
    ]
    return await get(store, run.id)


async def get(store: Store, run_id: str) -> RunRow:
    row = await store.get_run(run_id)
    assert row is not None
    return row


def at(t: float | None, within: float = 1e-3) -> object:
    """A time, as stored (a float equal to within a millisecond)."""
    return pytest.approx(t, abs=within)


def ids(rows: list[RunRow]) -> set[str]:
    return {r.id for r in rows}


# ---- starting runs ----------------------------------------------------------------------


async def test_second_start_with_same_idempotency_key_returns_existing_run(store: Store) -> None:
    first, created = await store.create_run(new_run(key="order-7"))
    again, created_again = await store.create_run(new_run(key="order-7"))
    assert created and not created_again
    assert again == first
    assert [r.id for r in await store.list_runs()] == [first.id]


async def test_same_idempotency_key_in_another_tenant_starts_another_run(store: Store) -> None:
    a, _ = await store.create_run(new_run(key="k", tenant="acme"))
    b, created = await store.create_run(new_run(key="k", tenant="globex"))
    assert created and b.id != a.id


async def test_new_run_is_pending_with_its_input(store: Store) -> None:
    new = new_run(priority=3)
    row, _ = await store.create_run(new)
    assert (row.status, row.input, row.priority, row.lease_owner) == ("pending", new.input, 3, None)
    assert row.wf_key == WF and row.created_at == at(new.created_at)
    assert await store.get_run(row.id) == row


async def test_missing_run_reads_as_none(store: Store) -> None:
    assert await store.get_run("nope") is None
    assert await store.load_history("nope") is None
    assert await store.list_effects("nope") == []


async def test_list_runs_filters_and_lists_newest_first(store: Store) -> None:
    t = now()
    old = await pending(store, created_at=t - 10)
    new = await pending(store, created_at=t)
    other = await pending(store, tenant="globex", created_at=t - 5)
    done = await running(store, created_at=t - 20)
    await store.apply([Finish("w1", done.id, "succeeded", result="1", epoch=1)])
    assert [r.id for r in await store.list_runs()] == [new.id, other.id, old.id, done.id]
    assert [r.id for r in await store.list_runs(tenant="globex")] == [other.id]
    assert [r.id for r in await store.list_runs(status="succeeded")] == [done.id]
    assert [r.id for r in await store.list_runs(workflow="other")] == []
    assert [r.id for r in await store.list_runs(limit=2)] == [new.id, other.id]


async def test_list_runs_by_creation_time_and_page_after_a_position(store: Store) -> None:
    t = now()
    runs = [await pending(store, created_at=t - n) for n in range(5)]  # newest first
    twin = await pending(store, created_at=t - 2)  # same time as runs[2]: ordered by id
    everything = await store.list_runs()
    assert {r.id for r in everything} == {r.id for r in runs} | {twin.id}
    assert [r.id for r in await store.list_runs(since=t - 1)] == [runs[0].id, runs[1].id]
    older = await store.list_runs(until=t - 2)  # before: the twins at t - 2 are not in it
    assert [r.id for r in older] == [runs[3].id, runs[4].id]
    window = await store.list_runs(since=t - 3, until=t - 1)
    assert {r.id for r in window} == {runs[2].id, runs[3].id, twin.id}
    # Pages after each one's last run cover every run once, the twins included.
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_runs(after=after, limit=2)
        if not page:
            break
        seen += [r.id for r in page]
        after = (page[-1].created_at, page[-1].id)
    assert seen == [r.id for r in everything]
    # A run started meanwhile (newer) shifts no page.
    await pending(store, created_at=t + 1)
    first = everything[1]
    assert await store.list_runs(after=(first.created_at, first.id)) == everything[2:]


# ---- claiming ---------------------------------------------------------------------------


async def test_claim_takes_no_more_runs_than_free_slots(store: Store) -> None:
    runs = [await pending(store) for _ in range(5)]
    first, _ = await store.claim(claim_for("w1", {"default": 2}))
    assert len(first) == 2
    assert all(r.status == "running" and r.lease_owner == "w1" and r.claims == 1 for r in first)
    rest, _ = await store.claim(claim_for("w2", {"default": 10}))
    assert ids(first) | ids(rest) == {r.id for r in runs} and len(rest) == 3
    first_expiry = min(r.available_at or 0 for r in first)
    assert await store.claim(claim_for("w3")) == ([], at(first_expiry))


async def test_claim_skips_workflows_the_worker_cannot_run(store: Store) -> None:
    v1 = await pending(store, version="1")
    v2 = await pending(store, version="2")
    got, _ = await store.claim(claim_for("w1", wf_keys=("wf@1", "other@1")))
    assert ids(got) == {v1.id}
    got, _ = await store.claim(claim_for("w2", wf_keys=("wf@2",)))
    assert ids(got) == {v2.id}


async def test_claim_without_any_workflow_takes_nothing(store: Store) -> None:
    await pending(store)
    assert (await store.claim(claim_for("w1", wf_keys=())))[0] == []


async def test_claim_only_takes_runs_of_queues_with_slots(store: Store) -> None:
    a = await pending(store, queue="a")
    b = await pending(store, queue="b")
    got, _ = await store.claim(claim_for("w1", {"a": 5, "c": 5}))
    assert ids(got) == {a.id}
    got, _ = await store.claim(claim_for("w1", {"a": 5, "b": 0}))
    assert got == []
    got, _ = await store.claim(claim_for("w1", {"b": 1}))
    assert ids(got) == {b.id}


async def test_claim_takes_highest_priority_first_then_oldest(store: Store) -> None:
    t = now()
    low = await pending(store, priority=0, created_at=t - 3)
    high = await pending(store, priority=5, created_at=t - 1)
    mid_new = await pending(store, priority=1, created_at=t - 1)
    mid_old = await pending(store, priority=1, created_at=t - 2)
    order = []
    for _ in range(4):
        got, _ = await store.claim(claim_for("w1", {"default": 1}))
        order.extend(r.id for r in got)
    assert order == [high.id, mid_old.id, mid_new.id, low.id]


async def test_run_whose_lease_expired_is_claimed_by_another_owner(store: Store) -> None:
    started = now() - 100
    run = await running(store, "w1", lease=10, created_at=started)  # lease ended 90 s ago
    got, _ = await store.claim(claim_for("w2"))
    assert [r.id for r in got] == [run.id]
    (row,) = got
    assert (row.lease_owner, row.status, row.claims) == ("w2", "running", 1)
    assert row.started_at == at(started)
    assert row.available_at is not None and row.available_at > now() + 50
    # the old owner's writes are fenced off from now on
    late = RecordEffect("w1", effect(run.id, 0), epoch=1)
    assert await store.apply([late]) == [WriteResult(False)]


async def test_run_with_live_lease_is_not_claimable(store: Store) -> None:
    run = await running(store, "w1", lease=60)
    got, next_at = await store.claim(claim_for("w2"))
    assert got == []
    assert next_at == at(run.available_at)


async def test_heartbeat_extends_leases_so_they_are_not_claimed(store: Store) -> None:
    mine = await running(store, "w1", lease=10, created_at=now() - 100)
    theirs = await running(store, "w2", lease=60)
    assert await store.heartbeat("w1", 60, [mine.id, theirs.id]) == {mine.id: None}
    assert (await store.claim(claim_for("w3")))[0] == []
    assert (await get(store, mine.id)).available_at == at(now() + 60, within=5)
    assert (await get(store, theirs.id)).available_at == theirs.available_at


async def test_heartbeat_of_owner_without_runs_is_empty(store: Store) -> None:
    run = await running(store, "w1")
    assert await store.heartbeat("w9", 60, [run.id]) == {}


async def test_global_limit_caps_claims_across_owners(store: Store) -> None:
    for _ in range(5):
        await pending(store, queue="q")
    limits = {"q": 2}
    first, _ = await store.claim(claim_for("w1", {"q": 5}, global_limits=limits))
    assert len(first) == 2
    assert (await store.claim(claim_for("w2", {"q": 5}, global_limits=limits)))[0] == []
    await store.apply([Finish("w1", first[0].id, "succeeded", result="null", epoch=1)])
    second, _ = await store.claim(claim_for("w2", {"q": 5}, global_limits=limits))
    assert len(second) == 1


async def test_expired_leases_do_not_count_toward_global_limit(store: Store) -> None:
    await running(store, "w1", lease=10, queue="q", created_at=now() - 100)
    for _ in range(2):
        await pending(store, queue="q")
    got, _ = await store.claim(claim_for("w2", {"q": 5}, global_limits={"q": 2}))
    assert len(got) == 2


async def test_concurrent_claimers_never_exceed_global_limit(store: Store) -> None:
    for _ in range(12):
        await pending(store, queue="q")
    others = [open_store(store.url) for _ in range(3)]
    for other in others:
        await other.open()
    try:
        results = await asyncio.gather(
            *(
                s.claim(claim_for(f"w{i}", {"q": 3}, global_limits={"q": 3}))
                for i, s in enumerate([store, *others])
                for _ in range(2)
            )
        )
    finally:
        for other in others:
            await other.close()
    claimed = [r for rows, _ in results for r in rows]
    assert len(claimed) == 3 and len(ids(claimed)) == 3
    assert len(await store.list_runs(status="running")) == 3


# ---- group commit: fenced writes ----------------------------------------------------------


async def test_effect_record_by_non_owner_is_rejected_and_writes_nothing(store: Store) -> None:
    run = await running(store, "w1")
    results = await store.apply(
        [
            RecordEffect("w2", effect(run.id, 0), epoch=0),
            RecordEffect("w1", effect(run.id, 1), epoch=1),
        ]
    )
    assert results == [WriteResult(False), WriteResult(True)]
    assert [e.seq for e in await store.list_effects(run.id)] == [1]


async def test_finish_by_non_owner_is_rejected_and_leaves_run_running(store: Store) -> None:
    run = await running(store, "w1")
    result = await store.apply([Finish("w2", run.id, "succeeded", result="1", epoch=0)])
    assert result == [WriteResult(False)]
    assert await get(store, run.id) == run


async def test_pending_effect_is_completed_in_place(store: Store) -> None:
    run = await running(store, "w1")
    await store.apply([RecordEffect("w1", effect(run.id, 0, status="pending"), epoch=1)])
    await store.apply([RecordEffect("w1", effect(run.id, 0, status="ok"), epoch=1)])
    (only,) = await store.list_effects(run.id)
    assert (only.seq, only.status, only.output) == (0, "ok", "0")


async def test_finish_records_outcome_and_ends_lease(store: Store) -> None:
    run = await running(store, "w1")
    assert await store.apply([Finish("w1", run.id, "succeeded", result='"done"', epoch=1)]) == [
        WriteResult(True)
    ]
    row = await get(store, run.id)
    assert (row.status, row.result, row.lease_owner, row.available_at) == (
        "succeeded",
        '"done"',
        None,
        None,
    )
    assert row.finished_at is not None
    assert await store.heartbeat("w1", 60, [run.id]) == {}


async def test_release_gives_run_back_to_the_queue(store: Store) -> None:
    run = await running(store, "w1")
    assert await store.apply([Release("w2", run.id, epoch=0), Release("w1", run.id, epoch=1)]) == [
        WriteResult(False),
        WriteResult(True),
    ]
    assert (await get(store, run.id)).status == "pending"
    got, _ = await store.claim(claim_for("w2"))
    assert ids(got) == {run.id}


async def test_one_batch_holds_many_runs_writes(store: Store) -> None:
    runs = [await running(store, "w1") for _ in range(20)]
    writes: list[RecordEffect | Finish] = [
        RecordEffect("w1", effect(r.id, 0), epoch=1) for r in runs
    ]
    writes += [Finish("w1", r.id, "succeeded", result="0", epoch=1) for r in runs[:10]]
    assert await store.apply(writes) == [WriteResult(True)] * 30
    assert await store.apply([]) == []
    assert len(await store.list_runs(status="succeeded")) == 10
    assert [len(await store.list_effects(r.id)) for r in runs] == [1] * 20


# ---- parking, signals and timers ----------------------------------------------------------


async def test_park_with_stale_wake_seq_fails_and_signal_wakes_parked_run(store: Store) -> None:
    run = await running(store, "w1")
    await store.send_signal(run.id, "early", '"a"')  # arrives while the worker runs
    assert (await get(store, run.id)).wake_seq == run.wake_seq + 1
    stale = Park("w1", run.id, None, run.wake_seq, epoch=1)
    assert await store.apply([stale]) == [WriteResult(False)]
    assert (await get(store, run.id)).status == "running"

    fresh = Park("w1", run.id, None, run.wake_seq + 1, epoch=1)
    assert await store.apply([fresh]) == [WriteResult(True)]
    row = await get(store, run.id)
    assert (row.status, row.lease_owner, row.available_at) == ("waiting", None, None)
    assert (await store.claim(claim_for("w2")))[0] == []

    await store.send_signal(run.id, "go", '{"ok": true}')
    assert (await get(store, run.id)).status == "pending"
    got, _ = await store.claim(claim_for("w2"))
    assert ids(got) == {run.id}
    history = await store.load_history(run.id)
    assert history is not None and history.run.lease_owner == "w2"
    assert [(s.name, s.payload) for s in history.signals] == [
        ("early", '"a"'),
        ("go", '{"ok": true}'),
    ]


async def test_consumed_signal_leaves_the_history(store: Store) -> None:
    run = await running(store, "w1")
    await store.send_signal(run.id, "a", "1")
    await store.send_signal(run.id, "b", "2")
    history = await store.load_history(run.id)
    assert history is not None
    first = history.signals[0]
    write = RecordEffect("w1", effect(run.id, 0), consume_signal=first.id, epoch=1)
    assert await store.apply([write]) == [WriteResult(True)]
    history = await store.load_history(run.id)
    assert history is not None
    assert [s.name for s in history.signals] == ["b"]
    assert history.effects[0].output == "0"


async def test_rejected_effect_does_not_consume_its_signal(store: Store) -> None:
    run = await running(store, "w1")
    await store.send_signal(run.id, "a", "1")
    history = await store.load_history(run.id)
    assert history is not None
    write = RecordEffect("w2", effect(run.id, 0), consume_signal=history.signals[0].id, epoch=0)
    assert await store.apply([write]) == [WriteResult(False)]
    history = await store.load_history(run.id)
    assert history is not None and [s.name for s in history.signals] == ["a"]


async def test_waiting_run_is_claimable_once_its_timer_is_due_not_before(store: Store) -> None:
    t = now()
    later = await parked(store, wake_at=t + 3600)
    due = await parked(store, wake_at=t - 1)
    assert later.status == due.status == "waiting"
    got, next_at = await store.claim(claim_for("w2"))
    assert ids(got) == {due.id}
    assert next_at == at(got[0].available_at)  # the lease just taken ends first
    assert (await get(store, later.id)).status == "waiting"


async def test_next_available_is_the_earliest_timer_or_lease(store: Store) -> None:
    t = now()
    for wake_at in (t + 200, t + 50, t + 100):
        await parked(store, wake_at=wake_at)
    await running(store, "w1", lease=80)
    await parked(store, wake_at=t + 10, owner="w1")  # another queue's timer does not count
    got, next_at = await store.claim(claim_for("w2", {"other": 1}))
    assert (got, next_at) == ([], None)
    got, next_at = await store.claim(claim_for("w2"))
    assert got == [] and next_at == at(t + 10)


async def test_next_available_is_none_when_nothing_is_scheduled(store: Store) -> None:
    await parked(store, wake_at=None)
    assert await store.claim(claim_for("w2")) == ([], None)


async def test_finished_child_wakes_its_waiting_parent(store: Store) -> None:
    parent = await parked(store, wake_at=None)
    child = await running(store, "w2", parent=parent.id)
    done = Finish("w2", child.id, "succeeded", result="42", parent_id=parent.id, epoch=1)
    assert await store.apply([done]) == [WriteResult(True)]
    row = await get(store, parent.id)
    assert (row.status, row.wake_seq) == ("pending", parent.wake_seq + 1)
    got, _ = await store.claim(claim_for("w3"))
    assert ids(got) == {parent.id}


async def test_child_finishing_in_same_batch_as_parents_park_stops_the_park(
    store: Store,
) -> None:
    parent = await running(store, "w1")
    child = await running(store, "w1", parent=parent.id)
    batch = [
        Finish("w1", child.id, "succeeded", result="1", parent_id=parent.id, epoch=1),
        Park("w1", parent.id, None, parent.wake_seq, epoch=1),  # read before the child ended
    ]
    assert await store.apply(batch) == [WriteResult(True), WriteResult(False)]
    row = await get(store, parent.id)
    assert (row.status, row.wake_seq) == ("running", parent.wake_seq + 1)


async def test_parent_parked_before_its_child_finishes_in_same_batch_is_woken(
    store: Store,
) -> None:
    parent = await running(store, "w1")
    child = await running(store, "w1", parent=parent.id)
    batch = [
        Park("w1", parent.id, None, parent.wake_seq, epoch=1),
        Finish("w1", child.id, "succeeded", result="1", parent_id=parent.id, epoch=1),
    ]
    assert await store.apply(batch) == [WriteResult(True), WriteResult(True)]
    row = await get(store, parent.id)
    assert (row.status, row.wake_seq) == ("pending", parent.wake_seq + 1)


async def test_batch_applies_each_runs_writes_in_order(store: Store) -> None:
    a, b, c = [await running(store, "w1") for _ in range(3)]
    batch = [
        RecordEffect("w1", effect(a.id, 0), epoch=1),
        RecordEffect("w1", effect(b.id, 0), epoch=1),
        Finish("w1", a.id, "succeeded", result="0", epoch=1),
        RecordEffect("w1", effect(a.id, 1), epoch=1),  # after its run ended: rejected
        Park("w1", b.id, now() + 3600, b.wake_seq, epoch=1),
        RecordEffect("w1", effect(b.id, 1), epoch=1),  # after its run parked: rejected
        RecordEffect("w2", effect(c.id, 0), epoch=0),  # an older claim: rejected
        Release("w1", c.id, epoch=1),
        Release("w1", c.id, epoch=1),  # already released: rejected
    ]
    landed = [r.ok for r in await store.apply(batch)]
    assert landed == [True, True, True, False, True, False, False, True, False]
    statuses = [(await get(store, r.id)).status for r in (a, b, c)]
    assert statuses == ["succeeded", "waiting", "pending"]
    assert [len(await store.list_effects(r.id)) for r in (a, b, c)] == [1, 1, 0]


async def test_rejected_finish_does_not_wake_the_parent(store: Store) -> None:
    parent = await parked(store, wake_at=None)
    child = await running(store, "w2", parent=parent.id)
    done = Finish("w9", child.id, "succeeded", result="1", parent_id=parent.id, epoch=0)
    assert await store.apply([done]) == [WriteResult(False)]
    assert await get(store, parent.id) == parent


# ---- cancel and resume --------------------------------------------------------------------


async def test_cancel_of_pending_run_ends_it_at_once(store: Store) -> None:
    run = await pending(store)
    row = await store.cancel(run.id, "not needed")
    assert (row.status, row.cancel_reason, row.available_at) == ("cancelled", "not needed", None)
    assert row.finished_at is not None and row.error is not None
    assert json.loads(row.error) == {"type": "aiosys.errors.RunCancelled", "message": "not needed"}
    assert await get(store, run.id) == row
    assert (await store.claim(claim_for("w1")))[0] == []


async def test_cancel_of_running_run_is_reported_by_heartbeat(store: Store) -> None:
    run = await running(store, "w1")
    row = await store.cancel(run.id, "stop")
    assert (row.status, row.cancel_reason, row.lease_owner) == ("running", "stop", "w1")
    assert await store.heartbeat("w1", 60, [run.id]) == {run.id: "stop"}
    assert await store.apply([Park("w1", run.id, None, row.wake_seq, epoch=1)]) == [
        WriteResult(False)
    ]
    finish = Finish("w1", run.id, "cancelled", error=row.error, epoch=1)
    assert await store.apply([finish]) == [WriteResult(True)]
    assert (await get(store, run.id)).status == "cancelled"


async def test_cancel_of_waiting_child_wakes_its_parent(store: Store) -> None:
    parent = await parked(store, wake_at=None)
    child = await parked(store, wake_at=now() + 3600, owner="w2")
    # the child's parent link is set at creation; make one that has it
    linked, _ = await store.create_run(new_run(parent=parent.id))
    assert (await store.cancel(linked.id, "enough")).status == "cancelled"
    row = await get(store, parent.id)
    assert (row.status, row.wake_seq) == ("pending", parent.wake_seq + 1)
    assert (await get(store, child.id)).status == "waiting"


async def test_resume_of_dead_run_drops_exactly_the_failed_effect(store: Store) -> None:
    run = await running(store, "w1")
    error = json.dumps({"type": "ValueError", "message": "bad"})
    await store.apply(
        [
            RecordEffect("w1", effect(run.id, 0), epoch=1),
            RecordEffect("w1", effect(run.id, 1), epoch=1),
            RecordEffect("w1", effect(run.id, 2, status="error", error=error), epoch=1),
            Finish("w1", run.id, "dead", error=error, failed_seq=2, epoch=1),
        ]
    )
    dead = await get(store, run.id)
    assert (dead.status, dead.failed_seq) == ("dead", 2)
    row = await store.resume(run.id)
    assert (row.status, row.error, row.failed_seq, row.finished_at) == ("pending", None, None, None)
    assert [(e.seq, e.status) for e in await store.list_effects(run.id)] == [(0, "ok"), (1, "ok")]
    got, _ = await store.claim(claim_for("w2"))
    assert ids(got) == {run.id}


async def test_resume_of_failed_run_keeps_every_effect(store: Store) -> None:
    run = await running(store, "w1")
    await store.apply(
        [
            RecordEffect("w1", effect(run.id, 0), epoch=1),
            Finish("w1", run.id, "failed", error='"x"', epoch=1),
        ]
    )
    assert (await store.resume(run.id)).status == "pending"
    assert [e.seq for e in await store.list_effects(run.id)] == [0]


Action = Callable[[Store, str], Awaitable[object]]
ACTIONS: dict[str, Action] = {
    "send_signal": lambda s, run_id: s.send_signal(run_id, "go", "null"),
    "cancel": lambda s, run_id: s.cancel(run_id, "why"),
    "resume": lambda s, run_id: s.resume(run_id),
}


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_action_on_missing_run_raises_run_not_found(store: Store, action: str) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        await ACTIONS[action](store, "nope")


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_action_on_ended_run_raises_invalid_run_state(store: Store, action: str) -> None:
    run = await running(store, "w1")
    await store.apply([Finish("w1", run.id, "succeeded", result="1", epoch=1)])
    with pytest.raises(InvalidRunState, match=run.id):
        await ACTIONS[action](store, run.id)
    assert (await get(store, run.id)).status == "succeeded"
    history = await store.load_history(run.id)
    assert history is not None and history.signals == []


async def test_resume_of_active_run_raises_invalid_run_state(store: Store) -> None:
    run = await running(store, "w1")
    with pytest.raises(InvalidRunState, match="running"):
        await store.resume(run.id)


# ---- fencing by claim epoch -----------------------------------------------------------------


async def test_every_claim_bumps_the_epoch_and_fences_off_the_earlier_claims_writes(
    store: Store,
) -> None:
    run = await running(store, "w1", lease=10, created_at=now() - 100)  # lease expired
    assert run.epoch == 1
    (again,), _ = await store.claim(claim_for("w1"))  # the same worker claims it again
    assert (again.id, again.epoch, again.lease_owner) == (run.id, 2, "w1")
    old = [
        RecordEffect("w1", effect(run.id, 0), epoch=1),
        Park("w1", run.id, None, again.wake_seq, epoch=1),
        Release("w1", run.id, epoch=1),
        Finish("w1", run.id, "succeeded", result="1", epoch=1),
    ]
    assert await store.apply(old) == [WriteResult(False)] * 4
    assert await store.list_effects(run.id) == []
    assert await get(store, run.id) == again
    assert await store.apply([RecordEffect("w1", effect(run.id, 0), epoch=2)]) == [
        WriteResult(True)
    ]


async def test_claim_skips_the_runs_the_worker_says_it_executes(store: Store) -> None:
    mine = await running(store, "w1", lease=10, created_at=now() - 100)  # lease expired
    other = await pending(store)
    got, _ = await store.claim(
        Claim(
            owner="w1",
            wf_keys=[WF],
            slots={"default": 10},
            global_limits={},
            lease=60,
            exclude=[mine.id],
        )
    )
    assert ids(got) == {other.id}


async def test_finish_of_a_parked_run_lands_only_under_the_epoch_it_parked_with(
    store: Store,
) -> None:
    run = await parked(store, wake_at=None)
    stale = Finish("w1", run.id, "failed", error='"x"', epoch=0, parked=True)
    assert await store.apply([stale]) == [WriteResult(False)]
    current = Finish("w1", run.id, "failed", error='"x"', epoch=run.epoch, parked=True)
    assert await store.apply([current]) == [WriteResult(True)]
    assert (await get(store, run.id)).status == "failed"


async def test_cancel_requests_name_the_running_runs_of_a_worker(store: Store) -> None:
    run = await running(store, "w1")
    await running(store, "w1")
    assert await store.cancel_requests("w1") == {}
    await store.cancel(run.id, "stop")
    assert await store.cancel_requests("w1") == {run.id: "stop"}
    assert await store.cancel_requests("w2") == {}


async def test_claim_with_only_takes_those_runs_and_their_children(store: Store) -> None:
    mine = await pending(store)
    child = await pending(store, parent=mine.id)
    others = [await pending(store), await pending(store)]
    await pending(store, parent=others[0].id)  # a child of a run not named
    base = claim_for("w1")
    rows, _ = await store.claim(dataclasses.replace(base, only=[mine.id]))
    assert ids(rows) == {mine.id, child.id}
    assert (await store.claim(dataclasses.replace(base, only=[])))[0] == []
    rows, _ = await store.claim(base)  # only=None: any run
    assert ids(rows) >= ids(others)


async def test_a_change_writes_what_goes_with_it_and_wakes_its_run_only_if_it_changed_rows(
    store: Store,
) -> None:
    from aiosys.governance.audit_record import AuditRecord

    run = await parked(store, wake_at=None)
    task = {
        "id": "t1",
        "tenant": run.tenant,
        "run_id": run.id,
        "seq": 1,
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
        "now": now(),
    }
    assert [r["id"] for r in await store.change("human_task_insert", task)] == ["t1"]
    assert await store.change("human_task_insert", task) == []  # written once
    record = AuditRecord(principal="user:A/x", tenant=run.tenant, action="complete_task",
                         resource="task:t1", at=1)  # fmt: skip
    also = [("audit_append", record.params())]
    decide = {"id": "t1", "tenant": run.tenant, "escalations": 0, "who": "x", "any_claim": 0,
              "decision": "{}", "now": now()}  # fmt: skip
    (head,) = await store.fetch("audit_head", {})

    changed = await store.change("human_task_complete", decide, also=also, wake=True)

    assert [r["run_id"] for r in changed] == [run.id]
    woken = await get(store, run.id)
    assert (woken.status, woken.wake_seq) == ("pending", run.wake_seq + 1)
    assert (await store.fetch("audit_head", {}))[0]["seq"] == head["seq"] + 1
    # Nothing changed the second time: nothing written with it, nobody woken.
    assert await store.change("human_task_complete", decide, also=also, wake=True) == []
    assert (await get(store, run.id)).wake_seq == run.wake_seq + 1
    assert (await store.fetch("audit_head", {}))[0]["seq"] == head["seq"] + 1
    got, _ = await store.claim(claim_for("w2"))
    assert ids(got) == {run.id}


async def test_a_statement_asked_while_the_store_closes_is_refused_not_run_beside_the_close(
    store_url: str,
) -> None:
    # SQLite ran it on the event loop's thread while the close ran on the store's thread,
    # on the connection being freed: a segfault at shutdown (a write-behind flush).
    s = open_store(store_url)
    await s.open()
    closing = asyncio.create_task(s.close())
    await asyncio.sleep(0)  # the close is under way: it awaits its thread or its pool
    with pytest.raises(ConfigError, match="not open"):
        await s.get_run("never-made")
    await closing
