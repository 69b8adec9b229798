"""A model call's attempts are child spans of its span: one per try of a deployment (a
fallback, a retry on the same deployment), with their own times, status and GenAI
attributes, exported (the SDK's in-memory exporter) and read back from the store (``app.trace``,
``aiosys runs show --trace``) with the same ids; a replayed call makes none anew. The
deployments are local servers speaking OpenAI's wire format; both stores."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integration.tracespans import as_stored, ask_task, stored_shape
from tests.unit.clirunner import aiosys, ok
from tests.wire.control import rate_limited, server_error
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.models.contracts import Candidate
from aiosys.observe.traceids import attempt_span_id, effect_span_id, run_trace

pytestmark = pytest.mark.timeout(60)


def model_app(
    store_url: str, plan: list[Any], tracing: bool = True, **wires: Any
) -> tuple[App, InMemorySpanExporter]:
    """An app whose task ``ask`` routes by ``plan`` over cards named after ``wires`` (each
    a local OpenAI-format server), exporting spans to an in-memory exporter; workflows
    ``ask_once`` (the task) and ``call_once`` (a direct call of the card ``backup``), each
    then waiting for the signal ``go``."""
    app = App(store=store_url, tracing=tracing, audit=False)
    exporter = InMemorySpanExporter()
    app.tracing.add_span_processor(SimpleSpanProcessor(exporter))
    for name, wire in wires.items():
        app.models.add_card(
            {"id": name, "provider": "openai", "provider_model": "m", "endpoint": wire.endpoint}
        )
    ask_task(app, plan)

    @app.workflow
    async def ask_once(ctx: Context) -> str:
        out = await ctx.models.run("ask", {"text": "hello"})
        return str(out.answer) + str(await ctx.wait_for("go"))

    @app.workflow
    async def call_once(ctx: Context) -> str:
        response = await ctx.models.call("backup", "hello")
        return str(response.output) + str(await ctx.wait_for("go"))

    return app, exporter


async def run_through(app: App, workflow: str, wait_status: Any) -> str:
    """Start ``workflow``, let it park on its signal, send it, return the run's id."""
    run = await app.start(workflow)
    await wait_status(app, run.id, "waiting")
    await app.signal(run.id, "go", "!")
    assert (await run.result(timeout=30)).endswith("hello!")
    return run.id


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """``parent``'s child spans, in the order they started."""
    found = [s for s in spans if s.parent and s.parent.span_id == parent.context.span_id]
    return sorted(found, key=lambda s: s.start_time)


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


async def test_a_fallback_is_two_attempt_spans_under_the_model_call(
    store_url, start_wire_server, wait_status
):
    primary, backup = start_wire_server(OpenAIWire), start_wire_server(OpenAIWire)
    primary.always(server_error(500))
    app, exporter = model_app(
        store_url, [Candidate("primary", retries=0), "backup"], primary=primary, backup=backup
    )
    async with app:
        run_id = await run_through(app, "ask_once", wait_status)
        stored = await app.trace(run_id)
    spans = list(exporter.get_finished_spans())
    ids = run_trace(run_id, None)
    call = one(spans, "chat ask")
    assert call.parent.span_id == ids.span_id
    assert call.context.span_id == effect_span_id(run_id, 1)
    tried = children(spans, call)
    assert [s.name for s in tried] == ["chat primary", "chat backup"]
    failed, served = tried
    # Ids derived from the run, the call's number and the attempt's: stable on re-export.
    assert [s.context.span_id for s in tried] == [attempt_span_id(run_id, 1, i) for i in (0, 1)]
    assert {s.context.trace_id for s in tried} == {ids.trace_id}
    assert len({s.context.span_id for s in spans}) == len(spans)
    # Each attempt has its own times, within the call's, one after the other.
    assert call.start_time <= failed.start_time < failed.end_time <= served.start_time
    assert served.start_time < served.end_time <= call.end_time
    # The failed attempt: ERROR, its error's class and message.
    assert failed.status.status_code is StatusCode.ERROR
    assert "ProviderUnavailable" in failed.status.description
    assert "500" in failed.status.description
    f = failed.attributes
    assert f["error.type"] == "ProviderUnavailable"
    assert f["gen_ai.operation.name"] == "chat" and f["gen_ai.provider.name"] == "openai"
    assert f["gen_ai.request.model"] == "primary" and f["aiosys.deployment"] == "primary@1"
    assert (f["aiosys.fallback_index"], f["aiosys.retry_index"]) == (0, 0)
    assert "gen_ai.response.model" not in f and "gen_ai.usage.input_tokens" not in f
    # The attempt that answered: OK, the answer's model, usage and finish reason.
    assert served.status.status_code is StatusCode.OK
    s = served.attributes
    assert "error.type" not in s
    assert s["gen_ai.operation.name"] == "chat" and s["gen_ai.provider.name"] == "openai"
    assert s["gen_ai.request.model"] == "backup" and s["gen_ai.response.model"] == "backup"
    assert s["aiosys.deployment"] == "backup@1"
    assert (s["aiosys.fallback_index"], s["aiosys.retry_index"]) == (1, 0)
    assert s["gen_ai.usage.input_tokens"] > 0 and s["gen_ai.usage.output_tokens"] > 0
    assert s["gen_ai.usage.input_tokens"] == call.attributes["gen_ai.usage.input_tokens"]
    assert s["gen_ai.response.finish_reasons"] == ("stop",)
    assert s["aiosys.cache_hit"] is False
    # The events the call's span had before attempts were spans are still there.
    assert [e.name for e in call.events] == ["aiosys.model.attempt"]
    # The store's trace: the same spans, the attempts right after the call they belong to.
    names = [x["name"] for x in stored]
    at = names.index("chat ask")
    assert names[at : at + 3] == ["chat ask", "chat primary", "chat backup"]
    by_id = {x["span_id"]: x for x in stored}
    assert len(by_id) == len(stored)
    for span in (call, failed, served):
        kept = by_id[f"{span.context.span_id:016x}"]
        assert as_stored(span) == stored_shape(kept), span.name
    assert [by_id[f"{x.context.span_id:016x}"]["kind"] for x in tried] == ["attempt"] * 2
    assert {by_id[f"{x.context.span_id:016x}"]["seq"] for x in tried} == {1}


