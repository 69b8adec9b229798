"""OpenTelemetry GenAI semantic conventions for model-call spans.

Read from what the model plane leaves on the effect (``call.meta["record"]``:
``aiosys.models.route_trace.Trace.record``), never by importing the model plane: the
call's span (``span_name``, ``model_attributes``, ``model_events``) and its attempts' child
spans (``attempt_spans``).
"""

from __future__ import annotations

import json
from typing import Any

NS = 1_000_000_000
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
    served it), ``aiosys.task``; when personal data was redacted from the request
    (``record["redaction"]``, aiosys.governance.redaction_gate), ``aiosys.redaction.entities``
    (``["EMAIL_ADDRESS=1", "PERSON=2"]``: types and counts, never a value) and
    ``aiosys.redaction.mode``."""
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
    attrs.update(_answer(record))
    if record.get("model"):
        attrs["aiosys.model"] = record["model"]
        attrs["aiosys.deployment"] = record.get("deployment", "")
    if "cost" in record:
        attrs["aiosys.cost"] = float(record["cost"] or 0.0)
    attempts = record.get("attempts") or []
    if attempts:
        attrs["aiosys.fallback"] = any(a.get("model") != attempts[0].get("model") for a in attempts)
    redaction = record.get("redaction")
    if isinstance(redaction, dict):
        counts = redaction.get("entities") or {}
        attrs["aiosys.redaction.entities"] = [f"{k}={v}" for k, v in sorted(counts.items())]
        attrs["aiosys.redaction.mode"] = str(redaction.get("mode", ""))
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


def attempt_spans(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The spans of a model call's attempts (each try of a deployment, retries and
    fallbacks alike), in the order they were made, from the attempts its record keeps
    (``start``/``end`` in Unix seconds; a record written before they were kept makes none):
    each a dict of ``name`` (``<operation> <card id>``, ``chat gpt-4o``), ``start_ns``,
    ``end_ns``, ``status`` (``ok`` for the one that answered, else ``error``), ``error``
    (``"Type: message"``) and ``attributes``: ``gen_ai.operation.name``,
    ``gen_ai.provider.name``, ``gen_ai.request.model`` (the card's id),
    ``aiosys.deployment`` (``id@version``),
    ``aiosys.fallback_index`` (0: the first deployment tried, 1: the next, ...),
    ``aiosys.retry_index`` (0: the deployment's first try); on the one that answered,
    ``gen_ai.response.model``, the ``gen_ai.usage.*`` tokens,
    ``gen_ai.response.finish_reasons`` and ``aiosys.cache_hit``; on a failed one,
    ``error.type`` (the error's class name)."""
    record = record or {}
    out: list[dict[str, Any]] = []
    fallback, retry, last = -1, 0, None
    for a in record.get("attempts") or ():
        if "start" not in a:
            return []
        deployment = a.get("model")
        if deployment != last:
            fallback, retry, last = fallback + 1, 0, deployment
        else:
            retry += 1
        kind = a.get("kind") or record.get("kind") or "chat"
        model = a.get("model_id") or str(deployment).rsplit("@", 1)[0]
        op = OPERATIONS.get(kind, kind)
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.request.model": model}
        if a.get("provider"):
            attrs["gen_ai.provider.name"] = a["provider"]
        attrs["aiosys.deployment"] = deployment
        attrs["aiosys.fallback_index"] = fallback
        attrs["aiosys.retry_index"] = retry
        error = a.get("error")
        if error is None:
            attrs.update(_answer(record))
        else:
            attrs["error.type"] = error_type = a.get("error_type") or "Error"
            if not error.startswith(f"{error_type}: "):  # "open breaker", "invalid output: "
                error = f"{error_type}: {error}"
        out.append(
            {
                "name": f"{op} {model}",
                "start_ns": int(a["start"] * NS),
                "end_ns": int(a["end"] * NS),
                "status": "ok" if error is None else "error",
                "error": error,
                "attributes": attrs,
                "events": [],
            }
        )
    return out


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    """The GenAI attributes of the answer a call's record keeps."""
    attrs: dict[str, Any] = {}
    if record.get("model"):
        attrs["gen_ai.response.model"] = record.get("provider_model") or record["model"]
    usage = record.get("usage") or {}
    if usage:
        attrs["gen_ai.usage.input_tokens"] = int(usage.get("input_tokens", 0))
        attrs["gen_ai.usage.output_tokens"] = int(usage.get("output_tokens", 0))
    if record.get("finish_reason"):  # a list: JSON's shape, as the store gives it back
        attrs["gen_ai.response.finish_reasons"] = [str(record["finish_reason"])]
    if "cached" in record:
        attrs["aiosys.cache_hit"] = bool(record["cached"])
    return attrs


def content_attributes(params: dict[str, Any], output: Any, redacted: Any = None) -> dict[str, str]:
    """Prompt and completion, only when the operator turned content on. ``redacted``: the
    request as redaction sent it (``call.meta["redacted_request"]``): shown instead of the
    caller's, so that personal data kept from the model is kept from the span too (the
    completion is the record's, with its pseudonyms)."""
    request = redacted if redacted is not None else params.get("request")
    sent = _plain(request) if request is not None else params.get("input")
    got = _plain(output)
    return {
        "gen_ai.input.messages": json.dumps(sent, default=str),
        "gen_ai.output.messages": json.dumps(got, default=str),
    }


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value
