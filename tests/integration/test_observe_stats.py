"""``app.stats``: per workflow and per model stats by SQL over the store, on both stores.
Percentiles equal numpy's nearest-rank ones (``method="inverted_cdf"``) on the same data;
counts, error rates, failure classes, retries, costs and the dead-letter backlog are what was
seeded; the window and the tenant bound what is counted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from tests.integration.stats_seed import SeedRun, seed_model_calls, seed_runs

import aiosys
from aiosys import Context, PermanentError, Retry, TransientError
from aiosys.errors import InvalidInput
from aiosys.kernel import Principal
from aiosys.store import open_store
from aiosys.store._sql import load_queries

HOUR = 3600.0


def app_on(store_url: str) -> aiosys.App:
    return aiosys.App(store_url, models_dir="", preload_models=False, audit=False)


def nearest_rank(values: list[float]) -> list[float]:
    return [float(v) for v in np.percentile(values, [50, 95, 99], method="inverted_cdf")]


@pytest.mark.parametrize("n", [1, 2, 7, 20, 101, 1000])
async def test_percentiles_equal_numpys_nearest_rank(store_url: str, n: int) -> None:
    rng = np.random.default_rng(n)
    app = app_on(store_url)
    await app.open()
    try:
        now = app.store.clock()
        # Millisecond latencies with ties, runs created a random wait before they started.
        latency = np.round(rng.lognormal(0.0, 1.0, n), 3)
        wait = np.round(rng.exponential(2.0, n), 3)
        ends = now - rng.uniform(1.0, HOUR, n)
        runs = [
            SeedRun("wf", float(e - lat - w), float(e - lat), float(e))
            for lat, w, e in zip(latency, wait, ends, strict=True)
        ]
        seed_runs(store_url, runs)
        calls = np.round(rng.gamma(2.0, 40.0, n), 1).tolist()
        seed_model_calls(store_url, "m1", now - 10, calls)
        stats = await app.stats(since="2h", until=now)
    finally:
        await app.close()
    wf = stats.of_workflow("wf")
    assert wf is not None and wf.runs == n
    got = [wf.latency.p50, wf.latency.p95, wf.latency.p99]
    # The same float the database computed from the same columns, so compare those.
    durations = [r.finished_at - r.started_at for r in runs]
    assert got == nearest_rank(durations)
    resolution = [r.finished_at - r.created_at for r in runs]
    res = wf.time_to_resolution
    assert [res.p50, res.p95, res.p99] == nearest_rank(resolution)
    assert res.mean == pytest.approx(float(np.mean(resolution)), rel=1e-9)
    m = stats.of_model("m1")
    assert m is not None and m.calls == n
    assert [m.latency_ms.p50, m.latency_ms.p95, m.latency_ms.p99] == nearest_rank(calls)
    assert m.latency_ms.mean == pytest.approx(float(np.mean(calls)), rel=1e-9)


async def test_counts_failures_retries_costs_and_backlog(store_url: str) -> None:
    app = app_on(store_url)
    await app.open()
    try:
        now = app.store.clock()
        t = now - 60
        seed_runs(
            store_url,
            [
                # Two succeeded, one of them after 2 retries of its second step; cost 1 + 3.
                SeedRun("wf", t - 5, t - 4, t, attempts=(1, 3), cost=1.0),
                SeedRun("wf", t - 5, t - 4, t, cost=3.0),
                # Dead of a permanent error; failed after transient retries ran out (3 tries).
                SeedRun("wf", t - 5, t - 4, t, "dead", error="permanent", cost=5.0),
                SeedRun("wf", t - 5, t - 4, t, "failed", attempts=(3,), error="transient"),
                SeedRun("wf", t - 5, t - 4, t, "cancelled"),
                # Outside the window, another tenant's, and a dead run from long ago.
                SeedRun("wf", t - 5, t - 4, now - 3 * HOUR),
                SeedRun("wf", t - 5, t - 4, t, tenant="other"),
                SeedRun("old", now - 90 * HOUR, now - 90 * HOUR, now - 89 * HOUR, "dead"),
            ],
        )
        seed_model_calls(store_url, "m1", t, [10.0, 20.0], cost=0.5)
        seed_model_calls(store_url, "m1", t, [None], status="cached")  # type: ignore[list-item]
        seed_model_calls(
            store_url, "m1", t, [5.0], status="error", error="ProviderUnavailable: 503"
        )
        seed_model_calls(store_url, "m1", t, [5.0], status="error", error="ProviderRejected: 400")
        seed_model_calls(store_url, "m1", t, [None], status="denied", error="BudgetExceeded: x")  # type: ignore[list-item]
        seed_model_calls(store_url, "m2", t, [1.0], tenant="other")
        async with app.as_principal(Principal("ann", "acme", roles=frozenset({"viewer"}))):
            stats = await app.stats(since="1h", until=now)
        everyone = await app.stats(since="1h", until=now)  # the local principal: all tenants
        acme_long = await app.stats(since="4d", until=now, tenant="acme")
    finally:
        await app.close()

    assert stats.tenant == "acme" and everyone.tenant is None
    assert [w.workflow for w in stats.workflows] == ["old", "wf"]
    wf = stats.of_workflow("wf")
    assert wf is not None
    assert (wf.runs, wf.succeeded, wf.failed, wf.cancelled) == (5, 2, 2, 1)
    assert wf.error_rate == pytest.approx(2 / 5)
    assert wf.throughput_per_min == pytest.approx(5 / 60)
    assert wf.latency.p50 == pytest.approx(4.0) and wf.time_to_resolution.p99 == pytest.approx(5.0)
    assert wf.retries_per_run == pytest.approx((2 + 2) / 5)
    assert (wf.transient_failures, wf.permanent_failures) == (2 + 2 + 1, 1)
    # The workflow's model spend in the window (the dead run's too) per run that succeeded.
    assert wf.cost_per_completed_run == pytest.approx((1.0 + 3.0 + 5.0) / 2)
    assert wf.dead_letter_backlog == 1
    assert wf.without_human_edit is None and wf.human_reviews == 0
    old = stats.of_workflow("old")
    assert old is not None and old.runs == 0 and old.dead_letter_backlog == 1
    assert old.latency.p95 is None and old.error_rate is None

    m1 = stats.of_model("m1")
    assert m1 is not None and stats.of_model("m2") is None
    assert (m1.calls, m1.ok, m1.cached, m1.errors, m1.denied) == (6, 2, 1, 2, 1)
    assert m1.error_rate == pytest.approx(3 / 6)
    assert (m1.transient_failures, m1.permanent_failures) == (1, 2)
    assert (m1.latency_ms.p50, m1.latency_ms.p99) == (10.0, 20.0)
    assert m1.cost_per_inference == pytest.approx(1.0 / 3)

    every = everyone.of_workflow("wf")
    assert every is not None and every.runs == 6 and everyone.of_model("m2") is not None
    longer = acme_long.of_workflow("wf")
    assert longer is not None and longer.runs == 6


async def test_filters_and_bad_windows(store_url: str) -> None:
    app = app_on(store_url)
    await app.open()
    try:
        now = app.store.clock()
        seed_runs(store_url, [SeedRun("a", now - 9, now - 8, now - 5, cost=1.0)])
        seed_runs(store_url, [SeedRun("b", now - 9, now - 8, now - 5)])
        seed_model_calls(store_url, "m1", now - 5, [3.0])
        only_a = await app.stats(since="1h", workflow="a")
        assert [w.workflow for w in only_a.workflows] == ["a"]
        # The models' calls of workflow a: its one metered call (seeded with the run).
        assert [(m.model, m.calls) for m in only_a.models] == [("m", 1)]
        only_m1 = await app.stats(since="1h", model="m1")
        assert [m.model for m in only_m1.models] == ["m1"]
        assert {w.workflow for w in only_m1.workflows} == {"a", "b"}
        with pytest.raises(InvalidInput, match="duration"):
            await app.stats(since="yesterday")
        with pytest.raises(InvalidInput, match="before now"):
            await app.stats(since="2999-01-01")
        data = only_a.to_dict()
        assert data["workflows"][0]["latency"]["p50"] == pytest.approx(3.0)
    finally:
        await app.close()


PLANS = {
    # query: the index that must answer it (no sort of the window's rows)
    "stats_run_latency_at": "runs_latency",
    "stats_run_latency_at_desc": "runs_latency",
    "stats_run_resolution_at": "runs_resolution",
    "stats_run_resolution_at_desc": "runs_resolution",
    "stats_model_latency_at": "model_usage_latency",
    "stats_model_latency_at_desc": "model_usage_latency",
    "stats_run_effects": "effects_eventful",
    "stats_human_reviews": "human_tasks_decided",
}


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_sqlite_percentiles_walk_an_index_and_sort_nothing(
    tmp_path: Path, tenant: str | None
) -> None:
    """What keeps `aiosys stats` fast on SQLite (bench/stats.py times it): each percentile
    query walks its index in value order, and the failure counts read only the partial index
    of retried or failed effects. Asserted on the query plans, not on a clock."""
    url = f"sqlite:///{tmp_path}/s.db"
    store = open_store(url)
    asyncio.run(store.open())
    asyncio.run(store.close())
    queries = load_queries("sqlite")
    params = {
        "since": 0.0,
        "until": 1.0,
        "tenant": tenant,
        "workflow": "w",
        "model": "m",
        "offset": 3,
    }
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        for name, index in PLANS.items():
            plan = " | ".join(
                row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {queries[name]}", params)
            )
            assert f"INDEX {index}" in plan, (name, plan)
            assert "TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)


async def test_runs_executed_by_the_kernel_count_their_retries_and_failure_classes(
    store_url: str, wait_status: Any
) -> None:
    """Not seeded rows: what a worker records. A step failing transiently twice then
    succeeding gives 2 retries (2 transient failures); a permanent error ends its run dead
    (1 permanent failure); retries that run out end a run dead with a transient error."""
    app = app_on(store_url)
    tries: dict[str, int] = {}

    @app.step(retry=Retry(attempts=3, backoff=0.0, jitter=0.0))
    def flaky(key: str, fail_times: int) -> str:
        tries[key] = tries.get(key, 0) + 1
        if tries[key] <= fail_times:
            raise TransientError(f"try {tries[key]}")
        return key

    @app.step
    def refuse() -> None:
        raise PermanentError("no")

    @app.workflow
    async def work(ctx: Context, key: str, fail_times: int, permanent: bool) -> str:
        out = await flaky(key, fail_times)
        if permanent:
            await refuse()
        return out

    async with app:
        ok = await app.start("work", {"key": "a", "fail_times": 2, "permanent": False})
        dead = await app.start("work", {"key": "b", "fail_times": 0, "permanent": True})
        spent = await app.start("work", {"key": "c", "fail_times": 5, "permanent": False})
        await wait_status(app, ok.id, "succeeded")
        await wait_status(app, dead.id, "dead")
        await wait_status(app, spent.id, "dead")
        stats = await app.stats(since="1h")
    wf = stats.of_workflow("work")
    assert wf is not None
    assert (wf.runs, wf.succeeded, wf.failed, wf.dead_letter_backlog) == (3, 1, 2, 2)
    # a: 2 retries; c: 2 retries, then its third attempt's transient error ends it.
    assert wf.retries_per_run == pytest.approx(4 / 3)
    assert (wf.transient_failures, wf.permanent_failures) == (4 + 1, 1)
    assert wf.latency.p50 is not None and wf.latency.p50 >= 0


class Draft(pydantic.BaseModel):
    """The form a reviewer's edit must fit."""

    summary: str


