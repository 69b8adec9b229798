"""Steps: each runs once, in the right place, and its recorded output keeps its type."""

from __future__ import annotations

import threading

import pydantic
import pytest

import aiosys
from aiosys import App, Context

pytestmark = pytest.mark.timeout(60)


class Invoice(pydantic.BaseModel):
    number: str
    total: float


async def test_each_step_runs_once_and_the_result_is_right(store_url, wait_status):
    app = App(store=store_url, lease=1.0)
    calls: list[tuple[str, str, int]] = []

    @app.step
    async def double(x: int) -> int:
        info = aiosys.current_step()
        calls.append(("double", info.run_id, info.seq))
        return 2 * x

    @app.step
    async def add(a: int, b: int) -> int:
        info = aiosys.current_step()
        calls.append(("add", info.run_id, info.seq))
        return a + b

    @app.workflow
    async def arithmetic(ctx: Context, x: int) -> int:
        doubled = await double(x)
        plus_one = await add(doubled, 1)
        extra = await ctx.wait_for("extra")  # parks: the steps above are replayed after it
        return await add(plus_one, extra)

    async with app:
        run = await app.start("arithmetic", {"x": 20})
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "extra", 100)
        assert await run.result(timeout=10) == 141

    assert sorted(calls) == sorted([("double", run.id, 1), ("add", run.id, 2), ("add", run.id, 4)])
    effects = await _effects(app, store_url, run.id)
    assert [(e.seq, e.kind, e.status) for e in effects] == [
        (1, "step", "ok"),
        (2, "step", "ok"),
        (3, "signal", "ok"),
        (4, "step", "ok"),
    ]
    assert [e.output for e in effects] == ["40", "41", "100", "141"]


async def _effects(app: App, store_url: str, run_id: str):
    """The run's effects, read through a fresh app (the first one is closed)."""
    reader = App(store=store_url)
    await reader.open()
    try:
        return await reader.effects(run_id)
    finally:
        await reader.close()


async def test_sync_step_runs_in_a_thread_and_knows_its_idempotency_key(store_url):
    app = App(store=store_url, lease=1.0)

    @app.step
    def blocking_io(path: str) -> dict:
        info = aiosys.current_step()
        return {
            "path": path,
            "thread": threading.get_ident(),
            "run_id": info.run_id,
            "seq": info.seq,
            "key": info.idempotency_key,
        }

    @app.workflow
    async def read_file(ctx: Context, path: str) -> dict:
        return await blocking_io(path)

    async with app:
        run = await app.start("read_file", {"path": "a.pdf"})
        out = await run.result(timeout=10)

    assert out["path"] == "a.pdf"
    assert out["thread"] != threading.get_ident()  # not the event loop's thread
    assert (out["run_id"], out["seq"]) == (run.id, 1)
    assert out["key"] == f"{run.id}:1"


async def test_step_output_keeps_its_annotated_type_on_replay(store_url, wait_status):
    app = App(store=store_url, lease=1.0, max_parked=0)  # every wake-up replays
    seen: list[str] = []

    @app.step
    async def parse(number: str) -> Invoice:
        return Invoice(number=number, total=12.5)

    @app.step
    async def parse_all(numbers: list[str]) -> list[Invoice]:
        return [Invoice(number=n, total=1.0) for n in numbers]

    @app.workflow
    async def bill(ctx: Context, number: str) -> Invoice:
        invoice = await parse(number)
        batch = await parse_all([number, number])
        seen.append(f"{type(invoice).__name__}/{type(batch[0]).__name__}")
        await ctx.wait_for("go")  # the next execution replays both steps from the record
        return Invoice(number=invoice.number, total=invoice.total + batch[1].total)

    async with app:
        run = await app.start("bill", {"number": "INV-7"})
        await wait_status(app, run.id, "waiting")
        await app.signal(run.id, "go")
        result = await run.result(timeout=10)

    assert seen == ["Invoice/Invoice", "Invoice/Invoice"]  # first execution, then replay
    assert result == Invoice(number="INV-7", total=13.5)  # the run's result is typed too


async def test_step_called_outside_a_workflow_is_a_plain_call():
    app = App(store="sqlite:///never-opened.db")  # no store is needed, none is opened

    @app.step
    async def shout(text: str) -> str:
        assert aiosys.current_step() is None
        return text.upper()

    assert await shout("hi") == "HI"


async def test_same_idempotency_key_returns_the_same_run(store_url):
    app = App(store=store_url, lease=1.0)
    executions: list[str] = []

    @app.step
    async def work(doc: str) -> str:
        executions.append(aiosys.current_step().run_id)
        return doc

    @app.workflow
    async def intake(ctx: Context, doc: str) -> str:
        return await work(doc)

    async with app:
        first = await app.start("intake", {"doc": "a"}, idempotency_key="doc-1")
        again = await app.start("intake", {"doc": "a"}, idempotency_key="doc-1")
        assert first.created is True
        assert again.created is False
        assert again.id == first.id
        assert await again.result(timeout=10) == "a"

        # After the run ended the key still names it.
        late = await app.start("intake", {"doc": "a"}, idempotency_key="doc-1")
        assert (late.id, late.created) == (first.id, False)

        # Keys are per tenant.
        other = await app.start("intake", {"doc": "a"}, idempotency_key="doc-1", tenant="acme")
        assert other.created is True and other.id != first.id
        assert await other.result(timeout=10) == "a"

        runs = await app.list_runs()

    assert sorted(r.id for r in runs) == sorted([first.id, other.id])
    assert sorted(executions) == sorted([first.id, other.id])  # each executed once


async def test_same_idempotency_key_without_a_worker_returns_the_same_run(store_url):
    app = App(store=store_url, lease=1.0)

    @app.workflow
    async def intake(ctx: Context, doc: str) -> str:
        return doc

    await app.open()
    try:
        first = await app.start("intake", {"doc": "a"}, idempotency_key="k")
        again = await app.start("intake", {"doc": "a"}, idempotency_key="k")
        assert (again.id, again.created) == (first.id, False)
        assert len(await app.list_runs()) == 1
        assert await again.status() == "pending"
    finally:
        await app.close()
