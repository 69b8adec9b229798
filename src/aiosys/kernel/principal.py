"""Who is asking: the principal bound around calls of the Python API.

The kernel knows *that* someone asks (to scope runs by tenant and to hand the caller to the
checks that governance plugs in), not how they proved it: API keys, OIDC/JWT tokens, roles
and policy live in ``aiosys.governance``. A ``Principal`` is bound with
``app.as_principal(p)`` (or ``bind_principal``) around calls; the HTTP server binds one per
request. Unbound, the caller is the embedded default's ``LOCAL`` principal: every right, every
tenant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store.base import RunRow

#: Kinds of principals (Cedar entity types in ``aiosys.governance``).
PRINCIPAL_KINDS = ("user", "service", "agent")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``id``: stable identifier within its tenant (``alice``, ``billing-svc``); ``tenant``: the
    tenant it acts in (one per binding: a user of two tenants is bound as one or the other);
    ``kind``: ``user``, ``service`` or ``agent``; ``roles``: its roles in that tenant;
    ``attrs``: further attributes (JWT claims, department, ...), read-only; ``local``: the
    embedded default's caller, allowed everything in every tenant.
    """

    id: str
    tenant: str
    kind: str = "user"
    roles: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    local: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PRINCIPAL_KINDS:
            raise ValueError(f"principal kind must be one of {PRINCIPAL_KINDS}, not {self.kind!r}")
        for name in ("id", "tenant"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"principal {name} must be a non-empty string, not {value!r}")
        if isinstance(self.roles, str):  # frozenset("admin") would be its letters
            raise TypeError(
                f"principal roles must be a collection of role names, not the string "
                f"{self.roles!r} (write roles={{{self.roles!r}}})"
            )
        if not isinstance(self.roles, frozenset):
            object.__setattr__(self, "roles", frozenset(self.roles))
        if not isinstance(self.attrs, MappingProxyType):
            object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def uid(self) -> str:
        """``kind:tenant/id``: unique across tenants (audit records, lineage)."""
        return f"{self.kind}:{self.tenant}/{self.id}"


#: The caller when none is bound: the embedded default (one local user, all rights).
LOCAL = Principal(id="local", tenant="default", kind="user", roles=frozenset({"admin"}), local=True)

_current: ContextVar[Principal | None] = ContextVar("aiosys_principal", default=None)


def current_principal() -> Principal:
    """The principal bound in this context, else ``LOCAL``."""
    return _current.get() or LOCAL


def bound_principal() -> Principal | None:
    """The principal bound in this context, or None when none is (the local default)."""
    return _current.get()


class bind_principal:
    """Bind ``principal`` for the calls made inside the block (this task and the tasks it
    creates, as any ``contextvars`` value); ``with`` and ``async with`` alike."""

    __slots__ = ("_tokens", "principal")

    def __init__(self, principal: Principal) -> None:
        if not isinstance(principal, Principal):
            raise TypeError(f"expected a Principal, not {type(principal).__name__}")
        self.principal = principal
        self._tokens: list[Token[Principal | None]] = []

    def __enter__(self) -> Principal:
        self._tokens.append(_current.set(self.principal))
        return self.principal

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> Principal:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def principal_json(principal: Principal) -> str | None:
    """The snapshot a run keeps of who started it (``runs.principal``): id, tenant, kind and
    roles as JSON, never attributes (they may hold a token's claims). None for the local
    principal: its runs read back as ``LOCAL``."""
    if principal.local:
        return None
    known = _snapshots.get(id(principal))
    if known is not None and known[0] is principal:  # the same object: made once per principal
        return known[1]
    text = json.dumps(
        {
            "id": principal.id,
            "tenant": principal.tenant,
            "kind": principal.kind,
            "roles": sorted(principal.roles),
        },
        separators=(",", ":"),
    )
    if len(_snapshots) >= 1024:
        _snapshots.clear()
    _snapshots[id(principal)] = (principal, text)  # kept: its id() stays its own
    return text


_snapshots: dict[int, tuple[Principal, str]] = {}


@lru_cache(maxsize=1024)
def _from_json(text: str) -> Principal:
    data = json.loads(text)
    return Principal(
        id=data["id"], tenant=data["tenant"], kind=data["kind"], roles=frozenset(data["roles"])
    )


def principal_of_run(run: RunRow) -> Principal:
    """Who started ``run`` (a snapshot taken then: roles granted or revoked later do not
    show); ``LOCAL`` for a run the local principal started. Child runs inherit their
    parent's."""
    return LOCAL if run.principal is None else _from_json(run.principal)
