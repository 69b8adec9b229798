"""The gate: every effect a workflow makes passes through one chain of interceptors.

An interceptor is a callable ``(call, next) -> result`` that may look at or change the
call, short-circuit it (a recorded outcome, a cache hit, a policy denial) or wrap ``next``
(retry, tracing, metering). The chain ends in the executor for the effect's kind. The
kernel installs the effect log (outermost, so replay never reaches anything else) and
retry (innermost); governance, models and observability insert theirs in between without
touching the engine.

A kind may also have a *presenter* (``Gate.present``): what the workflow receives from an
effect of that kind is the presenter's view of the recorded output, on the first execution
as on replay (the model plane's outputs have their pseudonyms restored for callers allowed
to see them, while the record keeps the pseudonyms). Without one, it is the record itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from .retry import NO_RETRY, Retry

if TYPE_CHECKING:
    from .runtime import Execution


@dataclass(frozen=True, slots=True, eq=False)
class EffectCall:
    """One effect, as the interceptors see it.

    Most effects are made by a workflow run (``run_execution``): recorded, replayed. A
    *direct* effect is made outside any workflow (a script, the HTTP gateway:
    ``Gate.direct``): it passes the same interceptors (policy, budgets, tracing, ...) but
    nothing records or replays it; ``run_execution`` is None and ``tenant`` / ``workflow``
    say on whose behalf it runs."""

    run_execution: Execution | None
    seq: int
    kind: str  # step, sleep, signal, child_start, child_result, now, ...
    name: str
    fn: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retry: Retry = NO_RETRY
    timeout: float | None = None
    returns: Any = None  # the annotation the output is decoded to (first run and replay)
    params: dict[str, Any] = field(default_factory=dict)  # kind-specific arguments
    meta: dict[str, Any] = field(default_factory=dict)  # filled in by interceptors
    # Named statements of the store's queries to commit with this effect's record (see
    # ``also_write``), and who to tell when that transaction has ended.
    side_writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    on_recorded: list[Callable[[bool], None]] = field(default_factory=list)
    direct_tenant: str = "default"  # a direct effect's tenant and workflow (else the run's)
    direct_workflow: str | None = None

    @property
    def direct(self) -> bool:
        """Made outside any workflow: not recorded, not replayed."""
        return self.run_execution is None

    @property
    def execution(self) -> Execution:
        """The run making this effect; a direct effect has none (``ConfigError``)."""
        if self.run_execution is None:
            raise ConfigError(
                f"{self.kind} effect {self.name!r} was made outside a workflow: it has no run"
            )
        return self.run_execution

    @property
    def tenant(self) -> str:
        ex = self.run_execution
        return self.direct_tenant if ex is None else ex.run.tenant

    @property
    def workflow(self) -> str | None:
        ex = self.run_execution
        return self.direct_workflow if ex is None else ex.run.workflow

    def also_write(
        self,
        query: str,
        params: dict[str, Any],
        on_recorded: Callable[[bool], None] | None = None,
    ) -> None:
        """Commit the store's named statement ``query`` in the same transaction as this
        effect's record, so a crash keeps both or neither. It is written whether or not the
        record lands (a lost lease): what the effect did outside happened either way.
        ``on_recorded(committed)`` is called when that transaction ends; False means it
        failed and the statement was not written (the caller may write it another way)."""
        self.side_writes.append((query, params))
        if on_recorded is not None:
            self.on_recorded.append(on_recorded)

    @property
    def run_id(self) -> str:
        return self.execution.run.id

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and replays: pass it to the outside world."""
        return f"{self.execution.run.id}:{self.seq}"


Next = Callable[[EffectCall], Awaitable[Any]]


class Interceptor(Protocol):
    async def __call__(self, call: EffectCall, next: Next) -> Any: ...


Executor = Callable[[EffectCall], Awaitable[Any]]
#: ``(call, output, meta) -> output``: see ``Gate.present``.
Presenter = Callable[[EffectCall, Any, "dict[str, Any] | None"], Awaitable[Any]]
#: ``(call, waited_since, error)``: see ``Gate.wait_hooks``.
WaitHook = Callable[[EffectCall, float, "BaseException | None"], None]


class Gate:
    """The chain, composed once (not per call) and recomposed when an interceptor is added."""

    def __init__(self) -> None:
        self._interceptors: list[tuple[str, Interceptor]] = []
        self._executors: dict[str, Executor] = {}
        self._chain: Next = self._execute
        # Called by the effect log just before it records the end of a wait that parked (a
        # timer, a signal, a child: ok, or the error it ended with), with the time the wait
        # began: the interceptors do not see a parked wait end (the effect log checks it
        # again past them), so this is where they learn it. A hook may ``also_write``.
        self.wait_hooks: list[WaitHook] = []
        self.presenters: dict[str, Presenter] = {}

    def add(self, name: str, interceptor: Interceptor, *, before: str | None = None) -> None:
        """Insert an interceptor, before the one named ``before`` (else at the end)."""
        names = [n for n, _ in self._interceptors]
        if name in names:
            raise ConfigError(f"the gate already has an interceptor named {name!r}")
        at = names.index(before) if before in names else len(names)
        self._interceptors.insert(at, (name, interceptor))
        self._compose()

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self._interceptors]

    def present(self, kind: str, presenter: Presenter) -> None:
        """What the workflow receives from effects of ``kind``: ``await presenter(call,
        output, meta)``, where ``output`` is the decoded record (or, for a direct effect, what
        the chain returned) and ``meta`` what the interceptors kept on the effect
        (``call.meta["record"]``, the record's ``meta`` on replay; None: nothing). The effect
        log calls it on the first execution and on every replay alike, so it must depend on
        nothing but those (and durable state); what it returns is never recorded."""
        if kind in self.presenters:
            raise ConfigError(f"effects of kind {kind!r} already have a presenter")
        self.presenters[kind] = presenter

    def register(self, kind: str, executor: Executor) -> None:
        """The executor that really performs effects of ``kind``."""
        self._executors[kind] = executor

    def _compose(self) -> None:
        chain: Next = self._execute
        for _, interceptor in reversed(self._interceptors):
            chain = _link(interceptor, chain)
        self._chain = chain

    async def _execute(self, call: EffectCall) -> Any:
        try:
            executor = self._executors[call.kind]
        except KeyError:
            raise ConfigError(
                f"no executor is registered for effects of kind {call.kind!r}"
            ) from None
        return await executor(call)

    def __call__(self, call: EffectCall) -> Awaitable[Any]:
        return self._chain(call)

    def wait_ended(self, call: EffectCall, since: float, error: BaseException | None) -> None:
        for hook in self.wait_hooks:
            hook(call, since, error)

    def execute(self, call: EffectCall) -> Awaitable[Any]:
        """The executor alone, past every interceptor: how the effect log checks a parked
        wait again (the interceptors saw it once, when it first ran)."""
        return self._execute(call)

    def direct(
        self,
        kind: str,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        tenant: str = "default",
        workflow: str | None = None,
        retry: Retry = NO_RETRY,
        timeout: float | None = None,
    ) -> Awaitable[Any]:
        """Make an effect outside any workflow, through the whole chain; nothing is
        recorded (see ``EffectCall``)."""
        call = EffectCall(
            run_execution=None,
            seq=0,
            kind=kind,
            name=name,
            retry=retry,
            timeout=timeout,
            params=params or {},
            direct_tenant=tenant,
            direct_workflow=workflow,
        )
        return self._chain(call)


def _link(interceptor: Interceptor, nxt: Next) -> Next:
    def step(call: EffectCall) -> Awaitable[Any]:
        return interceptor(call, nxt)

    return step
