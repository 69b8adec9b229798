"""The deployment-chain links for cost, budgets, rate limits and caching, on both stores.

Each test composes the links with ``models.chain.compose`` over a terminal that calls a
test provider (counting its invocations) and builds the ``ModelResponse`` the way the
model plane's terminal does. Time that matters (windows, TTLs, periods) comes from a
controllable clock passed to the links, never from sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
import redis

from aiosys import App
from aiosys.errors import (
    BudgetExceeded,
    ConfigError,
    ProviderRejected,
    ProviderUnavailable,
)
from aiosys.models.catalog import Limits, ModelCard, Pricing
from aiosys.models.chain import DeploymentCall, Link, NextLink, compose, judge
from aiosys.models.links.budget import Budget, BudgetLink, Budgets
from aiosys.models.links.cache import CacheLink, CachePolicy
from aiosys.models.links.metering import (
    MeteringLink,
    UsageLog,
    flush_usage,
    spent,
    usage_by_model,
    usage_by_run,
    usage_by_workflow,
    usage_rows,
)
from aiosys.models.links.ratelimit import RateLimitLink, RedisWindows, StoreWindows, Windows
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.types import Message, ModelRequest, ModelResponse, ProviderResult, Usage
from aiosys.store import Store, open_store

T0 = 1_715_000_000.0  # 2024-05-06 12:53:20 UTC: a fixed start for controllable clocks


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """A provider (the ``Provider`` protocol) that answers at once and counts its calls."""

    name = "counting"
    kinds = frozenset({"chat", "summarize", "embed"})

    def __init__(
        self, usage: Usage | None = None, fail: Exception | None = None, output: str = "answer"
    ) -> None:
        self.usage = usage or Usage(input_tokens=100, output_tokens=250)
        self.fail = fail
        self.output = output
        self.calls = 0

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return ProviderResult(
            output=f"{self.output} #{self.calls}", usage=self.usage, finish_reason="stop"
        )

    async def close(self) -> None:
        return None


def terminal(provider: CountingProvider) -> NextLink:
    """The provider call at the end of the chain, as the model plane builds it."""

    async def last(call: DeploymentCall) -> ModelResponse:
        started = time.perf_counter()
        result = await provider.invoke(call.card, call.request)
        usage = result.usage
        card = call.card
        return ModelResponse(
            model=card.id,
            version=card.version,
            output=result.output,
            usage=usage,
            cost=card.pricing.cost(usage.input_tokens, usage.output_tokens, usage.seconds),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=result.finish_reason,
        )

    return last


def card(**kwargs: Any) -> ModelCard:
    fields: dict[str, Any] = {"id": "gpt-test", "provider": "counting", **kwargs}
    return ModelCard(**fields)


def ask(text: str = "What is the capital of France?", **params: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], params=params)


def call_of(model: ModelCard, request: ModelRequest | None = None, **kwargs: Any) -> DeploymentCall:
    fields: dict[str, Any] = {"tenant": "acme", "run_id": "run-1", **kwargs}
    return DeploymentCall(card=model, request=request or ask(), **fields)


def judged(chain: NextLink) -> NextLink:
    """The chain as the router drives it: each answer is accepted (``chain.judge``), so
    the cache keeps it."""

    async def call(c: DeploymentCall) -> ModelResponse:
        response = await chain(c)
        await judge(c, True)
        return response

    return call


@pytest.fixture
async def second_store(store_url: str) -> AsyncIterator[Store]:
    """Another Store instance on the same database: a second worker."""
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# ---- metering ----------------------------------------------------------------------------

PRICED = Pricing(input_per_1k=0.01, output_per_1k=0.02)  # 100 in + 250 out = 0.006


async def test_a_successful_call_is_metered_with_its_tokens_and_cost(store: Store) -> None:
    provider = CountingProvider()
    chain = compose([MeteringLink(store)], terminal(provider))
    call = call_of(card(pricing=PRICED), workflow="intake", seq=3, task="answer")
    response = await chain(call)

    assert response.cost == pytest.approx(0.006)
    [row] = await usage_rows(store, "run-1")
    assert row["status"] == "ok"
    assert (row["input_tokens"], row["output_tokens"]) == (100, 250)
    assert row["cost"] == pytest.approx(0.006)
    assert (row["tenant"], row["workflow"], row["seq"], row["task"]) == (
        "acme",
        "intake",
        3,
        "answer",
    )
    assert (row["model"], row["deployment"]) == ("gpt-test", "gpt-test@1")
    assert row["latency_ms"] >= 0 and row["error"] is None
    usage = call.meta["usage"]
    assert usage["input_tokens"] == 100 and usage["output_tokens"] == 250
    assert usage["cost"] == pytest.approx(0.006) and usage["cached"] is False
    assert usage["latency_ms"] >= 0


async def test_a_failed_call_is_metered_as_an_error_and_the_error_goes_on(store: Store) -> None:
    provider = CountingProvider(fail=ProviderUnavailable("HTTP 503 from upstream"))
    chain = compose([MeteringLink(store)], terminal(provider))
    call = call_of(card(pricing=PRICED))
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        await chain(call)

    [row] = await usage_rows(store, "run-1")
    assert row["status"] == "error"
    assert row["error"] == "ProviderUnavailable: HTTP 503 from upstream"
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (0, 0, 0)
    assert call.meta["usage"]["cost"] == 0


async def test_run_tenant_and_workflow_sums_read_the_usage_back(store: Store) -> None:
    provider = CountingProvider()
    clock = Clock()
    chain = compose([MeteringLink(store, clock=clock)], terminal(provider))
    model = card(pricing=PRICED)
    await chain(call_of(model, workflow="intake"))
    await chain(call_of(model, workflow="intake"))
    await chain(call_of(model, run_id="run-2", workflow="billing"))
    await chain(call_of(model, run_id="run-3", tenant="globex"))
    clock.now += 10
    await chain(call_of(card(id="other", pricing=PRICED), run_id="run-4"))

    assert await usage_by_run(store, "run-1") == {
        "input_tokens": 200,
        "output_tokens": 500,
        "cost": pytest.approx(0.012),
        "calls": 2,
    }
    assert await usage_by_run(store, "nothing") == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "calls": 0,
    }
    assert await spent(store, "acme") == pytest.approx(0.024)
    assert await spent(store, "acme", since=T0 + 5) == pytest.approx(0.006)
    assert await spent(store, "acme", "intake") == pytest.approx(0.012)
    assert await spent(store, "globex") == pytest.approx(0.006)
    assert await spent(store, "initech") == 0.0

    by_model = {r["model"]: r for r in await usage_by_model(store, "acme")}
    assert by_model["gpt-test"]["calls"] == 3 and by_model["gpt-test"]["ok"] == 3
    assert by_model["gpt-test"]["cost"] == pytest.approx(0.018)
    assert by_model["other"]["input_tokens"] == 100
    assert by_model["other"]["mean_latency_ms"] is not None
    by_workflow = await usage_by_workflow(store, "acme")
    assert [r["workflow"] for r in by_workflow] == ["billing", "intake", None]
    assert [r["calls"] for r in by_workflow] == [1, 2, 1]


DAY = 86400.0


async def test_spend_over_days_adds_whole_day_buckets_and_the_part_day_before_them(
    store: Store, second_store: Store
) -> None:
    """Spend since any time is exact: the trigger-kept daily buckets (each worker's
    connection has its own) and the rows of the part day before the first whole one."""
    midnight = math.floor(T0 / DAY) * DAY
    clock = Clock(midnight - DAY + 3600)  # 01:00 the day before
    model = card(pricing=PRICED)  # 0.006 a call
    chains = [
        compose([MeteringLink(s, clock=clock)], terminal(CountingProvider()))
        for s in (store, second_store)
    ]
    for hour in (1, 13, 25, 37, 49):  # two calls a day before, two on the day, one after
        clock.now = midnight - DAY + hour * 3600
        await chains[hour % 2](call_of(model, workflow="intake" if hour < 40 else "billing"))
    await flush_usage(store)
    await flush_usage(second_store)

    assert await spent(store, "acme") == pytest.approx(5 * 0.006)
    assert await spent(store, "acme", since=midnight) == pytest.approx(3 * 0.006)
    assert await spent(store, "acme", since=midnight + 12 * 3600) == pytest.approx(2 * 0.006)
    assert await spent(store, "acme", since=midnight - DAY + 7200) == pytest.approx(4 * 0.006)
    assert await spent(store, "acme", "intake", since=midnight) == pytest.approx(2 * 0.006)
    assert await spent(store, "acme", "billing") == pytest.approx(0.006)
    assert await spent(store, "globex") == 0.0


async def test_the_spend_migration_fills_the_buckets_from_existing_usage(
    store_url: str, store: Store
) -> None:
    """A database metered before the daily buckets existed: migrating fills them."""
    chain = compose([MeteringLink(store, clock=Clock())], terminal(CountingProvider()))
    for _ in range(3):
        await chain(call_of(card(pricing=PRICED), workflow="intake"))
    await flush_usage(store)
    await store.close()
    undo = [
        "DROP TRIGGER model_usage_spend" + (" ON model_usage" if "postgres" in store_url else ""),
        "DROP TABLE model_spend",
        "DELETE FROM aiosys_schema WHERE version = 3",
    ]
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            for statement in undo:
                conn.execute(statement)
    else:
        with psycopg.connect(store_url, autocommit=True) as conn:
            for statement in [*undo, "DROP FUNCTION model_usage_spend"]:
                conn.execute(statement)
    again = open_store(store_url)
    await again.open()
    try:
        assert await spent(again, "acme", "intake") == pytest.approx(3 * 0.006)
        assert await spent(again, "acme", since=T0 - 1) == pytest.approx(3 * 0.006)
    finally:
        await again.close()


class FlakyStore:
    """The real store, except that its first ``failures`` usage writes fail."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def execute_many(self, query: str, rows: Any) -> int:
        if query == "insert_usage" and self.failures > 0:
            self.failures -= 1
            raise OSError("disk I/O error")
        return await self.store.execute_many(query, rows)

    async def fetch(self, query: str, params: Any) -> list[dict[str, Any]]:
        return await self.store.fetch(query, params)


