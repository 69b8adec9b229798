"""``/v1/events/{topic}``: publish an event, which starts a run of each workflow triggered by
its topic (``App.publish``, ``aiosys.kernel.events``), as the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from ..app import App
from ..errors import InvalidInput
from ._auth import Caller, operation_id
from ._body import STATUSES as BODY
from ._problems import problems
from ._runs import COMMON, Tenant
from ._schemas import NAME, EventAccepted, PublishEvent, TriggeredRun

#: The body as JSON, or as a CloudEvents structured-mode event (the same fields).
_MEDIA = ("application/json", "application/cloudevents+json")


def router(app: App, caller: Caller) -> APIRouter:
    r = APIRouter(
        prefix="/v1",
        dependencies=[Depends(caller)],
        tags=["events"],
        generate_unique_id_function=operation_id,
    )

    @r.post(
        "/events/{topic}",
        status_code=202,
        responses={
            202: {"description": "The event and the runs it started (or had started)."},
            **problems(*COMMON, *BODY, 404, 409),
        },
        openapi_extra={
            "requestBody": {
                "content": {
                    media: {"schema": {"$ref": "#/components/schemas/PublishEvent"}}
                    for media in _MEDIA
                }
            }
        },
    )
    async def publish_event(
        topic: Annotated[
            str,
            Path(
                max_length=NAME,
                description="The event's type: dot-separated words of letters, digits, "
                "'_' and '-' (invoice.received).",
            ),
        ],
        body: Annotated[PublishEvent | None, Body()] = None,
        tenant: Tenant = None,
    ) -> EventAccepted:
        """Publish an event on ``topic`` (``App.publish``): each workflow triggered by it
        (``@app.workflow(on=topic)``) starts a run with ``data`` as its input, every start
        checked (``start_workflow``) and audited as the caller's; one refused starts none
        (403). The same ``id`` (and ``source``) again starts nothing new and answers the
        same runs (``created`` false); with other data it is 409. 404 for a topic no
        workflow is triggered by (the event would be kept nowhere), 422 for a topic that
        breaks the naming rule or a ``type`` that is not the topic."""
        body = body or PublishEvent()
        if body.type is not None and body.type != topic:
            raise InvalidInput(
                f"the event's type {body.type!r} is not the topic it is published on "
                f"({topic!r}): leave type out, or send it to /v1/events/{body.type}"
            )
        published = await app.publish(
            topic, body.data, id=body.id, source=body.source, tenant=tenant
        )
        return EventAccepted(
            id=published.id,
            type=published.type,
            source=published.source,
            runs=[
                TriggeredRun(workflow=t.workflow, run_id=t.run_id, created=t.created)
                for t in published.runs
            ],
        )

    return r


__all__ = ["router"]
