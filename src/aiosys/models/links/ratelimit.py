"""Rate limits of a deployment (``card.limits``), shared by every worker through the store.

Fixed one-minute windows (aligned to the minute, as the providers' own per-minute limits
reset): each call counts itself and its estimated tokens in the deployment's current window
with one atomic upsert that returns the totals (``rate_take``: ``INSERT ... ON CONFLICT DO
UPDATE ... RETURNING``, atomic on SQLite and PostgreSQL alike), so any number of workers
and processes sharing the store share the limit without a lock. A call that would pass a
limit is given back to the window (it was never sent) and fails with
``ProviderUnavailable`` carrying ``retry_after`` = seconds until the next window, the way a
provider's HTTP 429 does, so the router treats both alike: try another candidate, or wait.

Tokens are counted before the call as estimated input plus the output allowance
(``max_tokens``, default 256; providers count ``max_tokens`` against their limits the same
way) and corrected to the reported usage afterwards. A request that alone is larger than
the tokens-per-minute limit can never pass: ``ProviderRejected``, not a wait.

A fixed window lets up to twice the limit through around a window's edge (the end of one
minute and the start of the next); providers' limits are coarse in the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ...errors import ProviderRejected, ProviderUnavailable
from ...store.base import Store
from ..chain import DeploymentCall, NextLink
from ..tokens import estimate_output_tokens, estimate_request_tokens
from ..types import ModelResponse

WINDOW = 60.0  # seconds


class RateLimitLink:
    """Holds each deployment to its requests and tokens per minute, across all workers."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._purged_before = 0.0

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        card = call.card
        rpm, tpm = card.limits.requests_per_minute, card.limits.tokens_per_minute
        if rpm is None and tpm is None:
            return await next(call)
        tokens = 0
        if tpm is not None:
            tokens = estimate_request_tokens(call.request) + estimate_output_tokens(call.request)
            if tokens > tpm:
                raise ProviderRejected(
                    f"rate limit of {card.id}: the request needs about {tokens} tokens, more "
                    f"than its limit of {tpm} tokens per minute allows in any window"
                )
        now = self.clock()
        window = math.floor(now / WINDOW) * WINDOW
        key = f"model:{card.id}"
        await self._purge(window)
        params = {"key": key, "window_start": window, "tokens": tokens}
        row = (await self.store.fetch("rate_take", params))[0]
        requests, used = int(row["requests"]), int(row["tokens"])
        over = []
        if rpm is not None and requests > rpm:
            over.append(f"{rpm} requests per minute")
        if tpm is not None and used > tpm:
            over.append(f"{tpm} tokens per minute ({used - tokens} used, {tokens} asked)")
        if over:
            await self.store.execute("rate_give_back", params)
            retry_after = max(0.0, window + WINDOW - now)
            raise ProviderUnavailable(
                f"rate limit of {card.id}: {' and '.join(over)} reached; next window in "
                f"{retry_after:.1f}s",
                retry_after=retry_after,
            )
        response = await next(call)
        if tpm is not None and not response.cached:
            delta = response.usage.total_tokens - tokens
            if response.usage.total_tokens and delta and self.clock() < window + WINDOW:
                adjust = {"key": key, "window_start": window, "delta": delta}
                await self.store.execute("rate_adjust", adjust)
        return response

    async def _purge(self, window: float) -> None:
        """Drop ended windows, once per window per link (any worker's purge serves all)."""
        if window > self._purged_before:
            self._purged_before = window
            await self.store.execute("rate_purge", {"before": window - WINDOW})
