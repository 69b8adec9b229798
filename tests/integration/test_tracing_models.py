"""Model-call spans: GenAI attributes, a fallback, a slow call, a policy denial and the
traceparent the HTTP provider received, with the SDK's in-memory exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integration.tracespans import as_stored, ask_task, stored_shape
from tests.wire.control import server_error, slow
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.errors import PolicyDenied
from aiosys.models.contracts import Candidate
from aiosys.observe.traceids import run_trace

pytestmark = pytest.mark.timeout(60)

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"


def card(id: str, wire: Any, external: bool = False) -> dict[str, Any]:
    return {
        "id": id,
        "provider": "openai",
        "provider_model": "openai-wire",
        "endpoint": wire.endpoint,
        "external": external,
    }


async def test_model_spans_follow_genai_and_show_fallback_slowness_and_denial(
    store_url, start_wire_server
):
    primary, backup = start_wire_server(OpenAIWire), start_wire_server(OpenAIWire)
    app = App(store=store_url, policies_dir=SHIPPED, tracing=True)
    exporter = InMemorySpanExporter()
    app.tracing.add_span_processor(SimpleSpanProcessor(exporter))
    app.models.add_card(card("primary", primary))
    app.models.add_card(card("backup", backup))
    app.models.add_card(card("cloud", backup, external=True))
    ask_task(app, [Candidate("primary", retries=0), "backup"])

    @app.workflow
    async def chat(ctx: Context) -> str:
        out = await ctx.models.run("ask", {"text": "hello"})
        try:
            await ctx.models.call("cloud", "the merger terms", classification="confidential")
        except PolicyDenied:
            pass
        return str(out.answer)

    primary.always(server_error(503))
    backup.next(slow(0.2))
    async with app:
        run = await app.start("chat")
        assert (await run.result(timeout=30)).endswith("hello")
        stored = {s["name"]: s for s in await app.trace(run.id)}
    ids = run_trace(run.id, None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    # The call's attempts are its child spans (tests/integration/test_tracing_attempts.py).
    assert set(spans) == {"run chat", "chat ask", "chat cloud", "chat primary", "chat backup"}
    ask = spans["chat ask"]
    assert ask.parent.span_id == ids.span_id and ask.context.trace_id == ids.trace_id
    a = ask.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "ask" and a["aiosys.task"] == "ask"
    assert a["gen_ai.response.model"] == "backup" and a["aiosys.model"] == "backup"
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["aiosys.fallback"] is True and a["aiosys.cache_hit"] is False
    assert isinstance(a["aiosys.cost"], float)
    assert "gen_ai.input.messages" not in a  # content is off unless the operator turns it on
    attempts = [e for e in ask.events if e.name == "aiosys.model.attempt"]
    assert [e.attributes["model"] for e in attempts] == ["primary@1"]
    assert "503" in attempts[0].attributes["error"]
    assert ask.status.status_code is StatusCode.OK
    assert ask.end_time - ask.start_time >= 200_000_000  # the slow answer, 0.2 s at least
    # The provider received the model span's traceparent (the backup answered the call).
    sent = backup.requests[0].headers["traceparent"]
    assert sent == f"00-{ids.trace_id:032x}-{ask.context.span_id:016x}-01"
    denied = spans["chat cloud"]
    assert denied.status.status_code is StatusCode.ERROR
    assert denied.attributes["error.type"] == "PolicyDenied"
    decision = [e for e in denied.events if e.name == "aiosys.policy.decision"]
    assert decision and decision[0].attributes["decision"] == "deny"
    assert len(backup.requests) == 1  # the denied call reached no model
    # The store has the same spans, attributes and events.
    assert stored["chat ask"]["attributes"]["gen_ai.response.model"] == "backup"
    assert stored["chat cloud"]["status"] == "error"
    assert "aiosys.policy.decision" in [e["name"] for e in stored["chat cloud"]["events"]]
    for name in ("chat ask", "chat cloud"):  # exported and stored: the same spans
        assert as_stored(spans[name]) == stored_shape(stored[name]), name
