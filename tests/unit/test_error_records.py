"""Error records without a store: what is rebuilt from where, and what never is."""

from __future__ import annotations

import errno
import json
import sys

import pydantic

from aiosys.errors import ChildFailed
from aiosys.kernel.error_records import dump_error, rebuild_error


def test_rebuilding_never_imports_the_module_a_record_names():
    for module in ("antigravity", "some_module_nobody_installed"):
        assert module not in sys.modules
        record = {
            "type": f"{module}.Boom",
            "message": "boom",
            "mro": [f"{module}.Boom", "builtins.ValueError", "builtins.Exception"],
            "args": ["boom"],
        }
        exc = rebuild_error(json.dumps(record), safe={module})
        assert module not in sys.modules
        assert isinstance(exc, ValueError)
        assert type(exc).recorded_type == f"{module}.Boom"  # type: ignore[attr-defined]
        assert exc.args == ("boom",)


def test_third_party_classes_rebuild_as_stand_ins_on_their_safe_bases():
    try:
        pydantic.TypeAdapter(int).validate_python("x")
    except pydantic.ValidationError as original:
        text = dump_error(original)
    exc = rebuild_error(text)  # pydantic is imported, but it is not the app's module
    assert not isinstance(exc, pydantic.ValidationError)
    assert isinstance(exc, ValueError)
    assert type(exc).__qualname__ == "ValidationError"
    assert type(exc) is type(rebuild_error(text))  # one stand-in class per recorded type


def test_control_flow_exceptions_are_never_raised_again_into_a_workflow():
    for original in (SystemExit(2), KeyboardInterrupt()):
        exc = rebuild_error(dump_error(original))
        assert isinstance(exc, Exception)
        assert not isinstance(exc, type(original))


def test_os_errors_keep_errno_and_aiosys_errors_keep_their_attributes():
    exc = rebuild_error(dump_error(FileNotFoundError(errno.ENOENT, "gone", "/x")))
    assert type(exc) is FileNotFoundError
    assert (exc.errno, exc.strerror, exc.filename) == (errno.ENOENT, "gone", "/x")
    child = rebuild_error(dump_error(ChildFailed("child ended", child_id="r1", status="dead")))
    assert type(child) is ChildFailed
    assert (child.child_id, child.status, str(child)) == ("r1", "dead", "child ended")


def test_cause_and_context_cycles_are_recorded_once():
    a, b = ValueError("a"), KeyError("b")
    a.__context__, b.__context__ = b, a
    record = json.loads(dump_error(a))
    assert record["context"]["type"] == "builtins.KeyError"
    assert "context" not in record["context"]


def test_record_error_hands_back_what_replay_rebuilds():
    import urllib.error

    from aiosys.kernel.error_records import record_error

    class Slotted(Exception):
        __slots__ = ("code",)

    for original in (
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ExceptionGroup("g", [ValueError(1), KeyError(2)]),
        SyntaxError("bad", ("f.py", 1, 2, "x = (", 1, 3)),
        StopIteration(5),
        OSError(2, "nf", "/x"),
        urllib.error.HTTPError("http://x", 404, "nf", {}, None),
    ):
        text, first = record_error(original)
        replayed = rebuild_error(text)
        assert type(first) is type(replayed)
        assert repr(first.args) == repr(replayed.args) == repr(original.args)
        assert str(first) == str(replayed) == str(original)
    group = rebuild_error(dump_error(ExceptionGroup("g", [ValueError(1)])))
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group.exceptions[0], ValueError)
    assert rebuild_error(dump_error(StopIteration(5))).value == 5  # type: ignore[attr-defined]
    uni = rebuild_error(dump_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")))
    assert uni.object == b"\xff"  # type: ignore[attr-defined]
    slotted = Slotted("s")
    slotted.code = 3
    assert rebuild_error(dump_error(slotted)).code == 3  # type: ignore[attr-defined]


def test_tagged_values_round_trip_and_unknown_ones_are_named():
    exc = ValueError("v", (1, b"\x00"), {1: {2}}, object())
    exc.raw = bytearray(b"\xff")  # type: ignore[attr-defined]
    exc.frozen = frozenset({1})  # type: ignore[attr-defined]
    exc.lookalike = {"$bytes": "not a tag"}  # type: ignore[attr-defined]
    exc.handle = object()  # type: ignore[attr-defined]
    record = json.loads(dump_error(exc))
    assert record["omitted"] == ["args[3]", "attrs.handle"]
    rebuilt = rebuild_error(record)
    assert rebuilt.args[:3] == ("v", (1, b"\x00"), {1: {2}})
    assert rebuilt.args[3].startswith("<object object at")
    assert rebuilt.raw == bytearray(b"\xff")  # type: ignore[attr-defined]
    assert rebuilt.frozen == frozenset({1})  # type: ignore[attr-defined]
    assert rebuilt.lookalike == {"$bytes": "not a tag"}  # type: ignore[attr-defined]
    assert not hasattr(rebuilt, "handle")


def test_stand_ins_raise_attribute_error_and_print_the_recorded_message():
    import urllib.error

    record = json.loads(dump_error(urllib.error.HTTPError("http://x", 404, "nf", {}, None)))
    exc = rebuild_error(record)
    assert isinstance(exc, urllib.error.HTTPError)  # a guarded subclass of the real class
    assert not hasattr(exc, "read")  # its file was not recorded: AttributeError, not KeyError
    assert str(exc) == "HTTP Error 404: nf"
    assert exc.code == 404  # type: ignore[attr-defined]
    assert record["omitted"]  # fp, file, _closer
    foreign = rebuild_error({"type": "nowhere.Boom", "message": "custom text", "args": [1]})
    assert str(foreign) == "custom text"
    assert not hasattr(foreign, "anything")


def test_context_is_kept_when_a_cause_is_set_and_when_it_is_suppressed():
    try:
        json.loads("nope")
    except json.JSONDecodeError as exc:
        decoded = exc
    rebuilt = rebuild_error(dump_error(decoded))
    assert type(rebuilt.__context__) is StopIteration
    assert rebuilt.__suppress_context__ is True
    try:
        try:
            raise KeyError("k")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        chained = exc
    rebuilt = rebuild_error(dump_error(chained))
    assert rebuilt.__context__ is rebuilt.__cause__
    assert isinstance(rebuilt.__cause__, KeyError)
