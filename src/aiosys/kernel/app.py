"""``App``: the registry of workflows and steps, and the way to start and inspect runs."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import typing
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar, overload

import pydantic

from ..errors import (
    ConfigError,
    InvalidInput,
    RunFailed,
    RunNotFound,
    UnknownWorkflow,
)
from ..store import Store, open_store
from ..store.base import (
    SUCCEEDED,
    TERMINAL,
    EffectRow,
    Finish,
    NewRun,
    RunRow,
    child_cancel_reason,
    now,
)
from . import serde
from .effects import register_kernel_effects
from .gate import Gate
from .interceptors import EffectLog, Retrying
from .retry import Retry
from .runtime import current_execution

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class StepDecorator(Protocol):
    """What ``app.step(retry=...)`` returns: turns a sync or async function into an async
    step with the same parameters."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]: ...


DEFAULT_RETRY = Retry()


@dataclass(frozen=True)
class QueueSpec:
    """A named queue: ``concurrency`` caps its running runs across all workers,
    ``worker_concurrency`` within one worker."""

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None


@dataclass
class WorkflowSpec:
    name: str
    version: str
    fn: Callable[..., Any]
    queue: str
    priority: int
    timeout: float | None
    returns: Any
    _input_model: type[pydantic.BaseModel] = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def validate_input(self, data: Any) -> str:
        """Check ``data`` against the workflow's parameters; the JSON to store."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInput(
                f"input of workflow {self.name!r} must be an object of its parameters "
                f"({', '.join(self._input_model.model_fields) or 'none'}), "
                f"not {type(data).__name__}"
            )
        try:
            model = self._input_model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidInput(_describe(self.name, exc)) from None
        return model.model_dump_json()

    def decode_input(self, text: str) -> dict[str, Any]:
        model = self._input_model.model_validate_json(text)
        return {name: getattr(model, name) for name in self._input_model.model_fields}


def _describe(workflow: str, exc: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
    )
    return f"invalid input for workflow {workflow!r}: {problems}"


def _input_model(name: str, fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """A pydantic model of the workflow's parameters after ``ctx``."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = list(sig.parameters.values())[1:]
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigError(f"workflow {name!r}: parameter {p.name!r} must be a plain keyword")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    return pydantic.create_model(f"{name}_input", __config__=config, **fields)


class Ended(NamedTuple):
    """How a run ended, as its waiters learn it."""

    run_id: str
    workflow: str
    version: str
    status: str
    result: str | None
    error: str | None


