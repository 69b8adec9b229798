"""The HTTP API (``aiosys.api``) on both stores, through the real FastAPI application over
httpx's ASGI transport: a run started over HTTP succeeds; listings page by cursor and
filter by workflow, status and time; run actions and the human task inbox; models, stats,
metrics and the audit log; every error is an RFC 9457 problem with its status; credentials
(none, malformed, unknown, revoked); /healthz and /readyz (503 when the store lags behind
the code's migrations or cannot be reached)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tests.integration.apiclient import (
    SECRET,
    auth,
    client_of,
    is_problem,
    make_app,
    new_key,
    serving,
    status_of,
)
from tests.integration.conftest import HOLD_POLICY, forget_migration, shipped_policies

from aiosys.api import create_api
from aiosys.governance import audit_export
from aiosys.governance.audit_export import verify_extract

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)  # no aiosys.toml, no ./models, no ./policies
    for var in ("AIOSYS_JWT_ISSUER", "AIOSYS_JWT_JWKS_URL", "AIOSYS_JWT_JWKS_FILE"):
        monkeypatch.delenv(var, raising=False)


async def test_a_run_started_over_http_succeeds_and_its_key_returns_it(store_url):
    app = make_app(store_url)
    async with serving(app) as client:
        started = await client.post(
            "/v1/workflows/hello/runs", json={"input": {"name": "ada"}, "idempotency_key": "k1"}
        )
        assert started.status_code == 201, started.text
        run = started.json()
        assert started.headers["location"] == f"/v1/runs/{run['id']}"
        assert (run["workflow"], run["tenant"], run["input"], run["created"]) == (
            "hello",
            "default",
            {"name": "ada"},
            True,
        )
        body = await status_of(client, run["id"], "local", "succeeded")
        assert body["result"] == "hello ada"
        assert body["finished_at"].endswith("Z") and body["error"] is None
        again = await client.post(
            "/v1/workflows/hello/runs", json={"input": {"name": "ada"}, "idempotency_key": "k1"}
        )
        assert again.status_code == 200 and again.json()["id"] == run["id"]
        assert again.json()["created"] is False
        other = await client.post(
            "/v1/workflows/hello/runs", json={"input": {"name": "bob"}, "idempotency_key": "k1"}
        )
        conflict = is_problem(other, 409)
        assert conflict["type"] == "urn:aiosys:problem:idempotency-conflict"
        assert conflict["run_id"] == run["id"]


async def test_runs_page_by_cursor_and_filter_by_workflow_status_and_time(store_url):
    app = make_app(store_url)
    async with serving(app, worker=False) as client:  # no worker: every run stays pending
        hellos = [
            (await client.post("/v1/workflows/hello/runs", json={"input": {"name": str(n)}}))
            for n in range(5)
        ]
        waits = (await client.post("/v1/workflows/waits/runs")).json()
        newest_first = [waits["id"], *[r.json()["id"] for r in reversed(hellos)]]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/runs", params=params)).json()
            seen += [r["id"] for r in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert (seen, pages) == (newest_first, 3)  # 2 + 2 + 2: no empty last page
        only = (await client.get("/v1/runs", params={"workflow": "waits"})).json()
        assert [r["id"] for r in only["data"]] == [waits["id"]]
        assert (await client.get("/v1/runs", params={"status": "succeeded"})).json()["data"] == []
        pending = (await client.get("/v1/runs", params={"status": "pending"})).json()["data"]
        assert len(pending) == 6
        middle = hellos[2].json()["created_at"]
        since = (await client.get("/v1/runs", params={"since": middle})).json()["data"]
        assert [r["id"] for r in since] == newest_first[:4]
        until = (await client.get("/v1/runs", params={"until": middle})).json()["data"]
        assert [r["id"] for r in until] == newest_first[4:]
        naive = middle.removesuffix("Z")  # a time without an offset is UTC
        assert (await client.get("/v1/runs", params={"since": naive})).json()["data"] == since
        for params in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"status": "lost"}):
            is_problem(await client.get("/v1/runs", params=params), 422)


async def test_signal_cancel_and_resume_runs_over_http(store_url):
    app = make_app(store_url)
    async with serving(app) as client:
        waiting = (await client.post("/v1/workflows/waits/runs")).json()
        dead = (await client.post("/v1/workflows/dies/runs")).json()
        other = (await client.post("/v1/workflows/waits/runs")).json()
        local = "local"  # no identity: every request is the local principal's

        async def status(run: dict[str, Any], *statuses: str) -> Any:
            return await status_of(client, run["id"], local, *statuses)

        await status(waiting, "waiting")
        sent = await client.post(
            f"/v1/runs/{waiting['id']}/signals/go", json={"payload": {"ok": True}}
        )
        assert sent.status_code == 202 and sent.json() == {"run_id": waiting["id"], "signal": "go"}
        assert (await status(waiting, "succeeded"))["result"] == {"ok": True}
        late = await client.post(f"/v1/runs/{waiting['id']}/signals/go")
        assert "ended" in is_problem(late, 409)["detail"]
        cancelled = await client.post(f"/v1/runs/{other['id']}/cancel", json={"reason": "no"})
        assert cancelled.status_code == 200, cancelled.text
        assert (await status(other, "cancelled"))["cancel_reason"] == "no"
        is_problem(await client.post(f"/v1/runs/{other['id']}/cancel"), 409)
        assert (await status(dead, "dead"))["error"]["message"] == "boom"
        resumed = await client.post(f"/v1/runs/{dead['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] in ("pending", "running")
        await status(dead, "dead")  # it fails again, permanently
        is_problem(await client.post(f"/v1/runs/{waiting['id']}/resume"), 409)
        for bad in ("/v1/runs/nope/cancel", "/v1/runs/nope/resume", "/v1/runs/nope/signals/go"):
            assert is_problem(await client.post(bad), 404)["type"].endswith("run-not-found")
        is_problem(await client.post(f"/v1/runs/{other['id']}/signals/b%00d"), 422)


async def test_the_task_inbox_over_http_claim_release_and_decide(store_url):
    app = make_app(store_url)
    async with serving(app) as client:
        await app.open()
        admin = await new_key(app, "A", "ann", "admin")
        a = auth(admin)
        run = (await client.post("/v1/workflows/asks/runs", headers=a)).json()
        await status_of(client, run["id"], admin, "waiting")
        (task,) = (await client.get("/v1/tasks", headers=a)).json()["data"]
        assert (task["name"], task["role"], task["status"], task["data"]) == (
            "sign-off",
            "admin",
            "open",
            {"doc": 1},
        )
        assert (await client.get(f"/v1/tasks/{task['id']}", headers=a)).json() == task
        claimed = (await client.post(f"/v1/tasks/{task['id']}/claim", headers=a)).json()
        assert (claimed["status"], claimed["claimed_by"]) == ("claimed", "ann")
        released = (await client.post(f"/v1/tasks/{task['id']}/release", headers=a)).json()
        assert released["status"] == "open"
        is_problem(await client.post(f"/v1/tasks/{task['id']}/release", headers=a), 409)
        done = await client.post(
            f"/v1/tasks/{task['id']}/complete",
            json={"action": "approve", "comment": "fine"},
            headers=a,
        )
        assert done.status_code == 200, done.text
        decision = done.json()["decision"]
        assert (decision["action"], decision["comment"], decision["decided_by"]) == (
            "approve",
            "fine",
            "ann",
        )
        assert (await status_of(client, run["id"], admin, "succeeded"))["result"] == "approve"
        twice = await client.post(
            f"/v1/tasks/{task['id']}/complete", json={"action": "reject"}, headers=a
        )
        conflict = is_problem(twice, 409)
        assert conflict["type"] == "urn:aiosys:problem:invalid-task-state"
        assert conflict["task_status"] == "completed" and "decided by ann" in conflict["detail"]
        listed = (await client.get("/v1/tasks", params={"status": "any"}, headers=a)).json()
        assert [t["status"] for t in listed["data"]] == ["completed"]
        is_problem(await client.get("/v1/tasks/nope", headers=a), 404)
        bad = await client.post(
            f"/v1/tasks/{task['id']}/complete", json={"action": "shrug"}, headers=a
        )
        is_problem(bad, 422)


async def test_task_actions_its_state_forbids_are_409_not_yours_403_elsewhere_404(store_url):
    """Every task action over HTTP, on a task whose state forbids it (held by another,
    decided, its run cancelled), by a principal without its role and from another tenant:
    409 naming the task's status, 403, 404; never a 403 for a state."""
    app = make_app(store_url)
    async with serving(app) as client:
        await app.open()
        ann_key = await new_key(app, "A", "ann", "admin")
        ann = auth(ann_key)
        bob = auth(await new_key(app, "A", "bob", "admin"))
        vic = auth(await new_key(app, "A", "vic", "runner", "viewer"))
        eve = auth(await new_key(app, "B", "eve", "admin"))

        async def waiting_task() -> tuple[str, str]:
            run = (await client.post("/v1/workflows/asks/runs", headers=ann)).json()
            await status_of(client, run["id"], ann_key, "waiting")
            listed = await client.get("/v1/tasks", params={"run_id": run["id"]}, headers=ann)
            (task,) = listed.json()["data"]
            return run["id"], task["id"]

        def act(task: str, what: str, who: dict[str, str]) -> Any:
            path = f"/v1/tasks/{task}/{what.partition(':')[0]}"
            action = what.partition(":")[2]
            if not action:
                return client.post(path, headers=who)
            body: dict[str, Any] = {"action": action}
            if action == "edit":
                body["data"] = {"doc": 2}
            return client.post(path, json=body, headers=who)

        decisions = ("complete:approve", "complete:reject", "complete:edit")

        def conflict(response: Any, status: str) -> None:
            body = is_problem(response, 409)
            assert body["type"] == "urn:aiosys:problem:invalid-task-state", body
            assert body["task_status"] == status, body

        # Held by another principal: claiming or deciding it is a conflict; releasing it is
        # not bob's to do (403); a principal without its role is refused (403).
        run_id, task = await waiting_task()
        assert (await act(task, "claim", ann)).status_code == 200
        for what in ("claim", *decisions):
            conflict(await act(task, what, bob), "claimed")
        assert is_problem(await act(task, "release", bob), 403)["type"].endswith(
            "permission-denied"
        )
        for what in ("claim", "release", *decisions):
            assert is_problem(await act(task, what, vic), 403), what
            is_problem(await act(task, what, eve), 404)  # another tenant's: not found
        # Decided: every action is a conflict saying so, for anyone of the tenant.
        assert (await act(task, "complete:approve", ann)).status_code == 200
        await status_of(client, run_id, ann_key, "succeeded")
        for who in (ann, bob, vic):
            for what in ("claim", "release", *decisions):
                conflict(await act(task, what, who), "completed")
        for what in ("claim", "release", *decisions):
            is_problem(await act(task, what, eve), 404)
            is_problem(await act("nope", what, ann), 404)
        # Its run cancelled: the task cannot be claimed or decided any more.
        run_id, task = await waiting_task()
        assert (await client.post(f"/v1/runs/{run_id}/cancel", headers=ann)).status_code == 200
        await status_of(client, run_id, ann_key, "cancelled")
        for what in ("claim", *decisions):
            conflict(await act(task, what, ann), "open")
        conflict(await act(task, "release", ann), "open")


