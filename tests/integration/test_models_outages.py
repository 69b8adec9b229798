"""Outages and faults of one deployment, against the local wire-format servers, for both
HTTP providers (OpenAI and Anthropic formats) and both stores:

- 401, 403, 404 (a revoked key, no access, a missing deployment) fall back to the next
  candidate and open that deployment's breaker;
- 400, 422 (a fault of the request) stop the call: no fallback, the breaker stays closed;
- 429, 5xx and timeouts fall back, and when no candidate is left the call fails with the
  transient ``ProviderUnavailable`` (never the permanent ``NoRouteAvailable``), which a
  workflow retries durably: a provider down with a 5 s retry-after parks the run and it
  succeeds after the outage, with the attempts and the wait on its timeline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel
from tests.wire.anthropic_server import AnthropicWire
from tests.wire.control import Behaviour, rate_limited, rejected, server_error, slow
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.errors import (
    DeploymentUnusable,
    NoRouteAvailable,
    ProviderRejected,
    ProviderUnavailable,
)
from aiosys.models.contracts import Candidate, RoutingPlan
from aiosys.models.types import Message, ModelRequest

pytestmark = pytest.mark.timeout(90)

WIRES = {"openai": OpenAIWire, "anthropic": AnthropicWire}


class In(BaseModel):
    text: str


class Out(BaseModel):
    answer: str


def build(data: In) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=data.text)])


def parse(response: Any) -> dict[str, Any]:
    return {"answer": response.output}


def add_card(app: App, id: str, provider: str, wire: Any, timeout: float = 5.0) -> None:
    app.models.add_card(
        {
            "id": id,
            "provider": provider,
            "provider_model": f"{provider}-wire",
            "endpoint": wire.endpoint,
            "timeout": timeout,
        }
    )


@pytest.fixture(params=sorted(WIRES))
async def pair(request, store_url, start_wire_server):
    """An app on the test's store with a ``primary`` and a ``backup`` deployment, each on
    its own wire server of one provider's format, and the task ``ask`` routed to them."""
    provider = request.param
    primary, backup = start_wire_server(WIRES[provider]), start_wire_server(WIRES[provider])
    app = App(store=store_url, lease=1.0)
    add_card(app, "primary", provider, primary, timeout=0.5)
    add_card(app, "backup", provider, backup)
    plan = RoutingPlan([Candidate("primary", retries=0), "backup"])
    app.models.task("ask", input=In, output=Out, build=build, parse=parse, plan=plan)
    app.models.task(
        "alone",
        input=In,
        output=Out,
        build=build,
        parse=parse,
        plan=RoutingPlan([Candidate("primary", retries=0)]),
    )
    async with app:
        yield app, primary, backup


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_fault_of_the_deployment_falls_back_and_opens_its_breaker(pair, status):
    app, primary, backup = pair
    primary.always(rejected(status))
    out = await app.models.run("ask", {"text": "hi"})
    assert out.answer.endswith("hi") and len(backup.requests) == 1
    assert app.models.breakers.state("primary@1") == "open"
    await app.models.run("ask", {"text": "again"})
    assert len(primary.requests) == 1  # open: not asked again
    with pytest.raises(ProviderUnavailable):  # only its open breaker left: it may come back
        await app.models.run("alone", {"text": "hi"})


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_deployment_fault_with_no_other_candidate_is_no_route(pair, status):
    app, primary, backup = pair
    primary.always(rejected(status))
    with pytest.raises(NoRouteAvailable, match=rf"DeploymentUnusable: .*HTTP {status}"):
        await app.models.run("alone", {"text": "hi"})
    assert len(primary.requests) == 1 and not backup.requests


@pytest.mark.parametrize("status", [400, 422])
async def test_a_fault_of_the_request_stops_without_fallback(pair, status):
    app, primary, backup = pair
    primary.always(rejected(status))
    with pytest.raises(ProviderRejected, match=rf"HTTP {status}") as info:
        await app.models.run("ask", {"text": "hi"})
    assert not isinstance(info.value, DeploymentUnusable)
    assert not backup.requests
    assert app.models.breakers.state("primary@1") == "closed"