def test_runs_show_trace_nests_the_attempts_under_the_model_call(
    store_url, start_wire_server, wait_status
):
    primary, backup = start_wire_server(OpenAIWire), start_wire_server(OpenAIWire)
    primary.always(server_error(503))
    app, _ = model_app(
        store_url, [Candidate("primary", retries=0), "backup"], primary=primary, backup=backup
    )

    async def go() -> str:
        async with app:
            return await run_through(app, "ask_once", wait_status)

    run_id = asyncio.run(go())
    spans = json.loads(
        ok(aiosys("runs", "show", run_id, "--trace", "--json", "--store", store_url)).stdout
    )
    [call] = [x for x in spans if x["name"] == "chat ask"]
    attempts = [x for x in spans if x["parent_id"] == call["span_id"]]
    assert [(x["name"], x["status"], x["kind"]) for x in attempts] == [
        ("chat primary", "error", "attempt"),
        ("chat backup", "ok", "attempt"),
    ]
    assert attempts[0]["attributes"]["error.type"] == "ProviderUnavailable"
    assert "503" in attempts[0]["error"]
    assert attempts[1]["attributes"]["gen_ai.response.model"] == "backup"
    for x in attempts:
        assert call["start_ns"] <= x["start_ns"] <= x["end_ns"] <= call["end_ns"]
    # The waterfall draws each attempt one level under the call.
    drawn = ok(aiosys("runs", "show", run_id, "--trace", "--store", store_url)).stdout
    rows = {
        ln.strip().split()[1]: ln for ln in drawn.splitlines() if ln.strip().startswith("chat ")
    }
    assert set(rows) == {"ask", "primary", "backup"}
    indent = {name: len(ln) - len(ln.lstrip()) for name, ln in rows.items()}
    assert indent["primary"] == indent["backup"] == indent["ask"] + 2
    assert "ProviderUnavail" in rows["primary"]


async def test_a_plain_call_has_exactly_one_attempt_span(store_url, openai_server, wait_status):
    app, exporter = model_app(store_url, ["backup"], backup=openai_server)
    async with app:
        run_id = await run_through(app, "call_once", wait_status)
        stored = await app.trace(run_id)
    spans = list(exporter.get_finished_spans())
    run_span = run_trace(run_id, None).span_id
    # A direct call's span is named after the model, as its attempt's.
    [call] = [s for s in spans if s.name == "chat backup" and s.parent.span_id == run_span]
    [attempt] = [s for s in spans if s.parent and s.parent.span_id == call.context.span_id]
    assert attempt.name == "chat backup" and attempt.status.status_code is StatusCode.OK
    assert attempt.context.span_id == attempt_span_id(run_id, 1, 0)
    assert call.start_time <= attempt.start_time < attempt.end_time <= call.end_time
    a = attempt.attributes
    assert (a["aiosys.fallback_index"], a["aiosys.retry_index"]) == (0, 0)
    assert a["gen_ai.response.model"] == "backup" and a["gen_ai.usage.output_tokens"] > 0
    kept = [x for x in stored if x["parent_id"] == f"{call.context.span_id:016x}"]
    assert [stored_shape(x) for x in kept] == [as_stored(attempt)]


