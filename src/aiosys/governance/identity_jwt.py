"""OIDC/JWT bearer tokens, verified with PyJWT against a JWKS.

The signing key is the JWKS key named by the token's ``kid`` (a JWKS with one key serves a
token without ``kid``), fetched from ``jwks_url`` with ``jwt.PyJWKClient`` (kept 5 minutes,
fetched again for a ``kid`` it does not know) or read once from ``jwks_file``. Checked:
the signature (asymmetric algorithms only, as configured), ``iss``, ``aud``, ``exp``
(required), ``nbf`` and ``iat`` (when present) with ``leeway`` seconds of clock skew, and
``sub`` (required). Mapped: ``sub`` to the principal's id, the ``tenant_claim`` (required)
to its tenant, the ``roles_claim`` (a list, or a space-separated string; optional) to its
roles. Each refusal is ``AuthenticationFailed`` with the reason, never the token.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt

from ..errors import AuthenticationFailed, ConfigError
from ..kernel.principal import Principal
from .identity_config import JwtSettings

JWKS_LIFESPAN = 300.0


class JwtVerifier:
    """Verifies bearer tokens under ``settings`` (times against this host's clock)."""

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if settings.jwks_url is not None:
            self._client = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=True, lifespan=JWKS_LIFESPAN, timeout=10
            )
        else:
            path = Path(str(settings.jwks_file))
            try:
                self._keys = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read the JWKS file {path}: {exc.strerror}") from None
            except (jwt.PyJWKSetError, json.JSONDecodeError) as exc:
                raise ConfigError(f"the JWKS file {path} holds no usable key: {exc}") from None

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthenticationFailed(f"malformed bearer token: {exc}") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise AuthenticationFailed(
                f"bearer token signed with {alg!r}: accepted are "
                f"{', '.join(self.settings.algorithms)}"
            )
        kid = header.get("kid")
        if self._client is not None:
            try:
                return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientConnectionError as exc:
                raise AuthenticationFailed(
                    f"cannot fetch the JWKS from {self.settings.jwks_url}: {exc}"
                ) from None
            except jwt.PyJWKClientError as exc:
                raise AuthenticationFailed(f"no JWKS key verifies the token: {exc}") from None
        assert self._keys is not None
        keys = self._keys.keys
        for key in keys:
            if key.key_id == kid or (kid is None and len(keys) == 1):
                return key
        raise AuthenticationFailed(f"no key with kid {kid!r} in the JWKS file")

    async def verify(self, token: str) -> Principal:
        """The principal a valid token names; ``AuthenticationFailed`` saying why not."""
        s = self.settings
        key = await self._signing_key(token)
        options: dict[str, Any] = {"require": ["exp", "sub"]}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("bearer token has expired (exp)") from None
        except jwt.ImmatureSignatureError as exc:  # PyJWT raises it for iat too
            if "iat" in str(exc):
                raise AuthenticationFailed("bearer token is issued in the future (iat)") from None
            raise AuthenticationFailed("bearer token is not valid yet (nbf)") from None
        except jwt.InvalidIssuedAtError:
            raise AuthenticationFailed("bearer token's 'iat' claim is not a time") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed(
                f"bearer token has the wrong issuer: expected {s.issuer!r}"
            ) from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed(
                f"bearer token has the wrong audience: expected {s.audience!r}"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("bearer token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"bearer token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"invalid bearer token: {exc}") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        sub, tenant = claims.get("sub"), claims.get(s.tenant_claim)
        if not isinstance(sub, str) or not sub:
            raise AuthenticationFailed("bearer token's 'sub' claim is not a non-empty string")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthenticationFailed(
                f"bearer token's {s.tenant_claim!r} claim (its tenant) must be a string, "
                f"not {type(tenant).__name__}"
            )
        if not tenant:
            raise AuthenticationFailed(
                f"bearer token has no tenant: its {s.tenant_claim!r} claim is missing or empty"
            )
        raw = claims.get(s.roles_claim, [])
        roles = raw.split() if isinstance(raw, str) else raw
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise AuthenticationFailed(
                f"bearer token's {s.roles_claim!r} claim must be a list of strings"
            )
        return Principal(
            id=sub,
            tenant=tenant,
            kind="user",
            roles=frozenset(roles),
            attrs={"auth": "jwt", "iss": claims.get("iss"), "claims": claims},
        )
