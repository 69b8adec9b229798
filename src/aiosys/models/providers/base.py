"""The provider interface: one class per kind of backend, one method.

A provider turns a ``ModelRequest`` into a ``ProviderResult`` for one model card, and
translates its backend's failures into aiosys errors at the boundary: ``ProviderUnavailable``
(transient: 429 with its retry-after, 5xx, timeouts, connection errors, malformed responses)
or ``ProviderRejected`` (permanent: other 4xx). Nothing above the provider sees an SDK's
exception types.

A provider that can stream a chat answer is also a ``StreamingProvider``: ``stream`` hands
each piece of text to ``emit`` as it arrives and returns the whole result (output, usage)
when the answer ends. Its failures are translated the same way, during the stream too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..catalog import ModelCard
from ..types import Kind, ModelRequest, ProviderResult


@runtime_checkable
class Provider(Protocol):
    name: str
    kinds: frozenset[Kind]

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult: ...

    async def close(self) -> None: ...


#: Where a streaming provider puts each piece of the answer as it arrives.
Emit = Callable[[str], None]


@runtime_checkable
class StreamingProvider(Provider, Protocol):
    async def stream(self, card: ModelCard, request: ModelRequest, emit: Emit) -> ProviderResult:
        """Stream a ``chat`` request: each piece of text to ``emit``, then the result with
        the whole text and the usage (reported by the server, else estimated)."""
        ...
