"""The caller's rights come before the rest of its request, on every /v1 route with a check.

A payload that cannot be stored (NaN, a lone surrogate), a malformed decision, an
idempotency key, queue or traceparent that is not one: each was answered 422 before the
caller's rights were asked, so a caller without them learned about its payload first (and
``signal`` told another tenant's caller 422 where its run reads as missing). Now a caller
without the right gets 403, one naming another tenant's object 404, whatever its payload;
a caller with the right gets the 422 as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.apiclient import (
    SECRET,
    auth,
    client_of,
    is_problem,
    make_app,
    new_key,
    status_of,
)

from aiosys.api import create_api

pytestmark = pytest.mark.timeout(90)

NAN_PAYLOAD = b'{"payload": {"ratio": NaN}}'  # Python's JSON parser takes it
SURROGATE_PAYLOAD = b'{"payload": "\\ud800"}'


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)


async def _send(
    client: httpx.AsyncClient, key: str, path: str, body: bytes | dict[str, Any] | None
) -> httpx.Response:
    if isinstance(body, bytes):
        headers = auth(key) | {"content-type": "application/json"}
        return await client.post(path, content=body, headers=headers)
    return await client.post(path, json=body, headers=auth(key))


async def test_a_caller_without_the_right_learns_that_before_anything_about_its_payload(
    store_url,
):
    app = make_app(store_url)
    api = create_api(app)
    async with app, client_of(api) as client:
        admin = await new_key(app, "B", "bob", "admin")  # may do all; the task is for admins
        viewer = await new_key(app, "B", "vera", "viewer")  # reads only, holds no task role
        stranger = await new_key(app, "A", "alice", "admin")  # everything, in tenant A
        waiting = (await client.post("/v1/workflows/waits/runs", headers=auth(admin))).json()
        asking = (await client.post("/v1/workflows/asks/runs", headers=auth(admin))).json()
        for run in (waiting, asking):
            await status_of(client, run["id"], admin, "waiting")
        (task,) = (await client.get("/v1/tasks", headers=auth(admin))).json()["data"]
        run_id, task_id = waiting["id"], task["id"]
        start = "/v1/workflows/hello/runs"
        # (path, a body that passes the route's schema but cannot be served as it is)
        bad = [
            (f"/v1/runs/{run_id}/signals/go", NAN_PAYLOAD),
            (f"/v1/runs/{run_id}/signals/go", SURROGATE_PAYLOAD),
            (f"/v1/tasks/{task_id}/complete", {"action": "approve", "data": {"x": 1}}),
            (f"/v1/tasks/{task_id}/complete", {"action": "edit"}),
            (start, {"input": {"name": "x"}, "idempotency_key": "a\u0000b"}),
            (start, {"input": {"name": "x"}, "queue": "nowhere"}),
            (start, {"input": {"name": "x"}, "traceparent": "not-a-traceparent"}),
            (start, b'{"input": {"name": Infinity}}'),
            (f"/v1/runs/{run_id}/cancel", b'{"reason": "a\\u0000b"}'),
            # ... and bodies the route's schema refuses (FastAPI's own validation).
            (f"/v1/runs/{run_id}/signals/go", {"payload": 1, "unknown": 2}),
            (f"/v1/runs/{run_id}/signals/go", b"not json"),
            (f"/v1/tasks/{task_id}/complete", {"action": "bogus"}),
            (f"/v1/tasks/{task_id}/complete", b'{"action": "approve", "comment": "\\ud800"}'),
            (start, {"input": {"name": "x"}, "priority": "high"}),
            (start, {"input": "not an object"}),
            (f"/v1/runs/{run_id}/cancel", b'{"reason": "\\ud800"}'),
            (f"/v1/runs/{run_id}/cancel", {"reason": "x" * 1001}),
        ]
        for path, body in bad:
            # A caller of the tenant without the right (a viewer): 403, naming no payload.
            refused = is_problem(await _send(client, viewer, path, body), 403)
            assert "vera" in refused["detail"], (path, refused)
            if not path.startswith(start):
                # Another tenant's caller, with every right in its own: the object is missing.
                is_problem(await _send(client, stranger, path, body), 404)
            if not path.endswith("/cancel") or not isinstance(body, bytes):  # (would end it)
                # With the right: the payload's fault, as before (400: not JSON at all).
                told = await _send(client, admin, path, body)
                is_problem(told, 400 if body == b"not json" else 422)
        for path in (f"/v1/runs/{run_id}/resume",):  # no body: the rights alone
            is_problem(await client.post(path, headers=auth(viewer)), 403)
            is_problem(await client.post(path, headers=auth(stranger)), 404)
        for path in (f"/v1/runs/{run_id}/resume", f"/v1/tasks/{task_id}/claim"):
            # A query parameter that does not validate (a tenant name over its length).
            params = {"tenant": "B" * 300}
            is_problem(await client.post(path, params=params, headers=auth(viewer)), 403)
            is_problem(await client.post(path, params=params, headers={}), 401)
        # Nothing was done: the run still waits, unsignalled, its task still open.
        assert (await app.get_run(run_id, tenant="B")).status == "waiting"
        assert await app.store.load_signals(run_id) == []
        again = (await client.get(f"/v1/tasks/{task_id}", headers=auth(admin))).json()
        assert again["status"] == "open"
        assert [r.workflow for r in await app.list_runs(tenant="B")].count("hello") == 0
