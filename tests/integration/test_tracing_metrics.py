"""The GenAI client metrics (gen_ai.client.operation.duration, gen_ai.client.token.usage) of
model calls, read with the SDK's InMemoryMetricReader: their attributes and values match the
calls' spans; a replayed call records nothing; no MeterProvider unless a reader is
configured. Both stores."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from tests.wire.control import ok, rejected
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.errors import ConfigError
from aiosys.observe.genai_metrics import DURATION_BUCKETS, TOKEN_BUCKETS

pytestmark = pytest.mark.timeout(60)


def model_app(store_url: str, wire: OpenAIWire, reader: InMemoryMetricReader | None) -> App:
    app = App(store=store_url, tracing=True, audit=False)
    if reader is not None:
        app.tracing.add_metric_reader(reader)
    app.models.add_card(
        {"id": "m", "provider": "openai", "provider_model": "wire-model", "endpoint": wire.endpoint}
    )

    @app.workflow
    async def ask(ctx: Context) -> str:
        out = await ctx.models.call("m", "hello there friend")
        try:
            await ctx.models.call("m", "refuse this one")
        except Exception as exc:  # the provider's 400, as the workflow gets it
            assert "400" in str(exc) or "rejected" in str(exc).lower(), exc
        await ctx.wait_for("go")
        return str(out.output)

    return app


def points(reader: InMemoryMetricReader) -> dict[str, list[HistogramDataPoint]]:
    """Metric name -> its data points (none recorded: an empty dict)."""
    data = reader.get_metrics_data()
    out: dict[str, list[HistogramDataPoint]] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)  # type: ignore[arg-type]
    return out


async def test_model_calls_record_genai_metrics_and_replays_record_none(
    store_url: str, start_wire_server: Any, wait_status: Any
) -> None:
    wire = start_wire_server(OpenAIWire)
    wire.next(ok(), rejected(400))  # the second call is refused: a permanent error
    reader = InMemoryMetricReader()
    first = model_app(store_url, wire, reader)
    async with first:
        run = await first.start("ask")
        await wait_status(first, run.id, "waiting")
        span, refused = [s for s in await first.trace(run.id) if s["kind"] == "model"]
    assert (span["status"], refused["status"]) == ("ok", "error")
    got = points(reader)
    assert set(got) == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
    a = span["attributes"]
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m",
        "gen_ai.response.model": a["gen_ai.response.model"],
    }
    durations = {p.attributes.get("error.type"): p for p in got["gen_ai.client.operation.duration"]}
    assert set(durations) == {None, refused["attributes"]["error.type"]}
    ok_point = durations[None]
    assert dict(ok_point.attributes) == common and ok_point.count == 1
    assert tuple(ok_point.explicit_bounds) == DURATION_BUCKETS
    assert 0 < ok_point.sum <= (span["end_ns"] - span["start_ns"]) / 1e9
    assert durations[refused["attributes"]["error.type"]].count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p for p in got["gen_ai.client.token.usage"]}
    assert set(tokens) == {"input", "output"}
    for kind in ("input", "output"):
        p = tokens[kind]
        assert {k: v for k, v in p.attributes.items() if k != "gen_ai.token.type"} == common
        assert (p.count, p.sum) == (1, a[f"gen_ai.usage.{kind}_tokens"])
        assert tuple(p.explicit_bounds) == TOKEN_BUCKETS
    assert len(wire.requests) == 2

    # Another app takes the run over: it replays both calls from their records (no request
    # reaches the provider) and records no measurement.
    again = InMemoryMetricReader()
    second = model_app(store_url, wire, again)
    async with second:
        await second.signal(run.id, "go", True)
        assert (await second.handle(run.id).result(timeout=20)).endswith("friend")
    assert len(wire.requests) == 2
    assert points(again) == {}


async def test_no_meter_provider_unless_a_reader_is_configured(
    store_url: str, start_wire_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    app = model_app(store_url, start_wire_server(OpenAIWire), None)
    async with app:
        assert app.tracing.metrics is None and app.tracing._meter_provider is None
    late = model_app(store_url, start_wire_server(OpenAIWire), InMemoryMetricReader())
    async with late:
        assert late.tracing.metrics is not None
        with pytest.raises(ConfigError, match="before the app opens"):
            late.tracing.add_metric_reader(InMemoryMetricReader())
