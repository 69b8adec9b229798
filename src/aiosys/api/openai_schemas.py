"""OpenAI's request and response shapes, as the gateway reads and writes them.

Requests are validated by the pydantic models below (unknown fields are kept: they reach the
model's server as request params, as vLLM's ``top_k`` would), in pydantic's strict mode, as
OpenAI validates them: a boolean is a JSON ``true``/``false`` (not ``"yes"`` or ``1``), a
number is a JSON number (not ``"0.5"``), an integer has no fraction (``2``, not ``2.0``);
a float field takes an integer (``"temperature": 1``). ``chat_messages`` and
``chat_params`` turn a chat request into the model plane's messages and params. What the
plane cannot carry is refused with a 400 naming the field, never dropped: tool and function
calling, ``n`` above 1, content parts other than text, token arrays as embedding input;
``dimensions`` goes to the model (an OpenAI-compatible server shortens its vectors), and
vectors of another length than it asks are refused with a 400 naming it, never sent.

Responses are built as plain dicts (``completion``, ``chunk``, ``embeddings``,
``model_list``): the models named ``...Doc`` only document them in the OpenAPI schema.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..models.catalog import ModelCard
from ..models.types import Message, ModelResponse, Usage
from .openai_errors import BadParam

NAME = 256  # longest model name accepted
MAX_INPUTS = 2048  # embedding inputs per request, as OpenAI allows


#: The gateway's request models: unknown fields kept, every declared one of its JSON type;
#: a number is finite (JSON has no NaN or Infinity, which Python's and pydantic's parsers
#: take: ``NaN``, ``Infinity``, ``1e999``).
STRICT = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class ContentPart(BaseModel):
    model_config = STRICT

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = STRICT

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = STRICT

    include_usage: bool | None = None


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. ``model``: a model card's id, ``id@version``, an alias
    (``chat-production``) or a task contract's name."""

    model_config = STRICT

    model: str = Field(min_length=1, max_length=NAME)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    response_format: dict[str, Any] | None = None
    # OpenAI's other fields, typed as OpenAI types them: the model's params (logprobs are
    # refused unless false or 0: chat_params).
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, int] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``. ``input``: a text or a list of texts; ``dimensions``: the
    length of each vector asked for (a model that cannot give it is a 400 naming it)."""

    model_config = STRICT

    model: str = Field(min_length=1, max_length=NAME)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


# Chat fields the plane cannot carry back: refused, never silently dropped.
_UNSUPPORTED = {
    "tools": "tool calling",
    "tool_choice": "tool calling",
    "functions": "function calling",
    "function_call": "function calling",
    "logprobs": "log probabilities",
    "top_logprobs": "log probabilities",
    "audio": "audio output",
    "modalities": "output modalities other than text",
    "prediction": "predicted outputs",
}
# The SDKs' request options: an SDK merges them into the request, never sends them as fields;
# as params they would set the headers and query of the request to the model's server.
_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")
# Fields the gateway consumes itself (or that mean nothing without tools); the rest are the
# model's params.
_OWN = {"model", "messages", "stream", "stream_options", "n", "parallel_tool_calls"}


def chat_messages(body: ChatCompletionRequest) -> list[Message]:
    """The request's messages as the plane's: ``developer`` is a ``system`` message (as
    OpenAI treats it for models without the role), text parts are joined."""
    out: list[Message] = []
    for i, m in enumerate(body.messages):
        where = f"messages.{i}"
        extra = m.model_extra or {}
        if m.role == "tool" or extra.get("tool_calls") or extra.get("function_call"):
            raise BadParam(f"{where}: tool calling is not supported by this gateway", where)
        content = m.content
        if content is None:
            raise BadParam(f"{where}.content is required", f"{where}.content")
        if not isinstance(content, str):
            parts = []
            for j, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise BadParam(
                        f"{where}.content.{j}: only text content parts are supported, "
                        f"not {part.type!r}",
                        f"{where}.content.{j}.type",
                    )
                parts.append(part.text)
            content = "".join(parts)
        role = "system" if m.role == "developer" else m.role
        out.append(Message(role=role, content=content))
    return out


def chat_params(body: ChatCompletionRequest) -> dict[str, Any]:
    """The request's params for the model: every field it set but the gateway's own.
    ``stream_options`` without ``stream: true`` is a 400 naming it, in OpenAI's words
    (it is the gateway's own field: dropped silently, its ``include_usage`` would be lost)."""
    if body.stream_options is not None and not body.stream:
        raise BadParam(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if body.n is not None and body.n > 1:
        raise BadParam("n above 1 is not supported by this gateway: make n requests", "n")
    params = _params(body, _OWN)
    for name, what in _UNSUPPORTED.items():
        if params.get(name) not in (None, False, [], {}):
            raise BadParam(f"{name}: {what} is not supported by this gateway", name)
        params.pop(name, None)
    return params


def embedding_texts(body: EmbeddingRequest) -> list[str]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise BadParam("input must not be empty", "input")
    if not all(isinstance(t, str) for t in texts):
        raise BadParam("input as token arrays is not supported: send the text", "input")
    if len(texts) > MAX_INPUTS:
        raise BadParam(f"input holds {len(texts)} texts; at most {MAX_INPUTS}", "input")
    for i, text in enumerate(texts):
        if not text:
            raise BadParam(f"input.{i} is empty", f"input.{i}")
    return [str(t) for t in texts]


def embedding_params(body: EmbeddingRequest) -> dict[str, Any]:
    return _params(body, {"model", "input", "encoding_format"})


def _params(body: BaseModel, own: set[str]) -> dict[str, Any]:
    params = body.model_dump(exclude_none=True, exclude=own)
    for name in _OPTIONS:
        if name in params:
            raise BadParam(f"{name} is not a field of this API", name)
    if body.model_extra:  # declared numbers are checked finite by the model (STRICT)
        for name, value in body.model_extra.items():
            _check_finite(value, name)
    return params


def _check_finite(value: Any, where: str) -> None:
    """A 400 naming ``where`` (``top_k``, ``options.weights.1``) for a NaN or an infinity in
    an unknown field's value: they reach the model's server as params, and JSON cannot
    carry them (they were sent as ``NaN``, or failed as the server's fault, a 503). Walked
    with a stack, not recursion: a value may nest as deep as the JSON parser allows."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise BadParam(
                f"{at} is {item!r}: a JSON number must be finite (JSON has no NaN or Infinity)",
                at,
            )
        if isinstance(item, dict):
            stack.extend((v, f"{at}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{at}.{i}") for i, v in enumerate(item))


# ---- responses -------------------------------------------------------------------------


def usage(u: Usage) -> dict[str, Any]:
    """A usage in OpenAI's shape (cached and reasoning tokens in their details)."""
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def cost(response: ModelResponse, card: ModelCard | None) -> dict[str, Any]:
    """What aiosys metered for the call: ``cost`` in the card's ``currency``, the
    ``deployment`` that served (``id@version``), and whether aiosys's cache answered."""
    return {
        "cost": response.cost,
        "currency": "USD" if card is None else card.pricing.currency,
        "deployment": f"{response.model}@{response.version}",
        "cached": response.cached,
    }


def completion(response: ModelResponse, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": response.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.output, "refusal": None},
                "logprobs": None,
                "finish_reason": response.finish_reason or "stop",
            }
        ],
        "usage": usage(response.usage),
    }


