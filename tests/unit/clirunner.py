"""Running the ``aiosys`` command in-process, and what a well-behaved result looks like."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from aiosys.cli.main import cli


def aiosys(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def reported_error(result: Result, code: int = 1) -> str:
    """The command failed with ``code`` and one ``error:`` line, not an exception."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr
