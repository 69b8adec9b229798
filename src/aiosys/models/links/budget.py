"""Budgets: a cap on what a tenant, or a workflow, may spend on models in a period.

Before a call leaves, each budget that applies compares what was spent in its period (the
``model_usage`` rows ``MeteringLink`` writes, read from the daily spend buckets a trigger
keeps beside them, plus this process's rows not yet written) plus the most this call can cost
(``tokens.estimate_cost``: estimated input, ``max_tokens`` of output) with its limit. Over
the limit, a hard budget raises ``BudgetExceeded`` (permanent: retrying cannot help until
the period turns) and the call is not sent; a soft one lets it through with a warning in
``call.meta["budget_warning"]`` and the log. Either says what it estimated and how, with the
figures (``estimate``): the input tokens counted, the output tokens assumed and why (the
request's ``max_tokens``, the default, the most that fits, or the least output: 1 token),
and the card's prices.

Hard budgets reserve. A call under a hard budget first *reserves* its worst-case cost: one
row in ``model_reservations``, inserted only if spend + the live reservations of every
process + this call's worst case fit every hard budget that applies (``reserve_budget``:
one statement; on PostgreSQL under the tenant's advisory lock, on SQLite in one write
transaction). Calls in flight therefore count against the limit as if they had been paid
for at their worst, in this process and in every other one sharing the store, and together
they never pass a hard limit (by more than what the provider bills beyond the input
estimate). The call's usage row settles its reservation: a trigger deletes the reservation
in the transaction that inserts the row (a batch behind the call, or a workflow effect's
record), so the common path costs one small write before the call and nothing after it.

The worst case is bounded. A chat request under a hard budget that sets no ``max_tokens``
(nor ``max_completion_tokens``) on a card that prices output is sent with ``max_tokens``:
``DEFAULT_OUTPUT_TOKENS``, or, when that does not fit, the most output that fits what is
left; when not even one token fits the call is refused, its estimate the one with 1 output
token. So a long answer cannot overspend.

What a crash leaves behind: the reservations of the calls the dead process had in flight.
Each expires ``timeout + RESERVATION_GRACE`` seconds after it was made (the card's timeout
bounds the call); until then it holds its amount, so the budget is briefly stricter, never
looser. Expired rows are ignored at once and deleted by the next reservation after
``PURGE_EVERY`` seconds. A call cancelled by its caller releases its reservation, unless it
is a stream whose text had begun to arrive: metering writes its row, which settles it.

Keys. A ``tenant`` budget's key is the tenant id. A ``workflow`` budget's key is either
``"tenant/workflow"`` (that workflow in that tenant) or a bare ``"workflow"``: the same cap
for that workflow in every tenant, each tenant's spend counted apart (one tenant's spend
never denies, or shows in the message of, another's call).

Periods are calendar periods in UTC: ``day`` since midnight, ``month`` since the first of
the month, ``total`` since ever. Limits are in the cards' currency units; budgets assume
the cards they cover share one currency. Spend is recorded when a call ends, so this link
needs ``MeteringLink`` outside it in the chain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, get_args

from ...errors import BudgetExceeded, ConfigError
from ...store.base import Store
from ..catalog import ModelCard
from ..chain import DeploymentCall, NextLink
from ..streaming import streamed
from ..tokens import (
    DEFAULT_OUTPUT_TOKENS,
    estimate_cost,
    estimate_output_tokens,
    estimate_request_tokens,
)
from ..types import ModelRequest, ModelResponse
from .metering import DAY, spent, usage_log

log = logging.getLogger("aiosys.models.budget")

Scope = Literal["tenant", "workflow"]
Period = Literal["day", "month", "total"]


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` currency units per ``period`` for the tenant or workflow ``key``."""

    scope: Scope
    key: str
    limit: float
    hard: bool = True
    period: Period = "month"

    def __post_init__(self) -> None:
        if self.scope not in get_args(Scope):
            raise ConfigError(f"budget scope must be 'tenant' or 'workflow', not {self.scope!r}")
        if self.period not in get_args(Period):
            raise ConfigError(
                f"budget period must be 'day', 'month' or 'total', not {self.period!r}"
            )
        if not self.key:
            raise ConfigError(f"a {self.scope} budget needs a key (the {self.scope}'s name)")
        if self.scope == "tenant" and "/" in self.key:
            raise ConfigError(f"a tenant budget's key is a tenant id, not {self.key!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int | float):
            raise ConfigError(f"budget limit must be a number, not {self.limit!r}")
        if self.limit < 0:
            raise ConfigError(f"budget limit must not be negative, got {self.limit}")

    @property
    def label(self) -> str:
        kind = "hard" if self.hard else "soft"
        return f"{kind} {self.period} budget of {self.scope} {self.key!r}"

    def since(self, now: float) -> float:
        """Start of the current period (epoch seconds)."""
        return period_start(self.period, now)


def period_start(period: Period, now: float) -> float:
    """Start of the UTC calendar day or month holding ``now``; 0 for ``total``."""
    if period == "total":
        return 0.0
    at = datetime.fromtimestamp(now, UTC)
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return start.timestamp()


class Budgets:
    """The budgets in force, found by scope and key. Adding a budget with the scope, key and
    period of one already there replaces it (a new limit)."""

    def __init__(self, *budgets: Budget) -> None:
        self._by_key: dict[tuple[str, str], dict[str, Budget]] = {}
        for budget in budgets:
            self.add(budget)

    def add(self, budget: Budget) -> Budgets:
        self._by_key.setdefault((budget.scope, budget.key), {})[budget.period] = budget
        return self

    def __iter__(self) -> Iterator[Budget]:
        for per_period in self._by_key.values():
            yield from per_period.values()

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_key.values())

    def for_call(self, call: DeploymentCall) -> list[Budget]:
        """The budgets that apply to ``call``: its tenant's, and its workflow's (both the
        ``tenant/workflow`` and the bare ``workflow`` keys)."""
        keys = [("tenant", call.tenant)]
        if call.workflow is not None:
            keys += [("workflow", f"{call.tenant}/{call.workflow}"), ("workflow", call.workflow)]
        found: list[Budget] = []
        for key in keys:
            found.extend(self._by_key.get(key, {}).values())
        return found


