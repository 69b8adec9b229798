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
