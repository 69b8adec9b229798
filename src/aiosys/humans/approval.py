"""Human oversight at the gate: an effect that a policy forbids until a person approves it
waits for that approval as a human task, and runs once it is given.

The gate's ``approve`` interceptor sits right outside ``authorize`` (inside the effect log,
the audit and the lineage). When ``authorize`` raises ``ApprovalRequired`` for a run's effect
(every deciding policy carries ``@approval``: ``aiosys.governance.policy_approval``), it:

1. finds or writes the effect's task: the human task of the run and effect number (the row
   ``ctx.human_task`` writes, so one per effect: a replay finds it and never asks twice),
   named after the asking policy, for the role it names, with its SLA and escalation chain;
   the reviewer sees what the effect is and its inputs (``data``), and may approve or reject
   it (its form takes no edit);
2. records the effect ``pending`` with its task (``record_pending``: a replay passes the
   effect through the chain again, back here to the same task, without asking Cedar first)
   and parks the run where it is (``Execution.suspend``: ``waiting``, no worker held, the
   task's due time as its timer, at which the task escalates as ``ctx.human_task``'s do);
3. once the task is decided: rejected, the effect fails with ``ApprovalRejected`` (a
   permanent ``PolicyDenied`` naming the policies and who rejected it); approved, Cedar is
   asked again with ``context.approval`` (``policy_gate.APPROVAL``) and the effect, allowed,
   runs. A policy that still forbids it (its ``unless`` does not accept the role it was
   approved as) is a plain ``PolicyDenied``.

The approval (``task_id``, ``action``, ``decided_by``, ``role``, ``decided_at``, ``comment``,
``policies``) is kept on the effect's record, ``meta["approval"]`` (``status: open`` while it
waits), where ``aiosys runs show`` and lineage read it; the audit log has the task's own
records (``create_task``, ``escalate_task``, ``complete_task`` with the approver) and the
effect's decisions (the denial, then the allow with the approval). An effect made outside a
workflow cannot wait: ``ApprovalRequired`` is its denial.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from ..errors import ApprovalRejected, ApprovalRequired, PolicyDenied
from ..governance.lineage_record import DEFAULT_INPUTS, data_inputs
from ..governance.policy_gate import APPROVAL
from ..kernel.gate import EffectCall, Gate, Next
from ..kernel.interceptors.effect_log import record_pending
from .forms import NO_EDIT
from .rows import TaskRow
from .tasks import HumanTasks

#: The key of the approval on the effect's record (``meta``) and pending state.
KEY = "approval"


class Approvals:
    """The ``approve`` interceptor of one app (see the module docstring)."""

    def __init__(self, tasks: HumanTasks) -> None:
        self.tasks = tasks

    def install(self, gate: Gate) -> None:
        """Put the interceptor right outside ``authorize`` (installed already)."""
        gate.add("approve", self.interceptor, before="authorize")

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        ex = call.run_execution
        if ex is None:  # a direct effect cannot wait: ApprovalRequired is its denial
            return await next(call)
        given: dict[str, Any] | None = None  # what the record keeps of the approval
        try:
            pending = call.meta.get("pending")
            asked = pending.get(KEY) if isinstance(pending, dict) else None
            if isinstance(asked, dict):  # parked on its task before this replay
                row = await self.tasks.of_effect(ex.run.id, call.seq)
                if row is not None:
                    given = await self._decision(call, row, asked, parked=True)
            while True:
                try:
                    return await next(call)
                except ApprovalRequired as denied:
                    need = denied  # handled below, outside the except: it is no one's context
                if given is not None:  # approved, and still forbidden: for good
                    raise _still_denied(need, given)
                asked = _asked(need)
                row = await self.tasks.of_effect(ex.run.id, call.seq)
                if row is None:
                    row = await self._create(call, need)
                given = await self._decision(call, row, asked, parked=False)
        finally:
            if given is not None:  # whatever the effect did next (its record is rewritten)
                call.meta["record"] = {**(call.meta.get("record") or {}), KEY: given}

    async def _create(self, call: EffectCall, need: ApprovalRequired) -> TaskRow:
        run = call.execution.run
        data = {
            "effect": {"seq": call.seq, "kind": call.kind, "name": call.name},
            "action": need.action,
            "resource": need.resource,
            "principal": need.principal,
            "policies": list(need.policies),
            "workflow": run.workflow,
            "run_id": run.id,
            "inputs": _inputs(call),
        }
        params = {
            "role": need.role,
            "data": pydantic_core.to_json(data, fallback=repr).decode(),
            "form": NO_EDIT,
            "sla": need.sla,
            "escalate_to": list(need.escalate_to),
            "assignee": None,
            "return_escalated": False,
            "called_at": None,
        }
        return await self.tasks.create(call, need.policies[0], params)

    async def _decision(
        self, call: EffectCall, row: TaskRow, asked: dict[str, Any], *, parked: bool
    ) -> dict[str, Any]:
        """Wait (parked) until ``row`` is decided; then what the record keeps of the
        approval, with ``context.approval`` set for ``authorize``. ``ApprovalRejected`` when
        it was not approved. ``parked``: the effect's pending record names the task already."""
        ex = call.execution
        while True:
            row = await self.tasks.settle(call, row)  # escalated, if an SLA passed
            if not row.actionable:
                break
            if not parked:
                state = {**asked, "task_id": row.id}
                call.meta["record"] = {
                    **(call.meta.get("record") or {}),
                    KEY: {**state, "status": "open"},
                }
                await record_pending(call, {KEY: state})
                parked = True
            await ex.suspend(row.due_at)
            found = await self.tasks.of_effect(ex.run.id, call.seq)
            if found is None:  # pragma: no cover - a task is deleted only with its run
                raise PolicyDenied(f"the approval task {row.id} of effect #{call.seq} is gone")
            row = found
        d = row.decision
        assert d is not None  # decided or ended: a decision is recorded with either
        policies = list(asked.get("policies") or ())
        given = {
            "task_id": row.id,
            "action": d.action,
            "decided_by": d.decided_by,
            "role": d.role,
            "decided_at": d.decided_at,
            "comment": d.comment,
            "policies": policies,
        }
        if not d.approved:
            call.meta["record"] = {**(call.meta.get("record") or {}), KEY: given}
            who = f"{d.decided_by} ({d.role})" if d.decided_by else f"nobody ({d.action})"
            why = f": {d.comment}" if d.comment else ""
            raise ApprovalRejected(
                f"{call.kind} {call.name!r} (effect #{call.seq}) was not approved: "
                f"{d.action} by {who} on task {row.id}{why}; asked by {', '.join(policies)}",
                task_id=row.id,
                decided_by=d.decided_by,
                role=d.role,
                **_about(asked),
            )
        call.meta[APPROVAL] = {
            "task": row.id,
            "principal": d.decided_by or "",
            "role": d.role,
            "decided_at": int(d.decided_at),
        }
        return given


