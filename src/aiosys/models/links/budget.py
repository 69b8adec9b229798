"""Budgets: a cap on what a tenant, or a workflow, may spend on models in a period.

Before a call leaves, each budget that applies compares what was spent in its period (the
``model_usage`` rows ``MeteringLink`` writes, read from the daily spend buckets a trigger
keeps beside them, plus this process's rows not yet written) plus the most this call can cost
(``tokens.estimate_cost``: estimated input, ``max_tokens`` of output) with its limit. Over
the limit, a hard budget raises ``BudgetExceeded`` (permanent: retrying cannot help until
the period turns) and the call is not sent; a soft one lets it through with a warning in
``call.meta["budget_warning"]`` and the log.

Keys. A ``tenant`` budget's key is the tenant id. A ``workflow`` budget's key is either
``"tenant/workflow"`` (that workflow in that tenant) or a bare ``"workflow"``: the same cap
for that workflow in every tenant, each tenant's spend counted apart (one tenant's spend
never denies, or shows in the message of, another's call).

Periods are calendar periods in UTC: ``day`` since midnight, ``month`` since the first of
the month, ``total`` since ever. Limits are in the cards' currency units; budgets assume
the cards they cover share one currency.

The check reads recorded spend and reserves nothing: calls that run at the same time each
see the spend before any of them, so together they can pass the limit by up to the cost of
the calls in flight (each one alone fits). Spend is recorded when a call ends, so this link
needs ``MeteringLink`` outside it in the chain. A strict cap would need a reservation row
per call, written and settled around the provider call: two more writes on every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from ...errors import BudgetExceeded, ConfigError
from ...store.base import Store
from ..chain import DeploymentCall, NextLink
from ..tokens import estimate_cost
from ..types import ModelResponse
from .metering import spent

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


class BudgetLink:
    """Stops a call that would take a hard budget past its limit, before it is sent."""

    def __init__(
        self, store: Store, budgets: Budgets, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.budgets = budgets
        self.clock = clock

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        applicable = self.budgets.for_call(call)
        if not applicable:
            return await next(call)
        estimate = estimate_cost(call.card, call.request)
        now = self.clock()
        warnings: list[str] = []
        # Hard budgets first: a denial should not leave a soft budget's warning behind.
        for budget in sorted(applicable, key=lambda b: not b.hard):
            workflow = call.workflow if budget.scope == "workflow" else None
            used = await spent(self.store, call.tenant, workflow, since=budget.since(now))
            if used + estimate <= budget.limit:
                continue
            currency = call.card.pricing.currency
            message = (
                f"{budget.label}: spent {used:.6g} + estimated {estimate:.6g} for "
                f"{call.card.key} > limit {budget.limit:.6g} {currency}"
            )
            if budget.hard:
                raise BudgetExceeded(f"{message}; the call was not sent")
            warnings.append(message)
        if warnings:
            call.meta["budget_warning"] = "; ".join(warnings)
            log.warning("model call over budget (let through): %s", call.meta["budget_warning"])
        return await next(call)
