"""Lineage on both stores: what produced a run's result (each input's content hash equal to
the hash of the value passed, model@version, task@version, the policy decisions of the
effect's audit record, a child run, a person's approval), which runs used a model version
(exactly those), tenants kept apart, replay after a restart changing nothing, the switch
off, and the OpenLineage export read back by openlineage-python's spec-generated classes and
validated against the OpenLineage JSON Schema (tests/data/openlineage)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import rfc8785
from pydantic import BaseModel
from tests.integration.conftest import _wait_status as wait_status
from tests.integration.openlineage_check import check_event
from tests.integration.openlineage_schema import validate_event
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.errors import ConfigError, PermissionDenied, PolicyDenied, RunNotFound
from aiosys.kernel.control import Parked
from aiosys.kernel.gate import EffectCall
from aiosys.models.contracts import RoutingPlan
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.types import Message, ModelRequest
from aiosys.store import open_store
from aiosys.store._sql import load_queries

pytestmark = pytest.mark.timeout(90)

POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"
SECRET = "l" * 40


def sha(value: Any) -> str:
    """The content hash, computed here independently: SHA-256 of RFC 8785 JSON."""
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


class SumIn(BaseModel):
    text: str


class SumOut(BaseModel):
    summary: str


def card(server: OpenAIWire, version: str, id: str = "wire-gpt") -> dict[str, Any]:
    return {
        "id": id,
        "version": version,
        "provider": "openai",
        "endpoint": server.endpoint,
        "provider_model": "gpt-wire",
    }


def build(store_url: str, server: OpenAIWire, version: str = "3", **kw: Any) -> App:
    """An app whose ``intake`` OCRs a path (a step), summarizes the text (task ``summarize``
    version 2 on card ``wire-gpt``), counts it in a child run and returns both; ``review``
    asks a person (a parked ``approval`` effect, woken by signal ``decide``)."""
    app = App(store=store_url, models_dir="", preload_models=False, policies_dir=POLICIES, **kw)
    app.models.add_card(card(server, version))
    app.models.task(
        "summarize",
        input=SumIn,
        output=SumOut,
        build=lambda d: ModelRequest(messages=[Message(role="user", content=d.text)]),
        parse=lambda r: {"summary": r.output},
        plan=RoutingPlan(["wire-gpt"]),
        version="2",
    )

    @app.step
    def ocr(path: str, dpi: int = 300) -> str:
        return f"text of {path} at {dpi}"

    @app.workflow
    async def count(ctx: Context, text: str) -> dict[str, int]:
        return {"words": len(text.split())}

    @app.workflow
    async def intake(ctx: Context, path: str) -> dict[str, Any]:
        text = await ocr(path, dpi=200)
        summary = await ctx.models.run("summarize", {"text": text})
        counted = await ctx.child("count", {"text": summary.summary})
        return {"summary": summary.summary, "count": counted}

    @app.workflow
    async def review(ctx: Context, path: str) -> dict[str, Any]:
        text = await ocr(path)
        verdict = await ctx.effect("approval", "paralegal", params={"data": {"text": text}})
        return {"text": text, "verdict": verdict["action"]}

    async def approval(call: EffectCall) -> Any:
        """A person's approval: parks until signal ``decide`` (the humans package's tasks
        park the same way), and keeps who decided on the effect's record."""
        signal = call.execution.take_signal("decide")
        if signal is None:
            raise Parked(None, {"waiting": "decide"})
        call.meta["consume_signal"] = signal.id
        decision = json.loads(signal.payload)
        call.meta["record"] = {**(call.meta.get("record") or {}), "approval": decision}
        return decision

    app.gate.register("approval", approval)
    return app


