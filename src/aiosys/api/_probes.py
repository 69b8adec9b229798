"""``/healthz``, ``/readyz`` and ``/metrics``: what an orchestrator and Prometheus ask.

``/healthz`` says the process serves (no store read: a liveness probe must not fail for a
store outage, or the orchestrator restarts every replica at once); ``aiosys server`` answers
it as soon as it listens, before its models are loaded. ``/readyz`` says this process can
serve requests now (``App.readiness``: the store answers and holds every migration of this
code, and the app's warm-up has ended); 503 otherwise, the reason in the problem's
``detail`` (``loading redaction models``, with ``Retry-After``, while the warm-up runs; the
store's own error is logged, not answered: it may name hosts). Neither needs a credential.
``/metrics`` is ``App.metrics`` in Prometheus's text format, scoped like every read: the
caller's tenant's series (every tenant's for the local principal).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..app import App
from ._auth import Caller, operation_id
from ._problems import problem_response, problems
from ._runs import COMMON, Tenant
from ._schemas import Health, Ready

log = logging.getLogger("aiosys.api")

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class Prometheus(PlainTextResponse):
    media_type = PROMETHEUS


def router(app: App, caller: Caller) -> APIRouter:
    r = APIRouter(tags=["operations"], generate_unique_id_function=operation_id)

    @r.get("/healthz")
    async def healthz() -> Health:
        """The process is up and serving."""
        return Health()

    @r.get("/readyz", response_model=Ready, responses=problems(503))
    async def readyz(request: Request) -> Ready | JSONResponse:
        """Ready to serve: the store answers, its schema is current and the models are
        loaded; else 503 saying which is not so."""
        readiness = await app.readiness()
        if readiness.ready:
            return Ready()
        if readiness.loading:  # the warm-up: soon ready, nothing to log
            return problem_response(
                503,
                request,
                type="urn:aiosys:problem:not-ready",
                detail=readiness.loading,
                headers={"Retry-After": "1"},
            )
        log.warning("not ready: %s", readiness.reason)
        detail = (
            f"the store's schema lacks migrations {', '.join(map(str, readiness.behind))}"
            if readiness.behind
            else "the store cannot be reached (the server's log says why)"
        )
        return problem_response(503, request, type="urn:aiosys:problem:not-ready", detail=detail)

    @r.get(
        "/metrics",
        response_class=Prometheus,
        dependencies=[Depends(caller)],
        responses={
            200: {"description": "Prometheus text exposition format 0.0.4."},
            **problems(*COMMON),
        },
    )
    async def metrics(tenant: Tenant = None) -> Prometheus:
        """The store's metrics (``App.metrics``): runs, effects, queues, workers, model
        calls, tokens, cost, budgets, circuit breakers."""
        return Prometheus(await app.metrics(tenant=tenant))

    return r


__all__ = ["PROMETHEUS", "router"]
