"""``aiosys demo --serve`` (what ``./run demo`` runs): after the demo, the console and the HTTP
API are served on the demo's store, at the address it prints, until SIGTERM (exit 0)."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys

import httpx
import pytest
from tests.integration.procs import Proc, process_env

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until_up(client: httpx.AsyncClient) -> None:
    """Until the server answers (it starts listening just after printing its address)."""
    async with asyncio.timeout(60):
        while True:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


async def test_the_demo_then_serves_the_console_on_its_store(tmp_path):
    port, store = free_port(), f"sqlite:///{tmp_path / 'demo.db'}"
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiosys.cli", "demo", "--serve", "--port", str(port)),
        *("--store", store),
        cwd=tmp_path,
        env=process_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Proc(proc)
    server.keep_reading()  # stderr: the log lines
    out: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(150):
            while not any("the console" in line for line in out):
                raw = await proc.stdout.readline()
                assert raw, "".join(out) + server.text
                out.append(raw.decode())
        address = f"http://127.0.0.1:{port}/"
        assert any(address in line for line in out), "".join(out)
        async with httpx.AsyncClient(base_url=address, follow_redirects=True) as client:
            await until_up(client)
            page = await client.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            params = {"tenant": "demo", "workflow": "document_intake"}
            runs = (await client.get("/v1/runs", params=params)).json()
            assert len(runs["data"]) == 3, runs  # the demo's three documents
            assert {r["status"] for r in runs["data"]} == {"succeeded"}
            console_runs = await client.get("/runs")
            assert console_runs.status_code == 200 and runs["data"][0]["id"] in console_runs.text
            # What the demo says the console shows is what its pages are (it named lineage,
            # which has no page): each named, a link of the console's navigation.
            line = next(line for line in out if "the console (" in line)
            named = line.split("the console (", 1)[1].split(")", 1)[0].split(", ")
            for name in named:
                label = name.removeprefix("the ").capitalize()
                link = "/tasks" if label == "Inbox" else f"/{label.lower()}"
                assert re.search(f'href="{link}"[^>]*>{label}<', console_runs.text), (name, line)
        proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in server.text
