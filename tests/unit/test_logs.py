"""Structured logs (aiosys.observe.logs): JSON lines with run, effect, trace and span; the
library writes no print statements; nothing is installed over logging someone configured."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from aiosys.kernel.effects import StepInfo, _step_info
from aiosys.observe import logs

SRC = Path(__file__).resolve().parents[2] / "src" / "aiosys"


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger(name)
    logger.handlers = [logs.handler_for(out, json_lines=True)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_inside_a_step_and_a_span_names_run_seq_trace_and_span() -> None:
    logger, out = json_logger("test.logs.context")
    tracer = TracerProvider().get_tracer("test")
    token = _step_info.set(StepInfo(run_id="r-1", seq=4, attempt=2, name="ocr"))
    try:
        with tracer.start_as_current_span("step") as span:
            logger.info("reading %s", "a.pdf", extra={"pages": 3})
    finally:
        _step_info.reset(token)
    logger.warning("outside")
    inside, outside = lines(out)
    ctx = span.get_span_context()
    assert inside["message"] == "reading a.pdf"
    assert (inside["run_id"], inside["seq"]) == ("r-1", 4)
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert inside["pages"] == 3 and inside["level"] == "INFO"
    assert inside["ts"].endswith("Z")
    assert [outside[k] for k in logs.CONTEXT_FIELDS] == [None] * 4


def test_fields_a_record_carries_are_kept_and_an_effect_field_is_its_seq() -> None:
    logger, out = json_logger("test.logs.extra")
    token = _step_info.set(StepInfo(run_id="r-other", seq=9, attempt=1, name="x"))
    try:
        logger.info("run.retry", extra={"run_id": "r-2", "effect": 3})
        logger.info("run.started", extra={"run_id": "r-2"})
    finally:
        _step_info.reset(token)
    about_effect, about_run = lines(out)
    # The record's own run and effect, not the step's around it; no effect, no seq.
    assert (about_effect["run_id"], about_effect["seq"]) == ("r-2", 3)
    assert (about_run["run_id"], about_run["seq"]) == ("r-2", None)


def test_uvicorns_coloured_copy_of_its_message_is_not_a_field() -> None:
    # `aiosys server`'s "Uvicorn running on ..." lines carried a `color_message` field: the
    # message again, with terminal colour codes, in every JSON line uvicorn writes.
    logger, out = json_logger("test.logs.uvicorn")
    logger.info(
        "Uvicorn running on %s",
        "http://127.0.0.1:8000",
        extra={"color_message": "Uvicorn running on \x1b[1m%s\x1b[0m"},
    )
    (line,) = lines(out)
    assert line["message"] == "Uvicorn running on http://127.0.0.1:8000"
    assert "color_message" not in line


def test_an_exception_is_one_json_line_with_its_traceback() -> None:
    logger, out = json_logger("test.logs.exc")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    (line,) = lines(out)
    assert "ValueError: bad" in line["exc"] and line["level"] == "ERROR"


def test_a_terminal_gets_rich_text_with_the_context() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    handler = logs.handler_for(out)
    assert not isinstance(handler.formatter, logs.JsonFormatter)
    record = logging.makeLogRecord({"msg": "hello", "levelno": 20, "levelname": "INFO"})
    record.run_id = "r-3"
    handler.handle(record)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # rich colours a terminal
    assert "hello [run=r-3]" in text


@contextmanager
def bare_root() -> Iterator[None]:
    """No handler on the root logger (as in a process that configured no logging); pytest's
    own handlers are put back after."""
    root, lib = logging.getLogger(), logging.getLogger("aiosys")
    saved, saved_lib, level = list(root.handlers), list(lib.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET}
    root.handlers, lib.handlers = [], []
    try:
        yield
    finally:
        root.handlers, lib.handlers = saved, saved_lib
        root.setLevel(level)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)


def test_install_default_only_when_nothing_is_configured_and_stands_down_after() -> None:
    out, host = io.StringIO(), io.StringIO()
    with bare_root():
        assert logs.install_default(out) is True
        assert logs.install_default(out) is False  # once
        logging.getLogger("aiosys.runs").warning("lost", extra={"run_id": "r-4"})
        logging.getLogger("aiosys.runs").info("not at WARNING")
        logging.basicConfig(stream=host)  # the host configures logging after the app opened
        logging.getLogger("aiosys.runs").warning("again")
    assert [line["run_id"] for line in lines(out)] == ["r-4"]
    assert "again" in host.getvalue()


def test_install_default_and_configure_cli_leave_configured_logging_alone() -> None:
    mine = logging.StreamHandler(io.StringIO())
    with bare_root():
        logging.getLogger().addHandler(mine)
        assert logs.install_default(io.StringIO()) is False
        assert logs.configure_cli(logging.INFO, stream=io.StringIO()) is None
        assert logging.getLogger().handlers == [mine]
        assert logging.getLogger("aiosys").handlers == []


def test_configure_cli_on_a_bare_process_writes_json_lines_at_its_level() -> None:
    out = io.StringIO()
    with bare_root():
        assert logs.configure_cli(logging.INFO, stream=out) is not None
        logging.getLogger("aiosys.worker").info("serving")
        logging.getLogger("aiosys.worker").debug("hidden")
    assert [line["message"] for line in lines(out)] == ["serving"]


def test_configure_cli_keeps_http_clients_per_request_lines_out_unless_debugging() -> None:
    """httpx logs every request at INFO: a server calling a model per request would write a
    line per call. At DEBUG they log as they are."""
    out = io.StringIO()
    with bare_root():
        logs.configure_cli(logging.INFO, stream=out)
        logging.getLogger("httpx2").info('HTTP Request: POST http://m/v1 "HTTP/1.1 200 OK"')
        logging.getLogger("httpx").warning("kept")
    assert [line["message"] for line in lines(out)] == ["kept"]
    out = io.StringIO()
    with bare_root():
        logs.configure_cli(logging.DEBUG, stream=out)
        logging.getLogger("httpx2").info("shown")
    assert [line["message"] for line in lines(out)] == ["shown"]


def test_the_library_has_no_print_calls() -> None:
    """src/aiosys outside cli/ writes through logging only (the CLI prints its output)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []
