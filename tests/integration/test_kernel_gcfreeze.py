"""A worker freezes what its process holds when the first one starts (gc.freeze), unless
AIOSYS_GC_FREEZE=off; a process that never starts a worker is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """
import asyncio, gc, sys
from aiosys import App

app = App(store=sys.argv[1], audit=False, policies_dir="")

@app.workflow()
async def noop(ctx) -> int:
    return 1

async def main() -> None:
    before = gc.get_freeze_count()
    if sys.argv[2] == "worker":
        async with app:
            assert await app.run("noop") == 1
    else:
        await app.open()
        await app.close()
    print(before, gc.get_freeze_count())

asyncio.run(main())
"""


@pytest.mark.parametrize(
    "mode,setting,frozen",
    [("worker", None, True), ("worker", "off", False), ("open-only", None, False)],
)
def test_the_first_worker_freezes_the_process(tmp_path: Path, mode, setting, frozen):
    env = {k: v for k, v in os.environ.items() if k != "AIOSYS_GC_FREEZE"}
    if setting is not None:
        env["AIOSYS_GC_FREEZE"] = setting
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, f"sqlite:///{tmp_path / 's.db'}", mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before == 0
    assert (after > 0) is frozen


SERVING = """
import asyncio, gc, sys
from aiosys import App

app = App(store=sys.argv[1], audit=False, policies_dir="", models_dir="")
# A card that may need redaction: the warm-up loads the detector (Presidio, spaCy).
app.models.add_card({"id": "ext", "provider": "openai", "endpoint": "http://127.0.0.1:9/v1",
                     "redaction": "always"})

async def main() -> None:
    await app.open(background=True)  # as aiosys server: the warm-up goes on while it serves
    try:
        async with app.embedded():  # the worker starts: the first freeze
            await app.warmed()
            gc.collect()
            print(gc.get_freeze_count(), len(gc.get_objects()))
    finally:
        await app.close()

asyncio.run(main())
"""


def test_what_a_servers_warm_up_loads_is_frozen_too(tmp_path: Path):
    # The worker freezes at its start, while the warm-up may still be loading models: what
    # the warm-up loaded is frozen when it ends, so a full collection does not walk it.
    env = {k: v for k, v in os.environ.items() if k != "AIOSYS_GC_FREEZE"}
    out = subprocess.run(
        [sys.executable, "-c", SERVING, f"sqlite:///{tmp_path / 's.db'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    frozen, tracked = map(int, out.stdout.split())
    assert frozen > 100_000  # the modules, the app, the detector's models
    assert tracked < frozen / 10, (frozen, tracked)  # what the collector still walks
