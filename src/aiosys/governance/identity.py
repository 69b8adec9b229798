"""Identity: who a credential belongs to, and the stores behind it.

``Identity(store)`` holds the API keys of a store (``identity_keys``) and the JWT settings
(``identity_config``); ``await identity.authenticate(credential)`` turns an API key
(``aiosys_...``) or a bearer token (a JWT) into the ``Principal`` to bind
(``app.as_principal``). With no key in the store and no JWT settings, the app runs without
identity: every caller is the local principal with every right, as before identity existed,
and the app says so once in the log (``aiosys.governance``).
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from ..errors import AuthenticationFailed
from ..kernel.principal import Principal
from ..store.base import Store
from .identity_config import JwtSettings, jwt_settings, key_secret
from .identity_keys import PREFIX, ApiKeys, KeyAudit

if TYPE_CHECKING:
    from .identity_jwt import JwtVerifier

log = logging.getLogger("aiosys.governance")

_said_no_identity = False


class Identity:
    """Credentials of one store. ``jwt``: the JWT settings; True (default) reads the
    configured ones from ./aiosys.toml and the environment, False means none."""

    def __init__(
        self, store: Store, *, jwt: JwtSettings | bool = True, audit: KeyAudit | None = None
    ) -> None:
        self.store = store
        self._jwt_arg = jwt
        self._audit = audit

    @cached_property
    def keys(self) -> ApiKeys:
        """The store's tenants, principals and API keys (each created or revoked told to
        ``audit``, when given)."""
        url = self.store.url
        return ApiKeys(self.store, lambda: key_secret(url), audit=self._audit)

    @cached_property
    def jwt_settings(self) -> JwtSettings | None:
        arg = self._jwt_arg
        if arg is True:
            return jwt_settings()
        return arg if isinstance(arg, JwtSettings) else None

    @cached_property
    def _verifier(self) -> JwtVerifier | None:
        settings = self.jwt_settings
        if settings is None:
            return None
        from .identity_jwt import JwtVerifier  # PyJWT and cryptography: only when used

        return JwtVerifier(settings)

    async def authenticate(self, credential: str) -> Principal:
        """The principal of an API key or a bearer token (``Bearer `` prefix allowed).
        ``AuthenticationFailed`` naming the reason (never the credential): malformed,
        unknown, revoked or expired key; a token whose signature, issuer, audience or times
        do not verify, or no JWT settings for a token."""
        text = credential.strip()
        if text[:7].lower() == "bearer ":
            text = text[7:].strip()
        if not text:
            raise AuthenticationFailed("empty credential")
        if text.startswith(PREFIX):
            return await self.keys.authenticate(text)
        if text.count(".") == 2:
            verifier = self._verifier
            if verifier is None:
                raise AuthenticationFailed(
                    "a bearer token was given but no JWT settings are configured "
                    "([identity.jwt] in aiosys.toml or AIOSYS_JWT_*)"
                )
            return await verifier.verify(text)
        raise AuthenticationFailed(
            "the credential is neither an aiosys API key (aiosys_...) nor a JWT"
        )

    async def configured(self) -> bool:
        """Whether any identity is configured: JWT settings, or an API key in the store."""
        return self.jwt_settings is not None or await self.keys.count() > 0


async def note_identity(store: Store) -> None:
    """Log once per process when the app runs without identity."""
    global _said_no_identity
    if _said_no_identity:
        return
    _said_no_identity = True  # asked once per process
    if not await Identity(store).configured():
        log.info(
            "running without identity (no API keys, no JWT settings): every caller is the "
            "local principal, with every right in every tenant"
        )
