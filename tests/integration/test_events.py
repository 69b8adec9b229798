"""Events and triggers (``@app.workflow(on=...)``, ``app.publish``), on both stores: an event
starts a run of each workflow on its topic, once however often it is published, through the
same checks and audit as any start; a refusal of one start starts none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import shipped_policies

from aiosys import App, Context, IdempotencyConflict, InvalidInput
from aiosys.errors import ConfigError, PermissionDenied, PolicyDenied, UnknownTopic
from aiosys.kernel import Principal
from aiosys.kernel.events import event_key

pytestmark = pytest.mark.timeout(60)

NO_INDEXING = (
    '@id("no-indexing")\n'
    'forbid(principal, action == Action::"start_workflow", resource)\n'
    'when { resource == Workflow::"index" };\n'
)
ALICE = Principal(id="alice", tenant="acme", roles={"operator"})


def make_app(store_url: str, policies: Path | str = "") -> App:
    app = App(store=store_url, policies_dir=policies, preload_models=False)

    @app.workflow(on="invoice.received")
    async def book(ctx: Context, number: str, amount: int = 0) -> str:
        return f"booked {number}"

    @app.workflow(on=["invoice.received", "invoice.paid"])
    async def notify(ctx: Context, number: str, amount: int = 0) -> str:
        return f"told {number}"

    @app.workflow(on="invoice.archived")
    async def archive(ctx: Context, number: str) -> str:
        return f"archived {number}"

    @app.workflow(on="invoice.archived")
    async def index(ctx: Context, number: str) -> str:
        return f"indexed {number}"

    return app


async def audit_bodies(app: App) -> list[dict[str, Any]]:
    rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
    return [json.loads(r["body"]) for r in rows]


async def test_an_event_starts_a_run_of_each_workflow_on_its_topic_and_they_complete(store_url):
    app = make_app(store_url)
    async with app:
        published = await app.publish(
            "invoice.received", {"number": "F-1", "amount": 12}, id="evt-1", source="/erp"
        )
        assert (published.id, published.type, published.source) == (
            "evt-1",
            "invoice.received",
            "/erp",
        )
        assert [t.workflow for t in published.runs] == ["book", "notify"]
        assert all(t.created for t in published.runs)
        results = [await t.run.result(timeout=20) for t in published.runs]
        rows = [await app.get_run(t.run_id) for t in published.runs]
        paid = await app.publish("invoice.paid", {"number": "F-1"})
        assert [t.workflow for t in paid.runs] == ["notify"]
        assert await paid.runs[0].run.result(timeout=20) == "told F-1"
    assert results == ["booked F-1", "told F-1"]
    assert [r.status for r in rows] == ["succeeded", "succeeded"]
    assert [r.tenant for r in rows] == ["default", "default"]
    assert [r.idempotency_key for r in rows] == [
        event_key("book", "/erp", "evt-1"),
        event_key("notify", "/erp", "evt-1"),
    ]
    assert rows[0].idempotency_key == 'event:["book","/erp","evt-1"]'
    assert {json.loads(r.input)["number"] for r in rows} == {"F-1"}


async def test_the_same_event_published_again_starts_nothing_new(store_url):
    """The "nothing lost, nothing repeated" contract: a publish retried with the event's id
    returns the runs of the first; a new id (or none: a fresh UUID) or another source is
    another event; the same id with other data is a conflict naming the run."""
    app = make_app(store_url)
    await app.open()
    try:
        data = {"number": "F-2"}
        first = await app.publish("invoice.received", data, id="evt-2")
        again = await app.publish("invoice.received", data, id="evt-2")
        assert [t.run_id for t in again.runs] == [t.run_id for t in first.runs]
        assert [t.created for t in again.runs] == [False, False]
        fresh = [await app.publish("invoice.received", data) for _ in range(2)]
        assert fresh[0].id != fresh[1].id and len(fresh[0].id) == 36  # UUIDs
        elsewhere = await app.publish("invoice.received", data, id="evt-2", source="/crm")
        assert all(t.created for t in elsewhere.runs)
        with pytest.raises(IdempotencyConflict) as conflict:
            await app.publish("invoice.received", {"number": "F-3"}, id="evt-2")
        runs = await app.list_runs(limit=100)
    finally:
        await app.close()
    assert conflict.value.run_id == first.runs[0].run_id
    assert "evt-2" in str(conflict.value)
    assert len(runs) == 2 * 4  # evt-2, two fresh ones, evt-2 from /crm: two runs each


async def test_topics_are_checked_and_an_unknown_one_is_refused_naming_the_topics(store_url):
    app = make_app(store_url)
    await app.open()
    try:
        with pytest.raises(UnknownTopic) as unknown:
            await app.publish("invoice.recieved", {"number": "F-4"})
        for bad in ("", "invoice..received", "invoice.*", "invoice received", "a" * 201, 7):
            with pytest.raises(InvalidInput) as invalid:
                await app.publish(bad, {"number": "F-4"})  # type: ignore[arg-type]
            assert "a topic is" in str(invalid.value)
        with pytest.raises(InvalidInput, match="event id is empty"):
            await app.publish("invoice.received", {"number": "F-4"}, id="")
        with pytest.raises(InvalidInput, match="event source"):
            await app.publish("invoice.received", {"number": "F-4"}, source="a\x00b")
        assert await app.list_runs() == []
    finally:
        await app.close()
    message = str(unknown.value)
    assert "'invoice.recieved'" in message
    assert "invoice.archived, invoice.paid, invoice.received" in message
    with pytest.raises(ConfigError, match=r"on='invoice\.\*'.*dot-separated"):
        app.workflow(on="invoice.*")(_spare)
    with pytest.raises(ConfigError, match="names no topic"):
        app.workflow(on=[])(_spare)
    assert "_spare" not in app.workflows  # a refused declaration registers nothing


async def _spare(ctx: Context) -> None:
    return None


async def test_input_one_triggered_workflow_refuses_starts_none(store_url):
    app = make_app(store_url)
    await app.open()
    try:
        with pytest.raises(InvalidInput) as invalid:
            await app.publish("invoice.archived", {"number": "F-5", "amount": 3})
        assert await app.list_runs() == []
    finally:
        await app.close()
    assert "workflow 'archive'" in str(invalid.value) and "amount" in str(invalid.value)


async def test_a_denied_start_of_one_triggered_workflow_starts_none_and_is_audited(
    store_url, tmp_path
):
    """Every start of a publish is admitted (roles, then the ``start_workflow`` policy of
    each workflow, as the bound principal) before any is written: ``index`` denied, its
    sibling ``archive`` (admitted first) is not started either. The audit log holds the
    refusal with the deny folded in, then ``archive``'s allowed start undone by it; an
    allowed publish audits each start as one record carrying its decision."""
    app = make_app(store_url, shipped_policies(tmp_path, events=NO_INDEXING))
    viewer = Principal(id="vic", tenant="acme", roles={"viewer"})
    await app.open()
    try:
        async with app.as_principal(ALICE):
            with pytest.raises(PolicyDenied) as denied:
                await app.publish("invoice.archived", {"number": "F-6"}, id="evt-6")
            assert await app.list_runs() == []
            allowed = await app.publish("invoice.received", {"number": "F-6"}, id="evt-7")
        async with app.as_principal(viewer):
            with pytest.raises(PermissionDenied, match="start workflow"):
                await app.publish("invoice.received", {"number": "F-6"}, id="evt-8")
        bodies = await audit_bodies(app)
        assert (await app.audit.verify()).ok
        rows = [await app.get_run(t.run_id) for t in allowed.runs]
    finally:
        await app.close()
    assert denied.value.policies == ("no-indexing",)
    assert denied.value.resource == 'Workflow::"index"'
    assert "no-indexing" in str(denied.value)
    starts = [
        (b["outcome"], b["detail"].get("workflow"), b.get("decision"), b.get("policies"))
        for b in bodies
        if b["action"] == "start_workflow"
    ]
    assert {b["principal"] for b in bodies if b["action"] == "start_workflow"} == {
        "user:acme/alice",
        "user:acme/vic",
    }
    assert starts == [
        ("error:PolicyDenied", "index", "deny", ["no-indexing"]),
        ("error:PolicyDenied", "archive", "allow", ["same-tenant-runs"]),
        ("created", "book", "allow", ["same-tenant-runs"]),
        ("created", "notify", "allow", ["same-tenant-runs"]),
        ("error:PermissionDenied", "book", None, []),
    ]
    created = [b["run_id"] for b in bodies if b["outcome"] == "created"]
    assert created == [r.id for r in rows]
    assert [json.loads(r.principal or "{}")["id"] for r in rows] == ["alice", "alice"]


async def test_a_publish_starts_runs_in_the_publishers_tenant_only(store_url):
    app = make_app(store_url)
    bob = Principal(id="bob", tenant="globex", roles={"operator"})
    await app.open()
    try:
        async with app.as_principal(ALICE):
            mine = await app.publish("invoice.received", {"number": "F-9"}, id="evt-9")
            with pytest.raises(PermissionDenied, match="tenant 'globex'"):
                await app.publish("invoice.received", {"number": "F-9"}, tenant="globex")
        async with app.as_principal(bob):
            # The same event id in another tenant is that tenant's own event.
            theirs = await app.publish("invoice.received", {"number": "F-9"}, id="evt-9")
            seen_by_bob = await app.list_runs()
        local = await app.publish("invoice.paid", {"number": "F-9"}, tenant="initech")
        acme = await app.list_runs(tenant="acme")
    finally:
        await app.close()
    assert all(t.created for t in theirs.runs)
    assert {t.run_id for t in theirs.runs}.isdisjoint(t.run_id for t in mine.runs)
    assert {r.id for r in seen_by_bob} == {t.run_id for t in theirs.runs}
    assert {r.id for r in acme} == {t.run_id for t in mine.runs}
    assert (await app.get_run(local.runs[0].run_id)).tenant == "initech"
