"""JSON in and out of the store: outputs, inputs and results of runs and effects.

One value. What a workflow receives from an effect is the decoded record, on the first
execution as on replay: ``record`` turns an effect's live output into the JSON text to store
*and* the value to hand back, which is exactly what ``loads`` will give on replay. The rule:

- With a return annotation (``@app.step``/``ctx.step`` read the function's; other effects
  pass ``returns=``) the value is encoded (pydantic: models, dataclasses, dates, ``Decimal``,
  ``UUID``, tuples, sets, ``bytes`` as base64 unless a model's own config says otherwise,
  ...) and the text is validated back through the annotation
  (pydantic ``TypeAdapter``, JSON mode), the first time as on replay. A value the annotation
  does not accept back is refused when recorded (``NotSerializable``).
- Without one (or ``Any``, or an annotation pydantic cannot build a validator for) the value
  must be plain JSON, exactly those types at every depth: ``dict`` with ``str`` keys,
  ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``. Anything whose decoded form would
  differ (a tuple, a set, ``Decimal``, ``datetime``/``date``/``UUID``/``bytes``, a pydantic
  model or dataclass, an enum, a ``str``/``int``/``dict`` subclass, non-``str`` dict keys) is
  refused when recorded, naming where it is and how to annotate it.
- Never NaN or infinities (not JSON: other readers of the store choke on them), annotated or
  not, at any depth: in a pydantic model or dataclass too, which pydantic would write as
  ``null`` (another value) by the model's own config. Refused naming the field path.

Cost: one encode per effect. A plain scalar (or a value of exactly its scalar annotation) is
handed back as it is; a plain container is decoded from the text just encoded (C ``json``);
an annotated value is validated from that text. A value that is not plain JSON and whose
text holds ``null``, ``NaN`` or ``Infinity`` is walked once for NaN (``check_finite``).

Errors are recorded by ``error_records`` (re-exported here).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import typing
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import pydantic
import pydantic_core

from ..errors import ConfigError, NotSerializable
from .error_records import (
    dump_error,
    error_record,
    rebuild_error,
    record_error,
    recorded_traceback,
)

_SCALARS: frozenset[type] = frozenset({str, int, bool, float, type(None)})


def dumps(value: Any, what: str) -> str:
    """JSON text of ``value`` (pydantic models, dataclasses, dates are understood).
    ``what`` names the value in the error: "the output of step 'ocr'". NaN and infinities
    are refused (``NotSerializable`` naming where: ``holds the float nan at ['p']['x']``) at
    any depth, in a pydantic model or dataclass too, never written as ``null``: a signal's
    payload, a task's data or a run's result would otherwise be another value than sent."""
    text = _encode(value, what)
    check_finite(text, value, what)
    return text


def check_finite(text: str, value: Any, what: str) -> None:
    """Raise ``NotSerializable`` naming where (``holds the float nan at ['p']['x']``) when
    ``value``, whose JSON is ``text``, holds NaN or an infinity at any depth. Encoded with
    ``inf_nan_mode="constants"``, a plain value shows them as ``NaN``/``Infinity``; but a
    pydantic model or dataclass writes its floats by its own config whatever the encoder is
    told (``ser_json_inf_nan``: ``null`` by default, or strings), so a text holding any of
    those words, of a value that is not plain JSON, has the value walked (``_non_finite_at``).
    A text without them (the common case) holds no such float: nothing is walked."""
    if ("NaN" in text or "Infinity" in text or "null" in text) and not _plain(value):
        where = _non_finite_at(value)
        if where is None and _has_non_finite(text):  # a custom serializer wrote one
            where = "holds NaN or an infinity"
        if where is not None:
            raise _non_finite(what, where)


def record(value: Any, annotation: Any, what: str) -> tuple[str, Any]:
    """``(text, decoded)``: the JSON to record for an effect's output and the value the
    workflow receives, equal to what ``loads(text, annotation)`` returns on replay. Raises
    ``NotSerializable`` for a value that would not come back the same (module docstring)."""
    t = type(value)
    if t in _SCALARS and (t is annotation or annotation is None or annotation is Any):
        if t is float and not math.isfinite(value):
            raise _non_finite(what, f"is the float {value!r}")
        return dumps(value, what), value
    adapter = _adapter(annotation)
    if adapter is None:
        text = _encode(value, what)  # first: it refuses cycles and unknown objects
        if _plain(value):  # so it holds no NaN or infinity
            return text, json.loads(text)
        check_finite(text, value, what)
        where = _not_plain(value, "") or "is not plain JSON"
        raise NotSerializable(
            f"{what} {where}, which does not come back the same from the JSON record "
            "(a workflow would see another value after a replay); return plain JSON "
            "(dict with str keys, list, str, int, float, bool, None), or annotate the "
            "function's return type (e.g. `-> datetime`, `-> tuple[int, str]`, "
            "`-> MyModel`) so the record is decoded to it"
        )
    try:
        text = pydantic_core.to_json(
            value, bytes_mode=_bytes_mode(adapter), inf_nan_mode="constants"
        ).decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise NotSerializable(_unserializable(what, value, annotation, exc)) from None
    check_finite(text, value, what)
    try:
        return text, adapter.validate_json(text)
    except pydantic.ValidationError as exc:
        raise NotSerializable(
            f"{what} does not fit its return annotation {_show(annotation)}: it was "
            f"recorded as {_clip(text)}, which the annotation refuses "
            f"({exc.error_count()} error(s): {_first_error(exc)}); return a value of that "
            "type or fix the annotation"
        ) from None


def loads(text: str | None, annotation: Any = None) -> Any:
    """Decode recorded JSON, typed by ``annotation`` when one is known."""
    if text is None:
        return None
    adapter = _adapter(annotation)
    if adapter is None:
        return json.loads(text)
    return adapter.validate_json(text)


def returns_of(fn: Callable[..., Any], name: str) -> Any:
    """The return annotation of ``fn`` as ``@app.step`` reads it (resolved type hints),
    looking through ``functools.partial`` and into a callable object's ``__call__``; None
    when there is none. An annotation that names something undefined is a ``ConfigError``."""
    try:
        return _returns_cached(fn)
    except TypeError:  # an unhashable callable
        return _returns(fn)
    except NameError as exc:
        raise ConfigError(
            f"step {name!r}: the return annotation of {fn!r} cannot be resolved ({exc}); "
            "import the names it uses at module level"
        ) from None


# ---- helpers ------------------------------------------------------------------------------


def _encode(value: Any, what: str) -> str:
    """JSON text of ``value``, NaN and infinities as constants where the encoder decides
    (``check_finite`` finds them, and those a model or dataclass wrote its own way)."""
    try:
        return pydantic_core.to_json(value, inf_nan_mode="constants").decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise NotSerializable(
            f"{what} is a {type(value).__name__}, which cannot be stored as JSON ({exc}); "
            "return JSON-compatible data (dict, list, str, numbers, bool, None) or a "
            "pydantic model"
        ) from None


_ANY: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)


def _non_finite_at(value: Any) -> str | None:
    """Where ``value`` holds a NaN or an infinity, as ``_not_plain`` says it (``holds the
    float nan at ['p']['x']``), found in its Python-mode dump (pydantic's: models and
    dataclasses as dicts of their fields by name; tuples, sets and dicts kept); None if
    nowhere. Walked with a stack, first in document order."""
    try:
        tree = _ANY.dump_python(value)
    except pydantic_core.PydanticSerializationError:  # encoded already: not expected
        tree = value
    stack: list[tuple[Any, str]] = [(tree, "")]
    while stack:
        v, at = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"holds the float {v!r} at {at or 'top level'}"
        elif isinstance(v, dict):
            stack.extend((x, f"{at}[{k!r}]") for k, x in reversed(list(v.items())))
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend((x, f"{at}[{i}]") for i, x in reversed(list(enumerate(v))))
    return None


@lru_cache(maxsize=1024)
def _returns_cached(fn: Callable[..., Any]) -> Any:
    return _returns(fn)


def _returns(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if not inspect.isroutine(fn) and not isinstance(fn, type):
        fn = type(fn).__call__  # a callable object: its __call__ says what it returns
    try:
        return typing.get_type_hints(fn).get("return")
    except TypeError:  # not something that carries annotations
        return None


def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    """The validator of ``annotation``; None for no annotation, ``Any``, or one pydantic
    cannot build a validator for (the value must then be plain JSON)."""
    if annotation is None or annotation is Any:
        return None
    try:
        return _adapter_cached(annotation)
    except TypeError:  # an unhashable annotation (e.g. Annotated with unhashable metadata)
        return _build_adapter(annotation)


@lru_cache(maxsize=1024)
def _adapter_cached(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    return _build_adapter(annotation)


# ``bytes`` are recorded as base64 (lossless) wherever an annotation takes a config: the
# whole annotation but models, dataclasses and TypedDicts, which bring their own config
# (theirs is followed both ways: UTF-8 text unless they say ``ser_json_bytes="base64"``).
_BYTES_BASE64 = pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
_BASE64_ADAPTERS: weakref.WeakSet[pydantic.TypeAdapter[Any]] = weakref.WeakSet()  # built with it


def _build_adapter(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation, config=_BYTES_BASE64)
        _BASE64_ADAPTERS.add(adapter)
        return adapter
    except pydantic.PydanticUserError:  # a model, dataclass or TypedDict: its own config
        pass
    except (TypeError, NameError):
        return None
    try:
        return pydantic.TypeAdapter(annotation)
    except (TypeError, pydantic.PydanticUserError, NameError):
        return None


def _bytes_mode(adapter: pydantic.TypeAdapter[Any]) -> typing.Literal["utf8", "base64"]:
    return "base64" if adapter in _BASE64_ADAPTERS else "utf8"


def _unserializable(what: str, value: Any, annotation: Any, exc: Exception) -> str:
    advice = "return a value of that type or fix the annotation"
    if "utf-8" in str(exc):
        advice = (
            "bytes in a pydantic model or dataclass are recorded as UTF-8 text by default; "
            "give it `ser_json_bytes='base64', val_json_bytes='base64'` in its config "
            "(a model's `model_config = ConfigDict(...)`, a dataclass's "
            "`__pydantic_config__`) so any bytes are recorded"
        )
    return (
        f"{what} is a {type(value).__name__} that its return annotation "
        f"{_show(annotation)} cannot record as JSON ({exc}); {advice}"
    )


def _plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON, exactly (the fast check; ``_not_plain`` says where it
    is not). ``value`` has no cycles: it was encoded first."""
    stack = [value]
    pop, extend, scalars = stack.pop, stack.extend, _SCALARS
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            for k in v:
                if type(k) is not str:
                    return False
            extend(v.values())
        elif t is list:
            extend(v)
        elif t is float:
            if v - v != 0.0:  # NaN or an infinity
                return False
        elif t not in scalars:
            return False
    return True


