"""Startup on both stores: ``aiosys server`` answers ``/healthz`` as soon as it listens, while
its models (the redaction detector: Presidio, spaCy, the name model) still load; ``/readyz``
is then 503 saying ``loading redaction models`` (with ``Retry-After``), and 200 once they are
loaded; a model call made meanwhile waits for the warm-up (never loads beside it), and is
redacted. The warm-up is held by the test (the app's ``redaction.load`` waits for a file or
an event the test sets), so every state is observed, none guessed by timing."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import threading
import uuid
from typing import Any

import httpx
import pytest
from tests.integration.conftest import until
from tests.integration.procs import Proc, process_env, until_ready

import aiosys
from aiosys.api import create_api
from aiosys.models.providers.local import register_callable, unregister_callable

pytestmark = pytest.mark.timeout(180)

EMAIL = "maria.garcia@example.com"

#: A server's app: an external card whose requests are redacted (so the app loads the
#: detector as it opens), and a warm-up held until ``$APP_DIR/release`` exists.
APP = """
import os, time
from pathlib import Path
from aiosys import App
from aiosys.models.providers.local import register_callable

HERE = Path(os.environ["APP_DIR"])
register_callable("startup-echo", lambda messages: f"echo: {messages[-1].content}")
app = App(models_dir="", policies_dir="")
app.models.add_card(
    {"id": "cloud", "provider": "local", "external": True, "redaction": "always",
     "options": {"callable": "startup-echo"}}
)
_load = app.redaction.load

def held_load():
    (HERE / "loading").touch()
    while not (HERE / "release").exists():
        time.sleep(0.01)
    _load()

app.redaction.load = held_load
"""


def assert_loading(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "urn:aiosys:problem:not-ready"
    assert body["detail"] == "loading redaction models", body


async def test_the_server_answers_healthz_while_its_models_load(store_url, tmp_path):
    module = f"startup_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(APP)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiosys.cli", "server", "--app", f"{module}:app"),
        *("--store", store_url, "--port", "0", "--grace", "5"),
        cwd=tmp_path,
        env=process_env(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Proc(proc)
    try:
        # It listens while the warm-up is held (before, it opened the app first: never).
        line = await server.line_with("Uvicorn running on")
        server.keep_reading()
        found = re.search(r"http://[\d.]+:\d+", json.loads(line)["message"])
        assert found, line
        base = found.group(0)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            first = await client.get("/readyz")  # the providers first, then the detector
            assert first.status_code == 503 and first.json()["detail"].startswith("loading")
            await until((tmp_path / "loading").exists, timeout=60)  # at the detector now
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert_loading(await client.get("/readyz"))
            # A call made now waits for the warm-up, then is redacted by the detector.
            call = asyncio.create_task(
                client.post(
                    "/v1/chat/completions",
                    json={"model": "cloud", "messages": [{"role": "user", "content": EMAIL}]},
                )
            )
            assert_loading(await client.get("/readyz"))
            assert not call.done()
            (tmp_path / "release").touch()
            answer = await call
            assert answer.status_code == 200, answer.text
            content = answer.json()["choices"][0]["message"]["content"]
            assert content == f"echo: {EMAIL}"  # restored for the local principal
            await until_ready(client)
            assert (await client.get("/readyz")).json() == {"status": "ready"}
        proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in server.text


async def test_a_sigterm_while_the_models_load_stops_the_server_without_waiting(
    store_url, tmp_path
):
    """The warm-up never ends here (held): SIGTERM still stops the server, exit 0 (the
    warm-up's thread is not waited for, as a pool thread would be)."""
    module = f"startup_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(APP)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiosys.cli", "server", "--app", f"{module}:app"),
        *("--store", store_url, "--port", "0", "--grace", "5"),
        cwd=tmp_path,
        env=process_env(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Proc(proc)
    try:
        await server.line_with("Uvicorn running on")
        server.keep_reading()
        await until((tmp_path / "loading").exists, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in server.text


async def test_a_call_during_the_warm_up_waits_for_it_and_readyz_says_why(store_url, monkeypatch):
    """In process: ``open(background=True)`` returns with the warm-up held; readiness says
    what loads; a model call waits for the warm-up (it is answered after it ended, and the
    detector is loaded once), then readiness is ready."""
    order: list[str] = []

    def echo(messages: list[Any]) -> str:
        order.append("called")
        return f"echo: {messages[-1].content}"

    register_callable("startup-echo-in-process", echo)
    monkeypatch.setenv("AIOSYS_MODELS_DIR", "")
    app = aiosys.App(store_url, models_dir="", policies_dir="")
    app.models.add_card(
        {
            "id": "cloud",
            "provider": "local",
            "external": True,
            "redaction": "always",
            "options": {"callable": "startup-echo-in-process"},
        }
    )
    loading, release = threading.Event(), threading.Event()
    load = app.redaction.load
    loads: list[int] = []

    def held_load() -> None:
        loads.append(1)
        loading.set()
        release.wait(60)
        load()
        order.append("loaded")

    monkeypatch.setattr(app.redaction, "load", held_load)
    try:
        await app.open(background=True)
        await asyncio.to_thread(loading.wait, 60)
        assert app.warming == "loading redaction models"
        found = await app.readiness()
        assert (found.ready, found.reason, found.loading) == (
            False,
            "loading redaction models",
            "loading redaction models",
        )
        transport = httpx.ASGITransport(app=create_api(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
            call = asyncio.create_task(app.models.call("cloud", f"write to {EMAIL}"))
            assert_loading(await client.get("/readyz"))
            release.set()
            response = await call
            await app.warmed()
            assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert order == ["loaded", "called"]  # the call waited for the warm-up
        assert loads == [1]
        assert response.output == f"echo: write to {EMAIL}"
        assert app.warming is None and (await app.readiness()).ready
    finally:
        release.set()
        unregister_callable("startup-echo-in-process")
        await app.close()


async def test_open_waits_for_the_warm_up_unless_asked_not_to(store_url, monkeypatch):
    """``open()`` (a script, ``async with app``) returns warmed up, as before."""
    monkeypatch.setenv("AIOSYS_MODELS_DIR", "")
    app = aiosys.App(store_url, models_dir="", policies_dir="")
    app.models.add_card({"id": "m", "provider": "local", "options": {"callable": "x"}})
    async with app:
        assert app.warming is None
        assert (await app.readiness()).ready
