"""Traces: one OpenTelemetry span per run, one child span per effect (and per attempt of a
model call, under the call's).

- **The run's span** has ids derived from the run (``traceids``): every execution of the
  run, after a crash, a park or a move to another worker, makes its effect spans children of
  the same span in the same trace. The store keeps it as the runs row itself; it is exported
  once, when the run ends (``kernel.App.run_end_hooks``).
- **An effect's span** is its effect record (``observe.spans``): its id is derived from the run and
  the effect's number, its times, status and error are the record's. The gate's ``trace``
  interceptor, just inside the effect log (so a replayed effect, whose record is read back,
  makes none), makes the span current while the effect runs (a model provider's
  ``traceparent``, a child run, a step's own spans join it) and adds to the record's ``meta``
  what the record does not say: a model call's GenAI attributes (``genai``), its failed
  attempts and skipped candidates, the policy decisions (``add_event``). No write of its own:
  keeping spans in the store costs the hot path a few microseconds per effect.
- **A model call's attempts** (each try of a deployment: retries, fallbacks) are child spans
  of its span, read from the attempts the model plane keeps in the call's record (their
  start, end and error), with ids derived from the call's span id and their order: stored,
  exported and replayed like the call's span, at no cost of their own on the hot path.
- **Export**: ``provider`` is an SDK ``TracerProvider`` of this app. With a span processor
  (``add_span_processor``; ``export_from_env``: a ``BatchSpanProcessor`` of an OTLP/HTTP
  exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), each effect's span is made an SDK
  span when its record has committed (``EffectCall.on_recorded``), from that record, by the
  same functions that read spans back from the store: the same ids and contents. A parked
  wait's span, which the interceptor does not see end, is exported from ``Gate.wait_hooks``.
  A direct effect (outside any run: no record) is an SDK span of the current trace.
- **Metrics**: a model call's ``gen_ai.client.operation.duration`` and
  ``gen_ai.client.token.usage`` (``genai_metrics``), on an SDK ``MeterProvider`` made only
  when a metric reader is configured (``add_metric_reader``; an OTLP/HTTP one from the
  environment like spans).
- Switched off (``TracingSettings``), the interceptor is not installed: it costs nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property, partial
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, Tracer

from ..errors import ConfigError
from ..kernel.gate import EffectCall, Next
from ..kernel.interceptors.effect_log import WRITTEN
from ..store.base import Finish, RunRow, now
from . import genai
from .export import ForcedIds, export_span
from .genai_metrics import GenAIMetrics
from .settings import TracingSettings
from .spans import ATTEMPT, SPAN, UNTRACED, effect_spans, run_span, span_name
from .traceids import SAMPLED, effect_span_id, format_traceparent, run_trace

_EVENTS = "trace_events"  # call.meta: the events added to the effect's span (add_event)


class Tracing:
    """The traces of one app: ``app.tracing``."""

    def __init__(self, settings: TracingSettings | Callable[[], TracingSettings]) -> None:
        """``settings``, or how to get them: resolved on first use (when the app opens)."""
        self._settings = settings
        self.exporting = False  # a span processor was added: spans go to the SDK too
        self._metric_readers: list[MetricReader] = []
        self._meter_provider: MeterProvider | None = None
        #: The GenAI metrics, when a metric reader is configured (``open``); else None.
        self.metrics: GenAIMetrics | None = None

    @property
    def settings(self) -> TracingSettings:
        if not isinstance(self._settings, TracingSettings):
            self._settings = self._settings()
        return self._settings

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @cached_property
    def provider(self) -> TracerProvider:
        """This app's SDK provider, which exports (every span sampled; the resource from
        ``OTEL_*`` variables, ``service.name`` defaulting to ``aiosys``). Add processors with
        ``add_span_processor``, not on the provider itself: spans are only made for it once
        one is added."""
        return TracerProvider(sampler=ALWAYS_ON, resource=_resource(), id_generator=ForcedIds())

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Send every span (runs' and effects') to ``processor`` from now on (an SDK
        ``SpanProcessor``: ``BatchSpanProcessor(exporter)``, ``SimpleSpanProcessor``)."""
        self.provider.add_span_processor(processor)
        self.exporting = True

    def add_metric_reader(self, reader: MetricReader) -> None:
        """Record the GenAI metrics for ``reader`` (an SDK ``MetricReader``:
        ``PeriodicExportingMetricReader(exporter)``, ``InMemoryMetricReader``). Before the
        app opens (the ``MeterProvider`` is made then): ``ConfigError`` after."""
        if self._meter_provider is not None:
            raise ConfigError("add metric readers to app.tracing before the app opens")
        self._metric_readers.append(reader)

    def open(self) -> None:
        """Install the exporters the environment asks for (``export_from_env``) and, when a
        metric reader is configured, the ``MeterProvider`` of the GenAI metrics."""
        self.export_from_env()
        if self._metric_readers and self._meter_provider is None:
            self._meter_provider = MeterProvider(
                metric_readers=self._metric_readers, resource=_resource()
            )
            self.metrics = GenAIMetrics(self._meter_provider.get_meter("aiosys"))

    def export_from_env(self) -> None:
        """With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``,
        ``..._METRICS_ENDPOINT``) set, export spans and metrics by OTLP/HTTP (spans in
        batches, metrics every ``OTEL_METRIC_EXPORT_INTERVAL`` ms); the exporters read the
        other ``OTEL_EXPORTER_OTLP_*`` settings (headers, timeout, compression).
        ``OTEL_TRACES_EXPORTER=none`` / ``OTEL_METRICS_EXPORTER=none`` turn either off."""
        if _otlp("TRACES"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if _otlp("METRICS") and self._meter_provider is None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            self.add_metric_reader(PeriodicExportingMetricReader(OTLPMetricExporter()))

    @cached_property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("aiosys")

    def shutdown(self) -> None:
        """Export what is queued and stop the exporters (the app's close)."""
        if "provider" in self.__dict__:
            self.provider.shutdown()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()

    # ---- the run's span -----------------------------------------------------------------

    def run_ended(self, run: RunRow, finish: Finish) -> None:
        """Export the run's span (``kernel.App.run_end_hooks``), as the store will read it
        back: ``run <workflow>``, from ``created_at`` to now, status ERROR unless it
        succeeded."""
        if self.exporting:
            t = now()
            ended = replace(run, status=finish.status, error=finish.error, finished_at=t)
            export_span(self.tracer, run_span(ended, t))

    # ---- effect spans -------------------------------------------------------------------

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        """The gate's ``trace`` interceptor (just inside the effect log)."""
        ex = call.run_execution
        if ex is None:
            return await self._direct(call, next)
        if call.kind in UNTRACED:
            return await next(call)
        run = ex.run
        ids = run_trace(run.id, run.traceparent)
        ctx = SpanContext(ids.trace_id, effect_span_id(run.id, call.seq), False, SAMPLED)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(ctx)))
        t0 = time.perf_counter()
        try:
            out = await next(call)
        except Exception as exc:
            self._keep(call, exc, None, t0)
            raise
        # ``Parked`` (a BaseException): the wait goes on, its span exported by
        # ``wait_ended``; anything else (an unwind, a cancel) leaves no record, so no span.
        finally:
            otel_context.detach(token)
        if call.kind == "model" or self.exporting or _EVENTS in call.meta:
            self._keep(call, None, out, t0)  # else (a plain step) nothing to add: its record
        return out

    def _keep(self, call: EffectCall, error: BaseException | None, out: Any, t0: float) -> None:
        """Put what the record does not say in its meta; export it once committed; a model
        call's metrics."""
        extra = self._extras(call, error, out)
        if extra and call.kind == "model":
            self._measure(extra, error, t0)
        if extra:
            call.meta["record"] = {**(call.meta.get("record") or {}), SPAN: extra}
        if self.exporting:
            call.on_recorded.append(partial(self._export_record, call))

    def _extras(
        self, call: EffectCall, error: BaseException | None, out: Any
    ) -> dict[str, Any] | None:
        events: list[dict[str, Any]] | None = call.meta.get(_EVENTS)
        if call.kind != "model":
            return {"events": events} if events else None
        record = call.meta.get("record")
        attrs = genai.model_attributes(call.params, call.name, record)
        if self.settings.content and error is None:
            redacted = call.meta.get("redacted_request")  # governance.redaction_gate.SENT
            attrs.update(genai.content_attributes(call.params, out, redacted))
        at = time.time_ns()
        events = [
            *(events or ()),
            *({"name": n, "time_ns": at, "attributes": a} for n, a in genai.model_events(record)),
        ]
        extra: dict[str, Any] = {"name": genai.span_name(call.params, call.name)}
        extra["attributes"] = attrs
        if events:
            extra["events"] = events
        return extra

    def _measure(self, extra: dict[str, Any], error: BaseException | None, t0: float) -> None:
        if self.metrics is not None:
            error_type = None if error is None else type(error).__qualname__
            self.metrics.record(extra["attributes"], time.perf_counter() - t0, error_type)

    def wait_ended(self, call: EffectCall, since: float, error: BaseException | None) -> None:
        """``Gate.wait_hooks``: a parked wait ended (``since``: when it began, Unix s); its
        span is exported once its record has committed."""
        if self.exporting and call.run_execution is not None:
            call.on_recorded.append(partial(self._export_record, call))

    def _export_record(self, call: EffectCall, committed: bool) -> None:
        row = call.meta.get(WRITTEN)
        if not committed or row is None or row.status == "pending":
            return
        ex = call.execution
        row = replace(row, worker=ex.owner, epoch=ex.epoch)  # as the store keeps it
        for span in effect_spans(ex.run, row, now()):  # and a model call's attempts
            export_span(self.tracer, span)

    def add_event(self, call: EffectCall | None, name: str, attributes: Mapping[str, Any]) -> None:
        """An event on ``call``'s span, now (the composition root hands policy decisions
        here): kept with the effect's record. Values other than text, numbers, booleans and
        lists of text are kept as text; None values are left out."""
        if call is None:
            return
        attrs = {k: _attribute(v) for k, v in attributes.items() if v is not None}
        event = {"name": name, "time_ns": time.time_ns(), "attributes": attrs}
        call.meta.setdefault(_EVENTS, []).append(event)

    # ---- direct effects (outside any run) -------------------------------------------------

    async def _direct(self, call: EffectCall, next: Next) -> Any:
        """A direct effect: no record, so nothing stored; an SDK span of the current trace
        when spans are exported, a model call's metrics when they are recorded."""
        measured = call.kind == "model" and self.metrics is not None
        if call.kind in UNTRACED or not (self.exporting or measured):
            return await next(call)
        span, token = None, None
        if self.exporting:
            attrs = {"aiosys.effect.kind": call.kind, "aiosys.effect.name": call.name}
            span = self.tracer.start_span(span_name(call.kind, call.name), attributes=attrs)
            token = otel_context.attach(trace.set_span_in_context(span))
        t0 = time.perf_counter()
        try:
            out = await next(call)
        except Exception as exc:
            self._end_direct(span, call, exc, None, t0)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        self._end_direct(span, call, None, out, t0)
        return out

    def _end_direct(
        self,
        span: trace.Span | None,
        call: EffectCall,
        error: BaseException | None,
        out: Any,
        t0: float,
    ) -> None:
        extra = self._extras(call, error, out) or {}
        if call.kind == "model":
            self._measure(extra, error, t0)
        if span is None:
            return
        if extra.get("name"):
            span.update_name(extra["name"])
        span.set_attributes(extra.get("attributes") or {})
        for e in extra.get("events") or ():
            span.add_event(e["name"], e["attributes"], timestamp=e["time_ns"])
        if error is None:
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_attribute("error.type", type(error).__qualname__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
        if call.kind == "model":
            self._export_attempts(span.get_span_context(), call.meta.get("record"))
        span.end()

    def _export_attempts(self, parent: SpanContext, record: dict[str, Any] | None) -> None:
        """A direct model call's attempts, as children of its span (random ids: nothing
        stored will be read back)."""
        for child in genai.attempt_spans(record):
            span_id = self.provider.id_generator.generate_span_id()
            child |= {"trace_id": f"{parent.trace_id:032x}", "span_id": f"{span_id:016x}"}
            child |= {"parent_id": f"{parent.span_id:016x}", "kind": ATTEMPT}
            export_span(self.tracer, child)

    def current_traceparent(self) -> str | None:
        """The W3C traceparent of the current OpenTelemetry span (of any provider), if any:
        the trace a run started now joins."""
        ctx = trace.get_current_span().get_span_context()
        return format_traceparent(ctx) if ctx.is_valid else None


def _resource() -> Resource:
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "aiosys")})


def _otlp(signal: str) -> bool:
    """Whether the environment asks for OTLP export of ``signal`` (TRACES, METRICS)."""
    env = os.environ
    if env.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def _attribute(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [str(v) for v in value]
    return str(value)
