"""Control-flow signals of the runtime. They are ``BaseException`` so that a workflow's
``except Exception`` cannot swallow them (as ``asyncio.CancelledError`` does)."""

from __future__ import annotations

from typing import Any


class Parked(BaseException):
    """Raised by a wait's executor (timer, signal, child) to the effect log, never further:
    the run must wait. The effect log records the wait and suspends the execution in place
    (``Execution.suspend``); the workflow's own code never sees it. ``state`` is recorded on
    the pending effect so the wait keeps its deadline on replay."""

    def __init__(self, wake_at: float | None, state: dict[str, Any]) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at
        self.state = state


class Unwind(BaseException):
    """The execution is being unwound and must stop: evicted from its worker's cache of
    parked executions, its worker stopping, or its claim superseded. Raised through the
    workflow's code (its ``finally`` blocks run), and by every effect it tries meanwhile:
    no effect starts during an unwind."""


class LeaseLost(Unwind):
    """Another claim owns the run now (ours lapsed, or a write could not be made): stop."""
