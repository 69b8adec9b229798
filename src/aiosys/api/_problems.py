"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the HTTP API answers is a ``Problem``: ``type`` (a URN naming the aiosys error,
``urn:aiosys:problem:run-not-found``; ``about:blank`` for a plain HTTP error such as an
unknown path), ``title`` (the status's phrase), ``status``, ``detail`` (the error's message,
which names no secret) and ``instance`` (the request's path), plus extension members where
the error carries more: ``policies`` and ``policy_version`` of a ``PolicyDenied``, the
``run_id`` an ``IdempotencyConflict`` names, the ``task_status`` of an ``InvalidTaskState``
(the task's status, e.g. ``completed``), the ``errors`` of a request that does not
validate. The status comes from the exception's class (``STATUSES``, most specific first):

====  =========================================================================================
400   a body that is not JSON (or not UTF-8)
413   a body over the server's cap (``aiosys.api._limits``: 8 MiB unless configured)
415   a body not sent as ``Content-Type: application/json``
401   AuthenticationFailed (and a missing credential once identity is configured)
403   PermissionDenied, PolicyDenied (names the policies)
404   RunNotFound, TaskNotFound, UnknownWorkflow, UnknownTopic, ModelNotFound (another tenant's
      object too)
409   IdempotencyConflict, InvalidRunState, InvalidTaskState
422   InvalidInput, UnknownQueue, NotSerializable, StoreRefused, a request that does not validate
429   BudgetExceeded; ProviderUnavailable with a retry time (``Retry-After``)
503   StoreUnavailable and whatever else says the store cannot answer now; ProviderUnavailable
500   ConfigError (the server's configuration: its message, which names no secret, is the
      detail); anything else: logged with its traceback, answered without it
====  =========================================================================================
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    AuthenticationFailed,
    BudgetExceeded,
    ConfigError,
    IdempotencyConflict,
    InvalidInput,
    InvalidModelOutput,
    InvalidRunState,
    InvalidTaskState,
    ModelNotFound,
    NoRouteAvailable,
    NotSerializable,
    PermissionDenied,
    PolicyDenied,
    ProviderRejected,
    ProviderUnavailable,
    RunNotFound,
    StoreRefused,
    TaskNotFound,
    UnknownQueue,
    UnknownTopic,
    UnknownWorkflow,
)
from ..redact import withhold_addresses
from ..store import unavailable
from ._body import body_fault, http_detail

log = logging.getLogger("aiosys.api")

MEDIA_TYPE = "application/problem+json"
URN = "urn:aiosys:problem:"

#: Exception class -> HTTP status, most specific first (the first match wins).
STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationFailed, 401),
    (PolicyDenied, 403),
    (PermissionDenied, 403),
    (RunNotFound, 404),
    (TaskNotFound, 404),
    (UnknownWorkflow, 404),
    (UnknownTopic, 404),
    (ModelNotFound, 404),
    (IdempotencyConflict, 409),
    (InvalidRunState, 409),
    (InvalidTaskState, 409),
    (InvalidInput, 422),
    (UnknownQueue, 422),
    (NotSerializable, 422),
    (StoreRefused, 422),
    (BudgetExceeded, 429),
    (NoRouteAvailable, 503),
    (ProviderUnavailable, 503),
)


