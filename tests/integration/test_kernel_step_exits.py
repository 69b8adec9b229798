"""A step raising a BaseException (SystemExit, KeyboardInterrupt, GeneratorExit, a stray
CancelledError, a foreign BaseException) fails that step's attempt; the worker lives."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from aiosys import App, Context, Retry
from aiosys.errors import StepExited, StepInterrupted

pytestmark = pytest.mark.timeout(60)


class ForeignInterrupt(BaseException):
    """A BaseException subclass from some library (gevent, trio style)."""


def _stray_cancel() -> None:
    raise asyncio.CancelledError("an inner task was cancelled")


RAISERS = {
    "system_exit": (lambda: (_ for _ in ()).throw(SystemExit(3)), StepExited, "SystemExit"),
    "generator_exit": (lambda: (_ for _ in ()).throw(GeneratorExit()), StepExited, "GeneratorExit"),
    "keyboard_interrupt": (
        lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
        StepInterrupted,
        "KeyboardInterrupt",
    ),
    "stray_cancelled": (_stray_cancel, StepInterrupted, "CancelledError"),
    "foreign": (lambda: (_ for _ in ()).throw(ForeignInterrupt("x")), StepInterrupted, "Foreign"),
}


@pytest.mark.parametrize("kind", sorted(RAISERS))
@pytest.mark.parametrize("body", ["sync", "async"])
async def test_a_base_exception_in_a_step_is_a_failed_attempt_and_the_worker_lives(
    store_url, wait_status, error_of, kind, body
):
    raise_it, error_class, name = RAISERS[kind]
    app = App(store=store_url, lease=1.0)
    attempts: list[int] = []

    def sync_body() -> None:
        attempts.append(1)
        raise_it()

    async def async_body() -> None:
        attempts.append(1)
        raise_it()

    fn = sync_body if body == "sync" else async_body
    policy = Retry(attempts=3, backoff=0.0, jitter=0.0)

    @app.workflow
    async def wf(ctx: Context) -> str:
        await ctx.step(fn, name="boom", retry=policy)
        return "unreachable"

    @app.workflow
    async def catches(ctx: Context) -> str:
        try:
            await ctx.step(fn, name="boom", retry=Retry(attempts=1))
        except error_class as exc:
            return f"caught {type(exc).__name__} raised={exc.raised.rsplit('.', 1)[-1]}"
        return "not caught"

    @app.workflow
    async def healthy(ctx: Context) -> str:
        return "ok"

    async with app:
        run = await app.start("wf")
        row = await wait_status(app, run.id, "dead")
        # The worker is alive: the same worker runs the next run to its end.
        assert await app.run("healthy") == "ok"
        # In the workflow the step's failure is the aiosys error, naming the original class.
        caught = await app.run("catches")
        assert caught.startswith(f"caught {error_class.__name__} raised={name}")
        effects = await app.effects(run.id)
    record = error_of(row)
    assert record["type"] == f"aiosys.errors.{error_class.__name__}"
    assert name in record["message"] and "boom" in record["message"]
    assert row.failed_seq == 1
    assert [(e.status, e.attempt) for e in effects] == [
        ("error", 1 if error_class is StepExited else 3)
    ]
    # SystemExit / GeneratorExit are permanent (one attempt); the others are retried.
    assert len(attempts) == (1 if error_class is StepExited else 3) + 1


async def test_argparse_exit_in_a_step_ends_the_run_dead_with_the_exit_code(
    store_url, wait_status, error_of
):
    app = App(store=store_url, lease=1.0)

    @app.step
    def tool(argv: list[str]) -> dict:
        parser = argparse.ArgumentParser(prog="tool", add_help=False)
        parser.add_argument("--n", type=int, required=True)
        return vars(parser.parse_args(argv))

    @app.workflow
    async def wf(ctx: Context) -> dict:
        return await tool(["--bogus"])

    @app.workflow
    async def good(ctx: Context) -> dict:
        return await tool(["--n", "4"])

    async with app:
        run = await app.start("wf")
        row = await wait_status(app, run.id, "dead")
        assert await app.run("good") == {"n": 4}  # the worker still serves runs
    record = error_of(row)
    assert record["type"] == "aiosys.errors.StepExited"
    assert "SystemExit(2)" in record["message"]


async def test_the_runs_own_cancellation_still_stops_a_step(store_url, wait_status):
    """Shutdown cancels the task executing the run: that CancelledError is not the step's
    failure; the run is given back, not recorded as failed."""
    app = App(store=store_url, lease=1.0)
    entered = asyncio.Event()

    @app.step
    async def slow() -> None:
        entered.set()
        await asyncio.Event().wait()

    @app.workflow
    async def wf(ctx: Context) -> None:
        await slow()

    async with app:
        run = await app.start("wf")
        await entered.wait()
    await app.open()
    try:
        row = await app.get_run(run.id)
        assert row.status == "pending"
        assert await app.effects(run.id) == []
    finally:
        await app.close()


@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("body", ["sync", "async"])
async def test_a_step_raising_stop_iteration_fails_its_attempt_as_a_runtime_error(
    store_url, body, timeout
):
    """A future cannot carry StopIteration (asyncio refuses it and the run would wait
    forever): like a coroutine that raises it (PEP 479), the attempt fails with a
    RuntimeError the workflow can catch."""
    app = App(store=store_url, lease=2.0)

    def sync_stop() -> int:
        raise StopIteration(5)

    async def async_stop() -> int:
        raise StopIteration(5)

    @app.workflow
    async def caller(ctx: Context) -> str:
        fn = sync_stop if body == "sync" else async_stop
        try:
            await ctx.step(fn, timeout=timeout)
        except RuntimeError as exc:
            return f"caught {type(exc).__name__}: {exc}"
        return "no error"

    async with app:
        out = await app.run("caller")
    assert out.startswith("caught RuntimeError") and "StopIteration" in out
