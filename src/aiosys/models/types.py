"""What flows through the model data plane: requests, responses, usage."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InvalidInput

# What a model does; a card declares one, a provider serves some.
Kind = Literal["chat", "embed", "ocr", "summarize"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class ModelRequest(BaseModel):
    """One request to one model.

    ``chat`` uses ``messages``; ``embed`` uses ``texts``; ``ocr`` uses ``document`` (a path to
    an image or PDF, or base64 bytes in ``data``); ``summarize`` uses ``text``.
    ``params`` are passed to the provider as they are (temperature, max_tokens, ...).
    Text that is not valid Unicode (a lone surrogate, which JSON's ``\\ud800`` can carry)
    can be neither counted, redacted nor sent, and a param holding a NaN or an infinity
    cannot be sent as JSON (``check_params``): ``InvalidInput`` naming where.
    """

    model_config = ConfigDict(frozen=True)

    kind: Kind = "chat"
    messages: list[Message] = Field(default_factory=list)
    texts: list[str] = Field(default_factory=list)
    text: str | None = None
    document: str | None = None
    data: bytes | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unicode(self) -> ModelRequest:
        for where, text in self._texts():
            if not text.isascii():
                try:
                    text.encode()
                except UnicodeEncodeError as exc:
                    raise InvalidInput(
                        f"{where} holds a lone surrogate ({text[exc.start]!a}) at position "
                        f"{exc.start}: text sent to a model must be valid Unicode"
                    ) from None
        return self

    @model_validator(mode="after")
    def _finite(self) -> ModelRequest:
        check_params(self.params)
        return self

    def _texts(self) -> Iterator[tuple[str, str]]:
        for i, m in enumerate(self.messages):
            yield f"messages.{i}.content", m.content
        for i, t in enumerate(self.texts):
            yield f"texts.{i}", t
        if self.text is not None:
            yield "text", self.text


def check_params(params: dict[str, Any]) -> None:
    """``InvalidInput`` naming the param (``params.temperature``, ``params.extra_body.w.1``)
    that holds a NaN or an infinity, at any depth: every HTTP provider sends its params as
    JSON, which has neither (``json.dumps`` wrote ``NaN``, which a server refuses as the
    request's fault or misreads; an SDK's encoder fails as its own error). The gateway
    refuses them in its own words before (a 400 naming the field); this is for Python
    callers (``app.models.call(..., temperature=float("nan"))``). Walked with a stack."""
    stack: list[tuple[Any, str]] = [(v, f"params.{k}") for k, v in params.items()]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput(
                    f"{where} is {value!r}: a model's params are sent as JSON, which has no "
                    "NaN or infinity; send a finite number"
                )
        elif isinstance(value, dict):
            stack.extend((v, f"{where}.{k}") for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(value))


class Usage(BaseModel):
    """Tokens (from the provider's usage, or counted for local models) and time.

    ``input_tokens`` counts every input token, those read from or written to the
    provider's prompt cache included (``cache_read_tokens``, ``cache_write_tokens``: parts
    of it, priced apart); ``reasoning_tokens`` are the part of ``output_tokens`` the model
    spent thinking, where the provider reports them (billed as output)."""

    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ProviderResult(BaseModel):
    """What a provider returns: the output in the kind's shape, and the usage it reported.

    ``output``: chat and summarize → ``str``; embed → ``list[list[float]]``; ocr → ``str``.
    """

    output: Any
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    provider_model: str | None = None  # the model name the provider said it used
    raw: dict[str, Any] | None = None  # the provider's response body, when it is JSON


class ModelResponse(BaseModel):
    """A metered model response: which card and deployment served it, at what cost."""

    model: str  # card id
    version: str
    output: Any
    usage: Usage
    cost: float = 0.0
    latency_ms: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
