"""Executors of the kernel's effect kinds: the last link of the gate's chain."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ChildFailed, StepTimeout, WaitTimeout
from ..store.base import SUCCEEDED, TERMINAL, now
from . import serde
from .control import Parked
from .gate import EffectCall, Gate
from .runtime import current_execution


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What a running step knows about itself (``aiosys.current_step()``)."""

    run_id: str
    seq: int
    attempt: int
    name: str

    @property
    def idempotency_key(self) -> str:
        """Stable across retries, crashes and replays: pass it to the outside world."""
        return f"{self.run_id}:{self.seq}"


_step_info: contextvars.ContextVar[StepInfo | None] = contextvars.ContextVar(
    "aiosys_step", default=None
)


def current_step() -> StepInfo | None:
    """The step being executed in this task or thread, or None outside a step."""
    return _step_info.get()


async def run_step(call: EffectCall) -> Any:
    assert call.fn is not None
    info = StepInfo(call.run_id, call.seq, call.meta.get("attempt", 1), call.name)
    step_token = _step_info.set(info)
    wf_token = current_execution.set(None)  # a step calling a step just calls it
    try:
        if inspect.iscoroutinefunction(call.fn):
            work: Any = call.fn(*call.args, **call.kwargs)
        else:
            ctx = contextvars.copy_context()
            fn = functools.partial(ctx.run, call.fn, *call.args, **call.kwargs)
            work = asyncio.get_running_loop().run_in_executor(None, fn)
        if call.timeout is None:
            return await work
        try:
            async with asyncio.timeout(call.timeout) as cm:
                return await work
        except TimeoutError:
            if cm.expired():
                raise StepTimeout(
                    f"step {call.name!r} ran longer than its timeout of {call.timeout}s"
                ) from None
            raise
    finally:
        current_execution.reset(wf_token)
        _step_info.reset(step_token)


def _deadline(call: EffectCall, seconds: float | None) -> float | None:
    """A wait's deadline: the one recorded when it first parked, else from now."""
    pending = call.meta.get("pending")
    if pending is not None:
        deadline: float | None = pending.get("deadline")
        return deadline
    return None if seconds is None else now() + seconds


async def sleep(call: EffectCall) -> None:
    deadline = _deadline(call, call.params["seconds"])
    assert deadline is not None
    if now() < deadline:
        raise Parked(deadline, {"deadline": deadline})


async def wait_signal(call: EffectCall) -> Any:
    signal = call.execution.take_signal(call.name)
    if signal is not None:
        call.meta["consume_signal"] = signal.id
        return json.loads(signal.payload)
    deadline = _deadline(call, call.params.get("timeout"))
    if deadline is not None and now() >= deadline:
        raise WaitTimeout(
            f"no signal {call.name!r} reached run {call.run_id} within "
            f"{call.params.get('timeout')}s"
        )
    raise Parked(deadline, {"deadline": deadline})


async def start_child(call: EffectCall) -> str:
    ex = call.execution
    p = call.params
    handle = await ex.app.start(
        p["workflow"],
        p["input"],
        version=p.get("version"),
        queue=p.get("queue"),
        tenant=ex.run.tenant,
        idempotency_key=call.idempotency_key,
        parent_id=ex.run.id,
    )
    return handle.id


async def child_result(call: EffectCall) -> Any:
    child_id = call.params["child_id"]
    row = await call.execution.app.store.get_run(child_id, tenant=call.execution.run.tenant)
    if row is None:
        raise ChildFailed(f"child run {child_id} does not exist", child_id=child_id)
    if row.status == SUCCEEDED:
        return None if row.result is None else json.loads(row.result)
    if row.status in TERMINAL:
        error = json.loads(row.error) if row.error else {}
        # The child's error, rebuilt, is the cause: recorded with ChildFailed, kept on replay.
        app = call.execution.app
        cause = serde.rebuild_error(error, app.safe_modules) if error else None
        raise ChildFailed(
            f"child run {child_id} ({row.workflow}) ended {row.status}: "
            f"{error.get('message', 'no error recorded')}",
            child_id=child_id,
            status=row.status,
        ) from cause
    raise Parked(None, {"child_id": child_id})


async def clock(call: EffectCall) -> float:
    return now()


def register_kernel_effects(gate: Gate) -> None:
    gate.register("step", run_step)
    gate.register("sleep", sleep)
    gate.register("signal", wait_signal)
    gate.register("child_start", start_child)
    gate.register("child_result", child_result)
    gate.register("now", clock)
