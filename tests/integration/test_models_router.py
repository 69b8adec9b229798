"""The model router through the whole plane: plan order, retries and fallbacks, circuit
breakers, exclusions, cost- and latency-aware choice, canary split, shadow traffic, output
validation, and ``ctx.models`` as a recorded effect of a workflow.

Every test runs on both stores (the chain meters each attempt into ``model_usage``). The
models are a scripted in-process provider that counts what it receives; breakers run on a
fake clock and the router's backoff sleeps are recorded instead of slept.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, Field

from aiosys import App, Context, Retry
from aiosys.errors import (
    BudgetExceeded,
    ConfigError,
    DeploymentUnusable,
    InvalidInput,
    InvalidModelOutput,
    ModelNotFound,
    NoRouteAvailable,
    ProviderRejected,
    ProviderUnavailable,
)
from aiosys.kernel import App as KernelApp
from aiosys.models.bound import MODEL_RETRY
from aiosys.models.contracts import Candidate, RoutingPlan
from aiosys.models.links.breaker import Breakers
from aiosys.models.links.budget import Budget
from aiosys.models.links.cache import CachePolicy
from aiosys.models.links.metering import usage_log
from aiosys.models.types import ModelRequest, ModelResponse, ProviderResult, Usage

pytestmark = pytest.mark.timeout(60)


class In(BaseModel):
    text: str


class Out(BaseModel):
    summary: str = Field(min_length=1)


def build(data: In) -> ModelRequest:
    return ModelRequest(kind="summarize", text=data.text)


def parse(response: ModelResponse) -> dict[str, Any]:
    return {"summary": response.output}


OK = object()


class Scripted:
    """A provider whose answers the test scripts per card: queued outcomes first, then the
    card's standing outcome (default: ``"<card> says: <text>"``). Counts every request."""

    name = "scripted"
    kinds = frozenset({"chat", "summarize"})

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.queued: dict[str, deque[Any]] = defaultdict(deque)
        self.standing: dict[str, Any] = {}
        self.gates: dict[str, asyncio.Event] = {}

    def next(self, card: str, *outcomes: Any) -> None:
        self.queued[card].extend(outcomes)

    async def invoke(self, card, request: ModelRequest) -> ProviderResult:
        self.calls[card.id] += 1
        gate = self.gates.get(card.id)
        if gate is not None:
            await gate.wait()
        queue = self.queued[card.id]
        outcome = queue.popleft() if queue else self.standing.get(card.id, OK)
        if isinstance(outcome, BaseException):
            raise outcome
        text = request.text if request.kind == "summarize" else request.messages[-1].content
        output = f"{card.id} says: {text}" if outcome is OK else outcome
        return ProviderResult(output=output, usage=Usage(input_tokens=7, output_tokens=3))

    async def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    app: App
    provider: Scripted
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)

    @property
    def calls(self) -> Counter[str]:
        return self.provider.calls

    def card(self, id: str, **fields: Any) -> None:
        self.app.models.add_card({"id": id, "provider": "scripted", "kind": "summarize", **fields})

    def task(self, *candidates: Any, name: str = "summarize", **kw: Any) -> None:
        plan_kw = {k: kw.pop(k) for k in ("strategy", "shadow", "internal_only_for") if k in kw}
        plan = RoutingPlan(list(candidates), **plan_kw)
        self.app.models.task(name, input=In, output=Out, build=build, parse=parse, plan=plan, **kw)

    async def run(self, text: str = "hello", task: str = "summarize", **kw: Any) -> str:
        out = await self.app.models.run(task, {"text": text}, **kw)
        assert isinstance(out, Out)
        return out.summary

    def state(self, card: str) -> str:
        return self.app.models.breakers.state(f"{card}@1")


@pytest.fixture
async def env(store_url):
    app = App(store=store_url, lease=1.0)
    clock = FakeClock()
    app.models.breakers = Breakers(failure_threshold=3, cooldown=30.0, clock=clock)
    provider = Scripted()
    app.models.add_provider("scripted", provider)
    e = Env(app, provider, clock)

    async def no_sleep(seconds: float) -> None:
        e.sleeps.append(seconds)

    app.models.router.sleep = no_sleep
    async with app:
        yield e


async def usage_rows(app: App) -> list[dict[str, Any]]:
    await app.models.flush_usage()
    rows = await app.store.fetch("usage_by_model", {"tenant": "default", "since": 0})
    return rows


