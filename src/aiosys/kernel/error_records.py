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
     "context": {...a record...},                       # the implicit context (even suppressed)
     "context_is_cause": true,                          # instead of "context": the same error
     "suppress_context": true,                          # ``raise ... from``: not shown
     "rebuilt": "stand-in: ..."}                        # why it rebuilds as a stand-in

``type`` and ``message`` are always there (the CLI and ``RunFailed`` read them); the other
keys are absent when empty.

One value: what a workflow catches from an effect is the error rebuilt from its record, on
the first execution as on replay (``record_error``; the live exception never passes the
gate), so both see the same class, args, attributes and cause/context chain.

What is kept: ``args``, instance attributes (``__dict__``, dunder names excepted), the C-level
fields of builtin exceptions (``OSError.filename``, ``UnicodeError.object``,
``SyntaxError.lineno``, ``StopIteration.value``) and ``__slots__``, when their values are JSON
or of these common kinds, kept in a tagged form: ``bytes``/``bytearray``
(``{"$bytes": base64}``), ``tuple``/``set``/``frozenset`` (``{"$tuple": [...]}``), a dict
with other keys than strings (``{"$dict": [[k, v], ...]}``) and errors (``{"$error":
record}``: an ``ExceptionGroup``'s members), at any depth. A finite ``float`` only. Anything
else is named in ``omitted``: an argument is kept as its ``repr`` (a string), an attribute is
left out (reading it raises ``AttributeError`` on the rebuilt error, first run and replay
alike). Sizes are capped so a record stays small whatever the error carries: a string
(message, argument, attribute) keeps its first ``MAX_TEXT`` characters; an argument or
attribute whose JSON is longer is left out; at most ``MAX_ATTRS`` attributes; the traceback
keeps its first and last lines within ``MAX_TRACEBACK`` characters; the cause/context chain
stops after ``MAX_DEPTH`` links. Recording never fails because of the error itself: a
``str()`` or ``repr()`` that raises gives ``<unprintable ApiError>``.

Rebuilding never imports anything and runs no ``__init__`` but a builtin's own (C code).
A class named by a record is taken only from a *safe* module that this process has already
imported (``sys.modules``):

- ``aiosys`` and its submodules;
- the standard library (``sys.stdlib_module_names``, ``builtins`` included);
- the app's own modules: every module in the top-level package of a registered workflow or
  step function (the kernel ``App`` collects them as it registers; ``App.safe_modules``).

The instance is made as Python unpickles an exception: ``cls.__new__(cls, *args)`` (which
sets ``args``), then the ``__init__`` of its nearest builtin base with the real args (C code:
it sets ``UnicodeDecodeError.object``, ``SyntaxError.lineno``, ``OSError.errno`` ...), then
the recorded attributes and fields (written to its ``__dict__`` or through the slot: no
``__setattr__`` or property of the class runs); ``__cause__``/``__context__``/``__notes__``
are rebuilt from theirs. An ``ExceptionGroup`` is a real group of its rebuilt members, so
``except*`` works. A class from a module that is not safe (a third-party library, a class
defined inside a function), or whose ``__new__`` refuses the recorded arguments, is
replaced by a *stand-in*: a class of the same name, module and qualname built on the nearest
safe, constructible classes of the recorded MRO, so ``except ValueError`` still catches a
stand-in of ``requests.HTTPError`` (an ``IOError``), though ``except requests.HTTPError``
does not. A real class that misbehaves once rebuilt (``getattr`` of a missing name raising
anything but ``AttributeError``, as ``urllib.error.HTTPError`` without its file does, or a
``str()`` that raises where the original's did not) is replaced by a stand-in derived from
it, so ``except`` clauses for it still catch it. A stand-in's ``str()`` is the recorded
message and a missing attribute is an ``AttributeError`` naming it; the record says why
(``rebuilt``).
A class that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, cancellation)
is never raised again into a workflow: it rebuilds as a stand-in on ``Exception``.
The rebuilt error keeps the recorded traceback text (``recorded_traceback``), which is what
is recorded again if the rebuilt error ends the run.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import traceback
import types
from collections.abc import Collection
from functools import lru_cache
from typing import Any, cast

MAX_TEXT = 4_000  # characters kept of a message, an argument or an attribute string
MAX_VALUE = 4_000  # characters of JSON kept for one argument or attribute
MAX_ATTRS = 50  # attributes kept per error
MAX_TRACEBACK = 16_000  # characters kept of a traceback (its head and its tail)
MAX_DEPTH = 8  # links of the cause/context chain kept

_TRACEBACK_ATTR = "__aiosys_traceback__"  # the recorded traceback text of a rebuilt error
_RECORD_ATTR = "__aiosys_record__"  # the record a rebuilt error was made from
TRANSIENT_ATTR = "__aiosys_transient__"  # how retry classified the recorded error
_C_FIELDS = (types.MemberDescriptorType, types.GetSetDescriptorType)
_ALWAYS_SAFE = frozenset(sys.stdlib_module_names) | {"aiosys", "builtins"}


# ---- recording ---------------------------------------------------------------------------


def error_record(exc: BaseException, *, transient: bool | None = None) -> dict[str, Any]:
    """The record of ``exc`` (see the module docstring); never raises because of ``exc``."""
    try:
        rec = _record(exc, [], 0)
    except Exception:  # an error object too strange to walk: keep what is certain
        rec = {"type": _name(type(exc)), "message": _text(safe_str(exc))}
    if transient is not None:
        rec["transient"] = transient
    return rec


def dump_error(exc: BaseException, *, transient: bool | None = None) -> str:
    """The record of ``exc`` as JSON text (ASCII only: storable in any text column)."""
    return json.dumps(error_record(exc, transient=transient))


def _record(exc: BaseException, seen: list[BaseException], depth: int) -> dict[str, Any]:
    seen.append(exc)
    cls: type = type(exc)
    earlier = _safe_dict(exc).get(_RECORD_ATTR)  # a rebuilt error: what its record said
    earlier = earlier if isinstance(earlier, dict) else {}
    rec: dict[str, Any] = {"type": _name(cls), "message": _text(safe_str(exc))}
    mro = getattr(cls, "recorded_mro", None)
    rec["mro"] = list(mro) if isinstance(mro, tuple) else [_name(c) for c in _mro(cls)]
    omitted: list[str] = [str(o) for o in earlier.get("omitted") or ()]
    args: list[Any] = []
    for i, arg in enumerate(_safe_args(exc)):
        kept = _encode(arg, seen, depth)
        if kept is _NO:
            omitted.append(f"args[{i}]")
            kept = _text(_safe_repr(arg))
        args.append(kept)
    rec["args"] = args  # even empty: a record without args rebuilds from its message
    attrs: dict[str, Any] = {}
    for key, field in _fields(cls):  # builtin fields (OSError.filename), __slots__
        try:
            value = field.__get__(exc, cls)
        except Exception:  # an unset slot
            continue
        if value is None and getattr(field, "__objclass__", object).__module__ == "builtins":
            continue  # a builtin's field left unset
        kept = _encode(value, seen, depth)
        if kept is _NO:
            omitted.append(f"attrs.{key}")
        else:
            attrs[key] = kept
    for key, value in _safe_dict(exc).items():
        if not isinstance(key, str) or key.startswith("__"):
            continue
        kept = _encode(value, seen, depth) if len(attrs) < MAX_ATTRS else _NO
        if kept is _NO:
            omitted.append(f"attrs.{key}")
        else:
            attrs[key] = kept
    if attrs:
        rec["attrs"] = attrs
    if omitted:
        rec["omitted"] = list(dict.fromkeys(omitted))
    if isinstance(earlier.get("rebuilt"), str):
        rec["rebuilt"] = earlier["rebuilt"]
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
        if context is not None and context is cause and "cause" in rec:
            rec["context_is_cause"] = True
        elif context is not None and not any(context is s for s in seen):
            rec["context"] = _record(context, seen, depth + 1)
    if exc.__suppress_context__:
        rec["suppress_context"] = True
    return rec


def _mro(cls: type) -> list[type]:
    return [c for c in cls.__mro__ if c is not object]


@lru_cache(maxsize=256)
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """Fields kept outside ``__dict__`` and ``args``: a builtin's C fields (``OSError.filename``,
    ``UnicodeError.object``) and ``__slots__``, as ``(name, descriptor)``, the most derived
    class first. A group's ``message``/``exceptions`` are its args."""
    found: dict[str, Any] = {}
    for c in cls.__mro__:
        if c is object or c is BaseException:
            continue
        for key, value in vars(c).items():
            if not isinstance(value, _C_FIELDS) or key.startswith("__") or key in found:
                continue
            if issubclass(c, BaseExceptionGroup) and key in ("message", "exceptions"):
                continue
            found[key] = value
    return tuple(found.items())


def _name(cls: type) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def safe_str(value: Any) -> str:
    """``str(value)``, or ``<unprintable Type>`` when it raises or returns no string: what
    every record, log line and retry note says of an error that cannot print itself."""
    return _printed(str, value)


def _safe_repr(value: Any) -> str:
    return _printed(repr, value)


def _printed(show: Any, value: Any) -> str:
    try:
        text = show(value)
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


_NO: Any = object()  # "cannot be recorded"
_TAGS = frozenset({"$bytes", "$bytearray", "$tuple", "$set", "$frozenset", "$dict", "$error"})


def _encode(value: Any, seen: list[BaseException], depth: int) -> Any:
    """``value`` as JSON (strings capped; tagged forms for bytes, tuples, sets, dicts with
    other keys, errors), or ``_NO`` if it holds something else or is too large."""
    t = type(value)
    if t is str:
        return _text(value)
    if t is int or t is bool or value is None:
        return value
    try:
        encoded = _tagged(value, seen, depth, 0)
        if encoded is _NO:
            return _NO
        if not _holds_error(value) and len(json.dumps(encoded)) > MAX_VALUE:
            return _NO
    except Exception:
        return _NO
    return encoded


def _tagged(value: Any, seen: list[BaseException], depth: int, level: int) -> Any:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else _NO
    if level > 20:
        return _NO
    if t is list or t is tuple or t is set or t is frozenset:
        items = [_tagged(v, seen, depth, level + 1) for v in value]
        if any(v is _NO for v in items):
            return _NO
        return items if t is list else {f"${t.__name__}": items}
    if t is dict:
        pairs = [
            (_tagged(k, seen, depth, level + 1), _tagged(v, seen, depth, level + 1))
            for k, v in value.items()
        ]
        if any(k is _NO or v is _NO for k, v in pairs):
            return _NO
        if all(type(k) is str for k, _ in pairs) and not (len(pairs) == 1 and pairs[0][0] in _TAGS):
            return dict(pairs)
        return {"$dict": [list(p) for p in pairs]}
    if t is bytes or t is bytearray:
        return {f"${t.__name__}": base64.b64encode(value).decode("ascii")}
    if isinstance(value, BaseException):
        if depth >= MAX_DEPTH or any(value is s for s in seen):
            return _NO
        return {"$error": _record(value, seen, depth + 1)}
    return _NO


def _holds_error(value: Any) -> bool:
    """A list or tuple of errors (an ``ExceptionGroup``'s members) is not size-capped here:
    each member's record is capped on its own."""
    return isinstance(value, list | tuple) and any(isinstance(v, BaseException) for v in value)


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


def record_error(
    exc: BaseException, safe: Collection[str] = (), *, transient: bool | None = None
) -> tuple[str, BaseException]:
    """``(text, rebuilt)``: the JSON record of ``exc`` to store and the error the workflow
    receives in its place, equal to what ``rebuild_error(text, safe)`` gives on replay (one
    value, as ``serde.record`` for outputs). Never raises because of ``exc``."""
    rec = error_record(exc, transient=transient)
    rebuilt = _rebuild(rec, frozenset(safe), 0)
    return json.dumps(rec), rebuilt


def _rebuild(rec: dict[str, Any], safe: frozenset[str], depth: int) -> BaseException:
    type_name = str(rec.get("type") or "builtins.Exception")
    mro = [str(n) for n in rec.get("mro") or [type_name]]
    if not mro or mro[0] != type_name:
        mro.insert(0, type_name)
    raw_args = rec.get("args")
    if isinstance(raw_args, list):
        args = tuple(_decode(a, safe, depth) for a in raw_args)
    else:
        args = (str(rec.get("message", "")),)
    message = str(rec.get("message", ""))
    attrs = rec.get("attrs")
    attrs = (
        {k: _decode(v, safe, depth) for k, v in attrs.items()} if isinstance(attrs, dict) else {}
    )
    exc, why = _instance(type_name, tuple(mro), args, attrs, message, safe)
    if why is not None and "rebuilt" not in rec:
        rec["rebuilt"] = why  # recorded on the first run (record_error), read on replay
    notes = rec.get("notes")
    if isinstance(notes, list):
        exc.__notes__ = [str(n) for n in notes]
    tb = rec.get("traceback")
    d = exc.__dict__
    if isinstance(tb, str):
        d[_TRACEBACK_ATTR] = tb
    if isinstance(rec.get("transient"), bool):
        d[TRANSIENT_ATTR] = rec["transient"]
    d[_RECORD_ATTR] = rec
    if depth < MAX_DEPTH:
        for key in ("context", "cause"):
            linked = rec.get(key)
            if isinstance(linked, dict):
                setattr(exc, f"__{key}__", _rebuild(linked, safe, depth + 1))
        if rec.get("context_is_cause"):
            exc.__context__ = exc.__cause__
    if "suppress_context" in rec or "cause" in rec:  # a record before suppress_context: cause
        exc.__suppress_context__ = bool(rec.get("suppress_context", True))
    return exc


def _decode(value: Any, safe: frozenset[str], depth: int) -> Any:
    """The value a tagged JSON form (``_tagged``) stands for."""
    t = type(value)
    if t is list:
        return [_decode(v, safe, depth) for v in value]
    if t is not dict:
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag in _TAGS:
            try:
                if tag == "$bytes":
                    return base64.b64decode(inner)
                if tag == "$bytearray":
                    return bytearray(base64.b64decode(inner))
                if tag == "$tuple":
                    return tuple(_decode(v, safe, depth) for v in inner)
                if tag == "$set":
                    return {_decode(v, safe, depth) for v in inner}
                if tag == "$frozenset":
                    return frozenset(_decode(v, safe, depth) for v in inner)
                if tag == "$dict":
                    return {_decode(k, safe, depth): _decode(v, safe, depth) for k, v in inner}
                if tag == "$error" and isinstance(inner, dict):
                    return _rebuild(inner, safe, depth + 1)
            except Exception:
                return value
    return {k: _decode(v, safe, depth) for k, v in value.items()}


def recorded_traceback(exc: BaseException) -> str | None:
    """The traceback text recorded where a rebuilt error was first raised (else None)."""
    tb = _safe_dict(exc).get(_TRACEBACK_ATTR)
    return tb if isinstance(tb, str) else None


def _instance(
    type_name: str,
    mro: tuple[str, ...],
    args: tuple[Any, ...],
    attrs: dict[str, Any],
    message: str,
    safe: frozenset[str],
) -> tuple[BaseException, str | None]:
    """The rebuilt error, and why it is a stand-in (None when it is of the real class)."""
    cls = _resolve(type_name, safe)
    why = "its module is not one rebuilt from (not aiosys, the stdlib or the app's)"
    if cls is None and type_name.partition(".")[0] in sys.modules:
        why = "its class cannot be found again (defined inside a function?)"
    if cls is not None and not issubclass(cls, Exception):
        if issubclass(cls, BaseExceptionGroup):  # of rebuilt members: an ExceptionGroup
            made = _made(cls, args, attrs, message)
            if isinstance(made, Exception):
                return made, None
        why = "it is not an Exception (never raised again into a workflow)"
    elif cls is not None:
        made = _made(cls, args, attrs, message)
        if made is not None:
            return made, None
        why = "the real class refused its recorded arguments or misbehaves once rebuilt"
        # The real class, guarded: except clauses for it still catch the error.
        guarded = _standin(type_name, (cls,), mro)
        if guarded is not None:
            made = _made(guarded, args, attrs, message)
            if made is not None:
                return made, f"stand-in: {why}"
    # A stand-in on the nearest safe bases the recorded MRO names.
    bases = [c for c in (_resolve(n, safe) for n in mro[1:]) if c is not None]
    bases = [c for c in bases if issubclass(c, Exception)]
    for candidate in _base_choices(bases):
        standin = _standin(type_name, candidate, mro)
        if standin is not None:
            made = _made(standin, args, attrs, message)
            if made is not None:
                return made, f"stand-in: {why}"
    standin = _standin(type_name, (Exception,), mro)
    made = _made(standin, args, attrs, message) if standin is not None else None
    if made is None:
        made = Exception(*args)
    return made, f"stand-in: {why}"


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


_PROBE = "_aiosys_probe_no_such_attribute"


def _made(
    cls: type[BaseException], args: tuple[Any, ...], attrs: dict[str, Any], message: str
) -> BaseException | None:
    """An instance of ``cls`` as Python unpickles one (``__new__``, no ``__init__`` of the
    app's), the C-level state of its builtin base set by that base's own ``__init__`` from
    the real args (``UnicodeDecodeError.object``, ``SyntaxError.lineno``,
    ``StopIteration.value``), then its recorded attributes. None if ``cls`` refuses the
    args, or the instance misbehaves: ``getattr`` of a missing name that raises anything but
    ``AttributeError`` (``urllib.error.HTTPError`` without its file), or a ``str()`` that
    raises where the original's did not."""
    try:
        exc = cls.__new__(cls, *args)
        if not isinstance(exc, cls):
            return None
        base: Any = next(c for c in cls.__mro__ if c.__module__ == "builtins")
        init = base.__init__
        if init is not BaseException.__init__:
            try:
                init(exc, *args)
            except Exception:
                pass  # its recorded fields below still restore what they can
        exc.args = args
        if getattr(cls, "recorded_type", None) is not None:
            exc.__dict__[_MESSAGE_ATTR] = message
        fields = dict(_fields(cast(type, cls)))
        for key, value in attrs.items():
            if not isinstance(key, str) or key.startswith("__"):
                continue
            try:
                field = fields.get(key)
                if field is not None:
                    field.__set__(exc, value)  # a builtin's field, a slot
                else:
                    exc.__dict__[key] = value  # no __setattr__ or property of the class runs
            except Exception:
                pass
    except Exception:
        return None
    try:
        getattr(exc, _PROBE)
        return None
    except AttributeError:
        pass
    except Exception:
        return None
    if not message.startswith("<unprintable "):
        try:
            str(exc)
        except Exception:
            return None
    return exc


_MESSAGE_ATTR = "__aiosys_message__"  # a stand-in's str(): the recorded message


def _standin_str(self: BaseException) -> str:
    message = self.__dict__.get(_MESSAGE_ATTR)
    return message if isinstance(message, str) else BaseException.__str__(self)


def _standin_getattr(self: BaseException, name: str) -> Any:
    raise AttributeError(
        f"{type(self).__qualname__!r} object (rebuilt from its record) has no attribute "
        f"{name!r}: the record did not keep it (see its 'omitted')",
        name=name,
        obj=self,
    )


@lru_cache(maxsize=256)
def _standin(
    type_name: str, bases: tuple[type, ...], mro: tuple[str, ...] = ()
) -> type[BaseException] | None:
    """One class per (recorded type, bases), so two rebuilds of a record share a class. Its
    ``str()`` is the recorded message; a missing attribute is an ``AttributeError``."""
    module, _, qualname = type_name.rpartition(".")
    parts = type_name.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest prefix that is a loaded module
        if ".".join(parts[:i]) in sys.modules:
            module, qualname = ".".join(parts[:i]), ".".join(parts[i:])
            break
    ns = {
        "__module__": module,
        "__qualname__": qualname,
        "recorded_type": type_name,
        "recorded_mro": mro or (type_name,),
        "__str__": _standin_str,
        "__getattr__": _standin_getattr,
    }
    try:
        cls = type(qualname.rpartition(".")[2] or "Error", bases, ns)
    except TypeError:  # bases whose layouts conflict
        return None
    return cls


__all__ = [
    "TRANSIENT_ATTR",
    "dump_error",
    "error_record",
    "rebuild_error",
    "record_error",
    "recorded_traceback",
]
