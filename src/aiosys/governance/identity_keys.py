"""Tenants, principals with roles per tenant, and API keys, in the store.

An API key reads ``aiosys_<id>_<secret>``: ``id`` (16 hex digits) is public, listed and used
to revoke the key; the whole key is shown once, when it is created, and the store keeps only
``HMAC-SHA256(key secret, key)`` (``identity_config.key_secret``), compared in constant
time. A key has an expiry (or none) and may be revoked; its principal's roles are read when
it is used, so a role granted or withdrawn applies at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..errors import AuthenticationFailed, ConfigError, InvalidInput
from ..kernel.principal import PRINCIPAL_KINDS, Principal
from ..store._text import check_identifier
from ..store.base import Store

PREFIX = "aiosys_"
_KEY = re.compile(r"^aiosys_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An API key as listed: never its secret. Times in seconds since the epoch."""

    id: str
    tenant: str
    principal: str
    kind: str
    roles: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def status(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: ``key`` is the whole secret, shown this once."""

    key: str
    info: KeyInfo


#: Told of a key created or revoked (``"create_key"``/``"revoke_key"``, the key as listed,
#: never its secret), after the write: the audit log records it (``AuditLog.key_action``).
KeyAudit = Callable[[str, "KeyInfo"], Awaitable[None]]


class ApiKeys:
    """The identity tables of one store. ``secret``: what keys are hashed under (a callable,
    read on first need); ``clock``: seconds since the epoch (tests move it)."""

    def __init__(
        self,
        store: Store,
        secret: Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        audit: KeyAudit | None = None,
    ) -> None:
        self.store = store
        self._secret_source = secret
        self._secret: bytes | None = None
        self.clock = clock
        self._audit = audit

    def _hash(self, key: str) -> str:
        if self._secret is None:
            self._secret = self._secret_source()
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    async def create(
        self,
        tenant: str,
        principal: str,
        *,
        kind: str = "user",
        roles: Iterable[str] = (),
        expires_in: float | None = None,
    ) -> NewKey:
        """Create an API key for ``principal`` of ``tenant`` (both recorded if new; ``roles``
        granted to it in that tenant, besides those it holds), expiring ``expires_in``
        seconds from now (None: never). ``InvalidInput`` for a bad name, kind or duration,
        or a principal left with no role."""
        check_identifier("tenant", tenant)
        check_identifier("principal", principal)
        for name, value in (("tenant", tenant), ("principal", principal)):
            if not value or value != value.strip():
                raise InvalidInput(f"{name} {value!r} must be non-empty, without outer spaces")
        if kind not in PRINCIPAL_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(PRINCIPAL_KINDS)}, not {kind!r}")
        if expires_in is not None and expires_in <= 0:
            raise InvalidInput(f"a key's lifetime must be positive, not {expires_in}s")
        self._hash("")  # no usable secret: ConfigError now, before anything is written
        now = self.clock()
        s = self.store
        await s.execute("upsert_tenant", {"id": tenant, "now": now})
        await s.execute(
            "upsert_principal", {"tenant": tenant, "id": principal, "kind": kind, "now": now}
        )
        existing = await s.fetch("get_principal", {"tenant": tenant, "id": principal})
        if existing and existing[0]["kind"] != kind:
            raise InvalidInput(
                f"principal {principal!r} of tenant {tenant!r} is a {existing[0]['kind']}, "
                f"not a {kind}"
            )
        for role in sorted(set(roles)):
            check_identifier("role", role)
            await s.execute("add_role", {"tenant": tenant, "principal": principal, "role": role})
        held = await self.roles(tenant, principal)
        if not held:
            raise InvalidInput(
                f"principal {principal!r} has no role in tenant {tenant!r}: give it one "
                "(admin, operator, runner, viewer)"
            )
        key_id = secrets.token_hex(8)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        expires_at = None if expires_in is None else now + expires_in
        await s.execute(
            "insert_api_key",
            {
                "id": key_id,
                "tenant": tenant,
                "principal": principal,
                "hash": self._hash(key),
                "now": now,
                "expires_at": expires_at,
            },
        )
        info = KeyInfo(key_id, tenant, principal, kind, held, now, expires_at, None)
        if self._audit is not None:
            await self._audit("create_key", info)
        return NewKey(key, info)

    async def roles(self, tenant: str, principal: str) -> tuple[str, ...]:
        rows = await self.store.fetch(
            "roles_of_principal", {"tenant": tenant, "principal": principal}
        )
        return tuple(r["role"] for r in rows)

    async def list(self, tenant: str | None = None) -> list[KeyInfo]:
        """The keys of ``tenant`` (None: every tenant), oldest first, without secrets.
        ``InvalidInput`` for a tenant named empty (or unstorable), which no key can be of."""
        if tenant is not None:
            check_identifier("tenant", tenant)
        rows = await self.store.fetch("list_api_keys", {"tenant": tenant})
        roles: dict[tuple[str, str], tuple[str, ...]] = {}
        out = []
        for r in rows:
            who = (r["tenant"], r["principal"])
            if who not in roles:
                roles[who] = await self.roles(*who)
            out.append(
                KeyInfo(
                    r["id"],
                    r["tenant"],
                    r["principal"],
                    r["kind"],
                    roles[who],
                    r["created_at"],
                    r["expires_at"],
                    r["revoked_at"],
                )
            )
        return out

    async def get(self, key_id: str) -> KeyInfo | None:
        rows = await self.store.fetch("get_api_key", {"id": key_id})
        if not rows:
            return None
        r = rows[0]
        roles = await self.roles(r["tenant"], r["principal"])
        return KeyInfo(
            r["id"],
            r["tenant"],
            r["principal"],
            r["kind"],
            roles,
            r["created_at"],
            r["expires_at"],
            r["revoked_at"],
        )

    async def revoke(self, key_id: str, *, tenant: str | None = None) -> KeyInfo:
        """Revoke the key ``key_id`` (of ``tenant``; None: any). ``InvalidInput`` if there is
        no such key there (another tenant's reads as missing); revoking twice keeps the
        first time."""
        if key_id.startswith(PREFIX):  # a whole key, secret and all: never echo it back
            m = _KEY.match(key_id)
            raise InvalidInput(
                "give the key's id, not the key itself"
                + (f" (its id is {m.group(1)})" if m else "")
                + ": `aiosys keys list` shows the ids"
            )
        info = await self.get(key_id) if _ID.match(key_id) else None
        if info is None or (tenant is not None and info.tenant != tenant):
            where = "" if tenant is None else f" in tenant {tenant!r}"
            raise InvalidInput(f"no API key with id {key_id!r}{where}")
        await self.store.execute("revoke_api_key", {"id": key_id, "now": self.clock()})
        revoked = await self.get(key_id)
        if revoked is None:  # pragma: no cover - keys are never deleted
            raise ConfigError(f"API key {key_id} vanished while being revoked")
        if self._audit is not None:
            await self._audit("revoke_key", revoked)
        return revoked

    async def count(self) -> int:
        return int((await self.store.fetch("count_api_keys", {}))[0]["n"])

    async def authenticate(self, key: str) -> Principal:
        """The principal of ``key``; ``AuthenticationFailed`` saying why (malformed, unknown,
        does not match, revoked, expired), naming at most the key's public id."""
        m = _KEY.match(key)
        if m is None:
            raise AuthenticationFailed(
                "malformed API key: expected aiosys_<16 hex digits>_<43 characters>"
            )
        key_id = m.group(1)
        rows = await self.store.fetch("get_api_key", {"id": key_id})
        digest = self._hash(key)
        stored = rows[0]["hash"] if rows else "0" * 64  # the same comparison either way
        matches = hmac.compare_digest(digest.encode(), str(stored).encode())
        if not rows:
            raise AuthenticationFailed(f"unknown API key {key_id}")
        if not matches:
            raise AuthenticationFailed(f"API key {key_id} does not verify (wrong secret part)")
        r = rows[0]
        if r["revoked_at"] is not None:
            raise AuthenticationFailed(f"API key {key_id} was revoked")
        if r["expires_at"] is not None and self.clock() >= r["expires_at"]:
            raise AuthenticationFailed(f"API key {key_id} has expired")
        roles = await self.roles(r["tenant"], r["principal"])
        return Principal(
            id=r["principal"],
            tenant=r["tenant"],
            kind=r["kind"],
            roles=frozenset(roles),
            attrs={"auth": "api_key", "key_id": key_id},
        )