def chunk(
    completion_id: str,
    created: int,
    model: str | None,
    choices: list[dict[str, Any]],
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
        **fields,
    }


def delta(content: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}]


def embeddings(
    response: ModelResponse, encoding_format: str | None, dimensions: int | None = None
) -> dict[str, Any]:
    """The vectors as floats, or as base64 of little-endian float32 (what the official SDK
    asks for by default, and decodes). ``dimensions``: the length the caller asked for;
    ``BadParam`` naming ``dimensions`` when the model gave vectors of another length (it
    ignores the field, or cannot shorten its vectors), which are never sent."""
    if dimensions is not None:
        for vector in response.output:
            if len(vector) != dimensions:
                raise BadParam(
                    f"model {response.model}@{response.version} gives vectors of "
                    f"{len(vector)} dimensions, not the {dimensions} asked: it cannot honour "
                    f"dimensions; leave it out (or ask for {len(vector)}), or use a model "
                    "that can",
                    "dimensions",
                )
    data = []
    for i, vector in enumerate(response.output):
        value: Any = vector
        if encoding_format == "base64":
            value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = response.usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": response.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


#: A card's fields a caller is shown (its model card); its deployment's endpoint, key variable
#: and options are the operator's and not served.
CARD_FIELDS = frozenset(
    {"id", "version", "kind", "provider", "description", "intended_use", "out_of_scope_use",
     "training_data", "evaluation", "failure_modes", "risk_level", "data_residency",
     "external", "context_window", "aliases", "pricing", "owner"}
)  # fmt: skip


def model_entries(cards: list[ModelCard], tasks: list[str]) -> list[dict[str, Any]]:
    """Every name ``model`` may take: cards by id (``card``: the model card's public fields),
    their aliases (``root``: the card they name now), then task contracts (``owned_by``
    aiosys)."""
    out: list[dict[str, Any]] = []
    for card in sorted(cards, key=lambda c: c.id):
        entry = {"id": card.id, "object": "model", "created": 0, "owned_by": card.owner}
        shown = card.model_dump(mode="json", include=set(CARD_FIELDS))
        out.append(entry | {"kind": card.kind, "root": card.id, "card": shown})
    for card in sorted(cards, key=lambda c: c.id):
        for alias in sorted(card.aliases):
            entry = {"id": alias, "object": "model", "created": 0, "owned_by": card.owner}
            out.append(entry | {"kind": card.kind, "root": card.id})
    known = {e["id"] for e in out}
    for task in sorted(tasks):
        if task not in known:  # a card of that name shadows the task
            out.append({"id": task, "object": "model", "created": 0, "owned_by": "aiosys"})
    return out


# ---- documentation of the responses (OpenAPI) --------------------------------------------


class UsageDoc(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None
    completion_tokens_details: dict[str, int] | None = None


class AssistantMessageDoc(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: str | None = None


class ChoiceDoc(BaseModel):
    index: int
    message: AssistantMessageDoc
    logprobs: None = None
    finish_reason: str


class ChatCompletionDoc(BaseModel):
    """A chat completion (``stream`` false). With ``stream`` true the answer is
    ``text/event-stream``: ``data: {chat.completion.chunk}`` events, then ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChoiceDoc]
    usage: UsageDoc


class EmbeddingDoc(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingListDoc(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingDoc]
    model: str
    usage: dict[str, int]


class ModelDoc(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kind: str | None = Field(default=None, description="chat or embed (cards and aliases)")
    root: str | None = Field(default=None, description="The card an id or alias names now.")
    card: dict[str, Any] | None = Field(
        default=None, description="A card's model card (its public fields); cards only."
    )


class ModelListDoc(BaseModel):
    object: Literal["list"]
    data: list[ModelDoc]
