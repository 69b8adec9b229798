"""``/v1/workflows/{name}/runs`` and ``/v1/runs``: start, list, read, cancel, resume and
signal runs; each a call of ``App`` under the caller's principal (``_auth.Caller``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response

from ..app import App
from ..kernel.cursor import run_cursor
from ._auth import Caller, Endpoint, RightsFirst, operation_id, rights_first
from ._body import STATUSES as BODY
from ._problems import problems
from ._schemas import (
    NAME,
    CancelRun,
    Run,
    RunPage,
    RunStatus,
    SendSignal,
    SignalSent,
    StartedRun,
    StartRun,
)

RunId = Annotated[str, Path(max_length=NAME, description="The run's id.")]
Tenant = Annotated[
    str | None,
    Query(
        max_length=NAME,
        description="The tenant to act in (default: the caller's; another one is 403, "
        "except for the local principal without identity).",
    ),
]
# Every route: its principal is refused (401) or may not (403), its query does not validate
# (422), the server is misconfigured (500) or the store cannot answer (503).
COMMON = (401, 403, 422, 500, 503)


HALF_US = 0.5e-6


def epoch(t: dt.datetime | None) -> float | None:
    """Epoch seconds of a time given over HTTP (one without an offset is UTC), as a bound
    on the store's times: those are floats shown to the nearest microsecond, so a time
    read from a response (a run's ``created_at``) stands for every float shown as it, from
    half a microsecond before."""
    if t is None:
        return None
    return (t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).timestamp() - HALF_US


def router(app: App, caller: Caller) -> APIRouter:
    r = APIRouter(
        prefix="/v1",
        dependencies=[Depends(caller)],
        tags=["runs"],
        generate_unique_id_function=operation_id,
        route_class=RightsFirst,  # a request that does not validate: the rights first
    )

    def on_run(action: str) -> Callable[[Endpoint], Endpoint]:
        """The admission of an action on the route's run (``App.admit_run``)."""

        async def admission(path: dict[str, Any], tenant: str | None) -> None:
            await app.admit_run(action, path["run_id"], tenant=tenant)

        return rights_first(caller, admission)

    async def starting(path: dict[str, Any], tenant: str | None) -> None:
        # As ``App.start`` asks first: the workflow, then the caller's rights in its tenant
        # (the body, which may name another, did not validate).
        await app.authorize("start_workflow", workflow=app.spec(path["name"]).name)

    # What a started run's id leads to (OpenAPI links: clients and test generators follow them).
    links = {
        op: {"operationId": op, "parameters": {"run_id": "$response.body#/id"}}
        for op in ("get_run", "cancel_run", "resume_run", "send_signal")
    }

    @r.post(
        "/workflows/{name}/runs",
        status_code=201,
        responses={
            201: {"description": "The new run.", "links": links},
            200: {
                "model": StartedRun,
                "description": "The run an idempotency key started.",
                "links": links,
            },
            **problems(*COMMON, *BODY, 404, 409),
        },
    )
    @rights_first(caller, starting)
    async def start_run(
        name: Annotated[str, Path(max_length=NAME, description="The workflow's name.")],
        response: Response,
        body: Annotated[StartRun | None, Body()] = None,
        traceparent: Annotated[str | None, Header(max_length=NAME)] = None,
    ) -> StartedRun:
        """Start a run of workflow ``name`` (``App.start``): 201 and the new run, or 200 and
        the run its idempotency key started before (same workflow and input; else 409)."""
        body = body or StartRun()
        handle = await app.start(
            name,
            body.input,
            idempotency_key=body.idempotency_key,
            tenant=body.tenant,
            queue=body.queue,
            priority=body.priority,
            version=body.version,
            traceparent=body.traceparent or traceparent,
        )
        row = await handle.row()
        response.status_code = 201 if handle.created else 200
        response.headers["Location"] = f"/v1/runs/{row.id}"
        return StartedRun(**dict(Run.of(row)), created=handle.created)

    @r.get("/runs", responses=problems(*COMMON))
    async def list_runs(
        workflow: Annotated[str | None, Query(min_length=1, max_length=NAME)] = None,
        status: RunStatus | None = None,
        tenant: Tenant = None,
        since: Annotated[
            dt.datetime | None, Query(description="Created at or after (ISO 8601; UTC).")
        ] = None,
        until: Annotated[dt.datetime | None, Query(description="Created before.")] = None,
        cursor: Annotated[
            str | None, Query(max_length=400, description="next_cursor of the page before.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> RunPage:
        """Runs newest first (``App.list_runs``), a page at a time."""
        rows = await app.list_runs(
            status=status,
            workflow=workflow,
            tenant=tenant,
            since=epoch(since),
            until=epoch(until),
            cursor=cursor,
            limit=limit + 1,  # one more than the page: is there a next one
        )
        page = rows[:limit]
        more = len(rows) > limit
        return RunPage(
            data=[Run.of(row) for row in page], next_cursor=run_cursor(page[-1]) if more else None
        )

    @r.get("/runs/{run_id}", responses=problems(*COMMON, 404))
    async def get_run(run_id: RunId, tenant: Tenant = None) -> Run:
        """One run (``App.get_run``); 404 if it is not in the caller's tenant."""
        return Run.of(await app.get_run(run_id, tenant=tenant))

    @r.post("/runs/{run_id}/cancel", responses=problems(*COMMON, *BODY, 404, 409))
    @on_run("cancel_run")
    async def cancel_run(
        run_id: RunId, body: Annotated[CancelRun | None, Body()] = None, tenant: Tenant = None
    ) -> Run:
        """Cancel a run and its children not started detached (``App.cancel``): at once,
        or at its next effect if a worker holds it."""
        reason = (body or CancelRun()).reason
        return Run.of(await app.cancel(run_id, reason, tenant=tenant))

    @r.post("/runs/{run_id}/resume", responses=problems(*COMMON, 404, 409))
    @on_run("resume_run")
    async def resume_run(run_id: RunId, tenant: Tenant = None) -> Run:
        """Put a ``dead`` or ``failed`` run back in the queue from the effect that failed
        (``App.resume``); 409 for a run in another status."""
        return Run.of(await app.resume(run_id, tenant=tenant))

    @r.post(
        "/runs/{run_id}/signals/{name}",
        status_code=202,
        responses=problems(*COMMON, *BODY, 404, 409),
    )
    @on_run("signal_run")
    async def send_signal(
        run_id: RunId,
        name: Annotated[str, Path(max_length=NAME, description="The signal's name.")],
        body: Annotated[SendSignal | None, Body()] = None,
        tenant: Tenant = None,
    ) -> SignalSent:
        """Send a signal (``App.signal``): a run waiting for it (``ctx.wait_for(name)``)
        wakes, a run not yet waiting keeps it."""
        await app.signal(run_id, name, (body or SendSignal()).payload, tenant=tenant)
        return SignalSent(run_id=run_id, signal=name)

    return r


__all__ = ["COMMON", "Tenant", "epoch", "router"]
