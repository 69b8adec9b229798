"""The rules of budgets and cache policies that need no store: validation, which budgets
apply to a call, where periods start."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aiosys.errors import ConfigError
from aiosys.models.catalog import ModelCard
from aiosys.models.chain import DeploymentCall
from aiosys.models.links.budget import Budget, Budgets, period_start
from aiosys.models.links.cache import CachePolicy
from aiosys.models.types import ModelRequest

CARD = ModelCard(id="m", provider="local")


def _call(tenant: str = "acme", workflow: str | None = None) -> DeploymentCall:
    return DeploymentCall(card=CARD, request=ModelRequest(), tenant=tenant, workflow=workflow)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "team", "key": "a", "limit": 1.0}, "scope must be 'tenant' or 'workflow'"),
        ({"scope": "tenant", "key": "a", "limit": 1.0, "period": "week"}, "period must be"),
        ({"scope": "tenant", "key": "", "limit": 1.0}, "needs a key"),
        ({"scope": "tenant", "key": "a/b", "limit": 1.0}, "key is a tenant id"),
        ({"scope": "tenant", "key": "a", "limit": -1.0}, "must not be negative"),
        ({"scope": "tenant", "key": "a", "limit": "10"}, "must be a number"),
    ],
)
def test_bad_budget_is_a_precise_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Budget(**kwargs)


def test_budgets_apply_by_tenant_and_by_workflow_in_both_key_forms() -> None:
    tenant = Budget("tenant", "acme", 10.0)
    scoped = Budget("workflow", "acme/intake", 2.0)
    everywhere = Budget("workflow", "intake", 5.0, period="day")
    other = Budget("tenant", "globex", 1.0)
    budgets = Budgets(tenant, scoped, everywhere, other)
    assert len(budgets) == 4
    assert budgets.for_call(_call("acme", "intake")) == [tenant, scoped, everywhere]
    assert budgets.for_call(_call("acme")) == [tenant]
    assert budgets.for_call(_call("globex", "intake")) == [other, everywhere]
    assert budgets.for_call(_call("initech", "billing")) == []


def test_adding_a_budget_for_the_same_key_and_period_replaces_it() -> None:
    budgets = Budgets(Budget("tenant", "acme", 10.0))
    budgets.add(Budget("tenant", "acme", 20.0)).add(Budget("tenant", "acme", 1.0, period="day"))
    assert sorted(b.limit for b in budgets) == [1.0, 20.0]


def test_periods_start_at_utc_midnight_and_the_first_of_the_month() -> None:
    now = datetime(2024, 5, 17, 15, 30, 12, tzinfo=UTC).timestamp()
    assert period_start("day", now) == datetime(2024, 5, 17, tzinfo=UTC).timestamp()
    assert period_start("month", now) == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    assert period_start("total", now) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ttl": 0}, "ttl must be positive"), ({"threshold": 1.5}, "threshold must be in")],
)
def test_bad_cache_policy_is_a_precise_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CachePolicy(**kwargs)
