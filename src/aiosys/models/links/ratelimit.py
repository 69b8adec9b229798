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

Where the windows are counted (``Windows``): in the store (``StoreWindows``, the default:
nothing more to run), or in Redis (``RedisWindows``: ``AIOSYS_REDIS_URL`` or
``app.models.redis_url``), which spares the database a write per call when many workers
share PostgreSQL. Redis counts with ``HINCRBY`` in a ``MULTI`` transaction (atomic, one
round trip) on a hash per deployment and window that expires by itself. If Redis cannot be
reached, calls go through uncounted (the provider's own 429s still hold them back) and each
such call is logged at WARNING on ``aiosys.models.ratelimit``: a limiter outage must not
stop every model call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import ProviderRejected, ProviderUnavailable
from ...redact import mask_url, redact, url_password
from ...store.base import Store
from ..chain import DeploymentCall, NextLink
from ..tokens import estimate_output_tokens, estimate_request_tokens
from ..types import ModelResponse

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger("aiosys.models.ratelimit")

WINDOW = 60.0  # seconds


class Windows(Protocol):
    """Counters of requests and tokens per key and window, shared by every worker."""

    async def take(self, key: str, window: float, tokens: int) -> tuple[int, int] | None:
        """Count one request and ``tokens``; the window's totals after it (None: the
        counters cannot be reached, so the call is not counted)."""

    async def give_back(self, key: str, window: float, tokens: int) -> None:
        """Uncount a request the limit turned away (it was never sent)."""

    async def adjust(self, key: str, window: float, delta: int) -> None:
        """Correct the window's tokens by ``delta`` (reported minus estimated)."""

    async def close(self) -> None: ...


class StoreWindows:
    """Windows in the store's ``rate_windows`` table (``INSERT ... ON CONFLICT DO UPDATE
    ... RETURNING``: atomic on SQLite and PostgreSQL alike)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._purged_before = 0.0

    async def take(self, key: str, window: float, tokens: int) -> tuple[int, int]:
        if window > self._purged_before:  # drop ended windows, once per window per process
            self._purged_before = window
            await self.store.execute("rate_purge", {"before": window - WINDOW})
        params = {"key": key, "window_start": window, "tokens": tokens}
        row = (await self.store.fetch("rate_take", params))[0]
        return int(row["requests"]), int(row["tokens"])

    async def give_back(self, key: str, window: float, tokens: int) -> None:
        params = {"key": key, "window_start": window, "tokens": tokens}
        await self.store.execute("rate_give_back", params)

    async def adjust(self, key: str, window: float, delta: int) -> None:
        await self.store.execute(
            "rate_adjust", {"key": key, "window_start": window, "delta": delta}
        )

    async def close(self) -> None:
        return None


class RedisWindows:
    """Windows in Redis: a hash ``{prefix}{key}:{window}`` with fields ``requests`` and
    ``tokens``, expiring two windows after it starts. One client per event loop."""

    def __init__(self, url: str, *, prefix: str = "aiosys:rate:") -> None:
        self.url = url
        self._password = url_password(url)
        self.prefix = prefix
        self.failures = 0  # calls that went through uncounted (see the module docstring)
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis]] = {}

    def _client(self) -> redis.asyncio.Redis:
        import redis.asyncio  # imported on first use: only deployments with limits need it

        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=2.0, socket_timeout=2.0
        )
        self._clients[id(loop)] = (loop, client)
        return client

    def _key(self, key: str, window: float) -> str:
        return f"{self.prefix}{key}:{int(window)}"

    async def _incr(self, key: str, window: float, requests: int, tokens: int) -> list[Any]:
        import redis

        name = self._key(key, window)
        try:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.hincrby(name, "requests", requests)
                pipe.hincrby(name, "tokens", tokens)
                pipe.expire(name, int(2 * WINDOW))
                result: list[Any] = await pipe.execute()
                return result
        except (redis.RedisError, OSError) as exc:
            self.failures += 1
            log.warning(
                "rate limit counters at %s unreachable (%s: %s); the call to %s goes "
                "through uncounted",
                mask_url(self.url),
                type(exc).__name__,
                redact(str(exc), self._password),
                key,
            )
            return []

    async def take(self, key: str, window: float, tokens: int) -> tuple[int, int] | None:
        result = await self._incr(key, window, 1, tokens)
        return (int(result[0]), int(result[1])) if result else None

    async def give_back(self, key: str, window: float, tokens: int) -> None:
        await self._incr(key, window, -1, -tokens)

    async def adjust(self, key: str, window: float, delta: int) -> None:
        await self._incr(key, window, 0, delta)

    async def close(self) -> None:
        """Close the client of the running loop; forget all."""
        loop = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for owner, client in clients.values():
            if owner is loop:
                await client.aclose()


class RateLimitLink:
    """Holds each deployment to its requests and tokens per minute, across all workers."""

    def __init__(
        self,
        store: Store,
        *,
        windows: Windows | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.windows: Windows = windows if windows is not None else StoreWindows(store)
        self.clock = clock

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
        shared = card.limits.shared
        key = f"shared:{shared}" if shared else f"model:{card.id}"
        counted = await self.windows.take(key, window, tokens)
        if counted is None:  # the counters are unreachable: not counted (logged there)
            return await next(call)
        requests, used = counted
        over = []
        if rpm is not None and requests > rpm:
            over.append(f"{rpm} requests per minute")
        if tpm is not None and used > tpm:
            over.append(f"{tpm} tokens per minute ({used - tokens} used, {tokens} asked)")
        if over:
            await self.windows.give_back(key, window, tokens)
            retry_after = max(0.0, window + WINDOW - now)
            whose = f"{card.id} (shared {shared!r})" if shared else card.id
            raise ProviderUnavailable(
                f"rate limit of {whose}: {' and '.join(over)} reached; next window in "
                f"{retry_after:.1f}s",
                retry_after=retry_after,
            )
        response = await next(call)
        if tpm is not None and not response.cached:
            delta = response.usage.total_tokens - tokens
            if response.usage.total_tokens and delta and self.clock() < window + WINDOW:
                await self.windows.adjust(key, window, delta)
        return response
