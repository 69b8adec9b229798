"""Streamed model calls (``app.models.stream``) against a local server speaking OpenAI's wire
format, on both stores: pieces reach the caller as the server sends them; the router falls
back before the first piece and never after it; a stream is metered however it ends (the
server's usage, or the estimate of what arrived when it broke or the caller left).
"""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from pydantic import BaseModel
from tests.wire.control import cut, server_error
from tests.wire.openai_server import OpenAIWire
from tests.wire.serve import serve_here

from aiosys import App, Context
from aiosys.errors import ModelNotFound, ProviderUnavailable
from aiosys.models.contracts import RoutingPlan
from aiosys.models.links.budget import Budget
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.tokens import count_tokens, estimate_request_tokens
from aiosys.models.types import Message, ModelRequest

pytestmark = pytest.mark.timeout(60)


class Anything(BaseModel):
    pass


def chat_task(app: App, *candidates: str) -> None:
    """A task whose plan a call names as its model: its build and parse are never used."""
    app.models.task(
        "chat-task",
        input=Anything,
        output=Anything,
        build=lambda _: ModelRequest(),
        parse=lambda r: {},
        plan=RoutingPlan(list(candidates)),
    )


PRICING = {"input_per_1k": 1.0, "output_per_1k": 2.0}


def card(wire, id: str = "chat", **extra):
    return {
        "id": id,
        "provider": "openai",
        "provider_model": "gpt-wire",
        "endpoint": wire.endpoint,
        "timeout": 10.0,
        "pricing": PRICING,
        **extra,
    }


async def usage_rows(app: App) -> list[dict]:
    await app.models.flush_usage()
    rows = await app.store.fetch("usage_by_model", {"tenant": "default", "since": 0.0})
    return rows


async def audit_records(app: App) -> list[dict]:
    out = io.StringIO()
    await app.audit.export(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    bodies = [json.loads(r["body"]) for r in lines if r.get("type") == "record"]
    return [b for b in bodies if b["action"] == "model"]


@pytest.fixture
async def here():
    """An OpenAI wire server in the test's own loop (its stream_gate is an asyncio.Event)."""
    wire = OpenAIWire()
    async with serve_here(wire.app) as base_url:
        wire.base_url = base_url
        yield wire


async def test_pieces_reach_the_caller_before_the_server_sends_the_next(store_url, here):
    gate = asyncio.Event()
    here.stream_gate = gate  # the server waits for it after its first word
    app = App(store=store_url)
    app.models.add_card(card(here))
    seen: list[str] = []
    async with app, asyncio.timeout(20):
        async with app.models.stream("chat", "one two three") as stream:
            async for text in stream:
                if not seen:
                    assert not gate.is_set()  # the server holds word 2 until we saw word 1
                    gate.set()
                seen.append(text)
        response = stream.response
        [row] = await usage_rows(app)
    assert "".join(seen) == "echo: one two three" == response.output
    assert seen[:2] == ["echo:", " one"]
    sent = here.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    # The server's own usage (its last chunk): 3 prompt words, 4 answer words.
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)
    assert response.cost == pytest.approx(3 / 1000 * 1.0 + 4 / 1000 * 2.0)
    assert response.finish_reason == "stop" and response.model == "chat"
    assert (row["ok"], row["input_tokens"], row["output_tokens"]) == (1, 3, 4)
    assert float(row["cost"]) == pytest.approx(response.cost)


async def test_a_task_named_as_the_model_falls_back_before_the_first_piece(
    store_url, openai_server, start_wire_server
):
    backup = start_wire_server(OpenAIWire)
    openai_server.always(server_error(503))
    app = App(store=store_url)
    app.models.add_card(card(openai_server, "primary"))
    app.models.add_card(card(backup, "backup"))
    chat_task(app, "primary", "backup")
    async with app:
        async with app.models.stream("chat-task", "hello") as stream:
            pieces = [text async for text in stream]
        plain = await app.models.call("chat-task", "hello again")
    assert "".join(pieces) == "echo: hello" and stream.response.model == "backup"
    assert plain.output == "echo: hello again" and plain.model == "backup"
    assert openai_server.counts["server_error"] >= 2  # both calls tried the primary first


