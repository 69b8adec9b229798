"""OpenTelemetry GenAI semantic conventions for model-call spans.

Read from what the model plane leaves on the effect (``call.meta["record"]``:
``aiosys.models.router.Trace.record``), never by importing the model plane.
"""

from __future__ import annotations

import json
from typing import Any

# aiosys request kinds -> gen_ai.operation.name (the spec's well-known values where one fits)
OPERATIONS = {"chat": "chat", "embed": "embeddings", "summarize": "summarize", "ocr": "ocr"}


def request_model(call_params: dict[str, Any], name: str) -> str:
    """What the call asked for: the model of a direct call, else the task's name."""
    model = call_params.get("model")
    return str(model) if model else name


def span_name(params: dict[str, Any], name: str) -> str:
    """A model call's span name: ``<operation> <requested model>`` (``chat ask``)."""
    request = params.get("request")
    kind = getattr(request, "kind", None) or "chat"
    return f"{OPERATIONS.get(kind, kind)} {request_model(params, name)}"


def model_attributes(
    params: dict[str, Any], name: str, record: dict[str, Any] | None
) -> dict[str, Any]:
    """A model call's span attributes: ``gen_ai.*`` and ``aiosys.cost`` (USD),
    ``aiosys.cache_hit``, ``aiosys.fallback`` (a candidate other than the first tried
    served it), ``aiosys.task``."""
    record = record or {}
    request = params.get("request")
    kind = getattr(request, "kind", None) or record.get("kind") or "chat"
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(kind, kind),
        "gen_ai.request.model": request_model(params, name),
    }
    if record.get("task"):
        attrs["aiosys.task"] = record["task"]
    if record.get("provider"):
        attrs["gen_ai.provider.name"] = record["provider"]
    if record.get("model"):
        attrs["gen_ai.response.model"] = record.get("provider_model") or record["model"]
        attrs["aiosys.model"] = record["model"]
        attrs["aiosys.deployment"] = record.get("deployment", "")
    usage = record.get("usage") or {}
    if usage:
        attrs["gen_ai.usage.input_tokens"] = int(usage.get("input_tokens", 0))
        attrs["gen_ai.usage.output_tokens"] = int(usage.get("output_tokens", 0))
    if record.get("finish_reason"):
        attrs["gen_ai.response.finish_reasons"] = (str(record["finish_reason"]),)
    if "cost" in record:
        attrs["aiosys.cost"] = float(record["cost"] or 0.0)
    if "cached" in record:
        attrs["aiosys.cache_hit"] = bool(record["cached"])
    attempts = record.get("attempts") or []
    if attempts:
        attrs["aiosys.fallback"] = any(a.get("model") != attempts[0].get("model") for a in attempts)
    return attrs


def model_events(record: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """Span events of a model call: each failed attempt (``gen_ai.attempt``: deployment,
    error, e.g. an open breaker) and each candidate skipped (``aiosys.skipped``: reason)."""
    events: list[tuple[str, dict[str, Any]]] = []
    for a in (record or {}).get("attempts") or []:
        if a.get("error"):
            events.append(("aiosys.model.attempt", {"model": a["model"], "error": a["error"]}))
    for model, why in ((record or {}).get("skipped") or {}).items():
        events.append(("aiosys.model.skipped", {"model": model, "reason": why}))
    return events


def content_attributes(params: dict[str, Any], output: Any) -> dict[str, str]:
    """Prompt and completion, only when the operator turned content on."""
    request = params.get("request")
    sent = _plain(request) if request is not None else params.get("input")
    got = _plain(output)
    return {
        "gen_ai.input.messages": json.dumps(sent, default=str),
        "gen_ai.output.messages": json.dumps(got, default=str),
    }


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value
