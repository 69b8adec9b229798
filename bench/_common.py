"""Helpers shared by the benchmarks (bench/kernel.py, bench/gateway.py, bench/server.py):
versions, the source measured (git head, a digest), a concurrency list
argument, running one measurement in a child process, and profiling it."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _tree_hash(root: Path) -> str:
    """A digest of the source measured (the tree is edited while benchmarks run)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def git_state(repo: Path) -> dict[str, Any]:
    """The source measured: ``git_head`` (short), ``git_dirty`` (src/ has uncommitted
    changes) and ``src_sha256`` (a digest of src/ as it is)."""

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=repo, capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return "?"

    return {
        "git_head": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "src")),
        "src_sha256": _tree_hash(repo / "src"),
    }


def concurrency_list(s: str) -> list[int]:
    """argparse type: ``"1,16"`` -> ``[1, 16]``, each >= 1."""
    try:
        out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {s!r}") from None
    if not out or any(x < 1 for x in out):
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1: {s!r}")
    return out


def choice_list(choices: tuple[str, ...], what: str) -> Any:
    """argparse type: a comma-separated, non-empty subset of ``choices`` (``what``: their
    name in the error, e.g. ``"system"``)."""

    def parse(s: str) -> list[str]:
        out = [x.strip() for x in s.split(",") if x.strip()]
        bad = [x for x in out if x not in choices]
        if bad or not out:
            raise argparse.ArgumentTypeError(
                f"unknown {what}(s) {bad or s!r}; choose from {', '.join(choices)}"
            )
        return out

    return parse


def bench_parser(doc: str | None, *, timeout: float = 900) -> argparse.ArgumentParser:
    """A benchmark's parser (its module docstring as the help) with the arguments every
    one takes: ``--concurrency`` (default 1,16), ``--repeat``, ``--timeout`` (seconds per
    child process) and its children's hidden ``--_child`` / ``--_out``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--concurrency", type=concurrency_list, default=[1, 16], help="e.g. 1,16")
    p.add_argument(
        "--repeat", type=int, default=1, help="measure each cell N times, interleaved; medians"
    )
    p.add_argument("--timeout", type=float, default=timeout, help="seconds per child process")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    return p


def run_child(
    script: Path,
    spec: dict[str, Any],
    out_path: Path,
    workdir: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``script --_child SPEC --_out OUT`` in a fresh process; the JSON it wrote, with
    the load averages before and after, or ``{"system", "error"}`` (its output's tail)."""
    load0 = os.getloadavg()
    try:
        proc = subprocess.run(
            [sys.executable, str(script), "--_child", json.dumps(spec), "--_out", str(out_path)],
            capture_output=True,
            text=True,
            cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"system": spec["system"], "error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-20:]
        return {"system": spec["system"], "error": "\n".join(tail) or f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["loadavg_before"] = load0
    result["loadavg_after"] = os.getloadavg()
    return result


def make_profiler(kind: str, interval: float = 0.0005) -> Any:
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        # async_mode="disabled": samples what the loop thread is actually running (idle time
        # shows up in the selector), rather than attributing await time to awaiting frames.
        return Profiler(async_mode="disabled", interval=interval)
    import cProfile

    if os.environ.get("AIOSYS_BENCH_PROFILE_CPU"):
        import time

        # The loop thread's CPU time, not wall time: time the thread was descheduled (a
        # busy machine, the database server on the same cores) is not charged to the
        # function it was in. Slower to profile (a system call per event).
        return cProfile.Profile(time.thread_time)
    return cProfile.Profile()


def _short(path: str | None) -> str:
    if not path:
        return "?"
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return path


def profile_rows(kind: str, prof: Any, top: int, out_base: Path) -> dict[str, Any]:
    """Top functions by cumulative and by own time, and (cProfile) every aiosys function by
    cumulative time: plain rows for the parent to print."""
    if kind == "pyinstrument":
        session = prof.last_session
        tree = out_base.with_suffix(".pyinstrument.txt")
        tree.write_text(prof.output_text(unicode=True, color=False, show_all=False))
        cum: dict[str, float] = {}
        own: dict[str, float] = {}
        total = session.duration

        def walk(frame: Any, parent: str, stack: frozenset[str]) -> None:
            if frame.identifier == "[self]":  # a frame's own time, as a synthetic child
                own[parent] = own.get(parent, 0.0) + frame.time
                return
            if frame.is_synthetic:
                key = frame.identifier or "<root>"
            else:
                key = f"{frame.function}  {_short(frame.file_path)}:{frame.line_no}"
            if key not in stack:
                cum[key] = cum.get(key, 0.0) + frame.time
            if not frame.children:
                own[key] = own.get(key, 0.0) + frame.time
            for child in frame.children:
                walk(child, key, stack | {key})

        root = session.root_frame()
        if root is not None:
            walk(root, "<root>", frozenset())
        by_cum = sorted(cum.items(), key=lambda kv: -kv[1])[:top]
        by_own = sorted(own.items(), key=lambda kv: -kv[1])[:20]
        return {
            "profiler": "pyinstrument",
            "total_s": total,
            "cumulative": [{"func": k, "cumtime": v} for k, v in by_cum],
            "own": [{"func": k, "tottime": v} for k, v in by_own],
            "aiosys": [
                {"func": k, "cumtime": v}
                for k, v in sorted(cum.items(), key=lambda kv: -kv[1])
                if "aiosys/" in k
            ][:top],
            "tree_file": str(tree),
        }

    import pstats

    prof.dump_stats(str(out_base.with_suffix(".prof")))
    st = pstats.Stats(prof)
    total = st.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "func": f"{func}  {_short(file)}:{line}",
                "ncalls": nc if nc == cc else f"{nc}/{cc}",
                "tottime": tt,
                "cumtime": ct,
                "aiosys": "/aiosys/" in file,
            }
        )
    by_cum = sorted(rows, key=lambda r: -r["cumtime"])
    by_own = sorted(rows, key=lambda r: -r["tottime"])[:20]
    return {
        "profiler": "cProfile (event-loop thread only)",
        "total_s": total,
        "cumulative": by_cum[:top],
        "own": by_own,
        "aiosys": [r for r in by_cum if r["aiosys"]][:top],
        "prof_file": str(out_base.with_suffix(".prof")),
    }
