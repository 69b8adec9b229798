"""Retry waits: an error's ``retry_after`` is a floor on the wait, a wait of
``Retry.park_after`` seconds or more parks the run (a durable timer, claimed again when
due) and a shorter one sleeps in its worker; every failed attempt shows on the effect."""

from __future__ import annotations

import json

import pytest

from aiosys import App, Context, Retry, TransientError

pytestmark = pytest.mark.timeout(60)


class Busy(TransientError):
    """A kernel-generic transient error that says when to come back."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@pytest.mark.parametrize("park_after, epoch", [(0.0, 2), (60.0, 1)])
async def test_a_retry_after_is_waited_parked_or_in_memory(store_url, park_after, epoch):
    app = App(store=store_url, lease=1.0)
    attempts: list[int] = []

    @app.step(retry=Retry(attempts=3, backoff=0.0, jitter=0.0, park_after=park_after))
    def call_out() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise Busy("come back later", retry_after=0.3)
        return "done"

    @app.workflow
    async def wf(ctx: Context) -> str:
        return await call_out()

    async with app:
        run = await app.start("wf")
        assert await run.result(timeout=20) == "done"
        row = await app.get_run(run.id)
        [effect] = await app.effects(run.id)
    assert attempts == [1, 2]
    assert row.epoch == epoch  # parked: claimed again when the retry was due
    assert (effect.status, effect.attempt) == ("ok", 2)
    [retry] = json.loads(effect.meta)["retries"]
    assert retry["attempt"] == 1 and retry["error"] == "Busy: come back later"
    assert retry["retry_at"] - retry["failed_at"] == pytest.approx(0.3)  # retry_after, not 0
