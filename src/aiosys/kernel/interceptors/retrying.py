"""Retry: re-run an effect after a transient error, under its ``Retry`` policy.

The attempt count and the time the next attempt is due are recorded before each retry
(``record_retry``), so they survive replay and recovery: a step that failed 2 of its 3
attempts before a crash gets 1 more, after what is left of its backoff.

The wait is ``policy.delay(attempt)``, or the error's own ``retry_after`` when that is
longer (``retry.retry_after``: the kernel reads the attribute, whoever raised the error; a
model provider's 429 carries one). In a run, a wait of ``policy.park_after`` seconds or more
parks the run until the retry is due (``Execution.suspend``: a durable timer, no worker
slot held); a shorter one sleeps in memory. Every failed attempt, with its error and when
the next was due, is kept on the effect's record (``meta["retries"]``): the timeline shows
the attempts and the waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...store.base import now
from ..gate import EffectCall, Next
from ..oplog import exc_text, run_event
from ..retry import is_transient, retry_after
from .effect_log import RETRIES, RETRY, record_retry


class Retrying:
    async def __call__(self, call: EffectCall, next: Next) -> Any:
        policy = call.retry
        attempt, due, park = 1, None, False
        pending = call.meta.get("pending")
        if pending is not None and RETRY in pending:  # recorded before a crash or a move
            attempt, due = int(pending[RETRY]), float(pending["retry_at"])
            call.meta[RETRIES] = list(pending.get(RETRIES, []))
            park = due - _clock(call) >= policy.park_after
        while True:
            if due is not None:
                await _wait(call, due, park)
            call.meta["attempt"] = attempt
            try:
                return await next(call)
            except Exception as exc:
                if attempt >= policy.attempts or not is_transient(exc):
                    raise
                failed_at = _clock(call)
                wait = max(policy.delay(attempt), retry_after(exc) or 0.0)
                due, park = failed_at + wait, wait >= policy.park_after
                call.meta.setdefault(RETRIES, []).append(
                    {
                        "attempt": attempt,
                        "error": exc_text(exc),
                        "failed_at": failed_at,
                        "retry_at": due,
                    }
                )
                if call.run_execution is not None:
                    await record_retry(call, exc, due)
                    run = call.run_execution.run
                    run_event(
                        "retry",
                        run.id,
                        run.wf_key,
                        call.run_execution.owner,
                        traceparent=run.traceparent,
                        effect=call.seq,
                        effect_name=call.name,
                        attempt=attempt,
                        delay_s=max(0.0, round(due - _clock(call), 3)),
                        error=exc_text(exc),
                    )
                attempt += 1


async def _wait(call: EffectCall, due: float, park: bool) -> None:
    """Until ``due``: parked in the store when ``park`` (a wake-up before it, such as a
    signal, parks again), else in memory."""
    ex = call.run_execution
    while (left := due - _clock(call)) > 0:
        if ex is None or not park:
            await asyncio.sleep(left)
            break
        await ex.suspend(due)  # raises RunCancelled, Unwind when the run must stop instead
    if ex is not None:
        ex.check_cancelled()


def _clock(call: EffectCall) -> float:
    """The run's store's clock (PostgreSQL: the server's, as timers are), else this host's."""
    ex = call.run_execution
    return now() if ex is None else ex.app.store.clock()
