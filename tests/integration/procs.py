"""Real ``aiosys`` processes of a test (``worker``, ``server``): the app module they load
(steps that wait for a file the test writes), its environment, their stderr line by line."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
import uuid
from pathlib import Path

import httpx
import pytest

import aiosys
from aiosys import App

#: An app whose steps hold until ``$APP_DIR/release`` exists (having touched ``started``).
APP = """
import asyncio, os
from pathlib import Path
from aiosys import App, Context

app = App()
HERE = Path(os.environ["APP_DIR"])

@app.step
async def slow(tag: str) -> str:
    (HERE / "started").touch()
    while not (HERE / "release").exists():
        await asyncio.sleep(0.01)
    return tag

@app.workflow
async def wf(ctx: Context, tag: str) -> str:
    return await slow(tag)

@app.step
def stuck_sync(tag: str) -> str:  # a sync step on a pool thread, stuck until released
    import time
    (HERE / "started").touch()
    while not (HERE / "release").exists():
        time.sleep(0.01)
    return tag

@app.workflow
async def wf_sync(ctx: Context, tag: str) -> str:
    return await stuck_sync(tag)

@app.workflow(on="greeting.sent")
async def hello(ctx: Context, name: str) -> str:
    return f"hello {name}"
"""


async def until_ready(client: httpx.AsyncClient, timeout: float = 120.0) -> None:
    """Until the server's ``/readyz`` answers 200: it listens (``/healthz``) before its
    models are loaded, and is ready once they are."""
    async with asyncio.timeout(timeout):
        while True:
            if (await client.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.05)


def load_app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, App]:
    """Write ``APP`` as a module under ``tmp_path``; its name and its app imported here."""
    module = f"procs_app_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{module}.py"
    path.write_text(APP)
    monkeypatch.setenv("APP_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return module, mod.app


def process_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an ``aiosys`` process loading ``APP`` from ``tmp_path``."""
    env = dict(os.environ)
    env["APP_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(Path(aiosys.__file__).parents[1])
    env["AIOSYS_MODELS_DIR"] = ""
    return env


class Proc:
    """A process started with stderr piped."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line_with(self, text: str) -> str:
        """Read stderr until a line containing ``text``."""
        async with asyncio.timeout(30):
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                assert self.proc.stderr is not None
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"process exited without {text!r}:\n{self.text}")
                self.lines.append(raw.decode())

    def keep_reading(self) -> None:
        """Read stderr in the background from now on (a process that logs much while the
        test does not read would block on a full pipe)."""

        async def read() -> None:
            assert self.proc.stderr is not None
            while raw := await self.proc.stderr.readline():
                self.lines.append(raw.decode())

        self._reader = asyncio.get_running_loop().create_task(read())

    async def exit_code(self) -> int:
        assert self.proc.stderr is not None
        async with asyncio.timeout(30):
            reader = getattr(self, "_reader", None)
            if reader is not None:
                await reader
            else:
                self.lines.append((await self.proc.stderr.read()).decode())
            return await self.proc.wait()

    @property
    def text(self) -> str:
        return "".join(self.lines)


async def server_on_free_port(
    tmp_path: Path, module: str, store_url: str, *extra: str
) -> tuple[Proc, str]:
    """``aiosys server`` on a free port; the process and its base URL once it listens."""
    env = process_env(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiosys.cli",
        "server",
        "--app",
        f"{module}:app",
        "--store",
        store_url,
        "--port",
        "0",
        "--grace",
        "60",
        *extra,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Proc(proc)
    line = await server.line_with("Uvicorn running on")
    message = json.loads(line)["message"]
    found = re.search(r"http://[\d.]+:\d+", message)
    assert found, message
    return server, found.group(0)
