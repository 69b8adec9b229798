"""``App``: the registry of workflows and steps, and the way to start and inspect runs."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import typing
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar, overload

import pydantic
import pydantic_core

from ..durations import utc_iso
from ..errors import (
    AiosysError,
    ConfigError,
    IdempotencyConflict,
    InvalidInput,
    NotSerializable,
    RunFailed,
    RunNotFound,
    UnknownQueue,
    UnknownTopic,
    UnknownWorkflow,
)
from ..store import Store, open_store, unavailable
from ..store._text import check_identifier
from ..store.base import (
    SUCCEEDED,
    TERMINAL,
    EffectRow,
    Finish,
    NewRun,
    RunRow,
    child_cancel_reason,
)
from . import serde
from .checks import Check, Checks, ClientCall, scope_tenant
from .cursor import parse_run_cursor
from .effects import register_kernel_effects
from .events import Published, Triggered, Triggers, check_topic, event_key
from .gate import Gate
from .interceptors import EffectLog, Retrying
from .principal import Principal, bind_principal, current_principal, principal_json
from .retention import retention_seconds
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
# A run's priority is a 32-bit integer on every store (PostgreSQL's INTEGER).
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1


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
    max_recoveries: int | None = 10
    # A high-risk AI system (EU AI Act): the kernel does nothing with it; the policies see
    # it as the ``Workflow``'s ``high_risk`` attribute (aiosys.governance.policy_gate).
    high_risk: bool = False

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
        try:
            text = model.model_dump_json()  # NaN and infinities as constants: checked
        except pydantic_core.PydanticSerializationError as exc:  # e.g. a lone surrogate
            raise InvalidInput(
                f"input of workflow {self.name!r} cannot be stored as JSON: {exc}"
            ) from None
        try:
            serde.check_finite(text, model.model_dump(), f"input of workflow {self.name!r}")
        except NotSerializable as exc:
            raise InvalidInput(str(exc)) from None
        return text

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
    # NaN and infinities are not JSON: a float parameter refuses them by name (they were
    # stored as null, and the run failed on its first execution); ``Any`` ones: serde.dumps.
    config = pydantic.ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=False,
        allow_inf_nan=False,
        ser_json_inf_nan="constants",
    )
    return pydantic.create_model(f"{name}_input", __config__=config, **fields)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Readiness:
    """``App.readiness``: ``ready``, else ``reason`` says why not; ``behind`` lists the
    migrations the store lacks (a process newer than the schema: run one that migrates);
    ``loading`` says what the process is still loading before it serves (``loading
    redaction models``; the store is fine)."""

    ready: bool
    reason: str = ""
    behind: list[int] = field(default_factory=list)
    loading: str = ""


@dataclass(slots=True)
class Admitted:
    """A start admitted by ``App._admit_start`` (scoped, checked, validated) and not yet
    written: the run ``new`` to insert as ``principal``. ``meta``: what a layer above
    carries from its admission to its commit (the audit's decisions)."""

    spec: WorkflowSpec
    principal: Principal
    new: NewRun
    meta: dict[str, Any] = field(default_factory=dict)


class Ended(NamedTuple):
    """How a run ended, as its waiters learn it."""

    run_id: str
    workflow: str
    version: str
    status: str
    result: str | None
    error: str | None


class RunHandle:
    """A started run: ``id``, ``await status()``, ``await result()``. It reads the run in
    its ``tenant`` (None: the bound principal's, or any for the local one), as the principal
    bound at each call; ``created`` is False when an idempotency key returned an existing
    run."""

    def __init__(
        self, app: App, run_id: str, created: bool = True, *, tenant: str | None = None
    ) -> None:
        self.app = app
        self.id = run_id
        self.created = created
        self.tenant = tenant
        # The row ``start`` wrote or found, and who started it: the checks of that
        # principal's reads see this row instead of reading the run again (a run's workflow,
        # tenant and principal never change; its status in this row may be stale).
        self._started: tuple[Principal, RunRow] | None = None

    def _known(self) -> RunRow | None:
        started = self._started
        return started[1] if started is not None and started[0] is current_principal() else None

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    async def row(self) -> RunRow:
        """The run's row; ``RunNotFound`` if it is not in the tenant the caller reads."""
        tenant, row = await self.app._admit_run("read_run", self.id, self.tenant)
        return row if row is not None else await self.app._read_run(self.id, tenant)

    async def status(self) -> str:
        return (await self.row()).status

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end: its result, or ``RunFailed`` if it did not succeed."""
        app = self.app
        # Admitted once (a check reads the row): the polls below read it in that tenant.
        known = self._known()
        tenant, checked = await app._admit_run("read_run", self.id, self.tenant, known=known)
        if checked is known:  # its status is the start's: read it again if it is needed
            checked = None
        async with asyncio.timeout(timeout):
            delay = 0.01
            while True:
                waiter = app._waiter(self.id)
                first, checked = checked, None
                if not app._running_here(self.id):
                    row = first or await app._read_run(self.id, tenant)
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
        max_parked: int = 10_000,
        retention: float | timedelta | str | None = None,
    ) -> None:
        """``concurrency``: runs a worker of this app executes at once; ``lease``: seconds a
        claim lasts without a heartbeat; ``max_parked``: parked executions a worker keeps
        suspended to resume in place (beyond it the least recently parked are dropped and
        their runs replayed when they wake; 0 replays every wake-up); ``retention``: how
        long ended runs are kept (seconds, a ``timedelta`` or ``"30d"``): the app's workers
        prune older ones with their rows (``kernel/retention.py``); None: ``retention`` in
        aiosys.toml, else forever. ``ConfigError`` for a retention that is not a positive
        length of time."""
        self.retention = None if retention is None else retention_seconds(retention)
        self._store_arg = store
        self._store: Store | None = store if not isinstance(store, str | None) else None
        self.concurrency = concurrency
        self.lease = lease
        self.max_parked = max_parked
        self.workflows: dict[str, dict[str, WorkflowSpec]] = {}
        # Top-level packages of the registered workflows and steps: the app's own modules,
        # whose exception classes a recorded error may be rebuilt from (error_records).
        self.safe_modules: set[str] = set()
        self.queues: dict[str, QueueSpec] = {"default": QueueSpec("default")}
        # Topic -> the workflows its events start (``@app.workflow(on=...)``, ``publish``).
        self.triggers = Triggers()
        self.gate = Gate()
        # What governance asks before a client call reads or changes runs (checks.py).
        self.checks = Checks()
        # Statements to commit in the transaction that creates a run, each written only if
        # the run is created (the store's named statements; governance's audit record of the
        # start). Each hook gets the ``NewRun`` about to be inserted.
        self._start_writes: list[Callable[[NewRun], Sequence[tuple[str, Mapping[str, Any]]]]] = []
        self.gate.add("effect_log", EffectLog(self.gate.presenters))
        self.gate.add("retry", Retrying())
        register_kernel_effects(self.gate)
        self._opened = 0
        self._implicit = False  # opened by a call before open(): open() adopts it
        self._worker: Any = None  # the in-process Worker while `async with app:` runs
        self._waiters: dict[str, asyncio.Future[Ended | None]] = {}
        # Called with the run and its ``Finish`` when an execution of this process has ended
        # a run (committed): how observability closes a run's span.
        self.run_end_hooks: list[Callable[[RunRow, Finish], None]] = []

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
        max_recoveries: int | None = 10,
        high_risk: bool = False,
        on: str | Sequence[str] | None = None,
    ) -> Any:
        """Register a workflow: ``async def wf(ctx: Context, **params) -> result``.
        Usable bare (``@app.workflow``) or with options; returns the function unchanged.

        A ``queue`` not declared yet is declared here, without limits (``app.queue`` before
        or after sets them): a workflow's queue is always one this app's workers serve, so
        its runs are never left pending for want of a declaration. ``max_recoveries``: how
        many times a run may be recovered after its worker died or hung (its lease expired)
        before it ends ``dead`` with ``MaxRecoveriesExceeded`` (None: no limit).
        ``high_risk``: the workflow is a high-risk AI system (EU AI Act, Article 14): the
        Cedar policies see it as the ``Workflow``'s ``high_risk`` attribute, and may make
        its effects wait for a person's approval (see the README, "Human oversight").
        ``on``: a topic, or several, whose events start a run of this workflow with the
        event's data as its input (``app.publish``, ``aiosys.kernel.events``): dot-separated
        words of letters, digits, ``_`` and ``-`` (``invoice.received``), else
        ``ConfigError``. The trigger is the workflow's, by name: its run starts the latest
        version, as ``start`` does."""

        def register(fn: F) -> F:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigError(f"workflow {fn.__name__!r} must be an async function")
            wf_name = name or fn.__name__
            check_identifier("workflow name", wf_name)
            check_identifier("queue name", queue)
            if max_recoveries is not None and max_recoveries < 0:
                raise ConfigError(
                    f"workflow {wf_name!r}: max_recoveries must be 0 or more, or None"
                )
            if not isinstance(high_risk, bool):
                raise ConfigError(
                    f"workflow {wf_name!r}: high_risk must be True or False, not {high_risk!r}"
                )
            versions = self.workflows.get(wf_name, {})
            if version in versions:
                raise ConfigError(f"workflow {wf_name!r} version {version!r} is registered twice")
            if on is not None:  # checked before anything is registered
                self.triggers.check(on, wf_name)
            versions = self.workflows.setdefault(wf_name, {})
            hints = typing.get_type_hints(fn)
            self._trust_module_of(fn)
            versions[version] = WorkflowSpec(
                name=wf_name,
                version=version,
                fn=fn,
                queue=queue,
                priority=priority,
                timeout=timeout,
                returns=hints.get("return"),
                _input_model=_input_model(wf_name, fn),
                max_recoveries=max_recoveries,
                high_risk=high_risk,
            )
            self.queues.setdefault(queue, QueueSpec(queue))
            if on is not None:
                self.triggers.add(on, wf_name)
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
            self._trust_module_of(fn)

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

    def _trust_module_of(self, fn: Callable[..., Any]) -> None:
        module = getattr(fn, "__module__", None)
        if isinstance(module, str) and module:
            self.safe_modules.add(module.partition(".")[0])

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
        if self._implicit:  # opened by a call already: this open is the one it stood for
            self._implicit = False
            return self
        if self._opened == 0:
            await self.store.open()
        self._opened += 1
        return self

    async def _ready(self) -> None:
        """Open the app on first use by a call (``start``, ``get_run``, ...) if nobody
        opened it; a later ``open()`` or ``async with app`` adopts that opening, and
        ``close()`` closes it."""
        if self._opened == 0:
            await self.open()
            self._implicit = True

    async def close(self) -> None:
        self._implicit = False
        self._opened = max(0, self._opened - 1)
        if self._opened == 0:
            await self.store.close()

    async def __aenter__(self) -> App:
        return await self._enter(own_runs_only=False)

    def embedded(self, *, own_runs_only: bool = False, drain_grace: float = 0.0) -> _Embedded:
        """``async with app.embedded(own_runs_only=True):`` is ``async with app:`` whose
        worker executes only the runs started through this app while it is open (or
        returned to ``start`` by their idempotency key) and the children they start, not
        the other pending runs of the app's workflows in the store (``aiosys run``).
        ``drain_grace``: seconds the runs in flight get to end or park when the block is
        left, as a worker drains on SIGTERM (``aiosys server``); 0 gives them back at once."""
        return _Embedded(self, own_runs_only, drain_grace)

    async def readiness(self) -> Readiness:
        """Whether this app can serve now: its store answers and holds every migration of
        this code (``Readiness``). Opens the app if nobody did. Never raises for a store
        that cannot be reached or opened: that is the answer (``ready`` False, ``reason``)."""
        try:
            await self._ready()
            behind = await self.store.schema_behind()
        except (AiosysError, OSError) as exc:
            return Readiness(False, f"the store cannot be reached: {exc}")
        except Exception as exc:
            if not unavailable(exc):
                raise
            return Readiness(False, f"the store cannot be reached: {exc}")
        if behind:
            missing = ", ".join(f"{v:04d}" for v in behind)
            return Readiness(False, f"the store's schema lacks migrations {missing}", behind)
        return Readiness(True)

    async def _enter(self, *, own_runs_only: bool) -> App:
        from .worker import Worker

        await self.open()
        self._worker = Worker(self, only=() if own_runs_only else None)
        await self._worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._leave(0.0)

    async def _leave(self, grace: float) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(grace)
        await self.close()

    # ---- runs -----------------------------------------------------------------------------

    # ---- client checks ----------------------------------------------------------------------

    def add_check(
        self, name: str, check: Check, *, before: str | None = None, local: bool = True
    ) -> None:
        """Ask ``check(ClientCall)`` (sync or async; raise to refuse) before every client call
        that reads or changes runs, after the tenant scoping and the checks added before it
        (or before the one named ``before``). ``local=False`` skips it for the embedded
        default's local principal. ``ConfigError`` for a name already used."""
        self.checks.add(name, check, before=before, local=local)

    async def authorize(
        self,
        action: str,
        *,
        tenant: str | None = None,
        workflow: str | None = None,
        input: Any = None,
    ) -> str | None:
        """Scope and check a client call that is not about one run (the model plane's usage
        reports and direct calls, the CLI's): the tenant it acts in (None: every tenant, for
        the local principal only). ``PermissionDenied`` for another tenant than the bound
        principal's, or whatever a check raises."""
        principal = current_principal()
        scope = scope_tenant(principal, tenant, action)
        if self.checks.wants(principal):
            await self.checks(ClientCall(action, principal, scope, workflow, input=input))
        return scope

    async def admit_run(self, action: str, run_id: str, *, tenant: str | None = None) -> None:
        """Ask the caller's rights for ``action`` on a run without doing it: its tenant
        (``PermissionDenied`` naming another), the run in it (``RunNotFound``), the app's
        client checks. For a surface that answers rights before anything else of a request
        it could not read whole (the HTTP API's body validation)."""
        await self._admit_run(action, run_id, tenant)

    def _check_traceparent(self, traceparent: str) -> None:
        """Refuse (``InvalidInput``) a start's ``traceparent`` that is not one, after its
        checks; opaque to the kernel, so nothing here: the layer that reads it
        (``aiosys.App``, with ``aiosys.observe``) checks it."""

    async def _admit_run(
        self,
        action: str,
        run_id: str,
        tenant: str | None,
        *,
        signal: str | None = None,
        input: Any = None,
        known: RunRow | None = None,
    ) -> tuple[str | None, RunRow | None]:
        """Scope and check a call on one run. With checks, the run is read once (they see
        its workflow, tenant and principal) and returned with tenant None (checked: the
        store need not check it again, a run's tenant never changes); without, nothing is
        read and the tenant the store must check is returned. ``known``: the run's row as
        this principal's ``start`` returned it, checked instead of reading it again (only
        when it is in the scoped tenant)."""
        principal = current_principal()
        scope = scope_tenant(principal, tenant, action)
        await self._ready()
        if not self.checks.wants(principal):
            return scope, None
        if known is not None and (scope is None or known.tenant == scope):
            row = known
        else:
            row = await self._read_run(run_id, scope)
        call = ClientCall(action, principal, scope, row.workflow, row, signal, input)
        await self.checks(call)
        return None, row

    async def _read_run(self, run_id: str, tenant: str | None) -> RunRow:
        row = await self.store.get_run(run_id, tenant=tenant)
        if row is None:
            where = "" if tenant is None else f" in tenant {tenant!r}"
            raise RunNotFound(f"no run with id {run_id!r}{where}")
        return row

    # ---- runs -------------------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        tenant: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        version: str | None = None,
        parent_id: str | None = None,
        detached: bool = False,
        traceparent: str | None = None,
    ) -> RunHandle:
        """Record a new run as pending (a worker in this process takes it at once).
        Opens the app if it is not open.

        With an idempotency key used before in the tenant, returns that run instead
        (``handle.created`` is False) if it is the same workflow with the same validated
        input, else raises ``IdempotencyConflict`` naming it. A ``queue`` this app never
        declared is refused (``UnknownQueue``, a ``ConfigError``): no worker would take it.
        Idempotency keys and tenants are identities: text a store cannot keep as it is
        (NUL, lone surrogates) is refused with ``InvalidInput``, never altered.
        A child (``parent_id``) is cancelled with its parent (cancel or timeout) unless it
        is ``detached``. ``traceparent`` (W3C, ``00-<trace id>-<span id>-<flags>``) is kept
        with the run, opaque to the kernel: the span its trace joins (``aiosys.observe``).

        The run is started as the bound principal (recorded in ``runs.principal``) in its
        tenant: ``tenant`` None means that one (``default`` for the local principal), and
        another is ``PermissionDenied``; the app's client checks (``start_workflow``) may
        refuse it too. They are asked before anything else of the request is checked (the
        idempotency key, queue, priority, ``traceparent`` and input): a caller without the
        right learns that first.

        A start is two phases, ``_admit_start`` (scope, check, validate: nothing written)
        and ``_commit_start`` (the run's transaction), which layers above extend (the audit
        record of the start) and ``publish`` uses to admit every start before writing any."""
        admitted = await self._admit_start(
            workflow,
            input,
            idempotency_key=idempotency_key,
            tenant=tenant,
            queue=queue,
            priority=priority,
            version=version,
            parent_id=parent_id,
            detached=detached,
            traceparent=traceparent,
        )
        return await self._commit_start(admitted)

    async def _admit_start(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        tenant: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        version: str | None = None,
        parent_id: str | None = None,
        detached: bool = False,
        traceparent: str | None = None,
    ) -> Admitted:
        """The first phase of ``start``: the run it would create, scoped, checked and
        validated; nothing is written. Raises what ``start`` raises before writing."""
        spec = self.spec(workflow, version)
        principal = current_principal()
        tenant = scope_tenant(principal, tenant, "start_workflow")
        if tenant is None:
            tenant = "default"
        check_identifier("tenant", tenant)
        if self.checks.wants(principal):  # the rights first: a caller without them learns
            await self.checks(  # that, never what is wrong with the rest of its request
                ClientCall(
                    "start_workflow", principal, tenant, spec.name, input=input, parent_id=parent_id
                )
            )
        if idempotency_key is not None:
            check_identifier("idempotency key", idempotency_key)
        if queue is not None and queue not in self.queues:
            raise UnknownQueue(
                f"queue {queue!r} is not declared in this app (declared: "
                f"{', '.join(sorted(self.queues))}); declare it with app.queue({queue!r}) "
                "so that workers serve it"
            )
        if priority is not None and (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not PRIORITY_MIN <= priority <= PRIORITY_MAX
        ):
            raise InvalidInput(
                f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}, "
                f"not {priority!r}"
            )
        if traceparent is not None:
            self._check_traceparent(traceparent)
        await self._ready()
        created_at = self.store.clock()
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
            principal=principal_json(principal),
            traceparent=traceparent,
        )
        return Admitted(spec, principal, new)

    async def _commit_start(self, admitted: Admitted) -> RunHandle:
        """The second phase of ``start``: create the admitted run (or find the one its
        idempotency key started: ``IdempotencyConflict`` for another workflow or input)."""
        spec, principal, new = admitted.spec, admitted.principal, admitted.new
        also = [w for hook in self._start_writes for w in hook(new)]
        worker = self._worker
        if worker is not None and worker.can_take(new.queue):
            row, created = await self.store.create_run(
                new, owner=worker.id, lease=worker.lease, also=also
            )
            if created:
                worker.adopt_new(row, spec)
        else:
            row, created = await self.store.create_run(new, also=also)
            if created and worker is not None:
                worker.kick()
        if worker is not None:  # a worker serving its own runs: this one is (or the one
            worker.include(row.id)  # its idempotency key returned)
        if not created and (row.workflow != new.workflow or row.input != new.input):
            raise IdempotencyConflict(
                f"idempotency key {new.idempotency_key!r} already started run {row.id} "
                f"(workflow {row.workflow!r}, input {_clip(row.input)}); it cannot start "
                f"workflow {new.workflow!r} with input {_clip(new.input)}: use a new key, "
                "or the same workflow and input to get that run back",
                run_id=row.id,
            )
        handle = RunHandle(self, row.id, created, tenant=new.tenant)
        handle._started = (principal, row)
        return handle

    async def _abandon_start(self, admitted: Admitted, why: AiosysError) -> None:
        """An admitted start that will not be committed, because of ``why`` (another start
        of the same publish was refused). The kernel wrote nothing for it; a layer above
        that noted its admission says it ended (the audit: its decisions, and why)."""

    async def publish(
        self,
        topic: str,
        data: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        source: str | None = None,
        tenant: str | None = None,
    ) -> Published:
        """Publish an event (CloudEvents' words: ``id``, ``source``, ``type`` = ``topic``,
        ``data``): start one run of each workflow triggered by ``topic``
        (``@app.workflow(on=topic)``), in declaration order, with ``data`` as its input.
        Opens the app if it is not open. See ``aiosys.kernel.events``.

        Each start is ``start(workflow, data, idempotency_key=event_key(workflow, source,
        id), tenant=tenant)``, as the bound principal: the same event (``source`` and ``id``)
        published again starts nothing and returns the same runs (``created`` False); the
        same id with other data is ``IdempotencyConflict``. ``id`` None: a new UUID.

        All or nothing, as far as refusals go: every start is admitted (tenant scoping, the
        client checks such as the ``start_workflow`` policy of each workflow, input
        validation) before any run is written, so a refusal of one (``PermissionDenied``,
        ``PolicyDenied``, ``InvalidInput``) starts none. The runs are then written one
        transaction each; a crash between two leaves some written, and publishing the event
        again with its id writes the rest.

        A topic no workflow is triggered by is refused with ``UnknownTopic`` naming the
        topics there are: the event is not stored anywhere but in the runs it starts, so
        accepting it would drop it silently, and a topic is declared in code, so an unknown
        one is a typo or a publisher ahead of its subscriber, both better told at once.
        ``InvalidInput`` for a topic that breaks ``TOPIC_RULE``, or an empty ``id`` or
        ``source``, or text a store cannot keep."""
        check_topic(topic)
        event_id = str(uuid.uuid4()) if id is None else id
        check_identifier("event id", event_id)
        if source is not None:
            check_identifier("event source", source)
        workflows = self.triggers.workflows(topic)
        if not workflows:
            known = ", ".join(self.triggers.topics) or "none"
            raise UnknownTopic(
                f"no workflow is triggered by topic {topic!r} (topics: {known}); declare "
                f"one with @app.workflow(on={topic!r})"
            )
        admitted: list[Admitted] = []
        try:
            for workflow in workflows:
                key = event_key(workflow, source, event_id)
                admitted.append(
                    await self._admit_start(workflow, data, idempotency_key=key, tenant=tenant)
                )
        except AiosysError as exc:
            for each in admitted:  # admitted, and now not started: said so
                await self._abandon_start(each, exc)
            raise
        runs = []
        for each in admitted:
            runs.append(Triggered(each.spec.name, await self._commit_start(each)))
        return Published(event_id, topic, source, tuple(runs))

    def as_principal(self, principal: Principal) -> bind_principal:
        """Bind ``principal`` around the calls made in the block: ``async with
        app.as_principal(p):`` (or ``with``). Unbound, calls are the local default's."""
        return bind_principal(principal)

    def handle(self, run_id: str, *, tenant: str | None = None) -> RunHandle:
        return RunHandle(self, run_id, tenant=tenant)

    async def run(self, workflow: str, input: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Start a run and wait for its result."""
        return await (await self.start(workflow, input, **kw)).result()

    # Every call that reads or changes one run is scoped by ``tenant``: a run of another
    # tenant is reported as a missing one (``RunNotFound``). ``tenant=None`` means the bound
    # principal's tenant; for the embedded default's local principal (every right until
    # identities are configured), any tenant. A non-local principal naming another tenant
    # is refused (``PermissionDenied``). The app's client checks see each call first.

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        """The run's row; ``RunNotFound`` if it is not in the caller's tenant."""
        return await self.handle(run_id, tenant=tenant).row()

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> list[RunRow]:
        """Runs newest first, of ``status`` and ``workflow`` when given, in ``tenant`` (None:
        the bound principal's, every tenant for the local one; another is
        ``PermissionDenied``), created in ``[since, until)`` (epoch seconds), at most
        ``limit``. ``cursor``: ``run_cursor`` of the last run of the page before
        (``aiosys.kernel.cursor``); the listing goes on after it. ``InvalidInput`` for a
        malformed cursor, a ``limit`` below 1, or a ``since`` not before ``until`` (an empty
        window, which would list nothing)."""
        if limit < 1:
            raise InvalidInput(f"limit must be 1 or more, not {limit}")
        if since is not None and until is not None and not since < until:
            raise InvalidInput(
                f"since ({utc_iso(since)}) must be before until ({utc_iso(until)}): the window "
                "[since, until) would be empty"
            )
        after = None if cursor is None else parse_run_cursor(cursor)
        scope = await self.authorize("list_runs", tenant=tenant)
        await self._ready()
        return await self.store.list_runs(
            status=status,
            workflow=workflow,
            tenant=scope,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )

    async def effects(self, run_id: str, *, tenant: str | None = None) -> list[EffectRow]:
        """A run's effects in call order; ``RunNotFound`` if it is not in the caller's
        tenant."""
        tenant, _ = await self._admit_run("read_run", run_id, tenant)
        return await self.store.list_effects(run_id, tenant=tenant)

    async def signal(
        self, run_id: str, name: str, payload: Any = None, *, tenant: str | None = None
    ) -> None:
        """Send a signal; a run waiting for it wakes, a run not yet waiting keeps it. The
        caller's rights are checked before the payload: one who may not signal the run, or
        cannot see it, learns that (``PermissionDenied``, ``RunNotFound``), never that its
        payload cannot be stored (``NotSerializable``: NaN, text no store keeps)."""
        check_identifier("signal name", name)
        tenant, _ = await self._admit_run("signal_run", run_id, tenant, signal=name, input=payload)
        text = serde.dumps(payload, f"signal {name!r}")  # after the rights: they come first
        await self.store.send_signal(run_id, name, text, tenant=tenant)
        if self._worker is not None:
            self._worker.kick()

    async def complete_wait(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[dict[str, Any]]:
        """The kernel's hook for a wait completed from outside its run (an effect kind a
        layer above registers, whose executor parks until something is recorded elsewhere:
        ``aiosys.humans``' tasks). Runs the store's named statement ``query``, which records
        the completion and returns the rows it changed, each naming the ``run_id`` that
        waits; in the same transaction, only if it changed any, ``also`` is written and
        those runs are woken, as a signal wakes one (``Store.change``), and this process's
        worker is told at once. The rows; none: nothing changed, nobody woken. Below every
        check: the caller scopes and authorizes first, and the statement guards its rows."""
        await self._ready()
        rows = await self.store.change(query, params, also=also, wake=True)
        if rows and self._worker is not None:
            self._worker.kick()
        return rows

    async def cancel(
        self,
        run_id: str,
        reason: str = "cancelled by request",
        *,
        tenant: str | None = None,
    ) -> RunRow:
        """Cancel a run and its children that were not started detached (recursively)."""
        tenant, _ = await self._admit_run("cancel_run", run_id, tenant)
        row = await self.store.cancel(run_id, reason, tenant=tenant)
        if self._worker is not None:
            self._worker.cancel_local(run_id, reason)
            why = child_cancel_reason(run_id, f"was cancelled: {reason}")
            self._worker.cancel_children_local(run_id, why)
        if row.status in TERMINAL:
            self._notify_finished(row)
        return row

    async def resume(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        """Put a ``dead`` or ``failed`` run back in the queue, from the effect that failed."""
        tenant, _ = await self._admit_run("resume_run", run_id, tenant)
        row = await self.store.resume(run_id, tenant=tenant)
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
        # The run's own error, rebuilt from its record, is the cause: `except RunFailed as e`
        # can look at `e.__cause__` as the workflow raised it.
        cause = serde.rebuild_error(error, self.safe_modules) if error else None
        raise RunFailed(
            f"run {end.run_id} ({end.workflow}) ended {end.status}: "
            f"{error.get('type', '?')}: {error.get('message', '')}",
            run_id=end.run_id,
            status=end.status,
            error=error,
        ) from cause

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
        if finish is not None:
            for hook in self.run_end_hooks:
                hook(run, finish)
        fut = self._waiters.pop(run.id, None)
        if fut is not None and not fut.done():
            end = None
            if finish is not None:
                end = Ended(
                    run.id, run.workflow, run.version, finish.status, finish.result, finish.error
                )
            fut.set_result(end)


class _Embedded:
    """``App.embedded``: an async context manager around an app and its worker. Leaving it
    stops the worker with ``drain_grace`` (``Worker.stop``); ``force()`` ends that drain
    at once (a second SIGTERM)."""

    def __init__(self, app: App, own_runs_only: bool, drain_grace: float = 0.0) -> None:
        self.app = app
        self.own_runs_only = own_runs_only
        self.drain_grace = drain_grace
        self._worker: Any = None

    async def __aenter__(self) -> App:
        app = await self.app._enter(own_runs_only=self.own_runs_only)
        self._worker = app._worker
        return app

    async def __aexit__(self, *exc: object) -> None:
        await self.app._leave(self.drain_grace)

    def force(self) -> None:
        """Give the runs in flight back now, instead of at the end of the grace period."""
        if self._worker is not None:
            self._worker.force()
