#!/usr/bin/env python
"""CPU time of the ``aiosys`` command: what each call costs before it does anything useful.

Each command runs as its own process, the way a user or a script runs it, against a fresh
SQLite store holding one finished run; the figure is the user + system CPU time of that
process (``resource.getrusage(RUSAGE_CHILDREN)``), the median of ``--repeat`` calls after
one warm-up call (which writes the bytecode caches, as a first use does). The target of
issue 9: ``aiosys runs list`` under 0.3 s.

    .venv/bin/python bench/cli.py
    .venv/bin/python bench/cli.py --repeat 9

The command is the console script next to this Python (``bin/aiosys``), else
``python -m aiosys.cli``. PYTHONPATH is passed through, so a worktree's src can be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
APP_MODULE = """
from aiosys import App, Context

app = App()


@app.workflow
async def greet(ctx: Context, name: str) -> str:
    return f"hello {name}"
"""


def aiosys_command() -> list[str]:
    script = Path(sys.executable).parent / "aiosys"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "aiosys.cli"]


def cpu_of(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """User + system CPU seconds of one run of ``argv`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="calls per command (median)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode cached
    env.pop("AIOSYS_STORE", None)
    aiosys = aiosys_command()
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "benchapp.py").write_text(APP_MODULE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tmp, env.get("PYTHONPATH")]))
        store = f"sqlite:///{here / 'cli.db'}"
        first = ("run", "greet", "-i", '{"name": "bench"}', "--json", "--app", "benchapp:app")
        started = subprocess.run(
            [*aiosys, *first, "--store", store],
            cwd=here,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        run_id = json.loads(started.stdout)["id"]
        commands = {
            "aiosys runs list": ["runs", "list", "--store", store],
            "aiosys runs list --json": ["runs", "list", "--json", "--store", store],
            "aiosys runs show ID": ["runs", "show", run_id, "--store", store],
            "aiosys --version": ["--version"],
            "aiosys --help": ["--help"],
        }
        print(f"CPU time per call (user+sys), median of {args.repeat}; {' '.join(aiosys)}")
        for name, argv in commands.items():
            cpu_of([*aiosys, *argv], here, env)  # warm-up: bytecode caches
            times = [cpu_of([*aiosys, *argv], here, env) for _ in range(args.repeat)]
            print(
                f"  {name:<26} {statistics.median(times):.3f} s"
                f"  (min {min(times):.3f}, max {max(times):.3f})"
            )


if __name__ == "__main__":
    main()
