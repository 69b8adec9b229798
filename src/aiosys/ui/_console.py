"""What every console page shares: the visitor's principal bound around the page, the CSRF
check of every POST, errors as pages, and the templates.

Every route of the console is a ``ConsoleRoute``: before its endpoint runs, the session is
read, the visitor's principal resolved (``Sessions.principal``) and, for a POST, the form's
``csrf_token`` compared with the session's (403 otherwise; a visitor whose session ended
is sent to the login page first, and nothing is done); then the endpoint runs inside
``app.as_principal(visitor)``, so every call it makes of the App is scoped and checked as
that principal's, as over ``/v1``. A visitor nobody logged in is sent to the login page.
An ``AiosysError`` becomes an error page with the status it means: another tenant's run or
task reads as a missing one (404), a refusal is 403, a decision on a decided task 409.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..app import App
from ..errors import (
    AiosysError,
    AuthenticationFailed,
    IdempotencyConflict,
    InvalidInput,
    InvalidRunState,
    InvalidTaskState,
    ModelNotFound,
    PermissionDenied,
    PolicyDenied,
    RunNotFound,
    TaskNotFound,
    UnknownWorkflow,
)
from ..kernel import Principal
from ._session import Session, Sessions

STATIC = Path(__file__).parent / "static"

#: Every page's headers: nothing is loaded from elsewhere, nothing frames the console, no
#: page is cached (they show tenant data). Style attributes are allowed for the alignment
#: markdown-it writes in a model card's tables (markup itself cannot come from a card).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_STATUS: list[tuple[type[AiosysError], int]] = [
    (RunNotFound, 404),
    (TaskNotFound, 404),
    (ModelNotFound, 404),
    (UnknownWorkflow, 404),
    (PermissionDenied, 403),
    (PolicyDenied, 403),
    (AuthenticationFailed, 403),
    (InvalidRunState, 409),
    (InvalidTaskState, 409),
    (IdempotencyConflict, 409),
]


def status_of(exc: AiosysError) -> int:
    """The HTTP status an error's page gets: 404 for what is not (or not in the visitor's
    tenant), 403 for a refusal, 409 for an action the object's state forbids, else 400."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)


def one_of(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed`` (a query or form field), else ``InvalidInput``
    naming ``what`` and the choices ("" shown as ``empty``)."""
    if value not in allowed:
        choices = ", ".join(a or "empty" for a in allowed)
        raise InvalidInput(f"{what} is one of {choices}, not {value!r}")
    return value


class Console:
    """One console: the aiosys ``app`` it shows, its ``sessions``, the URL ``prefix`` it is
    served under ("" for ``/``) and its templates."""

    def __init__(self, app: App, sessions: Sessions, prefix: str = "") -> None:
        self.app = app
        self.sessions = sessions
        self.prefix = prefix.rstrip("/")
        env = Environment(
            loader=PackageLoader("aiosys.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            when=when,
            ms=duration_ms,
            pretty=pretty,
            money=money,
            pct=percent,
            num=number,
            clip=clip,
        )
        env.globals["P"] = self.prefix
        self.templates = Jinja2Templates(env=env)
        self.routers: list[APIRouter] = []  # filled by mount_console

    @property
    def pages(self) -> set[tuple[str, str]]:
        """Every ``(method, path)`` this console serves (its static files aside)."""
        return {
            (method, f"{self.prefix}{route.path}")
            for router in self.routers
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
        }

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    def page(
        self, request: Request, template: str, code: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page: ``template`` with ``context``, the visitor, its CSRF token and the flash
        message of the session (shown once)."""
        session: Session = request.state.session
        context.update(
            visitor=getattr(request.state, "principal", None),
            csrf=session.csrf,
            flash=session.take_flash(),
            path=request.url.path,
        )
        return self.templates.TemplateResponse(request, template, context, status_code=code)

    def fragment(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        """Part of a page, for htmx to swap in (no layout, no flash taken)."""
        session: Session = request.state.session
        context.update(visitor=request.state.principal, csrf=session.csrf)
        return self.templates.TemplateResponse(request, template, context)

    def back(self, request: Request, path: str, kind: str = "", text: str = "") -> Response:
        """Redirect (303) to ``path`` after a POST, with a message for that page."""
        if text:
            request.state.session.say(kind or "ok", text)
        return RedirectResponse(self.url(path), status_code=303)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.page(
            request,
            "error.html",
            code=status,
            title=f"Error {status}",
            status_code=status,
            message=message,
        )

    def to_login(self, request: Request) -> Response:
        if request.headers.get("HX-Request"):  # a poll: the whole page goes to the login
            login = self.url("/login")
            return Response(status_code=401, headers={"HX-Redirect": login})
        target = request.url.path
        if request.method == "GET" and target.startswith(self.prefix + "/"):
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(
                self.url(f"/login?next={quote(target + query, safe='')}"), status_code=303
            )
        return RedirectResponse(self.url("/login"), status_code=303)

    def route_class(self, *, public: bool = False) -> type[APIRoute]:
        """The route class of this console's pages (``public``: the login page, which
        needs no principal)."""
        console = self

        class ConsoleRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                inner = super().get_route_handler()

                async def handler(request: Request) -> Response:
                    return await console.serve(request, inner, public)

                return handler

        return ConsoleRoute

    async def serve(
        self,
        request: Request,
        inner: Callable[[Request], Coroutine[Any, Any, Response]],
        public: bool,
    ) -> Response:
        session = self.sessions.read(request)
        request.state.session = session
        principal = request.state.principal = await self.sessions.principal(session)
        response: Response
        if principal is None and not public:
            response = self.to_login(request)  # a session that ended: nothing is done
        elif request.method == "POST" and not await self._csrf_ok(request, session):
            response = self.error(
                request,
                403,
                "the form's CSRF token is missing or stale: reload the page and try again",
            )
        else:
            response = await self._as(principal, request, inner)
        if session.changed:
            self.sessions.write(request, response, session)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _as(
        self,
        principal: Principal | None,
        request: Request,
        inner: Callable[[Request], Coroutine[Any, Any, Response]],
    ) -> Response:
        try:
            if principal is None:  # the login page, before anyone logged in
                return await inner(request)
            async with self.app.as_principal(principal):
                return await inner(request)
        except AiosysError as exc:
            return self.error(request, status_of(exc), str(exc))
        except RequestValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
            )
            return self.error(request, 400, f"malformed request: {problems}")

    @staticmethod
    async def _csrf_ok(request: Request, session: Session) -> bool:
        form = await request.form()
        given = form.get("csrf_token")
        if not isinstance(given, str) or not given:
            return False
        return hmac.compare_digest(given.encode(), session.csrf.encode())


# ---- template filters --------------------------------------------------------------------


def when(t: float | None) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` UTC (blank for None)."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration_ms(ms: float | None) -> str:
    """Milliseconds for people: ``12.3 ms``, ``4.2 s``, ``3 min 5 s``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def pretty(value: Any) -> str:
    """A value as indented JSON (text as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


CLIP = 20_000  # characters of one value shown in a page (an effect's output, a run's input)


def clip(text: str, limit: int = CLIP) -> str:
    """``text`` cut at ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters: aiosys runs show --json)"


def money(value: float | None, places: int = 6) -> str:
    return "" if value is None else f"{value:.{places}f}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def number(value: float | None, places: int = 3) -> str:
    """A number to ``places`` significant decimals, without trailing zeros."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return text or "0"


__all__ = ["STATIC", "Console", "one_of", "status_of"]
