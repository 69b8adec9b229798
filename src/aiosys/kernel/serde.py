"""JSON in and out of the store: outputs, inputs and errors of runs and effects."""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from typing import Any

import pydantic
import pydantic_core

from ..errors import AiosysError, NotSerializable


def dumps(value: Any, what: str) -> str:
    """JSON text of ``value`` (pydantic models, dataclasses, dates are understood).
    ``what`` names the value in the error: "the output of step 'ocr'"."""
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise NotSerializable(
            f"{what} is a {type(value).__name__}, which cannot be stored as JSON ({exc}); "
            "return JSON-compatible data (dict, list, str, numbers, bool, None) or a "
            "pydantic model"
        ) from None


@lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def loads(text: str | None, annotation: Any = None) -> Any:
    """Decode recorded JSON, typed by ``annotation`` when one is known."""
    if text is None:
        return None
    value = json.loads(text)
    if annotation is None or annotation is Any:
        return value
    try:
        return _adapter(annotation).validate_python(value)
    except TypeError:  # an annotation pydantic cannot build a validator for
        return value


def error_record(exc: BaseException, *, transient: bool | None = None) -> dict[str, Any]:
    cls = type(exc)
    rec: dict[str, Any] = {"type": f"{cls.__module__}.{cls.__qualname__}", "message": str(exc)}
    if transient is not None:
        rec["transient"] = transient
    return rec


def dump_error(exc: BaseException, *, transient: bool | None = None) -> str:
    return json.dumps(error_record(exc, transient=transient))


class RecordedError(AiosysError):
    """A recorded error whose original class cannot be rebuilt in this process."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def rebuild_error(text: str) -> BaseException:
    """The exception an error record describes: its own class when it can be imported and
    built from the message, else ``RecordedError``."""
    rec = json.loads(text)
    type_name, message = rec.get("type", "Exception"), rec.get("message", "")
    module, _, qualname = type_name.rpartition(".")
    try:
        obj: Any = importlib.import_module(module or "builtins")
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, Exception):
            return obj(message)
    except Exception:
        pass
    return RecordedError(type_name, message)
