"""What flows through the model data plane: requests, responses, usage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    """

    model_config = ConfigDict(frozen=True)

    kind: Kind = "chat"
    messages: list[Message] = Field(default_factory=list)
    texts: list[str] = Field(default_factory=list)
    text: str | None = None
    document: str | None = None
    data: bytes | None = None
    params: dict[str, Any] = Field(default_factory=dict)


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