async def test_every_header_the_api_reads_refuses_a_bad_value_naming_it(store_url):
    """A bad value of a header /v1 reads is the request's fault, named: ``traceparent``
    (422), ``Authorization`` (401), ``Content-Type`` (415); none is taken for a refusal."""
    app = make_app(store_url)
    async with serving(app) as client:
        for bad in ("00-xyz", "01-" + "0" * 32 + "-" + "1" * 16 + "-01", "t" * 300):
            r = await client.post("/v1/workflows/hello/runs", headers={"traceparent": bad})
            assert "traceparent" in is_problem(r, 422)["detail"], bad
        good = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
        r = await client.post(
            "/v1/workflows/hello/runs",
            json={"input": {"name": "t"}},
            headers={"traceparent": good},
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/v1/workflows/hello/runs",
            content=b"name=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert "Content-Type" in is_problem(r, 415)["detail"]
        await app.open()
        await new_key(app, "A", "ann", "admin")  # identity configured: credentials count
        for header in ("Basic abc", "Bearer", "Bearer nope"):
            is_problem(await client.get("/v1/runs", headers={"Authorization": header}), 401)


async def test_every_error_status_is_a_problem_with_its_status(store_url, tmp_path):
    app = make_app(store_url, shipped_policies(tmp_path, runs=HOLD_POLICY))
    async with serving(app) as client:
        operator = auth(await new_key(app, "A", "olga", "operator"))
        viewer = auth(await new_key(app, "A", "vic", "viewer"))
        post = client.post
        # 400: a body that is not JSON.
        broken = await post(
            "/v1/workflows/hello/runs",
            content=b"{not json",
            headers={**operator, "content-type": "application/json"},
        )
        assert is_problem(broken, 400)["type"] == "urn:aiosys:problem:malformed-body"
        # 401: identity is configured (keys exist): no credential, a malformed one, an
        # unknown one.
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
            refused = await client.get("/v1/runs", headers=headers)
            assert is_problem(refused, 401)["type"] == "urn:aiosys:problem:authentication-failed"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        unknown = await client.get("/v1/runs", headers=auth("aiosys_" + "0" * 16 + "_" + "x" * 43))
        is_problem(unknown, 401)
        # 403: the role may not; a policy forbids (named).
        denied = is_problem(await post("/v1/workflows/hello/runs", headers=viewer), 403)
        assert denied["type"] == "urn:aiosys:problem:permission-denied"
        assert "vic" in denied["detail"]
        held = (await post("/v1/workflows/hold/runs", headers=operator)).json()
        forbidden = is_problem(await post(f"/v1/runs/{held['id']}/cancel", headers=operator), 403)
        assert forbidden["type"] == "urn:aiosys:problem:policy-denied"
        assert forbidden["policies"] == ["hold-runs-are-not-cancelled"]
        assert forbidden["policy_version"]
        # 404: an unknown workflow, run, task, path.
        assert is_problem(await post("/v1/workflows/nope/runs", headers=operator), 404)[
            "type"
        ].endswith("unknown-workflow")
        is_problem(await client.get("/v1/runs/nope", headers=operator), 404)
        is_problem(await client.get("/v1/tasks/nope", headers=operator), 404)
        assert is_problem(await client.get("/v1/nowhere"), 404)["type"] == "about:blank"
        # 409: a run that cannot be resumed.
        is_problem(await post(f"/v1/runs/{held['id']}/resume", headers=operator), 409)
        # 422: input the workflow refuses, an undeclared queue, a priority out of range, a
        # body field it does not know.
        for body in (
            {"input": {"name": 1}},
            {"input": {"name": "x"}, "queue": "nope"},
            {"input": {"name": "x"}, "priority": 2**40},
            {"input": {"name": "x"}, "unknown": 1},
        ):
            is_problem(await post("/v1/workflows/hello/runs", json=body, headers=operator), 422)
        queue = await post(
            "/v1/workflows/hello/runs",
            json={"input": {"name": "x"}, "queue": "q"},
            headers=operator,
        )
        assert is_problem(queue, 422)["type"] == "urn:aiosys:problem:unknown-queue"


async def test_a_revoked_key_is_refused_and_without_identity_callers_are_local(store_url):
    app = make_app(store_url)
    async with serving(app) as client:
        # No key, no JWT settings: a request without a credential is the local principal's.
        assert (
            await client.post("/v1/workflows/hello/runs", json={"input": {"name": "x"}})
        ).json()["tenant"] == "default"
        new = await app.identity.keys.create("A", "ann", roles=("admin",))
        assert (await client.get("/v1/runs", headers=auth(new.key))).json()["data"] == []
        is_problem(await client.get("/v1/runs"), 401)  # identity is configured now
        await app.identity.keys.revoke(new.info.id)
        revoked = is_problem(await client.get("/v1/runs", headers=auth(new.key)), 401)
        assert "revoked" in revoked["detail"] and new.key not in json.dumps(revoked)


async def test_models_stats_metrics_and_the_audit_log_over_http(store_url):
    app = make_app(store_url)
    app.models.add_card(
        {"id": "small", "provider": "local", "owner": "ml", "aliases": ["chat-production"]}
    )
    async with serving(app) as client:
        admin = await new_key(app, "A", "ann", "admin")
        a = auth(admin)
        run = (
            await client.post("/v1/workflows/hello/runs", json={"input": {"name": "x"}}, headers=a)
        ).json()
        await status_of(client, run["id"], admin, "succeeded")
        models = (await client.get("/v1/models", headers=a)).json()
        assert models["object"] == "list"
        card, alias = models["data"]  # the card, then its alias (then task contracts)
        assert (card["id"], card["object"], card["owned_by"], card["card"]["aliases"]) == (
            "small",
            "model",
            "ml",
            ["chat-production"],
        )
        assert (alias["id"], alias["root"]) == ("chat-production", "small")
        assert "endpoint" not in card["card"] and "options" not in card["card"]
        stats = (await client.get("/v1/stats", params={"since": "1h"}, headers=a)).json()
        assert stats["tenant"] == "A"
        # An empty window is a 422 naming both ends (the runs' was a silent empty page, the
        # audit's an empty extract whose since was after its until).
        empty = {"since": "2026-02-01", "until": "2026-01-01"}
        for path in ("/v1/runs", "/v1/stats", "/v1/audit"):
            refused = is_problem(await client.get(path, params=empty, headers=a), 422)
            assert "must be before until (2026-01-01" in refused["detail"], refused
        assert [(w["workflow"], w["runs"], w["succeeded"]) for w in stats["workflows"]] == [
            ("hello", 1, 1)
        ]
        is_problem(await client.get("/v1/stats", params={"since": "soon"}, headers=a), 422)
        metrics = await client.get("/metrics", headers=a)
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'aiosys_runs_created_total{tenant="A",workflow="hello"} 1.0' in metrics.text
        await app.audit.checkpoint()  # signs what was written: the extract verifies
        extract = await client.get("/v1/audit", headers=a)
        assert extract.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in extract.text.splitlines()]
        assert lines[0]["type"] == "aiosys-audit-extract" and lines[0]["tenant"] == "A"
        assert any(line.get("tenant") == "A" for line in lines[1:])
        is_problem(await client.get("/v1/audit/verify", headers=a), 403)  # spans every tenant
        other = auth(await new_key(app, "A", "olga", "operator"))
        is_problem(await client.get("/v1/audit", headers=other), 403)  # export takes admin


