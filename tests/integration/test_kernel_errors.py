"""Failures: transient errors are retried, permanent ones dead-letter the run, timeouts are
errors like any other, and a dead run resumes from the effect that failed."""

from __future__ import annotations

import asyncio

import pytest

import aiosys
from aiosys import App, Context, PermanentError, Retry, RunFailed, TransientError

pytestmark = pytest.mark.timeout(60)

FAST = Retry(attempts=3, backoff=0.01, jitter=0.0)


class CardDeclined(PermanentError):
    """A permanent failure of the outside world."""


def failing_app(store_url: str, calls: list[tuple[str, int]], fail: dict[str, int]) -> App:
    """Steps that fail ``fail[name]`` times (the kind of failure in their name) first."""
    app = App(store=store_url, lease=1.0)

    def note(name: str) -> int:
        info = aiosys.current_step()
        calls.append((name, info.attempt))
        return info.attempt

    @app.step(retry=FAST)
    async def flaky() -> str:
        attempt = note("flaky")
        if attempt <= fail.get("flaky", 0):
            raise TransientError(f"upstream 503 on attempt {attempt}")
        return f"ok after {attempt}"

    @app.step(retry=FAST)
    async def broken() -> str:
        note("broken")
        raise TransientError("still down")

    @app.step(retry=FAST)
    async def declined() -> str:
        note("declined")
        if fail.get("declined", 0):
            raise CardDeclined("card 4242 declined")
        return "paid"

    @app.step(retry=FAST)
    async def unknown_error() -> str:
        attempt = note("unknown_error")
        if attempt <= fail.get("unknown_error", 0):
            raise ValueError("a bug somewhere")
        return "ok"

    @app.step(retry=FAST, timeout=0.1)
    async def slow() -> str:
        attempt = note("slow")
        if attempt <= fail.get("slow", 0):
            await asyncio.Event().wait()  # hangs until the step's timeout cancels it
        return f"fast on attempt {attempt}"

    @app.step
    async def prepare() -> str:
        note("prepare")
        return "prepared"

    @app.workflow
    async def one(ctx: Context, step: str) -> str:
        steps = {
            "flaky": flaky,
            "broken": broken,
            "declined": declined,
            "unknown_error": unknown_error,
            "slow": slow,
        }
        return await steps[step]()

    @app.workflow
    async def checkout(ctx: Context) -> str:
        prepared = await prepare()
        paid = await declined()
        return f"{prepared}, {paid}"

    return app


async def _outcome(app: App, step: str):
    run = await app.start("one", {"step": step})
    try:
        result = await run.result(timeout=10)
    except RunFailed:
        result = None
    return run, result, await app.get_run(run.id), await app.effects(run.id)


async def test_transient_failures_are_retried_and_the_attempt_is_recorded(store_url):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {"flaky": 2})
    async with app:
        _, result, row, effects = await _outcome(app, "flaky")
    assert result == "ok after 3"
    assert row.status == "succeeded"
    assert calls == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert [(e.status, e.attempt) for e in effects] == [("ok", 3)]


async def test_unknown_errors_count_as_transient(store_url):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {"unknown_error": 1})
    async with app:
        _, result, _, effects = await _outcome(app, "unknown_error")
    assert result == "ok"
    assert [(e.status, e.attempt) for e in effects] == [("ok", 2)]


async def test_permanent_error_is_not_retried_and_the_run_is_dead(store_url, error_of):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {"declined": 1})
    async with app:
        _, _, row, effects = await _outcome(app, "declined")
    assert calls == [("declined", 1)]
    assert row.status == "dead"
    error = error_of(row)
    assert error["type"].endswith("CardDeclined")
    assert error["message"] == "card 4242 declined"
    assert row.failed_seq == 1
    (effect,) = effects
    assert (effect.status, effect.attempt) == ("error", 1)
    assert '"transient": false' in effect.error


async def test_exhausted_retries_make_the_run_dead(store_url, error_of):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {})
    async with app:
        _, _, row, effects = await _outcome(app, "broken")
    assert calls == [("broken", 1), ("broken", 2), ("broken", 3)]
    assert row.status == "dead"
    assert error_of(row)["type"] == "aiosys.errors.TransientError"
    assert [(e.status, e.attempt) for e in effects] == [("error", 3)]


async def test_step_timeout_is_a_transient_error_that_is_retried(store_url):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {"slow": 2})
    async with app:
        _, result, _, effects = await _outcome(app, "slow")
    assert result == "fast on attempt 3"
    assert calls == [("slow", 1), ("slow", 2), ("slow", 3)]
    assert [(e.status, e.attempt) for e in effects] == [("ok", 3)]


async def test_step_that_always_times_out_ends_dead_with_step_timeout(store_url, error_of):
    calls: list[tuple[str, int]] = []
    app = failing_app(store_url, calls, {"slow": 99})
    async with app:
        _, _, row, effects = await _outcome(app, "slow")
    assert row.status == "dead"
    error = error_of(row)
    assert error["type"] == "aiosys.errors.StepTimeout"
    assert "slow" in error["message"]
    assert [(e.status, e.attempt) for e in effects] == [("error", 3)]
    assert '"transient": true' in effects[0].error


async def test_resume_reruns_a_dead_run_from_the_failed_effect_keeping_earlier_successes(
    store_url, wait_status
):
    calls: list[tuple[str, int]] = []
    fail = {"declined": 1}
    app = failing_app(store_url, calls, fail)
    async with app:
        run = await app.start("checkout")
        with pytest.raises(RunFailed):
            await run.result(timeout=10)
        assert (await app.get_run(run.id)).status == "dead"
        fail["declined"] = 0  # the cause is fixed (a new card)
        resumed = await app.resume(run.id)
        assert resumed.status in ("pending", "running")
        assert await run.result(timeout=10) == "prepared, paid"
        row = await app.get_run(run.id)
        effects = await app.effects(run.id)
    assert calls == [("prepare", 1), ("declined", 1), ("declined", 1)]  # prepare ran once
    assert row.status == "succeeded" and row.error is None and row.failed_seq is None
    assert [(e.seq, e.status) for e in effects] == [(1, "ok"), (2, "ok")]


def timed_app(store_url: str, started: asyncio.Event | None = None) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    async def forever() -> None:
        if started is not None:
            started.set()
        await asyncio.Event().wait()

    @app.workflow(timeout=0.3)
    async def awaits_a_signal(ctx: Context) -> str:
        await ctx.wait_for("never")
        return "signalled"

    @app.workflow(timeout=0.3)
    async def stuck_in_a_step(ctx: Context) -> str:
        await forever()
        return "done"

    return app


async def test_run_timeout_fails_a_parked_run_with_run_timed_out(store_url, error_of):
    app = timed_app(store_url)
    async with app:
        run = await app.start("awaits_a_signal")
        with pytest.raises(RunFailed) as failed:
            await run.result(timeout=10)
        row = await app.get_run(run.id)
    assert failed.value.status == "failed"
    assert row.status == "failed"
    assert error_of(row)["type"] == "aiosys.errors.RunTimedOut"
    assert row.finished_at - row.created_at >= 0.3


async def test_run_timeout_fails_a_run_busy_in_a_step_with_run_timed_out(store_url, error_of):
    app = timed_app(store_url)
    async with app:
        run = await app.start("stuck_in_a_step")
        with pytest.raises(RunFailed):
            await run.result(timeout=10)
        row = await app.get_run(run.id)
    assert row.status == "failed"
    assert error_of(row)["type"] == "aiosys.errors.RunTimedOut"
