"""``POST /v1/events/{topic}`` on both stores, through the real FastAPI application: an event
starts the runs its topic triggers (``hello`` is on ``greeting.sent`` in the walks' app), once
however often it is sent; every error is a problem with its status."""

from __future__ import annotations

from pathlib import Path

import pytest
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
from tests.integration.conftest import shipped_policies

from aiosys.api import create_api

pytestmark = pytest.mark.timeout(90)

NO_GREETINGS = (
    '@id("no-greetings")\n'
    'forbid(principal, action == Action::"start_workflow", resource)\n'
    'when { resource == Workflow::"hello" };\n'
)


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    for var in ("AIOSYS_JWT_ISSUER", "AIOSYS_JWT_JWKS_URL", "AIOSYS_JWT_JWKS_FILE"):
        monkeypatch.delenv(var, raising=False)


async def test_an_event_sent_over_http_starts_its_runs_once(store_url):
    app = make_app(store_url)
    async with serving(app) as client:
        event = {"data": {"name": "ada"}, "id": "evt-1", "source": "/crm"}
        sent = await client.post("/v1/events/greeting.sent", json=event)
        assert sent.status_code == 202, sent.text
        body = sent.json()
        assert (body["id"], body["type"], body["source"]) == ("evt-1", "greeting.sent", "/crm")
        ((run,),) = [body["runs"]]
        assert (run["workflow"], run["created"]) == ("hello", True)
        done = await status_of(client, run["run_id"], "local", "succeeded")
        assert (done["result"], done["tenant"]) == ("hello ada", "default")

        again = await client.post("/v1/events/greeting.sent", json=event)
        assert again.status_code == 202
        assert again.json()["runs"] == [
            {"workflow": "hello", "run_id": run["run_id"], "created": False}
        ]
        listed = (await client.get("/v1/runs", params={"workflow": "hello"})).json()["data"]
        assert [r["id"] for r in listed] == [run["run_id"]]

        conflict = is_problem(
            await client.post("/v1/events/greeting.sent", json=event | {"data": {"name": "bob"}}),
            409,
        )
        assert conflict["run_id"] == run["run_id"]

        # A CloudEvents structured-mode event (application/cloudevents+json); no id: a UUID.
        structured = await client.post(
            "/v1/events/greeting.sent",
            content=b'{"specversion": "1.0", "type": "greeting.sent", "source": "/crm", '
            b'"datacontenttype": "application/json", "data": {"name": "cy"}}',
            headers={"content-type": "application/cloudevents+json"},
        )
        assert structured.status_code == 202, structured.text
        assert len(structured.json()["id"]) == 36 and structured.json()["runs"][0]["created"]


async def test_bad_events_are_problems_with_their_status(store_url):
    app = make_app(store_url)
    async with serving(app, worker=False) as client:
        post = client.post
        unknown = is_problem(await post("/v1/events/greeting.snet", json={}), 404)
        assert unknown["type"] == "urn:aiosys:problem:unknown-topic"
        assert "'greeting.snet'" in unknown["detail"] and "greeting.sent" in unknown["detail"]
        bad_topic = is_problem(await post("/v1/events/greeting..sent", json={}), 422)
        assert "dot-separated" in bad_topic["detail"]
        wrong_type = is_problem(
            await post("/v1/events/greeting.sent", json={"type": "other.topic"}), 422
        )
        assert "'other.topic'" in wrong_type["detail"]
        not_an_object = is_problem(await post("/v1/events/greeting.sent", json={"data": [1]}), 422)
        assert not_an_object["errors"][0]["loc"] == ["body", "data"]
        extra = is_problem(await post("/v1/events/greeting.sent", json={"tenant": "x"}), 422)
        assert extra["errors"][0]["loc"] == ["body", "tenant"]
        misfit = is_problem(await post("/v1/events/greeting.sent", json={"data": {"nom": 1}}), 422)
        assert "workflow 'hello'" in misfit["detail"]
        is_problem(await post("/v1/events/greeting.sent", json={"id": ""}), 422)
        is_problem(
            await post(
                "/v1/events/greeting.sent",
                content=b'{"data": ',
                headers={"content-type": "application/json"},
            ),
            400,
        )
        is_problem(await post("/v1/events/greeting.sent", content=b"name=ada"), 415)
        assert (await client.get("/v1/runs")).json()["data"] == []
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/events/{topic}"]["post"]
    assert set(operation["responses"]) == {
        "202",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "500",
        "503",
    }
    assert set(operation["requestBody"]["content"]) == {
        "application/json",
        "application/cloudevents+json",
    }


async def test_a_denied_event_is_403_naming_the_policy_and_starts_nothing(store_url, tmp_path):
    app = make_app(store_url, shipped_policies(tmp_path, events=NO_GREETINGS))
    api = create_api(app)
    async with app, client_of(api) as client:
        operator = auth(await new_key(app, "A", "olga", "operator"))
        viewer = auth(await new_key(app, "A", "vic", "viewer"))
        event = {"data": {"name": "ada"}, "id": "evt-2"}
        denied = is_problem(
            await client.post("/v1/events/greeting.sent", json=event, headers=operator), 403
        )
        assert denied["type"] == "urn:aiosys:problem:policy-denied"
        assert denied["policies"] == ["no-greetings"]
        assert "no-greetings" in denied["detail"]
        refused = is_problem(
            await client.post("/v1/events/greeting.sent", json=event, headers=viewer), 403
        )
        assert refused["type"] == "urn:aiosys:problem:permission-denied"
        assert (await client.get("/v1/runs", headers=operator)).json()["data"] == []
        unauthenticated = is_problem(await client.post("/v1/events/greeting.sent", json=event), 401)
        assert unauthenticated["type"] == "urn:aiosys:problem:authentication-failed"


async def test_an_event_starts_runs_in_the_senders_tenant_only(store_url):
    app = make_app(store_url)
    api = create_api(app)
    async with app, client_of(api) as client:
        a = auth(await new_key(app, "A", "alice", "operator"))
        b = auth(await new_key(app, "B", "bob", "operator"))
        event = {"data": {"name": "ada"}, "id": "evt-3"}
        theirs = (await client.post("/v1/events/greeting.sent", json=event, headers=b)).json()
        mine = (await client.post("/v1/events/greeting.sent", json=event, headers=a)).json()
        assert (
            mine["runs"][0]["created"] and mine["runs"][0]["run_id"] != theirs["runs"][0]["run_id"]
        )
        named_b = await client.post(
            "/v1/events/greeting.sent", json=event, params={"tenant": "B"}, headers=a
        )
        assert "tenant 'B'" in is_problem(named_b, 403)["detail"]
        a_runs = (await client.get("/v1/runs", headers=a)).json()["data"]
        b_runs = (await client.get("/v1/runs", headers=b)).json()["data"]
    assert [(r["id"], r["tenant"]) for r in a_runs] == [(mine["runs"][0]["run_id"], "A")]
    assert [(r["id"], r["tenant"]) for r in b_runs] == [(theirs["runs"][0]["run_id"], "B")]


async def test_an_event_over_the_body_cap_is_413_and_starts_nothing(store_url):
    app = make_app(store_url)
    api = create_api(app, max_body_size="1KiB")
    await app.open()
    try:
        async with client_of(api) as client:
            big = {"data": {"name": "x" * 2000}}
            too_large = is_problem(await client.post("/v1/events/greeting.sent", json=big), 413)
            assert "1024 bytes" in too_large["detail"]
            assert (await client.get("/v1/runs")).json()["data"] == []
    finally:
        await app.close()
