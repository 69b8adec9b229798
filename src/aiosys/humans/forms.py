"""Forms: the pydantic model an ``edit`` decision's data must fit.

A task records its form as a reference (``module:QualifiedName``) and the model's JSON
schema (what a reviewer's tool shows). An edit is validated by the model class itself, so
its validators run and its data is stored as it dumps it. The class is found among the forms
this process has used (``remember``, called when a workflow asks for a task) and the modules
it has already imported (the app's, when a command loads it with ``--app``): a module named
in the store is never imported, as error records never rebuild classes from unknown modules.

A task may take no edit at all (``NO_EDIT``: an approval the gate asks for, which is approved
or rejected): an edit of it is refused with ``InvalidInput``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pydantic
import pydantic_core

from ..errors import ConfigError, InvalidInput, NotSerializable
from ..kernel import serde

_seen: dict[str, type[pydantic.BaseModel]] = {}

#: The form of a task that is approved or rejected, never edited.
NO_EDIT: dict[str, Any] = {"ref": None, "schema": None, "edit": False}


def form_ref(form: type[pydantic.BaseModel]) -> str:
    return f"{form.__module__}:{form.__qualname__}"


def describe(form: Any) -> dict[str, Any] | None:
    """``{"ref", "schema"}`` of ``form`` (a pydantic model class, or None: no form), and the
    class remembered for validating edits in this process. ``ConfigError`` for anything else."""
    if form is None:
        return None
    if not (isinstance(form, type) and issubclass(form, pydantic.BaseModel)):
        raise ConfigError(
            f"a human task's form must be a pydantic model class, not {form!r} "
            "(class Review(pydantic.BaseModel): ...)"
        )
    ref = form_ref(form)
    _seen[ref] = form
    return {"ref": ref, "schema": form.model_json_schema()}


def _resolve(ref: str) -> type[pydantic.BaseModel] | None:
    known = _seen.get(ref)
    if known is not None:
        return known
    module_name, _, qualname = ref.partition(":")
    obj: Any = sys.modules.get(module_name)  # loaded already, or not at all: never imported
    for part in qualname.split("."):
        if obj is None or part == "<locals>":
            return None
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel):
        return obj
    return None


def validate_edit(form: dict[str, Any] | None, data: Any, task: str) -> Any:
    """The edited ``data`` of task ``task`` as it is stored: validated by the form's model
    and dumped to JSON values; as its JSON gives it back when the task has no form.
    ``InvalidInput`` naming each problem for data the form refuses (or that is not JSON:
    a NaN or an infinity too, named by its field path, never stored as ``null``);
    ``ConfigError`` when the form's class is not loaded in this process (complete the task
    where the app's module is imported)."""
    if form is not None and form.get("edit") is False:
        raise InvalidInput(
            f"task {task!r} takes no edit: approve or reject it (it asks for an approval)"
        )
    what = f"the edit of task {task!r}"
    if form is None:  # any JSON: kept as it comes back from its JSON text
        try:
            text = pydantic_core.to_json(data, inf_nan_mode="constants").decode()
            serde.check_finite(text, data, what)
            return json.loads(text)
        except NotSerializable as exc:
            raise InvalidInput(str(exc)) from None
        except (pydantic_core.PydanticSerializationError, ValueError) as exc:
            raise InvalidInput(f"{what} is not JSON data: {exc}") from None
    ref = str(form.get("ref", ""))
    model = _resolve(ref)
    if model is None:
        raise ConfigError(
            f"cannot check the edit of task {task!r}: its form {ref} is not loaded in this "
            "process; decide it where the app's module is imported (aiosys tasks complete "
            "--app module:app, or the app's own process)"
        )
    try:
        edited = model.model_validate(data)
        serde.check_finite(edited.model_dump_json(), edited, what)  # NaN: null otherwise
        return edited.model_dump(mode="json")
    except NotSerializable as exc:
        raise InvalidInput(str(exc)) from None
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(
            f"the edit of task {task!r} does not fit its form {model.__qualname__}: {problems}"
        ) from None


__all__ = ["NO_EDIT", "describe", "form_ref", "validate_edit"]