TRANSIENT = {
    "429": rate_limited(retry_after=7),
    "500": server_error(500),
    "503": server_error(503),
    "timeout": slow(30),
}


@pytest.mark.parametrize("failure", sorted(TRANSIENT))
async def test_a_transient_failure_falls_back_then_is_transient_when_none_is_left(pair, failure):
    app, primary, backup = pair
    behaviour: Behaviour = TRANSIENT[failure]
    primary.always(behaviour)
    out = await app.models.run("ask", {"text": "hi"})
    assert out.answer.endswith("hi") and len(backup.requests) == 1
    with pytest.raises(ProviderUnavailable) as info:
        await app.models.run("alone", {"text": "hi"})
    assert not isinstance(info.value, NoRouteAvailable)
    assert "no model can serve task 'alone' now" in str(info.value)
    assert info.value.retry_after == (7.0 if failure == "429" else None)
    assert app.models.breakers.state("primary@1") == "closed"  # 2 failures, threshold 5


async def test_a_workflow_outlives_an_outage_with_a_durable_wait(
    store_url, openai_server, wait_status
):
    """The provider answers 429 with retry-after 5 s: the model effect fails transiently,
    the run parks (``waiting``, no worker slot) until the retry-after, and the second
    attempt succeeds; the effect's record shows both attempts and the wait."""
    app = App(store=store_url, lease=1.0)
    add_card(app, "gpt", "openai", openai_server)

    @app.workflow
    async def ask(ctx: Context) -> str:
        response = await ctx.models.call("gpt", "hello")
        return str(response.output)

    openai_server.next(rate_limited(retry_after=5))
    async with app:
        run = await app.start("ask")
        parked = await wait_status(app, run.id, "waiting")
        assert await run.result(timeout=30) == "echo: hello"
    assert parked.available_at is not None  # a durable timer: the store wakes it
    assert [r.status for r in openai_server.requests] == [429, 200]
    [effect] = await app.effects(run.id)
    assert (effect.status, effect.attempt) == ("ok", 2)
    meta = json.loads(effect.meta)
    [retry] = meta["retries"]
    assert retry["attempt"] == 1 and "HTTP 429" in retry["error"]
    assert retry["retry_at"] - retry["failed_at"] >= 5.0 - 1e-6  # the retry-after
    assert effect.finished_at - effect.started_at >= 5.0 - 1e-6
    [served] = meta["attempts"]  # the attempt that served (the 429 was the effect's retry)
    assert (served["model"], served["error"]) == ("gpt@1", None)


async def test_an_outage_wait_survives_a_restart_and_meters_each_attempt_once(
    store_url, openai_server, wait_status
):
    """The run parks for the provider's retry-after, its worker stops meanwhile: another
    app takes the run when the wait is over and makes attempt 2 (not 1 again); the usage of
    attempt 1 was committed with the retry's record, so nothing is lost or counted twice."""

    def make_app() -> App:
        app = App(store=store_url, lease=1.0)
        add_card(app, "gpt", "openai", openai_server)

        @app.workflow
        async def ask(ctx: Context) -> str:
            response = await ctx.models.call("gpt", "hello")
            return str(response.output)

        return app

    openai_server.next(rate_limited(retry_after=5))
    first = make_app()
    async with first:
        run = await first.start("ask")
        await wait_status(first, run.id, "waiting")
    second = make_app()
    async with second:
        assert await second.handle(run.id).result(timeout=30) == "echo: hello"
        [effect] = await second.effects(run.id)
        await second.models.flush_usage()
        rows = await second.store.fetch("usage_by_run", {"run_id": run.id})
    assert (effect.status, effect.attempt) == ("ok", 2)
    assert len(json.loads(effect.meta)["retries"]) == 1
    assert [r.status for r in openai_server.requests] == [429, 200]
    assert rows[0]["calls"] == 2