# ---- order, retries, fallbacks --------------------------------------------------------------


async def test_calls_outside_workflows_pass_the_gate_as_direct_effects(env):
    env.card("a")
    env.card("chat", kind="chat")
    env.task("a")
    seen: list[tuple[Any, ...]] = []

    async def guard(call, next):  # the shape of a policy interceptor
        seen.append((call.kind, call.name, call.direct, call.tenant, call.workflow))
        if call.tenant == "blocked":
            raise PermissionError(f"tenant {call.tenant} may not call models")
        return await next(call)

    env.app.gate.add("guard", guard, before="retry")
    assert await env.run(tenant="acme", workflow="intake") == "a says: hello"
    response = await env.app.models.call("chat", "hi", tenant="acme")
    assert response.model == "chat" and response.output == "chat says: hi"
    with pytest.raises(PermissionError, match="tenant blocked may not call models"):
        await env.run(tenant="blocked")
    assert env.calls == {"a": 1, "chat": 1}  # the denied call never reached the provider
    assert seen == [
        ("model", "summarize", True, "acme", "intake"),
        ("model", "call:chat", True, "acme", None),
        ("model", "summarize", True, "blocked", None),
    ]


async def test_candidates_are_tried_in_the_order_of_the_plan(env):
    env.card("a")
    env.card("b")
    env.task("a", "b")
    env.task("b", "a", name="reversed")
    assert await env.run("x") == "a says: x"
    assert await env.run("y", task="reversed") == "b says: y"
    assert env.calls == {"a": 1, "b": 1}


async def test_transient_failures_are_retried_with_backoff_then_fall_back(env):
    env.card("a")
    env.card("b")
    env.task(Candidate("a", retries=2, backoff=0.1), "b")
    env.provider.standing["a"] = ProviderUnavailable("a: HTTP 503")
    assert await env.run() == "b says: hello"
    assert env.calls == {"a": 3, "b": 1}
    assert env.sleeps == pytest.approx([0.1, 0.2])


async def test_a_short_retry_after_is_waited_and_a_long_one_falls_back_at_once(env):
    env.card("a")
    env.card("b")
    env.task(Candidate("a", retries=1, backoff=0.1), "b")
    env.provider.next("a", ProviderUnavailable("429", retry_after=1.5))
    assert await env.run() == "a says: hello"
    assert env.sleeps == [1.5]
    env.provider.next("a", ProviderUnavailable("429", retry_after=60))
    assert await env.run() == "b says: hello"
    assert env.sleeps == [1.5]  # no 60-second wait: the next candidate answered
    assert env.calls == {"a": 3, "b": 1}


async def test_a_rejected_request_stops_without_falling_back(env):
    env.card("a")
    env.card("b")
    env.task("a", "b")
    env.provider.next("a", ProviderRejected("a: HTTP 400 bad request"))
    with pytest.raises(ProviderRejected, match="bad request"):
        await env.run()
    assert env.calls == {"a": 1}


async def test_an_exceeded_budget_propagates_and_no_candidate_is_called(env):
    env.card("a", pricing={"input_per_1k": 1.0, "output_per_1k": 1.0})
    env.card("b", pricing={"input_per_1k": 0.5, "output_per_1k": 0.5})
    env.task("a", "b")
    env.app.models.budgets.add(Budget("tenant", "acme", limit=0.01))
    with pytest.raises(BudgetExceeded, match="tenant 'acme'"):
        await env.run(tenant="acme")
    assert env.calls == {}


async def test_a_budget_or_cost_cap_that_refuses_one_candidate_moves_on_to_one_that_fits(
    env, wait_status
):
    env.card("pricey", pricing={"input_per_1k": 1.0, "output_per_1k": 1.0})
    env.card("free")
    env.task("pricey", "free")
    env.task("pricey", "free", name="capped", cost_cap=0.001)
    env.app.models.budgets.add(Budget("workflow", "digest", limit=0.01))
    app = env.app

    @app.workflow
    async def digest(ctx: Context) -> list[str]:
        a = await ctx.models.run("summarize", {"text": "x"})
        b = await ctx.models.run("capped", {"text": "y"})
        return [a.summary, b.summary]

    run = await app.start("digest", {})
    assert await run.result(timeout=10) == ["free says: x", "free says: y"]
    assert env.calls == {"free": 2}  # the budget refused pricey before it was sent
    budgeted, capped = [json.loads(e.meta) for e in await app.effects(run.id)]
    assert budgeted["deployment"] == "free@1"
    assert budgeted["attempts"][0]["model"] == "pricey@1"
    assert budgeted["attempts"][0]["error"].startswith("BudgetExceeded: hard month budget")
    assert budgeted["warnings"][0].startswith("pricey@1 not used: hard month budget")
    assert capped["deployment"] == "free@1"
    assert capped["skipped"]["pricey@1"].startswith("over cost cap")