async def test_show_names_input_hashes_model_task_policies_and_child(
    store_url: str, openai_server: OpenAIWire
) -> None:
    app = build(store_url, openai_server)
    async with app:
        run = await app.start("intake", {"path": "scan-1.pdf"})
        out = await run.result(timeout=30)
        lin = await app.lineage.show(run.id)
        audit = await audit_records(app, run.id)
        version = app.policy.version if app.policy is not None else None
    text = "text of scan-1.pdf at 200"
    assert out == {"summary": f"echo: {text}", "count": {"words": 6}}
    assert lin.input == sha({"path": "scan-1.pdf"})
    assert lin.result == sha(out)
    ocr, model, start, result = lin.effects
    # The step: each argument by name, hashed as passed; the path came from the run's input.
    assert (ocr.kind, ocr.inputs) == ("step", {"path": sha("scan-1.pdf"), "dpi": sha(200)})
    assert ocr.output == sha(text) and ocr.sources == {"path": ["input"]}
    assert ocr.model is None and ocr.policies == [] and ocr.human is None
    # The model call: the task's input, the card and the contract with their versions, the
    # policy decision, as the effect's audit record keeps it.
    assert model.inputs == {"input": sha({"text": text})} and model.sources == {"input": [1]}
    assert (model.model, model.task) == ("wire-gpt@3", "summarize@2")
    assert model.output == sha({"summary": f"echo: {text}"})
    (decision,) = model.policies
    assert decision["decision"] == "allow" and decision["action"] == "call_model"
    assert decision["policies"] == ["same-tenant-effects"]
    assert decision["policy_version"] == version
    assert audit[2]["policies"] == decision["policies"]
    assert audit[2]["policy_version"] == decision["policy_version"]
    # The child run: its input hashed as the child's run keeps it, its own lineage under it.
    assert start.kind == "child_start" and start.inputs == {"input": sha({"text": out["summary"]})}
    assert start.sources == {"input": [2]}
    assert start.policies[0]["action"] == "start_workflow"
    assert start.child is not None and start.child.input == start.inputs["input"]
    assert start.child.workflow == "count" and start.child.result == sha({"words": 6})
    assert start.child.parent_id == run.id
    assert result.kind == "child_result" and result.sources == {"child": [3]}
    assert result.output == start.child.result
    # The result came from the model's output and the child's.
    assert lin.result_from == [2, 4]
    assert [r.run_id for r in lin.walk()] == [run.id, start.child.run_id]


async def audit_records(app: App, run_id: str) -> dict[int, dict[str, Any]]:
    """The audit records of a run's effects, by effect number."""
    rows = await app.store.fetch("audit_page", {"after": 0, "upto": 1 << 40, "limit": 100_000})
    out = {}
    for row in rows:
        body = json.loads(row["body"])
        if body.get("run_id") == run_id and body.get("effect_seq") is not None:
            out[body["effect_seq"]] = body
    return out


