"""Circuit breakers on a fake clock: the state machine and what the link counts."""

from __future__ import annotations

import pytest

from aiosys.errors import (
    BudgetExceeded,
    DeploymentUnusable,
    ProviderRejected,
    ProviderUnavailable,
)
from aiosys.models.catalog import ModelCard
from aiosys.models.chain import DeploymentCall
from aiosys.models.links.breaker import BreakerLink, Breakers, CircuitOpen
from aiosys.models.types import ModelRequest, ModelResponse, Usage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    b = Breakers(failure_threshold=3, cooldown=10, clock=Clock())
    b.record_failure("m@1")
    b.record_failure("m@1")
    b.record_success("m@1")  # resets the count
    b.record_failure("m@1")
    b.record_failure("m@1")
    assert b.state("m@1") == "closed" and not b.is_open("m@1")
    b.record_failure("m@1")
    assert b.state("m@1") == "open" and b.is_open("m@1")
    assert b.state("other@1") == "closed"


def test_half_open_after_cooldown_admits_one_trial():
    clock = Clock()
    b = Breakers(failure_threshold=1, cooldown=10, clock=clock)
    b.record_failure("m@1")
    clock.now = 9.99
    assert not b.acquire("m@1")
    clock.now = 10
    assert b.state("m@1") == "half_open" and not b.is_open("m@1")
    assert b.acquire("m@1")  # the trial
    assert b.is_open("m@1") and not b.acquire("m@1")  # everyone else still sees it open
    b.release("m@1")  # the trial ended telling nothing (a permanent error)
    assert b.acquire("m@1")
    b.record_failure("m@1")  # the trial failed: open again, a new cooldown
    assert b.state("m@1") == "open"
    clock.now = 19.99
    assert b.is_open("m@1")
    clock.now = 20
    assert b.acquire("m@1")
    b.record_success("m@1")
    assert b.state("m@1") == "closed" and b.acquire("m@1") and b.acquire("m@1")


def test_snapshot_shows_state_failures_trips_and_cooldown_left():
    clock = Clock()
    b = Breakers(failure_threshold=2, cooldown=30, clock=clock)
    b.record_failure("a@1")
    b.record_failure("b@1")
    b.record_failure("b@1")
    clock.now = 5
    assert b.snapshot() == {
        "a@1": {"state": "closed", "failures": 1, "trips": 0, "cooldown_left": 0.0},
        "b@1": {"state": "open", "failures": 0, "trips": 1, "cooldown_left": 25.0},
    }


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="failure_threshold"):
        Breakers(failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown"):
        Breakers(cooldown=-1)


CARD = ModelCard(id="m", provider="local")
CALL = DeploymentCall(card=CARD, request=ModelRequest(text="x", kind="summarize"))


def answer(exc: BaseException | None = None):
    async def nxt(call: DeploymentCall) -> ModelResponse:
        if exc is not None:
            raise exc
        return ModelResponse(model="m", version="1", output="ok", usage=Usage())

    return nxt


@pytest.mark.parametrize(
    "error", [ProviderUnavailable("HTTP 503"), TimeoutError(), ProviderUnavailable("429")]
)
async def test_the_link_counts_transient_failures(error):
    b = Breakers(failure_threshold=2, clock=Clock())
    link = BreakerLink(b)
    for _ in range(2):
        with pytest.raises(type(error)):
            await link(CALL, answer(error))
    assert b.state("m@1") == "open"
    with pytest.raises(CircuitOpen, match="m@1 is open"):
        await link(CALL, answer())


@pytest.mark.parametrize("error", [ProviderRejected("HTTP 400"), BudgetExceeded("over")])
async def test_the_link_ignores_permanent_failures(error):
    b = Breakers(failure_threshold=1, clock=Clock())
    link = BreakerLink(b)
    for _ in range(3):
        with pytest.raises(type(error)):
            await link(CALL, answer(error))
    assert b.state("m@1") == "closed"
    assert (await link(CALL, answer())).output == "ok"


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_deployment_that_refuses_to_serve_opens_its_breaker_at_once(status):
    clock = Clock()
    b = Breakers(failure_threshold=5, cooldown=30.0, clock=clock)
    link = BreakerLink(b)
    with pytest.raises(DeploymentUnusable):
        await link(CALL, answer(DeploymentUnusable(f"HTTP {status}", status=status)))
    assert b.state("m@1") == "open"
    assert b.retry_after("m@1") == 30.0
    clock.now = 12.5
    assert b.retry_after("m@1") == 17.5
    clock.now = 30.0
    assert b.state("m@1") == "half_open" and b.retry_after("m@1") == 0.0
    assert b.retry_after("unknown@1") == 0.0


async def test_a_permanent_failure_of_the_trial_frees_the_trial_slot():
    clock = Clock()
    b = Breakers(failure_threshold=1, cooldown=1, clock=clock)
    b.record_failure("m@1")
    clock.now = 1
    link = BreakerLink(b)
    with pytest.raises(ProviderRejected):
        await link(CALL, answer(ProviderRejected("HTTP 422")))
    assert b.state("m@1") == "half_open" and not b.is_open("m@1")
    await link(CALL, answer())
    assert b.state("m@1") == "closed"
