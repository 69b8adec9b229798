"""Errors are recorded as structure (class, bases, args, attributes, cause, traceback text)
and rebuilt on replay so that ``except`` clauses catch them as they caught the original.

Replay is forced by a worker restart (see test_kernel_values.py): the workflow notes what it
caught on each execution, waits for a signal, and a second app replays it from its records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest

from aiosys import App, Context, PermanentError, RunFailed
from aiosys.errors import ChildFailed
from aiosys.kernel.error_records import MAX_TEXT, rebuild_error

pytestmark = pytest.mark.timeout(60)


class QuotaError(PermanentError):
    """An app's own error whose ``__init__`` takes other arguments than its ``args``."""

    def __init__(self, account: str, *, limit: int) -> None:
        super().__init__(f"account {account} is over its quota of {limit}")
        self.account = account
        self.limit = limit
        self.handle = object()  # not JSON: left out of the record, by name


class ApiError(Exception):
    def __str__(self) -> str:
        return f"API error {self.args[0].status}"  # args[0] is None: AttributeError


@pytest.fixture
def thirdparty() -> Iterator[types.ModuleType]:
    """A module the app does not own (as ``requests`` would be), already imported."""
    module = types.ModuleType("thirdparty_http")
    exec(
        "class HTTPError(IOError):\n"
        "    def __init__(self, status):\n"
        "        super().__init__(f'HTTP {status}')\n"
        "        self.status = status\n",
        module.__dict__,
    )
    sys.modules["thirdparty_http"] = module
    yield module
    del sys.modules["thirdparty_http"]


