"""``aiosys.observe.metrics.collect`` on SQLite and PostgreSQL, over rows written with known
times (never waited for): histogram buckets counted in SQL, queue depth and age, effects by
error class, model calls, tokens, cost and cache hits per tenant, budgets, breakers; and a
tenant's scrape holds nothing of another tenant's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.test_store_contract import claim_for, effect, pending, running

import aiosys
from aiosys import PermanentError, TransientError
from aiosys.kernel.error_records import dump_error
from aiosys.models.links.budget import Budget
from aiosys.observe.metrics import BUCKETS, BudgetSpec, collect, exposition
from aiosys.store import Store
from aiosys.store.base import Finish, Park, RecordEffect

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(store: Store, tenant: str | None = None, **kw: Any) -> Samples:
    text = exposition(await collect(store, tenant=tenant, **kw))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def buckets(samples: Samples, metric: str, /, **labels: str) -> list[float]:
    """The cumulative counts of a histogram's buckets, in BUCKETS order, then +Inf."""
    les = [repr(float(b)) for b in BUCKETS] + ["+Inf"]
    return [value(samples, f"{metric}_bucket", le=le, **labels) for le in les]


def cumulative(*indexes: int) -> list[float]:
    """The cumulative bucket counts of observations falling in the buckets ``indexes``."""
    counts = [0.0] * (len(BUCKETS) + 1)
    for i in indexes:
        counts[i] += 1
    out, running_total = [], 0.0
    for n in counts:
        running_total += n
        out.append(running_total)
    return out


def usage(tenant: str, status: str, latency_ms: float, cost: float = 0.0) -> dict[str, Any]:
    return {
        "at": 1_000.0,
        "tenant": tenant,
        "workflow": "wf",
        "run_id": None,
        "seq": None,
        "task": None,
        "model": "m",
        "deployment": "m@1",
        "input_tokens": 10,
        "output_tokens": 2,
        "cache_read_tokens": 4,
        "cache_write_tokens": 0,
        "reasoning_tokens": 1,
        "cost": cost,
        "latency_ms": latency_ms,
        "status": status,
        "error": None,
        "reservation": None,
    }


async def test_histograms_are_bucketed_in_sql_at_their_bounds(store: Store) -> None:
    t = store.clock()
    run = await running(store, "w1", lease=600, created_at=t - 50)  # claimed at creation
    durations = [0.003, 0.005, 0.2, 7.0, 100_000.0]  # a bound itself counts in its bucket
    for seq, d in enumerate(durations, 1):
        row = effect(run.id, seq)
        row = dataclasses.replace(row, started_at=0.0, finished_at=d)  # exactly d
        assert (await store.apply([RecordEffect("w1", row, epoch=run.epoch)]))[0].ok
    await store.apply([Finish("w1", run.id, "succeeded", result="1", epoch=run.epoch)])
    for ms in (4.0, 1_500.0):
        await store.execute("insert_usage", usage("acme", "ok", ms))
    seen = await scrape(store)
    assert buckets(seen, "aiosys_effect_duration_seconds", kind="step") == cumulative(
        0, 0, 5, 10, 18
    )
    assert value(seen, "aiosys_effect_duration_seconds_sum", kind="step") == pytest.approx(
        sum(durations), abs=0.01
    )
    # Run: 50 s from its claim (its creation) to its end; queue wait 0.
    assert buckets(seen, "aiosys_run_duration_seconds", workflow="wf") == cumulative(12)
    assert buckets(seen, "aiosys_queue_wait_seconds", queue="default") == cumulative(0)
    assert buckets(seen, "aiosys_model_call_duration_seconds", model="m") == cumulative(0, 8)


async def test_queues_effects_by_error_class_runs_and_dead_letters(store: Store) -> None:
    t = store.clock()
    await pending(store, created_at=t - 100)  # claimable for 100 s
    await pending(store, created_at=t - 10)
    held = await running(store, "w1", lease=600)  # in flight
    parked = await running(store, "w1", lease=600)
    await store.apply([Park("w1", parked.id, t + 3600, parked.wake_seq, epoch=parked.epoch)])
    transient = dump_error(TransientError("503"), transient=True)
    permanent = dump_error(PermanentError("bad"), transient=False)
    await store.apply(
        [
            RecordEffect("w1", effect(held.id, 1, status="error", error=transient), epoch=1),
            RecordEffect("w1", effect(held.id, 2, status="error", error=permanent), epoch=1),
            RecordEffect("w1", effect(held.id, 3), epoch=1),
        ]
    )
    dead = await running(store, "w1", lease=600)
    await store.apply([Finish("w1", dead.id, "dead", error=permanent, epoch=dead.epoch)])
    seen = await scrape(store)
    assert value(seen, "aiosys_queue_depth", queue="default") == 2
    assert value(seen, "aiosys_queue_oldest_ready_seconds", queue="default") == pytest.approx(
        100, abs=5
    )
    assert value(seen, "aiosys_queue_in_flight", queue="default") == 1
    runs = dict(workflow="wf", tenant="acme")
    assert value(seen, "aiosys_runs", status="pending", **runs) == 2
    assert value(seen, "aiosys_runs", status="running", **runs) == 1
    assert value(seen, "aiosys_runs", status="waiting", **runs) == 1
    assert value(seen, "aiosys_runs_ended_total", status="dead", **runs) == 1
    assert value(seen, "aiosys_dead_letter_runs", status="dead", **runs) == 1
    assert value(seen, "aiosys_runs_created_total", **runs) == 5
    assert value(seen, "aiosys_runs_started_total", **runs) == 3  # pending ones never claimed
    step = dict(kind="step", outcome="error")
    assert value(seen, "aiosys_effects_total", name="step1", error_class="transient", **step) == 1
    assert value(seen, "aiosys_effects_total", name="step2", error_class="permanent", **step) == 1
    ok = dict(kind="step", outcome="ok", error_class="")
    assert value(seen, "aiosys_effects_total", name="step3", **ok) == 1
    (claimed,), _ = await store.claim(claim_for("w2", {"default": 1}))  # the oldest
    seen = await scrape(store)
    assert value(seen, "aiosys_queue_depth", queue="default") == 1
    assert value(seen, "aiosys_queue_wait_seconds_count", queue="default") == 4
    assert claimed.tenant == "acme"