async def test_runs_by_model_finds_exactly_the_runs_that_used_that_version(
    store_url: str, openai_server: OpenAIWire
) -> None:
    app = build(store_url, openai_server, version="3")

    @app.workflow
    async def ask(ctx: Context, q: str) -> str:
        return str((await ctx.models.call("other", q)).output)

    @app.workflow
    async def nested(ctx: Context, path: str) -> Any:
        return await ctx.child("intake", {"path": path})

    app.models.add_card(card(openai_server, "1", id="other"))
    async with app:
        v3 = [await app.start("intake", {"path": f"a{i}.pdf"}) for i in range(2)]
        parent = await app.start("nested", {"path": "n.pdf"})
        for r in (*v3, parent):
            await r.result(timeout=30)
        other = await app.start("ask", {"q": "hi"})
        await other.result(timeout=30)
        cut = app.store.clock()
        app.models.add_card(card(openai_server, "4"))  # version 4 replaces 3 from now on
        v4 = await app.start("intake", {"path": "b.pdf"})
        await v4.result(timeout=30)
        child_of_parent = [e for e in await app.effects(parent.id) if e.kind == "child_start"]
        nested_child = json.loads(child_of_parent[0].output or "null")

        used3 = await app.lineage.runs("wire-gpt@3")
        used4 = await app.lineage.runs("wire-gpt@4")
        any_version = await app.lineage.runs("wire-gpt")
        since = await app.lineage.runs("wire-gpt", since=cut)
        newest = await app.lineage.runs("wire-gpt", limit=1)
        others = await app.lineage.runs("other@1")
        none = await app.lineage.runs("wire-gpt@2")
        prefix = await app.lineage.runs("wire")  # an id is not a prefix of another id

    assert {r["run_id"] for r in used3} == {v3[0].id, v3[1].id, nested_child}
    (under,) = [r for r in used3 if r["run_id"] == nested_child]
    assert under["parent_id"] == parent.id and under["workflow"] == "intake"
    assert all(r["calls"] == 1 and r["models"] == ["wire-gpt@3"] for r in used3)
    assert [r["run_id"] for r in used4] == [v4.id] and used4[0]["models"] == ["wire-gpt@4"]
    assert {r["run_id"] for r in any_version} == {v3[0].id, v3[1].id, nested_child, v4.id}
    assert any_version[0]["run_id"] == v4.id  # newest use first
    assert [r["run_id"] for r in since] == [v4.id]
    assert [r["run_id"] for r in newest] == [v4.id]
    assert [r["run_id"] for r in others] == [other.id]
    assert none == [] and prefix == []


async def principal(app: App, tenant: str, who: str) -> Any:
    new = await app.identity.keys.create(tenant, who, roles=("admin",))
    return await app.identity.authenticate(new.key)


