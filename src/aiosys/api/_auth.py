"""Who calls: the principal of a request, bound around the call of the Python API.

``Authorization: Bearer <credential>`` carries an aiosys API key (``aiosys_...``) or an
OIDC/JWT token; ``app.identity.authenticate`` verifies either and gives the principal, bound
(``app.as_principal``) for the rest of the request. Without the header, the caller is the
embedded default's local principal, with every right, as long as no identity is configured
(no API key in the store, no JWT settings), as the CLI is; once one is, a request without a
credential is ``401``. A malformed header is ``401`` whatever is configured.

Rights come before the rest of a request: the Python API asks them before it checks what it
was given, and a /v1 route whose request FastAPI could not validate asks them first too
(``RightsFirst``), so a caller without them learns that, never what is wrong with its body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Request, Response, Security
from fastapi.exceptions import RequestValidationError
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


#: The attribute of a /v1 endpoint holding its admission (``rights_first``).
ADMIT = "__aiosys_admit__"
#: What a route asks before anything else: ``admission(path_params, tenant)`` raises when the
#: bound caller may not do what the route does (``tenant``: the ``tenant`` query parameter).
Admission = Callable[[dict[str, Any], str | None], Awaitable[None]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def rights_first(caller: Caller, admission: Admission) -> Callable[[Endpoint], Endpoint]:
    """Give a /v1 route (of a ``RightsFirst`` router) its admission: what the route's call
    of the Python API asks first (``App.admit_run``, ``App.admit_task``, ...), without doing
    it, as the caller of the request (authenticated again: FastAPI ended the request's
    dependencies with its validation error)."""

    def give(endpoint: Endpoint) -> Endpoint:
        async def admit(request: Request) -> None:
            principal = await caller.principal(request.headers.get("authorization"))
            with bind_principal(principal):
                await admission(dict(request.path_params), request.query_params.get("tenant"))

        setattr(endpoint, ADMIT, admit)
        return endpoint

    return give


class RightsFirst(APIRoute):
    """A /v1 route whose request FastAPI cannot validate (a body of another shape, text
    pydantic refuses, a query parameter) asks the caller's rights first (``rights_first``):
    a caller without them learns that (401, 403, or 404 for another tenant's object), never
    what is wrong with the rest of its request; one with them gets the 422 (or 400, 415) it
    would have got. A request that validates asks them in the Python API's call, once."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        endpoint = self.endpoint

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                admit = getattr(endpoint, ADMIT, None)
                if admit is not None:
                    await admit(request)
                raise

        return route


__all__ = ["ADMIT", "Caller", "Endpoint", "RightsFirst", "bearer", "operation_id", "rights_first"]
