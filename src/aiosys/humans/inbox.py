"""The inbox: list, show, claim, release and decide human tasks, as the bound principal.

Every call is scoped like the App's run calls: a non-local principal acts in its own tenant
(another tenant's task reads as a missing one: ``TaskNotFound``; naming another tenant is
``PermissionDenied``), and passes the app's client checks (``app.authorize``: the actions
``list_tasks``, ``read_task``, ``claim_task``, ``release_task``, ``complete_task``; the Cedar
policies decide ``complete_task`` on ``HumanTask::"<id>"``). A task itself says who may act
on it: its ``role`` (escalation moves it), and once claimed only the principal holding it.
The local principal (the embedded default) may act on every task.

Deciding (``complete``) records the decision, its audit record and the wake-up of the run in
one transaction (``App.complete_wait``), so the run resumes at once and a decision is never
without its record. An action the task's state forbids (deciding or claiming a task decided
already, ended by its SLA or held by another principal; releasing one not claimed) is
``InvalidTaskState`` (its ``task_status`` the task's status); one by someone without its
role is ``PermissionDenied``, or ``PolicyDenied`` (action ``complete_task``) for a decision;
an edit the task's form refuses is ``InvalidInput`` (the task stays open). Claims, releases
and refusals are audited too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, cast

from ..errors import (
    AiosysError,
    InvalidInput,
    InvalidTaskState,
    PermissionDenied,
    PolicyDenied,
    TaskNotFound,
)
from ..governance.audit_record import AuditRecord, Scalar, micros
from ..governance.roles import allows
from ..kernel.checks import scope_tenant
from ..kernel.principal import Principal, current_principal
from . import forms
from .decision import ACTIONS, Action, Decision
from .rows import CLAIMED, COMPLETED, ESCALATED, STATUSES, TaskRow, task_row
from .tasks import TaskApp, task_record

log = logging.getLogger("aiosys.audit")

#: How often a guarded change is tried again when the task changed meanwhile (escalated
#: between the read and the write): then the rights are checked again on the new row.
_TRIES = 3

#: The statuses of a run whose tasks may still be claimed and decided.
LIVE = ("pending", "running", "waiting")


class Inbox:
    """The human tasks of one app, as its callers see them (``App.list_tasks`` and the
    other task methods delegate here: ``listing``, ``read``, ``claim``, ``release``,
    ``complete``)."""

    def __init__(self, app: TaskApp) -> None:
        self.app = app

    # ---- reading ----------------------------------------------------------------------

    async def listing(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[TaskRow]:
        """Tasks the bound principal may act on, most urgent first (due time, then age):
        those for one of its roles or claimed by it (the local principal: all). ``status``
        None: still to decide (open or claimed, their run live); ``"any"``: every status;
        else one of ``open``, ``claimed``, ``completed``, ``escalated``. ``run_id``: one
        run's. ``InvalidInput`` for an unknown status or a ``limit`` below 1."""
        if status is not None and status not in (*STATUSES, "any"):
            raise InvalidInput(
                f"unknown task status {status!r}; use one of: {', '.join(STATUSES)}, any"
            )
        if limit < 1:
            raise InvalidInput(f"limit must be 1 or more, not {limit}")
        principal = current_principal()
        scope = await self.app.authorize("list_tasks", tenant=tenant)
        params = {
            "tenant": scope,
            "status": status,
            "roles": None if principal.local else json.dumps(sorted(principal.roles)),
            "who": None if principal.local else principal.id,
            "run_id": run_id,
            "limit": limit,
        }
        return [task_row(r) for r in await self.app.store.fetch("human_task_list", params)]

    async def read(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """One task. ``TaskNotFound`` if it is not in the caller's tenant;
        ``PermissionDenied`` for a principal that neither holds its role, nor holds it
        (claimed, assigned), nor may read runs (``read_run``)."""
        principal = current_principal()
        row = await self._read(task_id, scope_tenant(principal, tenant, "read_task"))
        await self._authorize("read_task", row)
        if not (
            principal.local
            or row.role in principal.roles
            or principal.id in (row.claimed_by, row.assignee)
            or allows(principal.roles, "read_run")
        ):
            raise PermissionDenied(
                f"{principal.uid} may not read task {row.id}: it is for the role {row.role}"
            )
        return row

    # ---- acting -----------------------------------------------------------------------

    async def claim(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """Claim a task for the bound principal: from then on only it may decide or release
        it. Claiming one's own claim again changes nothing. ``PermissionDenied`` without the
        task's role; ``InvalidTaskState`` for a task another principal holds or one decided
        or escalated already."""
        return await self._audited("claim_task", task_id, tenant, self._claim)

    async def release(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """Give a claimed task back to its role (by the principal that holds it, or the
        local one). ``InvalidTaskState`` for a task that is not claimed, ``PermissionDenied``
        for one another principal holds."""
        return await self._audited("release_task", task_id, tenant, self._release)

    async def complete(
        self,
        task_id: str,
        action: str,
        *,
        data: Any = None,
        comment: str | None = None,
        tenant: str | None = None,
    ) -> TaskRow:
        """Decide a task: ``action`` ``approve``, ``reject`` or ``edit`` (with ``data``, the
        edited data, validated against the task's form); ``comment`` is kept with the
        decision. The run waiting for it resumes at once. Returns the task as decided.

        ``InvalidTaskState`` (its ``task_status`` the task's status) for a task decided
        already or ended by its SLA, one another principal claimed, or one whose run has
        ended; ``PolicyDenied`` (``complete_task``) for a task for a role the principal does
        not hold or one the Cedar policies deny; ``InvalidInput`` for a malformed decision
        or an edit its form refuses (the task stays open); ``TaskNotFound`` for a task not
        in the caller's tenant. The decision itself is checked after the caller's rights
        (``_decision``): one who may not decide the task learns that first."""

        async def decide(principal: Principal, row: TaskRow) -> TaskRow | None:
            return await self._complete(principal, row, action, data, comment)

        return await self._audited("complete_task", task_id, tenant, decide)

    async def admit(self, action: str, task_id: str, *, tenant: str | None = None) -> None:
        """Ask the caller's rights for ``action`` on a task without doing it: its tenant
        (``TaskNotFound`` for another's task), the task's role (``PermissionDenied``; for a
        decision ``PolicyDenied``), the app's client checks. For a surface that answers
        rights before anything else of a request it could not read whole."""
        principal = current_principal()
        row = await self._read(task_id, scope_tenant(principal, tenant, action))
        if not principal.local and row.role not in principal.roles:
            has = ", ".join(sorted(principal.roles)) or "none"
            if action == "complete_task":
                raise _denied(principal, row, f"it is for the role {row.role} (roles: {has})")
            raise PermissionDenied(
                f"{principal.uid} (roles: {has}) may not act on task {row.id}: it is for the "
                f"role {row.role}"
            )
        await self._authorize(action, row)

    # ---- the actions, one try each ------------------------------------------------------

    async def _claim(self, principal: Principal, row: TaskRow) -> TaskRow | None:
        self._may_act(principal, row, "claim")
        if row.status == CLAIMED and row.claimed_by != principal.id:
            raise InvalidTaskState(
                f"task {row.id} is claimed by {row.claimed_by}; it must release it first",
                task_status=row.status,
            )
        now = self.app.store.clock()
        params = {
            "id": row.id,
            "tenant": row.tenant,
            "escalations": row.escalations,
            "who": principal.id,
            "now": now,
        }
        changed = await self._change("human_task_claim", params, row, principal, "claim_task")
        return None if changed is None else task_row({**changed, "run_status": row.run_status})

    async def _release(self, principal: Principal, row: TaskRow) -> TaskRow | None:
        if row.status != CLAIMED:
            raise InvalidTaskState(
                f"task {row.id} is {row.status}, not claimed: nothing to release",
                task_status=row.status,
            )
        if not principal.local and row.claimed_by != principal.id:
            raise PermissionDenied(
                f"{principal.uid} may not release task {row.id}: {row.claimed_by} holds it"
            )
        params = {
            "id": row.id,
            "tenant": row.tenant,
            "who": principal.id,
            "any_claim": int(principal.local),
            "now": self.app.store.clock(),
        }
        changed = await self._change("human_task_release", params, row, principal, "release_task")
        return None if changed is None else task_row({**changed, "run_status": row.run_status})

    async def _complete(
        self, principal: Principal, row: TaskRow, action: str, data: Any, comment: str | None
    ) -> TaskRow | None:
        if row.status in (COMPLETED, ESCALATED):
            done = row.decision
            by = f" by {done.decided_by}" if done is not None and done.decided_by else ""
            ended = "decided" if row.status == COMPLETED else "ended by its SLA (escalated)"
            raise InvalidTaskState(
                f"task {row.id} is {row.status}: it was {ended}{by} already",
                task_status=row.status,
            )
        if row.run_status not in LIVE:
            raise InvalidTaskState(
                f"task {row.id} cannot be decided: its run {row.run_id} has ended "
                f"({row.run_status or 'deleted'})",
                task_status=row.status,
            )
        if not principal.local and row.role not in principal.roles:
            has = ", ".join(sorted(principal.roles)) or "none"
            raise _denied(principal, row, f"it is for the role {row.role} (roles: {has})")
        if row.status == CLAIMED and not principal.local and row.claimed_by != principal.id:
            raise InvalidTaskState(
                f"task {row.id} is claimed by {row.claimed_by}; it must release it first",
                task_status=row.status,
            )
        await self._authorize("complete_task", row)  # the Cedar policies, if any
        _decision(action, data, comment)  # after the rights, never before
        edited = forms.validate_edit(row.form, data, row.name) if action == "edit" else row.data
        now = self.app.store.clock()
        decision = Decision(
            action=cast(Action, action),  # one of ACTIONS
            data=edited,
            comment=comment,
            decided_by=principal.id,
            decided_at=now,
            task_id=row.id,
            role=row.role,
        )
        params = {
            "id": row.id,
            "tenant": row.tenant,
            "escalations": row.escalations,
            "who": principal.id,
            "any_claim": int(principal.local),
            "decision": decision.model_dump_json(),
            "now": now,
        }
        also = self._records("complete_task", row, principal, now, {"decision": action})
        changed = await self.app.complete_wait("human_task_complete", params, also=also)
        if not changed:
            return None
        self.app.audit.appended(len(also))
        return replace(
            row, status=COMPLETED, decision=decision, decided_by=principal.id, decided_at=now
        )

    # ---- shared -------------------------------------------------------------------------

    async def _audited(self, action: str, task_id: str, tenant: str | None, act: Any) -> TaskRow:
        """Run ``act(principal, row)`` on the task read afresh until its guarded write lands
        (a few tries: the task may be escalated meanwhile); a refusal is audited and raised."""
        principal = current_principal()
        try:
            scope = scope_tenant(principal, tenant, action)
            for _ in range(_TRIES):
                row = await self._read(task_id, scope)
                if action != "complete_task":
                    await self._authorize(action, row)
                done: TaskRow | None = await act(principal, row)
                if done is not None:
                    return done
            raise InvalidTaskState(
                f"task {task_id} kept changing while it was being acted on; try again"
            )
        except AiosysError as exc:
            await self._refused(action, task_id, principal, exc)
            raise

    async def _read(self, task_id: str, tenant: str | None) -> TaskRow:
        rows = await self.app.store.fetch("human_task_get", {"id": task_id})
        if not rows or (tenant is not None and rows[0]["tenant"] != tenant):
            where = "" if tenant is None else f" in tenant {tenant!r}"
            raise TaskNotFound(f"no human task with id {task_id!r}{where}")
        return task_row(rows[0])

    async def _authorize(self, action: str, row: TaskRow) -> None:
        """The app's client checks (roles, then policy) on ``action`` over ``row``."""
        await self.app.authorize(
            action, tenant=row.tenant, workflow=row.workflow, input=task_attrs(row)
        )

    @staticmethod
    def _may_act(principal: Principal, row: TaskRow, what: str) -> None:
        if not row.actionable:
            raise InvalidTaskState(
                f"cannot {what} task {row.id}: it is {row.status}", task_status=row.status
            )
        if row.run_status not in LIVE:
            raise InvalidTaskState(
                f"cannot {what} task {row.id}: its run {row.run_id} has ended "
                f"({row.run_status or 'deleted'})",
                task_status=row.status,
            )
        if not principal.local and row.role not in principal.roles:
            has = ", ".join(sorted(principal.roles)) or "none"
            raise PermissionDenied(
                f"{principal.uid} (roles: {has}) may not {what} task {row.id}: it is for the "
                f"role {row.role}"
            )

    async def _change(
        self,
        query: str,
        params: dict[str, Any],
        row: TaskRow,
        principal: Principal,
        action: str,
    ) -> dict[str, Any] | None:
        now = params["now"]
        also = self._records(action, row, principal, now)
        changed = await self.app.store.change(query, params, also=also)
        if not changed:
            return None
        self.app.audit.appended(len(also))
        return changed[0]

    def _records(
        self,
        action: str,
        row: TaskRow,
        principal: Principal,
        at: float,
        detail: dict[str, Scalar] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        if not self.app.audit.enabled:
            return []
        record = task_record(action, row, principal.uid, "ok", at, detail)
        return [("audit_append", record.params())]

    async def _refused(
        self, action: str, task_id: str, principal: Principal, exc: AiosysError
    ) -> None:
        """Audit a refused task action in the caller's own tenant (never the task's, which
        may be another's: only the id the caller gave is recorded)."""
        if not self.app.audit.enabled:
            return
        record = AuditRecord(
            principal=principal.uid,
            tenant=principal.tenant,
            action=action,
            resource=f"task:{task_id}",
            outcome=f"error:{type(exc).__name__}",
            at=micros(self.app.store.clock()),
        )
        try:
            await self.app.audit.append(record)
        except Exception as failure:  # never raised over the refusal the caller must see
            log.error("audit: the refused %s could not be recorded: %s", action, failure)


def _decision(action: str, data: Any, comment: Any) -> None:
    """``InvalidInput`` for a malformed decision: an unknown action, an edit without data,
    data with another action, a comment that is not text."""
    if action not in ACTIONS:
        raise InvalidInput(f"a decision's action is one of {', '.join(ACTIONS)}, not {action!r}")
    if action == "edit" and data is None:
        raise InvalidInput("an edit carries the edited data")
    if action != "edit" and data is not None:
        raise InvalidInput(f"only an edit carries data; {action} takes none")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput(f"a decision's comment is text, not {type(comment).__name__}")


def task_attrs(row: TaskRow) -> dict[str, Any]:
    """What the client checks see of a task (``ClientCall.input``) and the Cedar
    ``HumanTask`` entity's attributes."""
    return {
        "task_id": row.id,
        "tenant": row.tenant,
        "workflow": row.workflow,
        "name": row.name,
        "role": row.role,
        "status": row.status,
    }


def _denied(principal: Principal, row: TaskRow, why: str) -> PolicyDenied:
    """The refusal of ``complete_task`` by the task's own rules (before any Cedar policy)."""
    resource = f'HumanTask::"{row.id}"'
    return PolicyDenied(
        f"complete_task on {resource} ({row.name!r}) by {principal.uid}: {why}",
        action="complete_task",
        resource=resource,
        principal=principal.uid,
    )


__all__ = ["Inbox", "task_attrs"]
