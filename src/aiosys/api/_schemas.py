"""The bodies of the HTTP API: what requests send and responses hold (pydantic models, so
the OpenAPI document at ``/openapi.json`` is precise). Times are ISO 8601 in UTC (made from
the store's epoch seconds, which pydantic reads as UTC); JSON values a run or task holds
(input, result, error, data) are given decoded."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..humans import TaskRow
from ..store.base import RunRow

RunStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "cancelled", "dead"]
TaskStatus = Literal["open", "claimed", "completed", "escalated"]

# An identity (tenant, key, name) is at most this long over HTTP: longer is refused early.
NAME = 200


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Run(BaseModel):
    """One run. ``error`` is the recorded error (``type``, ``message``, ``traceback``, ...)
    of a run that did not succeed; ``attempts`` counts the claims of it by workers."""

    id: str
    workflow: str
    version: str
    status: RunStatus
    tenant: str
    queue: str
    priority: int
    input: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    parent_id: str | None = None
    cancel_reason: str | None = None
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    deadline_at: dt.datetime | None = None

    @classmethod
    def of(cls, row: RunRow) -> Run:
        fields = {name: getattr(row, name) for name in RUN_FIELDS}  # times: epoch seconds
        error = _json(row.error)
        if error is not None and not isinstance(error, dict):
            error = {"message": str(error)}
        return cls.model_validate(
            fields
            | {"input": _json(row.input), "result": _json(row.result), "error": error}
            | {"attempts": row.claims}
        )


RUN_FIELDS = set(Run.model_fields) & set(RunRow.__dataclass_fields__)


class StartedRun(Run):
    """A started run; ``created`` is False when an idempotency key returned an existing one."""

    created: bool


class RunPage(BaseModel):
    """One page of runs, newest first; ``next_cursor`` (None on the last page) is the
    ``cursor`` of the next one."""

    data: list[Run]
    next_cursor: str | None = None


class StartRun(BaseModel):
    """What ``POST /v1/workflows/{name}/runs`` takes (``App.start``'s arguments)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] | None = Field(default=None, description="The workflow's parameters.")
    idempotency_key: str | None = Field(
        default=None,
        max_length=NAME,
        description="Starting again with this key returns the same run.",
    )
    tenant: str | None = Field(
        default=None,
        max_length=NAME,
        description="Default: the caller's tenant ('default' without).",
    )
    queue: str | None = Field(default=None, max_length=NAME, description="One the app declares.")
    priority: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    version: str | None = Field(default=None, max_length=NAME, description="Default: the latest.")
    traceparent: str | None = Field(
        default=None, max_length=NAME, description="W3C trace context the run's trace joins."
    )


class CancelRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by request", max_length=1000)


class SendSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(default=None, description="Any JSON value: what ctx.wait_for returns.")


class SignalSent(BaseModel):
    run_id: str
    signal: str


class PublishEvent(BaseModel):
    """What ``POST /v1/events/{topic}`` takes (``App.publish``'s arguments, in CloudEvents'
    words). A CloudEvents structured-mode body (``application/cloudevents+json``) is one
    too: its ``specversion`` must be ``1.0`` and its ``type``, if given, the topic."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] | None = Field(
        default=None, description="The input of each run the event starts (its parameters)."
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=NAME,
        description="The event's id (default: a new UUID): publishing the same id (and "
        "source) again starts nothing new and returns the same runs.",
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=NAME,
        description="Who produced the event (a URI reference); ids are unique per source.",
    )
    specversion: Literal["1.0"] | None = Field(
        default=None, description="CloudEvents structured mode: the spec's version."
    )
    type: str | None = Field(
        default=None, max_length=NAME, description="CloudEvents structured mode: the topic."
    )
    datacontenttype: Literal["application/json"] | None = Field(
        default=None, description="CloudEvents structured mode: data is JSON."
    )


class TriggeredRun(BaseModel):
    """A run an event started; ``created`` is False when the event was published before
    and this is the run it started then."""

    workflow: str
    run_id: str
    created: bool


class EventAccepted(BaseModel):
    """A published event (``id``, ``type`` = the topic, ``source``) and the run of each
    workflow triggered by its topic."""

    id: str
    type: str
    source: str | None = None
    runs: list[TriggeredRun]


class Decision(BaseModel):
    """How a task was decided (``aiosys.humans.Decision``)."""

    action: Literal["approve", "reject", "edit", "escalated"]
    data: Any = None
    comment: str | None = None
    decided_by: str | None = None
    decided_at: dt.datetime
    role: str
    escalated_to: str | None = None


class Task(BaseModel):
    """A human task (``aiosys.humans.TaskRow``): what it asks (``data``), of which role,
    for which run, when it is due (``due_at``; ``sla`` in seconds), who holds it, how it
    was decided."""

    id: str
    name: str
    tenant: str
    role: str
    status: TaskStatus
    run_id: str
    seq: int
    workflow: str
    data: Any = None
    form: dict[str, Any] | None = None
    sla: float | None = None
    due_at: dt.datetime | None = None
    escalate_to: list[str]
    escalations: int
    assignee: str | None = None
    claimed_by: str | None = None
    claimed_at: dt.datetime | None = None
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    run_status: RunStatus | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: TaskRow) -> Task:
        return cls.model_validate(row.as_dict())  # times: epoch seconds, read as UTC


class TaskList(BaseModel):
    """Tasks the caller may act on, most urgent first."""

    data: list[Task]


class CompleteTask(BaseModel):
    """A decision: ``approve``, ``reject``, or ``edit`` with ``data`` fitting the task's form."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "edit"]
    data: Any = None
    comment: str | None = Field(default=None, max_length=10_000)


class AuditProblem(BaseModel):
    seq: int
    kind: str
    message: str


class AuditVerification(BaseModel):
    """``aiosys audit verify``: ``ok`` when the whole chain is intact and its checkpoints
    verify against the operator's key; else ``problem`` names the first bad record."""

    ok: bool
    status: Literal["intact", "broken", "unpinned", "empty"]
    records: int
    checkpoints: int
    signed_to: int
    unsigned: int
    key: str
    seconds: float
    problem: AuditProblem | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"


__all__ = [
    "NAME",
    "AuditVerification",
    "CancelRun",
    "CompleteTask",
    "EventAccepted",
    "Health",
    "PublishEvent",
    "Ready",
    "Run",
    "RunPage",
    "RunStatus",
    "SendSignal",
    "SignalSent",
    "StartRun",
    "StartedRun",
    "Task",
    "TaskList",
    "TaskStatus",
    "TriggeredRun",
]
