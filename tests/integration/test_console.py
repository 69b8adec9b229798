"""The web console over HTTP (httpx against the ASGI app), on both stores: login and logout
with an API key, the session cookie's attributes, CSRF refusals, every page rendered with
data, the actions (start, cancel, resume, signal; claim, release, approve, reject, edit),
a task approved in the inbox resuming its run, redaction kept in what a run shows, and the
tenant walk: tenant A's session gets 404 or 403 for every object of tenant B on every
console route, and none of B's data in any listing."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.consoleapp import EMAIL, SECRET, make_app

from aiosys import App
from aiosys.models.links.budget import Budget
from aiosys.ui import Console, mount_console
from aiosys.ui._console import when
from aiosys.ui._session import COOKIE, DEFAULT_TTL
from aiosys.ui._tasks import DECISIONS

pytestmark = pytest.mark.timeout(120)

KEY_SECRET = "k" * 40
BASE = "http://testserver"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", KEY_SECRET)
    monkeypatch.chdir(tmp_path)  # no aiosys.toml
    for var in [v for v in os.environ if v.startswith("AIOSYS_JWT_")]:
        monkeypatch.delenv(var)


@dataclass
class Site:
    app: App
    api: FastAPI
    console: Console
    keys: dict[str, str]  # who -> API key

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.api)
        return httpx.AsyncClient(transport=transport, base_url=BASE)


@pytest.fixture
async def site(store_url: str) -> AsyncIterator[Site]:
    app = make_app(store_url)
    app.models.budgets.add(Budget("tenant", "A", 10.0))
    app.models.budgets.add(Budget("workflow", "review", 1.0, hard=False, period="day"))
    app.models.budgets.add(Budget("tenant", "B", 5.0))
    api = FastAPI()
    console = mount_console(api, app, secret=SECRET)
    async with app:
        keys = {}
        for tenant, who, roles in [
            ("A", "alice", ("admin", "reviewer")),
            ("B", "bob", ("admin", "reviewer")),
            ("A", "vera", ("viewer",)),
        ]:
            keys[who] = (await app.identity.keys.create(tenant, who, roles=roles)).key
        yield Site(app, api, console, keys)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, key: str) -> str:
    """Log in with ``key``; the CSRF token of the session after the login."""
    page = await client.get("/login")
    r = await client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "api_key": key, "next": "/runs"}
    )
    assert r.status_code == 303, r.text
    return csrf_of((await client.get("/runs")).text)


async def started(site: Site, who: str, workflow: str, data: Any = None) -> str:
    principal = await site.app.identity.authenticate(site.keys[who])
    async with site.app.as_principal(principal):
        return (await site.app.start(workflow, data)).id


async def task_of(site: Site, run_id: str) -> str:
    (task,) = await site.app.list_tasks(run_id=run_id, status="any")
    return task.id


async def waiting_review(site: Site, who: str, doc: str, wait_status: Any) -> tuple[str, str]:
    """A ``review`` run of ``who`` waiting on its human task: the run's id, the task's."""
    run_id = await started(site, who, "review", {"doc": doc})
    await wait_status(site.app, run_id, "waiting")
    return run_id, await task_of(site, run_id)


# ---- login, sessions, CSRF ------------------------------------------------------------------


async def test_login_sets_an_httponly_samesite_cookie_and_logout_ends_it(site: Site) -> None:
    async with site.client() as c:
        r = await c.get("/runs?status=waiting")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dwaiting"
        page = await c.get("/login")
        assert 'type="password"' in page.text
        token = csrf_of(page.text)
        bad = await c.post("/login", data={"csrf_token": token, "api_key": "aiosys_nope"})
        assert bad.status_code == 401
        assert "malformed API key" in bad.text
        r = await c.post(
            "/login",
            data={
                "csrf_token": token,
                "api_key": site.keys["alice"],
                "next": "/runs?status=waiting",
            },
        )
        assert (r.status_code, r.headers["location"]) == (303, "/runs?status=waiting")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert site.keys["alice"] not in cookie  # only the key's public id is kept
        assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure
        page = await c.get("/runs")
        assert page.status_code == 200
        assert "logged in as user:A/alice" in page.text
        assert "tenant A" in page.text
        # Logging in again (a new session) rotates the CSRF token: one seen before is void.
        r = await c.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert (r.status_code, r.headers["location"]) == (303, "/login")
        assert (await c.get("/runs")).status_code == 303


async def test_a_revoked_key_or_a_forged_cookie_ends_the_session(site: Site) -> None:
    async with site.client() as c:
        await login(c, site.keys["alice"])
        forged = c.cookies[COOKIE][:-3] + "xyz"
        async with site.client() as other:
            other.cookies.set(COOKIE, forged)
            assert (await other.get("/runs")).status_code == 303
        key_id = site.keys["alice"].split("_")[1]
        await site.app.identity.keys.revoke(key_id)
        r = await c.get("/runs")
        assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fruns")


async def test_a_login_lasts_the_session_lifetime(site: Site) -> None:
    keys = site.app.identity.keys
    async with site.client() as c:
        await login(c, site.keys["alice"])
        assert (await c.get("/runs")).status_code == 200  # the cookie is rewritten (a flash)
        later = time.time() + DEFAULT_TTL + 1
        keys.clock = lambda: later  # the identity's clock: the key itself never expires
        r = await c.get("/runs")
        assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fruns")


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    site: Site, wait_status: Any
) -> None:
    run_id = await started(site, "alice", "waits")
    await wait_status(site.app, run_id, "waiting")
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
            r = await c.post(f"/runs/{run_id}/cancel", data=data)
            assert r.status_code == 403, data
            assert "CSRF token" in r.text
        # A login form needs it too: nobody can log a visitor in as someone else.
        async with site.client() as fresh:
            r = await fresh.post("/login", data={"api_key": site.keys["bob"]})
            assert r.status_code == 403
        # Another visitor's token is no good either: without a session it is the login.
        async with site.client() as other:
            r = await other.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
            assert (r.status_code, r.headers["location"]) == (303, "/login")
            await login(other, site.keys["alice"])
            r = await other.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
            assert r.status_code == 403
    assert (await site.app.get_run(run_id)).status == "waiting"


async def test_without_identity_every_visitor_is_the_local_principal(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/local.db")
    api = FastAPI()
    mount_console(api, app, secret=SECRET)
    async with app:
        run_id = (await app.start("waits", tenant="elsewhere")).id
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            page = await c.get("/runs")
            assert page.status_code == 200
            assert "local: every tenant" in page.text
            assert run_id[:8] in page.text
            login = await c.get("/login")
            assert "No identity is configured" in login.text
            r = await c.post(f"/runs/{run_id}/cancel", data={"csrf_token": csrf_of(page.text)})
            assert r.status_code == 303
    assert (await app.get_run(run_id)).status == "cancelled"


# ---- pages -------------------------------------------------------------------------------------


async def test_every_page_renders_with_its_data(site: Site, wait_status: Any) -> None:
    review = await started(site, "alice", "review", {"doc": "a lease"})
    dead = await started(site, "alice", "dies")
    await wait_status(site.app, review, "waiting")
    await wait_status(site.app, dead, "dead")
    site.app.slo(workflow="dies", objective="error_rate", target=0.5)
    task = await task_of(site, review)
    (call,) = [e for e in await site.app.effects(review) if e.kind == "model"]
    cost = f"{json.loads(call.meta or '{}')['cost']:.6f}"
    assert float(cost) > 0
    async with site.client() as c:
        await login(c, site.keys["alice"])
        runs = await c.get("/runs")
        assert review[:8] in runs.text and dead[:8] in runs.text
        assert 'hx-trigger="every 2s"' in runs.text  # live status
        waiting = await c.get("/runs?status=waiting&since=1h&workflow=review")
        assert review[:8] in waiting.text and dead[:8] not in waiting.text
        rows = await c.get("/runs/rows?status=dead")
        assert dead[:8] in rows.text and review[:8] not in rows.text
        assert "<html" not in rows.text  # a fragment for htmx

        page = (await c.get(f"/runs/{review}")).text
        assert "review@1" in page and "waiting" in page
        assert "retried" in page and "the extractor is busy" in page  # the failed attempt
        assert f'id="run-cost">{cost}<' in page  # the model call's cost
        assert "echo: summarize A LEASE" in page  # the model's output
        assert "approve-summary" in page and f"/tasks/{task}" in page
        assert 'id="waterfall"' in page and "run review" in page and "chat echo" in page
        assert "<svg" in page and "Cancel" in page
        assert f'hx-get="/runs/{review}/live"' in page

        page = (await c.get(f"/runs/{dead}")).text
        assert "PermanentError: the ledger refused the entry" in page
        assert "Traceback (most recent call last)" in page  # the recorded traceback
        assert "Resume" in page and "hx-get" not in page.split('id="run-live"')[1][:20]

        live = await c.get(f"/runs/{review}/live")
        assert live.status_code == 200 and 'id="run-live"' in live.text

        inbox = (await c.get("/tasks")).text
        assert "approve-summary" in inbox and "reviewer" in inbox
        assert re.search(r'data-sla-left="(3[0-6]\d\d)"', inbox)  # about an hour left
        task_page = (await c.get(f"/tasks/{task}")).text
        assert "echo: summarize A LEASE" in task_page and "Edit and approve" in task_page

        models = (await c.get("/models")).text
        assert 'href="/models/echo"' in models and "platform team" in models
        card = (await c.get("/models/echo")).text
        assert "Model card: echo (version 1)" in card and "<table>" in card

        audit = (await c.get("/audit")).text
        assert "start_workflow" in audit and "user:A/alice" in audit

        stats = (await c.get("/stats?since=1h&workflow=review")).text
        assert stats.count('<svg class="chart"') == 4
        assert "failures by class" in stats and "dead-letter backlog" in stats
        assert re.search(r"<td>dies</td><td class=\"num\">1</td>", stats)
        assert "error_rate" in stats and "broken" in stats  # the SLO: 1 dead of 1

        budgets = (await c.get("/budgets")).text
        assert "tenant A" in budgets and "workflow review" in budgets
        assert cost in budgets  # what the review run's model call cost
        assert "tenant B" not in budgets.split("<table", 1)[1]


async def test_pages_are_self_contained_and_send_security_headers(site: Site) -> None:
    async with site.client() as anonymous, site.client() as c:
        await login(c, site.keys["alice"])
        pages = [("/login", anonymous)] + [
            (path, c) for path in ("/runs", "/tasks", "/models", "/audit", "/stats", "/budgets")
        ]
        for path, client in pages:
            r = await client.get(path)
            assert r.status_code == 200, path
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), path
            policy = r.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
        js = await c.get("/ui/static/htmx.min.js")
        assert js.status_code == 200 and js.text.startswith("var htmx=")
        assert (await c.get("/ui/static/htmx.LICENSE")).text.startswith("Zero-Clause BSD")
        assert (await c.get("/ui/static/console.css")).status_code == 200


# ---- actions -------------------------------------------------------------------------------


def approval_row(page: str, seq: int) -> str:
    """The text of the timeline's approval row of effect ``seq`` (its tags dropped)."""
    found = re.search(rf'<tr class="approval" id="approval-{seq}">(.*?)</tr>', page, re.S)
    assert found, page.split('id="timeline"')[1].split("</table>")[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


async def test_a_task_approved_in_the_inbox_resumes_its_run(site: Site, wait_status: Any) -> None:
    run_id, task = await waiting_review(site, "alice", "a lease", wait_status)
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        waiting = approval_row((await c.get(f"/runs/{run_id}")).text, 3)
        assert "human task" in waiting and "approve-summary" in waiting
        assert "waiting waiting for a decision" in waiting, waiting
        r = await c.post(f"/tasks/{task}/claim", data={"csrf_token": token})
        assert (r.status_code, r.headers["location"]) == (303, f"/tasks/{task}")
        assert "<dt>claimed by</dt><dd>alice at" in (await c.get(f"/tasks/{task}")).text
        r = await c.post(
            f"/tasks/{task}/complete",
            data={"csrf_token": token, "action": "approve", "comment": "fine by me"},
        )
        assert (r.status_code, r.headers["location"]) == (303, f"/runs/{run_id}")
        await wait_status(site.app, run_id, "succeeded")
        page = (await c.get(f"/runs/{run_id}")).text
        assert "approve-summary" in page and "approved: the run resumes" in page
        assert "approve by alice: “fine by me”" in page
        # The timeline says who decided and when, below the effect that waited for it.
        (decided,) = await site.app.list_tasks(run_id=run_id, status="any")
        assert decided.decided_at is not None
        row = approval_row(page, 3)
        assert f'href="/tasks/{task}"' in page.split('id="approval-3"')[1].split("</tr>")[0]
        assert row == (
            f"3 human task approve-summary approved approved by alice (reviewer) at "
            f"{when(decided.decided_at)} UTC “fine by me”"
        ), row
        assert '"decision": "approve"' in page.replace("&#34;", '"')
        again = await c.post(
            f"/tasks/{task}/complete", data={"csrf_token": token, "action": "reject"}
        )
        # Once only: deciding, claiming or releasing it again is a conflict with its state.
        assert again.status_code == 409 and "completed: it was decided by alice" in again.text
        for action in ("claim", "release"):
            r = await c.post(f"/tasks/{task}/{action}", data={"csrf_token": token})
            assert r.status_code == 409 and "is completed" in r.text, (action, r.text)


async def test_a_task_held_by_another_is_a_conflict_and_one_not_yours_a_refusal(
    site: Site, wait_status: Any
) -> None:
    """In the inbox as over HTTP: claiming or deciding a task another reviewer holds is 409
    saying so; releasing it is not yours (403); without its role, every action is 403."""
    run_id, task = await waiting_review(site, "alice", "held", wait_status)
    carl = (await site.app.identity.keys.create("A", "carl", roles=["reviewer"])).key
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        assert (await c.post(f"/tasks/{task}/claim", data={"csrf_token": token})).is_redirect
    async with site.client() as c:
        token = await login(c, carl)
        for action, form in [("claim", {}), *[("complete", {"action": a}) for a in DECISIONS]]:
            if form.get("action") == "edit":
                form["data"] = '{"summary": "mine"}'
            r = await c.post(f"/tasks/{task}/{action}", data={"csrf_token": token, **form})
            assert r.status_code == 409 and "claimed by alice" in r.text, (action, form, r.text)
        r = await c.post(f"/tasks/{task}/release", data={"csrf_token": token})
        assert r.status_code == 403 and "alice holds it" in r.text
    async with site.client() as c:
        token = await login(c, site.keys["vera"])
        for action, form in [("claim", {}), ("release", {}), ("complete", {"action": "approve"})]:
            r = await c.post(f"/tasks/{task}/{action}", data={"csrf_token": token, **form})
            assert r.status_code == 403, (action, r.text)
    assert (await site.app.get_run(run_id)).status == "waiting"


async def test_edit_and_reject_from_the_task_page(site: Site, wait_status: Any) -> None:
    edited, edited_task = await waiting_review(site, "alice", "one", wait_status)
    rejected, rejected_task = await waiting_review(site, "alice", "two", wait_status)
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        bad = await c.post(
            f"/tasks/{edited_task}/complete",
            data={"csrf_token": token, "action": "edit", "data": "{not json"},
        )
        assert bad.status_code == 400 and "the edited data is not valid JSON" in bad.text
        r = await c.post(
            f"/tasks/{edited_task}/complete",
            data={"csrf_token": token, "action": "edit", "data": '{"summary": "better"}'},
        )
        assert r.status_code == 303
        r = await c.post(
            f"/tasks/{rejected_task}/complete",
            data={"csrf_token": token, "action": "reject", "comment": "no"},
        )
        assert r.status_code == 303
    assert (await site.app.handle(edited).result(timeout=10))["decision"] == "edit"
    assert (await site.app.handle(rejected).result(timeout=10))["decision"] == "reject"
    async with site.client() as c:
        await login(c, site.keys["vera"])  # a viewer of tenant A: not the task's role
        row = approval_row((await c.get(f"/runs/{rejected}")).text, 3)
        assert "rejected by alice (reviewer) at" in row and "“no”" in row, row
        row = approval_row((await c.get(f"/runs/{edited}")).text, 3)
        assert "edited by alice (reviewer) at" in row, row
    async with site.client() as c:
        await login(c, site.keys["bob"])  # tenant B: the run is not found
        assert (await c.get(f"/runs/{rejected}")).status_code == 404
    (task,) = await site.app.list_tasks(run_id=edited, status="any")
    assert task.decision is not None and task.decision.data == {"summary": "better"}


async def test_start_cancel_resume_and_signal_from_the_run_pages(
    site: Site, wait_status: Any
) -> None:
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        r = await c.post("/runs", data={"csrf_token": token, "workflow": "waits", "input": "{}"})
        assert r.status_code == 303
        waiting = r.headers["location"].removeprefix("/runs/")
        await wait_status(site.app, waiting, "waiting")
        r = await c.post(
            f"/runs/{waiting}/signal",
            data={"csrf_token": token, "name": "go", "payload": '{"ok": true}'},
        )
        assert r.status_code == 303
        assert await site.app.handle(waiting).result(timeout=10) == {"ok": True}

        bad = await c.post("/runs", data={"csrf_token": token, "workflow": "waits", "input": "[1"})
        assert bad.status_code == 400 and "the input is not valid JSON" in bad.text
        unknown = await c.post("/runs", data={"csrf_token": token, "workflow": "nope"})
        assert unknown.status_code == 404

        r = await c.post("/runs", data={"csrf_token": token, "workflow": "waits"})
        other = r.headers["location"].removeprefix("/runs/")
        await wait_status(site.app, other, "waiting")
        r = await c.post(f"/runs/{other}/cancel", data={"csrf_token": token, "reason": "test"})
        assert r.status_code == 303
        assert (await site.app.get_run(other)).status == "cancelled"

        dead = await started(site, "alice", "dies")
        await wait_status(site.app, dead, "dead")
        r = await c.post(f"/runs/{dead}/resume", data={"csrf_token": token})
        assert r.status_code == 303
        assert "run resumed" in (await c.get(r.headers["location"])).text
        await wait_status(site.app, dead, "dead")  # it fails again, for the same reason
        again = await c.post(f"/runs/{other}/resume", data={"csrf_token": token})
        assert again.status_code == 409  # a cancelled run is not resumed


async def test_a_json_field_the_parser_cannot_read_is_a_400_naming_it(
    site: Site, wait_status: Any
) -> None:
    # Only a syntax error was caught: JSON nested past the parser's depth (RecursionError)
    # or an integer over Python's 4300 digits (ValueError) in a form's JSON was a 500.
    deep, big = "[" * 100_000 + "]" * 100_000, "9" * 5000
    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        r = await c.post("/runs", data={"csrf_token": token, "workflow": "waits"})
        waiting = r.headers["location"].removeprefix("/runs/")
        await wait_status(site.app, waiting, "waiting")
        for path, name, extra in (
            ("/runs", "input", {"workflow": "waits"}),
            (f"/runs/{waiting}/signal", "payload", {"name": "go"}),
        ):
            for text, said in ((deep, "deeper than the parser"), (big, "more than 4300 digits")):
                r = await c.post(path, data={"csrf_token": token, name: text, **extra})
                assert r.status_code == 400, (path, r.status_code)
                assert said in r.text, (path, said)
        assert (await site.app.get_run(waiting)).status == "waiting"
        # A field sent as a file was read as empty: the run started with its defaults.
        before = len(await site.app.list_runs(workflow="waits"))
        r = await c.post(
            "/runs",
            files={
                "csrf_token": (None, token),
                "workflow": (None, "waits"),
                "input": ("input.json", b"{}"),
            },
        )
        assert r.status_code == 400 and "&#39;input&#39; must be text, not a file" in r.text
        assert len(await site.app.list_runs(workflow="waits")) == before


async def test_a_viewer_reads_but_may_not_act(site: Site, wait_status: Any) -> None:
    run_id, task = await waiting_review(site, "alice", "x", wait_status)
    async with site.client() as c:
        token = await login(c, site.keys["vera"])
        assert (await c.get(f"/runs/{run_id}")).status_code == 200
        r = await c.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
        assert r.status_code == 403 and "may not cancel run" in r.text
        r = await c.post(f"/tasks/{task}/complete", data={"csrf_token": token, "action": "approve"})
        assert r.status_code == 403
        assert (await c.get("/audit")).status_code == 403  # exporting takes the role admin
    assert (await site.app.get_run(run_id)).status == "waiting"


async def test_a_run_shows_what_its_model_was_sent_redacted(
    tmp_path: Path, wait_status: Any
) -> None:
    app = make_app(f"sqlite:///{tmp_path}/r.db", redacting=True)
    api = FastAPI()
    mount_console(api, app, secret=SECRET)
    async with app:
        run_id = (await app.start("private")).id
        await wait_status(app, run_id, "succeeded")
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            page = (await c.get(f"/runs/{run_id}")).text
    timeline = page.split('id="timeline"')[1].split("</table>")[0]
    assert "echo: write to &lt;EMAIL_ADDRESS_1&gt;" in timeline  # the record, as kept
    assert EMAIL not in timeline


# ---- the tenant walk ---------------------------------------------------------------------------

#: Console routes the walk does not aim at tenant B's objects, and why. A route in neither
#: this table nor the walk fails the test: a new page must be walked or exempted here.
EXEMPT = {
    ("GET", "/login"): "no tenant data (the login form)",
    ("POST", "/login"): "authenticates a key (tested above)",
    ("POST", "/logout"): "ends the visitor's own session",
    ("GET", "/"): "a redirect to /runs",
    ("GET", "/models"): "the catalog every tenant shares",
    ("GET", "/models/{model_id}"): "the catalog every tenant shares",
    ("POST", "/runs"): "starts in the visitor's own tenant: the form names none",
}


async def test_tenant_walk_a_session_of_a_gets_nothing_of_b(site: Site, wait_status: Any) -> None:
    app = site.app
    b_review = await started(site, "bob", "review", {"doc": "secret of B"})
    b_waits = await started(site, "bob", "waits")
    b_dead = await started(site, "bob", "dies")
    for run_id, status in ((b_review, "waiting"), (b_waits, "waiting"), (b_dead, "dead")):
        await wait_status(app, run_id, status)
    b_task = await task_of(site, b_review)
    b_ids = [b_review, b_waits, b_dead, b_task]

    objects: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("GET", "/runs/{run_id}"): [{"run_id": r} for r in (b_review, b_waits, b_dead)],
        ("GET", "/runs/{run_id}/live"): [{"run_id": r} for r in (b_review, b_waits, b_dead)],
        ("POST", "/runs/{run_id}/cancel"): [{"run_id": b_waits}, {"run_id": b_review}],
        ("POST", "/runs/{run_id}/resume"): [{"run_id": b_dead}],
        ("POST", "/runs/{run_id}/signal"): [{"run_id": b_waits, "name": "go"}],
        ("GET", "/tasks/{task_id}"): [{"task_id": b_task}],
        ("POST", "/tasks/{task_id}/claim"): [{"task_id": b_task}],
        ("POST", "/tasks/{task_id}/release"): [{"task_id": b_task}],
        ("POST", "/tasks/{task_id}/complete"): [
            {"task_id": b_task, "action": action} for action in ("approve", "reject")
        ],
    }
    listings = {
        ("GET", "/runs"): ["/runs", "/runs?workflow=review", "/runs?status=waiting"],
        ("GET", "/runs/rows"): ["/runs/rows", "/runs/rows?status=dead"],
        ("GET", "/tasks"): ["/tasks", "/tasks?status=any"],
        ("GET", "/audit"): ["/audit", "/audit?since=365d"],
        ("GET", "/stats"): ["/stats", "/stats?workflow=dies&since=1h"],
        ("GET", "/budgets"): ["/budgets"],
    }
    refused = {  # asking for B by name: 403
        ("GET", "/budgets"): ["/budgets?tenant=B"],
    }
    posts_listing = {("POST", "/audit/verify")}

    routes = {(m, path) for m, path in site.console.pages if m != "HEAD"}
    walked = set(objects) | set(listings) | posts_listing
    assert routes == walked | set(EXEMPT), routes ^ (walked | set(EXEMPT))

    async with site.client() as c:
        token = await login(c, site.keys["alice"])
        # Listings first: afterwards A's audit records name the ids A itself tried.
        for (_, _), urls in listings.items():
            for url in urls:
                r = await c.get(url)
                assert r.status_code == 200, url
                for b_id in b_ids:
                    assert b_id[:8] not in r.text, (url, b_id)
                assert "secret of B" not in r.text and "user:B/bob" not in r.text
        for (method, path), cases in objects.items():
            for case in cases:
                url = path.format(**case)
                if method == "GET":
                    r = await c.get(url)
                else:
                    form = {
                        "csrf_token": token,
                        **{k: v for k, v in case.items() if "_id" not in k},
                    }
                    r = await c.post(url, data=form)
                assert r.status_code in (403, 404), (method, url, r.status_code)
                assert "secret of B" not in r.text
        for (_, _), urls in refused.items():
            for url in urls:
                assert (await c.get(url)).status_code == 403, url
        r = await c.post("/audit/verify", data={"csrf_token": token, "since": "365d"})
        assert r.status_code == 303
        flash = (await c.get(r.headers["location"])).text
        assert "audit log intact" in flash

    # B's objects are as they were, and B sees them.
    assert [(await app.get_run(r)).status for r in (b_review, b_waits, b_dead)] == [
        "waiting",
        "waiting",
        "dead",
    ]
    assert (await app.get_task(b_task)).status == "open"
    assert await app.store.load_signals(b_waits) == []
    async with site.client() as c:
        await login(c, site.keys["bob"])
        page = (await c.get("/runs")).text
        assert all(r[:8] in page for r in (b_review, b_waits, b_dead))
        assert (await c.get(f"/tasks/{b_task}")).status_code == 200
