#!/usr/bin/env python
"""Lineage's cost per step: what the gate's ``lineage`` interceptor adds to a step.

Two measurements:

1. **The interceptor alone**, in this process: what ``Recorder.interceptor`` adds to a
   step's pass through the gate (hashing its arguments, adding the lineage entry to its
   record's ``meta``) and encoding that entry in the record's JSON, for typical arguments:
   one short string (a path), a string and an int, a dict holding 1 KB of text, a pydantic
   model holding 10 KB. Microseconds per step, best of ``--repeat``.
2. **End to end** on SQLite (WAL, synchronous=FULL): ``--runs`` runs of a 10-step workflow
   of trivial steps (``x -> x + 1``), one at a time, in process, lineage off vs on (audit,
   tracing and policies off on both sides, so lineage is all that differs), alternating,
   best of ``--repeat`` each; steps per second and process CPU per step, and the ratio.

    .venv/bin/python bench/lineage.py
    .venv/bin/python bench/lineage.py --runs 200 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aiosys import App, Context
from aiosys.governance.lineage_record import KEY, Recorder
from aiosys.kernel.gate import EffectCall


class Doc(BaseModel):
    path: str
    text: str


def ocr(path: str) -> str:
    return path


def classify(label: str, n: int) -> str:
    return label


def summarize(doc: dict[str, Any]) -> str:
    return ""


def index(doc: Doc) -> str:
    return ""


CASES: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("one path", ocr, ("scans/2026/11/contract-0042.pdf",)),
    ("a string and an int", classify, ("invoice", 3)),
    ("a dict of 1 KB text", summarize, ({"text": "lorem ipsum " * 85, "lang": "en"},)),
    ("a model of 10 KB text", index, (Doc(path="a.pdf", text="dolor sit amet " * 680),)),
]


def interceptor_cost(repeat: int, n: int) -> list[tuple[str, float]]:
    """Microseconds the interceptor adds to one step: the chain driven by hand, once through
    ``Recorder.interceptor`` and once straight to the executor (a no-op), plus encoding the
    record's ``meta`` with the lineage entry in it (the effect log writes it as JSON)."""
    recorder = Recorder()

    async def executor(call: EffectCall) -> None:
        return None

    def drive(coro: Any) -> None:
        try:
            coro.send(None)
        except StopIteration:
            pass

    out = []
    for label, fn, args in CASES:
        call = EffectCall(
            run_execution=None, seq=1, kind="step", name=fn.__name__, fn=fn, args=args
        )
        # A run's effect: the interceptor passes direct effects through, so give it a run.
        object.__setattr__(call, "run_execution", object())
        with_, without = float("inf"), float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(n):
                call.meta.clear()
                drive(executor(call))
            without = min(without, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(n):
                call.meta.clear()
                drive(recorder.interceptor(call, executor))
                json.dumps(call.meta.get("record"))
            with_ = min(with_, time.perf_counter() - t0)
        assert KEY in call.meta["record"]
        out.append((label, (with_ - without) / n * 1e6))
    return out


async def end_to_end(lineage: bool, runs: int, directory: Path) -> tuple[float, float]:
    path = directory / f"bench-{lineage}-{time.monotonic_ns()}.db"
    app = App(
        store=f"sqlite:///{path}",
        audit=False,
        tracing=False,
        lineage=lineage,
        models_dir="",
        preload_models=False,
        policies_dir="",
    )

    @app.step
    async def inc(x: int) -> int:
        return x + 1

    @app.workflow
    async def ten(ctx: Context, x: int) -> int:
        for _ in range(10):
            x = await inc(x)
        return x

    async with app:
        await app.run("ten", {"x": 0})  # warm up
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(runs):
            assert await app.run("ten", {"x": i}) == i + 10
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = runs * 10
    return steps / wall, cpu / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per interceptor case")
    args = parser.parse_args()
    os.environ.pop("AIOSYS_LINEAGE", None)

    print(f"lineage interceptor alone, per step (best of {args.repeat}):")
    for label, us in interceptor_cost(args.repeat, args.calls):
        print(f"  {label:<24} {us:8.2f} us")

    best: dict[bool, tuple[float, float]] = {False: (0.0, 0.0), True: (0.0, 0.0)}
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        for _ in range(args.repeat):
            for on in (False, True):
                rate, cpu = asyncio.run(end_to_end(on, args.runs, Path(tmp)))
                if rate > best[on][0]:
                    best[on] = (rate, cpu)
    print(f"end to end, SQLite, {args.runs} runs x 10 steps one at a time (best of {args.repeat}):")
    for on in (False, True):
        rate, cpu = best[on]
        print(f"  lineage {'on ' if on else 'off'}  {rate:8.0f} steps/s  {cpu:7.1f} us CPU/step")
    print(f"  on/off throughput: {best[True][0] / best[False][0]:.1%}")
    print(f"  CPU per step added: {best[True][1] - best[False][1]:+.1f} us")


if __name__ == "__main__":
    main()
