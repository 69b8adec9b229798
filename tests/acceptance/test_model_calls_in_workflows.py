"""Acceptance: model calls in workflows go through the official SDKs to servers speaking the
real wire formats, and what the effect records (usage, cost) is what the server reported.

A hard budget stops the call that would exceed it before it is sent: the server never sees
it, and the run ends ``dead`` with ``BudgetExceeded`` (resumable once the budget allows).
Runs on both stores.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.wire.anthropic_server import AnthropicWire
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context, RunFailed
from aiosys.models.catalog import ModelCard
from aiosys.models.links.budget import Budget
from aiosys.models.links.metering import usage_log
from aiosys.models.tokens import estimate_cost
from aiosys.models.types import Message, ModelRequest
from aiosys.store import open_store

pytestmark = pytest.mark.timeout(120)

QUESTION = "one two three four"  # 4 words: the servers count whitespace-separated words


def model_effect(effects: list[Any]) -> dict[str, Any]:
    (effect,) = [e for e in effects if e.kind == "model"]
    assert effect.status == "ok", effect.error
    meta: dict[str, Any] = json.loads(effect.meta)
    return meta


def gpt_card(server: OpenAIWire, output_per_1k: float) -> dict[str, Any]:
    """An OpenAI card on the wire server, 0.5 per 1k input tokens."""
    return {
        "id": "wire-gpt",
        "provider": "openai",
        "endpoint": server.endpoint,
        "pricing": {"input_per_1k": 0.5, "output_per_1k": output_per_1k},
    }


def build_app(store_url: str, card: dict[str, Any], max_tokens: int = 16) -> App:
    app = App(store=store_url)
    app.models.add_card(card)

    @app.workflow()
    async def ask(ctx: Context, question: str) -> str:
        response = await ctx.models.call(
            card["id"], [{"role": "user", "content": question}], max_tokens=max_tokens
        )
        return str(response.output)

    return app


async def test_openai_sdk_usage_and_cost_on_the_effect_match_the_server(
    store_url: str, openai_server: OpenAIWire
) -> None:
    card = {
        "id": "wire-gpt",
        "provider": "openai",
        "endpoint": openai_server.endpoint,
        "provider_model": "gpt-wire",
        "external": True,
        "pricing": {"input_per_1k": 0.5, "output_per_1k": 1.5},
    }
    app = build_app(store_url, card)
    async with app:
        run = await app.start("ask", {"question": QUESTION})
        assert await run.result(timeout=60) == f"echo: {QUESTION}"
        meta = model_effect(await app.effects(run.id))
    (request,) = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-wire" and request.body["max_tokens"] == 16
    assert meta["model"] == "wire-gpt"
    # The server counted 4 prompt words and 5 completion words ("echo:" + 4).
    assert meta["usage"]["input_tokens"] == 4
    assert meta["usage"]["output_tokens"] == 5
    assert meta["cost"] == pytest.approx(4 / 1000 * 0.5 + 5 / 1000 * 1.5)


async def test_anthropic_sdk_usage_and_cost_on_the_effect_match_the_server(
    store_url: str, anthropic_server: AnthropicWire
) -> None:
    card = {
        "id": "wire-claude",
        "provider": "anthropic",
        "endpoint": anthropic_server.endpoint,
        "provider_model": "claude-wire",
        "external": True,
        "pricing": {"input_per_1k": 1.0, "output_per_1k": 5.0, "per_call": 0.001},
    }
    app = build_app(store_url, card)
    async with app:
        run = await app.start("ask", {"question": QUESTION})
        assert await run.result(timeout=60) == f"echo: {QUESTION}"
        meta = model_effect(await app.effects(run.id))
    (request,) = anthropic_server.requests
    assert request.path == "/v1/messages" and request.body["model"] == "claude-wire"
    assert meta["usage"]["input_tokens"] == 4
    assert meta["usage"]["output_tokens"] == 5
    assert meta["cost"] == pytest.approx(4 / 1000 * 1.0 + 5 / 1000 * 5.0 + 0.001)


async def test_the_usage_row_is_committed_with_the_model_effect_record(
    store_url: str, openai_server: OpenAIWire
) -> None:
    card = gpt_card(openai_server, output_per_1k=1.5)
    app = build_app(store_url, card)
    async with app:
        log = usage_log(app.store)
        log.delay = 3600.0  # nothing reaches the store by the write-behind path in this test
        run = await app.start("ask", {"question": QUESTION}, tenant="acme")
        await run.result(timeout=60)
        # Another process's view, at once: the row is there with the run's record.
        other = open_store(store_url)
        await other.open()
        try:
            [row] = await other.fetch("usage_rows_of_run", {"run_id": run.id})
        finally:
            await other.close()
        assert log.pending_spend("acme", None, 0.0) == 0  # nothing left held or pending
        [effect] = [e for e in await app.effects(run.id, tenant="acme") if e.kind == "model"]
    assert (row["seq"], row["status"], row["input_tokens"], row["output_tokens"]) == (
        effect.seq,
        "ok",
        4,
        5,
    )
    assert row["cost"] == pytest.approx(4 / 1000 * 0.5 + 5 / 1000 * 1.5)


async def test_a_budget_of_one_cent_stops_the_call_that_would_exceed_it_before_it_is_sent(
    store_url: str, openai_server: OpenAIWire
) -> None:
    # One call costs (4 + 5) / 1000 * 0.5 = 0.0045. Before sending, the budget link prices
    # the request's estimated tokens (input counted, max_tokens=5 output): 0.008. The first
    # call fits (0 + 0.008 <= 0.01); the second would not (0.0045 + 0.008 > 0.01).
    card = gpt_card(openai_server, output_per_1k=0.5)
    request = ModelRequest(
        messages=[Message(role="user", content=QUESTION)], params={"max_tokens": 5}
    )
    estimate = estimate_cost(ModelCard.model_validate(card), request)
    assert estimate <= 0.01 < 0.0045 + estimate
    app = build_app(store_url, card, max_tokens=5)
    app.models.budgets.add(Budget(scope="tenant", key="acme", limit=0.01, hard=True))
    async with app:
        first = await app.start("ask", {"question": QUESTION}, tenant="acme")
        await first.result(timeout=60)
        second = await app.start("ask", {"question": QUESTION}, tenant="acme")
        with pytest.raises(RunFailed) as failed:
            await second.result(timeout=60)
        other_tenant = await app.start("ask", {"question": QUESTION}, tenant="globex")
        await other_tenant.result(timeout=60)
    assert failed.value.status == "dead"
    assert failed.value.error["type"] == "aiosys.errors.BudgetExceeded"
    assert "0.01" in failed.value.error["message"]
    # The denied call never reached the server: one request per run that was allowed.
    assert len(openai_server.requests) == 2


async def test_a_soft_budget_lets_the_call_through_and_records_a_warning_on_the_effect(
    store_url: str, openai_server: OpenAIWire
) -> None:
    card = gpt_card(openai_server, output_per_1k=0.5)
    app = build_app(store_url, card, max_tokens=5)
    app.models.budgets.add(Budget(scope="workflow", key="ask", limit=0.001, hard=False))
    async with app:
        run = await app.start("ask", {"question": QUESTION})
        assert await run.result(timeout=60) == f"echo: {QUESTION}"
        meta = model_effect(await app.effects(run.id))
    (warning,) = meta["warnings"]
    assert "soft" in warning and "ask" in warning and "0.001" in warning
    assert len(openai_server.requests) == 1