class RunHandle:
    """A started run: ``id``, ``await status()``, ``await result()``."""

    def __init__(self, app: App, run_id: str, created: bool = True) -> None:
        self.app = app
        self.id = run_id
        self.created = created

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    async def row(self) -> RunRow:
        row = await self.app.store.get_run(self.id)
        if row is None:
            raise RunNotFound(f"no run with id {self.id!r}")
        return row

    async def status(self) -> str:
        return (await self.row()).status

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end: its result, or ``RunFailed`` if it did not succeed."""
        app = self.app
        async with asyncio.timeout(timeout):
            delay = 0.01
            while True:
                waiter = app._waiter(self.id)
                if not app._running_here(self.id):
                    row = await self.row()
                    if row.status in TERMINAL:
                        return app._outcome(
                            Ended(
                                row.id, row.workflow, row.version, row.status, row.result, row.error
                            )
                        )
                # A run this process executes resolves the waiter with its end, no read
                # needed; a run executed elsewhere is polled, backing off to once a second.
                try:
                    end = await asyncio.wait_for(asyncio.shield(waiter), delay)
                except TimeoutError:
                    delay = min(1.0, delay * 2)
                    continue
                if end is not None:
                    return app._outcome(end)


class App:
    """Workflows, steps and queues, bound to one store.

    ``async with app:`` opens the store and runs a worker in this process (the embedded
    default); ``await app.open()`` opens the store only (start runs for other workers).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        concurrency: int = 64,
        lease: float = 30.0,
    ) -> None:
        self._store_arg = store
        self._store: Store | None = store if not isinstance(store, str | None) else None
        self.concurrency = concurrency
        self.lease = lease
        self.workflows: dict[str, dict[str, WorkflowSpec]] = {}
        self.queues: dict[str, QueueSpec] = {"default": QueueSpec("default")}
        self.gate = Gate()
        self.gate.add("effect_log", EffectLog())
        self.gate.add("retry", Retrying())
        register_kernel_effects(self.gate)
        self._opened = 0
        self._worker: Any = None  # the in-process Worker while `async with app:` runs
        self._waiters: dict[str, asyncio.Future[Ended | None]] = {}

    # ---- registration -----------------------------------------------------------------

    def workflow(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        version: str = "1",
        queue: str = "default",
        priority: int = 0,
        timeout: float | None = None,
    ) -> Any:
        """Register a workflow: ``async def wf(ctx: Context, **params) -> result``.
        Usable bare (``@app.workflow``) or with options; returns the function unchanged."""

        def register(fn: F) -> F:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigError(f"workflow {fn.__name__!r} must be an async function")
            wf_name = name or fn.__name__
            versions = self.workflows.setdefault(wf_name, {})
            if version in versions:
                raise ConfigError(f"workflow {wf_name!r} version {version!r} is registered twice")
            hints = typing.get_type_hints(fn)
            versions[version] = WorkflowSpec(
                name=wf_name,
                version=version,
                fn=fn,
                queue=queue,
                priority=priority,
                timeout=timeout,
                returns=hints.get("return"),
                _input_model=_input_model(wf_name, fn),
            )
            return fn

        return register(fn) if fn is not None else register

    @overload
    def step(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def step(self, fn: Callable[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def step(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> StepDecorator: ...

    def step(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Make a function (async, or sync run in a thread) a recorded, retried step."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            step_name = name or fn.__qualname__
            policy = retry or DEFAULT_RETRY
            returns = typing.get_type_hints(fn).get("return")

            @functools.wraps(fn)
            async def step(*args: Any, **kwargs: Any) -> Any:
                ex = current_execution.get()
                if ex is None:  # called outside a workflow: just a function call
                    out = fn(*args, **kwargs)
                    return await out if inspect.isawaitable(out) else out
                return await ex.effect(
                    "step",
                    step_name,
                    fn=fn,
                    args=args,
                    kwargs=kwargs,
                    retry=policy,
                    timeout=timeout,
                    returns=returns,
                )

            return step

        return decorate(fn) if fn is not None else decorate

    def queue(
        self, name: str, *, concurrency: int | None = None, worker_concurrency: int | None = None
    ) -> QueueSpec:
        spec = QueueSpec(name, concurrency, worker_concurrency)
        self.queues[name] = spec
        return spec

    def spec(self, workflow: str, version: str | None = None) -> WorkflowSpec:
        versions = self.workflows.get(workflow)
        if not versions:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise UnknownWorkflow(f"no workflow named {workflow!r} is registered (known: {known})")
        if version is None:
            return list(versions.values())[-1]
        try:
            return versions[version]
        except KeyError:
            raise UnknownWorkflow(
                f"workflow {workflow!r} has no version {version!r} "
                f"(registered: {', '.join(versions)})"
            ) from None

    @property
    def wf_keys(self) -> list[str]:
        return [s.key for versions in self.workflows.values() for s in versions.values()]

    # ---- lifecycle ----------------------------------------------------------------------

    def use_store(self, store: str | Store) -> None:
        """Point the app at another store (a URL or a Store); only before it is opened."""
        if self._opened:
            raise ConfigError("cannot change the store of an app that is open")
        self._store_arg = store
        self._store = None if isinstance(store, str) else store

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._store_arg if isinstance(self._store_arg, str) else None)
        return self._store

    async def open(self) -> App:
        if self._opened == 0:
            await self.store.open()
        self._opened += 1
        return self

    async def close(self) -> None:
        self._opened = max(0, self._opened - 1)
        if self._opened == 0:
            await self.store.close()

    async def __aenter__(self) -> App:
        from .worker import Worker

        await self.open()
        self._worker = Worker(self)
        await self._worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()
        await self.close()

    # ---- runs -----------------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        tenant: str = "default",
        queue: str | None = None,
        priority: int | None = None,
        version: str | None = None,
        parent_id: str | None = None,
        detached: bool = False,
    ) -> RunHandle:
        """Record a new run as pending (a worker in this process takes it at once).
        With an idempotency key used before in the tenant, returns that run instead.
        A child (``parent_id``) is cancelled with its parent (cancel or timeout) unless it
        is ``detached``."""
        spec = self.spec(workflow, version)
        created_at = now()
        new = NewRun(
            id=str(uuid.uuid4()),
            workflow=spec.name,
            version=spec.version,
            tenant=tenant,
            queue=queue or spec.queue,
            priority=spec.priority if priority is None else priority,
            input=spec.validate_input(input),
            idempotency_key=idempotency_key,
            parent_id=parent_id,
            deadline_at=None if spec.timeout is None else created_at + spec.timeout,
            created_at=created_at,
            detached=detached,
        )
        worker = self._worker
        if worker is not None and worker.can_take(new.queue):
            row, created = await self.store.create_run(new, owner=worker.id, lease=worker.lease)
            if created:
                worker.adopt_new(row, spec)
        else:
            row, created = await self.store.create_run(new)
            if created and worker is not None:
                worker.kick()
        return RunHandle(self, row.id, created)

    def handle(self, run_id: str) -> RunHandle:
        return RunHandle(self, run_id)

    async def run(self, workflow: str, input: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Start a run and wait for its result."""
        return await (await self.start(workflow, input, **kw)).result()

    async def get_run(self, run_id: str) -> RunRow:
        return await self.handle(run_id).row()

    async def list_runs(self, **filters: Any) -> list[RunRow]:
        return await self.store.list_runs(**filters)

    async def effects(self, run_id: str) -> list[EffectRow]:
        await self.get_run(run_id)
        return await self.store.list_effects(run_id)

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send a signal; a run waiting for it wakes, a run not yet waiting keeps it."""
        await self.store.send_signal(run_id, name, serde.dumps(payload, f"signal {name!r}"))
        if self._worker is not None:
            self._worker.kick()

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> RunRow:
        """Cancel a run and its children that were not started detached (recursively)."""
        row = await self.store.cancel(run_id, reason)
        if self._worker is not None:
            self._worker.cancel_local(run_id, reason)
            why = child_cancel_reason(run_id, f"was cancelled: {reason}")
            self._worker.cancel_children_local(run_id, why)
        if row.status in TERMINAL:
            self._notify_finished(row)
        return row

    async def resume(self, run_id: str) -> RunRow:
        row = await self.store.resume(run_id)
        if self._worker is not None:
            self._worker.kick()
        return row

    # ---- results --------------------------------------------------------------------------

    def _outcome(self, end: Ended) -> Any:
        if end.status == SUCCEEDED:
            returns = None
            versions = self.workflows.get(end.workflow, {})
            if end.version in versions:
                returns = versions[end.version].returns
            return serde.loads(end.result, returns)
        error = json.loads(end.error) if end.error else {}
        raise RunFailed(
            f"run {end.run_id} ({end.workflow}) ended {end.status}: "
            f"{error.get('type', '?')}: {error.get('message', '')}",
            run_id=end.run_id,
            status=end.status,
            error=error,
        )

    def _running_here(self, run_id: str) -> bool:
        return self._worker is not None and self._worker.is_running(run_id)

    def _waiter(self, run_id: str) -> asyncio.Future[Ended | None]:
        fut = self._waiters.get(run_id)
        loop = asyncio.get_running_loop()
        # A waiter left by a caller under an earlier event loop (``asyncio.run`` twice with
        # one app) cannot be awaited in this one.
        if fut is None or fut.done() or fut.get_loop() is not loop:
            fut = loop.create_future()
            self._waiters[run_id] = fut
        return fut

    def _notify_finished(self, run: RunRow, finish: Finish | None = None) -> None:
        fut = self._waiters.pop(run.id, None)
        if fut is not None and not fut.done():
            end = None
            if finish is not None:
                end = Ended(
                    run.id, run.workflow, run.version, finish.status, finish.result, finish.error
                )
            fut.set_result(end)
