"""Traces: one OpenTelemetry span per run, one child span per effect (the gate's ``trace``
interceptor), made with the official SDK.

- **The run's span** has ids derived from the run (``traceids``): every execution of the
  run, after a crash, a park or a move to another worker, makes its effect spans children of
  the same span in the same trace. It is exported once, when the run ends
  (``kernel.App.run_end_hooks``), from the run's ``created_at`` to its end; the store keeps
  it as the runs row itself.
- **Effect spans** (``step <name>``, ``<operation> <model>`` for model calls, ``sleep``,
  ``signal <name>``, ``child_start <workflow>``, ``child_result ...``) are made by the
  interceptor just inside the effect log, so a replayed effect (a recorded outcome) makes
  none. An effect that ends in an error has status ERROR, ``error.type`` and an exception
  event. Retries are span events (``aiosys.retry``: attempt, error, retry_at), and so are the
  model plane's failed attempts and skipped candidates and the policy decisions
  (``add_event``). Model calls carry the GenAI attributes (``genai``). Each span is written
  to the store (``spans``) in the same transaction as the effect's record
  (``EffectCall.also_write``): a crash keeps both or neither.
- A wait that parks (timer, signal, child) ends when the effect log records its end
  (``Gate.wait_hooks``), in this execution or, after an unwind, a later one.
- **Export**: ``provider`` is an SDK ``TracerProvider`` of this app; with
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, a ``BatchSpanProcessor``
  sends spans by OTLP/HTTP. Tests add their own processor (``provider.add_span_processor``).
- Switched off (``TracingSettings``), the interceptor is not installed: it costs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, Tracer

from ..kernel.control import Parked
from ..kernel.gate import EffectCall, Next
from ..store.base import Finish, RunRow
from . import genai
from .effect_span import EffectSpan
from .settings import TracingSettings
from .spans import run_attributes
from .traceids import SAMPLED, format_traceparent, run_trace

#: Effect kinds that make no span: the kernel's read of the clock.
UNTRACED = frozenset({"now"})
_SPAN = "trace_span"  # call.meta: the effect's span while it is open
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("aiosys_forced_ids", default=None)


class _Ids(RandomIdGenerator):
    """Random ids, except for a run's span, whose ids are derived from the run."""

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced is not None else super().generate_trace_id()


