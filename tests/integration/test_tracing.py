"""Traces on both stores: one span per run, one child span per effect, checked with the SDK's
in-memory exporter and against the spans read back from the runs and effects rows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integration.tracespans import as_stored, stored_shape
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys import App, Context, PermanentError, Retry, TransientError
from aiosys.errors import InvalidInput
from aiosys.observe.traceids import effect_span_id, run_trace

pytestmark = pytest.mark.timeout(60)


def traced_app(store_url: str, **kw: Any) -> tuple[App, InMemorySpanExporter]:
    app = App(store=store_url, tracing=True, audit=False, **kw)
    exporter = InMemorySpanExporter()
    app.tracing.add_span_processor(SimpleSpanProcessor(exporter))
    failures: dict[str, int] = {}

    @app.step
    async def double(x: int) -> int:
        return 2 * x

    @app.step(retry=Retry(attempts=3, backoff=0.0))
    async def flaky(key: str) -> str:
        failures[key] = failures.get(key, 0) + 1
        if failures[key] == 1:
            raise TransientError("first try fails")
        return "ok"

    @app.step
    async def refuse() -> None:
        raise PermanentError("no")

    @app.workflow
    async def leaf(ctx: Context, x: int) -> int:
        return await double(x)

    @app.workflow
    async def tree(ctx: Context, x: int) -> int:
        y = await double(x)
        await flaky(ctx.run_id)
        try:
            await refuse()
        except PermanentError:
            pass
        await ctx.sleep(0.01)
        got = await ctx.wait_for("go", timeout=30)
        z = await ctx.child("leaf", {"x": y})
        return int(z) + int(got)

    return app, exporter


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    out = {s.name: s for s in spans}
    assert len(out) == len(spans), [s.name for s in spans]
    return out


async def test_a_run_is_one_trace_of_effect_spans_exported_and_stored(store_url, wait_status):
    app, exporter = traced_app(store_url)
    async with app:
        run = await app.start("tree", {"x": 3})
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "go", 1)
        assert await run.result(timeout=20) == 13
        stored = await app.trace(run.id)
    spans = exporter.get_finished_spans()
    ids = run_trace(run.id, None)
    mine = [s for s in spans if s.context.trace_id == ids.trace_id]
    assert len(mine) == len(spans)  # the child joined the parent's trace
    root = [s for s in mine if s.parent is None]
    assert [s.name for s in root] == ["run tree"]
    assert root[0].context.span_id == ids.span_id
    assert root[0].attributes["aiosys.run_id"] == run.id
    assert root[0].status.status_code is StatusCode.OK

    effects = [s for s in mine if s.parent is not None and s.parent.span_id == ids.span_id]
    named = by_name(effects)
    assert set(named) == {
        "step double",
        "step flaky",
        "step refuse",
        "sleep",
        "signal go",
        "child_start leaf",
        "child_result leaf",
    }
    flaky = named["step flaky"]
    assert flaky.status.status_code is StatusCode.OK
    retries = [e for e in flaky.events if e.name == "aiosys.retry"]
    assert [e.attributes["attempt"] for e in retries] == [1]
    assert "first try fails" in retries[0].attributes["error"]
    refuse = named["step refuse"]
    assert refuse.status.status_code is StatusCode.ERROR
    assert refuse.attributes["error.type"] == "PermanentError"
    assert "no" in (refuse.status.description or "")
    # The child run: its span is a child of the parent's child_start span; its step its own.
    child_run = [s for s in mine if s.name == "run leaf"]
    assert len(child_run) == 1
    assert child_run[0].parent.span_id == named["child_start leaf"].context.span_id
    child_step = [s for s in mine if s.parent and s.parent.span_id == child_run[0].context.span_id]
    assert [s.name for s in child_step] == ["step double"]
    assert len(mine) == 1 + 7 + 1 + 1

    # The store holds the run's span (from the runs row) and each effect span, same ids.
    assert stored[0]["name"] == "run tree" and stored[0]["parent_id"] is None
    assert stored[0]["span_id"] == f"{ids.span_id:016x}"
    rows = {r["name"]: r for r in stored[1:]}
    assert set(rows) == set(named)
    for name, span in named.items():
        assert rows[name]["span_id"] == f"{span.context.span_id:016x}"
        assert rows[name]["parent_id"] == f"{ids.span_id:016x}"
        assert rows[name]["status"] == ("error" if name == "step refuse" else "ok")
    assert [e["name"] for e in rows["step flaky"]["events"]] == ["aiosys.retry"]
    assert rows["step refuse"]["attributes"]["error.type"] == "PermanentError"
    # Exported and stored effect spans are the same spans: ids, times, attributes, events.
    for name, span in named.items():
        assert as_stored(span) == stored_shape(rows[name]), name
    assert rows["step flaky"]["start_ns"] < rows["step flaky"]["events"][0]["time_ns"]
    # A run's span is exported when it ends: the store's has its ids and status.
    exported_root = as_stored(root[0])
    assert {k: exported_root[k] for k in ("span_id", "trace_id", "parent_id", "name")} == {
        k: stored[0][k] for k in ("span_id", "trace_id", "parent_id", "name")
    }


async def test_a_span_costs_no_write_of_its_own(store_url):
    """A plain step's span is its effect record as the kernel writes it: nothing added to
    it, no other row; what a record does not say (a policy decision, a model call's GenAI
    attributes) goes in its meta, in the same write."""
    app, _ = traced_app(store_url)
    async with app:
        run = await app.start("leaf", {"x": 2})
        assert await run.result(timeout=10) == 4
        (effect,) = await app.store.list_effects(run.id)
        spans = await app.trace(run.id)
    # Nothing of the trace's in the record (lineage's entry, its inputs' hashes, is its own).
    assert effect.kind == "step" and set(json.loads(effect.meta or "{}")) <= {"lineage"}
    assert [s["name"] for s in spans] == ["run leaf", "step double"]
    assert spans[1]["start_ns"] == int(effect.started_at * 1e9)
    assert spans[1]["end_ns"] == int(effect.finished_at * 1e9)
    assert spans[1]["span_id"] == f"{effect_span_id(run.id, effect.seq):016x}"
    assert spans[1]["attributes"]["aiosys.worker"] == effect.worker


async def test_a_caller_traceparent_is_joined_and_a_bad_one_refused(store_url):
    app, exporter = traced_app(store_url)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with app:
        run = await app.start("leaf", {"x": 1}, traceparent=parent)
        assert await run.result(timeout=10) == 2
        with pytest.raises(InvalidInput, match="traceparent"):
            await app.start("leaf", {"x": 1}, traceparent="00-xyz")
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "run leaf"]
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{root.parent.span_id:016x}" == "b7ad6b7169203331"
    assert root.parent.is_remote


async def test_tracing_off_installs_nothing_and_the_trace_is_read_from_the_records(store_url):
    """Off, no interceptor runs and nothing is exported; the run's trace is still what its
    records say (the spans are the records)."""
    app = App(store=store_url, tracing=False, audit=False)
    exporter = InMemorySpanExporter()
    app.tracing.add_span_processor(SimpleSpanProcessor(exporter))

    @app.step
    async def one() -> int:
        return 1

    @app.workflow
    async def w(ctx: Context) -> int:
        return await one()

    async with app:
        run = await app.start("w")
        assert await run.result(timeout=10) == 1
        assert "trace" not in app.gate.names
        spans = await app.trace(run.id)
    assert [s["name"] for s in spans] == ["run w", "step one"]
    assert spans[1]["parent_id"] == spans[0]["span_id"]
    assert exporter.get_finished_spans() == ()


def test_runs_show_trace_draws_the_waterfall_and_json_gives_the_spans(store_url, wait_status):
    app, _ = traced_app(store_url)

    async def go() -> str:
        async with app:
            run = await app.start("tree", {"x": 1})
            await wait_status(app, run.id, "waiting")
            await app.signal(run.id, "go", 0)
            await run.result(timeout=20)
            return run.id

    run_id = asyncio.run(go())
    drawn = ok(aiosys("runs", "show", run_id, "--trace", "--store", store_url)).stdout
    lines = drawn.splitlines()
    assert "trace " + f"{run_trace(run_id, None).trace_id:032x}" in lines[0]
    names = [ln.split()[0:2] for ln in lines[2:] if ln.strip()]
    assert names[0] == ["run", "tree"]
    assert ["step", "flaky"] in names and ["signal", "go"] in names
    assert "error PermanentError: no" in drawn and "█" in drawn
    spans = json.loads(
        ok(aiosys("runs", "show", run_id, "--trace", "--json", "--store", store_url)).stdout
    )
    assert spans[0]["name"] == "run tree" and spans[0]["status"] == "ok"
    assert {s["parent_id"] for s in spans[1:]} == {spans[0]["span_id"]}
    assert reported_error(aiosys("runs", "show", "nope", "--trace", "--store", store_url))
