"""Poison stays contained, and starts keep their promises (both stores).

Text a store cannot keep as it is (NUL, lone surrogates) is stored alike on SQLite and
PostgreSQL: JSON columns read back equal, plain text columns escaped, identities refused. One
write the store refuses fails only its own run. Idempotency keys name one (workflow, input);
every call on one run is scoped by tenant; a workflow's queue is always served.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from aiosys import App, Context, IdempotencyConflict, InvalidInput
from aiosys.errors import ConfigError, RunFailed, RunNotFound, StoreRefused
from aiosys.kernel.commit import Committer
from aiosys.store import open_store
from aiosys.store.base import Claim, EffectRow, NewRun, RecordEffect, now

NUL = "before\x00after"
SURROGATE = "lone \ud800 half"


# ---- storable text ------------------------------------------------------------------------


async def test_nul_in_input_output_error_and_signal_reads_back_equal(store_url, error_of):
    app = App(store=store_url, lease=1.0)

    @app.step
    async def echo(text: str) -> str:
        return text

    @app.step
    async def explode(text: str) -> None:
        raise ValueError(text)

    @app.workflow
    async def carry(ctx: Context, text: str) -> dict:
        out = await echo(text)
        got = await ctx.wait_for("go")
        try:
            await explode(text)
        except ValueError as exc:
            caught = str(exc)
        return {"out": out, "signal": got, "caught": caught}

    @app.workflow
    async def fail(ctx: Context, text: str) -> None:
        await explode(text + SURROGATE)

    async with app:
        run = await app.start("carry", {"text": NUL})
        await app.signal(run.id, "go", {"payload": NUL})
        assert await run.result(timeout=10) == {
            "out": NUL,
            "signal": {"payload": NUL},
            "caught": NUL,
        }
        row = await run.row()
        assert json.loads(row.input) == {"text": NUL}
        effects = await app.effects(run.id)
        assert json.loads(effects[0].output) == NUL

        failed = await app.start("fail", {"text": NUL})
        with pytest.raises(Exception, match="ended dead"):
            await failed.result(timeout=10)
        # An error message holding NUL and a lone surrogate is kept whole.
        assert error_of(await failed.row())["message"] == NUL + SURROGATE


async def test_text_no_store_keeps_is_refused_at_start_and_when_recorded(store_url, error_of):
    app = App(store=store_url, lease=1.0)

    @app.step
    async def echo(text: str) -> str:
        return text

    @app.workflow
    async def wf(ctx: Context, text: str = "") -> str:
        return await echo(SURROGATE)

    async with app:
        with pytest.raises(InvalidInput, match="cannot be stored as JSON"):
            await app.start("wf", {"text": SURROGATE})
        with pytest.raises(InvalidInput, match=r"idempotency key .* NUL character"):
            await app.start("wf", idempotency_key="k\x00")
        with pytest.raises(InvalidInput, match=r"tenant .* lone surrogate"):
            await app.start("wf", tenant=SURROGATE)
        with pytest.raises(InvalidInput, match="signal name"):
            await app.signal(str(uuid.uuid4()), "go\x00")
        # A step output that cannot be JSON: the run ends dead with the reason.
        run = await app.start("wf")
        with pytest.raises(Exception, match="ended dead"):
            await run.result(timeout=10)
        assert "surrogates not allowed" in error_of(await run.row())["message"]
        assert await app.list_runs() == [await run.row()]  # nothing else was stored


async def test_plain_text_columns_are_escaped_alike_on_both_stores(store):
    """Usage rows (the model plane's write-behind and side writes) and cancel reasons are
    plain text: NUL and lone surrogates are stored as JSON escapes, the same on both."""
    row = {
        "at": now(),
        "tenant": "acme",
        "workflow": "wf",
        "run_id": "r1",
        "seq": 1,
        "task": NUL,
        "model": "m",
        "deployment": "d",
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost": 0.0,
        "latency_ms": 1.0,
        "status": "error",
        "error": NUL + " " + SURROGATE,
        "reservation": None,
    }
    assert await store.execute_many("insert_usage", [row]) == 1
    [stored] = await store.fetch("usage_rows_of_run", {"run_id": "r1"})
    assert stored["task"] == "before\\u0000after"
    assert stored["error"] == "before\\u0000after lone \\ud800 half"
    # The escape is JSON's: as JSON string content it decodes back to the original.
    assert json.loads(f'"{stored["error"]}"') == NUL + " " + SURROGATE

    new = NewRun(str(uuid.uuid4()), "wf", "1", "default", "default", 0, "{}")
    run, _ = await store.create_run(new)
    cancelled = await store.cancel(run.id, "stop\x00now")
    assert cancelled.cancel_reason == "stop\\u0000now"
    assert json.loads(cancelled.error)["message"] == "stop\x00now"


# ---- one refused write fails only its run -------------------------------------------------


async def _claimed_runs(store, n: int) -> list[str]:
    for _ in range(n):
        await store.create_run(NewRun(str(uuid.uuid4()), "wf", "1", "t", "default", 0, "{}"))
    claim = Claim(owner="w", wf_keys=["wf@1"], slots={"default": n}, global_limits={}, lease=60)
    rows, _ = await store.claim(claim)
    return [r.id for r in rows]


def _record(run_id: str, *, poison: bool = False) -> RecordEffect:
    effect = EffectRow(run_id, 1, "step", "s", "ok", '"done"', None, 1, now(), now())
    # A side write the store refuses on both dialects: a signal without a run (NOT NULL).
    bad = ("insert_signal", {"run_id": None, "name": "x", "payload": "{}", "now": now()})
    return RecordEffect("w", effect, side_writes=(bad,) if poison else (), epoch=1)


async def test_a_refused_write_in_a_group_commit_fails_only_its_own_run(store):
    ids = await _claimed_runs(store, 4)
    writes = [_record(run_id, poison=i == 2) for i, run_id in enumerate(ids)]

    # The store itself refuses the whole batch, saying so.
    with pytest.raises(StoreRefused, match="the store refused a write of 4 runs"):
        await store.apply(writes)

    committer = Committer(store)
    futures = [committer.submit(w) for w in writes]
    await committer.flush()
    await committer.stop()
    for i, (run_id, fut) in enumerate(zip(ids, futures, strict=True)):
        effects = await store.list_effects(run_id)
        if i == 2:
            with pytest.raises(StoreRefused, match=f"run {run_id}"):
                fut.result()
            assert effects == []
        else:
            assert fut.result().ok
            assert [e.output for e in effects] == ['"done"']


async def test_a_run_whose_record_the_store_refuses_ends_dead_with_the_reason(store_url, error_of):
    app = App(store=store_url, lease=1.0)
    calls: list[int] = []

    @app.step
    async def poisoned() -> str:
        calls.append(1)
        return "fine"

    @app.step
    async def healthy() -> str:
        return "ok"

    @app.workflow
    async def bad(ctx: Context) -> str:
        return await poisoned()

    @app.workflow
    async def good(ctx: Context) -> str:
        return await healthy()

    class Poison:
        """An interceptor adding a side write no store accepts to one step's record."""

        async def __call__(self, call, next):
            if call.name.endswith("poisoned") and call.run_execution is not None:
                call.also_write(
                    "insert_signal", {"run_id": None, "name": "x", "payload": "{}", "now": now()}
                )
            return await next(call)

    app.gate.add("poison", Poison())
    async with app:
        runs = [await app.start("good") for _ in range(5)]
        run = await app.start("bad")
        runs += [await app.start("good") for _ in range(5)]
        with pytest.raises(Exception, match="ended dead"):
            await run.result(timeout=10)
        assert [await r.result(timeout=10) for r in runs] == ["ok"] * 10
    row = await app.get_run(run.id)
    assert error_of(row)["type"] == "aiosys.errors.StoreRefused"
    assert calls == [1]  # not replayed into the same refusal


# ---- starts -------------------------------------------------------------------------------


async def test_reusing_an_idempotency_key_for_another_workflow_or_input_is_a_conflict(store_url):
    app = App(store=store_url)

    @app.workflow
    async def a(ctx: Context, x: int) -> int:
        return x

    @app.workflow
    async def b(ctx: Context, x: int) -> int:
        return x

    async with app:
        first = await app.start("a", {"x": 1}, idempotency_key="k")
        # The same workflow and input (after validation: "1" is the int 1) is the same run.
        again = await app.start("a", {"x": "1"}, idempotency_key="k")
        assert (again.id, again.created) == (first.id, False)
        with pytest.raises(IdempotencyConflict, match=f"already started run {first.id}") as e:
            await app.start("a", {"x": 2}, idempotency_key="k")
        assert e.value.run_id == first.id
        with pytest.raises(IdempotencyConflict, match=r"workflow 'a'.*cannot start workflow 'b'"):
            await app.start("b", {"x": 1}, idempotency_key="k")
        # Keys are per tenant: another tenant's key is another run.
        other = await app.start("b", {"x": 1}, idempotency_key="k", tenant="acme")
        assert other.created and other.id != first.id
        assert len(await app.list_runs()) == 2


async def test_every_call_on_one_run_is_scoped_by_tenant(store_url):
    app = App(store=store_url)

    @app.workflow
    async def wait(ctx: Context) -> object:
        return await ctx.wait_for("go")

    async with app:
        run = await app.start("wait", tenant="acme")
        assert run.tenant == "acme"
        await app.signal(run.id, "go", 1, tenant="acme")
        assert await run.result(timeout=10) == 1
        missing = str(uuid.uuid4())
        for run_id in (run.id, missing):  # another tenant's run reads as a missing one
            for call in (
                app.get_run(run_id, tenant="default"),
                app.get_run(run_id, tenant="globex"),
                app.effects(run_id, tenant="globex"),
                app.signal(run_id, "go", 2, tenant="globex"),
                app.cancel(run_id, tenant="globex"),
                app.resume(run_id, tenant="globex"),
            ):
                with pytest.raises(RunNotFound, match=f"no run with id '{run_id}'"):
                    await call
        assert (await app.get_run(run.id, tenant="acme")).status == "succeeded"
        assert len(await app.effects(run.id, tenant="acme")) == 1
        # No tenant: the embedded default's local principal, which may see every tenant's.
        assert (await app.get_run(run.id)).tenant == "acme"

    store = open_store(store_url)
    await store.open()
    try:
        assert await store.get_run(run.id, tenant="globex") is None
        assert (await store.get_run(run.id)).tenant == "acme"  # the kernel's own reads
        with pytest.raises(RunNotFound):
            await store.list_effects(run.id, tenant="globex")
    finally:
        await store.close()


async def test_a_workflow_queue_is_declared_and_an_undeclared_queue_is_refused(store_url):
    app = App(store=store_url)

    @app.workflow(queue="gpu")  # no app.queue("gpu"): the decorator declares it
    async def embed(ctx: Context) -> str:
        return "done"

    async with app:
        assert await (await app.start("embed")).result(timeout=10) == "done"
        with pytest.raises(ConfigError, match=r"queue 'cpu' is not declared.*app.queue\('cpu'\)"):
            await app.start("embed", queue="cpu")
    assert [r.status for r in await app.list_runs()] == ["succeeded"]


async def test_start_before_open_opens_the_app(store_url):
    app = App(store=store_url)

    @app.workflow
    async def wf(ctx: Context) -> str:
        return "ok"

    run = await app.start("wf")  # not opened: the first call opens it
    assert await run.status() == "pending"
    async with app:  # adopts that opening; leaving it closes the store
        assert await run.result(timeout=10) == "ok"
    assert app._opened == 0


# ---- a cancelled waiter does not change what a record's hooks hear -------------------------


async def test_hooks_hear_the_commit_even_when_the_waiter_was_cancelled(store):
    """A run cancelled (timeout, worker stop) while its record is being committed: the
    record's side writes (a model call's usage rows) were committed with it, and those who
    wrote them must hear so, or they write them again (usage counted twice)."""
    (run_id,) = await _claimed_runs(store, 1)
    entered, release = asyncio.Event(), asyncio.Event()
    apply = store.apply

    async def slow_apply(writes):
        entered.set()
        await release.wait()
        return await apply(writes)

    store.apply = slow_apply
    heard: list[bool] = []
    committer = Committer(store)
    fut = committer.submit(_record(run_id), heard.append)
    waiter = asyncio.ensure_future(asyncio.gather(fut))  # as Execution.flush waits
    await entered.wait()
    waiter.cancel()  # the run's task is cancelled while the commit is in flight
    release.set()
    await committer.flush()
    await committer.stop()
    assert fut.cancelled()
    assert heard == [True]
    assert [e.seq for e in await store.list_effects(run_id)] == [1]


async def test_a_model_error_with_a_nul_byte_ends_its_run_after_one_call(store_url, error_of):
    """A model whose error text holds a NUL: the usage row that commits with the effect's
    record is stored (escaped) like any text, so the run ends dead after one call instead
    of replaying the call forever, and a run beside it is untouched."""
    from aiosys.models.providers.local import register_callable

    calls: list[int] = []

    def nul_model(messages: object) -> str:
        calls.append(1)
        raise ValueError("bad byte \x00 in input")

    register_callable("nul-model-test", nul_model)
    app = App(store=store_url, lease=1.0)
    app.models.add_card(
        {"id": "nul-m", "provider": "local", "options": {"callable": "nul-model-test"}}
    )

    @app.step
    async def fine() -> str:
        return "fine"

    @app.workflow
    async def asks(ctx: Context) -> str:
        return (await ctx.models.call("nul-m", "hello")).output

    @app.workflow
    async def neighbour(ctx: Context) -> str:
        return await fine()

    async with app:
        bad = await app.start("asks")
        good = await app.start("neighbour")
        assert await good.result(timeout=20) == "fine"
        with pytest.raises(RunFailed):
            await bad.result(timeout=20)
        row = await app.get_run(bad.id)
    assert row.status == "dead" and row.claims <= 1
    assert "\x00" in error_of(row)["message"]  # kept, not cut short
    assert calls == [1]


async def test_empty_identifiers_are_refused(store_url):
    app = App(store=store_url)

    @app.workflow
    async def wait(ctx: Context) -> object:
        return await ctx.wait_for("go")

    async with app:
        with pytest.raises(InvalidInput, match="idempotency key is empty"):
            await app.start("wait", idempotency_key="")
        with pytest.raises(InvalidInput, match="tenant is empty"):
            await app.start("wait", tenant="")
        run = await app.start("wait")
        with pytest.raises(InvalidInput, match="signal name is empty"):
            await app.signal(run.id, "", 1)
        await app.cancel(run.id)
