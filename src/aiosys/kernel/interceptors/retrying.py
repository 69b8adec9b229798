"""Retry: re-run an effect after a transient error, under its ``Retry`` policy.

The attempt count and the time the next attempt is due are recorded before each retry
(``record_retry``), so they survive replay and recovery: a step that failed 2 of its 3
attempts before a crash gets 1 more, after what is left of its backoff.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...store.base import now
from ..gate import EffectCall, Next
from ..oplog import exc_text, run_event
from ..retry import is_transient
from .effect_log import RETRY, record_retry


class Retrying:
    async def __call__(self, call: EffectCall, next: Next) -> Any:
        policy = call.retry
        attempt, due = 1, None
        pending = call.meta.get("pending")
        if pending is not None and RETRY in pending:  # recorded before a crash or a move
            attempt, due = int(pending[RETRY]), float(pending["retry_at"])
        while True:
            if due is not None:
                await asyncio.sleep(max(0.0, due - now()))
                if call.run_execution is not None:
                    call.run_execution.check_cancelled()
            call.meta["attempt"] = attempt
            try:
                return await next(call)
            except Exception as exc:
                if attempt >= policy.attempts or not is_transient(exc):
                    raise
                due = now() + policy.delay(attempt)
                if call.run_execution is not None:
                    await record_retry(call, exc, due)
                    run = call.run_execution.run
                    run_event(
                        "retry",
                        run.id,
                        run.wf_key,
                        call.run_execution.owner,
                        effect=call.seq,
                        effect_name=call.name,
                        attempt=attempt,
                        delay_s=max(0.0, round(due - now(), 3)),
                        error=exc_text(exc),
                    )
                attempt += 1