async def test_a_failed_usage_write_is_retried_once(store: Store) -> None:
    metering = MeteringLink(FlakyStore(store, failures=1))  # type: ignore[arg-type]
    response = await compose([metering], terminal(CountingProvider()))(call_of(card()))
    assert response.output == "answer #1"
    await metering.log.flush()
    assert len(await usage_rows(store, "run-1")) == 1
    assert metering.unrecorded == 0


async def test_a_usage_write_that_keeps_failing_is_logged_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    metering = MeteringLink(FlakyStore(store, failures=2))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="aiosys.models.metering"):
        response = await compose([metering], terminal(CountingProvider()))(call_of(card()))
        assert response.output == "answer #1"
        await metering.log.flush()
    assert await usage_rows(store, "run-1") == []
    assert metering.unrecorded == 1
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "not recorded" in record.getMessage()
    assert '"run_id": "run-1"' in record.getMessage() and '"status": "ok"' in record.getMessage()


class CountingStore(FlakyStore):
    """The real store, counting the batches of usage rows written to it."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, failures=0)
        self.batches: list[int] = []
        self.written = asyncio.Event()

    async def execute_many(self, query: str, rows: Any) -> int:
        self.batches.append(len(rows))
        try:
            return await super().execute_many(query, rows)
        finally:
            self.written.set()


async def test_usage_rows_are_written_behind_the_calls_in_one_batch(store: Store) -> None:
    counting = CountingStore(store)
    metering = MeteringLink(counting)  # type: ignore[arg-type]
    chain = compose([metering], terminal(CountingProvider()))
    model = card(pricing=PRICED)

    await asyncio.gather(*(chain(call_of(model)) for _ in range(40)))

    # Every caller has its answer; no row has been written yet, but this process counts
    # them as spent already.
    assert counting.batches == []
    assert await store.fetch("usage_by_run", {"run_id": "run-1"}) == [
        {"input_tokens": 0, "output_tokens": 0, "cost": 0, "calls": 0}
    ]
    assert metering.log.pending_spend("acme", None, 0.0) == pytest.approx(40 * 0.006)
    # Within the delay, without anyone asking, they reach the store in one transaction.
    await asyncio.wait_for(counting.written.wait(), 5)
    assert counting.batches == [40]
    [row] = await store.fetch("usage_by_run", {"run_id": "run-1"})
    assert row["calls"] == 40 and row["cost"] == pytest.approx(40 * 0.006)
    assert metering.log.pending_spend("acme", None, 0.0) == 0


async def test_held_rows_count_as_spent_until_their_effect_commits_or_fails(
    store: Store,
) -> None:
    log = UsageLog(store, delay=3600.0)
    metering = MeteringLink(store)
    metering.log = log
    chain = compose([metering], terminal(CountingProvider()))
    held: list[dict[str, Any]] = []
    await chain(call_of(card(pricing=PRICED), held=held))
    await chain(call_of(card(pricing=PRICED), held=held))
    assert [r["status"] for r in held] == ["ok", "ok"]
    assert log.pending_spend("acme", None, 0.0) == pytest.approx(0.012)
    await log.flush()
    assert await usage_rows(store, "run-1") == []  # held rows are the effect's to write

    log.release(held[:1], committed=True)  # written with its record
    assert log.pending_spend("acme", None, 0.0) == pytest.approx(0.006)
    log.release(held[1:], committed=False)  # its record's transaction failed
    assert log.pending_spend("acme", None, 0.0) == pytest.approx(0.006)
    await log.flush()  # so it is written behind, as any other row
    assert [r["cost"] for r in await usage_rows(store, "run-1")] == [pytest.approx(0.006)]
    assert log.pending_spend("acme", None, 0.0) == 0


def test_a_log_outliving_its_event_loop_schedules_its_writes_on_the_next(store_url: str) -> None:
    """A script that runs ``asyncio.run`` twice with one store, the first time without
    closing anything: the second loop's rows still reach the store on their own."""
    store = open_store(store_url)
    counting = CountingStore(store)
    log = UsageLog(counting, delay=0.01)  # type: ignore[arg-type]
    row = {"at": T0, "tenant": "acme", "workflow": None, "run_id": "run-1", "seq": None}
    row |= {"task": None, "model": "m", "deployment": "m@1", "input_tokens": 1}
    row |= {"output_tokens": 2, "cost": 0.5, "latency_ms": 1.0, "status": "ok", "error": None}

    async def first() -> None:
        await store.open()
        log.add(dict(row))  # its timer dies with this loop

    async def second() -> list[dict[str, Any]]:
        await log.flush()  # what the first loop left behind
        counting.written = asyncio.Event()
        log.add(dict(row))
        await asyncio.wait_for(counting.written.wait(), 5)
        rows = await store.fetch("usage_rows_of_run", {"run_id": "run-1"})
        await store.close()
        return rows

    asyncio.run(first())
    assert [r["cost"] for r in asyncio.run(second())] == [0.5, 0.5]


