"""The provider interface: one class per kind of backend, one method.

A provider turns a ``ModelRequest`` into a ``ProviderResult`` for one model card, and
translates its backend's failures into aiosys errors at the boundary: ``ProviderUnavailable``
(transient: 429 with its retry-after, 5xx, timeouts, connection errors, malformed responses)
or ``ProviderRejected`` (permanent: other 4xx). Nothing above the provider sees an SDK's
exception types.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..catalog import ModelCard
from ..types import Kind, ModelRequest, ProviderResult


@runtime_checkable
class Provider(Protocol):
    name: str
    kinds: frozenset[Kind]

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult: ...

    async def close(self) -> None: ...
