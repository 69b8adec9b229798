"""A real ``aiosys server`` process on both stores, over TCP: it serves the API with its
in-process worker (a run started over HTTP succeeds), and on SIGTERM drains like a worker
(the step in flight finishes and is recorded, the process exits 0); a second SIGTERM gives
the run back at once; ``--no-worker`` serves the API and leaves the runs to workers."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import httpx
import pytest
from tests.integration.apiclient import status_of
from tests.integration.conftest import until
from tests.integration.procs import (
    load_app_module,
    process_env,
    server_on_free_port,
    until_ready,
)

pytestmark = pytest.mark.timeout(120)


async def test_the_server_runs_a_workflow_and_drains_on_sigterm(store_url, tmp_path, monkeypatch):
    module, app = load_app_module(tmp_path, monkeypatch)
    server, base = await server_on_free_port(tmp_path, module, store_url)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            await until_ready(client)  # its models load while it listens (503 until then)
            assert (await client.get("/readyz")).json() == {"status": "ready"}
            openapi = (await client.get("/openapi.json")).json()
            assert "/v1/workflows/{name}/runs" in openapi["paths"]
            hello = (
                await client.post("/v1/workflows/hello/runs", json={"input": {"name": "tcp"}})
            ).json()
            await status_of(client, hello["id"], "local", "succeeded")
            slow = (await client.post("/v1/workflows/wf/runs", json={"input": {"tag": "t"}})).json()
        await until((tmp_path / "started").exists, timeout=30)
        server.proc.send_signal(signal.SIGTERM)
        await server.line_with("draining 1 run(s) in flight")
        (tmp_path / "release").touch()
        assert await server.exit_code() == 0, server.text
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
    app.use_store(store_url)
    await app.open()
    try:
        assert (await app.get_run(hello["id"])).result == '"hello tcp"'
        row = await app.get_run(slow["id"])
        assert row.status == "succeeded", server.text
    finally:
        await app.close()
    assert "drained 1 run(s)" in server.text and "giving back" not in server.text
    assert "Traceback" not in server.text


async def test_a_second_sigterm_gives_the_run_back(store_url, tmp_path, monkeypatch):
    module, app = load_app_module(tmp_path, monkeypatch)
    server, base = await server_on_free_port(tmp_path, module, store_url)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            slow = (await client.post("/v1/workflows/wf/runs", json={"input": {"tag": "t"}})).json()
        await until((tmp_path / "started").exists, timeout=30)
        server.proc.send_signal(signal.SIGTERM)
        await server.line_with("draining 1 run(s) in flight")
        server.proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    finally:
        (tmp_path / "release").touch()
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
    assert f"giving back 1 run(s) still in flight: {slow['id']}" in server.text
    app.use_store(store_url)
    await app.open()
    try:
        row = await app.get_run(slow["id"])
        assert row.status == "pending" and row.lease_owner is None, server.text
    finally:
        await app.close()


async def test_no_worker_serves_the_api_and_leaves_runs_to_workers(
    store_url, tmp_path, monkeypatch, wait_status
):
    module, app = load_app_module(tmp_path, monkeypatch)
    server, base = await server_on_free_port(tmp_path, module, store_url, "--no-worker")
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            run = (
                await client.post("/v1/workflows/hello/runs", json={"input": {"name": "w"}})
            ).json()
            assert run["status"] == "pending"
            app.use_store(store_url)
            async with app:  # a worker elsewhere takes it
                await wait_status(app, run["id"], "succeeded")
            body = (await client.get(f"/v1/runs/{run['id']}")).json()
            assert (body["status"], body["result"]) == ("succeeded", "hello w")
        server.proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()


async def test_an_address_it_cannot_listen_on_is_one_error_line_before_any_worker(
    store_url, tmp_path, monkeypatch
):
    # A port in use (or a host that does not resolve) was uvicorn's JSON log line and its exit
    # status 3, after the app's worker had started (and could claim runs) and stopped again.
    module, _ = load_app_module(tmp_path, monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for host, why in (("127.0.0.1", "in use"), ("no-such-host.invalid", "")):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aiosys.cli", "server", "--app", f"{module}:app",
                "--store", store_url, "--host", host, "--port", str(port),
                cwd=tmp_path, env=process_env(tmp_path),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await proc.communicate()
            text = err.decode()
            assert proc.returncode == 1, text
            assert f"error: cannot listen on {host}:{port}: " in text, text
            assert why in text.lower()
            assert "serving queues" not in text and "Traceback" not in text, text


async def _raw_post(base: str, path: str, headers: str, body: list[bytes]) -> bytes:
    """POST ``body`` piece by piece over a socket of its own (no client that would send it
    whole first) and read what the server answers, which may come before it is all sent."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nhost: {host}\r\n{headers}\r\n".encode())

    async def send() -> None:
        try:
            for piece in body:
                writer.write(piece)
                await writer.drain()
        except ConnectionError:  # the server answered and closed: the rest is not read
            pass

    sending = asyncio.create_task(send())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))  # fmt: skip
        return head + await reader.readexactly(length)
    finally:
        sending.cancel()
        writer.close()


async def test_a_body_over_max_body_size_is_413_over_tcp_sent_whole_or_streamed(
    store_url, tmp_path, monkeypatch
):
    module, _ = load_app_module(tmp_path, monkeypatch)
    server, base = await server_on_free_port(
        tmp_path, module, store_url, "--no-worker", "--max-body-size", "64KiB"
    )
    json_type = "content-type: application/json\r\n"
    piece = b"x" * 16384
    try:
        declared = await _raw_post(
            base, "/v1/chat/completions", json_type + "content-length: 1048576\r\n", [piece] * 64
        )
        chunked = [b"4000\r\n" + piece + b"\r\n"] * 64 + [b"0\r\n\r\n"]
        streamed = await _raw_post(
            base, "/v1/workflows/hello/runs", json_type + "transfer-encoding: chunked\r\n", chunked
        )
        for answer, media in ((declared, b"application/json"), (streamed, b"problem+json")):
            assert answer.startswith(b"HTTP/1.1 413 "), answer
            assert media in answer and b"limit of 65536 bytes (64 KiB)" in answer, answer
        server.proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
        assert "Traceback" not in server.text
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
