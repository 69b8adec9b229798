"""The line ``aiosys run`` shows in its spinner, and that nothing is drawn off a terminal."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from tests.unit.clirunner import aiosys, ok

from aiosys import App, Context
from aiosys.cli.status import effect_line, show_status, status_line
from aiosys.store.base import EffectRow, RunRow

TESTS_DIR = Path(__file__).resolve().parents[1]
AT = datetime(2026, 11, 30, 14, 2, 11).timestamp()  # local time, as the line prints it


def effect(kind: str, name: str, status: str = "pending", output: object = None) -> EffectRow:
    return EffectRow(
        run_id="r",
        seq=3,
        kind=kind,
        name=name,
        status=status,
        output=None if output is None else json.dumps(output),
        error=None,
        attempt=1,
        started_at=AT,
        finished_at=None if status == "pending" else AT,
    )


def run(status: str = "running") -> RunRow:
    return RunRow(
        id="0123456789abcdef",
        workflow="intake",
        version="1",
        tenant="default",
        queue="default",
        priority=0,
        status=status,
        input="{}",
        result=None,
        error=None,
        idempotency_key=None,
        parent_id=None,
        created_at=AT,
        updated_at=AT,
        started_at=AT,
        finished_at=None,
        deadline_at=None,
        available_at=None,
        lease_owner=None,
        wake_seq=0,
        failed_seq=None,
        cancel_reason=None,
        claims=1,
        epoch=1,
    )


@pytest.mark.parametrize(
    ("row", "line"),
    [
        (effect("sleep", "sleep", output={"deadline": AT}), "sleeping until 14:02:11"),
        (effect("signal", "review", output={"deadline": None}), "waiting for signal 'review'"),
        (
            effect("signal", "review", output={"deadline": AT}),
            "waiting for signal 'review' until 14:02:11",
        ),
        (
            effect("child_result", "ocr_page", output={"child_id": "feedbeef-0000"}),
            "waiting for child run feedbeef (ocr_page)",
        ),
        (
            effect("human_task", "review", output={"task_id": "0a1b2c3d-99", "due_at": AT}),
            "waiting for human task 'review' (0a1b2c3d), due 14:02:11",
        ),
        (
            effect("human_task", "sign", output={"task_id": "0a1b2c3d-99", "due_at": None}),
            "waiting for human task 'sign' (0a1b2c3d)",
        ),
        (
            effect("step", "ocr", output={"next_attempt": 2, "retry_at": AT, "retries": []}),
            "step ocr (attempt 2 at 14:02:11)",
        ),
        (effect("model", "summarize", output={"next_attempt": 3}), "model summarize (attempt 3)"),
        (effect("step", "ocr", status="ok", output="text"), "running; last: step ocr"),
        (effect("step", "ocr", status="error"), "running; last: step ocr (failed)"),
    ],
)
def test_effect_line_names_the_wait_or_the_step(row: EffectRow, line: str) -> None:
    assert effect_line(row) == line


def test_status_line_follows_the_child_it_waits_for() -> None:
    waiting = effect("child_result", "ocr_page", output={"child_id": "feedbeef-0000"})
    sleeping = effect("sleep", "sleep", output={"deadline": AT})
    assert status_line(run(), [waiting, sleeping]) == (
        "intake 01234567: waiting for child run feedbeef (ocr_page): sleeping until 14:02:11"
    )
    assert status_line(run(), [None]) == "intake 01234567: started"
    assert status_line(run("pending"), [None]).endswith("pending (waiting for a worker slot)")
    assert status_line(run("succeeded"), [None]) == "intake 01234567: succeeded"


async def test_nothing_is_drawn_when_stderr_is_not_a_terminal(store_url: str) -> None:
    out = io.StringIO()
    app = App(store=store_url)
    async with app:  # returns at once, without a look at the store
        await asyncio.wait_for(show_status(app.store, "no-such-run", Console(file=out)), 5)
    assert out.getvalue() == ""


async def test_on_a_terminal_the_spinner_names_the_signal_the_run_waits_for(
    store_url: str,
) -> None:
    app = App(store=store_url)

    @app.workflow
    async def review(ctx: Context) -> object:
        return await ctx.wait_for("approval", timeout=600)

    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=120)
    async with app:
        handle = await app.start("review")
        async with asyncio.timeout(30):
            while await handle.status() != "waiting":  # noqa: ASYNC110 - parked on its signal
                await asyncio.sleep(0.01)
        spinner = asyncio.create_task(show_status(app.store, handle.id, terminal, poll=0.01))
        try:
            async with asyncio.timeout(30):
                while "waiting for signal 'approval' until" not in out.getvalue():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)  # what the spinner drew, read as it draws
        finally:
            spinner.cancel()
            await asyncio.gather(spinner, return_exceptions=True)
        await app.signal(handle.id, "approval", True)
        assert await handle.result(timeout=30) is True


def test_run_off_a_terminal_prints_only_its_outcome(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    result = ok(aiosys("run", "naps", "--app", "ownruns:app", "--store", store_url))
    assert result.stdout == "rested\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("run ") and lines[0].endswith(" succeeded")