#: Errors a model's server caused: their messages name its endpoint, host and port.
_MODEL_SERVERS = (ProviderUnavailable, ProviderRejected, NoRouteAvailable, InvalidModelOutput)


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="The HTTP status's phrase.")
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(default=None, description="What went wrong, for a person.")
    instance: str | None = Field(default=None, description="The path of the request.")
    policies: list[str] | None = Field(
        default=None, description="PolicyDenied: the deciding policies."
    )
    policy_version: str | None = Field(
        default=None, description="PolicyDenied: the policy set's hash."
    )
    run_id: str | None = Field(default=None, description="IdempotencyConflict: the key's run.")
    task_status: str | None = Field(
        default=None, description="InvalidTaskState: the task's status (completed, ...)."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="A request that does not validate: one entry per problem."
    )


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error raised by the Python API (``STATUSES``)."""
    if isinstance(exc, ProviderUnavailable) and exc.retry_after is not None:
        return 429
    for kind, status in STATUSES:
        if isinstance(exc, kind):
            return status
    if unavailable(exc):
        return 503
    return 500


def problem_response(
    status: int,
    request: Request,
    *,
    type: str = "about:blank",
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A ``Problem`` as a response of ``status`` to ``request``."""
    body = Problem(
        type=type,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        **extensions,
    )
    content = jsonable_encoder(body.model_dump(exclude_none=True))
    return JSONResponse(content, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def error_response(exc: BaseException, request: Request) -> JSONResponse:
    """The problem response of an exception the Python API raised."""
    status = status_of(exc)
    if status == 500 and isinstance(exc, ConfigError):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(500, request, type=f"{URN}config-error", detail=str(exc))
    if status == 500:
        log.error(
            "%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc
        )
        return problem_response(
            500, request, type=f"{URN}internal", detail="internal error (logged by the server)"
        )
    if unavailable(exc):  # its text names hosts, databases, tables: logged, not answered
        log.warning("%s %s: the store cannot answer: %s", request.method, request.url.path, exc)
        urn, detail = "store-unavailable", "the store cannot be reached now; try again later"
    else:
        urn, detail = _kebab(type(exc).__name__), str(exc)
        if isinstance(exc, _MODEL_SERVERS):  # where a model runs is the log's, not told
            detail = withhold_addresses(detail)
    extensions: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, PolicyDenied):
        extensions = {"policies": list(exc.policies), "policy_version": exc.policy_version}
    elif isinstance(exc, IdempotencyConflict):
        extensions = {"run_id": exc.run_id}
    elif isinstance(exc, InvalidTaskState) and exc.task_status is not None:
        extensions = {"task_status": exc.task_status}
    elif isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="aiosys"'
    elif isinstance(exc, ProviderUnavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return problem_response(
        status, request, type=URN + urn, detail=detail, headers=headers, **extensions
    )


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (an unknown path, a method not allowed) as problems."""
    assert isinstance(exc, HTTPException)
    fault = body_fault(request, exc)
    if fault is not None:
        return body_problem(request, *fault)
    return problem_response(
        exc.status_code, request, detail=http_detail(request, exc), headers=exc.headers
    )


#: The problem type of each status ``aiosys.api._body`` answers a body with.
_BODY_URNS = {413: "content-too-large", 415: "unsupported-media-type"}


def body_problem(request: Request, status: int, detail: str) -> JSONResponse:
    """The problem of a body that could not be read (``aiosys.api._body.body_fault``)."""
    urn = _BODY_URNS.get(status, "malformed-body")
    return problem_response(status, request, type=URN + urn, detail=detail)


async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A request FastAPI could not validate (a body, a query parameter): 422, each problem
    in ``errors`` (``loc``, ``msg``, ``type``: pydantic's); 400 for a body that is not JSON,
    415 for one not sent as JSON (``aiosys.api._body``)."""
    assert isinstance(exc, RequestValidationError)
    fault = body_fault(request, exc)
    if fault is not None:
        return body_problem(request, *fault)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    where = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in errors
    )
    return problem_response(
        422,
        request,
        type=f"{URN}invalid-request",
        detail=f"the request does not validate: {where}",
        errors=errors,
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status answered as a ``Problem``."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase}
        for status in sorted(statuses)
    }


class Problems:
    """ASGI middleware: an exception no handler took (every error of the Python API, a
    driver's error, a bug) becomes its problem response, unless the response has started
    already (a stream cut short), when it is raised on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            await error_response(exc, Request(scope))(scope, receive, send)


__all__ = [
    "MEDIA_TYPE",
    "STATUSES",
    "Problem",
    "Problems",
    "body_problem",
    "error_response",
    "on_http_error",
    "on_invalid_request",
    "problem_response",
    "problems",
    "status_of",
]
