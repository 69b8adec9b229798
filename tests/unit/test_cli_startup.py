"""``aiosys runs list`` imports nothing it does not use, so it answers in a fraction of a
second of CPU (issue 9: under 0.3 s; about 0.65 s when every command imported the kernel,
pydantic and the model plane).

What is asserted is the set of modules a real ``aiosys`` process imported: that holds on a
machine of any speed and load, and the old import-everything code fails it. The CPU time of
``runs list`` is measured from a real subprocess and printed (``pytest -s``), with a bound
only a return to importing everything would pass (``bench/cli.py`` prints each command's).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = TESTS_DIR.parent / "src"

# Modules that reading runs from a SQLite store never needs: the kernel and the model plane,
# the identity libraries, pydantic (typer converts option values with it unless
# aiosys.cli.params does), Markdown rendering, the provider SDKs and their HTTP clients, the
# PostgreSQL driver.
NEVER = (
    "aiosys.app",
    "aiosys.kernel.app",  # the kernel proper (its package and principal.py are light)
    "aiosys.kernel.runtime",
    "aiosys.kernel.worker",
    "aiosys.models",
    "pydantic",
    "rich.markdown",
    "openai",
    "anthropic",
    "httpx",
    "numpy",
    "yaml",
    "psycopg",
    "jwt",
    "cryptography",
    "cedarpy",
)

# Runs the command as the console script does, and writes the names of the modules the
# process had imported when it exited (after the command's own exit).
PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from aiosys.cli import main
sys.argv[0] = "aiosys"
main()
"""


def environment(here: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(TESTS_DIR)])}
    env.pop("AIOSYS_STORE", None)
    # An installed package has its bytecode cached; a test run may have turned that off.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def imported_by(here: Path, *args: str) -> set[str]:
    out = here / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        cwd=here,
        env=environment(here),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return set(json.loads(out.read_text()))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NEVER))


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store holding one finished run: its URL and the run's id."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ("run", "greet", "-i", '{"name": "Ada"}', "--json", "--app", "cliapp:app")
    proc = subprocess.run(
        [sys.executable, "-m", "aiosys.cli", *args, "--store", url],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return url, json.loads(proc.stdout)["id"]


def test_reading_runs_imports_neither_kernel_nor_pydantic_nor_model_plane(
    tmp_path: Path, store: tuple[str, str]
) -> None:
    url, run_id = store
    for args in (
        ("runs", "list", "--store", url),
        ("runs", "list", "--json", "--limit", "5", "--status", "succeeded", "--store", url),
        ("runs", "show", run_id, "--store", url),
        ("runs", "show", run_id, "--json", "--store", url),
        ("--version",),
        ("--help",),
        ("runs", "list", "--help"),
    ):
        modules = imported_by(tmp_path, *args)
        assert "aiosys.cli.main" in modules and "aiosys.store" in modules
        # typer renders help with rich's Markdown support: help text may use it.
        allowed = {"rich.markdown"} if "--help" in args else set()
        assert [m for m in heavy(modules) if m not in allowed] == [], args


def test_the_public_names_are_still_there() -> None:
    import aiosys
    from aiosys import App, Context, Retry, RunHandle, current_step
    from aiosys.app import App as TheApp

    assert App is TheApp and aiosys.App is TheApp
    assert {Context.__name__, Retry.__name__, RunHandle.__name__} == {
        "Context",
        "Retry",
        "RunHandle",
    }
    assert callable(current_step)
    assert set(aiosys.__all__) <= set(dir(aiosys))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        aiosys.Nope  # noqa: B018


def test_runs_list_cpu_time_of_a_real_process_is_printed(
    tmp_path: Path, store: tuple[str, str]
) -> None:
    url, _ = store
    script = Path(sys.executable).parent / "aiosys"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "aiosys.cli"]
    argv = [*command, "runs", "list", "--store", url]
    env = environment(tmp_path)
    subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, check=True)  # warm-up
    calls, times = 5, []
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert proc.returncode == 0 and "greet" in proc.stdout, proc.stderr
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    times.sort()
    print(
        f"\naiosys runs list: {times[calls // 2]:.3f} s of CPU (median of {calls}; "
        f"min {times[0]:.3f}, max {times[-1]:.3f}); target < 0.3 s"
    )
    # Loose on purpose (a loaded machine doubles it); the module set above is the real check.
    assert times[0] < 2.0
