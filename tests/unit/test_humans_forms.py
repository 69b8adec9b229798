"""Forms of human tasks: an edit is checked by the form's own model class, found among the
forms this process used and the modules it imported already, never by importing a module a
task names."""

from __future__ import annotations

import sys

import pydantic
import pytest

from aiosys.errors import ConfigError, InvalidInput
from aiosys.humans import forms
from aiosys.humans.tasks import sla_seconds


class Letter(pydantic.BaseModel):
    subject: str
    pages: int = pydantic.Field(gt=0)


def test_an_edit_is_validated_and_dumped_by_the_form() -> None:
    form = forms.describe(Letter)
    assert form is not None and form["ref"] == f"{__name__}:Letter"
    assert form["schema"]["required"] == ["subject", "pages"]
    assert forms.validate_edit(form, {"subject": "s", "pages": "3"}, "t") == {
        "subject": "s",
        "pages": 3,
    }
    with pytest.raises(InvalidInput, match=r"task 't' does not fit its form Letter: pages: "):
        forms.validate_edit(form, {"subject": "s", "pages": 0}, "t")
    assert forms.validate_edit(None, {"any": ("thing",)}, "t") == {"any": ["thing"]}
    with pytest.raises(InvalidInput, match="is not JSON data"):
        forms.validate_edit(None, {"x": object()}, "t")


class Measure(pydantic.BaseModel):
    value: float | None = None


def test_an_edit_holding_nan_is_refused_by_its_path_never_stored_as_null() -> None:
    # The form's model (and any JSON without a form) wrote NaN as null: another value.
    form = forms.describe(Measure)
    with pytest.raises(InvalidInput, match=r"task 't' holds the float nan at \['value'\]"):
        forms.validate_edit(form, {"value": float("nan")}, "t")
    with pytest.raises(InvalidInput, match=r"task 't' holds the float inf at \['w'\]\[1\]"):
        forms.validate_edit(None, {"w": [1.0, float("inf")]}, "t")
    with pytest.raises(InvalidInput, match=r"holds the float -inf at \['m'\]\['value'\]"):
        forms.validate_edit(None, {"m": Measure(value=float("-inf"))}, "t")
    assert forms.validate_edit(form, {"value": None}, "t") == {"value": None}


def test_a_form_of_a_module_not_loaded_is_not_imported() -> None:
    ref = {"ref": "not_imported_anywhere_xyz:Form", "schema": {}}
    with pytest.raises(ConfigError, match="not loaded in this process"):
        forms.validate_edit(ref, {}, "t")
    assert "not_imported_anywhere_xyz" not in sys.modules
    local = {"ref": f"{__name__}:test_x.<locals>.Form", "schema": {}}
    with pytest.raises(ConfigError, match="not loaded"):
        forms.validate_edit(local, {}, "t")


def test_a_form_of_a_module_loaded_already_is_found_by_its_reference() -> None:
    ref = {"ref": f"{__name__}:Letter", "schema": {}}
    forms._seen.clear()  # not remembered: found in this (imported) module
    assert forms.validate_edit(ref, {"subject": "x", "pages": 1}, "t")["pages"] == 1


def test_a_form_must_be_a_pydantic_model_class() -> None:
    with pytest.raises(ConfigError, match="pydantic model class"):
        forms.describe(dict)


@pytest.mark.parametrize(
    ("sla", "seconds"),
    [("2d", 172_800.0), ("90m", 5400.0), (30, 30.0), (None, None)],
)
def test_an_sla_is_a_duration(sla: object, seconds: float | None) -> None:
    assert sla_seconds(sla) == seconds


@pytest.mark.parametrize("sla", ["soon", 0, -5, True, float("nan")])
def test_a_malformed_sla_is_refused(sla: object) -> None:
    with pytest.raises(ConfigError, match="sla"):
        sla_seconds(sla)
