"""``Decision``: what ``ctx.human_task`` returns, and how a decision is asked for.

A decision is recorded as the task effect's output (so a replay returns it) and on the
task's row (so the inbox shows it). It is a frozen pydantic model: the effect log records it
and decodes it back to the same value, on the first execution as on replay.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import pydantic

#: What a person may decide.
ACTIONS = ("approve", "reject", "edit")
#: What the task returns when its SLA passed and the workflow asked to hear of it
#: (``return_escalated=True``): no person decided.
ESCALATED: Final = "escalated"

Action = Literal["approve", "reject", "edit", "escalated"]


class Decision(pydantic.BaseModel):
    """The outcome of a human task.

    ``action``: ``approve``, ``reject``, ``edit`` (a person decided), or ``escalated`` (its
    SLA passed and the task was called with ``return_escalated=True``: nobody decided).
    ``data``: for ``edit`` the edited data, validated against the task's form and as the
    form dumps it to JSON; otherwise the data the task was created with. ``comment``: the
    decider's, if any. ``decided_by``: the principal id of who decided (None when
    escalated); ``decided_at``: when (seconds since the epoch, the store's clock).
    ``task_id``: the task's id; ``role``: the role the task was for when it was decided (for
    ``escalated``: the role whose SLA passed); ``escalated_to``: for ``escalated``, the role
    it passed to (None: ``escalate_to`` was exhausted)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    action: Action
    data: Any = None
    comment: str | None = None
    decided_by: str | None = None
    decided_at: float
    task_id: str
    role: str
    escalated_to: str | None = None

    @property
    def approved(self) -> bool:
        """True for ``approve`` and ``edit`` (an edit approves the edited data)."""
        return self.action in ("approve", "edit")


__all__ = ["ACTIONS", "ESCALATED", "Action", "Decision"]
