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
from typing import TYPE_CHECKING, Any

from . import kernel
from .errors import ModelNotFound
from .governance.policy_files import policies_dir
from .kernel import EffectCall, current_principal
from .models.catalog import ModelCard
from .models.catalog_files import load_card_files
from .models.plane import ModelPlane
from .store.base import RunRow

if TYPE_CHECKING:  # imported when a policy directory is found (cedarpy takes ~0.15 s)
    from .governance.policy import PolicyEngine
    from .governance.policy_gate import Authorize


class App(kernel.App):
    """Workflows, steps and queues bound to one store, with models (``app.models``).

    When the app opens, the catalog is filled from the store (cards ``aiosys models sync``
    saved) and then from the card files under ``models_dir`` (the argument, else the
    ``AIOSYS_MODELS_DIR`` environment variable, empty meaning none, else ``./models`` when it
    exists), so a file's card wins over the stored one of the same id. Cards added in code
    with ``app.models.add_card`` before opening win over both. The providers the catalog
    names are then imported, in a worker thread (``ModelPlane.preload``), unless
    ``preload_models`` is False (commands that only read the store, such as ``aiosys runs``).

    Policies (Cedar, ``aiosys.governance.policy``) come from ``policies_dir`` (else
    ``AIOSYS_POLICIES_DIR``, empty meaning none, else ``./policies`` when it exists): when
    the app opens they are loaded (a broken set is a ``PolicyFileError`` naming the file and
    line), ``app.policy`` is the engine and the gate's ``authorize`` interceptor asks it
    before every model, connector and child-start effect and every declared step; ``start``,
    ``signal``, ``cancel`` and ``resume`` ask it too (``start_workflow``, ``signal_run``,
    ``cancel_run``, ``resume_run``). Without a directory nothing is installed.
    """

    def __init__(
        self,
        *args: Any,
        models_dir: str | Path | None = None,
        preload_models: bool = True,
        policies_dir: str | Path | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.models_dir = models_dir
        self.preload_models = preload_models
        self.policies_dir = policies_dir
        self.policy: PolicyEngine | None = None  # the Cedar engine, once the app opened
        self.authorizer: Authorize | None = None  # the gate's `authorize` interceptor

    async def open(self) -> App:
        first = self._opened == 0
        if first and self.policy is None:
            await self._install_policies()  # before the store: a broken set opens nothing
        await super().open()
        if first:
            await self._load_catalog()
        return self

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

    async def _install_policies(self) -> None:
        directory = policies_dir(self.policies_dir)
        if directory is None:
            return
        from .governance.policy import PolicyEngine
        from .governance.policy_gate import Authorize

        engine = await asyncio.to_thread(PolicyEngine.from_dir, directory)
        authorizer = Authorize(engine, self._policy_models)
        names = self.gate.names
        after = names.index("effect_log") + 1 if "effect_log" in names else 0
        self.gate.add("authorize", authorizer, before=names[after] if after < len(names) else None)
        self.policy, self.authorizer = engine, authorizer

    def _policy_models(self, call: EffectCall) -> list[ModelCard]:
        """The cards a model effect may reach: a direct call's model; a task's candidates
        and shadow, less those its plan keeps away from this data (``internal_only_for``)."""
        plane, params = self.models, call.params
        if "task" not in params:
            return [plane.card(params["model"])]
        plan = plane.contract(params["task"]).plan
        internal = params.get("classification") in plan.internal_only_for
        names = [c.model for c in plan.choices] + ([plan.shadow] if plan.shadow else [])
        cards = []
        for name in names:
            try:
                card = plane.card(name)
            except ModelNotFound:  # the router skips it too
                continue
            if not (internal and card.external):
                cards.append(card)
        return cards

    # The App's client actions, checked by the policy engine (the identity work's generic
    # client-check hook on the kernel App will carry ``check_client`` instead of these).

    async def start(
        self, workflow: str, input: dict[str, Any] | None = None, **kw: Any
    ) -> kernel.RunHandle:
        self.spec(workflow, kw.get("version"))  # an unknown workflow opens nothing
        await self._ready()
        if self.policy is not None and kw.get("parent_id") is None:  # a child: at the gate
            attrs = {"workflow": workflow, "tenant": kw.get("tenant", "default")}
            if kw.get("version") is not None:
                attrs["version"] = kw["version"]
            await self.policy.check_client("start_workflow", current_principal(), attrs)
        return await super().start(workflow, input, **kw)

    async def _check_run(self, action: str, run_id: str, tenant: str | None) -> None:
        if self.policy is None:
            return
        row = await self.get_run(run_id, tenant=tenant)
        attrs = {"run_id": row.id, "workflow": row.workflow, "tenant": row.tenant}
        attrs["status"] = row.status
        await self.policy.check_client(action, current_principal(), attrs)

    async def signal(
        self, run_id: str, name: str, payload: Any = None, *, tenant: str | None = None
    ) -> None:
        await self._ready()
        await self._check_run("signal_run", run_id, tenant)
        await super().signal(run_id, name, payload, tenant=tenant)

    async def cancel(
        self, run_id: str, reason: str = "cancelled by request", *, tenant: str | None = None
    ) -> RunRow:
        await self._ready()
        await self._check_run("cancel_run", run_id, tenant)
        return await super().cancel(run_id, reason, tenant=tenant)

    async def resume(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        await self._ready()
        await self._check_run("resume_run", run_id, tenant)
        return await super().resume(run_id, tenant=tenant)

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