async def test_the_local_principal_verifies_the_whole_audit_log(store_url):
    app = make_app(store_url)  # no identity configured: requests are the local principal's
    async with serving(app) as client:
        run = (await client.post("/v1/workflows/hello/runs", json={"input": {"name": "x"}})).json()
        await status_of(client, run["id"], "local", "succeeded")
        await app.audit.checkpoint()
        verified = await client.get("/v1/audit/verify")
        assert verified.status_code == 200, verified.text
        body = verified.json()
        assert (body["ok"], body["status"], body["problem"]) == (True, "intact", None)
        assert body["records"] >= 1 and body["signed_to"] == body["records"]


async def test_the_audit_extract_is_streamed_a_page_at_a_time_and_verifies(store_url, monkeypatch):
    # It was built whole in memory before the first byte was sent: an extract of a busy
    # gateway's log (a record per call) held the server's memory for its whole size.
    monkeypatch.setattr(audit_export, "PAGE", 3)
    app = make_app(store_url)  # no identity configured: requests are the local principal's
    api = create_api(app)
    async with app:
        async with client_of(api) as client:
            for name in ("a", "b", "c", "d"):
                body = {"input": {"name": name}}
                run = await client.post("/v1/workflows/hello/runs", json=body)
                await status_of(client, run.json()["id"], "local", "succeeded")
        await app.audit.checkpoint()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/v1/audit", "root_path": ""}
        scope |= {"headers": [], "query_string": b"", "asgi": {"spec_version": "2.4"}}
        await api(scope, receive, send)  # ASGI itself: a test client joins the pieces
    assert sent[0]["status"] == 200
    pieces = [m["body"] for m in sent[1:] if m["body"]]
    text = b"".join(pieces).decode()
    lines = text.splitlines()
    positions = len(lines) - 1 - sum(json.loads(line)["type"] == "checkpoint" for line in lines)
    assert positions >= 4  # a start record per run at the least
    # The header and checkpoints, then one piece per page of 3 positions.
    assert len(pieces) == 1 + -(-positions // 3), (len(pieces), positions)
    report = verify_extract(lines, app.audit.verify_key())
    assert report.ok, report


async def test_healthz_and_readyz(store_url):
    app = make_app(store_url)
    async with serving(app, worker=False) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        last = max(r["version"] for r in await app.store.fetch("schema_versions", {}))
        forget_migration(store_url, last)
        behind = is_problem(await client.get("/readyz"), 503)
        assert behind["type"] == "urn:aiosys:problem:not-ready"
        assert str(last) in behind["detail"]


async def test_readyz_is_503_when_the_sqlite_store_cannot_be_opened(tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/missing/dir/aiosys.db")
    async with client_of(create_api(app)) as client:
        assert (await client.get("/healthz")).status_code == 200  # the process is fine
        down = is_problem(await client.get("/readyz"), 503)
        assert "cannot be reached" in down["detail"] and str(tmp_path) not in down["detail"]


async def test_readyz_and_v1_are_503_when_postgresql_goes_away(pg_url, pg_admin_url):
    app = make_app(pg_url)
    async with serving(app, worker=False) as client:
        assert (await client.get("/readyz")).status_code == 200
        dbname = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        is_problem(await client.get("/readyz"), 503)
        down = is_problem(await client.get("/v1/runs"), 503)
        assert down["type"] == "urn:aiosys:problem:store-unavailable"
        assert dbname not in down["detail"]


#: The OpenAI-compatible gateway's routes: their errors are OpenAI's error body (the SDKs
#: read it), declared as application/json (tests/integration/test_openai_gateway.py).
OPENAI = {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}"}


def test_every_route_declares_its_errors_as_problem_details():
    api = create_api(make_app("sqlite:///unused.db"))
    schema = api.openapi()
    assert "Problem" in schema["components"]["schemas"]
    assert OPENAI <= set(schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            ok = [s for s in responses if s.startswith("2")]
            assert ok, (method, path)
            for status in ok:
                assert responses[status].get("content"), (method, path, status)
            errors = {s for s in responses if s[0] in "45"}
            if path in OPENAI:
                assert {"401", "500"} <= errors, (method, path)
                for status in errors:
                    assert list(responses[status]["content"]) == ["application/json"], path
                continue
            for status in errors:
                assert list(responses[status]["content"]) == ["application/problem+json"], (
                    method,
                    path,
                    status,
                )
            if path.startswith("/v1") or path == "/metrics":
                assert {"401", "403", "500", "503"} <= errors, (method, path)
                assert operation["security"] == [{"HTTPBearer": []}]
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in errors, (method, path)
            if operation.get("requestBody"):
                assert {"400", "415"} <= errors, (method, path)
            if "{" in path and path.startswith("/v1"):
                assert "404" in errors, (method, path)


async def test_a_gateway_body_that_is_not_text_is_a_400_in_openais_shape(store_url):
    # Found by schemathesis: FastAPI's own HTTPException (a body it cannot decode) was a 500.
    app = make_app(store_url)
    async with serving(app) as client:
        for path in ("/v1/chat/completions", "/v1/embeddings"):
            r = await client.post(
                path, content=b"S\xff\xfe\x03", headers={"content-type": "application/json"}
            )
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error"
            assert r.headers["x-should-retry"] == "false"


async def test_a_body_not_read_as_json_says_why_in_both_error_shapes(store_url):
    # A body sent as another type (or none: `curl -d` sends a form's), one not UTF-8, one
    # not JSON: each names its cause, as a problem on /v1 and as OpenAI's error on the
    # gateway (they were "not a valid dictionary", FastAPI's bare "error parsing the body",
    # and a bare offset as the OpenAI error's `param`).
    app = make_app(store_url)
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    run = {"input": {"name": "x"}}
    json_type = {"content-type": "application/json"}
    async with serving(app) as client:
        for path, body, shape in (
            ("/v1/workflows/hello/runs", run, "problem"),
            ("/v1/chat/completions", chat, "openai"),
        ):
            cases = (
                (json.dumps(body).encode(), {"content-type": "text/plain"}, 415, "'text/plain'"),
                (json.dumps(body).encode(), {}, 415, "no Content-Type"),
                (
                    b'{"a": "\xff"}',
                    {"content-type": "application/json"},
                    400,
                    "byte 0xff at offset 7",
                ),
                (b'{"a": 1', {"content-type": "application/json"}, 400, "line 1 column 8"),
                (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", json_type, 400, "deeper"),
                (b'{"a": ' + b"9" * 5000 + b"}", json_type, 400, "more than 4300 digits"),
            )
            for content, headers, status, said in cases:
                r = await client.post(path, content=content, headers=headers)
                assert r.status_code == status, (path, content, r.text)
                if shape == "problem":
                    problem = is_problem(r, status)
                    kind = "unsupported-media-type" if status == 415 else "malformed-body"
                    assert problem["type"] == f"urn:aiosys:problem:{kind}"
                    message = problem["detail"]
                else:
                    error = r.json()["error"]
                    assert error["type"] == "invalid_request_error"
                    assert error["param"] is None
                    message = error["message"]
                assert said in message, (path, message)


async def test_nan_or_an_infinity_in_a_signal_is_refused_naming_where(store_url, wait_status):
    # The JSON parser takes NaN and Infinity; the store wrote them as null: the payload a
    # run received was another value than sent (a run's input likewise: test_kernel_input).
    app = make_app(store_url)
    json_type = {"content-type": "application/json"}
    async with serving(app) as client:
        started = await client.post("/v1/workflows/waits/runs", json={})
        run_id = started.json()["id"]
        await wait_status(app, run_id, "waiting")
        r = await client.post(
            f"/v1/runs/{run_id}/signals/go",
            content=b'{"payload": {"p": [1, -Infinity]}}',
            headers=json_type,
        )
        detail = is_problem(r, 422)["detail"]
        assert "-inf" in detail and "NaN and infinities are not JSON" in detail, detail
        assert (await app.get_run(run_id)).status == "waiting"


async def test_a_body_over_the_cap_is_413_before_it_is_read_in_both_error_shapes(store_url):
    # A body was read whole, however large. Over the cap it is refused, in its route's error
    # shape: at once when its Content-Length says so (nothing of it read), at the first
    # chunk past the cap when it declares none (a streamed upload).
    app = make_app(store_url)
    api = create_api(app, max_body_size="64KiB")
    chunk, pulled = 16 * 1024, []

    async def upload():  # 1 MiB, 16 KiB at a time, counted as the server pulls it
        for n in range(64):
            pulled.append(n)
            yield (b'{"input": "' + b"x" * (chunk - 11)) if n == 0 else b"x" * chunk

    routes = (
        ("/v1/workflows/hello/runs", "problem"),
        ("/v1/runs/r-1/cancel", "problem"),
        ("/v1/chat/completions", "openai"),
        ("/v1/embeddings", "openai"),
    )
    async with app, client_of(api) as client:
        for path, shape in routes:
            for declared in (True, False):
                pulled.clear()
                headers = {"content-type": "application/json"}
                if declared:
                    headers["content-length"] = str(64 * chunk)
                r = await client.post(path, content=upload(), headers=headers)
                assert r.status_code == 413, (path, declared, r.text)
                # Declared: not one chunk read; streamed: the 5th (past 64 KiB) was the last.
                assert len(pulled) == (0 if declared else 5), (path, declared)
                if shape == "problem":
                    problem = is_problem(r, 413)
                    assert problem["type"] == "urn:aiosys:problem:content-too-large"
                    message = problem["detail"]
                else:
                    error = r.json()["error"]
                    assert error["type"] == "invalid_request_error" and error["param"] is None
                    assert r.headers["x-should-retry"] == "false"
                    message = error["message"]
                assert "limit of 65536 bytes (64 KiB)" in message, (path, message)
        # Under the cap a body is read as before.
        started = await client.post(
            "/v1/workflows/hello/runs", json={"input": {"name": "x" * 60_000}}
        )
        assert started.status_code == 201, started.text


def test_the_body_cap_is_declared_on_every_route_that_takes_a_body():
    schema = create_api(make_app("sqlite:///unused.db")).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if operation.get("requestBody"):
                assert "413" in operation["responses"], (method, path)


async def test_a_method_a_path_does_not_take_is_405_in_that_paths_error_shape(store_url):
    # GET /v1/chat/completions (an SDK pointed at the wrong verb, a browser) was answered as
    # RFC 9457 problem details: the gateway's paths answer every error in OpenAI's body,
    # which the SDKs read. Each 405 names the method and what the path takes (Allow).
    app = make_app(store_url)
    async with serving(app) as client:
        for method, path, allowed in (
            ("GET", "/v1/chat/completions", "POST"),
            ("PUT", "/v1/chat/completions", "POST"),
            ("GET", "/v1/embeddings", "POST"),
            ("DELETE", "/v1/embeddings", "POST"),
            ("POST", "/v1/models", "GET"),
            ("DELETE", "/v1/models/some-model", "GET"),
        ):
            r = await client.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert r.headers["content-type"] == "application/json", (method, path)
            assert r.headers["allow"] == allowed
            assert r.headers["x-should-retry"] == "false"
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error", error
            assert error["message"] == f"Invalid method for URL ({method} {path})"  # OpenAI's
        r = await client.request("DELETE", "/v1/runs/r-1")
        problem = is_problem(r, 405)
        assert problem["detail"] == "DELETE is not allowed on /v1/runs/r-1: it takes GET"
        assert r.headers["allow"] == "GET"
        # An unknown path is the server's 404, as a problem (no gateway path names it).
        is_problem(await client.get("/v1/nothing-here"), 404)


async def test_a_compressed_body_is_415_naming_its_coding_in_both_error_shapes(store_url):
    # Content-Encoding was ignored: a body labelled gzip but sent plain was read as JSON
    # (a run started), and a gzipped one failed as "not UTF-8 text: byte 0x1f". Nothing here
    # decodes a content coding: 415 naming it, before the body is read; identity is taken.
    import gzip

    app = make_app(store_url)
    run = json.dumps({"input": {"name": "x"}}).encode()
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    async with serving(app) as client:
        for path, body, shape in (
            ("/v1/workflows/hello/runs", run, "problem"),
            ("/v1/chat/completions", chat, "openai"),
            ("/v1/embeddings", chat, "openai"),
        ):
            for content, coding in ((gzip.compress(body), "gzip"), (body, "gzip"), (body, "br")):
                headers = {"content-type": "application/json", "content-encoding": coding}
                r = await client.post(path, content=content, headers=headers)
                assert r.status_code == 415, (path, coding, r.text)
                said = f"Content-Encoding {coding!r}"
                if shape == "problem":
                    problem = is_problem(r, 415)
                    assert problem["type"] == "urn:aiosys:problem:unsupported-media-type"
                    assert said in problem["detail"], problem
                else:
                    error = r.json()["error"]
                    assert error["type"] == "invalid_request_error" and said in error["message"]
        assert await app.list_runs() == []  # nothing was started
        r = await client.post(
            "/v1/workflows/hello/runs",
            content=run,
            headers={"content-type": "application/json", "content-encoding": "identity"},
        )
        assert r.status_code == 201, r.text
        # A request with no body is not refused for the header.
        assert (
            await client.get("/v1/runs", headers={"content-encoding": "gzip"})
        ).status_code == 200


async def test_head_is_get_without_its_body_on_every_route_that_takes_get(store_url):
    # `curl -I /healthz` (a load balancer's HEAD probe) was 405 on every route but
    # /openapi.json: FastAPI's routes take only the methods they declare.
    app = make_app(store_url)
    async with serving(app) as client:
        for path in ("/healthz", "/readyz", "/v1/runs", "/v1/models", "/metrics", "/runs"):
            got = await client.get(path)
            head = await client.head(path)
            assert head.status_code == got.status_code, (path, head.status_code)
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            if "content-length" in got.headers and got.status_code == 200:
                assert head.headers["content-length"] == str(len(got.content)) or path in (
                    "/v1/runs",
                    "/metrics",
                    "/runs",  # (each answer differs a little between two requests)
                ), path
        missing = await client.head("/v1/runs/missing")
        assert (missing.status_code, missing.content) == (404, b"")
        assert missing.headers["content-type"] == "application/problem+json"
        refused = await client.head("/v1/workflows/hello/runs")  # a path that takes POST
        assert (refused.status_code, refused.headers["allow"]) == (405, "POST")
        assert await app.list_runs() == []


async def test_an_empty_filter_is_a_422_naming_it_not_an_empty_page(store_url):
    # `?workflow=$WF` with the variable unset listed the runs of a workflow named "": an
    # empty page, 200, as if there were none.
    app = make_app(store_url)
    async with serving(app) as client:
        await client.post("/v1/workflows/hello/runs", json={"input": {"name": "x"}})
        for path, name in (
            ("/v1/runs", "workflow"),
            ("/v1/stats", "workflow"),
            ("/v1/stats", "model"),
            ("/v1/tasks", "run_id"),
        ):
            problem = is_problem(await client.get(path, params={name: ""}), 422)
            assert problem["errors"][0]["loc"] == ["query", name], problem
