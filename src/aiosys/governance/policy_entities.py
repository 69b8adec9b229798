"""What a policy decision is about, as Cedar entities and requests.

Entity types (the shipped schema, ``examples/policies/schema.cedarschema``, declares them):

- ``User``, ``Service``, ``Agent``: principals, id ``tenant/id``, attributes ``tenant``,
  ``roles`` (a set of strings) and ``local`` (the embedded default's caller);
- ``Model``: a model card, id the card's id, attributes ``external``, ``risk_level``,
  ``residency`` (the card's ``data_residency``), ``provider``, ``kind``, ``owner``;
- ``Workflow`` (id its name; ``tenant``, and ``high_risk`` when the workflow is declared
  ``high_risk=True``: an effect's request then carries the entity beside its context's
  reference), ``Run`` (id the run's id; ``workflow``, ``tenant``), ``Connector``
  (``external``, ``kind``), ``Dataset`` (``classification``, ``residency``, ``tenant``),
  ``Task`` (a model task contract, by name);
- ``Classification``: data classifications, ordered ``unclassified``, ``public`` <
  ``internal`` < ``confidential`` < ``restricted``, each stricter one a child of the one
  below, so ``context.classification in Classification::"confidential"`` holds for
  confidential and restricted data.

A ``PolicyRequest`` is hashable by value: it is the key of the decision cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput
from ..kernel.principal import Principal

#: Data classifications, least to most sensitive (each is ``in`` the ones before it, except
#: ``unclassified``, which stands alone: data nobody classified).
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
UNCLASSIFIED = "unclassified"

PRINCIPAL_TYPES = {"user": "User", "service": "Service", "agent": "Agent"}


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to an entity inside an attribute or the context."""

    type: str
    id: str

    @property
    def uid(self) -> str:
        return f"{self.type}::{json.dumps(self.id)}"

    def json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


Value = Any  # str | bool | int | Ref | Record | tuple[Value, ...]
Attrs = tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """A Cedar record value (``context.approval``): its fields as sorted pairs, so that it
    hashes (a request is the decision cache's key)."""

    fields: Attrs


