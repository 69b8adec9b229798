"""Providers by name, and the last link of the deployment chain: calling one.

The providers aiosys ships are created on first use, so no client is made before a card
needs it. Their modules (and the SDKs they import, which take seconds) are imported by
``preload`` in a worker thread when the app opens, for the providers its catalog names: a
first call imports nothing on the event loop, where seconds of import would stall every run's
heartbeats. A provider named only by a card added after opening is imported on first use.
``add`` registers any other ``Provider`` (or
replaces a built-in one) under a name that cards use in ``provider``.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import TypeGuard

from ...errors import ConfigError, ProviderRejected, ProviderUnavailable
from ..chain import DeploymentCall
from ..types import ModelResponse
from .base import Provider, StreamingProvider

BUILT_IN = {
    "openai": "aiosys.models.providers.openai_compat:OpenAIProvider",
    "anthropic": "aiosys.models.providers.anthropic_messages:AnthropicProvider",
    "local": "aiosys.models.providers.local:LocalProvider",
    "tesseract": "aiosys.models.providers.tesseract:TesseractProvider",
    "embeddings": "aiosys.models.providers.embeddings:EmbeddingsProvider",
    "summarizer": "aiosys.models.providers.summarizer:ExtractiveSummarizer",
}


class Providers:
    def __init__(self) -> None:
        self.active: dict[str, Provider] = {}  # created or added so far
        self._created: set[str] = set()  # the built-in ones made here

    def add(self, name: str, provider: Provider) -> None:
        self.active[name] = provider
        self._created.discard(name)

    def preload(self, names: set[str]) -> None:
        """Import the modules of the built-in providers among ``names`` (blocking: run it in
        a worker thread). One that cannot be imported is left for its first use, which says
        why as a ``ConfigError``."""
        for name in sorted(names):
            path = BUILT_IN.get(name)
            if path is not None and name not in self.active:
                try:
                    importlib.import_module(path.partition(":")[0])
                except ImportError:
                    continue

    def get(self, name: str) -> Provider:
        found = self.active.get(name)
        if found is not None:
            return found
        path = BUILT_IN.get(name)
        if path is None:
            known = ", ".join(sorted(set(BUILT_IN) | set(self.active)))
            raise ConfigError(f"no model provider named {name!r} (known: {known})")
        module, _, cls = path.partition(":")
        try:
            factory = getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            raise ConfigError(f"model provider {name!r} cannot be loaded: {exc}") from None
        provider: Provider = factory()
        self.active[name] = provider
        self._created.add(name)
        return provider

    async def invoke(self, call: DeploymentCall) -> ModelResponse:
        """The end of the chain: the card's provider under the card's timeout, priced. A
        streamed call (``call.stream``) to a provider that streams has its pieces put in the
        sink as they arrive, and the timeout counts from the last piece (a long answer may
        take longer than it, a silent server may not)."""
        card, request = call.card, call.request
        provider = self.get(card.provider)
        if request.kind not in provider.kinds:
            raise ProviderRejected(
                f"provider {provider.name!r} of {card.key} does not serve {request.kind} requests"
            )
        sink = call.stream
        started = time.perf_counter()
        try:
            async with asyncio.timeout(card.timeout) as deadline:
                if sink is not None and request.kind == "chat" and _streams(provider):
                    loop = asyncio.get_running_loop()
                    sink.begin(card, request)

                    def emit(text: str) -> None:
                        deadline.reschedule(loop.time() + card.timeout)
                        sink.emit(text)

                    result = await provider.stream(card, request, emit)
                    sink.end()
                else:
                    result = await provider.invoke(card, request)
        except TimeoutError:
            silent = " (since its last piece)" if sink is not None and sink.started else ""
            raise ProviderUnavailable(
                f"{card.key} did not answer within its timeout of {card.timeout}s{silent}"
            ) from None
        usage = result.usage
        return ModelResponse(
            model=card.id,
            version=card.version,
            output=result.output,
            usage=usage,
            cost=card.cost(usage),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=result.finish_reason,
        )

    async def close(self) -> None:
        """Close every provider; the built-in ones are dropped (made again on next use),
        added ones stay registered."""
        for name, provider in list(self.active.items()):
            await provider.close()
            if name in self._created:
                del self.active[name]
                self._created.discard(name)


_STREAMS: dict[type, bool] = {}


def _streams(provider: Provider) -> TypeGuard[StreamingProvider]:
    """Whether ``provider`` is a ``StreamingProvider``, once per class: a runtime
    protocol's ``isinstance`` looks up each member every time (tens of microseconds)."""
    kind = type(provider)
    known = _STREAMS.get(kind)
    if known is None:
        known = _STREAMS[kind] = isinstance(provider, StreamingProvider)
    return known
