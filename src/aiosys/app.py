"""The public ``App``: the kernel's App with the model data plane attached.

The composition root, outside the layers: the kernel knows effects and the gate, not models,
so the pieces above it are put together here. ``app.models`` is created on first use (no
provider, connection or SDK import before).
"""

from __future__ import annotations

import asyncio
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from . import kernel
from .governance.identity import Identity, note_identity
from .governance.roles import check_roles
from .models.catalog import ModelCard
from .models.catalog_files import load_card_files
from .models.plane import ModelPlane


class App(kernel.App):
    """Workflows, steps and queues bound to one store, with models (``app.models``).

    When the app opens, the catalog is filled from the store (cards ``aiosys models sync``
    saved) and then from the card files under ``models_dir`` (the argument, else the
    ``AIOSYS_MODELS_DIR`` environment variable, empty meaning none, else ``./models`` when it
    exists), so a file's card wins over the stored one of the same id. Cards added in code
    with ``app.models.add_card`` before opening win over both. The providers the catalog
    names are then imported, in a worker thread (``ModelPlane.preload``), unless
    ``preload_models`` is False (commands that only read the store, such as ``aiosys runs``).
    """

    def __init__(
        self,
        *args: Any,
        models_dir: str | Path | None = None,
        preload_models: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.models_dir = models_dir
        self.preload_models = preload_models
        self.add_check("roles", check_roles, local=False)

    async def open(self) -> App:
        first = self._opened == 0
        await super().open()
        if first:
            await note_identity(self.store)
            await self._load_catalog()
        return self

    @cached_property
    def identity(self) -> Identity:
        """The store's API keys and the JWT settings: ``await app.identity.authenticate(
        credential)`` is the principal to bind."""
        return Identity(self.store)

    async def _load_catalog(self) -> None:
        plane = self.models
        in_code = dict(plane.cards)
        await plane.load_store()
        directory = self.models_dir
        if directory is None:
            directory = os.environ.get("AIOSYS_MODELS_DIR", "models")
        if directory:
            # Reading the card files is blocking file I/O: off the event loop.
            for card, _ in await asyncio.to_thread(_card_files, Path(directory)):
                plane.add_card(card)
        for card in in_code.values():
            plane.add_card(card)
        if self.preload_models:
            await plane.preload()  # the SDKs, off the event loop: never inside a first call

    @cached_property
    def models(self) -> ModelPlane:
        """The catalog, tasks, providers, budgets and router of this app."""
        return ModelPlane(self)

    async def close(self) -> None:
        # The plane goes first: shadow calls in flight still meter into the store.
        if self._opened <= 1 and "models" in self.__dict__:
            await self.models.close()
        await super().close()


def _card_files(directory: Path) -> list[tuple[ModelCard, Path]]:
    return load_card_files(directory) if directory.is_dir() else []


__all__ = ["App"]
