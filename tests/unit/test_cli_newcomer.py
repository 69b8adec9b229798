"""The newcomer path: what someone trying ``aiosys`` for the first time runs into.

Every bad store (a malformed URL, a missing directory, a file that is not a database, a
foreign ``runs`` table, a read-only file) is one ``error:`` line and exit 1, through the
real command (a subprocess: no test harness between it and the terminal), and nothing is
created on the way. Bad command lines are one line too (exit 2). The CPU time of
``aiosys runs list`` is measured and printed.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

TESTS_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = TESTS_DIR.parent / "src"


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(TESTS_DIR)])}
    env.pop("AIOSYS_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "aiosys.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_STORE", raising=False)
    return tmp_path


def test_each_bad_store_url_is_one_error_line_and_exit_1(here: Path) -> None:
    (here / "notes.db").write_text("my notes, not a database\n")
    with sqlite3.connect(here / "theirs.db") as conn:
        conn.execute("CREATE TABLE runs (id TEXT, who TEXT)")
    (here / "afile").write_text("")
    bad = {
        "sqlite:/x.db": "malformed store URL 'sqlite:/x.db': use sqlite:///",
        "sqlite:x.db": "malformed store URL 'sqlite:x.db'",
        "sqlite://x.db": "malformed store URL 'sqlite://x.db'",
        "sqlite:///": "names no file",
        "sqlite:///no/such/dir/x.db": "no/such/dir does not exist; create it (or pass --create",
        "sqlite:///afile/x.db": "afile is a file, not a directory",
        "sqlite:///notes.db": "notes.db is not an aiosys SQLite store (file is not a database)",
        "sqlite:///theirs.db": "theirs.db is not an aiosys SQLite store (table runs already",
        "mysql://localhost/x": "unsupported store URL",
    }
    before = sorted(p.name for p in here.iterdir())
    for url, says in bad.items():
        for args in (
            ("runs", "list", "--store", url),
            ("run", "greet", "-i", '{"name": "A"}', "--app", "cliapp:app", "--store", url),
        ):
            line = one_error_line(command(*args, cwd=here))
            assert says in line, (url, line)
        print(f"{url:<28} -> {line}")
    assert sorted(p.name for p in here.iterdir()) == before  # nothing made: no sqlite: dir
    assert (here / "notes.db").read_text() == "my notes, not a database\n"
    with sqlite3.connect(here / "theirs.db") as conn:  # left as it was, no aiosys tables
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"runs"}


def test_create_makes_the_missing_directory(here: Path) -> None:
    url = "sqlite:///data/new/aiosys.db"
    args = ("run", "greet", "-i", '{"name": "Ada"}', "--app", "cliapp:app", "--store", url)
    reported_error(aiosys(*args))
    assert not (here / "data").exists()
    assert ok(aiosys(*args, "--create")).stdout.strip() == "hello Ada"
    assert (here / "data" / "new" / "aiosys.db").is_file()
    # The default store's own directory (./.aiosys) needs no --create.
    assert "0 runs" in ok(aiosys("runs", "list")).stdout
    assert (here / ".aiosys" / "aiosys.db").is_file()


def test_a_read_only_store_is_one_error_line(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{here / 'ro.db'}"
    ok(aiosys("runs", "list", "--store", url))  # made, and migrated
    real_connect = sqlite3.connect

    def read_only(path: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        # Root ignores file modes, so the file is opened read-only as SQLite sees one.
        kwargs["uri"] = True
        return real_connect(f"file:{path}?mode=ro", *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", read_only)
    message = reported_error(
        aiosys("run", "greet", "-i", '{"name": "A"}', "--app", "cliapp:app", "--store", url)
    )
    assert "is read-only" in message and "make the file and its directory writable" in message


def test_a_foreign_runs_table_in_postgresql_is_one_error_line(pg_url: str, here: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA theirs")
        conn.execute("CREATE TABLE theirs.runs (id int)")
    line = one_error_line(command("runs", "list", "--store", f"{pg_url}?schema=theirs", cwd=here))
    assert "schema theirs) is not an aiosys store" in line and "already exists" in line
    assert "?schema=name" in line
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'theirs'"
        ).fetchall()
    assert tables == [("runs",)]  # the migration was rolled back whole


def test_postgresql_takes_a_schema(pg_url: str, here: Path) -> None:
    store = f"{pg_url}?schema=aiosys"
    args = ("run", "greet", "-i", '{"name": "Ada"}', "--app", "cliapp:app", "--store", store)
    assert ok(aiosys(*args)).stdout.strip() == "hello Ada"
    (run,) = json.loads(ok(aiosys("runs", "list", "--json", "--store", store)).stdout)
    assert run["status"] == "succeeded"
    assert json.loads(ok(aiosys("runs", "list", "--json", "--store", pg_url)).stdout) == []
    with psycopg.connect(pg_url) as conn:
        schema = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'effects'"
            " AND table_schema = 'aiosys'"
        ).fetchall()
    assert schema == [("aiosys",)]
    assert "is not one lower-case name" in reported_error(
        aiosys("runs", "list", "--store", f"{pg_url}?schema=Bad;drop")
    )


def test_bad_command_lines_are_one_error_line_and_exit_2(here: Path) -> None:
    for args, says in [
        (("runs", "list", "--limit", "abc"), "Invalid value for '--limit'"),
        (("runs", "list", "--limit", "0"), "greater than or equal to 1"),
        (("runs", "list", "--bogus"), "No such option: --bogus"),
        (("nope",), "No such command 'nope'"),
        (("run",), "Missing argument 'workflow'"),
    ]:
        line = one_error_line(command(*args, cwd=here), code=2)
        assert says in line and "--help)" in line, line
        assert says in reported_error(aiosys(*args), code=2)


def test_version(here: Path) -> None:
    proc = command("--version", cwd=here)
    assert proc.returncode == 0 and proc.stdout.startswith("aiosys "), proc


def test_input_from_a_file_and_from_stdin(here: Path) -> None:
    store = f"sqlite:///{here / 'in.db'}"
    (here / "in.json").write_text('{"name": "File"}')
    base = ("run", "greet", "--app", "cliapp:app", "--store", store)
    assert ok(aiosys(*base, "--input", "@in.json")).stdout.strip() == "hello File"
    from typer.testing import CliRunner

    from aiosys.cli.main import cli

    result = CliRunner().invoke(cli, [*base, "-i", "-"], input='{"name": "Stdin"}')
    assert result.exit_code == 0 and result.stdout.strip() == "hello Stdin", result.output
    message = reported_error(aiosys(*base, "-i", "@missing.json"), code=2)
    assert "--input @missing.json: cannot read missing.json: No such file" in message
    (here / "bad.json").write_text("{name: 1}")
    assert "--input (from bad.json) is not valid JSON" in reported_error(
        aiosys(*base, "-i", "@bad.json"), code=2
    )


def test_runs_list_cpu_time_is_measured(here: Path) -> None:
    store = f"sqlite:///{here / 'cpu.db'}"
    ok(aiosys("runs", "list", "--store", store))  # made and migrated once
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    calls = 3
    for _ in range(calls):
        assert command("runs", "list", "--store", store, cwd=here).returncode == 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / calls
    print(f"aiosys runs list: {cpu:.3f} s of CPU per call (mean of {calls})")