PAT = Principal("pat", "acme", roles=frozenset({"paralegal"}))
OZ = Principal("oz", "other", roles=frozenset({"paralegal"}))


async def test_without_human_edit_is_the_share_of_reviews_approved_as_they_were(
    store_url: str, wait_status: Any
) -> None:
    """Human tasks decided by people through the inbox, on a clock the test moves: the
    reviews decided in the window count (a run still waiting on a later task's too), those
    approved as they were over all; an SLA that ended a task with nobody deciding, a decision
    before the window and another tenant's are not reviews of this one's."""
    app = app_on(store_url)
    shift = [0.0]
    real = app.store.clock
    app.store.clock = lambda: real() + shift[0]  # type: ignore[method-assign]

    @app.workflow
    async def intake(ctx: Context, text: str) -> str:
        d = await ctx.human_task("review", role="paralegal", data={"summary": text}, form=Draft)
        return d.action

    @app.workflow
    async def two_reviews(ctx: Context) -> str:
        await ctx.human_task("first", role="paralegal", data={"summary": "a"})
        return (await ctx.human_task("second", role="paralegal")).action

    @app.workflow
    async def lapse(ctx: Context) -> str:
        d = await ctx.human_task("triage", role="paralegal", sla=60, return_escalated=True)
        return d.action

    @app.workflow
    async def plain(ctx: Context) -> str:
        return "no review"

    async def open_task(run_id: str, tenant: str) -> str:
        async with asyncio.timeout(30):
            while True:
                tasks = await app.list_tasks(run_id=run_id, tenant=tenant)
                if tasks:
                    return tasks[0].id
                await asyncio.sleep(0.01)

    async def decide(run_id: str, action: str, who: Principal, **kw: Any) -> None:
        task = await open_task(run_id, who.tenant)
        async with app.as_principal(who):
            await app.complete_task(task, action, **kw)

    async with app:
        runs = [await app.start("intake", {"text": f"t{i}"}, tenant="acme") for i in range(5)]
        theirs = await app.start("intake", {"text": "o"}, tenant="other")
        both = await app.start("two_reviews", {}, tenant="acme")
        lapsed = await app.start("lapse", {}, tenant="acme")
        await decide(runs[0].id, "edit", PAT, data={"summary": "before the window"})
        await wait_status(app, runs[0].id, "succeeded")
        shift[0] = 2 * HOUR  # the first decision is 2 hours old from now on
        app._worker.kick()  # type: ignore[union-attr]  # the lapse's SLA is due now
        plain = await app.start("plain", {}, tenant="acme")
        for run, action in zip(runs[1:], ["approve", "approve", "edit", "reject"], strict=True):
            await decide(
                run.id, action, PAT, **({"data": {"summary": "x"}} if action == "edit" else {})
            )
            await wait_status(app, run.id, "succeeded")
        await decide(theirs.id, "approve", OZ)
        await decide(both.id, "approve", PAT)
        await open_task(both.id, "acme")  # its second task: the run parks on it
        await wait_status(app, both.id, "waiting")
        await wait_status(app, lapsed.id, "succeeded")
        await wait_status(app, theirs.id, "succeeded")
        await wait_status(app, plain.id, "succeeded")
        async with app.as_principal(Principal("ann", "acme", roles=frozenset({"viewer"}))):
            acme = await app.stats(since="1h")
        everyone = await app.stats(since="1h")
        long = await app.stats(since="3h", tenant="acme", workflow="intake")
        escalated = (await app.get_run(lapsed.id)).result

    assert escalated == '"escalated"'
    wf = acme.of_workflow("intake")
    assert wf is not None and (wf.runs, wf.human_reviews) == (4, 4)
    assert wf.without_human_edit == pytest.approx(2 / 4)  # approve, approve / + edit, reject
    pending = acme.of_workflow("two_reviews")  # its run waits on its second task
    assert pending is not None and (pending.runs, pending.human_reviews) == (0, 1)
    assert pending.without_human_edit == 1.0
    for name in ("lapse", "plain"):
        none = acme.of_workflow(name)
        assert none is not None and (none.runs, none.human_reviews) == (1, 0)
        assert none.without_human_edit is None
    every = everyone.of_workflow("intake")
    assert every is not None and every.human_reviews == 5
    assert every.without_human_edit == pytest.approx(3 / 5)
    (older,) = long.workflows
    assert older.human_reviews == 5 and older.without_human_edit == pytest.approx(2 / 5)