@dataclass(frozen=True, slots=True)
class Entity:
    """One Cedar entity: ``type::"id"``, attributes (sorted pairs), parents. Its hash and
    uid are computed once (entities are reused across decisions as cache keys)."""

    type: str
    id: str
    attrs: Attrs = ()
    parents: tuple[Ref, ...] = ()
    uid: str = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uid", Ref(self.type, self.id).uid)
        object.__setattr__(self, "_hash", hash((self.type, self.id, self.attrs, self.parents)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def ref(self) -> Ref:
        return Ref(self.type, self.id)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.ref.json(),
            "attrs": {k: _json_value(v) for k, v in self.attrs},
            "parents": [p.json() for p in self.parents],
        }

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default


def _json_value(value: Value) -> Any:
    if isinstance(value, Ref):
        return {"__entity": value.json()}
    if isinstance(value, Record):
        return {k: _json_value(v) for k, v in value.fields}
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def attrs(values: Mapping[str, Any]) -> Attrs:
    """Attribute pairs, sorted; lists and sets become tuples (sets sorted) and dicts
    ``Record``s, so they hash."""
    return tuple(sorted((k, _freeze(v)) for k, v in values.items() if v is not None))


def _freeze(value: Any) -> Value:
    if isinstance(value, set | frozenset):
        return tuple(sorted(_freeze(v) for v in value))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return Record(attrs(value))
    return value


# ---- entities of aiosys objects -------------------------------------------------------------


def principal_entity(p: Principal) -> Entity:
    """``User::"acme/alice"`` with ``tenant``, ``roles`` and ``local``."""
    return Entity(
        PRINCIPAL_TYPES[p.kind],
        f"{p.tenant}/{p.id}",
        attrs({"tenant": p.tenant, "roles": set(p.roles), "local": p.local}),
    )


def model_entity(card: Any) -> Entity:
    """A model card (``aiosys.models.catalog.ModelCard`` or anything with its fields)."""
    return Entity(
        "Model",
        str(card.id),
        attrs(
            {
                "external": bool(card.external),
                "risk_level": str(card.risk_level),
                "residency": str(card.data_residency),
                "provider": str(card.provider),
                "kind": str(card.kind),
                "owner": str(card.owner),
            }
        ),
    )


_LABELS = {name: Ref("Classification", name) for name in (UNCLASSIFIED, *CLASSIFICATIONS)}


#: The labels a call may carry as its data's classification.
LABELS = (UNCLASSIFIED, *CLASSIFICATIONS)


def check_classification(label: object, what: str = "classification") -> str | None:
    """``label`` if it is a data classification (``LABELS``) or None (unclassified);
    else ``InvalidInput`` naming ``what`` (the argument, a header) and the labels it may
    be: an unknown label is the caller's error, refused before anything is done (a typo
    must not slip past a rule about its level, nor be taken for a level)."""
    if label is None or (isinstance(label, str) and label in _LABELS):
        return label
    known = ", ".join(LABELS)
    raise InvalidInput(
        f"{what}: unknown data classification {label!r}; use one of: {known} "
        "(or none: unclassified)"
    )


def classification(name: str | None, default: str = UNCLASSIFIED) -> Ref:
    """The ``Classification`` of a declared label (None: ``default``); an unknown label is
    ``InvalidInput`` (``check_classification``)."""
    label = default if name is None else name
    check_classification(label)
    return _LABELS[label]


def classification_entities() -> list[Entity]:
    out = [Entity("Classification", UNCLASSIFIED)]
    for i, name in enumerate(CLASSIFICATIONS):
        parents = (Ref("Classification", CLASSIFICATIONS[i - 1]),) if i else ()
        out.append(Entity("Classification", name, (), parents))
    return out


def resource_entity(type_: str, id_: str, values: Mapping[str, Any] | None = None) -> Entity:
    """An entity of ``type_`` (``Workflow``, ``Run``, ``Connector``, ``Dataset``, ``Task``,
    ...) with attributes ``values``; a ``classification`` attribute given as text becomes
    a ``Classification`` reference."""
    values = dict(values or {})
    if isinstance(values.get("classification"), str):
        values["classification"] = classification(values["classification"])
    return Entity(type_, id_, attrs(values))


# ---- requests ---------------------------------------------------------------------------------

_CLASSIFICATIONS_JSON = ", ".join(json.dumps(e.json()) for e in classification_entities())


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """May ``principal`` do ``action`` to ``resource`` in ``context``? Hashable by value
    (``context`` pairs sorted by name, as ``attrs`` gives them). ``entities``: others the
    context refers to and the policies may read (the run's ``Workflow``)."""

    principal: Entity
    action: str
    resource: Entity
    context: Attrs = ()
    entities: tuple[Entity, ...] = ()
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.principal, self.action, self.resource, self.context, self.entities)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def cedar(self) -> dict[str, Any]:
        """The request as ``cedarpy.is_authorized`` takes it."""
        return {
            "principal": self.principal.ref.json(),
            "action": {"type": "Action", "id": self.action},
            "resource": self.resource.ref.json(),
            "context": {k: _json_value(v) for k, v in self.context},
        }

    def entities_json(self, extra: Iterable[Entity] = ()) -> str:
        """The entities the request needs (principal, resource, the classifications, its
        ``entities``)."""
        parts = [json.dumps(self.principal.json()), _CLASSIFICATIONS_JSON]
        seen = {self.principal.ref}
        for entity in (self.resource, *self.entities, *extra):
            if entity.ref not in seen:
                seen.add(entity.ref)
                parts.append(json.dumps(entity.json()))
        return "[" + ", ".join(parts) + "]"
