"""``mount_console``: the console's pages and static files on a FastAPI application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..app import App
from . import _audit, _budgets, _catalog, _login, _runs, _stats, _tasks
from ._console import Console
from ._session import DEFAULT_TTL, Sessions


def mount_console(
    api: FastAPI,
    app: App,
    *,
    prefix: str = "",
    secret: str | bytes | None = None,
    session_ttl: float = DEFAULT_TTL,
    secure_cookies: bool | None = None,
) -> Console:
    """Serve the console of ``app`` from ``api`` under ``prefix`` ("" for ``/``): its pages
    (left out of the OpenAPI document) and its static files (``<prefix>/ui/static/``, from
    the package: nothing is fetched from elsewhere).

    ``secret``: what session cookies are signed with (32+ bytes; default: see
    ``aiosys.ui._session``); ``session_ttl``: seconds a login lasts; ``secure_cookies``: mark
    the cookie ``Secure`` (None: when the request came over HTTPS). The caller opens and
    closes ``app`` (the server's lifespan); the pages call it as the visitor's principal.
    ``ValueError`` for a prefix that is not empty or ``/name``."""
    prefix = prefix.rstrip("/")
    if prefix and (not prefix.startswith("/") or "//" in prefix):
        raise ValueError(f"the console's prefix is empty or a path like /console, not {prefix!r}")
    sessions = Sessions(
        app, secret=secret, ttl=session_ttl, secure=secure_cookies, path=prefix or "/"
    )
    console = Console(app, sessions, prefix)
    api.mount(
        f"{prefix}/ui/static",
        StaticFiles(packages=[("aiosys.ui", "static")]),
        name="console_static",
    )
    home = APIRouter(route_class=console.route_class())

    @home.get("/", name="console_home")
    async def index(request: Request) -> Response:
        return RedirectResponse(console.url("/runs"), status_code=303)

    for router in (
        home,
        _login.router(console),
        _runs.router(console),
        _tasks.router(console),
        _catalog.router(console),
        _audit.router(console),
        _stats.router(console),
        _budgets.router(console),
    ):
        api.include_router(router, prefix=prefix, include_in_schema=False)
        console.routers.append(router)
    return console


__all__ = ["mount_console"]
