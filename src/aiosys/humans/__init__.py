"""Human tasks: a workflow asks a person to decide, durably, and the inbox they decide in.

``await ctx.human_task("review", role="paralegal", data=summary, form=Review, sla="2d",
escalate_to=["senior-paralegal"])`` parks the run (``waiting``, no worker held) until someone
with the role approves, rejects or edits it, and returns the ``Decision``. The task is a row of
the store (``human_tasks``), written once per effect; a replay returns the recorded decision
and never makes a second task. ``tasks`` is the effect's side (create, wait, escalate on SLA),
``inbox`` the people's side (list, show, claim, release, decide: ``App.list_tasks`` and the
other task methods), ``forms`` checks an edit against its pydantic form, ``rows`` is the
task as stored and ``decision`` what the workflow gets back. ``approval`` is human oversight
at the gate: an effect a Cedar policy forbids until a person approves it (``@approval``)
waits for that approval as a task of the same kind.

Layer: above ``models``, ``governance`` and ``observe``, below ``cli``; the kernel does not
import it (it only knows that an effect may park until something outside completes it:
``App.complete_wait``).
"""

from __future__ import annotations

from .decision import ACTIONS, ESCALATED, Decision
from .inbox import Inbox
from .rows import STATUSES, TaskRow
from .tasks import KIND, HumanTasks

__all__ = ["ACTIONS", "ESCALATED", "KIND", "STATUSES", "Decision", "HumanTasks", "Inbox", "TaskRow"]
