"""OTLP/HTTP export: with OTEL_EXPORTER_OTLP_ENDPOINT set, a local receiver (a tiny HTTP
server decoding the protobuf ExportTraceServiceRequest) gets the run's spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.tracespans import Receiver, otlp_receiver

from aiosys import App, Context
from aiosys.observe.traceids import run_trace

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as got:
        yield got


async def test_spans_are_exported_by_otlp_http_when_the_endpoint_is_set(
    store_url, receiver, monkeypatch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    app = App(store=store_url, tracing=True, audit=False)

    @app.step
    async def one() -> int:
        return 1

    @app.workflow
    async def w(ctx: Context) -> int:
        return await one() + await one()

    async with app:
        run = await app.start("w")
        assert await run.result(timeout=10) == 2
    # Closing the app flushed the batch processor.
    spans = receiver.spans()
    ids = run_trace(run.id, None)
    assert sorted(s.name for s in spans) == ["run w", "step one", "step one"]
    assert {s.trace_id.hex() for s in spans} == {f"{ids.trace_id:032x}"}
    root = next(s for s in spans if s.name == "run w")
    assert root.span_id.hex() == f"{ids.span_id:016x}" and root.parent_span_id == b""
    assert {s.parent_span_id.hex() for s in spans if s.name == "step one"} == {root.span_id.hex()}
    stored = {s["span_id"] for s in await app.trace(run.id)}
    assert {s.span_id.hex() for s in spans} == stored  # the same spans as the store keeps
    resource = receiver.requests[0].resource_spans[0].resource
    assert any(a.key == "service.name" for a in resource.attributes)