# ---- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_skips_the_deployment_half_opens_after_cooldown_and_recovers(env):
    env.card("a")
    env.card("b")
    env.task(Candidate("a", retries=0), "b")
    env.provider.standing["a"] = ProviderUnavailable("a: HTTP 500")
    for _ in range(3):
        assert await env.run() == "b says: hello"
    assert env.state("a") == "open"
    for _ in range(5):
        assert await env.run() == "b says: hello"
    assert env.calls["a"] == 3  # open: not one more request
    env.clock.advance(29.9)
    assert await env.run() == "b says: hello"
    assert env.calls["a"] == 3
    env.clock.advance(0.1)
    assert env.state("a") == "half_open"
    del env.provider.standing["a"]  # healthy again
    assert await env.run() == "a says: hello"  # the trial call
    assert env.state("a") == "closed"
    assert await env.run() == "a says: hello"
    assert env.calls == {"a": 5, "b": 9}


async def test_a_failed_trial_reopens_the_breaker_for_a_new_cooldown(env):
    env.card("a")
    env.card("b")
    env.task(Candidate("a", retries=0), "b")
    env.provider.standing["a"] = ProviderUnavailable("a: HTTP 500")
    for _ in range(3):
        await env.run()
    env.clock.advance(30)
    assert await env.run() == "b says: hello"  # the trial failed
    assert env.calls["a"] == 4
    assert env.state("a") == "open"
    env.clock.advance(29)
    await env.run()
    assert env.calls["a"] == 4
    env.clock.advance(1)
    assert env.state("a") == "half_open"


async def test_half_open_lets_one_trial_through_while_concurrent_calls_skip(env, wait_until):
    env.card("a")
    env.card("b")
    env.task(Candidate("a", retries=0), "b")
    for _ in range(3):
        env.app.models.breakers.record_failure("a@1")
    env.clock.advance(30)
    gate = env.provider.gates["a"] = asyncio.Event()
    trial = asyncio.create_task(env.run("trial"))
    await wait_until(lambda: env.calls["a"] == 1)
    assert await env.run("meanwhile") == "b says: meanwhile"
    assert env.calls["a"] == 1
    gate.set()
    assert await trial == "a says: trial"
    assert env.state("a") == "closed"


async def test_permanent_errors_do_not_trip_the_breaker(env):
    env.card("a")
    env.task("a")
    for _ in range(5):
        env.provider.next("a", ProviderRejected("a: HTTP 422"))
        with pytest.raises(ProviderRejected):
            await env.run()
    assert env.state("a") == "closed"


# ---- exclusions -----------------------------------------------------------------------------


async def test_no_route_available_names_every_candidate_and_why(env):
    env.card("revoked")
    env.card("cloud", external=True)
    env.card("pricey", pricing={"output_per_1k": 0.1})
    env.card("missing")
    env.card("never")
    env.task(
        "revoked",
        "cloud",
        "pricey",
        Candidate("missing", retries=0),
        Candidate("never", when=lambda route: route.tenant == "other"),
        cost_cap=0.01,
    )
    env.provider.standing["revoked"] = DeploymentUnusable("revoked: HTTP 401", status=401)
    env.provider.standing["missing"] = DeploymentUnusable("missing: HTTP 404", status=404)
    with pytest.raises(NoRouteAvailable) as info:
        await env.run(classification="confidential")
    message = str(info.value)
    assert "task 'summarize'" in message
    assert "revoked@1: failed: DeploymentUnusable: revoked: HTTP 401" in message
    assert "cloud@1: excluded: external model, confidential data stays internal" in message
    assert "pricey@1: over cost cap (estimated 0.1024 > 0.01)" in message
    assert "missing@1: failed: DeploymentUnusable: missing: HTTP 404" in message
    assert "never@1: excluded by its condition" in message
    assert env.calls == {"revoked": 1, "missing": 1}


