"""``create_api``: the FastAPI application over one ``App``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from ..app import App
from ..errors import ConfigError
from ..ui import mount_console
from . import _events, _probes, _reads, _runs, _tasks
from ._auth import Caller
from ._head import HeadAsGet
from ._limits import DeclaredBodyLimit, resolve_max_body_size
from ._problems import MEDIA_TYPE, Problems, on_http_error, on_invalid_request
from .openai_compat import DirectPath, Gateway

DESCRIPTION = """\
The HTTP API of aiosys. Every request is a call of the same Python API (`aiosys.App`) as the
caller's principal: `Authorization: Bearer <key>` with an aiosys API key or an OIDC/JWT
token (without identity configured, requests without it act as the local principal). Errors
are RFC 9457 problem details (`application/problem+json`); another tenant's object is 404.
A caller's rights are asked before its request is validated: without them it gets 403 (or
404), never a 422 about its body.
A request body over the server's cap (8 MiB unless configured) is 413.
"""


class _API(FastAPI):
    """FastAPI, with a body's declared length checked against ``max_body_size`` before
    anything else (``aiosys.api._limits``), then the gateway's common request served
    (``direct``: ``openai_compat.DirectPath``) before FastAPI's own middleware; HEAD is
    served as GET (``aiosys.api._head``)."""

    direct: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.direct is not None:
            stack = self.direct(stack)
        return HeadAsGet(DeclaredBodyLimit(stack, self))


def _version() -> str:
    try:
        return version("aiosys")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0"


def create_api(
    app: App,
    *,
    worker: bool = False,
    drain_grace: float = 30.0,
    max_body_size: int | str | None = None,
) -> FastAPI:
    """The HTTP API of ``app`` (an ``aiosys.App``) as an ASGI application.

    Its lifespan opens the app and closes it; with ``worker`` it runs the app's worker in
    this process as well (the embedded default: ``async with app.embedded(...)``), which on
    shutdown drains: runs in flight get ``drain_grace`` seconds to end or park, then are
    given back (``api.state.embedded.force()`` gives them back at once). Without the
    lifespan (a test's ASGI transport), the app opens on first use. ``max_body_size``: the
    cap on a request's body (bytes, or a text such as ``"16MiB"``; None:
    ``AIOSYS_MAX_BODY_SIZE``, else ``[server] max_body_size`` in ./aiosys.toml, else 8 MiB),
    over which a request is 413 before its body is read whole (``aiosys.api._limits``).
    ``ConfigError`` for an app that is not an ``aiosys.App`` (it has no identity to
    authenticate callers with), or a cap that is no size."""
    if not isinstance(app, App):
        raise ConfigError(
            f"the HTTP API serves an aiosys.App, not {type(app).__module__}."
            f"{type(app).__name__}: make the app with `from aiosys import App`"
        )
    limit = resolve_max_body_size(max_body_size)
    embedded = app.embedded(drain_grace=drain_grace) if worker else None
    gateway = Gateway(app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if embedded is not None:
            async with embedded:
                try:
                    yield
                finally:  # streams in flight end (metered, audited) before the app closes
                    await gateway.drain()
            return
        await app.open()
        try:
            yield
        finally:
            await gateway.drain()
            await app.close()

    api = _API(
        title="aiosys",
        max_body_size=limit,
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not served
        redoc_url=None,
    )
    api.state.app = app
    api.state.embedded = embedded
    api.state.gateway = gateway
    api.add_middleware(Problems)
    api.add_exception_handler(HTTPException, on_http_error)
    api.add_exception_handler(RequestValidationError, on_invalid_request)
    caller = Caller(app)
    # The OpenAI-compatible gateway (/v1/chat/completions, /v1/embeddings, /v1/models): its
    # routes answer their own errors in OpenAI's error body, which the SDKs read. First:
    # routes are matched in order, and the gateway's are the ones called most.
    api.router.routes.extend(gateway.router(caller).routes)
    # Outside FastAPI's middleware: the common gateway request skips it (``DirectPath``).
    api.direct = lambda stack: DirectPath(stack, gateway, caller.principal)
    for module in (_runs, _events, _tasks, _reads, _probes):
        # Each route made by its module's router (with its prefix and dependencies), put on
        # the application itself: ``api.routes`` lists every route (the tenant walk reads it).
        api.router.routes.extend(module.router(app, caller).routes)
    # The web console at / (its pages answer in HTML and are left out of the OpenAPI document).
    api.state.console = mount_console(api, app)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
            )
            api.openapi_schema = _problem_content(schema)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def _problem_content(schema: dict[str, Any]) -> dict[str, Any]:
    """Errors are declared as ``application/problem+json``, the type they are sent as
    (FastAPI declares a model it is given in the route's own media type)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in "45" and any(c.get("schema") == ref for c in content.values()):
                    response["content"] = {MEDIA_TYPE: {"schema": ref}}
    return schema


__all__ = ["create_api"]
