"""The operator's log (logger ``aiosys.runs``): one structured line per run start, retry,
finish and failure, with the same fields as ``extra`` attributes, on both stores."""

from __future__ import annotations

import json
import logging

import pytest

from aiosys import App, Context, PermanentError, Retry, TransientError, current_step
from aiosys.observe.logs import JsonFormatter
from aiosys.observe.traceids import run_trace

pytestmark = pytest.mark.timeout(60)


def events(caplog: pytest.LogCaptureFixture, run_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiosys.runs" and r.run_id == run_id]


async def test_start_retry_finish_and_failure_are_logged(store_url, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aiosys.runs")
    app = App(store=store_url)

    @app.step(retry=Retry(attempts=2, backoff=0.0, jitter=0.0))
    def flaky() -> int:
        info = current_step()
        if info is not None and info.attempt == 1:
            raise TransientError("not yet")
        return 1

    @app.step
    def broken() -> None:
        raise PermanentError("broken for good")

    @app.workflow
    async def ok(ctx: Context) -> int:
        return await flaky()

    @app.workflow
    async def dies(ctx: Context) -> None:
        await broken()

    async with app:
        good = await app.start("ok", {})
        assert await good.result(timeout=30) == 1
        bad = await app.start("dies", {})
        with pytest.raises(Exception, match="broken for good"):
            await bad.result(timeout=30)

    worker_ids = set()
    started, retry, finished = events(caplog, good.id)
    assert [started.event, retry.event, finished.event] == [
        "run.started",
        "run.retry",
        "run.finished",
    ]
    assert started.getMessage().startswith(f"run.started run={good.id} workflow=ok@1 worker=")
    assert (started.recoveries, started.levelno) == (0, logging.INFO)
    assert (retry.effect, retry.attempt, retry.delay_s) == (1, 1, 0.0)
    assert retry.effect_name.endswith("flaky")
    assert retry.error == "TransientError: not yet"
    assert 'error="TransientError: not yet"' in retry.getMessage()
    assert finished.status == "succeeded" and finished.duration_ms >= 0
    # Every line names the run's trace; a retry is in its effect's span when one is current.
    assert {r.trace_id for r in (started, retry, finished)} == {span_ids(good.id)[0]}
    assert retry.span_id is not None
    worker_ids |= {started.worker, retry.worker, finished.worker}

    started, failed = events(caplog, bad.id)
    assert (started.event, failed.event) == ("run.started", "run.failed")
    assert (failed.status, failed.levelno) == ("dead", logging.WARNING)
    assert failed.error == "PermanentError: broken for good"
    assert "status=dead" in failed.getMessage()
    worker_ids |= {started.worker, failed.worker}
    assert len(worker_ids) == 1 and worker_ids.pop().strip()


def span_ids(run_id: str, traceparent: str | None = None) -> tuple[str, str]:
    ids = run_trace(run_id, traceparent)
    return format(ids.trace_id, "032x"), format(ids.span_id, "016x")


async def test_run_lines_carry_the_runs_trace_and_span(store_url, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aiosys.runs")
    app = App(store=store_url)

    @app.workflow
    async def fine(ctx: Context) -> int:
        return 1

    @app.workflow
    async def fails(ctx: Context) -> None:
        raise PermanentError("no")

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with app:
        own = await app.start("fine", {})
        joined = await app.start("fine", {}, traceparent=caller)
        bad = await app.start("fails", {})
        assert await own.result(timeout=30) == 1 and await joined.result(timeout=30) == 1
        with pytest.raises(Exception, match="no"):
            await bad.result(timeout=30)

    for run_id, traceparent, kinds in (
        (own.id, None, ["run.started", "run.finished"]),
        (joined.id, caller, ["run.started", "run.finished"]),
        (bad.id, None, ["run.started", "run.failed"]),
    ):
        lines = events(caplog, run_id)
        assert [r.event for r in lines] == kinds
        for r in lines:  # outside any span: the run span's ids, derived from the run
            assert (r.trace_id, r.span_id) == span_ids(run_id, traceparent), r.event
            out = json.loads(JsonFormatter().format(r))
            assert (out["trace_id"], out["span_id"]) == span_ids(run_id, traceparent)
    assert span_ids(joined.id, caller)[0] == "0af7651916cd43dd8448eb211c80319c"
