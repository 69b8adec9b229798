"""Log in with an API key (or a bearer token), log out.

The key is checked by the identity code every surface uses (``app.identity.authenticate``)
and never kept: the session holds the key's public id, and each request reads the key again
(``Sessions.principal``). Without identity configured there is nothing to log in to: the
page says that every visitor acts as the local principal.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import AuthenticationFailed
from ._console import Console
from ._runs import field


def safe_next(console: Console, target: str) -> str:
    """Where to go after the login: ``target`` if it is a path of this console (never
    another site: ``//host`` and ``\\`` are refused), else the runs page."""
    home = console.url("/runs")
    if not target.startswith(console.prefix + "/") or target.startswith("//") or "\\" in target:
        return home
    return target


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class(public=True))
    app = console.app

    @r.get("/login", name="login")
    async def login_page(request: Request) -> Response:
        target = safe_next(console, request.query_params.get("next", ""))
        identity = await app.identity.configured()
        if identity and request.state.session.logged_in and request.state.principal is not None:
            return RedirectResponse(target, status_code=303)
        return console.page(
            request, "login.html", title="Log in", next=target, identity=identity, problem=None
        )

    @r.post("/login", name="do_login")
    async def login(request: Request) -> Response:
        form = await request.form()
        target = safe_next(console, field(form, "next"))
        credential = field(form, "api_key").strip()
        try:
            if not credential:
                raise AuthenticationFailed("give an API key (aiosys_...)")
            principal = await app.identity.authenticate(credential)
        except AuthenticationFailed as exc:
            return console.page(
                request,
                "login.html",
                code=401,
                title="Log in",
                next=target,
                identity=True,
                problem=f"not logged in: {exc}",
            )
        request.state.session.log_in(principal, app.identity.keys.clock())
        request.state.session.say("ok", f"logged in as {principal.uid}")
        return RedirectResponse(target, status_code=303)

    @r.post("/logout", name="logout")
    async def logout(request: Request) -> Response:
        request.state.session.log_out()
        return RedirectResponse(console.url("/login"), status_code=303)

    return r


__all__ = ["router", "safe_next"]