def _asked(need: ApprovalRequired) -> dict[str, Any]:
    """What the effect's pending record keeps of the approval it waits for (JSON values)."""
    return {"role": need.role, **need.about(), "policies": list(need.policies)}


def _about(asked: dict[str, Any]) -> dict[str, Any]:
    """The request an approval was asked for (``_asked``), as ``PolicyDenied`` takes it."""
    return {
        "action": str(asked.get("action") or ""),
        "resource": str(asked.get("resource") or ""),
        "principal": str(asked.get("principal") or ""),
        "policies": tuple(asked.get("policies") or ()),
        "policy_version": str(asked.get("policy_version") or ""),
    }


def _inputs(call: EffectCall) -> Any:
    """The effect's inputs by name, as lineage names them (a step's arguments, a model
    task's input...), for the reviewer to see."""
    try:
        return DEFAULT_INPUTS.get(call.kind, data_inputs)(call)
    except Exception:  # the task shows what the effect is without them
        return None


def _still_denied(need: ApprovalRequired, given: dict[str, Any]) -> PolicyDenied:
    return PolicyDenied(
        f"{need.action} on {need.resource} by {need.principal}: approved by "
        f"{given['decided_by']} as {given['role']} (task {given['task_id']}), but "
        f"{', '.join(need.policies)} still forbid it: its unless must accept the role "
        f"{given['role']} (the roles of @escalate too) (policy set {need.policy_version})",
        **need.about(),
    )


__all__ = ["KEY", "Approvals"]
