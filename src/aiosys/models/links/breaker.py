"""Circuit breakers: stop sending calls to a deployment that keeps failing, try it again later.

One breaker per deployment (``card.key``, i.e. ``id@version``)::

    closed --(N consecutive transient failures)--> open --(cooldown)--> half_open
    half_open --(the one trial call succeeds)--> closed
    half_open --(the trial call fails)--> open (a new cooldown)

While a breaker is open the router skips the deployment without sending it anything. When
the cooldown has passed the breaker is half-open: exactly one caller gets through as the
trial; concurrent callers still see it open until the trial ends.

Only transient failures count (``ProviderUnavailable``: 429, 5xx, malformed answers,
connection errors; and timeouts): a deployment that rejects a bad request (``ProviderRejected``)
or a call stopped by a budget is not unhealthy. A deployment that refuses to serve at all
(``DeploymentUnusable``: 401, 403, 404, a revoked key or a missing deployment) opens its
breaker at once: every call would fail the same way until someone fixes it.

Breaker state is kept in memory, per worker process: each worker learns on its own that a
deployment is down (after ``failure_threshold`` failures of its own) and probes it on its
own after the cooldown. That costs a few failed calls per worker and needs no shared state
on the hot path; limits that must hold across workers (rate limits) live in the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import DeploymentUnusable, ProviderUnavailable
from ..chain import DeploymentCall, NextLink
from ..types import ModelResponse

State = Literal["closed", "open", "half_open"]

# What trips a breaker: the provider's transient failures and timeouts.
TRANSIENT = (ProviderUnavailable, TimeoutError)


class CircuitOpen(ProviderUnavailable):
    """The deployment's breaker is open (or half-open with its trial call in flight): the call
    was not sent. The router skips the deployment rather than retrying it."""


@dataclass(slots=True)
class _Breaker:
    state: State = "closed"
    failures: int = 0  # consecutive transient failures while closed
    opened_at: float = 0.0
    trial: bool = False  # half-open: the trial call is in flight
    trips: int = 0  # how many times it opened, for stats


class Breakers:
    """The breakers of every deployment this process calls. ``clock`` is injectable so tests
    can pass the cooldown without sleeping."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("Breakers.failure_threshold must be at least 1")
        if cooldown < 0:
            raise ValueError("Breakers.cooldown must be >= 0 seconds")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, key: str) -> _Breaker:
        b = self._breakers.get(key)
        if b is None:
            b = self._breakers[key] = _Breaker()
        return b

    def _advance(self, b: _Breaker) -> None:
        if b.state == "open" and self.clock() - b.opened_at >= self.cooldown:
            b.state = "half_open"
            b.trial = False

    def state(self, key: str) -> State:
        b = self._breakers.get(key)
        if b is None:
            return "closed"
        self._advance(b)
        return b.state

    def is_open(self, key: str) -> bool:
        """True when a call to ``key`` must not be sent: open within its cooldown, or
        half-open with its one trial call already in flight. False when half-open and free:
        the next call is the trial."""
        b = self._breakers.get(key)
        if b is None:
            return False
        self._advance(b)
        return b.state == "open" or (b.state == "half_open" and b.trial)

    def acquire(self, key: str) -> bool:
        """Claim the right to send a call now: always when closed, once when half-open (the
        trial). False when the call must not be sent."""
        if self.is_open(key):
            return False
        b = self._get(key)
        if b.state == "half_open":
            b.trial = True
        return True

    def release(self, key: str) -> None:
        """The call ended without telling anything about the deployment's health (a
        permanent error, a cancellation): a half-open breaker offers its trial again."""
        b = self._breakers.get(key)
        if b is not None and b.state == "half_open":
            b.trial = False

    def record_success(self, key: str) -> None:
        b = self._get(key)
        b.state, b.failures, b.trial = "closed", 0, False

    def record_failure(self, key: str) -> None:
        b = self._get(key)
        self._advance(b)
        if b.state == "half_open":
            self._open(b)
        elif b.state == "closed":
            b.failures += 1
            if b.failures >= self.failure_threshold:
                self._open(b)
        # already open: a call that was in flight when it opened; nothing more to learn

    def trip(self, key: str) -> None:
        """Open ``key``'s breaker now, whatever its count (the deployment refuses to serve)."""
        self._open(self._get(key))

    def retry_after(self, key: str) -> float:
        """Seconds until a call to ``key`` may be sent again: what is left of an open
        breaker's cooldown; 0 when closed or half-open (a trial in flight ends soon)."""
        b = self._breakers.get(key)
        if b is None:
            return 0.0
        self._advance(b)
        if b.state != "open":
            return 0.0
        return max(0.0, b.opened_at + self.cooldown - self.clock())

    def _open(self, b: _Breaker) -> None:
        b.state, b.opened_at, b.trial, b.failures = "open", self.clock(), False, 0
        b.trips += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every breaker this process knows: state, consecutive failures, times opened, and
        the seconds left of an open breaker's cooldown."""
        out: dict[str, dict[str, Any]] = {}
        for key, b in sorted(self._breakers.items()):
            self._advance(b)
            left = (
                max(0.0, b.opened_at + self.cooldown - self.clock()) if b.state == "open" else 0.0
            )
            out[key] = {
                "state": b.state,
                "failures": b.failures,
                "trips": b.trips,
                "cooldown_left": left,
            }
        return out


class BreakerLink:
    """The chain link: refuses calls to an open deployment (``CircuitOpen``) and tells the
    breaker how each call it let through ended."""

    def __init__(self, breakers: Breakers) -> None:
        self.breakers = breakers

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        key = call.card.key
        if not self.breakers.acquire(key):
            raise CircuitOpen(f"the circuit breaker of {key} is open: the call was not sent")
        try:
            response = await next(call)
        except TRANSIENT:
            self.breakers.record_failure(key)
            raise
        except DeploymentUnusable:
            self.breakers.trip(key)
            raise
        except BaseException:
            self.breakers.release(key)
            raise
        self.breakers.record_success(key)
        return response
