"""Errors of the OpenAI-compatible gateway, in OpenAI's shape, so SDKs raise their usual ones.

Every error is ``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI
would send; the official SDK picks its exception class by the status alone:

====  =========================  ==================================================================
400   ``BadRequestError``        a body that does not validate or is not JSON (or not UTF-8);
                                 ``InvalidInput``;
                                 ``ProviderRejected`` (the model's server refused the request)
401   ``AuthenticationError``    ``AuthenticationFailed``: a missing, unknown, revoked or expired
                                 key or token
403   ``PermissionDeniedError``  ``PolicyDenied`` (the message names the policies; ``policies``
                                 and ``policy_version`` beside it), ``PermissionDenied``
404   ``NotFoundError``          ``ModelNotFound``: no card, alias or task of that name
405   ``APIStatusError``         a method the path does not take (``GET /v1/chat/completions``),
                                 with ``Allow``
413   ``APIStatusError``         a body over the server's cap (``aiosys.api._limits``)
415   ``APIStatusError``         a body not sent as ``Content-Type: application/json``
429   ``RateLimitError``         ``BudgetExceeded`` (type ``insufficient_quota``, as OpenAI
                                 answers an exhausted quota; ``x-should-retry: false``)
500   ``InternalServerError``    ``ConfigError`` (its message), anything else (logged, not told)
502   ``InternalServerError``    ``NoRouteAvailable``, ``InvalidModelOutput``: no model could
                                 serve, for good
503   ``InternalServerError``    ``ProviderUnavailable``: no model can serve now; ``Retry-After``
                                 when it is known (the SDK waits that long before its retry);
                                 the store cannot be reached (``store_unavailable``)
====  =========================  ==================================================================

No message says where a model's server or the store runs (``classify``): endpoints, hosts
and ports are in the server's log only. Permanent errors carry ``x-should-retry: false``,
which the official SDKs obey, so a denial is not sent three times. ``OpenAIRoute`` is the
route class of the gateway's router: it turns
what a route (or its dependencies: the caller's authentication, the body's validation)
raises into these responses before any application-wide handler sees it, so the rest of
the server may answer its own routes with another shape (RFC 9457 problem details).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from ..errors import (
    AuthenticationFailed,
    BudgetExceeded,
    ConfigError,
    InvalidInput,
    InvalidModelOutput,
    ModelNotFound,
    NoRouteAvailable,
    PermissionDenied,
    PolicyDenied,
    ProviderRejected,
    ProviderUnavailable,
)
from ..redact import withhold_addresses
from ..store import unavailable
from ._body import body_fault

log = logging.getLogger("aiosys.api")

#: Exception class -> (status, type, code), most specific first (the first match wins).
ERRORS: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (AuthenticationFailed, 401, "invalid_request_error", "invalid_api_key"),
    (PolicyDenied, 403, "permission_error", "policy_denied"),
    (PermissionDenied, 403, "permission_error", "permission_denied"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (BudgetExceeded, 429, "insufficient_quota", "insufficient_quota"),
    (InvalidInput, 400, "invalid_request_error", None),
    (ProviderUnavailable, 503, "server_error", "model_unavailable"),
    (NoRouteAvailable, 502, "server_error", "no_model_available"),
    (InvalidModelOutput, 502, "server_error", "invalid_model_output"),
    (ProviderRejected, 400, "invalid_request_error", "rejected_by_model"),
    (ConfigError, 500, "server_error", "configuration_error"),
)
#: Statuses an SDK would retry, but for which a retry cannot help.
_NO_RETRY = {429, 500, 502}


class BadParam(InvalidInput):
    """A request the gateway cannot serve as it is: ``param`` names the field at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str
    type: str = Field(description="invalid_request_error, permission_error, server_error, ...")
    param: str | None = Field(default=None, description="The request field at fault, if one.")
    code: str | None = Field(default=None, description="A stable name of the error.")


class ErrorBody(BaseModel):
    """OpenAI's error body."""

    error: ErrorDetail


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code, **extra}}


