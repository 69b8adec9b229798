"""The router: which deployments may serve a call, in what order, and what to do when one fails.

For one call it

1. resolves each candidate of the plan to a card and drops those that may not or cannot
   serve it: a card of another kind, an external card for data classified as internal-only,
   a candidate whose ``when`` says no, an estimate over the task's cost cap, an open circuit
   breaker;
2. orders the rest: as listed (``ordered``), fastest observed first (``latency``), cheapest
   estimate first (``cost``); equal candidates are ordered by the other metric, then as
   listed. Latency is an exponentially weighted moving average per deployment, kept in this
   process; a deployment with no observation yet ranks *first*, so a new deployment is
   measured on its first call instead of never being tried while the others answer;
3. applies the canary split: among the candidates that set a ``weight``, one is drawn with
   probability weight / total and leads the group; the others follow it as fallbacks. The
   draw uses the caller's generator: inside a workflow one seeded by the run id and the
   effect number (the same draw on any execution, and the run's ``ctx.random()`` stream is
   left alone, since replays skip this code), else the router's own;
   then, for a task with an SLO (``slo_p95_ms``), moves the deployments whose observed p95
   breaks it behind those that keep it (or are not yet measured), keeping the order within
   each group: a slow deployment stays a fallback, it no longer leads. The p95 is over the
   last ``latency_window`` answers of the deployment in this process, once it has
   ``min_samples`` of them; each move is noted in ``trace.warnings``;
4. tries them in turn, each through the deployment chain (budget, rate limit, cache,
   breaker, provider, metering): a transient failure is retried on the same candidate up to
   ``retries`` times (``backoff`` doubling, at least the provider's retry-after; a retry-after
   longer than ``max_retry_wait`` falls back at once instead of waiting), then the router falls
   back to the next candidate. An output that fails the task's schema falls back too (the
   links hear the verdict on each answer, ``chain.judge``: the cache keeps only accepted
   answers), and so do the faults of one deployment: ``DeploymentUnusable`` (401, 403,
   404: its breaker opens) and a hard budget that refuses this candidate's estimate (a
   cheaper one may fit; noted in ``trace.warnings``). A fault of the request stops the
   call: ``ProviderRejected`` (400, 422, ...) propagates, and so does any failure of a
   streamed call once its first piece reached the caller (``streaming.py``): the caller
   holds text from this deployment. Every attempt, retry or fallback,
   is noted in ``trace.attempts`` with its start, end (``clock``) and error, if any: the
   effect's record keeps them (``route_trace.py``), and its trace shows each as a span.

With nothing left it raises the error ``route_failures.Failures.error`` chooses: a
transient ``ProviderUnavailable`` carrying the smallest retry-after when any candidate may
serve later (failed transiently, breaker open), so a workflow's model effect is retried
under its ``Retry`` (durably: the kernel parks the run until the retry-after); else
``InvalidModelOutput``, ``BudgetExceeded`` or ``NoRouteAvailable``, naming every candidate
and why it was not used.

Shadow mode: the plan's ``shadow`` model gets the same request after the caller has its
answer, in a background task that can neither fail nor delay the caller. Its answer goes
through the task's own ``parse`` and output schema, so it compares with the primary's
output as the caller would have seen it (``ShadowResult.same``). The outcome is metered
(``DeploymentCall.meta["shadow"]``), kept in the in-memory ring ``Router.shadows``, and
handed to ``record_shadow`` (the model plane stores it: ``aiosys models shadows``); it is
never part of a run.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from ..errors import (
    BudgetExceeded,
    DeploymentUnusable,
    ProviderRejected,
    ProviderUnavailable,
    TransientError,
)
from ..kernel.retry import capped_backoff
from ..store.base import now
from .catalog import ModelCard
from .chain import DeploymentCall, NextLink, judge
from .contracts import Candidate, RouteContext, RoutingPlan, describe
from .links.breaker import Breakers, CircuitOpen
from .route_failures import Failure, Failures
from .route_trace import Attempt, Trace
from .streaming import streamed
from .tokens import estimate_cost
from .types import ModelRequest, ModelResponse

log = logging.getLogger("aiosys.models.router")

# Failures worth another attempt or another candidate; everything else is a bug or a
# permanent refusal and propagates.
RETRYABLE = (TransientError, TimeoutError, ConnectionError)
# Faults of one deployment, or of its fit to a budget: the next candidate may serve.
FALL_BACK = (DeploymentUnusable, BudgetExceeded)
# A fault of the request: no candidate would take it.
STOP = (ProviderRejected,)
OPEN_BREAKER = "open breaker"
# What a task's ``parse`` raises for an answer it cannot read (ValidationError is a ValueError).
BAD_OUTPUT = (ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True, slots=True)
class Choice:
    """A candidate that may serve the call: its card and the request it would get."""

    card: ModelCard
    candidate: Candidate
    request: ModelRequest
    cost: float  # estimated


Accept = Callable[[ModelResponse, Candidate], Any]


@dataclass(frozen=True, slots=True)
class ShadowResult:
    task: str | None
    primary: str  # deployment that answered the caller
    shadow: str  # deployment that got the copy
    primary_output: Any
    output: Any = None  # the shadow's output, parsed as the task parses (raw for direct calls)
    error: str | None = None  # the shadow failed, or its answer did not fit the task's schema
    latency_ms: float | None = None
    cost: float | None = None

    @property
    def same(self) -> bool:
        """The shadow gave what the caller got."""
        return self.error is None and self.output == self.primary_output


RecordShadow = Callable[[ShadowResult, RouteContext], Awaitable[None]]


class Router:
    def __init__(
        self,
        breakers: Breakers,
        *,
        resolve: Callable[[str], ModelCard],
        send: NextLink,
        estimate: Callable[[ModelCard, ModelRequest], float] = estimate_cost,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = now,
        max_retry_wait: float = 2.0,
        ewma_alpha: float = 0.3,
        shadow_ring: int = 1000,
        latency_window: int = 200,
        min_samples: int = 20,
    ) -> None:
        self.breakers = breakers
        self.resolve = resolve
        self.send = send
        self.estimate = estimate
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock  # the start and end of each attempt (Unix s: the effect records')
        self.max_retry_wait = max_retry_wait
        self.ewma_alpha = ewma_alpha
        self.latency: dict[str, float] = {}  # deployment -> EWMA latency in ms
        self.recent: dict[str, deque[float]] = {}  # deployment -> last answers' latency, ms
        self.latency_window = latency_window
        self.min_samples = min_samples
        self.shadows: deque[ShadowResult] = deque(maxlen=shadow_ring)
        self.record_shadow: RecordShadow | None = None  # where shadow outcomes are kept
        self._background: set[asyncio.Task[None]] = set()

    # ---- choosing -------------------------------------------------------------------------

    def observe(self, deployment: str, latency_ms: float) -> None:
        prev = self.latency.get(deployment)
        a = self.ewma_alpha
        self.latency[deployment] = latency_ms if prev is None else a * latency_ms + (1 - a) * prev
        window = self.recent.get(deployment)
        if window is None:
            window = self.recent[deployment] = deque(maxlen=self.latency_window)
        window.append(latency_ms)

    def p95(self, deployment: str) -> float | None:
        """The deployment's p95 latency (ms) over its recent answers; None until it has
        ``min_samples`` of them."""
        window = self.recent.get(deployment)
        if window is None or len(window) < self.min_samples:
            return None
        ordered = sorted(window)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    def candidates(
        self,
        plan: RoutingPlan,
        ctx: RouteContext,
        *,
        cost_cap: float | None = None,
        slo_p95_ms: float | None = None,
        rng: random.Random | None = None,
        trace: Trace | None = None,
    ) -> list[Choice]:
        """The candidates that may serve this call, in the order to try them; the others go
        to ``trace.skipped`` with their reason."""
        trace = trace if trace is not None else Trace()
        eligible: list[Choice] = []
        seen: set[str] = set()
        for cand in plan.choices:
            card = self.resolve(cand.model)
            if card.key in seen:
                continue
            seen.add(card.key)
            request = ctx.request
            if cand.build is not None and ctx.input is not None:
                request = cand.build(ctx.input)
            why = self._excluded(plan, ctx, card, cand, request)
            cost = self.estimate(card, request)
            if why is None and cost_cap is not None and cost > cost_cap:
                why = f"over cost cap (estimated {cost:.6g} > {cost_cap:.6g})"
            if why is None and self.breakers.is_open(card.key):
                why = OPEN_BREAKER
            if why is not None:
                trace.skipped[_label(cand, card)] = why
            else:
                eligible.append(Choice(card, cand, request, cost))

        def latency(c: Choice) -> float:
            return self.latency.get(c.card.key, -1.0)  # unknown first

        if plan.strategy == "latency":
            eligible.sort(key=lambda c: (latency(c), c.cost))
        elif plan.strategy == "cost":
            eligible.sort(key=lambda c: (c.cost, latency(c)))
        order = _canary(eligible, rng or self.rng)
        if slo_p95_ms is not None:
            order = self._keep_slo(order, slo_p95_ms, trace)
        return order

    def _keep_slo(self, order: list[Choice], slo_p95_ms: float, trace: Trace) -> list[Choice]:
        """The deployments that keep the SLO (or are not measured yet) first; when every
        one breaks it, the order stands."""
        p95s = [self.p95(c.card.key) for c in order]
        keep = [c for c, p in zip(order, p95s, strict=True) if p is None or p <= slo_p95_ms]
        if not keep or len(keep) == len(order):
            return order
        behind = []
        for choice, p95 in zip(order, p95s, strict=True):
            if p95 is not None and p95 > slo_p95_ms:
                behind.append(choice)
                trace.warnings.append(
                    f"{_label(choice.candidate, choice.card)} moved behind: observed p95 "
                    f"{p95:.0f} ms > the SLO of {slo_p95_ms:g} ms"
                )
        return keep + behind

    def _excluded(
        self,
        plan: RoutingPlan,
        ctx: RouteContext,
        card: ModelCard,
        cand: Candidate,
        request: ModelRequest,
    ) -> str | None:
        if card.kind != request.kind:
            return f"excluded: a {card.kind} model cannot serve a {request.kind} request"
        if card.external and ctx.classification in plan.internal_only_for:
            return f"excluded: external model, {ctx.classification} data stays internal"
        if cand.when is not None and not cand.when(ctx):
            return "excluded by its condition"
        return None

    # ---- trying ---------------------------------------------------------------------------

    async def route(
        self,
        plan: RoutingPlan,
        ctx: RouteContext,
        *,
        accept: Accept | None = None,
        cost_cap: float | None = None,
        slo_p95_ms: float | None = None,
        rng: random.Random | None = None,
        trace: Trace | None = None,
    ) -> Trace:
        """Serve the call: the trace holds the output (``accept``'s result, else the raw
        output), the card and response that produced it, and every attempt."""
        trace = trace if trace is not None else Trace(task=ctx.task)
        order = self.candidates(
            plan, ctx, cost_cap=cost_cap, slo_p95_ms=slo_p95_ms, rng=rng, trace=trace
        )
        failures = Failures()
        for label, why in trace.skipped.items():
            if why == OPEN_BREAKER:
                wait = self.breakers.retry_after(self._skipped_key(plan, label))
                failures.add(label, Failure(why, "transient", retry_after=wait))
            else:
                failures.add(label, Failure(why, "excluded"))
        for choice in order:
            label = _label(choice.candidate, choice.card)
            failure = await self._try(choice, ctx, accept, trace)
            if failure is None:
                self._shadow(plan, ctx, trace, accept)
                return trace
            failures.add(label, failure)
        listed = "; ".join(
            f"{label}: {failures.reason(label)}"
            for label in self._labels(plan)
            if label in failures.by_label
        )
        what = f"task {ctx.task!r}" if ctx.task else "the call"
        raise failures.error(what, listed)

    def _skipped_key(self, plan: RoutingPlan, label: str) -> str:
        """The deployment (``card.key``) of a skipped candidate's label."""
        for cand in plan.choices:
            card = self.resolve(cand.model)
            if _label(cand, card) == label:
                return card.key
        return label

    def _labels(self, plan: RoutingPlan) -> list[str]:
        labels: list[str] = []
        for cand in plan.choices:
            label = _label(cand, self.resolve(cand.model))
            if label not in labels:
                labels.append(label)
        return labels

    async def _try(
        self, choice: Choice, ctx: RouteContext, accept: Accept | None, trace: Trace
    ) -> Failure | None:
        """One candidate, with its retries: None when it served the call, else why not.
        Each attempt goes to ``trace.attempts`` with its start and end (``clock``)."""
        card, cand = choice.card, choice.candidate
        failure = Failure(OPEN_BREAKER, "transient", self.breakers.retry_after(card.key))

        def failed(exc: BaseException, error: str) -> None:  # the attempt begun at ``start``
            trace.attempts.append(Attempt(card, start, self.clock(), error, type(exc).__name__))

        for n in range(cand.retries + 1):
            if n and self.breakers.is_open(card.key):
                # this candidate's own failures just opened it
                return Failure(OPEN_BREAKER, "transient", self.breakers.retry_after(card.key))
            call = _deployment_call(card, choice.request, ctx)
            start = self.clock()
            try:
                response = await self.send(call)
                if "budget_warning" in call.meta:  # a soft budget let the call through
                    trace.warnings.append(call.meta["budget_warning"])
            except CircuitOpen as exc:  # another caller holds the half-open trial
                failed(exc, OPEN_BREAKER)
                return Failure(OPEN_BREAKER, "transient", self.breakers.retry_after(card.key))
            except FALL_BACK as exc:
                failed(exc, _error(exc))
                if streamed(call) is not None:
                    raise
                if isinstance(exc, BudgetExceeded):
                    trace.warnings.append(f"{_label(cand, card)} not used: {exc}")
                    return Failure(f"failed: {_error(exc)}", "budget", budget=exc)
                return Failure(f"failed: {_error(exc)}", "permanent")
            except STOP as exc:
                failed(exc, _error(exc))
                raise
            except RETRYABLE as exc:
                failed(exc, _error(exc))
                if streamed(call) is not None:  # text reached the caller: no retry, no fallback
                    raise
                hint = exc.retry_after if isinstance(exc, ProviderUnavailable) else None
                failure = Failure(f"failed: {_error(exc)}", "transient", hint)
                wait = self._wait(n, cand, exc)
                if n == cand.retries or wait is None:
                    break
                await self.sleep(wait)
                continue
            end = self.clock()
            if not response.cached:
                self.observe(card.key, response.latency_ms)
            try:
                output = response.output if accept is None else accept(response, cand)
            except BAD_OUTPUT as exc:
                await judge(call, False)  # a rejected answer is never cached (links/cache.py)
                why = describe(exc) if isinstance(exc, pydantic.ValidationError) else _error(exc)
                error = f"invalid output: {why}"
                trace.attempts.append(Attempt(card, start, end, error, type(exc).__name__))
                return Failure(f"invalid output: {why}", "invalid")
            await judge(call, True)
            trace.attempts.append(Attempt(card, start, end))
            trace.card, trace.response, trace.output = card, response, output
            return None
        return failure

    def _wait(self, n: int, cand: Candidate, exc: BaseException) -> float | None:
        """Seconds before retry ``n + 1`` on the same candidate; None: fall back now."""
        wait = capped_backoff(cand.backoff, 2.0, n, self.max_retry_wait)
        retry_after = exc.retry_after if isinstance(exc, ProviderUnavailable) else None
        if retry_after is not None:
            if retry_after > self.max_retry_wait:
                return None
            wait = max(wait, retry_after)
        return wait

    # ---- shadow ---------------------------------------------------------------------------

    def _shadow(
        self, plan: RoutingPlan, ctx: RouteContext, trace: Trace, accept: Accept | None
    ) -> None:
        if plan.shadow is None or trace.card is None:
            return
        card = self.resolve(plan.shadow)
        if card.key == trace.card.key or card.kind != ctx.request.kind:
            return
        if card.external and ctx.classification in plan.internal_only_for:
            return
        if self.breakers.is_open(card.key):
            return
        coro = self._run_shadow(card, ctx, trace.card.key, trace.output, accept)
        # A fresh context: the copy must not run as part of the caller's workflow.
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_shadow(
        self,
        card: ModelCard,
        ctx: RouteContext,
        primary: str,
        primary_output: Any,
        accept: Accept | None,
    ) -> None:
        call = _deployment_call(card, ctx.request, ctx, shadow=True)
        try:
            response = await self.send(call)
        except Exception as exc:  # a shadow's failure is data, never the caller's problem
            result = ShadowResult(ctx.task, primary, card.key, primary_output, error=_error(exc))
        else:
            if not response.cached:
                self.observe(card.key, response.latency_ms)
            output, error = response.output, None
            if accept is not None:
                try:
                    output = accept(response, Candidate(card.id))
                except BAD_OUTPUT as exc:
                    why = describe(exc) if isinstance(exc, pydantic.ValidationError) else exc
                    output, error = response.output, f"invalid output: {why}"
            result = ShadowResult(
                ctx.task,
                primary,
                card.key,
                primary_output,
                output=output,
                error=error,
                latency_ms=response.latency_ms,
                cost=response.cost,
            )
        self.shadows.append(result)
        log.debug("shadow %s of %s: %s", card.key, ctx.task, result.error or "ok")
        if self.record_shadow is not None:
            try:
                await self.record_shadow(result, ctx)
            except Exception as exc:  # broad: a store error must not escape a background task
                log.warning("shadow outcome of %s not recorded: %s", card.key, _error(exc))

    async def drain(self) -> None:
        """Wait for the shadow calls in flight (before closing providers, and in tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def _deployment_call(
    card: ModelCard, request: ModelRequest, ctx: RouteContext, *, shadow: bool = False
) -> DeploymentCall:
    return DeploymentCall(
        card=card,
        request=request,
        tenant=ctx.tenant,
        workflow=ctx.workflow,
        run_id=ctx.run_id,
        seq=ctx.seq,
        task=ctx.task,
        classification=ctx.classification,
        cache=None if shadow else ctx.cache,
        meta={"shadow": True} if shadow else {},
        # A shadow call may end after the effect is recorded: its row goes the usual way.
        held=None if shadow else ctx.held,
        redactor=ctx.redactor,
        stream=None if shadow else ctx.stream,
    )


def _canary(order: list[Choice], rng: random.Random) -> list[Choice]:
    """Draw the leader among the weighted candidates; it takes the group's first place."""
    slots = [i for i, c in enumerate(order) if c.candidate.weight is not None]
    weights = [order[i].candidate.weight or 0.0 for i in slots]
    if len(slots) < 2 or sum(weights) <= 0:
        return order
    lead = rng.choices(slots, weights=weights)[0]
    group = [lead] + [i for i in slots if i != lead]
    out = list(order)
    for slot, i in zip(slots, group, strict=True):
        out[slot] = order[i]
    return out


def _label(cand: Candidate, card: ModelCard) -> str:
    return card.key if cand.model in (card.id, card.key) else f"{cand.model} ({card.key})"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