async def test_a_retry_on_the_same_deployment_is_an_attempt_span_of_its_own(
    store_url, openai_server, wait_status
):
    openai_server.next(rate_limited(retry_after=0))  # then ok
    app, exporter = model_app(
        store_url, [Candidate("backup", retries=1, backoff=0.0)], backup=openai_server
    )
    async with app:
        run_id = await run_through(app, "ask_once", wait_status)
    spans = list(exporter.get_finished_spans())
    tried = children(spans, one(spans, "chat ask"))
    assert [s.name for s in tried] == ["chat backup", "chat backup"]
    assert [s.status.status_code for s in tried] == [StatusCode.ERROR, StatusCode.OK]
    assert [(s.attributes["aiosys.fallback_index"], s.attributes["aiosys.retry_index"])
            for s in tried] == [(0, 0), (0, 1)]  # fmt: skip
    assert "429" in tried[0].status.description
    assert tried[0].end_time <= tried[1].start_time
    assert [s.context.span_id for s in tried] == [attempt_span_id(run_id, 1, i) for i in (0, 1)]


async def test_a_replayed_model_call_makes_no_new_attempt_spans(
    store_url, start_wire_server, wait_status
):
    """The run parks after its model call; the app closes; another app (a restart) gets
    the signal and replays the run from its records: no model is called again and no span
    of the call or of its attempts is made again; the store's trace has each once."""
    primary, backup = start_wire_server(OpenAIWire), start_wire_server(OpenAIWire)
    primary.always(server_error(500))
    plan = [Candidate("primary", retries=0), "backup"]
    first, before = model_app(store_url, plan, primary=primary, backup=backup)
    async with first:
        run = await first.start("ask_once")
        await wait_status(first, run.id, "waiting")
    assert {s.name for s in before.get_finished_spans()} >= {"chat primary", "chat backup"}
    second, after = model_app(store_url, plan, primary=primary, backup=backup)
    async with second:
        await second.signal(run.id, "go", "!")
        assert await second.handle(run.id).result(timeout=30) == "echo: hello!"
        stored = await second.trace(run.id)
    assert (len(primary.requests), len(backup.requests)) == (1, 1)  # nothing called again
    assert sorted(s.name for s in after.get_finished_spans()) == ["run ask_once", "signal go"]
    names = [x["name"] for x in stored]
    assert names.count("chat primary") == names.count("chat backup") == 1
    assert len({x["span_id"] for x in stored}) == len(stored)


async def test_a_direct_model_call_outside_a_run_has_its_attempts_as_child_spans(
    store_url, start_wire_server
):
    primary, backup = start_wire_server(OpenAIWire), start_wire_server(OpenAIWire)
    primary.always(server_error(500))
    app, exporter = model_app(
        store_url, [Candidate("primary", retries=0), "backup"], primary=primary, backup=backup
    )
    async with app:
        out = await app.models.run("ask", {"text": "hello"})
    assert out.answer == "echo: hello"
    spans = list(exporter.get_finished_spans())
    call = one(spans, "chat ask")
    tried = children(spans, call)
    assert [(s.name, s.status.status_code) for s in tried] == [
        ("chat primary", StatusCode.ERROR),
        ("chat backup", StatusCode.OK),
    ]
    assert {s.context.trace_id for s in tried} == {call.context.trace_id}
    assert call.start_time <= tried[0].start_time and tried[1].end_time <= call.end_time


async def test_with_tracing_off_the_stored_trace_still_has_the_attempts(
    store_url, openai_server, wait_status
):
    """Off, nothing is exported, and the trace read from the records still shows the call's
    attempt (the model plane keeps its times in the call's record regardless)."""
    app, exporter = model_app(store_url, ["backup"], tracing=False, backup=openai_server)
    async with app:
        run_id = await run_through(app, "call_once", wait_status)
        stored = await app.trace(run_id)
    assert exporter.get_finished_spans() == ()
    [call] = [x for x in stored if x["kind"] == "model"]
    [attempt] = [x for x in stored if x["parent_id"] == call["span_id"]]
    assert attempt["name"] == "chat backup" and attempt["status"] == "ok"