async def test_an_outage_of_every_candidate_is_transient_with_the_smallest_retry_after(env):
    """Open breakers, transient failures and rate limits may pass: the call fails with
    ``ProviderUnavailable`` (retried by the kernel), not the permanent ``NoRouteAvailable``,
    even beside candidates that failed permanently."""
    env.card("tripped")
    env.card("revoked")
    env.card("busy")
    env.card("slow")
    env.task(
        "tripped",
        "revoked",
        Candidate("busy", retries=0),
        Candidate("slow", retries=0),
    )
    for _ in range(3):
        env.app.models.breakers.record_failure("tripped@1")
    env.clock.advance(20)  # 10 s of its cooldown left
    env.provider.standing["revoked"] = DeploymentUnusable("revoked: HTTP 401", status=401)
    env.provider.standing["busy"] = ProviderUnavailable("busy: HTTP 429", retry_after=7.0)
    env.provider.standing["slow"] = ProviderUnavailable("slow: HTTP 503", retry_after=12.0)
    with pytest.raises(ProviderUnavailable) as info:
        await env.run()
    assert not isinstance(info.value, NoRouteAvailable)
    assert info.value.retry_after == pytest.approx(7.0)
    message = str(info.value)
    assert "no model can serve task 'summarize' now (retry after 7s)" in message
    assert "tripped@1: open breaker" in message
    assert "revoked@1: failed: DeploymentUnusable" in message
    assert "busy@1: failed: ProviderUnavailable: busy: HTTP 429" in message
    # a candidate whose failure gave no hint may serve at once: no retry-after
    env.provider.standing["slow"] = ProviderUnavailable("slow: HTTP 500")
    with pytest.raises(ProviderUnavailable) as info:
        await env.run()
    assert info.value.retry_after is None
    # with only the breaker left, its cooldown is the hint
    env.provider.standing["busy"] = DeploymentUnusable("busy: HTTP 403", status=403)
    env.provider.standing["slow"] = DeploymentUnusable("slow: HTTP 403", status=403)
    with pytest.raises(ProviderUnavailable) as info:
        await env.run()
    assert info.value.retry_after == pytest.approx(10.0)


async def test_confidential_data_never_goes_to_an_external_card(env):
    env.card("cloud", external=True)
    env.card("onprem")
    env.task("cloud", "onprem", shadow="cloud")
    env.task("cloud", name="cloud-only")
    for label in ("confidential", "restricted"):
        assert await env.run(classification=label) == "onprem says: hello"
    with pytest.raises(NoRouteAvailable, match="external model, restricted data"):
        await env.run(task="cloud-only", classification="restricted")
    env.app.models.add_card({"id": "cloud-chat", "provider": "scripted", "external": True})
    with pytest.raises(NoRouteAvailable, match="cloud-chat@1: excluded: external"):
        await env.app.models.call("cloud-chat", "hi", classification="confidential")
    await env.app.models.router.drain()
    assert env.calls == {"onprem": 2}  # not even the shadow got a copy
    assert await env.run(classification="public") == "cloud says: hello"


async def test_aliases_route_to_their_card_and_unknown_models_name_the_known_ones(env):
    env.card("v1", aliases=["production"])
    env.task("production")
    assert await env.run() == "v1 says: hello"
    env.card("v2", aliases=["production"])  # promoted: the alias moves
    assert await env.run() == "v2 says: hello"
    assert env.app.models.card("v1").aliases == []
    env.task("nope", name="broken")
    with pytest.raises(ModelNotFound, match=r"'nope' \(known: v1, v2\)"):
        await env.run(task="broken")


# ---- cost- and latency-aware choice ---------------------------------------------------------


async def test_cost_strategy_picks_the_cheapest_and_breaks_ties_by_latency(env):
    env.card("dear", pricing={"output_per_1k": 10.0})
    env.card("cheap", pricing={"output_per_1k": 1.0})
    env.card("cheap-fast", pricing={"output_per_1k": 1.0})
    env.task("dear", "cheap", "cheap-fast", strategy="cost")
    router = env.app.models.router
    router.observe("cheap@1", 300.0)
    router.observe("cheap-fast@1", 40.0)
    assert await env.run() == "cheap-fast says: hello"
    for _ in range(3):
        env.app.models.breakers.record_failure("cheap-fast@1")
    assert await env.run() == "cheap says: hello"  # the next cheapest
    assert env.calls["dear"] == 0