def classify(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers of an error raised while serving a request (a plain
    answer's, or a stream's error event). The message never says where a model or the
    store runs: a provider's error names its endpoint, its transport's the host and port
    (``redact.withhold_addresses`` leaves them out; the log has them whole), and the store's
    driver its host and database (503, logged, not told)."""
    if unavailable(exc):  # a StoreUnavailable (a ConfigError), or a driver's error
        log.warning("OpenAI-compatible request: the store cannot answer: %s", exc)
        body = error_body(
            "the store cannot be reached now; try again later", "server_error", "store_unavailable"
        )
        return 503, body, {}
    found = next((e for e in ERRORS if isinstance(exc, e[0])), None)
    if found is None:
        log.error("OpenAI-compatible request failed: %s", type(exc).__name__, exc_info=exc)
        body = error_body("internal error (logged by the server)", "server_error", "internal")
        return 500, body, {}
    _, status, type_, code = found
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    param = "model" if isinstance(exc, ModelNotFound) else getattr(exc, "param", None)
    if isinstance(exc, PolicyDenied):
        extra = {"policies": list(exc.policies), "policy_version": exc.policy_version}
    elif isinstance(exc, AuthenticationFailed):
        headers["www-authenticate"] = 'Bearer realm="aiosys"'
    elif isinstance(exc, ProviderUnavailable) and exc.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    if status in _NO_RETRY or 400 <= status < 500:
        headers["x-should-retry"] = "false"
    message = withhold_addresses(str(exc))
    if message != str(exc):
        log.warning("OpenAI-compatible request failed (%s): %s", type(exc).__name__, exc)
    return status, error_body(message, type_, code, param, **extra), headers


def error_response(exc: BaseException) -> JSONResponse:
    status, body, headers = classify(exc)
    return JSONResponse(body, status_code=status, headers=headers)


def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body FastAPI could not validate: 400, ``param`` the field at fault (``stream``,
    ``messages.0.role``, ``stop.1``: the deepest fault of the first field named), every
    problem in the message; one not JSON at all (400) or not sent as JSON (415) says so
    (``aiosys.api._body``), with no ``param``."""
    fault = body_fault(request, exc)
    if fault is not None:
        return body_error(*fault)
    errors = list(exc.errors())
    paths = [field_path(e.get("loc", ()), exc.body) for e in errors]
    where = [
        f"{'.'.join(p) or 'body'}: {e.get('msg', '')}" for p, e in zip(paths, errors, strict=True)
    ]
    first = paths[0] if paths else []
    if first:  # the deepest fault of the first field named: stop.1, not stop
        first = max((p for p in paths if p[:1] == first[:1]), key=len)
    message = "Invalid request: " + "; ".join(dict.fromkeys(where))
    body = error_body(message, "invalid_request_error", None, ".".join(first) or None)
    return JSONResponse(body, status_code=400, headers={"x-should-retry": "false"})


def field_path(loc: Sequence[Any], body: Any) -> list[str]:
    """The request field a pydantic error's ``loc`` names, as the caller wrote it: ``body``
    left out, and the names pydantic gives the members of a union (``str``,
    ``list[str]``, a model's name) dropped, by following ``loc`` through ``body``, the
    JSON sent: ``("body", "stop", "list[str]", 1)`` is ``stop.1``. A missing field (the last
    part, absent from its object) is named; a header's ``loc`` is kept whole."""
    if tuple(loc[:1]) != ("body",):  # a header's or the path's: as pydantic names it
        return [str(part) for part in loc]
    parts = list(loc[1:])
    node, out = body, []
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif i != len(parts) - 1:  # a union member's name
                continue
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:  # a scalar, or a list's union member name: the member's name
            continue
        out.append(str(part))
    return out


def body_error(status: int, message: str) -> JSONResponse:
    """A body that could not be read (``aiosys.api._body.body_fault``) in OpenAI's shape."""
    body = error_body(message, "invalid_request_error", None, None)
    return JSONResponse(body, status_code=status, headers={"x-should-retry": "false"})


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """An ``HTTPException`` raised by FastAPI itself (a body that is not UTF-8 text, say) in
    OpenAI's shape, with its status (a client error is ``invalid_request_error``)."""
    fault = body_fault(request, exc)
    if fault is not None:
        return body_error(*fault)
    status = exc.status_code
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    headers = dict(exc.headers or {}) | ({"x-should-retry": "false"} if status < 500 else {})
    body = error_body(f"{exc.detail}", kind, None, None)
    return JSONResponse(body, status_code=status, headers=headers)


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> JSONResponse:
    """405 as OpenAI answers a method its URL does not take ("Invalid method for URL (GET
    /v1/chat/completions)"), ``Allow`` listing those it does."""
    body = error_body(f"Invalid method for URL ({method} {path})", "invalid_request_error")
    headers = {"allow": ", ".join(sorted(allowed)), "x-should-retry": "false"}
    return JSONResponse(body, status_code=405, headers=headers)


class OpenAIRoute(APIRoute):
    """Routes whose errors (their own, their dependencies', their body's) are OpenAI's; a
    method the route does not take too (``GET /v1/chat/completions``): 405 in OpenAI's
    shape and words, with ``Allow``, where Starlette would raise it to the application's
    handler (problem details)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await method_not_allowed(scope["method"], scope["path"], self.methods)(
                scope, receive, send
            )
            return
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return invalid_request(request, exc)
            except HTTPException as exc:  # FastAPI's own: a body it could not read at all
                return http_error(request, exc)
            except Exception as exc:
                return error_response(exc)

        return route


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a gateway route: each status answered with OpenAI's error."""
    phrases = {
        400: "Bad request",
        401: "Bad or missing key",
        403: "Denied by a policy or a role",
        404: "No such model",
        413: "Body over the server's cap",
        429: "Budget exhausted",
        500: "Internal error",
        502: "No model could serve",
        503: "No model can serve now",
    }
    declared: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": phrases[s]} for s in sorted(statuses)
    }
    # In OpenAI's shape too; and declared, FastAPI no longer declares its 422, never sent
    # here (a body that does not validate is a 400, as at OpenAI).
    declared["4XX"] = {"model": ErrorBody, "description": "Another client error"}
    return declared
