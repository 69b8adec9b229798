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
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, Status, StatusCode, Tracer

from ..kernel.control import Parked
from ..kernel.gate import EffectCall, Next
from ..store.base import Finish, RunRow
from . import genai
from .settings import TracingSettings
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
        self._contexts: dict[tuple[str, str | None], otel_context.Context] = {}

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
        """This app's SDK provider (every span sampled; the resource from ``OTEL_*``
        variables, ``service.name`` defaulting to ``aiosys``). With an OTLP endpoint in the
        environment, spans are exported by OTLP/HTTP in batches."""
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "aiosys")})
        provider = TracerProvider(sampler=ALWAYS_ON, resource=resource, id_generator=_Ids())
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return provider

    @cached_property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("aiosys")

    def shutdown(self) -> None:
        """Export what is queued and stop the exporters (the app's close)."""
        if "provider" in self.__dict__:
            self.provider.shutdown()

    # ---- the run's span -----------------------------------------------------------------

    def _run_context(self, run: RunRow) -> otel_context.Context:
        key = (run.id, run.traceparent)
        ctx = self._contexts.get(key)
        if ctx is None:
            if len(self._contexts) > 4096:
                self._contexts.clear()
            parent = NonRecordingSpan(run_trace(run.id, run.traceparent).context)
            ctx = self._contexts[key] = trace.set_span_in_context(parent)
        return ctx

    def run_ended(self, run: RunRow, finish: Finish) -> None:
        """Export the run's span (``kernel.App.run_end_hooks``): ``run <workflow>``, from
        ``created_at`` to now, status ERROR unless it succeeded."""
        self._contexts.pop((run.id, run.traceparent), None)
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
        if finish.status != "succeeded":
            span.set_status(Status(StatusCode.ERROR, _error_text(finish.error)))
        span.end()

    # ---- effect spans -------------------------------------------------------------------

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        """The gate's ``trace`` interceptor (just inside the effect log)."""
        if call.kind in UNTRACED:
            return await next(call)
        ex = call.run_execution
        parent = None if ex is None else self._run_context(ex.run)
        attrs = _effect_attributes(call)
        span = self.tracer.start_span(_span_name(call), context=parent, attributes=attrs)
        call.meta[_SPAN] = span
        token = otel_context.attach(trace.set_span_in_context(span))
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

    def wait_ended(self, call: EffectCall, since: float, error: BaseException | None) -> None:
        """``Gate.wait_hooks``: a parked wait ended (``since``: when it began, Unix s)."""
        span = call.meta.get(_SPAN)
        if span is None:  # the execution that began the wait was unwound: a new one
            ex = call.execution
            span = self.tracer.start_span(
                _span_name(call),
                context=self._run_context(ex.run),
                attributes=_effect_attributes(call),
                start_time=int(since * 1e9),
            )
        self._end(call, span, error, None)

    def add_event(self, call: EffectCall | None, name: str, attributes: Mapping[str, Any]) -> None:
        """An event on ``call``'s span while it is open (the composition root hands policy
        decisions here); nothing when it has none."""
        span = None if call is None else call.meta.get(_SPAN)
        if span is not None and span.is_recording():
            span.add_event(name, {k: v for k, v in attributes.items() if v is not None})

    def _end(self, call: EffectCall, span: Span, error: BaseException | None, out: Any) -> None:
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
            span.set_attributes(genai.model_attributes(call.params, call.name, record))
            for name, attrs in genai.model_events(record):
                span.add_event(name, attrs)
            if self.settings.content and error is None:
                span.set_attributes(genai.content_attributes(call.params, out))
        if error is not None:
            cls = type(error)
            span.set_attribute("error.type", cls.__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{cls.__qualname__}: {error}"))
            span.record_exception(error)
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()
        ex = call.run_execution
        if ex is not None:
            # The SDK's spans are readable once ended.
            row = span_params(cast(ReadableSpan, span), ex.run.id, call.seq, call.kind)
            call.also_write("span_record", row)

    def current_traceparent(self) -> str | None:
        """The W3C traceparent of the current OpenTelemetry span (of any provider), if any:
        the trace a run started now joins."""
        ctx = trace.get_current_span().get_span_context()
        return format_traceparent(ctx) if ctx.is_valid else None


def _effect_attributes(call: EffectCall) -> dict[str, Any]:
    return {
        "aiosys.effect.kind": call.kind,
        "aiosys.effect.name": call.name,
        "aiosys.effect.seq": call.seq,
    }


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


def run_attributes(run: RunRow, status: str) -> dict[str, Any]:
    return {
        "aiosys.run_id": run.id,
        "aiosys.workflow": run.workflow,
        "aiosys.workflow.version": run.version,
        "aiosys.tenant": run.tenant,
        "aiosys.run.status": status,
    }


def span_params(span: ReadableSpan, run_id: str, seq: int, kind: str) -> dict[str, Any]:
    """The ``span_record`` parameters of an ended span."""
    ctx = span.get_span_context()
    assert ctx is not None
    status = span.status
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]
    return {
        "run_id": run_id,
        "span_id": f"{ctx.span_id:016x}",
        "trace_id": f"{ctx.trace_id:032x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "seq": seq,
        "name": span.name,
        "kind": kind,
        "start_ns": span.start_time or time.time_ns(),
        "end_ns": span.end_time or time.time_ns(),
        "status": "error" if status.status_code is StatusCode.ERROR else "ok",
        "error": status.description if status.status_code is StatusCode.ERROR else None,
        "attributes": json.dumps(dict(span.attributes or {}), default=str),
        "events": json.dumps(events, default=str) if events else None,
    }


def _error_text(error: str | None) -> str:
    if not error:
        return "the run did not succeed"
    try:
        rec = json.loads(error)
    except ValueError:
        return error
    return f"{rec.get('type', 'Error')}: {rec.get('message', '')}"
