"""The cap on a request's body: ``max_body_size`` bytes (8 MiB unless configured).

A body over the cap is answered 413 before it is read whole, in the error shape of its
route (OpenAI's error body on the gateway, a problem elsewhere), both ways a body comes:

- one that declares its ``Content-Length`` over the cap is refused at once, nothing of it
  read (``DeclaredBodyLimit``, outside FastAPI's middleware);
- one that declares none (``Transfer-Encoding: chunked``, a streamed upload) is counted as
  it is read, by FastAPI's own limit (``FastAPI(max_body_size=...)``, Starlette's
  ``RequestBodyLimitMiddleware``), which stops at the first chunk past the cap and raises
  its 413 ``HTTPException``; the routes' error handlers answer it in their shape
  (``aiosys.api._body``).

FastAPI's limit alone does not do for the first: Starlette answers a declared length over
the cap with its own ``text/plain`` "Content Too Large" in place of any response the app
sends, so neither shape would reach the client.

Why 8 MiB: the largest body the API has reason to take is a chat request filling a long
context window (a million tokens is about 4 MB of text, more once JSON escapes it) or
2048 embedding inputs; a workflow's input or a task's decision is far smaller. A body is
parsed whole into Python objects (several times its size in memory) before it is
validated, so the cap bounds what one request can make a server hold.

``resolve_max_body_size`` reads the cap from the argument (``create_api(max_body_size=)``,
``aiosys server --max-body-size``), else ``AIOSYS_MAX_BODY_SIZE``, else ``max_body_size``
under ``[server]`` in ./aiosys.toml, else the default: bytes as an integer or a text such as
``"512KiB"``, ``"16MiB"``, ``"1GB"``; ``ConfigError`` for anything else.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError
from ._body import body_too_large
from ._problems import body_problem
from .openai_errors import OpenAIRoute, body_error

#: The cap when none is configured (module docstring): 8 MiB.
DEFAULT_MAX_BODY_SIZE = 8 * 1024 * 1024
ENV = "AIOSYS_MAX_BODY_SIZE"

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
FORMS = "a number of bytes or a size such as 512KiB, 8MiB, 1GB"


def parse_size(value: Any) -> int:
    """Bytes from an integer or a text (``"8MiB"`` -> 8388608; units B, KB, MB, GB, KiB,
    MiB, GiB, any case). ``ValueError`` naming the forms for anything else (a negative
    size, a boolean, an unknown unit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        found = _SIZE.fullmatch(value.strip().lower())
        if found is not None and found.group(2) in _UNITS:
            return int(float(found.group(1)) * _UNITS[found.group(2)])
    raise ValueError(f"{value!r} is not {FORMS}")


def resolve_max_body_size(arg: int | str | None = None) -> int:
    """The cap on a request's body, in bytes (module docstring); ``ConfigError`` naming
    where a value that is no size came from."""
    for where, value in (
        ("max_body_size", arg),
        (ENV, os.environ.get(ENV) or None),
        ("aiosys.toml [server] max_body_size", _toml_server().get("max_body_size")),
    ):
        if value is not None:
            try:
                return parse_size(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    return DEFAULT_MAX_BODY_SIZE


def _toml_server() -> dict[str, Any]:
    path = Path("aiosys.toml")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("server", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError("aiosys.toml: [server] must be a table")
    return table


def content_coding(scope: Scope) -> str | None:
    """The request's ``Content-Encoding`` when it has a body and names a coding other than
    ``identity`` (``gzip``, ``br``), else None."""
    coding, has_body = None, False
    for name, value in scope.get("headers", ()):
        if name == b"content-encoding":
            coding = value.decode("latin-1").strip()
        elif name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            has_body = True
    if not has_body or coding is None or coding.lower() in ("", "identity"):
        return None
    return str(coding)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, None without one (or one that is no number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class DeclaredBodyLimit:
    """ASGI: a request whose ``Content-Length`` is over ``api.max_body_size`` is answered
    413, nothing of its body read, and one whose body is sent compressed
    (``Content-Encoding: gzip``, which nothing here decodes: it was read as if it were
    plain JSON, or failed as "not UTF-8 text") 415 naming the coding, each in its route's
    error shape; any other goes on to ``app`` (``api``'s middleware stack, which counts a
    body of no declared length)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            limit = self.api.max_body_size
            length = declared_length(scope)
            coding = content_coding(scope)
            response = None
            if limit is not None and length is not None and length > limit:
                limited = {**scope, MAX_BODY_SIZE_SCOPE_KEY: limit}
                response = self.refusal(limited, *body_too_large(Request(limited)))
            elif coding is not None:
                message = (
                    f"the body is sent with Content-Encoding {coding!r}, which this server "
                    "does not decode: send it uncompressed (identity)"
                )
                response = self.refusal(scope, 415, message)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope, status: int, message: str) -> JSONResponse:
        request = Request(scope)
        for route in self.api.router.routes:
            if isinstance(route, OpenAIRoute) and route.matches(scope)[0] is Match.FULL:
                return body_error(status, message)
        return body_problem(request, status, message)


__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DeclaredBodyLimit",
    "parse_size",
    "resolve_max_body_size",
]
