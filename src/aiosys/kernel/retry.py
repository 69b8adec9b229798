"""Retry policies and the transient/permanent classification of errors."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import pydantic

from ..errors import PermanentError, TransientError
from .error_records import TRANSIENT_ATTR


@dataclass(frozen=True, slots=True)
class Retry:
    """How a step is retried after a transient error.

    ``attempts`` counts the first try; the n-th retry waits
    ``min(cap, backoff * multiplier**(n-1))``, spread by +/- ``jitter`` (a fraction) so that
    many runs failing together do not retry in lockstep. An error that carries a
    ``retry_after`` (seconds: ``ProviderUnavailable`` holds a provider's hint) waits at least
    that long, even past ``cap``: the server said when it can answer.

    In a run, a retry due ``park_after`` seconds or more from now parks the run (``waiting``,
    no worker slot, a durable timer) until it is due; a sooner one waits in memory.
    """

    attempts: int = 3
    backoff: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2
    park_after: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts counts the first try and must be at least 1")
        if self.backoff < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("Retry.backoff and cap must be >= 0 and jitter within [0, 1]")
        if self.park_after < 0:
            raise ValueError("Retry.park_after must be >= 0 seconds")

    def delay(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry); any number
        of retries gives at most ``cap`` (+ jitter), never an ``OverflowError``."""
        base = capped_backoff(self.backoff, self.multiplier, retry_number - 1, self.cap)
        return max(0.0, base * (1 + self.jitter * (2 * rng() - 1)))


def capped_backoff(base: float, factor: float, exponent: int, cap: float) -> float:
    """``min(cap, base * factor**exponent)`` for any exponent: a float power past ~1e308
    raises ``OverflowError`` before ``min`` could apply the cap, so an overflow *is* the cap.
    Every exponential backoff in aiosys goes through here (kernel retries, model router)."""
    if base <= 0:
        return 0.0
    try:
        return min(cap, base * factor ** max(0, exponent))
    except OverflowError:
        return cap


def retry_after(exc: BaseException) -> float | None:
    """The error's own hint of when to try again (its ``retry_after`` attribute, seconds),
    if it gives a usable one: the kernel reads it without knowing who raised the error."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


NO_RETRY = Retry(attempts=1)

# Classifiers added by other layers (e.g. HTTP errors: 429/5xx transient, 4xx permanent).
# Each returns True (transient), False (permanent) or None (no opinion).
_classifiers: list[Callable[[BaseException], bool | None]] = []


def add_classifier(fn: Callable[[BaseException], bool | None]) -> None:
    _classifiers.append(fn)


def is_transient(exc: BaseException) -> bool:
    """Transient: ``TransientError``, timeouts, connection errors, and errors aiosys does
    not know (retried under the step's policy, as Temporal does). Permanent:
    ``PermanentError`` and validation errors."""
    if isinstance(exc, PermanentError):
        return False
    recorded = getattr(exc, "__dict__", {}).get(TRANSIENT_ATTR)
    if recorded is not None:  # rebuilt from an effect's record: how it was classified then
        return bool(recorded)
    if isinstance(exc, TransientError):
        return True
    for fn in _classifiers:
        verdict = fn(exc)
        if verdict is not None:
            return verdict
    if isinstance(exc, pydantic.ValidationError):
        return False
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    return True
