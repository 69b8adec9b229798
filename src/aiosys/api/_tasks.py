"""``/v1/tasks``: the human task inbox (list, read, claim, release, decide), each a call of
``App`` under the caller's principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from ..app import App
from ._auth import Caller, Endpoint, RightsFirst, operation_id, rights_first
from ._body import STATUSES as BODY
from ._problems import problems
from ._runs import COMMON, Tenant
from ._schemas import NAME, CompleteTask, Task, TaskList, TaskStatus

TaskId = Annotated[str, Path(max_length=NAME, description="The task's id.")]


def router(app: App, caller: Caller) -> APIRouter:
    r = APIRouter(
        prefix="/v1",
        dependencies=[Depends(caller)],
        tags=["tasks"],
        generate_unique_id_function=operation_id,
        route_class=RightsFirst,  # a request that does not validate: the rights first
    )

    def on_task(action: str) -> Callable[[Endpoint], Endpoint]:
        """The admission of an action on the route's task (``App.admit_task``)."""

        async def admission(path: dict[str, Any], tenant: str | None) -> None:
            await app.admit_task(action, path["task_id"], tenant=tenant)

        return rights_first(caller, admission)

    @r.get("/tasks", responses=problems(*COMMON))
    async def list_tasks(
        status: Annotated[
            TaskStatus | Literal["any"] | None,
            Query(description="Default: still to decide (open or claimed, their run live)."),
        ] = None,
        run_id: Annotated[str | None, Query(min_length=1, max_length=NAME)] = None,
        tenant: Tenant = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> TaskList:
        """The tasks the caller may act on (for one of its roles, or claimed by it), most
        urgent first (``App.list_tasks``)."""
        rows = await app.list_tasks(status=status, tenant=tenant, run_id=run_id, limit=limit)
        return TaskList(data=[Task.of(row) for row in rows])

    @r.get("/tasks/{task_id}", responses=problems(*COMMON, 404))
    async def get_task(task_id: TaskId, tenant: Tenant = None) -> Task:
        """One task (``App.get_task``); 404 if it is not in the caller's tenant."""
        return Task.of(await app.get_task(task_id, tenant=tenant))

    @r.post("/tasks/{task_id}/claim", responses=problems(*COMMON, 404, 409))
    @on_task("claim_task")
    async def claim_task(task_id: TaskId, tenant: Tenant = None) -> Task:
        """Claim a task: from then on only the caller may decide or release it. 409 when
        another principal holds it or it is decided or escalated already; 403 without its
        role."""
        return Task.of(await app.claim_task(task_id, tenant=tenant))

    @r.post("/tasks/{task_id}/release", responses=problems(*COMMON, 404, 409))
    @on_task("release_task")
    async def release_task(task_id: TaskId, tenant: Tenant = None) -> Task:
        """Give a claimed task back to its role. 409 when it is not claimed; 403 when
        another principal holds it."""
        return Task.of(await app.release_task(task_id, tenant=tenant))

    @r.post("/tasks/{task_id}/complete", responses=problems(*COMMON, *BODY, 404, 409))
    @on_task("complete_task")
    async def complete_task(task_id: TaskId, body: CompleteTask, tenant: Tenant = None) -> Task:
        """Decide a task (``App.complete_task``): the run waiting for it resumes at once.
        409 when its state forbids it (decided already, ended by its SLA, claimed by another
        principal, its run ended: ``task_status`` says its status); 403 when it is not the
        caller's to decide (a role it lacks, a policy); 404 when it is not in the caller's
        tenant; 422 for ``edit`` data that does not fit the task's form."""
        row = await app.complete_task(
            task_id, body.action, data=body.data, comment=body.comment, tenant=tenant
        )
        return Task.of(row)

    return r


__all__ = ["router"]
