"""The public ``App``: the kernel's App with the model data plane attached.

The composition root, outside the layers: the kernel knows effects and the gate, not models,
so the pieces above it are put together here. ``app.models`` is created on first use (no
provider, connection or SDK import before).
"""

from __future__ import annotations

from functools import cached_property

from . import kernel
from .models.plane import ModelPlane


class App(kernel.App):
    """Workflows, steps and queues bound to one store, with models (``app.models``)."""

    @cached_property
    def models(self) -> ModelPlane:
        """The catalog, tasks, providers, budgets and router of this app."""
        return ModelPlane(self)

    async def close(self) -> None:
        # The plane goes first: shadow calls in flight still meter into the store.
        if self._opened <= 1 and "models" in self.__dict__:
            await self.models.close()
        await super().close()


__all__ = ["App"]
