"""NaN and infinities are never recorded, whatever value type holds them (``kernel.serde``).

pydantic writes a model's (or a pydantic dataclass's) NaN by the model's own config, ``null``
by default, whatever the encoder is asked: a run's result, a signal's payload or a task's data
that held one was stored as ``null`` (another value), and an annotated effect output whose
annotation takes ``None`` came back as ``None``. Each value type is refused by name, with the
field path, through each way serde writes: ``dumps`` (results, payloads, task data),
``record`` with and without an annotation (effect outputs), ``check_finite`` (run inputs).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, TypedDict

import pydantic
import pytest

from aiosys.errors import NotSerializable
from aiosys.kernel import serde

NAN, INF = float("nan"), float("inf")


class Point(pydantic.BaseModel):
    x: float


class Maybe(pydantic.BaseModel):
    x: float | None = None  # null validates back: the NaN silently became None


class Route(pydantic.BaseModel):
    start: Point
    stops: list[Point] = []


class AsStrings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(ser_json_inf_nan="strings")
    x: float


@pydantic.dataclasses.dataclass
class PydanticBox:
    w: float


@dataclasses.dataclass
class Box:
    w: float


class Pair(NamedTuple):
    a: float
    b: float


class Reading(TypedDict):
    v: float


# kind -> (value, its annotation, where the refusal must say it is)
CASES: dict[str, tuple[Any, Any, str]] = {
    "model": (Point(x=NAN), Point, "holds the float nan at ['x']"),
    "model_optional_field": (Maybe(x=INF), Maybe, "holds the float inf at ['x']"),
    "nested_models": (
        Route(start=Point(x=1.0), stops=[Point(x=2.0), Point(x=-INF)]),
        Route,
        "holds the float -inf at ['stops'][1]['x']",
    ),
    "model_writing_strings": (AsStrings(x=NAN), AsStrings, "holds the float nan at ['x']"),
    "pydantic_dataclass": (PydanticBox(w=NAN), PydanticBox, "holds the float nan at ['w']"),
    "dataclass": (Box(w=INF), Box, "holds the float inf at ['w']"),
    "named_tuple": (Pair(1.0, NAN), Pair, "holds the float nan at [1]"),
    "typed_dict": ({"v": NAN}, Reading, "holds the float nan at ['v']"),
    "tuple": ((1.0, NAN), tuple[float, float], "holds the float nan at [1]"),
    "set": ({NAN}, set[float], "holds the float nan at [0]"),
    "int_keys": ({7: INF}, dict[int, float], "holds the float inf at [7]"),
    "optional_float": ([None, NAN], list[float | None], "holds the float nan at [1]"),
    "model_in_dict": ({"p": Point(x=NAN)}, dict[str, Point], "holds the float nan at ['p']['x']"),
    "model_in_any": ({"p": [Maybe(x=NAN)]}, Any, "holds the float nan at ['p'][0]['x']"),
}


def _refused(call: Any) -> str:
    with pytest.raises(NotSerializable) as refused:
        call()
    message = str(refused.value)
    assert "NaN and infinities are not JSON" in message, message
    return message


@pytest.mark.parametrize("kind", list(CASES))
def test_a_non_finite_float_is_refused_by_its_path_by_dumps(kind: str) -> None:
    value, _, where = CASES[kind]
    assert f"the result {where}:" in _refused(lambda: serde.dumps(value, "the result"))


@pytest.mark.parametrize("kind", list(CASES))
def test_a_non_finite_float_is_refused_by_its_path_when_recorded_annotated(kind: str) -> None:
    value, annotation, where = CASES[kind]
    message = _refused(lambda: serde.record(value, annotation, "the output"))
    assert f"the output {where}:" in message


@pytest.mark.parametrize("kind", list(CASES))
def test_a_non_finite_float_is_refused_by_its_path_when_recorded_unannotated(kind: str) -> None:
    value, _, where = CASES[kind]
    assert f"the output {where}:" in _refused(lambda: serde.record(value, None, "the output"))


@pytest.mark.parametrize("kind", list(CASES))
def test_a_non_finite_float_is_refused_by_its_path_by_check_finite(kind: str) -> None:
    # How a run's input is checked: its JSON as the input model wrote it, and its dump.
    value, _, where = CASES[kind]
    model = pydantic.create_model("Input", v=(Any, ...))(v=value)
    text = model.model_dump_json()
    assert "NaN" not in text or kind == "model_writing_strings"  # the model wrote null
    message = _refused(lambda: serde.check_finite(text, model.model_dump(), "the input"))
    inside = where.replace(" at ", " at ['v']")
    assert f"the input {inside}:" in message


def test_finite_values_and_real_nulls_are_recorded_as_they_are() -> None:
    value = {"a": None, "p": Maybe(), "r": Route(start=Point(x=1.5))}
    text = serde.dumps(value, "v")
    assert text == '{"a":null,"p":{"x":null},"r":{"start":{"x":1.5},"stops":[]}}'
    assert serde.record(Maybe(), Maybe, "v") == ('{"x":null}', Maybe())
    assert serde.record([None, 2.0], list[float | None], "v")[1] == [None, 2.0]
