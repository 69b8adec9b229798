"""``TaskRow``: one human task as the store keeps it, and what the inbox shows of it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .decision import Decision

# Statuses of a task. ``open``: for anyone with its role; ``claimed``: held by one principal
# (``claimed_by``), who alone may decide or release it; ``completed``: decided;
# ``escalated``: its SLA passed on a task asked with ``return_escalated=True``, and the
# workflow got ``escalated`` back (it can be decided no more). An escalation that does not
# end the task hands it to the next role and leaves it ``open``.
OPEN = "open"
CLAIMED = "claimed"
COMPLETED = "completed"
ESCALATED = "escalated"
STATUSES = (OPEN, CLAIMED, COMPLETED, ESCALATED)
ACTIONABLE = frozenset({OPEN, CLAIMED})


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A human task. Times are seconds since the epoch (the store's clock).

    ``run_id``/``seq``: the run and its effect that waits for the task; ``role``: who may
    act on it now (escalation moves it along ``escalate_to``); ``data``: what the reviewer
    sees; ``form``: ``{"ref", "schema"}`` of the model an edit must fit (None: any data);
    ``sla``: seconds each role has (None: no SLA); ``due_at``: when the current role's SLA
    passes (None: never); ``escalations``: how often an SLA passed; ``history``: one
    ``{"at", "from", "to"}`` per escalation (``to`` None: the chain was exhausted);
    ``assignee``: the principal id the workflow claimed it for; ``claimed_by`` /
    ``claimed_at``: who holds it; ``decision``: once decided (or escalated back to the
    workflow); ``run_status``: the status of its run, when read with it."""

    id: str
    tenant: str
    run_id: str
    seq: int
    workflow: str
    name: str
    role: str
    data: Any
    form: dict[str, Any] | None
    sla: float | None
    due_at: float | None
    escalate_to: tuple[str, ...]
    escalations: int
    history: tuple[dict[str, Any], ...]
    return_escalated: bool
    assignee: str | None
    claimed_by: str | None
    claimed_at: float | None
    status: str
    decision: Decision | None
    decided_by: str | None
    decided_at: float | None
    created_at: float
    updated_at: float
    run_status: str | None = None

    @property
    def actionable(self) -> bool:
        """Still waiting for a decision (open or claimed)."""
        return self.status in ACTIONABLE

    @property
    def next_role(self) -> str | None:
        """The role its next escalation hands it to (None: none left)."""
        chain = self.escalate_to
        return chain[self.escalations] if self.escalations < len(chain) else None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (the CLI's ``--json``; times as epoch seconds)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "run_id": self.run_id,
            "seq": self.seq,
            "workflow": self.workflow,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "data": self.data,
            "form": self.form,
            "sla": self.sla,
            "due_at": self.due_at,
            "escalate_to": list(self.escalate_to),
            "escalations": self.escalations,
            "history": list(self.history),
            "return_escalated": self.return_escalated,
            "assignee": self.assignee,
            "claimed_by": self.claimed_by,
            "claimed_at": self.claimed_at,
            "decision": None if self.decision is None else self.decision.model_dump(mode="json"),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "run_status": self.run_status,
        }


def task_row(row: Mapping[str, Any]) -> TaskRow:
    """A ``TaskRow`` from a row of the ``human_tasks`` queries."""
    decision = row["decision"]
    return TaskRow(
        id=row["id"],
        tenant=row["tenant"],
        run_id=row["run_id"],
        seq=int(row["seq"]),
        workflow=row["workflow"],
        name=row["name"],
        role=row["role"],
        data=None if row["data"] is None else json.loads(row["data"]),
        form=None if row["form"] is None else json.loads(row["form"]),
        sla=row["sla"],
        due_at=row["due_at"],
        escalate_to=tuple(json.loads(row["escalate_to"])),
        escalations=int(row["escalations"]),
        history=tuple(json.loads(row["history"])),
        return_escalated=bool(row["return_escalated"]),
        assignee=row["assignee"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        status=row["status"],
        decision=None if decision is None else Decision.model_validate_json(decision),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run_status=row.get("run_status"),
    )


__all__ = ["ACTIONABLE", "CLAIMED", "COMPLETED", "ESCALATED", "OPEN", "STATUSES", "TaskRow"]