async def test_closing_the_app_writes_the_pending_usage_rows(store_url: str) -> None:
    register_callable("echo-upper", lambda messages: messages[-1].content.upper())
    try:
        app = App(store=store_url, models_dir="")
        app.models.add_card(
            {"id": "upper", "provider": "local", "options": {"callable": "echo-upper"}}
        )
        await app.open()
        answer = await app.models.call("upper", "hello", tenant="acme")
        await app.close()
    finally:
        unregister_callable("echo-upper")
    assert answer.output == "HELLO"
    other = open_store(store_url)  # another process's view: only what was written
    await other.open()
    try:
        rows = await other.fetch("usage_by_model", {"tenant": "acme", "since": 0})
    finally:
        await other.close()
    assert [(r["model"], r["calls"], r["ok"]) for r in rows] == [("upper", 1, 1)]


# ---- budgets -----------------------------------------------------------------------------


async def test_a_budget_of_a_cent_stops_the_call_that_would_exceed_it_before_it_is_sent(
    store: Store,
) -> None:
    provider = CountingProvider()  # each call: 100 in + 250 out = 0.006
    budgets = Budgets(Budget("tenant", "acme", limit=0.01))
    chain = compose([MeteringLink(store), BudgetLink(store, budgets)], terminal(provider))
    model = card(pricing=PRICED)
    request = ask(max_tokens=250)  # estimate: ~14 input tokens + 250 out ≈ 0.0051

    first = await chain(call_of(model, request))
    assert first.cost == pytest.approx(0.006)
    with pytest.raises(BudgetExceeded) as denied:
        await chain(call_of(model, request))

    assert provider.calls == 1  # the second call never reached the provider
    message = str(denied.value)
    assert "budget of tenant 'acme'" in message
    assert "spent 0.006" in message and "limit 0.01 USD" in message
    assert "estimated 0.0051" in message and "not sent" in message
    rows = await usage_rows(store, "run-1")
    assert [r["status"] for r in rows] == ["ok", "denied"]
    assert rows[1]["error"].startswith("BudgetExceeded: ") and rows[1]["cost"] == 0
    assert await spent(store, "acme") == pytest.approx(0.006)


