"""One value: a workflow receives from an effect the decoded record, on the first execution
as on replay. Annotated outputs are decoded by their annotation both times; unannotated
outputs that would not come back the same are refused when recorded (``NotSerializable``).

Replay is forced by a worker restart: the first app runs the workflow up to a signal wait
and stops; a second app (a new worker, as another process would be) is signalled and
replays the run from its records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from aiosys import App, Context
from aiosys.errors import NotSerializable

pytestmark = pytest.mark.timeout(60)


class Point(pydantic.BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    w: int
    h: int


class Color(enum.IntEnum):
    RED = 1


# kind -> (value the step returns, its annotation, what the workflow must see)
ANNOTATED: dict[str, tuple[Any, Any, Any]] = {
    "datetime": (dt.datetime(2024, 5, 1, 12, 0), dt.datetime, dt.datetime(2024, 5, 1, 12, 0)),
    "date": (dt.date(2024, 5, 1), dt.date, dt.date(2024, 5, 1)),
    "decimal": (Decimal("1.10"), Decimal, Decimal("1.10")),
    "uuid": (uuid.UUID(int=7), uuid.UUID, uuid.UUID(int=7)),
    "bytes": (b"abc", bytes, b"abc"),
    "tuple": ((1, "a"), tuple[int, str], (1, "a")),
    "set": ({1, 2}, set[int], {1, 2}),
    "int_keys": ({1: "a"}, dict[int, str], {1: "a"}),
    "model": (Point(x=1, y=2), Point, Point(x=1, y=2)),
    "dataclass": (Box(1, 2), Box, Box(1, 2)),
    "enum": (Color.RED, Color, Color.RED),
    "float_from_int": (5, float, 5.0),
    # An annotation that is looser than the value decodes it the same way both times.
    "dict_of_dates": ({"at": dt.date(2024, 5, 1)}, dict[str, Any], {"at": "2024-05-01"}),
}

# kind -> (value an unannotated step returns, words the refusal must contain)
REFUSED: dict[str, tuple[Any, str]] = {
    "datetime": (dt.datetime(2024, 5, 1, 12, 0), "datetime.datetime"),
    "date": (dt.date(2024, 5, 1), "datetime.date"),
    "decimal": (Decimal("1.10"), "decimal.Decimal"),
    "uuid": (uuid.UUID(int=7), "uuid.UUID"),
    "bytes": (b"abc", "bytes"),
    "tuple": ((1, 2), "tuple"),
    "set": ({1, 2}, "set"),
    "int_keys": ({1: "a"}, "key of type int (1)"),
    "nested_tuple": ({"a": [1, (2, 3)]}, "tuple at ['a'][1]"),
    "model": (Point(x=1, y=2), "Point"),
    "dataclass": (Box(1, 2), "Box"),
    "enum": (Color.RED, "Color"),
    "nan": (float("nan"), "is the float nan"),
    "inf": ({"v": float("inf")}, "holds the float inf at ['v']"),
}


def _typed(value: Any) -> tuple[str, Any]:
    return (type(value).__qualname__, value)


def values_app(store_url: str, seen: list[dict[str, Any]]) -> App:
    app = App(store=store_url, lease=1.0)

    def make_annotated(kind: str) -> Any:
        value, annotation, _ = ANNOTATED[kind]

        def produce() -> Any:
            return value

        produce.__annotations__["return"] = annotation
        return produce

    decorated = {kind: app.step(name=f"dec_{kind}")(make_annotated(kind)) for kind in ANNOTATED}
    plain = {kind: make_annotated(kind) for kind in ANNOTATED}

    @app.workflow
    async def annotated(ctx: Context) -> str:
        got: dict[str, Any] = {}
        for kind in ANNOTATED:
            got[f"app.step {kind}"] = _typed(await decorated[kind]())
            got[f"ctx.step {kind}"] = _typed(await ctx.step(plain[kind], name=f"ctx_{kind}"))
        partial = functools.partial(plain["datetime"])
        got["ctx.step partial"] = _typed(await ctx.step(partial, name="partial"))
        seen.append(got)
        await ctx.wait_for("go")
        return "done"

    @app.workflow
    async def unannotated(ctx: Context) -> str:
        got: dict[str, Any] = {}
        for kind, (value, _) in REFUSED.items():

            def produce(value: Any = value):  # type: ignore[no-untyped-def]  # no annotation
                return value

            try:
                got[kind] = await ctx.step(produce, name=f"make_{kind}")
            except NotSerializable as exc:
                got[kind] = ("refused", str(exc))
        seen.append(got)
        await ctx.wait_for("go")
        return "done"

    return app


async def _first_run_then_replay(store_url: str, workflow: str, wait_status: Any) -> list[Any]:
    seen: list[dict[str, Any]] = []
    first = values_app(store_url, seen)
    async with first:
        run = await first.start(workflow)
        await wait_status(first, run.id, "waiting")
    second = values_app(store_url, seen)  # a new worker: the run is replayed from its records
    async with second:
        await second.signal(run.id, "go")
        assert await second.handle(run.id).result(timeout=20) == "done"
    assert len(seen) == 2
    return seen


async def test_annotated_outputs_are_decoded_by_their_annotation_on_first_run_and_replay(
    store_url, wait_status
):
    first, replay = await _first_run_then_replay(store_url, "annotated", wait_status)
    assert first == replay
    for kind, (_, _, expected) in ANNOTATED.items():
        for how in ("app.step", "ctx.step"):
            assert first[f"{how} {kind}"] == _typed(expected), (how, kind)
    assert first["ctx.step partial"] == _typed(dt.datetime(2024, 5, 1, 12, 0))


async def test_unannotated_outputs_that_would_not_round_trip_are_refused_when_recorded(
    store_url, wait_status
):
    first, replay = await _first_run_then_replay(store_url, "unannotated", wait_status)
    assert first == replay  # the refusal is recorded, and replayed as the same error
    for kind, (_, words) in REFUSED.items():
        verdict, message = first[kind]
        assert verdict == "refused", kind
        assert words in message, (kind, message)
        assert f"make_{kind}" in message
        assert "annotate" in message or "NaN and infinities are not JSON" in message


async def test_plain_json_output_is_a_decoded_copy_never_the_live_object(store_url):
    live = {"items": [1, 2.5, "x", None, True, {"k": []}]}
    app = App(store=store_url)

    @app.step
    async def give():  # type: ignore[no-untyped-def]  # unannotated: plain JSON passes
        return live

    @app.workflow
    async def wf(ctx: Context) -> bool:
        value = await give()
        value["items"].append("added by the workflow")
        return value is not live and value["items"][:6] == live["items"]

    async with app:
        assert await app.run("wf") is True
    assert live == {"items": [1, 2.5, "x", None, True, {"k": []}]}


async def test_value_its_annotation_refuses_is_refused_when_recorded(store_url, error_of):
    app = App(store=store_url)

    @app.step
    async def count() -> int:
        return "many"  # type: ignore[return-value]

    @app.step
    async def ratio() -> float:
        return float("nan")

    @app.workflow
    async def wf(ctx: Context) -> list[str]:
        messages = []
        for step in (count, ratio):
            try:
                await step()
            except NotSerializable as exc:
                messages.append(str(exc))
        return messages

    async with app:
        messages = await app.run("wf")
    assert "the output of step" in messages[0]
    assert "does not fit its return annotation int" in messages[0]
    assert '"many"' in messages[0]
    assert "NaN and infinities are not JSON" in messages[1]


class Blob(pydantic.BaseModel):
    data: bytes  # the model's own config: UTF-8 text


async def test_annotated_bytes_round_trip_losslessly_and_models_say_how(
    store_url, error_of, wait_status
):
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    seen: list[Any] = []
    app = App(store=store_url, max_parked=0)

    @app.step
    def header() -> bytes:
        return png

    @app.step
    def parts() -> dict[str, list[bytes]]:
        return {"a": [png, b""]}

    @app.step
    def blob() -> Blob:
        return Blob(data=png)

    @app.workflow
    async def wf(ctx: Context) -> str:
        got = (await header(), await parts())
        seen.append(got)
        await ctx.wait_for("go")  # parks for sure: the wake replays the run
        return "ok"

    @app.workflow
    async def model(ctx: Context) -> int:
        return len((await blob()).data)

    async with app:
        first = await app.start("wf")
        await wait_status(app, first.id, "waiting")
        await app.signal(first.id, "go")
        assert await first.result(timeout=10) == "ok"
        run = await app.start("model")
        with pytest.raises(Exception, match="ser_json_bytes='base64'"):
            await run.result(timeout=10)
    assert len(seen) >= 2
    assert all(s == (png, {"a": [png, b""]}) for s in seen)
