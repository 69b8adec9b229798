"""The tenant walk over HTTP, on both stores: tenant A's API key, against tenant B's runs
and task, gets 404 (B's object reads as missing) or 403 (naming tenant B) on every route of
the API, and its listings show nothing of B's. The walk is built from the application's own
routes: a new route that neither the walk nor ``EXEMPT`` names fails the test."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.apiclient import (
    SECRET,
    auth,
    client_of,
    make_app,
    new_key,
    status_of,
)

from aiosys.api import create_api

pytestmark = pytest.mark.timeout(90)

#: Routes the walk does not call as A against B, and why.
EXEMPT = {
    ("GET", "/openapi.json"): "the API's description: no tenant data",
    ("HEAD", "/openapi.json"): "the API's description: no tenant data",
    ("GET", "/healthz"): "the process is up: no tenant data",
    ("GET", "/readyz"): "the store answers: no tenant data",
    ("GET", "/v1/models"): "the model catalog, shared by every tenant",
    ("GET", "/v1/models/{model:path}"): "the model catalog, shared by every tenant",
    ("POST", "/v1/chat/completions"): "a model call: reads no stored object, writes the "
    "caller's own usage (tenant scoping of usage: tests/integration/test_openai_gateway.py)",
    ("POST", "/v1/embeddings"): "a model call: reads no stored object, writes the caller's "
    "own usage",
}


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)


def routes(api: Any) -> set[tuple[str, str]]:
    return {(m, r.path) for r in api.routes for m in getattr(r, "methods", None) or ()}


async def test_the_http_tenant_walk_every_route_as_a_against_b(store_url):
    app = make_app(store_url)
    api = create_api(app)
    async with app, client_of(api) as client:
        a = auth(await new_key(app, "A", "alice", "admin"))
        bob = await new_key(app, "B", "bob", "admin")
        b = auth(bob)
        started = {}
        for workflow in ("waits", "dies", "asks"):
            started[workflow] = (
                await client.post(f"/v1/workflows/{workflow}/runs", headers=b)
            ).json()
        waiting, dead, asking = (started[w]["id"] for w in ("waits", "dies", "asks"))
        await status_of(client, waiting, bob, "waiting")
        await status_of(client, dead, bob, "dead")
        await status_of(client, asking, bob, "waiting")
        (task,) = (await client.get("/v1/tasks", headers=b)).json()["data"]
        b_ids = {waiting, dead, asking, task["id"]}

        # (method, path template) -> requests as A: (path, params, body).
        walk: dict[tuple[str, str], list[tuple[str, dict[str, Any], Any]]] = {
            ("POST", "/v1/workflows/{name}/runs"): [
                ("/v1/workflows/waits/runs", {}, {"tenant": "B"}),
            ],
            ("GET", "/v1/runs"): [("/v1/runs", {"tenant": "B"}, None)],
            ("GET", "/v1/runs/{run_id}"): [(f"/v1/runs/{r}", {}, None) for r in b_ids],
            ("POST", "/v1/runs/{run_id}/cancel"): [(f"/v1/runs/{waiting}/cancel", {}, None)],
            ("POST", "/v1/runs/{run_id}/resume"): [(f"/v1/runs/{dead}/resume", {}, None)],
            # An event names no object of B's: publishing it in B (``?tenant=B``) is 403.
            ("POST", "/v1/events/{topic}"): [
                ("/v1/events/greeting.sent", {"tenant": "B"}, {"id": "b-1", "data": {"name": "x"}})
            ],
            ("POST", "/v1/runs/{run_id}/signals/{name}"): [
                (f"/v1/runs/{waiting}/signals/go", {}, {"payload": 1})
            ],
            ("GET", "/v1/tasks"): [("/v1/tasks", {"tenant": "B"}, None)],
            ("GET", "/v1/tasks/{task_id}"): [(f"/v1/tasks/{task['id']}", {}, None)],
            ("POST", "/v1/tasks/{task_id}/claim"): [(f"/v1/tasks/{task['id']}/claim", {}, None)],
            ("POST", "/v1/tasks/{task_id}/release"): [
                (f"/v1/tasks/{task['id']}/release", {}, None)
            ],
            ("POST", "/v1/tasks/{task_id}/complete"): [
                (f"/v1/tasks/{task['id']}/complete", {}, {"action": "approve"})
            ],
            ("GET", "/v1/stats"): [("/v1/stats", {"tenant": "B"}, None)],
            ("GET", "/v1/audit"): [("/v1/audit", {"tenant": "B"}, None)],
            ("GET", "/v1/audit/verify"): [("/v1/audit/verify", {}, None)],
            ("GET", "/metrics"): [("/metrics", {"tenant": "B"}, None)],
        }
        assert routes(api) == set(walk) | set(EXEMPT)
        for (method, _), calls in walk.items():
            for path, params, body in calls:
                # Each object both as A's own tenant (404: missing) and naming B's (403).
                for extra in ({}, {"tenant": "B"}):
                    response = await client.request(
                        method, path, params=params | extra, json=body, headers=a
                    )
                    assert response.status_code in (403, 404), (method, path, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    told = {k: v for k, v in response.json().items() if k != "instance"}
                    # Nothing of B's shows (the path is A's own words): not its run's
                    # workflow, its task, its principal.
                    leaks = ("waits", "'dies'", "'asks'", "sign-off", "B/bob", "waiting")
                    assert not any(leak in str(told) for leak in leaks), told

        # What A lists without naming B: nothing of B's.
        assert (await client.get("/v1/runs", headers=a)).json()["data"] == []
        listed = (await client.get("/v1/tasks", params={"status": "any"}, headers=a)).json()
        assert listed["data"] == []
        mine = (await client.get("/v1/stats", headers=a)).json()
        assert (mine["tenant"], mine["workflows"]) == ("A", [])
        assert 'tenant="B"' not in (await client.get("/metrics", headers=a)).text
        extract = [
            json.loads(line)
            for line in (await client.get("/v1/audit", headers=a)).text.splitlines()
        ]
        # A's own records (its refused attempts name the ids it sent), stubs for B's.
        assert extract[0]["tenant"] == "A"
        assert {e.get("tenant") for e in extract[1:]} <= {None, "A"}

        # B's objects are as they were.
        theirs = {
            r["id"]: r["status"] for r in (await client.get("/v1/runs", headers=b)).json()["data"]
        }
        assert theirs == {waiting: "waiting", dead: "dead", asking: "waiting"}
        again = (await client.get(f"/v1/tasks/{task['id']}", headers=b)).json()
        assert (again["status"], again["decision"], again["claimed_by"]) == ("open", None, None)
        assert await app.store.load_signals(waiting) == []

        # The same event id in each tenant is each tenant's own event: B's does not return
        # A's run, and A's lists only its own.
        event = {"id": "evt-1", "data": {"name": "x"}}
        b_sent = (await client.post("/v1/events/greeting.sent", json=event, headers=b)).json()
        a_sent = (await client.post("/v1/events/greeting.sent", json=event, headers=a)).json()
        assert b_sent["runs"][0]["created"] and a_sent["runs"][0]["created"]
        assert b_sent["runs"][0]["run_id"] != a_sent["runs"][0]["run_id"]
        a_runs = (await client.get("/v1/runs", headers=a)).json()["data"]
        assert [r["id"] for r in a_runs] == [a_sent["runs"][0]["run_id"]]


async def test_a_tenant_named_empty_or_unstorable_is_a_422_on_every_route(store_url):
    # `?tenant=` (an unset shell variable) was read as a tenant named "": the local
    # principal's listings answered empty pages (a silent nothing), a key's answered 403
    # "may not list runs in tenant ''", and `/v1/audit` exported an empty extract. A tenant
    # that is empty, or holds a NUL or a lone surrogate, is the request's fault, refused
    # where a call is scoped to its tenant (``scope_tenant``), as `start` refused it.
    app = make_app(store_url)
    api = create_api(app)
    async with app, client_of(api) as client:
        key = auth(await new_key(app, "A", "alice", "admin"))
        run_id = (await client.post("/v1/workflows/waits/runs", headers=key)).json()["id"]
        calls = [
            ("GET", "/v1/runs", None),
            ("GET", f"/v1/runs/{run_id}", None),
            ("POST", f"/v1/runs/{run_id}/signals/go", {"payload": 1}),
            ("POST", f"/v1/runs/{run_id}/cancel", None),
            ("POST", f"/v1/runs/{run_id}/resume", None),
            ("GET", "/v1/tasks", None),
            ("GET", "/v1/tasks/t-1", None),
            ("POST", "/v1/tasks/t-1/claim", None),
            ("GET", "/v1/stats", None),
            ("GET", "/v1/audit", None),
            ("GET", "/metrics", None),
        ]
        for tenant in ("", "A\x00"):
            for headers in (key, {}):  # a key's principal, and (no key) a 401 first
                for method, path, body in calls:
                    r = await client.request(
                        method, path, params={"tenant": tenant}, json=body, headers=headers
                    )
                    if not headers:
                        assert r.status_code == 401, (path, r.text)
                        continue
                    assert r.status_code == 422, (method, path, tenant, r.text)
                    problem = r.json()
                    assert problem["type"] == "urn:aiosys:problem:invalid-input", problem
                    assert problem["detail"].startswith("tenant "), problem
            r = await client.post("/v1/workflows/waits/runs", json={"tenant": tenant}, headers=key)
            assert r.status_code == 422, r.text
        assert (await app.get_run(run_id)).status == "waiting"  # nothing was done to it


async def test_the_local_principal_naming_an_empty_tenant_is_refused_not_shown_nothing(
    store_url,
):
    from aiosys.errors import InvalidInput

    app = make_app(store_url)
    async with app:
        await app.start("hello", {"name": "x"}, tenant="A")
        for tenant in ("", "A\x00"):
            with pytest.raises(InvalidInput, match=r"^tenant "):
                await app.list_runs(tenant=tenant)
            with pytest.raises(InvalidInput, match=r"^tenant "):
                await app.list_tasks(tenant=tenant)
            with pytest.raises(InvalidInput, match=r"^tenant "):
                await app.stats(tenant=tenant)
            with pytest.raises(InvalidInput, match=r"^tenant "):
                await app.audit.export(io.StringIO(), tenant=tenant)
            with pytest.raises(InvalidInput, match=r"^tenant "):
                await app.identity.keys.list(tenant)
