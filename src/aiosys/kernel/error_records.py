"""Errors recorded as structure, and rebuilt so that ``except`` clauses behave as they did.

A record is one JSON object (a run's ``error`` column, an effect's ``error`` column)::

    {"type": "json.decoder.JSONDecodeError",           # module.qualname of the class
     "message": "Expecting value: line 1 column 1 (char 0)",   # str(exc)
     "transient": false,                                # effects only: how retry saw it
     "mro": ["json.decoder.JSONDecodeError", "builtins.ValueError", "builtins.Exception",
             "builtins.BaseException"],                 # the class and its bases, in MRO order
     "args": ["Expecting value: line 1 column 1 (char 0)"],
     "attrs": {"msg": "Expecting value", "doc": "not json", "pos": 0, "lineno": 1, ...},
     "omitted": ["attrs.response"],                     # what could not be kept, by name
     "notes": ["..."],                                  # ``add_note`` texts, if any
     "traceback": "Traceback (most recent call last): ...",
     "cause": {...a record...},                         # ``raise ... from``
     "context": {...a record...}}                       # the implicit context, if not suppressed

``type`` and ``message`` are always there (the CLI and ``RunFailed`` read them); the other
keys are absent when empty.

What is kept: ``args`` and instance attributes (``__dict__``, dunder names excepted) whose
values are plain JSON (``dict`` with ``str`` keys, ``list``, ``str``, ``int``, finite
``float``, ``bool``, ``None``, exactly those types). A non-JSON argument is kept as its
``repr`` (a string) and named in ``omitted``; a non-JSON attribute is left out and named
there. Sizes are capped so a record stays small whatever the error carries: a string
(message, argument, attribute) keeps its first ``MAX_TEXT`` characters; an argument or
attribute whose JSON is longer is left out; at most ``MAX_ATTRS`` attributes; the traceback
keeps its first and last lines within ``MAX_TRACEBACK`` characters; the cause/context chain
stops after ``MAX_DEPTH`` links. Recording never fails because of the error itself: a
``str()`` or ``repr()`` that raises gives ``<unprintable ApiError>``.

Rebuilding never imports anything and runs no ``__init__``. A class named by a record is
taken only from a *safe* module that this process has already imported (``sys.modules``):

- ``aiosys`` and its submodules;
- the standard library (``sys.stdlib_module_names``, ``builtins`` included);
- the app's own modules: every module in the top-level package of a registered workflow or
  step function (the kernel ``App`` collects them as it registers; ``App.safe_modules``).

The instance is made as Python unpickles an exception: ``cls.__new__(cls, *args)`` (which
sets ``args`` and, for ``OSError``, ``errno``/``strerror``), then the recorded attributes are
written to its ``__dict__``; ``__cause__``/``__context__``/``__notes__`` are rebuilt from
theirs. A class from a module that is not safe (a third-party library, a class defined inside
a function), or whose ``__new__`` refuses the recorded arguments, is replaced by a *stand-in*:
a class of the same name, module and qualname built on the nearest safe, constructible
classes of the recorded MRO, so ``except ValueError`` still catches a stand-in of
``requests.HTTPError`` (an ``IOError``), though ``except requests.HTTPError`` does not.
A class that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, cancellation)
is never raised again into a workflow: it rebuilds as a stand-in on ``Exception``.
The rebuilt error keeps the recorded traceback text (``recorded_traceback``), which is what
is recorded again if the rebuilt error ends the run.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
import types
from collections.abc import Collection
from functools import lru_cache
from typing import Any

MAX_TEXT = 4_000  # characters kept of a message, an argument or an attribute string
MAX_VALUE = 4_000  # characters of JSON kept for one argument or attribute
MAX_ATTRS = 50  # attributes kept per error
MAX_TRACEBACK = 16_000  # characters kept of a traceback (its head and its tail)
MAX_DEPTH = 8  # links of the cause/context chain kept

_TRACEBACK_ATTR = "__aiosys_traceback__"  # the recorded traceback text of a rebuilt error
_C_FIELDS = (types.MemberDescriptorType, types.GetSetDescriptorType)
_ALWAYS_SAFE = frozenset(sys.stdlib_module_names) | {"aiosys", "builtins"}


# ---- recording ---------------------------------------------------------------------------


def error_record(exc: BaseException, *, transient: bool | None = None) -> dict[str, Any]:
    """The record of ``exc`` (see the module docstring); never raises because of ``exc``."""
    try:
        rec = _record(exc, [], 0)
    except Exception:  # an error object too strange to walk: keep what is certain
        rec = {"type": _name(type(exc)), "message": _text(_safe_str(exc))}
    if transient is not None:
        rec["transient"] = transient
    return rec


def dump_error(exc: BaseException, *, transient: bool | None = None) -> str:
    """The record of ``exc`` as JSON text (ASCII only: storable in any text column)."""
    return json.dumps(error_record(exc, transient=transient))


def _record(exc: BaseException, seen: list[BaseException], depth: int) -> dict[str, Any]:
    seen.append(exc)
    cls: type = type(exc)
    rec: dict[str, Any] = {"type": _name(cls), "message": _text(_safe_str(exc))}
    rec["mro"] = [_name(c) for c in cls.__mro__ if c is not object]
    omitted: list[str] = []
    args: list[Any] = []
    for i, arg in enumerate(_safe_args(exc)):
        kept = _jsonable(arg)
        if kept is _NO:
            omitted.append(f"args[{i}]")
            kept = _text(_safe_repr(arg))
        args.append(kept)
    if args:
        rec["args"] = args
    attrs: dict[str, Any] = {}
    for key in _builtin_fields(cls):  # e.g. OSError.filename, AttributeError.name
        try:
            value = getattr(exc, key)
        except Exception:
            continue
        kept = _jsonable(value) if value is not None else _NO
        if kept is not _NO:
            attrs[key] = kept
    for key, value in _safe_dict(exc).items():
        if not isinstance(key, str) or key.startswith("__"):
            continue
        kept = _jsonable(value) if len(attrs) < MAX_ATTRS else _NO
        if kept is _NO:
            omitted.append(f"attrs.{key}")
        else:
            attrs[key] = kept
    if attrs:
        rec["attrs"] = attrs
    if omitted:
        rec["omitted"] = omitted
    notes = _safe_dict(exc).get("__notes__")
    if isinstance(notes, list) and notes:
        rec["notes"] = [_text(n if isinstance(n, str) else _safe_repr(n)) for n in notes[:20]]
    tb = _safe_dict(exc).get(_TRACEBACK_ATTR)
    if not isinstance(tb, str):
        tb = _traceback_text(exc)
    if tb:
        rec["traceback"] = tb
    if depth < MAX_DEPTH:
        cause, context = exc.__cause__, exc.__context__
        if cause is not None and not any(cause is s for s in seen):
            rec["cause"] = _record(cause, seen, depth + 1)
        if (
            context is not None
            and not exc.__suppress_context__
            and not any(context is s for s in seen)
        ):
            rec["context"] = _record(context, seen, depth + 1)
    return rec


@lru_cache(maxsize=256)
def _builtin_fields(cls: type) -> tuple[str, ...]:
    """Fields that builtin exception classes keep outside ``__dict__`` and ``args``."""
    names: list[str] = []
    for c in cls.__mro__:
        if c.__module__ != "builtins":
            continue
        for key, value in vars(c).items():
            if isinstance(value, _C_FIELDS) and not key.startswith("__") and key != "args":
                names.append(key)
    return tuple(dict.fromkeys(names))


def _name(cls: type) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    return f"<unprintable {type(exc).__name__}>"


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    return f"<unprintable {type(value).__name__}>"


def _safe_args(exc: BaseException) -> tuple[Any, ...]:
    try:
        args = exc.args
        return tuple(args) if isinstance(args, tuple) else ()
    except Exception:
        return ()


def _safe_dict(exc: BaseException) -> dict[Any, Any]:
    try:
        d = object.__getattribute__(exc, "__dict__")
        return d if isinstance(d, dict) else {}
    except Exception:
        return {}


def _text(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... [{len(text) - MAX_TEXT} more characters not recorded]"


_NO: Any = object()  # "not plain JSON"


def _jsonable(value: Any) -> Any:
    """``value`` if it is plain JSON (strings capped), else ``_NO``."""
    if type(value) is str:
        return _text(value)
    if not _plain(value, 0):
        return _NO
    try:
        if len(json.dumps(value)) > MAX_VALUE:
            return _NO
    except Exception:
        return _NO
    return value


def _plain(value: Any, depth: int) -> bool:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 20:
        return False
    if t is list:
        return all(_plain(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def _traceback_text(exc: BaseException) -> str:
    if exc.__traceback__ is None:
        return ""
    try:
        text = "".join(traceback.format_exception(exc, chain=False))
    except Exception:
        return ""
    if len(text) <= MAX_TRACEBACK:
        return text
    head = MAX_TRACEBACK // 4
    tail = MAX_TRACEBACK - head
    return (
        f"{text[:head]}\n... [{len(text) - MAX_TRACEBACK} characters of traceback not "
        f"recorded] ...\n{text[-tail:]}"
    )


# ---- rebuilding --------------------------------------------------------------------------


def rebuild_error(text: str | dict[str, Any], safe: Collection[str] = ()) -> BaseException:
    """The exception a record describes (JSON text or its decoded dict), its class taken
    only from safe modules: ``aiosys``, the standard library and the top-level packages
    named in ``safe`` (the app's own; ``App.safe_modules``). See the module docstring."""
    rec = json.loads(text) if isinstance(text, str) else text
    return _rebuild(rec if isinstance(rec, dict) else {}, frozenset(safe), 0)


def _rebuild(rec: dict[str, Any], safe: frozenset[str], depth: int) -> BaseException:
    type_name = str(rec.get("type") or "builtins.Exception")
    mro = [str(n) for n in rec.get("mro") or [type_name]]
    if not mro or mro[0] != type_name:
        mro.insert(0, type_name)
    raw_args = rec.get("args")
    args = tuple(raw_args) if isinstance(raw_args, list) else (str(rec.get("message", "")),)
    exc = _instance(type_name, mro, args, safe)
    attrs = rec.get("attrs")
    if isinstance(attrs, dict):
        for key, value in attrs.items():
            if not isinstance(key, str) or key.startswith("__"):
                continue
            try:
                if isinstance(getattr(type(exc), key, None), _C_FIELDS):
                    setattr(exc, key, value)  # a builtin's field (OSError.filename)
                else:
                    exc.__dict__[key] = value  # no __setattr__ or property of the class runs
            except Exception:
                pass
    notes = rec.get("notes")
    if isinstance(notes, list):
        exc.__notes__ = [str(n) for n in notes]
    tb = rec.get("traceback")
    if isinstance(tb, str):
        exc.__dict__[_TRACEBACK_ATTR] = tb
    if depth < MAX_DEPTH:
        for key in ("context", "cause"):  # cause last: setting it suppresses the context
            linked = rec.get(key)
            if isinstance(linked, dict):
                setattr(exc, f"__{key}__", _rebuild(linked, safe, depth + 1))
    return exc


def recorded_traceback(exc: BaseException) -> str | None:
    """The traceback text recorded where a rebuilt error was first raised (else None)."""
    tb = _safe_dict(exc).get(_TRACEBACK_ATTR)
    return tb if isinstance(tb, str) else None


def _instance(
    type_name: str, mro: list[str], args: tuple[Any, ...], safe: frozenset[str]
) -> BaseException:
    cls = _resolve(type_name, safe)
    if cls is not None and issubclass(cls, Exception):
        made = _new(cls, args)
        if made is not None:
            return made
    # A stand-in on the nearest safe bases the recorded MRO names.
    bases = [c for c in (_resolve(n, safe) for n in mro[1:]) if c is not None]
    bases = [c for c in bases if issubclass(c, Exception)]
    for candidate in _base_choices(bases):
        standin = _standin(type_name, candidate)
        if standin is not None:
            made = _new(standin, args)
            if made is not None:
                return made
    made = _new(_standin(type_name, (Exception,)) or Exception, args)
    assert made is not None
    return made


def _base_choices(bases: list[type]) -> list[tuple[type, ...]]:
    """The most specific bases first (those no other base derives from), then each alone."""
    minimal = tuple(b for b in bases if not any(o is not b and issubclass(o, b) for o in bases))
    choices = [minimal] if minimal else []
    return choices + [(b,) for b in bases]


def _resolve(type_name: str, safe: frozenset[str]) -> type[BaseException] | None:
    """The class ``module.qualname`` names, if its module is safe and already imported."""
    for i in range(len(type_name) - 1, 0, -1):  # the module part may itself hold dots
        if type_name[i] != ".":
            continue
        module_name, qualname = type_name[:i], type_name[i + 1 :]
        top = module_name.partition(".")[0]
        if top not in _ALWAYS_SAFE and top not in safe:
            return None
        module = sys.modules.get(module_name)
        if module is None:
            continue
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        return None
    return None


def _new(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException | None:
    try:
        exc = cls.__new__(cls, *args)
        if not isinstance(exc, cls):
            return None
        exc.args = args
        return exc
    except Exception:
        return None


@lru_cache(maxsize=256)
def _standin(type_name: str, bases: tuple[type, ...]) -> type[BaseException] | None:
    """One class per (recorded type, bases), so two rebuilds of a record share a class."""
    module, _, qualname = type_name.rpartition(".")
    parts = type_name.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest prefix that is a loaded module
        if ".".join(parts[:i]) in sys.modules:
            module, qualname = ".".join(parts[:i]), ".".join(parts[i:])
            break
    ns = {"__module__": module, "__qualname__": qualname, "recorded_type": type_name}
    try:
        cls = type(qualname.rpartition(".")[2] or "Error", bases, ns)
    except TypeError:  # bases whose layouts conflict
        return None
    return cls


__all__ = ["dump_error", "error_record", "rebuild_error", "recorded_traceback"]