async def test_stats_and_metrics_read_records_whose_text_holds_a_nul(
    store_url: str, wait_status: Any
) -> None:
    # A decision's data and an effect's error holding a NUL character are stored with the
    # JSON escape \u0000 (both stores keep it); PostgreSQL's JSON parser refuses to turn that
    # escape into text, so the stats' and metrics' queries that read a field of such a
    # record failed: GET /v1/stats, the console's stats page and /metrics answered 500 from
    # then on, for every caller of the tenant.
    app = app_on(store_url)

    @app.step(retry=Retry(attempts=2, backoff=0.01))
    def flaky(n: int) -> str:
        raise TransientError("upstream said \x00 then hung up")

    @app.workflow
    async def asks(ctx: Context, doc: str) -> Any:
        decision = await ctx.human_task("review", role="admin", data={"doc": doc})
        return decision.action

    @app.workflow
    async def fails(ctx: Context) -> Any:
        return await flaky(1)

    async with app:
        run = await app.start("asks", {"doc": "a\x00b"})
        await wait_status(app, run.id, "waiting")
        (task,) = await app.list_tasks()
        await app.complete_task(task.id, "approve", comment="ok\x00")
        await wait_status(app, run.id, "succeeded")
        failed = await app.start("fails")
        await wait_status(app, failed.id, "dead", "failed")
        stats = await app.stats(since="1h")
        by_workflow = {w.workflow: w for w in stats.workflows}
        assert by_workflow["asks"].human_reviews == 1, by_workflow["asks"]
        assert by_workflow["asks"].without_human_edit == 1.0, by_workflow["asks"]
        fails = by_workflow["fails"]
        assert (fails.transient_failures > 0, fails.permanent_failures) == (True, 0), fails
        text = await app.metrics()
        assert 'aiosys_runs_created_total{tenant="default",workflow="fails"} 1.0' in text