class Tracing:
    """The traces of one app: ``app.tracing``."""

    def __init__(self, settings: TracingSettings | Callable[[], TracingSettings]) -> None:
        """``settings``, or how to get them: resolved on first use (when the app opens)."""
        self._settings = settings
        self.exporting = False  # a span processor was added: spans go to the SDK too

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
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "aiosys")})
        return TracerProvider(sampler=ALWAYS_ON, resource=resource, id_generator=_Ids())

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Send every span (runs' and effects') to ``processor`` from now on (an SDK
        ``SpanProcessor``: ``BatchSpanProcessor(exporter)``, ``SimpleSpanProcessor``)."""
        self.provider.add_span_processor(processor)
        self.exporting = True

    def export_from_env(self) -> None:
        """With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, export by
        OTLP/HTTP in batches (the exporter reads its other ``OTEL_EXPORTER_OTLP_*``
        settings: headers, timeout, compression)."""
        env = os.environ
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

    @cached_property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("aiosys")

    def shutdown(self) -> None:
        """Export what is queued and stop the exporters (the app's close)."""
        if "provider" in self.__dict__:
            self.provider.shutdown()

    # ---- the run's span -----------------------------------------------------------------

    def run_ended(self, run: RunRow, finish: Finish) -> None:
        """Export the run's span (``kernel.App.run_end_hooks``): ``run <workflow>``, from
        ``created_at`` to now, status ERROR unless it succeeded."""
        ids = run_trace(run.id, run.traceparent)
        parent = otel_context.Context()
        if ids.parent_id is not None:
            remote = SpanContext(ids.trace_id, ids.parent_id, is_remote=True, trace_flags=SAMPLED)
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        token = _forced_ids.set((ids.trace_id, ids.span_id))
        try:
            span = self.tracer.start_span(
                f"run {run.workflow}",
                context=parent,
                start_time=int(run.created_at * 1e9),
                attributes=run_attributes(run, finish.status),
            )
        finally:
            _forced_ids.reset(token)
        if finish.status == "succeeded":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, _error_text(finish.error)))
        span.end()

    # ---- effect spans -------------------------------------------------------------------

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        """The gate's ``trace`` interceptor (just inside the effect log)."""
        if call.kind in UNTRACED:
            return await next(call)
        span = self._open(call)
        call.meta[_SPAN] = span
        token = otel_context.attach(trace.set_span_in_context(span.otel()))
        try:
            out = await next(call)
        except Parked:
            raise  # the wait goes on: ended by ``wait_ended``
        except Exception as exc:
            self._end(call, span, exc, None)
            raise
        # Anything else (an unwind, a cancel) leaves no record, so no span: it is not ended.
        finally:
            otel_context.detach(token)
        self._end(call, span, None, out)
        return out

    def _open(self, call: EffectCall, start_ns: int | None = None) -> EffectSpan:
        ex = call.run_execution
        if ex is not None:
            ids = run_trace(ex.run.id, ex.run.traceparent)
            trace_id, parent_id = ids.trace_id, ids.span_id
        else:  # a direct effect: a child of the caller's current span, if any
            current = trace.get_current_span().get_span_context()
            trace_id = current.trace_id if current.is_valid else _Ids().generate_trace_id()
            parent_id = current.span_id if current.is_valid else 0
        attrs: dict[str, Any] = {"aiosys.effect.kind": call.kind, "aiosys.effect.name": call.name}
        attrs["aiosys.effect.seq"] = call.seq
        return EffectSpan(_span_name(call), trace_id, parent_id, attrs, start_ns)

    def wait_ended(self, call: EffectCall, since: float, error: BaseException | None) -> None:
        """``Gate.wait_hooks``: a parked wait ended (``since``: when it began, Unix s)."""
        span = call.meta.get(_SPAN)
        if not isinstance(span, EffectSpan):  # the execution that began it was unwound
            span = self._open(call, int(since * 1e9))
        self._end(call, span, error, None)

    def add_event(self, call: EffectCall | None, name: str, attributes: Mapping[str, Any]) -> None:
        """An event on ``call``'s span while it is open (the composition root hands policy
        decisions here); nothing when it has none."""
        span = None if call is None else call.meta.get(_SPAN)
        if isinstance(span, EffectSpan) and span.is_recording():
            span.add_event(name, {k: v for k, v in attributes.items() if v is not None})

    def _end(
        self, call: EffectCall, span: EffectSpan, error: BaseException | None, out: Any
    ) -> None:
        call.meta.pop(_SPAN, None)
        for retry in call.meta.get("retries") or ():
            span.add_event(
                "aiosys.retry",
                {
                    "attempt": retry["attempt"],
                    "error": str(retry["error"]),
                    "retry_at": float(retry["retry_at"]),
                },
                timestamp=int(retry["failed_at"] * 1e9),
            )
        if call.kind == "model":
            record = call.meta.get("record")
            span.attributes.update(genai.model_attributes(call.params, call.name, record))
            for name, attrs in genai.model_events(record):
                span.add_event(name, attrs)
            if self.settings.content and error is None:
                span.attributes.update(genai.content_attributes(call.params, out))
        if error is not None:
            span.fail(error)
        span.end()
        if self.exporting:
            self._export(span)
        ex = call.run_execution
        if ex is not None:
            call.also_write("span_record", span.row(ex.run.id, call.seq, call.kind))

    def _export(self, span: EffectSpan) -> None:
        """The ended span, as an SDK span with the same ids, to the span processors."""
        parent = otel_context.Context()
        if span.parent_id:
            ctx = SpanContext(span.context.trace_id, span.parent_id, False, trace_flags=SAMPLED)
            parent = trace.set_span_in_context(NonRecordingSpan(ctx))
        token = _forced_ids.set((span.context.trace_id, span.context.span_id))
        try:
            sdk = self.tracer.start_span(
                span.name, context=parent, attributes=span.attributes, start_time=span.start_ns
            )
        finally:
            _forced_ids.reset(token)
        for name, at, attrs in span.events:
            sdk.add_event(name, attrs, timestamp=at)
        if span.error is None:
            sdk.set_status(Status(StatusCode.OK))
        else:
            sdk.set_status(Status(StatusCode.ERROR, span.error))
        sdk.end(end_time=span.end_ns)

    def current_traceparent(self) -> str | None:
        """The W3C traceparent of the current OpenTelemetry span (of any provider), if any:
        the trace a run started now joins."""
        ctx = trace.get_current_span().get_span_context()
        return format_traceparent(ctx) if ctx.is_valid else None


def _span_name(call: EffectCall) -> str:
    if call.kind == "model":
        request = call.params.get("request")
        kind = getattr(request, "kind", None) or "chat"
        op = genai.OPERATIONS.get(kind, kind)
        return f"{op} {genai.request_model(call.params, call.name)}"
    if call.kind == "child_start":
        return f"child_start {call.params.get('workflow', call.name)}"
    if call.kind == "step":  # a step's name is its qualified name: the span shows the last part
        return f"step {call.name.rsplit('.', 1)[-1]}"
    return call.kind if call.kind == "sleep" else f"{call.kind} {call.name}"


def _error_text(error: str | None) -> str:
    if not error:
        return "the run did not succeed"
    try:
        rec = json.loads(error)
    except ValueError:
        return error
    return f"{rec.get('type', 'Error')}: {rec.get('message', '')}"