async def test_a_stream_cut_after_its_first_piece_is_not_replaced_and_is_metered(
    store_url, here, start_wire_server
):
    backup = start_wire_server(OpenAIWire)
    here.next(cut(after=1))  # "echo:" arrives, then the connection drops
    app = App(store=store_url)
    app.models.add_card(card(here, "primary"))
    app.models.add_card(card(backup, "backup"))
    chat_task(app, "primary", "backup")
    pieces: list[str] = []
    async with app:
        async with app.models.stream("chat-task", "hello world") as stream:
            with pytest.raises(ProviderUnavailable, match="primary@1"):
                async for text in stream:
                    pieces.append(text)
        rows = {r["model"]: r for r in await usage_rows(app)}
        [record] = await audit_records(app)
    assert pieces == ["echo:"]
    assert backup.requests == []  # text from the primary reached the caller: no fallback
    sent = ModelRequest(messages=[Message(role="user", content="hello world")])
    row = rows["primary"]
    assert (row["errors"], row["input_tokens"]) == (1, estimate_request_tokens(sent))
    assert row["output_tokens"] == count_tokens("echo:") > 0
    assert float(row["cost"]) > 0
    assert record["outcome"] == "error:ProviderUnavailable"


async def test_a_caller_that_leaves_a_stream_has_it_metered_and_audited_as_cancelled(
    store_url, here
):
    here.stream_gate = asyncio.Event()  # never set: the server stalls after its first word
    app = App(store=store_url)
    app.models.add_card(card(here))
    app.models.budgets.add(Budget("tenant", "default", limit=100.0))  # hard: reserves
    async with app, asyncio.timeout(20):
        async with app.models.stream("chat", "stay a while") as stream:
            first = await anext(stream)
        # Leaving the block cancelled the call and waited for it: metered already.
        await here.abandoned.wait()  # and the server's stream was closed
        [row] = await usage_rows(app)
        [record] = await audit_records(app)
        [held] = await app.store.fetch("reserved_by_tenant", {"tenant": "default", "now": 0.0})
    assert first == "echo:"
    # One call, neither ok nor an error: cancelled, with what arrived priced.
    assert (row["calls"], row["ok"], row["errors"], row["denied"]) == (1, 0, 0, 0)
    assert row["output_tokens"] == count_tokens("echo:") and float(row["cost"]) > 0
    assert record["outcome"] == "cancelled"
    assert float(held["amount"]) == 0  # the cancelled row settled the budget's reservation


async def test_a_model_that_cannot_stream_arrives_in_one_piece(store_url):
    register_callable("shout", lambda messages: messages[-1].content.upper())
    app = App(store=store_url)
    app.models.add_card({"id": "shout", "provider": "local"})
    try:
        async with app:
            async with app.models.stream("shout", "quiet please") as stream:
                pieces = [text async for text in stream]
            with pytest.raises(ModelNotFound):
                async with app.models.stream("nothing-by-that-name", "hi"):
                    pass
    finally:
        unregister_callable("shout")
    assert pieces == ["QUIET PLEASE"] and stream.response.output == "QUIET PLEASE"


async def test_a_workflow_call_may_name_a_task(store_url, openai_server):
    app = App(store=store_url)
    app.models.add_card(card(openai_server, "primary"))
    chat_task(app, "primary")

    @app.workflow
    async def ask(ctx: Context, text: str) -> str:
        response = await ctx.models.call("chat-task", text)
        return f"{response.model}: {response.output}"

    async with app:
        run = await app.start("ask", {"text": "by plan"})
        assert await run.result(timeout=20) == "primary: echo: by plan"
        [effect] = await app.effects(run.id)
    assert effect.name == "call:chat-task" and len(openai_server.requests) == 1
