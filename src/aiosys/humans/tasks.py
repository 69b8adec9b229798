"""Human tasks as effects: ``ctx.human_task`` parks its run until a person decides.

A task is an effect of kind ``human_task`` (its executor registered on the app's gate), so
it is numbered, recorded and replayed like any other. Its executor:

- the first time, writes the task's row with its ``create_task`` audit record, in one
  transaction; the row is keyed by the run and effect number, so a replay after a crash finds
  it and writes nothing (never a second task). Then the run parks (``waiting``, no worker
  held) until the SLA's due time, or until woken;
- whenever the run wakes (a decision wakes it in the transaction that records the decision:
  ``App.complete_wait``; a due time comes), it reads the row: decided, it returns the
  decision, which the effect log records as the effect's output (a replay returns it from
  there and never reads the task again); due time passed, it escalates; else it parks again.

Escalation, when the current role's SLA passes: the task is handed to the next role of
``escalate_to`` with a fresh SLA (claims dropped), the hand-over appended to its ``history``
and audited (``escalate_task``, as the run's principal). With ``return_escalated=True`` the
task ends instead (status ``escalated``: it can be decided no more) and returns a
``Decision`` with action ``escalated`` naming the role it passed to, so the workflow can
react. With the chain exhausted the task stays with its last role and no further SLA.
The clock is the store's (``Store.clock``): timers, due times and decisions use one clock.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..durations import parse_duration
from ..errors import ConfigError
from ..governance.audit_record import AuditRecord, Scalar, micros
from ..kernel import serde
from ..kernel.control import Parked
from ..kernel.gate import EffectCall, Gate
from ..kernel.principal import principal_of_run
from ..store._text import check_identifier
from . import forms
from .decision import ESCALATED, Decision
from .rows import CLAIMED, COMPLETED, OPEN, TaskRow, task_row

if TYPE_CHECKING:
    from ..governance.audit import AuditLog
    from ..kernel import Context
    from ..store import Store

#: The effect kind of a human task.
KIND = "human_task"
# Task ids are derived from the run and the effect number: the same on every replay.
_IDS = uuid.UUID("6a1d2f0e-8c1b-4f3e-9a57-2b0f4d6c8e13")


class TaskApp(Protocol):
    """What human tasks need of the app (``aiosys.App``)."""

    @property
    def store(self) -> Store: ...

    audit: AuditLog

    async def authorize(
        self,
        action: str,
        *,
        tenant: str | None = None,
        workflow: str | None = None,
        input: Any = None,
    ) -> str | None: ...

    async def complete_wait(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[dict[str, Any]]: ...


def task_id(run_id: str, seq: int) -> str:
    """The id of the task of effect ``seq`` of run ``run_id``."""
    return str(uuid.uuid5(_IDS, f"{run_id}:{seq}"))


def sla_seconds(sla: Any) -> float | None:
    """An SLA as seconds: ``"2d"`` (see ``aiosys.durations``), a number of seconds or a
    ``timedelta``; None for none. ``ConfigError`` for anything else, or one not above 0."""
    if sla is None:
        return None
    if isinstance(sla, timedelta):
        seconds = sla.total_seconds()
    elif isinstance(sla, str):
        try:
            seconds = parse_duration(sla)
        except ValueError as exc:
            raise ConfigError(f"a human task's sla: {exc}") from None
    elif isinstance(sla, int | float) and not isinstance(sla, bool):
        seconds = float(sla)
    else:
        raise ConfigError(f"a human task's sla must be like '2d', seconds or a timedelta: {sla!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"a human task's sla must be more than 0 seconds, not {sla!r}")
    return seconds


def task_record(
    action: str,
    row: TaskRow,
    principal: str,
    outcome: str,
    at: float,
    detail: Mapping[str, Scalar] | None = None,
) -> AuditRecord:
    """The audit record of ``action`` (``create_task``, ``claim_task``, ``release_task``,
    ``complete_task``, ``escalate_task``) on ``row`` by ``principal`` (a uid)."""
    return AuditRecord(
        principal=principal,
        tenant=row.tenant,
        action=action,
        resource=f"task:{row.id}",
        outcome=outcome,
        run_id=row.run_id,
        effect_seq=row.seq,
        at=micros(at),
        detail={"workflow": row.workflow, "task": row.name, "role": row.role, **(detail or {})},
    )


class HumanTasks:
    """The human tasks of one app (``app.humans``): the ``human_task`` effect's executor and
    what ``ctx.human_task`` calls."""

    def __init__(self, app: TaskApp) -> None:
        self.app = app

    def install(self, gate: Gate) -> None:
        gate.register(KIND, self.execute)

    async def task(
        self,
        ctx: Context,
        name: str,
        *,
        role: str,
        data: Any = None,
        form: Any = None,
        sla: Any = None,
        escalate_to: Sequence[str] = (),
        assignee: str | None = None,
        return_escalated: bool = False,
    ) -> Decision:
        """``ctx.human_task``: a task for ``role`` named ``name``; the ``Decision``.

        ``data``: what the reviewer sees (JSON, or a pydantic model); ``form``: the pydantic
        model class an ``edit`` must fit (None: any data); ``sla``: how long each role has
        (``"2d"``, seconds, a ``timedelta``; None: no limit); ``escalate_to``: the roles the
        task passes to, in order, as each SLA passes; ``assignee``: a principal id the task
        is claimed for from the start; ``return_escalated``: an SLA passing ends the task
        and returns ``escalated``. ``ConfigError`` (the run fails) for a malformed one."""
        check_identifier("human task name", name)
        roles = [role, *escalate_to] if not isinstance(escalate_to, str) else None
        if roles is None:
            raise ConfigError(
                f"escalate_to of task {name!r} must be a list of roles, not the string "
                f"{escalate_to!r} (write escalate_to=[{escalate_to!r}])"
            )
        for r in roles:
            if not isinstance(r, str) or not r:
                raise ConfigError(f"task {name!r}: a role must be a non-empty string, not {r!r}")
            check_identifier("role", r)
        if assignee is not None:
            check_identifier("assignee", assignee)
        params = {
            "role": role,
            "data": serde.dumps(data, f"the data of human task {name!r}"),
            "form": forms.describe(form),
            "sla": sla_seconds(sla),
            "escalate_to": list(escalate_to),
            "assignee": assignee,
            "return_escalated": bool(return_escalated),
            "called_at": self.app.store.clock(),
        }
        decision: Decision = await ctx.effect(KIND, name, params=params, returns=Decision)
        return decision

    # ---- the executor -------------------------------------------------------------------

    async def execute(self, call: EffectCall) -> Decision:
        """The ``human_task`` effect: create the task once, then return its decision or
        park until there is one (see the module docstring)."""
        ex = call.execution
        row = await self.of_effect(ex.run.id, call.seq)
        if row is None:
            row = await self.create(call, call.name, call.params)
        row = await self.settle(call, row)
        call.meta["record"] = {**(call.meta.get("record") or {}), "task_id": row.id}
        if row.decision is not None and not row.actionable:
            decision = row.decision
            call.meta["record"].update(action=decision.action, decided_by=decision.decided_by)
            return decision
        raise Parked(row.due_at, {"task_id": row.id, "due_at": row.due_at})

    async def settle(self, call: EffectCall, row: TaskRow) -> TaskRow:
        """``row`` once the escalations its SLAs call for by now are made: decided (or
        ended), or still to decide with its next due time (None: none) in the future."""
        while row.actionable:
            now = self.app.store.clock()
            if row.due_at is None or now < row.due_at:
                break
            row = await self._escalate(call, row, now)
        return row

    async def of_effect(self, run_id: str, seq: int) -> TaskRow | None:
        rows = await self.app.store.fetch("human_task_of_effect", {"run_id": run_id, "seq": seq})
        return task_row(rows[0]) if rows else None

    async def create(self, call: EffectCall, name: str, p: Mapping[str, Any]) -> TaskRow:
        """The task of effect ``call`` (its run and number), named ``name``, as ``p`` asks
        (``role``, ``data`` as JSON text, ``form``, ``sla`` seconds, ``escalate_to``,
        ``assignee``, ``return_escalated``, ``called_at``: as ``task`` gives them), with its
        ``create_task`` audit record in one transaction; the task written before (a replay
        after a crash or a move) if there is one, unchanged."""
        run = call.execution.run
        now = self.app.store.clock()
        sla = p["sla"]
        called_at = p.get("called_at") or now
        assignee = p["assignee"]
        values = {
            "id": task_id(run.id, call.seq),
            "tenant": run.tenant,
            "run_id": run.id,
            "seq": call.seq,
            "workflow": run.workflow,
            "name": name,
            "role": p["role"],
            "data": p["data"],
            "form": None if p["form"] is None else json.dumps(p["form"]),
            "sla": sla,
            "due_at": None if sla is None else called_at + sla,
            "escalate_to": json.dumps(p["escalate_to"]),
            "return_escalated": int(p["return_escalated"]),
            "assignee": assignee,
            "claimed_by": assignee,
            "claimed_at": None if assignee is None else now,
            "status": OPEN if assignee is None else CLAIMED,
            "now": now,
        }
        row = task_row({**values, "escalations": 0, "history": "[]", "decision": None,
                        "decided_by": None, "decided_at": None, "created_at": now,
                        "updated_at": now})  # fmt: skip
        also = []
        if self.app.audit.enabled:
            detail: dict[str, Scalar] = {"assignee": assignee, "sla": _text(sla)}
            record = task_record("create_task", row, principal_of_run(run).uid, "ok", now, detail)
            also.append(("audit_append", record.params()))
        created = await self.app.store.change("human_task_insert", values, also=also)
        if created:
            self.app.audit.appended(len(also))
            return task_row(created[0])
        existing = await self.of_effect(run.id, call.seq)  # written before a crash or a move
        if existing is None:  # pragma: no cover - the insert conflicts only with it
            raise ConfigError(f"the task of effect #{call.seq} of run {run.id} vanished")
        return existing

    async def _escalate(self, call: EffectCall, row: TaskRow, now: float) -> TaskRow:
        """Pass ``row`` to its next role (or end it, ``return_escalated``); the row after, or
        as another writer left it (a decision, or another escalation, that came first)."""
        to = row.next_role
        ends = row.return_escalated
        decision = None
        if ends:
            decision = Decision(
                action=ESCALATED,
                data=row.data,
                decided_at=now,
                task_id=row.id,
                role=row.role,
                escalated_to=to,
            )
        if ends:
            status = ESCALATED
        elif to is None and row.status == CLAIMED:
            status = CLAIMED  # nobody to hand it to: whoever holds it keeps it
        else:
            status = OPEN
        handed = to is not None and not ends
        values = {
            "id": row.id,
            "escalations": row.escalations,
            "role": to if handed else row.role,
            "due_at": now + row.sla if handed and row.sla is not None else None,
            "status": status,
            "history": json.dumps([*row.history, {"at": now, "from": row.role, "to": to}]),
            "decision": None if decision is None else decision.model_dump_json(),
            "decided_at": now if ends else None,
            "now": now,
        }
        also = []
        if self.app.audit.enabled:
            detail: dict[str, Scalar] = {"to": to, "level": row.escalations + 1, "ends": ends}
            who = principal_of_run(call.execution.run).uid
            record = task_record("escalate_task", row, who, "ok", now, detail)
            also.append(("audit_append", record.params()))
        changed = await self.app.store.change("human_task_escalate", values, also=also)
        if changed:
            self.app.audit.appended(len(also))
            return task_row(changed[0])
        current = await self.of_effect(row.run_id, row.seq)
        assert current is not None
        return current


def _text(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:g}s"


__all__ = ["COMPLETED", "KIND", "HumanTasks", "TaskApp", "sla_seconds", "task_id", "task_record"]
