"""Executors of the kernel's effect kinds: the last link of the gate's chain."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    ChildFailed,
    RunCancelled,
    StepExited,
    StepInterrupted,
    StepTimeout,
    WaitTimeout,
)
from ..store.base import SUCCEEDED, TERMINAL
from . import serde, step_threads
from .control import Parked, Unwind
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
    """Execute a step's body once (one attempt): async bodies on the run's task, sync ones
    on a thread. Whatever the body raises is an error of this attempt: a ``BaseException``
    that is not the kernel's own control flow is translated here, at the gate's last link,
    so it is recorded and retried like any error and never stops the worker's loop
    (``_contained``)."""
    try:
        return await _attempt(call)
    except (RunCancelled, Parked, Unwind):
        raise  # the kernel's own control flow, passing through
    except Exception:
        raise
    except BaseException as exc:
        error = _contained(call.name, exc)
        if error is exc:
            raise
        raise error from exc


def _contained(name: str, exc: BaseException, *, on_task: bool = True) -> BaseException:
    """The aiosys error a step's ``BaseException`` becomes, or ``exc`` itself when it is
    the cancellation of the task executing the run (shutdown, the run's timeout, the step's
    own timeout): that one must keep unwinding. A ``CancelledError`` is the task's own when
    the task is being cancelled (``Task.cancelling()``); one a step raises while nobody
    cancels its task (a cancelled inner future, a sync body raising it) is the step's.
    ``on_task`` False: raised on a sync step's thread, where no cancellation is the run's."""
    if on_task and isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling() > 0:
            return exc
    cls = type(exc)
    raised = f"{cls.__module__}.{cls.__qualname__}"
    what = f"step {name!r} raised {cls.__qualname__}"
    detail = str(exc)
    if isinstance(exc, SystemExit | GeneratorExit):
        code = exc.code if isinstance(exc, SystemExit) else None
        return StepExited(
            f"{what}({detail}): a step cannot exit the process; the attempt failed for good",
            raised=raised,
            code=code,
        )
    return StepInterrupted(
        f"{what}{f'({detail})' if detail else ''}, which is not an Exception: "
        "the attempt failed and is retried under the step's policy",
        raised=raised,
    )


async def _attempt(call: EffectCall) -> Any:
    assert call.fn is not None
    info = StepInfo(call.run_id, call.seq, call.meta.get("attempt", 1), call.name)
    step_token = _step_info.set(info)
    wf_token = current_execution.set(None)  # a step calling a step just calls it
    try:
        if not inspect.iscoroutinefunction(call.fn):
            body = _sync_body(call)
            if call.timeout is not None:  # a thread of its own: see step_threads
                key = (call.run_id, call.seq)
                return await step_threads.run_with_timeout(key, call.name, body, call.timeout)
            pooled = step_threads.pooled(body)
            return await asyncio.get_running_loop().run_in_executor(None, pooled)
        work = call.fn(*call.args, **call.kwargs)
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


def _sync_body(call: EffectCall) -> Callable[[], Any]:
    """A sync step's body for its thread, in a copy of the caller's context. A
    ``BaseException`` is translated on the thread: travelling through an asyncio future it
    would be thrown into the run's coroutines, and a ``GeneratorExit`` thrown there closes
    them (``coroutine ignored GeneratorExit``)."""
    assert call.fn is not None
    fn, args, kwargs = call.fn, call.args, call.kwargs
    ctx = contextvars.copy_context()

    def body() -> Any:
        try:
            return ctx.run(fn, *args, **kwargs)
        except StopIteration as exc:
            # A future refuses StopIteration (the run would wait forever): it becomes a
            # RuntimeError, as it does when a coroutine raises it (PEP 479).
            raise RuntimeError(f"step {call.name!r} raised StopIteration") from exc
        except Exception:
            raise
        except BaseException as exc:
            raise _contained(call.name, exc, on_task=False) from exc

    return body


def _deadline(call: EffectCall, seconds: float | None) -> float | None:
    """A wait's deadline: the one recorded when it first parked, else ``seconds`` from when
    the workflow asked for the wait (``called_at``: before the commit of the run's earlier
    records, which the wait must not be made longer by)."""
    pending = call.meta.get("pending")
    if pending is not None:
        deadline: float | None = pending.get("deadline")
        return deadline
    if seconds is None:
        return None
    called_at = call.params.get("called_at")
    return (call.execution.app.store.clock() if called_at is None else called_at) + seconds


async def sleep(call: EffectCall) -> None:
    deadline = _deadline(call, call.params["seconds"])
    assert deadline is not None
    if call.execution.app.store.clock() < deadline:
        raise Parked(deadline, {"deadline": deadline})


async def wait_signal(call: EffectCall) -> Any:
    signal = call.execution.take_signal(call.name)
    if signal is not None:
        call.meta["consume_signal"] = signal.id
        return json.loads(signal.payload)
    deadline = _deadline(call, call.params.get("timeout"))
    if deadline is not None and call.execution.app.store.clock() >= deadline:
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
        detached=bool(p.get("detached", False)),
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
    return call.execution.app.store.clock()


def register_kernel_effects(gate: Gate) -> None:
    gate.register("step", run_step)
    gate.register("sleep", sleep)
    gate.register("signal", wait_signal)
    gate.register("child_start", start_child)
    gate.register("child_result", child_result)
    gate.register("now", clock)
