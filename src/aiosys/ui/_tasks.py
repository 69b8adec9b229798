"""The human task inbox: the tasks the visitor may act on (its roles', or claimed by it),
most urgent first, with their SLA counting down; a task's page; claim, release, approve,
reject and edit with a comment (``App.list_tasks``, ``get_task``, ``claim_task``,
``release_task``, ``complete_task`` as the visitor). A decision sends the visitor to the run
it resumed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInput
from ..humans.rows import STATUSES, TaskRow
from ._console import Console, one_of
from ._runs import field, parse_json_field

#: The inbox's status filter: "" (still to decide), each status, or every one.
CHOICES = ("", *STATUSES, "any")
DECISIONS = ("approve", "reject", "edit")


def task_view(task: TaskRow, now: float) -> dict[str, Any]:
    """A task as its row shows it: the row, the seconds left of its SLA (negative: overdue;
    None: no SLA or decided) and whether it is still to decide."""
    left = None if task.due_at is None or not task.actionable else task.due_at - now
    return {"t": task, "sla_left": left, "actionable": task.actionable}


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    @r.get("/tasks", name="tasks")
    async def inbox(request: Request) -> Response:
        status = one_of(request.query_params.get("status", ""), CHOICES, "the task status")
        tasks = await app.list_tasks(status=status or None, limit=200)
        now = app.store.clock()
        return console.page(
            request,
            "tasks.html",
            title="Inbox",
            tasks=[task_view(t, now) for t in tasks],
            status=status,
            choices=CHOICES,
        )

    @r.get("/tasks/{task_id}", name="task")
    async def task(request: Request, task_id: str) -> Response:
        row = await app.get_task(task_id)
        return console.page(
            request,
            "task.html",
            title=f"Task {row.name}",
            task=task_view(row, app.store.clock()),
        )

    @r.post("/tasks/{task_id}/claim", name="claim_task")
    async def claim(request: Request, task_id: str) -> Response:
        row = await app.claim_task(task_id)
        return console.back(request, f"/tasks/{task_id}", "ok", f"task {row.name!r} claimed")

    @r.post("/tasks/{task_id}/release", name="release_task")
    async def release(request: Request, task_id: str) -> Response:
        row = await app.release_task(task_id)
        return console.back(request, f"/tasks/{task_id}", "ok", f"task {row.name!r} released")

    @r.post("/tasks/{task_id}/complete", name="complete_task")
    async def complete(request: Request, task_id: str) -> Response:
        form = await request.form()
        action = one_of(field(form, "action"), DECISIONS, "a decision")
        comment = field(form, "comment").strip() or None
        data = (
            parse_json_field(field(form, "data"), "the edited data") if action == "edit" else None
        )
        if action == "edit" and data is None:
            raise InvalidInput("an edit carries the edited data (JSON)")
        row = await app.complete_task(task_id, action, data=data, comment=comment)
        past = {"approve": "approved", "reject": "rejected", "edit": "edited and approved"}
        return console.back(
            request,
            f"/runs/{row.run_id}",
            "ok",
            f"task {row.name!r} {past[action]}: the run resumes",
        )

    return r


__all__ = ["router", "task_view"]
