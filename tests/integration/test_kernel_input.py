"""Bad input and bad output: refused with an error naming what is wrong, and harmless to
every other run."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from aiosys import App, Context, InvalidInput, RunFailed, UnknownWorkflow
from aiosys.errors import NotSerializable

pytestmark = pytest.mark.timeout(60)


class Opaque:
    """Something that is not JSON."""


def strict_app(store_url: str) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    async def make_handle(name: str) -> Opaque:
        return Opaque()

    @app.workflow
    async def invoice(ctx: Context, customer: str, amount: int, currency: str = "EUR") -> str:
        return f"{customer} {amount} {currency}"

    @app.workflow
    async def leaky(ctx: Context) -> str:
        await make_handle("db")
        return "unreachable"

    @app.workflow
    async def bystander(ctx: Context) -> str:
        return await ctx.wait_for("go")

    return app


async def test_bad_starts_are_refused_and_runs_in_flight_are_unaffected(
    store_url, wait_status, error_of
):
    app = strict_app(store_url)
    async with app:
        other = await app.start("bystander")
        await wait_status(app, other.id, "waiting")

        with pytest.raises(UnknownWorkflow) as unknown:
            await app.start("invoce", {"customer": "acme", "amount": 1})
        assert "invoce" in str(unknown.value)
        for known in ("invoice", "leaky", "bystander"):
            assert known in str(unknown.value)

        with pytest.raises(UnknownWorkflow) as no_version:
            await app.start("invoice", {"customer": "acme", "amount": 1}, version="9")
        assert "9" in str(no_version.value)

        with pytest.raises(InvalidInput) as wrong_type:
            await app.start("invoice", {"customer": "acme", "amount": "lots"})
        assert "amount" in str(wrong_type.value)
        assert "customer" not in str(wrong_type.value)

        with pytest.raises(InvalidInput) as missing:
            await app.start("invoice", {"amount": 3})
        assert "customer" in str(missing.value)

        with pytest.raises(InvalidInput) as extra:
            await app.start("invoice", {"customer": "acme", "amount": 3, "discount": 5})
        assert "discount" in str(extra.value)

        with pytest.raises(InvalidInput):
            await app.start("invoice", ["acme", 3])

        # Nothing of the refused starts reached the store.
        assert [r.id for r in await app.list_runs()] == [other.id]

        await app.signal(other.id, "go", "still fine")
        assert await other.result(timeout=10) == "still fine"

        good = await app.start("invoice", {"customer": "acme", "amount": "7"})
        assert await good.result(timeout=10) == "acme 7 EUR"  # "7" fits `int`, as pydantic says


async def test_step_output_that_is_not_json_makes_the_run_dead_naming_step_and_type(
    store_url, wait_status, error_of
):
    app = strict_app(store_url)
    async with app:
        other = await app.start("bystander")
        await wait_status(app, other.id, "waiting")
        run = await app.start("leaky")
        with pytest.raises(RunFailed):
            await run.result(timeout=10)
        row = await app.get_run(run.id)
        effects = await app.effects(run.id)
        await app.signal(other.id, "go", "unaffected")
        assert await other.result(timeout=10) == "unaffected"
    assert row.status == "dead"
    error = error_of(row)
    assert error["type"] == "aiosys.errors.NotSerializable"
    assert "make_handle" in error["message"]
    assert "Opaque" in error["message"]
    assert [(e.seq, e.status) for e in effects] == [(1, "error")]


async def test_nan_and_infinities_are_refused_naming_where_never_stored_as_null(
    store_url, wait_status
):
    # A run's input, a signal's payload and a run's result were written with NaN as null
    # (pydantic's default): a float parameter's run was accepted, then failed on its first
    # execution (null is no float); the others silently became another value.
    app = App(store=store_url)

    @app.workflow
    async def scaled(ctx: Context, x: float = 0.0, extra: Any = None) -> float:
        return x

    @app.workflow
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for("go", timeout=60)

    @app.workflow
    async def gives_nan(ctx: Context) -> Any:
        return {"ratio": [1.0, float("nan")]}

    async with app:
        for value in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(InvalidInput) as bad:
                await app.start("scaled", {"x": value})
            assert "x" in str(bad.value) and "finite" in str(bad.value), bad.value
        with pytest.raises(InvalidInput) as nested:
            await app.start("scaled", {"extra": {"w": [1, float("inf")]}})
        assert "inf" in str(nested.value) and "'w'" in str(nested.value), nested.value
        assert "NaN and infinities are not JSON" in str(nested.value)
        assert [r for r in await app.list_runs(workflow="scaled") if r.workflow == "scaled"] == []

        run = await app.start("waits")
        await wait_status(app, run.id, "waiting")
        with pytest.raises(NotSerializable) as payload:
            await app.signal(run.id, "go", {"p": float("nan")})
        assert "signal 'go'" in str(payload.value) and "nan" in str(payload.value)
        await app.signal(run.id, "go", {"p": 0.5})
        assert await run.result(timeout=30) == {"p": 0.5}

        failed = await app.start("gives_nan")
        await wait_status(app, failed.id, "failed")
        error = (await failed.row()).error
        assert "NaN and infinities are not JSON" in str(error), error


class Reading(pydantic.BaseModel):
    value: float | None = None


async def test_nan_inside_a_model_is_refused_by_its_field_path_never_stored_as_null(
    store_url, wait_status, error_of
):
    # pydantic writes a model's NaN by the model's config (null), whatever the encoder is
    # told: a run's input, a signal's payload and a run's result holding a model with one were
    # stored as null, and the run went on with None.
    app = App(store=store_url)

    @app.workflow
    async def takes(ctx: Context, reading: Reading) -> Any:
        return reading.value

    @app.workflow
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for("go", timeout=60)

    @app.workflow
    async def gives(ctx: Context) -> Reading:
        return Reading(value=float("inf"))

    async with app:
        for sent in (Reading(value=float("nan")), {"value": float("nan")}):
            with pytest.raises(InvalidInput) as bad:
                await app.start("takes", {"reading": sent})
            assert "holds the float nan at ['reading']['value']" in str(bad.value), bad.value
        assert await app.list_runs(workflow="takes") == []

        run = await app.start("waits")
        await wait_status(app, run.id, "waiting")
        with pytest.raises(NotSerializable) as payload:
            await app.signal(run.id, "go", {"r": [Reading(value=float("-inf"))]})
        assert "signal 'go' holds the float -inf at ['r'][0]['value']" in str(payload.value)
        await app.signal(run.id, "go", Reading(value=0.5))
        assert await run.result(timeout=30) == {"value": 0.5}

        failed = await app.start("gives")
        row = await wait_status(app, failed.id, "failed")
        message = error_of(row)["message"]
        assert "the result of workflow 'gives' holds the float inf at ['value']" in message
