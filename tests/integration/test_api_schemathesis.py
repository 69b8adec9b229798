"""schemathesis over ``/openapi.json`` of a real ``aiosys server`` (both stores), with a
valid API key: every operation, generated requests valid and not, no 5xx, and every
response as the document declares it (status, content type, headers, body schema). The
number of generated cases is printed (``pytest -s``) and kept as the test's property."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
from tests.integration.apiclient import SECRET, new_key
from tests.integration.procs import load_app_module, process_env, server_on_free_port

pytestmark = pytest.mark.timeout(600)

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
EXAMPLES = 25  # per operation and phase


@pytest.mark.skipif(
    shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis (dev extra) is not installed",
)
async def test_schemathesis_finds_no_5xx_and_no_response_off_the_schema(
    store_url, tmp_path, monkeypatch, record_property
):
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    module, app = load_app_module(tmp_path, monkeypatch)
    app.use_store(store_url)
    await app.open()
    try:
        key = await new_key(app, "A", "ann", "admin")
    finally:
        await app.close()
    server, base = await server_on_free_port(tmp_path, module, store_url)
    server.keep_reading()
    report = tmp_path / "schemathesis.json"
    try:
        run = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            cwd=tmp_path,
            env=process_env(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await run.communicate()
    finally:
        (tmp_path / "release").touch()  # runs of `wf` it started end: the drain is short
        server.proc.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0, server.text
    text = out.decode(errors="replace")
    found = json.loads(report.read_text())
    cases = found["test_cases"]
    print(f"\nschemathesis on {store_url.split(':')[0]}: {cases['generated']} cases generated")
    record_property("schemathesis_cases", cases["generated"])
    assert run.returncode == 0, text[-6000:]
    assert (cases["with_failures"], cases["errored"]) == (0, 0), text[-6000:]
    # Every operation of /openapi.json: the /v1 API's and the OpenAI-compatible gateway's.
    assert found["operations"]["total"] == 22 and cases["generated"] > 500
    assert "Traceback" not in server.text
