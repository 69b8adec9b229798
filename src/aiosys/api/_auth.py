"""Who calls: the principal of a request, bound around the call of the Python API.

``Authorization: Bearer <credential>`` carries an aiosys API key (``aiosys_...``) or an
OIDC/JWT token; ``app.identity.authenticate`` verifies either and gives the principal, bound
(``app.as_principal``) for the rest of the request. Without the header, the caller is the
embedded default's local principal, with every right, as long as no identity is configured
(no API key in the store, no JWT settings), as the CLI is; once one is, a request without a
credential is ``401``. A malformed header is ``401`` whatever is configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..app import App
from ..errors import AuthenticationFailed
from ..kernel import LOCAL, Principal, bind_principal

#: Declares the scheme in the OpenAPI document; the header is read by ``Caller`` itself.
bearer = HTTPBearer(
    auto_error=False,
    description="An aiosys API key (aiosys_...) or an OIDC/JWT bearer token.",
)


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI ``operationId``: its function's name (``start_run``, ``get_run``)."""
    return route.name


class Caller:
    """The dependency that authenticates a request and binds its principal."""

    def __init__(self, app: App) -> None:
        self.app = app
        # Identity, once configured, stays so (keys are revoked, never deleted): remembered.
        self._configured = False

    async def principal(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header's value (None: no header).
        ``AuthenticationFailed`` saying why, never echoing the credential."""
        if authorization is None:
            if self._configured or await self.app.identity.configured():
                self._configured = True
                raise AuthenticationFailed(
                    "no credential: send Authorization: Bearer <API key or token>"
                )
            return LOCAL
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <API key or token>'"
            )
        return await self.app.identity.authenticate(credential)

    async def __call__(
        self,
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> AsyncIterator[Principal]:
        principal = await self.principal(request.headers.get("authorization"))
        with bind_principal(principal):
            yield principal


__all__ = ["Caller", "bearer", "operation_id"]