async def test_latency_strategy_measures_unknown_deployments_first_then_prefers_the_fastest(
    env,
):
    env.card("slow")
    env.card("fast")
    env.card("new", pricing={"per_call": 0.001})
    env.card("newer")
    env.task("slow", "fast", "new", "newer", strategy="latency")
    router = env.app.models.router
    router.observe("slow@1", 800.0)
    router.observe("fast@1", 30.0)
    # Two unmeasured deployments: the cheaper one is measured first, then the other.
    assert await env.run() == "newer says: hello"
    assert "newer@1" in router.latency
    assert await env.run() == "new says: hello"
    router.latency["new@1"] = router.latency["newer@1"] = 5000.0
    assert await env.run() == "fast says: hello"
    for _ in range(20):
        router.observe("fast@1", 2000.0)  # fast got slow: the EWMA follows
    assert await env.run() == "slow says: hello"


async def test_a_deployment_whose_p95_breaks_the_slo_moves_behind_until_it_recovers(env):
    env.card("primary")
    env.card("backup")
    env.task("primary", "backup", slo_p95_ms=500.0)
    router = env.app.models.router
    for _ in range(router.min_samples - 1):
        router.observe("primary@1", 900.0)
    # Too few answers to judge: the plan's order stands.
    assert await env.run() == "primary says: hello"
    router.observe("primary@1", 900.0)  # the scripted answer above was instant: p95 stays
    for _ in range(router.min_samples):
        router.observe("primary@1", 900.0)
    assert router.p95("primary@1") == 900.0
    app = env.app

    @app.workflow
    async def digest(ctx: Context, text: str) -> str:
        out = await ctx.models.run("summarize", {"text": text})
        return str(out.summary)

    run = await app.start("digest", {"text": "hi"})
    assert await run.result(timeout=10) == "backup says: hi"
    # The effect record says why the plan's first choice did not lead.
    meta = json.loads((await app.effects(run.id))[0].meta)
    assert meta["deployment"] == "backup@1"
    assert meta["warnings"] == ["primary@1 moved behind: observed p95 900 ms > the SLO of 500 ms"]
    # A task without an SLO keeps the plan's order.
    env.task("primary", "backup", name="no-slo")
    assert await env.run(task="no-slo") == "primary says: hello"
    # Fast answers push the slow ones out of the window: it leads again.
    for _ in range(router.latency_window):
        router.observe("primary@1", 50.0)
    assert await env.run() == "primary says: hello"


async def test_when_every_deployment_breaks_the_slo_the_order_stands(env):
    env.card("a")
    env.card("b")
    env.task("a", "b", slo_p95_ms=100.0)
    router = env.app.models.router
    for _ in range(router.min_samples):
        router.observe("a@1", 300.0)
        router.observe("b@1", 200.0)
    assert await env.run() == "a says: hello"


async def test_canary_weight_splits_the_traffic(env):
    env.card("stable")
    env.card("canary")
    env.task(Candidate("stable", weight=90), Candidate("canary", weight=10))
    for _ in range(1000):
        await env.run()
    assert env.calls["stable"] + env.calls["canary"] == 1000
    assert 50 <= env.calls["canary"] <= 150, env.calls


async def test_a_canary_whose_breaker_is_open_gets_no_traffic(env):
    env.card("stable")
    env.card("canary")
    env.task(Candidate("stable", weight=50), Candidate("canary", weight=50))
    for _ in range(3):
        env.app.models.breakers.record_failure("canary@1")
    for _ in range(50):
        await env.run()
    assert env.calls == {"stable": 50}


# ---- shadow ----------------------------------------------------------------------------------