async def test_a_soft_budget_lets_the_call_through_with_a_warning(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    provider = CountingProvider()
    budgets = Budgets(Budget("workflow", "intake", limit=0.001, hard=False))
    chain = compose([MeteringLink(store), BudgetLink(store, budgets)], terminal(provider))
    call = call_of(card(pricing=PRICED), workflow="intake")
    with caplog.at_level(logging.WARNING, logger="aiosys.models.budget"):
        await chain(call)
    assert provider.calls == 1
    assert "soft month budget of workflow 'intake'" in call.meta["budget_warning"]
    # What it estimated, and how: the request sets no max_tokens, so the default output.
    assert (
        "estimated 0.02062 for gpt-test@1 (14 input tokens counted from the request at 0.01 "
        "per 1k, 1024 output tokens at 0.02 per 1k as the default max_tokens: the request "
        "sets none) > limit 0.001 USD"
    ) in call.meta["budget_warning"]
    assert "over budget" in caplog.text


async def test_a_workflow_budget_counts_only_that_workflow_in_that_tenant(store: Store) -> None:
    provider = CountingProvider()
    budgets = Budgets(Budget("workflow", "acme/intake", limit=0.01))
    chain = compose([MeteringLink(store), BudgetLink(store, budgets)], terminal(provider))
    model = card(pricing=PRICED)
    request = ask(max_tokens=250)
    for _ in range(2):  # spend elsewhere does not count against acme/intake
        await chain(call_of(model, request, workflow="billing"))
        await chain(call_of(model, request, tenant="globex", workflow="intake"))
    await chain(call_of(model, request, workflow="intake"))
    with pytest.raises(BudgetExceeded, match="workflow 'acme/intake'"):
        await chain(call_of(model, request, workflow="intake"))
    assert provider.calls == 5


async def test_a_daily_budget_starts_again_the_next_day(store: Store) -> None:
    provider = CountingProvider()
    clock = Clock()
    budgets = Budgets(Budget("tenant", "acme", limit=0.01, period="day"))
    links: list[Link] = [MeteringLink(store, clock=clock), BudgetLink(store, budgets, clock=clock)]
    chain = compose(links, terminal(provider))
    model, request = card(pricing=PRICED), ask(max_tokens=250)
    await chain(call_of(model, request))
    with pytest.raises(BudgetExceeded, match="day budget"):
        await chain(call_of(model, request))
    clock.now += 86_400
    await chain(call_of(model, request))
    assert provider.calls == 2


# ---- rate limits -------------------------------------------------------------------------


def window_end(now: float) -> float:
    return math.floor(now / 60) * 60 + 60


WindowsFactory = Callable[[Store], Windows]


@pytest.fixture(params=["store-windows", "redis-windows"])
async def windows(request: pytest.FixtureRequest) -> AsyncIterator[WindowsFactory]:
    """Where the rate-limit links count: the store, or Redis (a prefix of its own per test,
    shared by the test's workers)."""
    if request.param == "store-windows":
        yield StoreWindows
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"aiosys-test:{uuid.uuid4().hex}:"
    made: list[RedisWindows] = []

    def make(store: Store) -> Windows:
        made.append(RedisWindows(url, prefix=prefix))
        return made[-1]

    yield make
    for w in made:
        await w.close()


async def test_two_workers_share_one_requests_per_minute_limit(
    store: Store, second_store: Store, windows: WindowsFactory
) -> None:
    provider = CountingProvider()
    clock = Clock(T0 + 15)
    worker_a = compose(
        [RateLimitLink(store, windows=windows(store), clock=clock)], terminal(provider)
    )
    worker_b = compose(
        [RateLimitLink(second_store, windows=windows(second_store), clock=clock)],
        terminal(provider),
    )
    model = card(limits=Limits(requests_per_minute=3))

    await worker_a(call_of(model))
    await worker_b(call_of(model))
    await worker_a(call_of(model))
    with pytest.raises(ProviderUnavailable, match="rate limit of gpt-test: 3 requests per") as e:
        await worker_b(call_of(model))
    assert provider.calls == 3
    assert e.value.retry_after == pytest.approx(window_end(clock.now) - clock.now)
    with pytest.raises(ProviderUnavailable):  # still full, for every worker
        await worker_a(call_of(model))

    clock.now = window_end(clock.now)  # the next minute
    await worker_b(call_of(model))
    assert provider.calls == 4


async def test_concurrent_calls_from_two_workers_never_pass_the_limit(
    store: Store, second_store: Store, windows: WindowsFactory
) -> None:
    provider = CountingProvider()
    clock = Clock()
    model = card(limits=Limits(requests_per_minute=5))
    chains = [
        compose([RateLimitLink(s, windows=windows(s), clock=clock)], terminal(provider))
        for s in (store, second_store)
    ]
    outcomes = await asyncio.gather(
        *(chains[i % 2](call_of(model)) for i in range(12)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, ProviderUnavailable)]
    assert provider.calls == 5 and len(refused) == 7


async def test_tokens_per_minute_count_the_reported_usage(
    store: Store, windows: WindowsFactory
) -> None:
    # Each call asks for 300 tokens of output (estimate ~310) but uses 100 in all.
    provider = CountingProvider(usage=Usage(input_tokens=60, output_tokens=40))
    clock = Clock()
    chain = compose([RateLimitLink(store, windows=windows(store), clock=clock)], terminal(provider))
    model = card(limits=Limits(tokens_per_minute=700))
    for _ in range(3):  # by estimate only the third would be refused (930 > 700)
        await chain(call_of(model, ask(max_tokens=300)))
    with pytest.raises(ProviderUnavailable, match="700 tokens per minute") as e:
        await chain(call_of(model, ask(max_tokens=600)))  # 300 used + ~610 asked
    assert e.value.retry_after is not None and e.value.retry_after > 0
    await chain(call_of(model, ask(max_tokens=200)))  # the refused tokens were given back
    assert provider.calls == 4


async def test_cards_naming_one_shared_limit_count_in_the_same_windows(
    store: Store, windows: WindowsFactory
) -> None:
    provider = CountingProvider()
    chain = compose([RateLimitLink(store, windows=windows(store))], terminal(provider))
    org = Limits(requests_per_minute=2, shared="openai-org")
    mini, large = card(id="mini", limits=org), card(id="large", limits=org)
    alone = card(id="alone", limits=Limits(requests_per_minute=2))
    await chain(call_of(mini))
    await chain(call_of(large))
    with pytest.raises(ProviderUnavailable, match=r"rate limit of mini \(shared 'openai-org'\)"):
        await chain(call_of(mini))
    await chain(call_of(alone))  # a card of its own counts apart
    assert provider.calls == 3


async def test_unreachable_redis_lets_calls_through_uncounted_and_says_so(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    provider = CountingProvider()
    dead = RedisWindows("redis://127.0.0.1:1/0")  # nothing listens on port 1
    chain = compose([RateLimitLink(store, windows=dead)], terminal(provider))
    model = card(limits=Limits(requests_per_minute=1))
    with caplog.at_level(logging.WARNING, logger="aiosys.models.ratelimit"):
        for _ in range(2):  # a limit of 1, but nothing can count
            assert (await chain(call_of(model))).output.startswith("answer")
    await dead.close()
    assert provider.calls == 2 and dead.failures == 2
    assert "rate limit counters at redis://127.0.0.1:1/0 unreachable" in caplog.text
    assert "goes through uncounted" in caplog.text


async def test_the_plane_counts_rate_limits_in_redis_when_told_to(
    store_url: str, redis_url: str
) -> None:
    # Windows are whole minutes of the wall clock: two calls that straddle a minute's edge
    # land in two windows, so such a pair is tried again (it cannot happen twice in a row).
    for _ in range(3):
        window = int(time.time() // 60)
        model_id = f"limited-{uuid.uuid4().hex[:8]}"
        register_callable(model_id, lambda messages: "ok")
        app = App(store=store_url, models_dir="")
        app.models.redis_url = redis_url
        app.models.add_card(
            {
                "id": model_id,
                "provider": "local",
                "options": {"callable": model_id},
                "limits": {"requests_per_minute": 1},
            }
        )
        refused: ProviderUnavailable | None = None
        try:
            async with app:
                await app.models.call(model_id, "hi")
                # A rate-limit window is transient: the caller may retry when it turns.
                try:
                    await app.models.call(model_id, "hi")
                except ProviderUnavailable as exc:
                    refused = exc
        finally:
            unregister_callable(model_id)
        if int(time.time() // 60) == window:
            break
    assert refused is not None and "1 requests per minute reached" in str(refused)
    assert refused.retry_after is not None and 0 < refused.retry_after <= 60
    with redis.Redis.from_url(redis_url) as client:
        [key] = client.keys(f"aiosys:rate:model:{model_id}:*")
        assert client.hget(key, "requests") == b"1"  # the refused call was given back
        assert 0 < client.ttl(key) <= 120
        client.delete(key)


async def test_a_request_larger_than_the_token_limit_is_rejected_outright(store: Store) -> None:
    provider = CountingProvider()
    chain = compose([RateLimitLink(store)], terminal(provider))
    model = card(limits=Limits(tokens_per_minute=100))
    with pytest.raises(ProviderRejected, match="more than its limit of 100 tokens per minute"):
        await chain(call_of(model, ask(max_tokens=500)))
    assert provider.calls == 0


# ---- cache -------------------------------------------------------------------------------


async def test_an_exact_hit_skips_the_provider_and_costs_nothing(
    store: Store, second_store: Store
) -> None:
    provider = CountingProvider()
    policy = CachePolicy()
    model = card(pricing=PRICED)
    worker_a = judged(compose([MeteringLink(store), CacheLink(store)], terminal(provider)))
    worker_b = judged(
        compose([MeteringLink(second_store), CacheLink(second_store)], terminal(provider))
    )

    fresh = await worker_a(call_of(model, cache=policy))
    hit_call = call_of(model, ask("What is the capital of France?  \n"), cache=policy)
    hit = await worker_b(hit_call)  # another worker; trailing whitespace does not matter

    assert provider.calls == 1
    assert hit.cached is True and hit.cost == 0.0
    assert hit.output == fresh.output == "answer #1"
    assert hit.usage == fresh.usage and hit.latency_ms >= 0
    assert hit_call.meta["usage"]["cached"] is True and hit_call.meta["usage"]["cost"] == 0
    await flush_usage(second_store)  # the other worker's rows reach the store in a batch
    rows = await usage_rows(store, "run-1")
    assert [(r["status"], r["cost"]) for r in rows] == [("ok", pytest.approx(0.006)), ("cached", 0)]


async def test_no_policy_no_cache_and_different_questions_miss(store: Store) -> None:
    provider = CountingProvider()
    chain = judged(compose([CacheLink(store)], terminal(provider)))
    model = card()
    await chain(call_of(model))
    await chain(call_of(model))  # no cache policy: both go to the provider
    policy = CachePolicy()
    await chain(call_of(model, ask("def f():\n    return 1"), cache=policy))
    indented = await chain(call_of(model, ask("def f():\n  return 1"), cache=policy))
    other_params = await chain(
        call_of(model, ask("def f():\n    return 1", temperature=0.9), cache=policy)
    )
    other_tenant = await chain(
        call_of(model, ask("def f():\n    return 1"), cache=policy, tenant="globex")
    )
    assert not (indented.cached or other_params.cached or other_tenant.cached)
    assert provider.calls == 6


async def test_an_entry_expires_after_its_ttl(store: Store) -> None:
    provider = CountingProvider()
    clock = Clock()
    chain = judged(compose([CacheLink(store, clock=clock)], terminal(provider)))
    model, policy = card(), CachePolicy(ttl=60.0)
    await chain(call_of(model, cache=policy))
    clock.now += 59
    assert (await chain(call_of(model, cache=policy))).cached
    clock.now += 2
    fresh = await chain(call_of(model, cache=policy))
    assert not fresh.cached and fresh.output == "answer #2"
    assert provider.calls == 2


async def test_a_new_model_version_misses_the_cache(store: Store) -> None:
    provider = CountingProvider()
    chain = judged(compose([CacheLink(store)], terminal(provider)))
    policy = CachePolicy()
    await chain(call_of(card(version="1"), cache=policy))
    newer = await chain(call_of(card(version="2"), cache=policy))
    assert not newer.cached and newer.version == "2"
    again = await chain(call_of(card(version="2"), cache=policy))
    assert again.cached and again.version == "2"
    assert provider.calls == 2


# Fixed vectors with known cosines (0.95 for the paraphrase, 0.0 for the unrelated line).
VECTORS = {
    "What is the capital of France?": [1.0, 0.0, 0.0],
    "Tell me France's capital city.": [0.95, 0.31224989991991997, 0.0],
    "How do I bake sourdough bread?": [0.0, 0.0, 1.0],
}


class TableEmbed:
    """A deterministic embedding function over a fixed table, counting what it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        return [VECTORS[t] for t in texts]


async def test_a_paraphrase_above_the_threshold_is_a_semantic_hit(store: Store) -> None:
    provider = CountingProvider()
    embed = TableEmbed()
    chain = judged(compose([CacheLink(store, embed)], terminal(provider)))
    model, policy = card(), CachePolicy(semantic=True, threshold=0.92)
    system = Message(role="system", content="Answer in one word.")

    def chat(text: str, system: Message = system) -> ModelRequest:
        return ModelRequest(messages=[system, Message(role="user", content=text)])

    first = await chain(call_of(model, chat("What is the capital of France?"), cache=policy))
    paraphrase = await chain(call_of(model, chat("Tell me France's capital city."), cache=policy))
    unrelated = await chain(call_of(model, chat("How do I bake sourdough bread?"), cache=policy))
    assert paraphrase.cached and paraphrase.output == first.output and paraphrase.cost == 0
    assert not unrelated.cached
    assert embed.seen[0] == "What is the capital of France?"  # the user's words only

    # Asked another way (another system prompt), or by another tenant: not the same question.
    terse = Message(role="system", content="Answer at length.")
    asked_otherwise = await chain(
        call_of(model, chat("Tell me France's capital city.", terse), cache=policy)
    )
    other_tenant = await chain(
        call_of(model, chat("Tell me France's capital city."), cache=policy, tenant="globex")
    )
    assert not asked_otherwise.cached and not other_tenant.cached
    assert provider.calls == 4


async def test_semantic_policy_without_an_embedding_function_is_a_config_error(
    store: Store,
) -> None:
    provider = CountingProvider()
    chain = judged(compose([CacheLink(store)], terminal(provider)))
    with pytest.raises(ConfigError, match="semantic cache"):
        await chain(call_of(card(), cache=CachePolicy(semantic=True), task="answer"))
    assert provider.calls == 0


async def test_the_links_compose_in_the_planes_order(store: Store) -> None:
    provider = CountingProvider()
    budgets = Budgets(Budget("tenant", "acme", limit=1.0))
    links: list[Link] = [
        MeteringLink(store),
        BudgetLink(store, budgets),
        RateLimitLink(store),
        CacheLink(store),
    ]
    chain: Callable[[DeploymentCall], Awaitable[ModelResponse]] = judged(
        compose(links, terminal(provider))
    )
    model = card(pricing=PRICED, limits=Limits(requests_per_minute=10))
    for _ in range(3):
        await chain(call_of(model, cache=CachePolicy()))
    assert provider.calls == 1
    assert await usage_by_run(store, "run-1") == {
        "input_tokens": 100,
        "output_tokens": 250,
        "cost": pytest.approx(0.006),
        "calls": 3,
    }


async def test_the_offline_embedding_model_finds_a_paraphrase_and_not_a_neighbour(
    store: Store,
) -> None:
    from aiosys.models.providers.embeddings import EmbeddingsProvider

    provider = CountingProvider()
    chain = judged(compose([CacheLink(store, EmbeddingsProvider().embed)], terminal(provider)))
    model, policy = card(), CachePolicy(exact=False, semantic=True)  # threshold 0.92

    first = await chain(call_of(model, ask("What is the capital of France?"), cache=policy))
    paraphrase = await chain(
        call_of(model, ask("Which city is the capital of France?"), cache=policy)
    )
    neighbour = await chain(call_of(model, ask("What is the capital of Germany?"), cache=policy))
    unrelated = await chain(call_of(model, ask("How do I bake sourdough bread?"), cache=policy))
    assert paraphrase.cached and paraphrase.output == first.output
    assert not neighbour.cached and not unrelated.cached
    assert provider.calls == 3
