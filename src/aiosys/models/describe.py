"""What the catalog says of the model cards and task contracts a workflow used, as plain data
for the AI Act's Annex IV draft (``aiosys.governance.ai_act_annex``), which sits below the
model layer and so cannot read ``ModelCard`` or ``TaskContract`` itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic

from ..errors import ModelNotFound
from .plane import ModelPlane

#: Card fields left out of the description: how the process reaches the model, not what it is.
_PRIVATE = frozenset({"api_key_env", "options", "limits", "pricing", "timeout", "aliases"})


def describe(
    plane: ModelPlane, models: Sequence[str], tasks: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cards of ``models`` (``id@version`` as the uses named them; ``used`` says which,
    the rest is the catalog's card of that id, whatever its version now) and of the
    candidates of the ``tasks`` used (``name@version``), then those contracts: ``name``,
    ``version`` (the contract declared now), ``used``, ``declared`` (False: the app does not
    declare it; nothing else is known), ``input`` and ``output`` (field: JSON type),
    ``candidates``, ``strategy``, ``shadow``, ``slo_p95_ms``, ``cost_cap``."""
    cards: dict[str, dict[str, Any]] = {}

    def add(ref: str, used: str | None) -> None:
        card_id = ref.partition("@")[0]
        try:
            card = plane.card(card_id)
        except ModelNotFound:
            return
        if card.id in cards:
            return
        data = card.model_dump(mode="json", exclude=set(_PRIVATE))
        data["used"] = used
        cards[card.id] = data

    for ref in models:
        add(ref, ref)
    contracts = []
    for ref in tasks:
        name, _, used_version = ref.partition("@")
        contract = plane.tasks.get(name)
        if contract is None:
            contracts.append(
                {"name": name, "version": used_version, "used": ref, "declared": False}
            )
            continue
        plan = contract.plan
        for c in plan.choices:
            add(c.model, None)
        contracts.append(
            {
                "name": name,
                "version": contract.version,
                "used": ref,
                "declared": True,
                "input": _fields(contract.input),
                "output": _fields(contract.output),
                "candidates": [c.model for c in plan.choices],
                "strategy": plan.strategy,
                "shadow": plan.shadow,
                "slo_p95_ms": contract.slo_p95_ms,
                "cost_cap": contract.cost_cap,
            }
        )
    return list(cards.values()), contracts


def _fields(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """A schema's fields and their JSON types (``string``, ``array``, ``object``, ...)."""
    props = model.model_json_schema().get("properties", {})
    return {name: str(p.get("type", "any")) for name, p in props.items()}


__all__ = ["describe"]