async def test_the_shadow_model_gets_the_traffic_but_the_caller_gets_the_primary_output(
    env, wait_until
):
    env.card("primary")
    env.card("shadow")
    env.task("primary", shadow="shadow")
    gate = env.provider.gates["shadow"] = asyncio.Event()
    # The shadow is stuck: the caller has its answer anyway.
    assert await env.run("one") == "primary says: one"
    await wait_until(lambda: env.calls["shadow"] == 1)
    gate.set()
    await env.app.models.router.drain()
    env.provider.next("shadow", ProviderUnavailable("shadow: HTTP 500"))
    assert await env.run("two") == "primary says: two"  # a failing shadow changes nothing
    await env.app.models.router.drain()
    assert env.calls == {"primary": 2, "shadow": 2}
    first, second = env.app.models.router.shadows
    assert (first.primary, first.shadow) == ("primary@1", "shadow@1")
    assert first.primary_output == Out(summary="primary says: one")
    # parsed as the task parses, so it compares with what the caller got
    assert (first.output, first.error) == (Out(summary="shadow says: one"), None)
    assert first.same is False
    assert second.error == "ProviderUnavailable: shadow: HTTP 500"
    by_model = {r["model"]: r for r in await usage_rows(env.app)}
    assert by_model["shadow"]["calls"] == 2  # metered like any call
    # Kept in the store for comparison, newest first.
    kept = await env.app.models.shadow_results("summarize")
    assert [(r["primary_model"], r["shadow_model"], r["same"]) for r in kept] == [
        ("primary@1", "shadow@1", False),
        ("primary@1", "shadow@1", False),
    ]
    assert kept[1]["output"] == {"summary": "shadow says: one"}
    assert kept[1]["primary_output"] == {"summary": "primary says: one"}
    assert kept[0]["output"] is None
    assert kept[0]["error"] == "ProviderUnavailable: shadow: HTTP 500"
    assert await env.app.models.shadow_results("other-task") == []


async def test_a_shadow_that_agrees_is_same_and_one_that_breaks_the_schema_is_an_error(env):
    env.card("primary")
    env.card("twin")
    env.task("primary", shadow="twin")
    env.provider.standing["primary"] = env.provider.standing["twin"] = "the same words"
    assert await env.run() == "the same words"
    await env.app.models.router.drain()
    env.provider.next("twin", "")  # Out.summary must not be empty
    assert await env.run() == "the same words"
    await env.app.models.router.drain()
    newest, oldest = await env.app.models.shadow_results(limit=10)
    assert oldest["same"] is True and oldest["error"] is None
    assert newest["same"] is False
    assert newest["error"].startswith("invalid output: summary: String should have at least")


# ---- output and input validation ------------------------------------------------------------


async def test_an_invalid_output_falls_back_to_the_next_candidate(env):
    env.card("a")
    env.card("b")
    env.task("a", "b")
    env.provider.standing["a"] = ""
    assert await env.run() == "b says: hello"
    env.provider.standing["b"] = ""
    with pytest.raises(InvalidModelOutput) as info:
        await env.run()
    message = str(info.value)
    assert "a@1: invalid output: summary: String should have at least 1 character" in message
    assert "b@1: invalid output: summary" in message
    assert env.calls == {"a": 2, "b": 2}


async def test_input_that_fails_the_contract_is_rejected_before_routing(env):
    env.card("a")
    env.task("a")
    with pytest.raises(InvalidInput, match=r"task 'summarize': text: Field required"):
        await env.app.models.run("summarize", {"txt": "hello"})
    with pytest.raises(InvalidInput, match="must be an object"):
        await env.app.models.run("summarize", "hello")
    with pytest.raises(ConfigError, match="no model task named 'summarise'"):
        await env.app.models.run("summarise", {"text": "hello"})
    assert env.calls == {}


# ---- inside workflows -----------------------------------------------------------------------


