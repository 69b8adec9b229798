"""Control-flow signals of the runtime. They are ``BaseException`` so that a workflow's
``except Exception`` cannot swallow them (as ``asyncio.CancelledError`` does)."""

from __future__ import annotations

from typing import Any


class Parked(BaseException):
    """The run must wait (timer, signal, child): unwind the workflow and park the run.
    ``state`` is recorded on the pending effect so the wait keeps its deadline on replay."""

    def __init__(self, wake_at: float | None, state: dict[str, Any]) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at
        self.state = state


class LeaseLost(BaseException):
    """Another worker owns the run now (our lease expired): stop working on it."""
