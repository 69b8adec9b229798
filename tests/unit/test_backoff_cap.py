"""Exponential backoffs stop at their cap for any number of retries (no OverflowError)."""

from __future__ import annotations

import pytest

from aiosys.errors import ProviderUnavailable
from aiosys.kernel.retry import Retry, capped_backoff, retry_after
from aiosys.models.contracts import Candidate
from aiosys.models.links.breaker import Breakers
from aiosys.models.router import Router


@pytest.mark.parametrize("n", [1, 10, 1025, 10_000, 10**9])
def test_retry_delay_is_the_cap_plus_jitter_however_many_retries(n):
    policy = Retry(attempts=10**9)
    assert policy.delay(n, rng=lambda: 0.5) <= 30.0
    expected = min(30.0, 0.5 * 2.0 ** (n - 1)) if n < 100 else 30.0
    assert Retry(attempts=10**9, jitter=0.0).delay(n) == expected
    assert 24.0 <= policy.delay(10**9, rng=lambda: 0.0) <= 24.0 + 1e-9  # cap - 20 %
    assert 36.0 - 1e-9 <= policy.delay(10**9, rng=lambda: 1.0) <= 36.0  # cap + 20 %


def test_capped_backoff_handles_overflow_underflow_and_zero():
    assert capped_backoff(0.5, 2.0, 5000, 30.0) == 30.0
    assert capped_backoff(0.5, 1e300, 3, 7.0) == 7.0
    assert capped_backoff(0.0, 2.0, 5000, 30.0) == 0.0
    assert capped_backoff(1.0, 0.5, 5000, 30.0) == 0.0
    assert capped_backoff(0.5, 2.0, -1, 30.0) == 0.5


@pytest.mark.parametrize("n", [0, 3, 1024, 10**6])
def test_router_retry_wait_is_capped_at_max_retry_wait(n):
    router = Router(Breakers(), resolve=None, send=None)
    wait = router._wait(n, Candidate("m", retries=10**7), ProviderUnavailable("503"))
    assert wait is not None and wait <= router.max_retry_wait == 2.0


@pytest.mark.parametrize(
    "hint, seconds",
    [
        (5.0, 5.0),
        (0, 0.0),
        (None, None),
        (-1.0, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("5", None),
    ],
)
def test_the_kernel_reads_an_errors_retry_after_only_when_usable(hint, seconds):
    exc = ProviderUnavailable("429")
    exc.retry_after = hint  # type: ignore[assignment]
    assert retry_after(exc) == seconds
    assert retry_after(ValueError("no hint")) is None


def test_park_after_must_not_be_negative():
    assert Retry().park_after == 5.0
    with pytest.raises(ValueError, match="park_after"):
        Retry(park_after=-1)