async def test_a_task_in_a_workflow_is_a_recorded_effect_not_repeated_on_replay(env, wait_status):
    env.card("a", pricing={"input_per_1k": 1.0, "output_per_1k": 2.0})
    env.card("b", pricing={"input_per_1k": 1.0, "output_per_1k": 2.0})
    env.task(Candidate("a", retries=0), "b")
    env.provider.next("a", ProviderUnavailable("a: HTTP 503"))
    app = env.app

    @app.workflow
    async def digest(ctx: Context, text: str) -> str:
        out = await ctx.models.run("summarize", {"text": text})
        assert isinstance(out, Out)  # typed on replay as well
        go = await ctx.wait_for("go")  # parks: the signal replays the run
        return out.summary + go

    run = await app.start("digest", {"text": "report"})
    await wait_status(app, run.id, "waiting")
    assert env.calls == {"a": 1, "b": 1}
    await app.signal(run.id, "go", "!")
    assert await run.result(timeout=10) == "b says: report!"
    assert env.calls == {"a": 1, "b": 1}  # the replay did not call a model

    effect = (await app.effects(run.id))[0]
    assert (effect.kind, effect.name, effect.status) == ("model", "summarize", "ok")
    assert json.loads(effect.output) == {"summary": "b says: report"}
    meta = json.loads(effect.meta)
    assert meta["model"] == "b" and meta["version"] == "1" and meta["deployment"] == "b@1"
    assert meta["usage"] == {
        "input_tokens": 7,
        "output_tokens": 3,
        "seconds": 0.0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert meta["cost"] == pytest.approx(0.007 + 0.006)
    assert meta["cached"] is False and meta["latency_ms"] >= 0
    first, second = meta["attempts"]
    assert first == {
        "model": "a@1",
        "error": "ProviderUnavailable: a: HTTP 503",
        "error_type": "ProviderUnavailable",
        "model_id": "a",
        "provider": "scripted",
        "kind": "summarize",
        "start": first["start"],
        "end": first["end"],
    }
    assert second == {
        "model": "b@1",
        "error": None,  # it served the call
        "model_id": "b",
        "provider": "scripted",
        "kind": "summarize",
        "start": second["start"],
        "end": second["end"],
    }
    # Each attempt's times, on the clock of the effect's record, within the effect.
    assert effect.started_at <= first["start"] <= first["end"] <= second["start"]
    assert second["start"] <= second["end"] <= effect.finished_at
    await app.models.flush_usage()
    rows = await app.store.fetch("usage_by_run", {"run_id": run.id})
    assert rows[0]["calls"] == 2  # both attempts metered, under the run


async def test_a_direct_model_call_in_a_workflow_is_recorded(env, wait_status):
    app = env.app
    app.models.add_card({"id": "chatty", "provider": "scripted", "aliases": ["chat"]})

    @app.workflow
    async def talk(ctx: Context, question: str) -> str:
        response = await ctx.models.call("chat", question, temperature=0)
        assert isinstance(response, ModelResponse)
        await ctx.wait_for("go")
        return response.output

    run = await app.start("talk", {"question": "why?"})
    await wait_status(app, run.id, "waiting")
    await app.signal(run.id, "go")
    assert await run.result(timeout=10) == "chatty says: why?"
    assert env.calls == {"chatty": 1}
    effect = (await app.effects(run.id))[0]
    assert (effect.kind, effect.name) == ("model", "call:chat")
    assert json.loads(effect.meta)["deployment"] == "chatty@1"


async def test_a_failed_routing_is_recorded_with_its_attempts_and_the_run_is_dead(env, wait_status):
    env.card("a")
    env.task(Candidate("a", retries=0))
    env.provider.standing["a"] = DeploymentUnusable("a: HTTP 401", status=401)
    app = env.app

    @app.workflow
    async def doomed(ctx: Context) -> str:
        out = await ctx.models.run("summarize", {"text": "x"})
        return out.summary

    run = await app.start("doomed", {})
    await wait_status(app, run.id, "dead")
    effect = (await app.effects(run.id))[0]
    assert effect.status == "error" and effect.attempt == 1  # permanent: not retried
    assert "NoRouteAvailable" in effect.error
    [attempt] = json.loads(effect.meta)["attempts"]
    assert (attempt["model"], attempt["error"]) == ("a@1", "DeploymentUnusable: a: HTTP 401")
    assert attempt["error_type"] == "DeploymentUnusable"


async def test_an_outage_is_retried_under_the_tasks_retry_then_the_run_is_dead(env, wait_status):
    env.card("a")
    env.task(Candidate("a", retries=0), retry=Retry(attempts=3, backoff=0.01, jitter=0.0))
    env.provider.standing["a"] = ProviderUnavailable("a: HTTP 500")
    app = env.app

    @app.workflow
    async def doomed(ctx: Context) -> str:
        out = await ctx.models.run("summarize", {"text": "x"})
        return out.summary

    run = await app.start("doomed", {})
    await wait_status(app, run.id, "dead")
    assert env.calls == {"a": 3}
    effect = (await app.effects(run.id))[0]
    assert (effect.status, effect.attempt) == ("error", 3)
    assert "ProviderUnavailable" in effect.error and "no model can serve" in effect.error
    retries = json.loads(effect.meta)["retries"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["retry_at"] > r["failed_at"] for r in retries)
    await app.models.flush_usage()
    rows = await app.store.fetch("usage_by_run", {"run_id": run.id})
    assert rows[0]["calls"] == 3  # each attempt metered once (with its retry's record)
    assert not usage_log(app.store)._held  # nothing left held in this process


async def test_a_calls_retry_overrides_the_tasks_and_the_default(env, wait_status):
    env.card("a")
    env.card("c", kind="chat")
    env.task(Candidate("a", retries=0), retry=Retry(attempts=4, backoff=0.01, jitter=0.0))
    env.provider.standing["a"] = ProviderUnavailable("a: HTTP 500")
    env.provider.standing["c"] = ProviderUnavailable("c: HTTP 500")
    app = env.app

    @app.workflow
    async def once(ctx: Context) -> str:
        try:
            await ctx.models.run("summarize", {"text": "x"}, retry=Retry(attempts=2, backoff=0))
        except ProviderUnavailable:
            pass
        try:
            await ctx.models.call("c", "hi", retry=Retry(attempts=1))
        except ProviderUnavailable as exc:
            return f"caught {exc.retry_after}"
        return "served"

    run = await app.start("once", {})
    assert await run.result(timeout=10) == "caught None"
    # 2 effect attempts of the task (its candidate: no retry), 1 of the call (the direct
    # call's candidate retries once in the router)
    assert env.calls == {"a": 2, "c": 2}
    assert MODEL_RETRY.attempts == 5


async def test_a_kernel_app_without_a_model_plane_says_so(store_url, wait_status):
    app = KernelApp(store=store_url)

    @app.workflow
    async def needs_models(ctx: Context) -> str:
        return await ctx.models.run("summarize", {"text": "x"})

    async with app:
        run = await app.start("needs_models", {})
        row = await wait_status(app, run.id, "failed")
    error = json.loads(row.error)
    assert error["type"] == "aiosys.errors.ConfigError"
    assert "from aiosys import App" in error["message"]


async def test_a_candidate_of_another_kind_serves_with_its_own_build_and_parse(env):
    app = env.app
    app.models.add_card({"id": "llm", "provider": "scripted", "kind": "chat"})
    env.card("extractive")  # kind summarize

    def chat(data: In) -> ModelRequest:
        return ModelRequest(messages=[{"role": "user", "content": f"Summarize: {data.text}"}])

    def as_summary(data: In) -> ModelRequest:
        return ModelRequest(kind="summarize", text=data.text)

    plan = RoutingPlan(
        [
            Candidate("llm", retries=0),
            Candidate(
                "extractive", build=as_summary, parse=lambda r: {"summary": r.output.split()[0]}
            ),
        ]
    )
    app.models.task("digest", input=In, output=Out, build=chat, parse=parse, plan=plan)
    env.task("llm", "extractive", name="no-override")
    env.provider.next("llm", ProviderUnavailable("llm: HTTP 500"))
    assert await env.run("report", task="digest") == "extractive"
    assert await env.run("report", task="digest") == "llm says: Summarize: report"
    env.provider.standing["extractive"] = ProviderRejected("unusable")
    with pytest.raises(ProviderRejected, match="unusable"):
        await env.run("x", task="no-override")
    env.provider.standing["extractive"] = DeploymentUnusable("down", status=404)
    with pytest.raises(NoRouteAvailable, match="a chat model cannot serve a summarize request"):
        await env.run("x", task="no-override")


class Vectors:
    """An embedding provider: texts that mention the weather point one way, others another."""

    name = "vectors"
    kinds = frozenset({"embed"})

    def __init__(self) -> None:
        self.calls = 0

    async def invoke(self, card, request: ModelRequest) -> ProviderResult:
        self.calls += 1
        output = [[1.0, 0.0] if "weather" in t else [0.0, 1.0] for t in request.texts]
        return ProviderResult(output=output)

    async def close(self) -> None:
        pass


async def test_cached_answers_come_from_the_chain_and_show_in_the_effect(env, wait_status):
    app = env.app
    vectors = Vectors()
    app.models.add_provider("vectors", vectors)
    app.models.add_card({"id": "embedder", "provider": "vectors", "kind": "embed"})
    env.card("a", pricing={"output_per_1k": 1.0})
    env.task("a", cache=CachePolicy(semantic=True))
    assert await env.run("the weather today") == "a says: the weather today"
    # A paraphrase is answered from the semantic cache, embedded by the catalog's embed card.
    assert await env.run("weather today?") == "a says: the weather today"
    assert vectors.calls == 2 and env.calls == {"a": 1}

    @app.workflow
    async def ask(ctx: Context, text: str) -> str:
        return (await ctx.models.run("summarize", {"text": text})).summary

    run = await app.start("ask", {"text": "the weather today"})
    assert await run.result(timeout=10) == "a says: the weather today"
    meta = json.loads((await app.effects(run.id))[0].meta)
    assert meta["cached"] is True and meta["cost"] == 0.0
    assert env.calls == {"a": 1}
