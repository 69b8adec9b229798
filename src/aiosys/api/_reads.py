"""``/v1/stats``, ``/v1/audit`` and ``/v1/audit/verify``: the stats and the audit log, each a
call of ``App`` under the caller's principal (``/v1/models`` is the gateway's:
``openai_compat``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from ..app import App
from ..observe.stats import Stats
from ._auth import Caller, operation_id
from ._problems import problems
from ._runs import COMMON, Tenant, epoch
from ._schemas import NAME, AuditVerification


class JsonLines(Response):
    media_type = "application/x-ndjson"


async def _chain(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    """An extract streamed a page at a time (``AuditLog.extract``): never held whole."""
    yield first
    async for text in rest:
        yield text


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def router(app: App, caller: Caller) -> APIRouter:
    r = APIRouter(
        prefix="/v1", dependencies=[Depends(caller)], generate_unique_id_function=operation_id
    )

    @r.get("/stats", tags=["stats"], responses=problems(*COMMON))
    async def stats(
        since: Annotated[
            str,
            Query(
                max_length=64,
                description="A duration back from until (24h, 7d), an ISO 8601 time or "
                "epoch seconds.",
            ),
        ] = "24h",
        until: Annotated[dt.datetime | None, Query(description="Default: now.")] = None,
        workflow: Annotated[str | None, Query(min_length=1, max_length=NAME)] = None,
        model: Annotated[str | None, Query(min_length=1, max_length=NAME)] = None,
        tenant: Tenant = None,
    ) -> Stats:
        """Per workflow and per model stats over ``[since, until)`` (``App.stats``):
        latency percentiles, throughput, failures, cost, dead-letter backlog."""
        window: str | float = float(since) if _number(since) else since
        return await app.stats(
            since=window, until=epoch(until), workflow=workflow, model=model, tenant=tenant
        )

    @r.get(
        "/audit",
        tags=["audit"],
        response_class=JsonLines,
        responses={
            200: {
                "description": "An extract: JSON Lines, verifiable on its own "
                "(aiosys audit verify --file)."
            },
            **problems(*COMMON),
        },
    )
    async def export_audit(
        since: Annotated[dt.datetime | None, Query(description="Records at or after.")] = None,
        until: Annotated[dt.datetime | None, Query(description="Records before.")] = None,
        tenant: Tenant = None,
    ) -> Response:
        """An extract of the audit log (``app.audit.export``): the caller's tenant's
        records, stubs for others' between them, and the checkpoints that sign them.
        Needs the role admin (``export_audit``)."""
        lines = await app.audit.extract(since=_aware(since), until=_aware(until), tenant=tenant)
        first = await anext(lines)  # what refuses the extract is said as a problem, before it
        return StreamingResponse(_chain(first, lines), media_type=JsonLines.media_type)

    @r.get("/audit/verify", tags=["audit"], responses=problems(401, 403, 500, 503))
    async def verify_audit() -> AuditVerification:
        """Verify the whole audit log (``app.audit.verify``): the chain and its signed
        checkpoints. It spans every tenant: the local principal only (403 otherwise;
        a tenant verifies its extract from ``GET /v1/audit``)."""
        report = await app.audit.verify()
        return AuditVerification.model_validate(
            asdict(report) | {"ok": report.ok, "status": report.status}
        )

    return r


def _number(text: str) -> bool:
    """Whether ``since`` is epoch seconds (a finite number) rather than a duration or time."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


__all__ = ["router"]
