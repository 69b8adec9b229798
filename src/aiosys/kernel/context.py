"""``Context``: what a workflow uses to wait, signal, spawn children and stay deterministic.

Workflow code gets time, randomness and ids from here, never from the clock or ``uuid4()``:
replay must take the same path every time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..errors import ConfigError
from . import serde
from .retry import NO_RETRY, Retry
from .runtime import Execution


class Context:
    def __init__(self, execution: Execution) -> None:
        self._ex = execution

    @property
    def run_id(self) -> str:
        return self._ex.run.id

    @property
    def workflow(self) -> str:
        return self._ex.run.workflow

    @property
    def version(self) -> str:
        return self._ex.run.version

    @property
    def tenant(self) -> str:
        return self._ex.run.tenant

    @property
    def parent_id(self) -> str | None:
        return self._ex.run.parent_id

    @property
    def models(self) -> Any:
        """The app's model plane bound to this run (``await ctx.models.run(task, input)``);
        provided by ``aiosys.App``, whose ``models`` attribute the kernel does not know."""
        plane = getattr(self._ex.app, "models", None)
        if plane is None:
            raise ConfigError(
                f"ctx.models needs an app with a model plane: create the app with "
                f"`from aiosys import App` (this one is a {type(self._ex.app).__qualname__} "
                "from aiosys.kernel, which has no models)"
            )
        return plane.bind(self)

    async def human_task(
        self,
        name: str,
        *,
        role: str,
        data: Any = None,
        form: Any = None,
        sla: Any = None,
        escalate_to: Sequence[str] = (),
        assignee: str | None = None,
        return_escalated: bool = False,
    ) -> Any:
        """Park the run (durably, holding no worker) until a person with ``role`` decides
        the task ``name`` (``data``: what they review; ``form``: the pydantic model an edit
        must fit; ``sla``: how long each role has, ``"2d"`` or seconds; ``escalate_to``: the
        roles it passes to as each SLA passes; ``assignee``: a principal id it is claimed
        for); returns the decision. Provided by ``aiosys.App`` (``aiosys.humans``), whose
        ``humans`` attribute the kernel does not know: see ``HumanTasks.task``."""
        humans = getattr(self._ex.app, "humans", None)
        if humans is None:
            raise ConfigError(
                f"ctx.human_task needs an app with human tasks: create the app with "
                f"`from aiosys import App` (this one is a {type(self._ex.app).__qualname__} "
                "from aiosys.kernel, which has none)"
            )
        return await humans.task(
            self,
            name,
            role=role,
            data=data,
            form=form,
            sla=sla,
            escalate_to=escalate_to,
            assignee=assignee,
            return_escalated=return_escalated,
        )

    async def effect(
        self,
        kind: str,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        returns: Any = None,
        retry: Retry = NO_RETRY,
        timeout: float | None = None,
    ) -> Any:
        """A recorded effect of a kind an extension registered (``app.gate.register``):
        executed once through the gate, replayed from the record afterwards. ``params`` go
        to the executor as they are (they are not recorded); ``returns`` types the recorded
        output, on the first execution as on replay (``serde.record``)."""
        return await self._ex.effect(
            kind, name, params=params, returns=returns, retry=retry, timeout=timeout
        )

    async def sleep(self, seconds: float) -> None:
        """Park the run durably for ``seconds``; a restart neither shortens nor loses it."""
        called_at = self._ex.app.store.clock()
        await self._ex.effect(
            "sleep", "sleep", params={"seconds": float(seconds), "called_at": called_at}
        )

    async def wait_for(self, signal: str, timeout: float | None = None) -> Any:
        """Wait (durably, holding no worker) for a signal sent to this run and return its
        payload; raise ``WaitTimeout`` after ``timeout`` seconds."""
        called_at = self._ex.app.store.clock()
        return await self._ex.effect(
            "signal", signal, params={"timeout": timeout, "called_at": called_at}
        )

    async def start_child(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        queue: str | None = None,
        detached: bool = False,
    ) -> ChildHandle:
        """Start a child run (exactly once, even across replays); await the handle for its
        result. Cancelling this run, or its timeout, cancels the child too, unless it is
        ``detached`` (Temporal's parent close policy ABANDON)."""
        params: dict[str, Any] = {"workflow": workflow, "input": input}
        params |= {"version": version, "queue": queue}
        if detached:
            params["detached"] = True
        child_id = await self._ex.effect("child_start", workflow, params=params)
        return ChildHandle(self._ex, child_id, workflow)

    async def child(
        self, workflow: str, input: dict[str, Any] | None = None, *, detached: bool = False
    ) -> Any:
        """Start a child run and wait for its result (``detached``: see ``start_child``)."""
        return await (await self.start_child(workflow, input, detached=detached)).result()

    async def step(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        retry: Retry = NO_RETRY,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run any function as a recorded step without decorating it; its output is decoded
        by ``fn``'s return annotation, as ``@app.step`` does."""
        step_name = name or str(getattr(fn, "__qualname__", repr(fn)))
        return await self._ex.effect(
            "step",
            step_name,
            fn=fn,
            args=args,
            kwargs=kwargs,
            retry=retry,
            timeout=timeout,
            returns=serde.returns_of(fn, step_name),
        )

    async def now(self) -> float:
        """The wall clock, recorded: replay sees the same instant."""
        value: float = await self._ex.effect("now", "now")
        return value

    def random(self) -> random.Random:
        """A random generator seeded by the run: the same numbers on every replay."""
        return self._ex.random

    def uuid(self) -> str:
        """A UUID that is the same on every replay of this run."""
        return str(uuid.UUID(int=self._ex.random.getrandbits(128), version=4))


class ChildHandle:
    def __init__(self, execution: Execution, child_id: str, workflow: str) -> None:
        self._ex = execution
        self.id = child_id
        self.workflow = workflow

    async def result(self) -> Any:
        """Wait (durably) for the child to end; its result, or ``ChildFailed``."""
        return await self._ex.effect(
            "child_result", self.workflow, params={"child_id": self.id}, retry=NO_RETRY
        )

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()


__all__ = ["ChildHandle", "Context"]