def error_app(store_url: str, seen: list[dict[str, Any]], thirdparty: Any) -> App:
    app = App(store=store_url, lease=1.0)

    @app.step
    def parse(text: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(text)
        return result

    @app.step
    def charge(account: str) -> str:
        raise QuotaError(account, limit=3)

    @app.step
    def fetch() -> str:
        raise thirdparty.HTTPError(503)

    @app.step
    def chained() -> str:
        try:
            {}["missing"]
        except KeyError as exc:
            raise QuotaError("acme", limit=1) from exc
        return "unreachable"

    @app.workflow
    async def child(ctx: Context) -> str:
        raise QuotaError("child", limit=0)

    def describe(exc: BaseException) -> dict[str, Any]:
        return {
            "class": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "args": exc.args,
            "str": str(exc),
            "attrs": {k: v for k, v in vars(exc).items() if not k.startswith("__")},
        }

    @app.workflow
    async def wf(ctx: Context) -> str:
        got: dict[str, Any] = {}
        # The child first: waiting for it may replay what comes before it, and every error
        # below must be met live once (seen[0]) and replayed once (seen[-1]).
        try:
            await ctx.child("child")
        except ChildFailed as exc:
            got["child"] = {"child_id": exc.child_id, "status": exc.status}
            got["child_cause"] = describe(exc.__cause__) if exc.__cause__ else None
        try:
            await parse("not json")
        except ValueError as exc:  # a JSONDecodeError is a ValueError
            got["parse"] = describe(exc)
            got["parse_is_jsondecodeerror"] = isinstance(exc, json.JSONDecodeError)
        try:
            await charge("acme")
        except QuotaError as exc:
            got["charge"] = describe(exc)
        try:
            await fetch()
        except OSError as exc:  # the stand-in keeps the safe base of HTTPError(IOError)
            got["fetch"] = describe(exc)
            got["fetch_is_original_class"] = isinstance(exc, thirdparty.HTTPError)
            got["fetch_recorded_type"] = getattr(type(exc), "recorded_type", None)
        try:
            await chained()
        except QuotaError as exc:
            got["chained_cause"] = describe(exc.__cause__) if exc.__cause__ else None
        seen.append(got)
        await ctx.wait_for("go")
        return "done"

    return app


async def test_replayed_errors_are_caught_as_the_originals_were(store_url, wait_status, thirdparty):
    seen: list[dict[str, Any]] = []
    first = error_app(store_url, seen, thirdparty)
    async with first:
        run = await first.start("wf")
        await wait_status(first, run.id, "waiting")
    second = error_app(store_url, seen, thirdparty)
    async with second:
        await second.signal(run.id, "go")
        assert await second.handle(run.id).result(timeout=20) == "done"
        effects = {e.name.rpartition(".")[2]: e for e in await second.effects(run.id)}

    assert len(seen) >= 2
    first_run, replay = seen[0], seen[-1]
    assert replay["parse"] == first_run["parse"]
    assert replay["parse"]["class"] == "json.decoder.JSONDecodeError"
    assert replay["parse_is_jsondecodeerror"] is True
    assert replay["parse"]["attrs"] == {
        "msg": "Expecting value",
        "doc": "not json",
        "pos": 0,
        "lineno": 1,
        "colno": 1,
    }

    assert replay["charge"]["class"] == f"{__name__}.QuotaError"
    assert replay["charge"]["args"] == ("account acme is over its quota of 3",)
    assert replay["charge"]["str"] == first_run["charge"]["str"]
    assert replay["charge"]["attrs"] == {"account": "acme", "limit": 3}  # `handle` not JSON

    # One value: the first run too gets the error rebuilt from its record.
    assert first_run == replay
    assert replay["fetch_is_original_class"] is False  # not rebuilt from a foreign module
    assert replay["fetch_recorded_type"] == "thirdparty_http.HTTPError"
    assert replay["fetch"]["class"] == "thirdparty_http.HTTPError"
    assert replay["fetch"]["args"] == ("HTTP 503",)
    assert replay["fetch"]["attrs"] == {"status": 503}

    assert replay["chained_cause"] == first_run["chained_cause"]
    assert replay["chained_cause"]["class"] == "builtins.KeyError"
    assert replay["chained_cause"]["args"] == ("missing",)

    assert replay["child"] == first_run["child"]
    assert replay["child"]["status"] == "failed"
    assert replay["child"]["child_id"]
    assert replay["child_cause"] == first_run["child_cause"]
    assert replay["child_cause"]["class"] == f"{__name__}.QuotaError"
    assert replay["child_cause"]["attrs"] == {"account": "child", "limit": 0}

    record = json.loads(effects["charge"].error)
    assert record["type"] == f"{__name__}.QuotaError"
    assert record["mro"][:3] == [
        f"{__name__}.QuotaError",
        "aiosys.errors.PermanentError",
        "aiosys.errors.AiosysError",
    ]
    assert record["omitted"] == ["attrs.handle"]
    assert "in charge" in record["traceback"]
    assert "raise QuotaError(account, limit=3)" in record["traceback"]
    chained = json.loads(effects["chained"].error)
    assert chained["cause"]["type"] == "builtins.KeyError"
    assert '{}["missing"]' in chained["cause"]["traceback"]


async def test_run_failed_carries_the_workflows_error_rebuilt_as_its_cause(store_url, error_of):
    app = App(store=store_url)

    @app.workflow
    async def wf(ctx: Context) -> None:
        raise QuotaError("acme", limit=3)

    async with app:
        with pytest.raises(RunFailed) as caught:
            await app.run("wf")
    cause = caught.value.__cause__
    assert isinstance(cause, QuotaError)
    assert (cause.account, cause.limit) == ("acme", 3)
    assert caught.value.error["type"] == f"{__name__}.QuotaError"
    assert caught.value.error["message"] == "account acme is over its quota of 3"


async def test_caught_effect_error_never_marks_a_later_workflow_error_as_the_effects(store_url):
    app = App(store=store_url)

    @app.step
    async def lookup(key: str) -> str:
        raise PermanentError(f"no such key {key}")

    @app.workflow
    async def wf(ctx: Context) -> str:
        try:
            await lookup("a")
        except PermanentError:
            pass  # handled: the workflow goes on
        raise PermanentError("bug in the workflow's own code")

    outcomes: list[tuple[str, int | None]] = []
    async with app:
        for _ in range(20):
            run = await app.start("wf")
            with pytest.raises(RunFailed):
                await run.result(timeout=10)
            row = await app.get_run(run.id)
            outcomes.append((row.status, row.failed_seq))
    assert outcomes == [("failed", None)] * 20


async def test_unprintable_errors_are_recorded_and_end_the_run(store_url, error_of):
    app = App(store=store_url)

    @app.step
    async def call_api() -> str:
        raise ApiError(None)

    @app.workflow
    async def own(ctx: Context) -> None:
        raise ApiError(None)

    @app.workflow
    async def via_step(ctx: Context) -> str:
        return await call_api()

    async with app:
        own_run = await app.start("own")
        step_run = await app.start("via_step")
        for handle in (own_run, step_run):
            with pytest.raises(RunFailed):
                await handle.result(timeout=10)
        own_row = await app.get_run(own_run.id)
        step_row = await app.get_run(step_run.id)
        effects = await app.effects(step_run.id)

    assert own_row.status == "failed"
    assert error_of(own_row)["message"] == "<unprintable ApiError>"
    assert error_of(own_row)["type"] == f"{__name__}.ApiError"
    assert step_row.status == "dead"
    assert step_row.failed_seq == 1
    assert error_of(step_row)["message"] == "<unprintable ApiError>"
    assert json.loads(effects[0].error)["message"] == "<unprintable ApiError>"


async def test_huge_and_foreign_error_contents_are_capped_and_named(store_url):
    app = App(store=store_url)

    class Huge(Exception):
        pass

    @app.step
    async def explode() -> str:
        exc = Huge("x" * 1_000_000, object())
        exc.body = "y" * 1_000_000
        exc.nested = {"big": list(range(100_000))}
        exc.when = float("nan")
        raise exc

    @app.workflow
    async def wf(ctx: Context) -> str:
        return await explode()

    async with app:
        run = await app.start("wf")
        with pytest.raises(RunFailed):
            await run.result(timeout=10)
        effects = await app.effects(run.id)

    text = effects[0].error
    assert len(text) < 40_000
    record = json.loads(text)
    assert len(record["message"]) < MAX_TEXT + 100  # str() of two args: their tuple
    assert "more characters not recorded" in record["message"]
    assert record["args"][0].startswith("x" * 100)
    assert record["args"][1].startswith("<object object at")
    assert record["attrs"]["body"].startswith("y" * 100)
    assert set(record["omitted"]) == {"args[1]", "attrs.nested", "attrs.when"}
    # A class defined inside a function cannot be found again: a stand-in on Exception.
    rebuilt = rebuild_error(text, app.safe_modules)
    assert type(rebuilt).__qualname__.endswith("<locals>.Huge")
    assert isinstance(rebuilt, Exception)


# ---- first run == replay, kind by kind (App(max_parked=0): every wake replays) ----------


class Codes(PermanentError):
    def __init__(self) -> None:
        super().__init__("bad")
        self.codes = (400, 401)  # a tuple attribute
        self.raw = b"\x00\xff"  # bytes
        self.tags = {"a", "b"}  # a set
        self.by_status = {404: "nf"}  # int keys


class Slotted(PermanentError):
    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        super().__init__("slotted")
        self.code = code


def _json_error() -> Exception:
    try:
        json.loads("nope")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError


def _cause_and_context() -> Exception:
    try:
        try:
            raise KeyError("k")
        except KeyError as inner:
            raise ValueError("inner") from inner
    except ValueError as middle:
        try:
            raise QuotaError("acme", limit=1) from middle
        except QuotaError as outer:
            return outer
    raise AssertionError


class Unknown:
    def __repr__(self) -> str:
        return "<Unknown>"


KINDS: dict[str, Any] = {
    "group": lambda: ExceptionGroup("many", [ValueError("v"), KeyError("k")]),
    "unicode": lambda: b"\xff".decode(),
    "codes": Codes,
    "slotted": lambda: Slotted(7),
    "httperror": lambda: urllib.error.HTTPError("http://x/y", 404, "Not Found", {}, None),
    "non_json_arg": lambda: ValueError("v", Unknown(), (1, 2), b"\x89"),
    "chain": _cause_and_context,
    "json": _json_error,
    "calledprocess": lambda: subprocess.CalledProcessError(3, ["ls"], output=b"o", stderr="e"),
    "oserror": lambda: FileNotFoundError(2, "No such file", "/tmp/x"),
    "syntax": lambda: SyntaxError("bad", ("f.py", 1, 2, "x = (", 1, 3)),
    "stopiter_value": lambda: RuntimeError("wrapped", StopIteration(5)),
    "keyerror": lambda: KeyError("k"),
}


def _describe(exc: BaseException, depth: int = 0) -> dict[str, Any]:
    """What a workflow can see of an error: class, isinstance, str, args, attributes (public
    ones, as getattr sees them), cause and context."""
    seen: dict[str, Any] = {
        "class": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "isinstance": [c.__name__ for c in CHECKS if isinstance(exc, c)],
        "str": str(exc),
        "args": repr(exc.args),
        "hasattr_missing": hasattr(exc, "no_such_attribute"),
    }
    attrs = {}
    for name in ATTRS:
        try:
            attrs[name] = repr(getattr(exc, name))
        except AttributeError:
            pass
    seen["attrs"] = attrs
    if isinstance(exc, BaseExceptionGroup):
        seen["members"] = [_describe(m, depth + 1) for m in exc.exceptions]
    if depth < 3:
        seen["cause"] = _describe(exc.__cause__, depth + 1) if exc.__cause__ else None
        seen["context"] = _describe(exc.__context__, depth + 1) if exc.__context__ else None
        seen["suppress_context"] = exc.__suppress_context__
    return seen


CHECKS = (
    ValueError, KeyError, LookupError, OSError, FileNotFoundError, UnicodeDecodeError,
    SyntaxError, ExceptionGroup, PermanentError, QuotaError, Codes, Slotted, RuntimeError,
    json.JSONDecodeError, subprocess.CalledProcessError, urllib.error.URLError,
    urllib.error.HTTPError,
)  # fmt: skip
ATTRS = (
    "codes", "raw", "tags", "by_status", "code", "msg", "doc", "pos", "errno", "strerror",
    "filename", "encoding", "object", "start", "end", "reason", "returncode", "cmd", "output",
    "stderr", "lineno", "offset", "text", "end_offset", "value", "account", "limit", "url",
    "hdrs",
)  # fmt: skip


def kinds_app(store_url: str, seen: dict[str, list[Any]]) -> App:
    app = App(store=store_url, max_parked=0)

    @app.step
    def fail(kind: str) -> str:
        raise KINDS[kind]()

    @app.workflow
    async def wf(ctx: Context, kind: str) -> str:
        try:
            await fail(kind)
        except Exception as exc:
            caught = _describe(exc)
            star: list[str] = []
            try:
                raise exc
            except* ValueError as group:  # a real group on both runs: except* splits it
                star = [str(e) for e in group.exceptions]
            except* BaseException:
                pass
            caught["except* ValueError"] = star
        seen[kind].append(caught)
        await ctx.wait_for("go")  # parks for sure: the wake replays the run
        return "ok"

    return app


async def test_each_kind_of_error_is_the_same_on_the_first_run_and_on_replay(
    store_url, wait_status
):
    seen: dict[str, list[Any]] = {k: [] for k in KINDS}
    app = kinds_app(store_url, seen)
    async with app:
        for kind in KINDS:
            run = await app.start("wf", {"kind": kind})
            await wait_status(app, run.id, "waiting")
            await app.signal(run.id, "go")
            assert await run.result(timeout=20) == "ok"
    for kind, views in seen.items():
        assert len(views) >= 2, kind  # the first run and at least one replay
        assert all(v == views[0] for v in views), (kind, views)
    first = {k: v[0] for k, v in seen.items()}
    # ExceptionGroup: except* ValueError catches its ValueError member, first run and replay.
    assert first["group"]["except* ValueError"] == ["v"]
    assert first["group"]["class"] == "builtins.ExceptionGroup"
    assert [m["class"] for m in first["group"]["members"]] == [
        "builtins.ValueError",
        "builtins.KeyError",
    ]
    # UnicodeDecodeError: rebuilt through its own __init__, its C fields restored.
    uni = first["unicode"]
    assert uni["class"] == "builtins.UnicodeDecodeError"
    assert uni["str"] == "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    assert uni["attrs"]["object"] == repr(b"\xff")
    # Non-JSON attributes of common kinds round-trip; so do slots.
    codes = first["codes"]["attrs"]
    assert codes["codes"] == "(400, 401)"
    assert codes["raw"] == repr(b"\x00\xff")
    assert codes["tags"] in ("{'a', 'b'}", "{'b', 'a'}")
    assert codes["by_status"] == "{404: 'nf'}"
    assert first["slotted"]["attrs"]["code"] == "7"
    assert "Slotted" in first["slotted"]["isinstance"]
    # HTTPError: caught as itself, missing attributes are AttributeError (hasattr works).
    http = first["httperror"]
    assert "HTTPError" in http["isinstance"]
    assert http["hasattr_missing"] is False
    assert http["str"] == "HTTP Error 404: Not Found"
    assert http["attrs"]["code"] == "404"
    # An argument of an unknown kind is its repr on both runs; tuples and bytes are kept.
    assert first["non_json_arg"]["args"] == repr(("v", "<Unknown>", (1, 2), b"\x89"))
    # __cause__ and the context Python set (the same error), and the suppressed context of
    # a JSONDecodeError (its StopIteration), are kept.
    chain = first["chain"]
    assert chain["cause"]["class"] == "builtins.ValueError"
    assert chain["context"] == chain["cause"]
    assert chain["cause"]["cause"]["class"] == "builtins.KeyError"
    assert first["json"]["class"] == "json.decoder.JSONDecodeError"
    assert first["json"]["context"]["class"] == "builtins.StopIteration"
    assert first["json"]["suppress_context"] is True
    proc = first["calledprocess"]["attrs"]
    assert (proc["output"], proc["stderr"], proc["cmd"]) == ("b'o'", "'e'", "['ls']")
    assert first["oserror"]["attrs"]["filename"] == "'/tmp/x'"
    assert "FileNotFoundError" in first["oserror"]["isinstance"]
    assert first["syntax"]["attrs"]["lineno"] == "1"
    assert first["syntax"]["attrs"]["text"] == "'x = ('"
    assert first["keyerror"]["str"] == "'k'"