def _not_plain(value: Any, path: str, depth: int = 0) -> str | None:
    """None if ``value`` is plain JSON; else what and where the first other thing is."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                return (
                    f"has a key of type {type(k).__name__} ({_clip(repr(k))}) at "
                    f"{path or 'top level'}"
                )
            where = _not_plain(v, f"{path}[{k!r}]", depth + 1)
            if where is not None:
                return where
        return None
    if t is list:
        for i, v in enumerate(value):
            where = _not_plain(v, f"{path}[{i}]", depth + 1)
            if where is not None:
                return where
        return None
    if t in _SCALARS:
        if t is float and not math.isfinite(value):
            return f"holds the float {value!r} at {path or 'top level'}"
        return None
    at = f" at {path}" if path else ""
    return f"is a {t.__module__}.{t.__qualname__}{at}".replace("builtins.", "")


def _has_non_finite(text: str) -> bool:
    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return True
    return False


def _non_finite(what: str, where: str) -> NotSerializable:
    return NotSerializable(
        f"{what} {where}: NaN and infinities are not JSON, so they cannot be recorded; "
        "use None (null) or a finite number (or a string) instead"
    )


def _show(annotation: Any) -> str:
    return getattr(annotation, "__qualname__", None) or repr(annotation)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _first_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    e = errors[0]
    loc = ".".join(str(p) for p in e["loc"])
    return f"{loc}: {e['msg']}" if loc else str(e["msg"])


__all__ = [
    "dump_error",
    "dumps",
    "error_record",
    "loads",
    "rebuild_error",
    "record",
    "record_error",
    "recorded_traceback",
    "returns_of",
]
