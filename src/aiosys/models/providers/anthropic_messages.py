"""Anthropic models through the official ``anthropic`` SDK (the Messages API).

The Messages API differs from the OpenAI shape in three ways that matter here: system
prompts travel in a ``system`` field, not as messages; ``max_tokens`` is required; the reply
is a list of content blocks. A card names the base URL (``endpoint``, without ``/v1``; none
means api.anthropic.com) and the environment variable holding the key (``api_key_env``).
The SDK's retries are off; the router does them.
"""

from __future__ import annotations

from typing import Any, cast

import anthropic
from anthropic.resources.messages import AsyncMessages
from anthropic.types import MessageParam

from ...errors import ProviderRejected
from ...observe.propagation import trace_headers
from ..catalog import ModelCard
from ..tokens import DEFAULT_OUTPUT_TOKENS
from ..types import Kind, ModelRequest, ProviderResult, Usage
from ._http_errors import install_classifier, malformed, sdk_errors
from ._sdk import ClientCache, api_key, split_params

DEFAULT_MAX_TOKENS = DEFAULT_OUTPUT_TOKENS  # the Messages API requires one
_RESERVED = ("model", "messages", "system", "stream", "timeout")


def _client(endpoint: str | None, key: str, timeout: float) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=endpoint, api_key=key, max_retries=0, timeout=timeout)


class AnthropicProvider:
    """``chat`` through ``POST /v1/messages``."""

    name = "anthropic"
    kinds: frozenset[Kind] = frozenset({"chat"})

    def __init__(self) -> None:
        self._clients: ClientCache[anthropic.AsyncAnthropic] = ClientCache(_client)
        install_classifier()

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        if request.kind != "chat":
            raise ProviderRejected(
                f"{card.key}: the anthropic provider serves chat, not {request.kind}"
            )
        system = [m.content for m in request.messages if m.role == "system"]
        messages: list[MessageParam] = []
        for m in request.messages:
            if m.role == "tool":
                raise ProviderRejected(
                    f"{card.key}: the Messages API has no 'tool' role; send tool results "
                    "as user content"
                )
            if m.role != "system":
                messages.append(cast(MessageParam, {"role": m.role, "content": m.content}))
        params = dict(request.params)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        kwargs = split_params(card, params, AsyncMessages.create, _RESERVED)
        kwargs["extra_headers"] = trace_headers(kwargs.get("extra_headers"))  # the effect span's
        if system:
            kwargs["system"] = "\n\n".join(system)
        key, hint = api_key(card)
        client = self._clients.get(card, key)
        endpoint = str(client.base_url).rstrip("/")
        with sdk_errors(card, endpoint, hint):
            response: Any = await client.messages.create(
                model=card.upstream_model, messages=messages, timeout=card.timeout, **kwargs
            )
            # The SDK builds lenient models: JSON of another shape shows as missing fields.
            try:
                texts = [block.text for block in response.content if block.type == "text"]
                # input_tokens are those after the last cache breakpoint only: the cache's
                # reads and writes are counted apart, and added here (Usage counts all).
                cache_read = response.usage.cache_read_input_tokens or 0
                cache_write = response.usage.cache_creation_input_tokens or 0
                input_tokens = (response.usage.input_tokens or 0) + cache_read + cache_write
                output_tokens = response.usage.output_tokens
                details = getattr(response.usage, "output_tokens_details", None)
                thinking = getattr(details, "thinking_tokens", None) or 0
                stop_reason = response.stop_reason
                provider_model = response.model
            except (AttributeError, TypeError) as exc:
                raise malformed(card, endpoint, f"no content blocks or usage ({exc})") from exc
        if not all(isinstance(t, str) for t in texts):
            raise malformed(card, endpoint, "a text block has no text")
        return ProviderResult(
            output="".join(texts),
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens or 0,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                reasoning_tokens=thinking,
            ),
            finish_reason=stop_reason if isinstance(stop_reason, str) else None,
            provider_model=provider_model if isinstance(provider_model, str) else None,
            raw=response.model_dump(mode="json", exclude_unset=True),
        )

    async def close(self) -> None:
        await self._clients.close()