async def test_a_tenant_sees_none_of_another_tenants_lineage(
    store_url: str, openai_server: OpenAIWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    app = build(store_url, openai_server)
    async with app:
        alice, bob = await principal(app, "A", "alice"), await principal(app, "B", "bob")
        async with app.as_principal(bob):
            theirs = await app.start("intake", {"path": "b.pdf"})
            await theirs.result(timeout=30)
        async with app.as_principal(alice):
            mine = await app.start("intake", {"path": "a.pdf"})
            await mine.result(timeout=30)
            with pytest.raises(RunNotFound):
                await app.lineage.show(theirs.id)
            with pytest.raises(RunNotFound):
                await app.lineage.openlineage(theirs.id)
            with pytest.raises(PermissionDenied):
                await app.lineage.runs("wire-gpt@3", tenant="B")
            seen = await app.lineage.runs("wire-gpt@3")
            assert (await app.lineage.show(mine.id)).tenant == "A"
        async with app.as_principal(bob):
            assert [r["run_id"] for r in await app.lineage.runs("wire-gpt@3")] == [theirs.id]
        every = await app.lineage.runs("wire-gpt@3")  # the local operator: every tenant
    assert [r["run_id"] for r in seen] == [mine.id]
    assert {r["run_id"] for r in every} == {mine.id, theirs.id}


async def test_replay_after_a_restart_neither_duplicates_nor_changes_lineage(
    store_url: str, openai_server: OpenAIWire
) -> None:
    first = build(store_url, openai_server)
    async with first:
        run = await first.start("review", {"path": "r.pdf"})
        await wait_status(first, run.id, "waiting")
        before = await first.lineage.show(run.id)
        effects_before = await first.effects(run.id)
    # A new process: the run is replayed from its record, the parked approval resumed.
    second = build(store_url, openai_server)
    async with second:
        decision = {"action": "approve", "decided_by": "user:default/pat", "decided_at": 1.5e9}
        await second.signal(run.id, "decide", decision)
        out = await second.handle(run.id).result(timeout=30)
        after = await second.lineage.show(run.id)
        effects_after = await second.effects(run.id)
    assert out == {"text": "text of r.pdf at 300", "verdict": "approve"}
    assert [(e.seq, e.kind) for e in effects_after] == [(1, "step"), (2, "approval")]
    assert effects_after[0] == effects_before[0]  # the step's record was not written again
    step, approval = after.effects
    assert step == before.effects[0]
    # The approval's inputs, hashed again when it was resumed from its record, are those
    # hashed when it first parked.
    assert before.effects[1].status == "pending"
    assert approval.inputs == before.effects[1].inputs == {"data": sha({"text": out["text"]})}
    assert approval.sources == {"data": [1]}
    assert approval.human is not None
    assert (approval.human.action, approval.human.decided_by) == ("approve", "user:default/pat")
    assert approval.human.decided_at == 1.5e9
    assert after.result_from == [1, 2]


async def test_a_denied_call_shows_the_decision_that_refused_it(
    store_url: str, openai_server: OpenAIWire
) -> None:
    app = build(store_url, openai_server)
    app.models.add_card({**card(openai_server, "1", id="cloud"), "external": True})

    @app.workflow
    async def leaky(ctx: Context, text: str) -> str:
        try:
            await ctx.models.call("cloud", text, classification="confidential")
        except PolicyDenied:
            return "refused"
        return "sent"

    from openlineage.client.serde import Serde

    async with app:
        run = await app.start("leaky", {"text": "the merger terms"})
        assert await run.result(timeout=30) == "refused"
        (call,) = (await app.lineage.show(run.id)).effects
        exported = [json.loads(Serde.to_json(e)) for e in await app.lineage.openlineage(run.id)]
    for event in exported:  # the failed call's errorMessage facet too
        validate_event(event)
    assert any("errorMessage" in e["run"]["facets"] for e in exported)
    assert openai_server.requests == []
    assert (call.kind, call.status, call.output) == ("model", "error", None)
    assert call.error is not None and call.error.startswith("PolicyDenied: ")
    assert call.inputs["request"] is not None
    (decision,) = call.policies
    assert decision["decision"] == "deny" and decision["resource"] == 'Model::"cloud"'
    assert decision["policies"]  # the forbid policy that refused it


async def test_lineage_off_records_nothing_and_costs_no_interceptor(
    store_url: str, openai_server: OpenAIWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build(store_url, openai_server, lineage=False)
    async with app:
        assert "lineage" not in app.gate.names
        run = await app.start("intake", {"path": "off.pdf"})
        await run.result(timeout=30)
        lin = await app.lineage.show(run.id)
        found = await app.lineage.runs("wire-gpt@3")  # read from the model's own record
    assert all(e.inputs == {} and not e.recorded for e in lin.effects)
    assert lin.effect(2).model == "wire-gpt@3"  # the model plane records it either way
    assert [r["run_id"] for r in found] == [run.id]
    monkeypatch.setenv("AIOSYS_LINEAGE", "off")
    env_off = build(store_url, openai_server)
    async with env_off:
        assert "lineage" not in env_off.gate.names
    monkeypatch.setenv("AIOSYS_LINEAGE", "maybe")
    with pytest.raises(ConfigError, match="lineage must be on or off"):
        await build(store_url, openai_server).open()  # a bad setting fails the open


async def test_an_input_without_a_json_form_has_no_hash_and_the_step_runs(
    store_url: str,
) -> None:
    app = App(store=store_url, models_dir="", preload_models=False)

    class Opaque:
        pass

    @app.step
    def takes(thing: Any, n: int) -> int:
        return n + 1

    @app.workflow
    async def odd(ctx: Context) -> int:
        return await takes(Opaque(), 2**60)

    async with app:
        run = await app.start("odd")
        assert await run.result(timeout=30) == 2**60 + 1
        (step,) = (await app.lineage.show(run.id)).effects
    assert step.inputs == {"thing": None, "n": None}  # no RFC 8785 form: no hash, no error
    assert step.recorded


async def test_export_is_openlineage_events_read_back_by_the_official_classes(
    store_url: str, openai_server: OpenAIWire
) -> None:
    from openlineage.client.serde import Serde

    app = build(store_url, openai_server)
    async with app:
        run = await app.start("intake", {"path": "x.pdf"})
        await run.result(timeout=30)
        lin = await app.lineage.show(run.id)
        events = await app.lineage.openlineage(run.id)
    lines = [Serde.to_json(e) for e in events]
    for line in lines:
        check_event(json.loads(line))
        validate_event(json.loads(line))  # the spec's JSON Schema, facets included
    parsed = [json.loads(line) for line in lines]
    jobs = [(e["job"]["name"], e["eventType"]) for e in parsed]
    assert ("intake", "START") in jobs and ("intake", "COMPLETE") in jobs
    assert ("count", "START") in jobs and ("count", "COMPLETE") in jobs
    assert ("intake.model.summarize", "COMPLETE") in jobs
    assert not any(".child_result." in name for name, _ in jobs)
    assert {e["job"]["namespace"] for e in parsed} == {"aiosys/default"}
    model_done = next(
        e
        for e in parsed
        if e["job"]["name"] == "intake.model.summarize" and e["eventType"] == "COMPLETE"
    )
    facets = model_done["run"]["facets"]
    assert facets["aiosys_model"]["model"] == "wire-gpt@3"
    assert facets["aiosys_model"]["task"] == "summarize@2"
    assert facets["parent"]["run"]["runId"] == run.id
    assert facets["aiosys_policy"]["decisions"][0]["policies"] == ["same-tenant-effects"]
    names = {d["name"] for d in model_done["inputs"]}
    ocr = lin.effect(1)
    # Its own input and the OCR output it took (so a consumer draws ocr -> summarize).
    assert names == {f"sha256:{lin.effect(2).inputs['input']}", f"sha256:{ocr.output}"}
    assert [d["name"] for d in model_done["outputs"]] == [f"sha256:{lin.effect(2).output}"]
    child_start = next(e for e in parsed if e["job"]["name"] == "count")
    assert child_start["run"]["facets"]["parent"]["job"]["name"] == "intake.child_start.count"
    assert child_start["run"]["facets"]["parent"]["root"]["run"]["runId"] == run.id
    # Exported twice, the same events (ids derived from the run, not drawn).
    async with app:
        again = [Serde.to_json(e) for e in await app.lineage.openlineage(run.id)]
    assert again == lines


class Scan(BaseModel):
    document: str  # a path


@pytest.mark.parametrize("lineage", [True, False])
async def test_a_model_call_on_a_document_file_names_the_bytes_it_read(
    store_url: str, tmp_path: Path, lineage: bool
) -> None:
    """Two runs OCR a scan at one path whose bytes changed between them: their inputs hash
    alike (the path), and each names the document it read by the SHA-256 of its bytes, as
    sha256sum prints it, in ``show`` and in the export's ``aiosys_model`` facet. With
    lineage off the file is not read again for it."""
    from openlineage.client.serde import Serde

    register_callable("lineage-test-ocr", lambda path: Path(path).read_text())
    app = App(store=store_url, models_dir="", preload_models=False, lineage=lineage)
    app.models.add_card(
        {"id": "ocr-local", "version": "7", "kind": "ocr", "provider": "local",
         "options": {"callable": "lineage-test-ocr"}}
    )  # fmt: skip
    app.models.task(
        "read_scan",
        input=Scan,
        output=SumIn,
        build=lambda scan: ModelRequest(kind="ocr", document=scan.document),
        parse=lambda r: {"text": r.output},
        plan=RoutingPlan(["ocr-local"]),
    )

    @app.workflow
    async def ocr(ctx: Context, scan: str) -> str:
        return (await ctx.models.run("read_scan", {"document": scan})).text

    path = tmp_path / "scan.png"
    found = []
    try:
        async with app:
            for text in ("first page", "second page"):
                path.write_text(text)
                run = await app.start("ocr", {"scan": str(path)})
                assert await run.result(timeout=30) == text
                effects = await app.effects(run.id)
                if lineage:
                    (read,) = (await app.lineage.show(run.id)).effects
                    events = [
                        json.loads(Serde.to_json(e)) for e in await app.lineage.openlineage(run.id)
                    ]
                    found.append((text, read, events))
                else:
                    assert "document_sha256" not in json.loads(effects[0].meta or "{}")
    finally:
        unregister_callable("lineage-test-ocr")
    for text, read, events in found:
        digest = hashlib.sha256(text.encode()).hexdigest()
        assert read.document == digest and read.model == "ocr-local@7"
        assert read.inputs == {"input": sha({"document": str(path)})}
        assert read.as_dict()["document"] == f"sha256:{digest}"
        done = next(e for e in events if e["job"]["name"] == "ocr.model.read_scan")
        assert done["run"]["facets"]["aiosys_model"]["document"] == f"sha256:{digest}"
        for event in events:
            check_event(event)
    if lineage:
        assert found[0][1].document != found[1][1].document


@pytest.mark.parametrize("query", ["lineage_model_runs", "lineage_model_runs_any"])
@pytest.mark.parametrize("tenant", [None, "A"])
async def test_the_model_queries_read_the_deployment_index(
    store_url: str, query: str, tenant: str | None
) -> None:
    """What keeps a recall fast on both stores: the effects are found through the partial
    index on their model record's deployment (migration 0022), the expression in the query
    being the index's. Asserted on the query plans (PostgreSQL's with sequential scans
    discouraged: its tables are empty here), not on a clock."""
    store = open_store(store_url)
    await store.open()
    await store.close()
    params = {"low": "m@", "high": "mA", "since": 0.0, "tenant": tenant, "limit": 50}
    if store_url.startswith("sqlite"):
        sql = load_queries("sqlite")[query]
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            plan = " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    else:
        sql = load_queries("postgres", paramstyle="pyformat")[query]
        async with await psycopg.AsyncConnection.connect(store_url) as conn:
            await conn.execute("SET enable_seqscan = off")
            cur = await conn.execute(f"EXPLAIN {sql}", params)
            plan = " | ".join(r[0] for r in await cur.fetchall())
    assert "effects_model_deployment" in plan, plan


async def test_a_call_whose_record_holds_a_nul_is_found_by_the_model_that_served(
    store_url: str,
) -> None:
    # The primary failed with a message holding a NUL; the backup served. The effect's
    # record keeps the primary's error (with the JSON escape \u0000), and on PostgreSQL the
    # deployment read from it was NULL (its JSON parser refuses that escape as text): the
    # run was missing from the backup's recall list, silently.
    from aiosys.errors import ProviderUnavailable

    def down(messages: Any) -> str:
        raise ProviderUnavailable("primary said \x00 and left")

    register_callable("lineage-nul-down", down)
    register_callable("lineage-nul-up", lambda messages: "fine")
    try:
        app = App(store=store_url, models_dir="", preload_models=False)
        for card, fn in (("nul-primary", "lineage-nul-down"), ("nul-backup", "lineage-nul-up")):
            app.models.add_card(
                {"id": card, "version": "1", "provider": "local", "options": {"callable": fn}}
            )
        app.models.task(
            "ask_nul",
            input=SumIn,
            output=SumOut,
            build=lambda d: ModelRequest(messages=[Message(role="user", content=d.text)]),
            parse=lambda r: {"summary": r.output},
            plan=RoutingPlan(["nul-primary", "nul-backup"]),
        )

        @app.workflow
        async def asks_nul(ctx: Context) -> Any:
            return (await ctx.models.run("ask_nul", {"text": "hi"})).summary

        async with app:
            run = await app.start("asks_nul")
            await wait_status(app, run.id, "succeeded")
            found = await app.lineage.runs("nul-backup@1")
            assert [r["run_id"] for r in found] == [run.id], found
            assert [r["run_id"] for r in await app.lineage.runs("nul-backup")] == [run.id]
    finally:
        unregister_callable("lineage-nul-down")
        unregister_callable("lineage-nul-up")
