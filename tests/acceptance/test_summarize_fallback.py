"""Acceptance: a workflow's ``summarize`` task survives its primary model going down.

The primary is an OpenAI-compatible deployment, called with the real ``openai`` SDK over
HTTP, served by a local server that speaks OpenAI's wire format (tests/wire/); the fallback
is the offline extractive summarizer (a real model, no download). When the primary starts
answering 500s, summaries come from the fallback; after three failures its circuit breaker
opens and the primary gets no more requests; once the cooldown has passed (a fake clock: no
sleeping) one trial request goes through and, the primary healthy again, traffic returns.
Runs on both stores; every model call is a recorded effect whose meta says who answered.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field
from tests.wire.control import ok, server_error

from aiosys import App, Context
from aiosys.models.contracts import Candidate, RoutingPlan
from aiosys.models.links.breaker import Breakers
from aiosys.models.types import Message, ModelRequest, ModelResponse

pytestmark = pytest.mark.timeout(120)

CLAIM = (
    "The claim concerns water damage in the kitchen of a rented flat. "
    "The adjuster visited on Monday and photographed the floor. "
    "Water damage was found under the sink and across the kitchen floor. "
    "The weather that week was sunny. "
    "The policy covers water damage caused by burst pipes."
)


class Document(BaseModel):
    text: str = Field(min_length=1)


class Summary(BaseModel):
    summary: str = Field(min_length=1)


def ask_llm(doc: Document) -> ModelRequest:
    prompt = f"Summarize in one sentence: {doc.text}"
    return ModelRequest(messages=[Message(role="user", content=prompt)], params={"max_tokens": 64})


def extract(doc: Document) -> ModelRequest:
    return ModelRequest(kind="summarize", text=doc.text, params={"sentences": 1})


def summary_of(response: ModelResponse) -> dict[str, str]:
    return {"summary": response.output}


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_summaries_fall_back_while_the_primary_is_down_and_return_when_it_recovers(
    store_url, openai_server
):
    app = App(store=store_url)
    clock = FakeClock()
    app.models.breakers = Breakers(failure_threshold=3, cooldown=60.0, clock=clock)
    app.models.add_card(
        {
            "id": "gpt-summarizer",
            "provider": "openai",
            "provider_model": "gpt-4o-mini",
            "endpoint": openai_server.endpoint,
            "external": True,
            "timeout": 10,
            "pricing": {"input_per_1k": 0.15, "output_per_1k": 0.6},
            "aliases": ["production"],
        }
    )
    app.models.add_card(
        {"id": "extractive", "provider": "summarizer", "kind": "summarize", "owner": "claims"}
    )
    app.models.task(
        "summarize",
        input=Document,
        output=Summary,
        build=ask_llm,
        parse=summary_of,
        plan=RoutingPlan(
            [Candidate("production", retries=0), Candidate("extractive", build=extract)]
        ),
        slo_p95_ms=2000,
    )

    @app.workflow
    async def intake(ctx: Context, text: str) -> dict:
        summary = await ctx.models.run("summarize", {"text": text})
        return {"summary": summary.summary}

    async def summarize() -> tuple[str, dict]:
        run = await app.start("intake", {"text": CLAIM})
        result = await run.result(timeout=30)
        (effect,) = await app.effects(run.id)
        return result["summary"], json.loads(effect.meta)

    def primary_requests() -> int:
        return len(openai_server.requests)

    extractive = "Water damage was found under the sink and across the kitchen floor."
    async with app:
        # Healthy: the primary answers (the wire server echoes the prompt).
        text, meta = await summarize()
        assert text.startswith("echo: Summarize in one sentence: The claim concerns")
        assert meta["deployment"] == "gpt-summarizer@1" and meta["cost"] > 0
        assert meta["usage"]["input_tokens"] == 52  # as the server counted them
        assert primary_requests() == 1

        # The primary fails: every summary still arrives, from the fallback.
        openai_server.always(server_error(500))
        for n in range(3):
            text, meta = await summarize()
            assert text == extractive
            assert meta["model"] == "extractive"
            assert meta["attempts"][0]["model"] == "gpt-summarizer@1"
            assert "ProviderUnavailable" in meta["attempts"][0]["error"]
            assert primary_requests() == 2 + n
        assert app.models.breakers.state("gpt-summarizer@1") == "open"

        # Open: the primary is skipped without a request.
        for _ in range(3):
            text, meta = await summarize()
            assert text == extractive
            assert [(a["model"], a["error"]) for a in meta["attempts"]] == [("extractive@1", None)]
            assert meta["skipped"] == {"production (gpt-summarizer@1)": "open breaker"}
        assert primary_requests() == 4

        # Cooldown over, primary healthy again: one trial, then the primary is back.
        clock.now += 60
        openai_server.always(ok())
        assert app.models.breakers.state("gpt-summarizer@1") == "half_open"
        text, meta = await summarize()
        assert text.startswith("echo: ") and meta["model"] == "gpt-summarizer"
        assert app.models.breakers.state("gpt-summarizer@1") == "closed"
        text, meta = await summarize()
        assert meta["model"] == "gpt-summarizer"
        assert primary_requests() == 6
        assert openai_server.counts == {"ok": 3, "server_error": 3}

        await app.models.flush_usage()
        rows = await app.store.fetch("usage_by_model", {"tenant": "default", "since": 0})
        by_model = {r["model"]: r for r in rows}
        assert (by_model["gpt-summarizer"]["ok"], by_model["gpt-summarizer"]["errors"]) == (3, 3)
        assert by_model["extractive"]["ok"] == 6