async def test_models_budgets_and_breakers_and_a_tenants_scrape(store: Store) -> None:
    await pending(store, tenant="acme")
    await pending(store, tenant="globex")
    for row in (
        usage("acme", "ok", 120.0, cost=0.5),
        usage("acme", "cached", 1.0),
        usage("acme", "cached", 1.0),
        usage("globex", "ok", 80.0, cost=2.0),
    ):
        await store.execute("insert_usage", row)
    budgets = [
        BudgetSpec("tenant", "acme", 10.0, "total"),
        BudgetSpec("tenant", "globex", 5.0, "total", hard=False),
        BudgetSpec("workflow", "wf", 3.0, "total"),  # the same cap in every tenant
    ]
    breakers = {"m@1": "open"}
    every = await scrape(store, budgets=budgets, breakers=breakers)
    assert value(every, "aiosys_model_calls_total", model="m", tenant="acme", status="cached") == 2
    assert value(every, "aiosys_model_cost_total", model="m", tenant="acme") == 0.5
    assert value(every, "aiosys_model_cost_total", model="m", tenant="globex") == 2.0
    tokens = dict(model="m", tenant="acme")
    assert value(every, "aiosys_model_tokens_total", type="input", **tokens) == 30
    assert value(every, "aiosys_model_tokens_total", type="cache_read", **tokens) == 12
    assert value(every, "aiosys_model_tokens_total", type="reasoning", **tokens) == 3
    assert value(every, "aiosys_model_cache_hit_ratio", model="m") == 0.5  # 2 of 4
    acme = dict(scope="tenant", key="acme", period="total", tenant="acme", hard="true")
    assert value(every, "aiosys_budget_used", **acme) == 0.5
    assert value(every, "aiosys_budget_limit", **acme) == 10.0
    bare = dict(scope="workflow", key="wf", period="total", hard="true")
    assert value(every, "aiosys_budget_used", tenant="globex", **bare) == 2.0
    assert value(every, "aiosys_budget_used", tenant="acme", **bare) == 0.5
    assert value(every, "aiosys_breaker_state", deployment="m@1", state="open") == 1
    assert value(every, "aiosys_breaker_state", deployment="m@1", state="closed") == 0
    assert ("aiosys_workers", ()) in every

    acme_only = await scrape(store, "acme", budgets=budgets, breakers=breakers)
    tenants = {dict(labels).get("tenant") for (_, labels) in acme_only}
    assert tenants == {"acme", None}
    assert not any(key == "globex" for (_, labels) in acme_only for _, key in labels)
    assert value(acme_only, "aiosys_model_cache_hit_ratio", model="m") == pytest.approx(2 / 3)
    assert value(acme_only, "aiosys_runs_created_total", workflow="wf", tenant="acme") == 1
    assert ("aiosys_workers", ()) not in acme_only


async def test_app_metrics_adds_the_apps_budgets_and_this_process_breakers(store_url: str) -> None:
    app = aiosys.App(store_url, models_dir="", preload_models=False)
    app.models.budgets.add(Budget("tenant", "default", 2.0, period="day", hard=False))
    app.models.breakers.trip("m@1")  # the deployment refused to serve: open at once
    await app.open()
    try:
        text = await app.metrics()
    finally:
        await app.close()
    seen = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert value(seen, "aiosys_breaker_state", deployment="m@1", state="open") == 1
    assert value(seen, "aiosys_breaker_state", deployment="m@1", state="half_open") == 0
    day = dict(scope="tenant", key="default", period="day", tenant="default", hard="false")
    assert value(seen, "aiosys_budget_limit", **day) == 2.0
    assert value(seen, "aiosys_budget_used", **day) == 0.0


async def test_dead_letter_runs_are_the_dead_ones_as_stats_counts_them(store: Store) -> None:
    """``aiosys_dead_letter_runs`` and stats' ``dead_letter_backlog`` agree: dead-lettered
    runs (``dead``), not the ``failed`` ones."""
    from aiosys.observe.stats import read_stats

    t = store.clock()
    permanent = dump_error(PermanentError("bad"), transient=False)
    for status in ("dead", "dead", "failed"):
        run = await running(store, "w1", lease=600)
        await store.apply([Finish("w1", run.id, status, error=permanent, epoch=run.epoch)])
    seen = await scrape(store)
    runs = dict(workflow="wf", tenant="acme")
    assert value(seen, "aiosys_runs_ended_total", status="failed", **runs) == 1
    assert value(seen, "aiosys_dead_letter_runs", status="dead", **runs) == 2
    assert ("aiosys_dead_letter_runs", tuple(sorted({**runs, "status": "failed"}.items()))) not in (
        seen
    )
    (wf,) = (await read_stats(store, since=t - 60, until=store.clock() + 1)).workflows
    assert wf.dead_letter_backlog == 2
