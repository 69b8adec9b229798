"""Retry: re-run an effect after a transient error, under its ``Retry`` policy."""

from __future__ import annotations

import asyncio
from typing import Any

from ..gate import EffectCall, Next
from ..retry import is_transient


class Retrying:
    async def __call__(self, call: EffectCall, next: Next) -> Any:
        policy = call.retry
        attempt = 1
        while True:
            call.meta["attempt"] = attempt
            try:
                return await next(call)
            except Exception as exc:
                if attempt >= policy.attempts or not is_transient(exc):
                    raise
                await asyncio.sleep(policy.delay(attempt))
                if call.run_execution is not None:
                    call.run_execution.check_cancelled()
                attempt += 1