@dataclass(frozen=True, slots=True)
class Reservation:
    """A call's worst-case cost, held under its hard budgets until its usage row lands."""

    id: str
    amount: float
    expires_at: float


RESERVATION_GRACE = 120.0  # seconds a reservation outlives its call's timeout
PURGE_EVERY = 60.0  # seconds between deletions of expired reservations
# A limit is met, not passed, by costs that add up to it in floating point (3 x 0.004).
TOLERANCE = 1e-9


class BudgetLink:
    """Stops a call that would take a hard budget past its limit, before it is sent, and
    reserves the worst-case cost of one that fits (see the module docstring)."""

    def __init__(
        self, store: Store, budgets: Budgets, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.budgets = budgets
        self.clock = clock
        self.log = usage_log(store)
        self._purge_at = 0.0
        self._releases: set[asyncio.Task[int]] = set()

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        applicable = self.budgets.for_call(call)
        if not applicable:
            return await next(call)
        now = self.clock()
        hard = [b for b in applicable if b.hard]
        reservation: Reservation | None = None
        if hard:
            call, reservation = await self._reserve(call, hard, now)
        warnings: list[str] = []
        for budget in applicable:
            if budget.hard:
                continue
            workflow = call.workflow if budget.scope == "workflow" else None
            cost = estimate_cost(call.card, call.request)
            used = await spent(self.store, call.tenant, workflow, since=budget.since(now))
            if used + cost <= budget.limit:
                continue
            currency = call.card.pricing.currency
            warnings.append(
                f"{budget.label}: spent {used:.6g} + estimated {cost:.6g} for "
                f"{call.card.key} ({estimate(call.card, call.request)}) > limit "
                f"{budget.limit:.6g} {currency}"
            )
        if warnings:
            call.meta["budget_warning"] = "; ".join(warnings)
            log.warning("model call over budget (let through): %s", call.meta["budget_warning"])
        if reservation is None:
            return await next(call)
        try:
            return await next(call)
        except Exception:
            raise  # metered: the error's usage row settles the reservation
        except BaseException:  # cancelled: nothing will be metered, so give the room back
            if streamed(call) is None:  # (a stream that started is: its row settles it)
                self._release(reservation)
            raise

    # ---- reserving ----------------------------------------------------------------------

    async def _reserve(
        self, call: DeploymentCall, hard: list[Budget], now: float
    ) -> tuple[DeploymentCall, Reservation]:
        """Reserve the call's worst case under every hard budget; the call as it will be
        sent (with ``max_tokens`` when it had none: see the module docstring)."""
        if now >= self._purge_at:
            self._purge_at = now + PURGE_EVERY
            await self.store.execute("purge_reservations", {"now": now})
        card, request = call.card, call.request
        bound = _unbounded(call)
        why: str | None = None  # how the output was estimated: as the request says
        if bound:
            request = _with_max_tokens(request, DEFAULT_OUTPUT_TOKENS)
            why = _DEFAULT
        amount = estimate_cost(card, request)
        reservation = await self._try(call, hard, amount, now)
        if reservation is None and self.log.writing:
            # This process's usage rows being written count their reservations in full until
            # they land (never less than the truth), so a call made right after another one
            # ended may see the room it freed as still taken: let them land, ask again.
            await self.log.flush()
            reservation = await self._try(call, hard, amount, now)
        if reservation is None and bound:
            # The default output does not fit: send the most output that does.
            left = min(limit for limit in await self._left(call, hard, now))
            input_cost = card.pricing.cost(estimate_request_tokens(request), 0)
            fit = math.floor((left - input_cost) / card.pricing.output_per_1k * 1000)
            # Not even one token fits: refused with the least output's estimate.
            request = _with_max_tokens(request, min(max(fit, 1), DEFAULT_OUTPUT_TOKENS))
            amount = estimate_cost(card, request)
            if fit >= 1:
                why = "the most output that fits what is left"
                reservation = await self._try(call, hard, amount, now)
            else:
                why = "the least output: the request sets no max_tokens and not even 1 token fits"
        if reservation is None:
            raise BudgetExceeded(await self._denial(call, hard, request, amount, now, why))
        call.meta["reservation"] = reservation
        if request is not call.request:
            call = replace(call, request=request)
        return call, reservation

    async def _try(
        self, call: DeploymentCall, hard: list[Budget], amount: float, now: float
    ) -> Reservation | None:
        budgets = []
        for budget in hard:
            workflow = call.workflow if budget.scope == "workflow" else None
            since = budget.since(now)
            unseen = self.log.beyond_reservations(call.tenant, workflow, since, now)
            room = budget.limit * (1 + TOLERANCE) + TOLERANCE - unseen
            full_from = math.ceil(since / DAY) * DAY
            budgets.append(
                {"workflow": workflow, "since": since, "full_from": full_from, "room": room}
            )
        reservation = Reservation(
            uuid.uuid4().hex, amount, now + call.card.timeout + RESERVATION_GRACE
        )
        # Not durable (SQLite: no fsync of its own, ~5 ms on this disk, on the event loop):
        # what makes the budget hard is that the reservation is committed, so every other
        # process sharing the store counts it, before the call is sent; that holds. A
        # process crash keeps it (it expires as described above). Only a power cut before
        # the next durable commit can lose it, and then it loses the call's usage row too,
        # which is written the same way (metering.py) and later in the same WAL: the same
        # trade as the usage rows, for the calls in flight at that moment.
        rows = await self.store.fetch(
            "reserve_budget",
            {
                "id": reservation.id,
                "tenant": call.tenant,
                "workflow": call.workflow,
                "amount": amount,
                "at": now,
                "expires_at": reservation.expires_at,
                "budgets": json.dumps(budgets),
            },
            durable=False,
        )
        return reservation if rows else None

    async def _used(self, call: DeploymentCall, budget: Budget, now: float) -> tuple[float, float]:
        """What a budget has spent (every process's rows, this one's unwritten ones too) and
        what the calls still in flight hold (live reservations), counted as the reservation
        statement counts them."""
        workflow = call.workflow if budget.scope == "workflow" else None
        since = budget.since(now)
        used = await spent(self.store, call.tenant, workflow, since=since)
        if workflow is None:
            rows = await self.store.fetch("reserved_by_tenant", {"tenant": call.tenant, "now": now})
        else:
            rows = await self.store.fetch(
                "reserved_by_workflow", {"tenant": call.tenant, "workflow": workflow, "now": now}
            )
        stored = used - self.log.pending_spend(call.tenant, workflow, since)
        total = stored + float(rows[0]["amount"])
        total += self.log.beyond_reservations(call.tenant, workflow, since, now)
        return used, max(0.0, total - used)

    async def _left(self, call: DeploymentCall, hard: list[Budget], now: float) -> list[float]:
        left = []
        for budget in hard:
            used, reserved = await self._used(call, budget, now)
            left.append(budget.limit - used - reserved)
        return left

    async def _denial(
        self,
        call: DeploymentCall,
        hard: list[Budget],
        request: ModelRequest,
        amount: float,
        now: float,
        why: str | None,
    ) -> str:
        """Why the call does not fit: the first hard budget it passes, with its numbers, and
        how ``amount`` was estimated for ``request`` (``estimate``; ``why``: the output's
        basis when the budget chose it)."""
        currency = call.card.pricing.currency
        found = hard[0], 0.0, 0.0
        for budget in hard:
            used, reserved = await self._used(call, budget, now)
            if used + reserved + amount > budget.limit:
                found = budget, used, reserved
                break
        budget, used, reserved = found
        return (
            f"{budget.label}: spent {used:.6g} + reserved {reserved:.6g} by calls in flight "
            f"+ estimated {amount:.6g} for {call.card.key} "
            f"({estimate(call.card, request, why)}) > limit {budget.limit:.6g} "
            f"{currency}; the call was not sent"
        )

    def _release(self, reservation: Reservation) -> None:
        task = asyncio.get_running_loop().create_task(
            self.store.execute("release_reservation", {"id": reservation.id})
        )
        self._releases.add(task)
        task.add_done_callback(_released(self._releases))


def _released(tasks: set[asyncio.Task[int]]) -> Callable[[asyncio.Task[int]], None]:
    def done(task: asyncio.Task[int]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # It expires on its own; say so rather than fail anything.
            log.info("releasing a budget reservation failed: %s", task.exception())

    return done


_DEFAULT = "the default max_tokens: the request sets none"


def estimate(card: ModelCard, request: ModelRequest, why: str | None = None) -> str:
    """How ``tokens.estimate_cost`` priced ``request`` on ``card``, with the figures:
    ``12 input tokens counted from the request at 0.5 per 1k, 1024 output tokens at 1.5 per
    1k as the default max_tokens: the request sets none``, and a per-call price. ``why``:
    the output's basis when the budget chose it (the default, the most that fits what is
    left, or the least output); else the request's own (its ``max_tokens`` or
    ``max_completion_tokens``, or the default). Embeddings: input only."""
    pricing = card.pricing
    tokens = estimate_request_tokens(request)
    parts = [
        f"{_count(tokens, 'input')} counted from the request at {pricing.input_per_1k:.6g} per 1k"
    ]
    if request.kind != "embed":
        if why is None:
            asked = [n for n in ("max_tokens", "max_completion_tokens") if n in request.params]
            why = f"its {asked[0]}" if asked else _DEFAULT
        output = estimate_output_tokens(request)
        parts.append(f"{_count(output, 'output')} at {pricing.output_per_1k:.6g} per 1k as {why}")
    if pricing.per_call:
        parts.append(f"{pricing.per_call:.6g} per call")
    return ", ".join(parts)


def _count(n: int, what: str) -> str:
    return f"{n} {what} token{'' if n == 1 else 's'}"


def _unbounded(call: DeploymentCall) -> bool:
    """A chat request whose output the card prices and the request does not cap."""
    request = call.request
    return (
        request.kind == "chat"
        and call.card.pricing.output_per_1k > 0
        and "max_tokens" not in request.params
        and "max_completion_tokens" not in request.params
    )


def _with_max_tokens(request: ModelRequest, tokens: int) -> ModelRequest:
    return request.model_copy(update={"params": {**request.params, "max_tokens": tokens}})
