"""Human oversight enforced (issue 12, point 2) on both stores: a policy annotated
``@approval`` (the shipped ``high-risk-needs-approval``) makes a high-risk model call, or any
model call of a workflow declared ``high_risk=True``, wait as a human task for a partner; the
call runs once, only after a partner approves, and its record keeps the approval; a principal
without the role is refused; a rejection fails it for good; an SLA that passes (a clock the
test moves) escalates to the next role; a replay neither asks twice nor calls twice."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from tests.integration.test_humans import Clock, audit_records, wait_task

import aiosys
from aiosys import Context
from aiosys.cli.render import timeline_table
from aiosys.cli.status import effect_line
from aiosys.errors import (
    ApprovalRejected,
    ApprovalRequired,
    InvalidInput,
    PolicyDenied,
    RunFailed,
)
from aiosys.kernel import Principal
from aiosys.models.providers.local import register_callable, unregister_callable

pytestmark = pytest.mark.timeout(60)

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"
POLICY = "high-risk-needs-approval"
DAY = 86_400.0

RITA = Principal(id="rita", tenant="A", roles=frozenset({"runner"}))
PAT = Principal(id="pat", tenant="A", roles=frozenset({"partner"}))
VIC = Principal(id="vic", tenant="A", roles=frozenset({"paralegal"}))
MIA = Principal(id="mia", tenant="A", roles=frozenset({"managing-partner"}))

calls: list[str] = []  # every call the model answered, in order


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    calls.clear()

    def judge(messages: list[Any]) -> str:
        calls.append(messages[-1].content)
        return f"judged {messages[-1].content}"

    register_callable("oversight-judge", judge)
    try:
        yield
    finally:
        unregister_callable("oversight-judge")


def make_app(store_url: str, policies: Path = SHIPPED, **kw: Any) -> aiosys.App:
    app = aiosys.App(store_url, models_dir="", preload_models=False, policies_dir=policies, **kw)
    local = {"provider": "local", "options": {"callable": "oversight-judge"}}
    app.models.add_card({"id": "judge", "risk_level": "high", **local})
    app.models.add_card({"id": "helper", "risk_level": "low", **local})

    @app.workflow
    async def assess(ctx: Context, text: str) -> str:
        """A call to a high-risk card."""
        return (await ctx.models.call("judge", text)).output

    @app.workflow(high_risk=True)
    async def screening(ctx: Context, text: str) -> str:
        """A high-risk workflow: even its call to a low-risk card."""
        return (await ctx.models.call("helper", text)).output

    @app.workflow
    async def routine(ctx: Context, text: str) -> str:
        return (await ctx.models.call("helper", text)).output

    @app.workflow
    async def intake(ctx: Context, text: str) -> str:
        """Starts the high-risk workflow as its child."""
        return str(await ctx.child("screening", {"text": text}))

    @app.workflow
    async def two_calls(ctx: Context) -> list[str]:
        first = await ctx.models.call("judge", "one")
        await ctx.sleep(0.01)  # another park: with max_parked=0, a replay from the record
        second = await ctx.models.call("judge", "two")
        return [first.output, second.output]

    return app


async def start(app: aiosys.App, workflow: str, **input: Any) -> Any:
    async with app.as_principal(RITA):
        return await app.start(workflow, input or None)


def approval_of(effect: Any) -> dict[str, Any]:
    return json.loads(effect.meta or "{}")["approval"]


async def effect_decisions(app: aiosys.App, run_id: str) -> list[tuple[str, list[str]]]:
    """The audit log's call_model decisions of a run's effect #1: (decision, policies)."""
    rows = await app.store.fetch_rows("audit_page", {"after": 0, "upto": 10**12, "limit": 10**6})
    bodies = [json.loads(row[-1]) for row in rows if isinstance(row[-1], str)]
    return [
        (b["decision"], b["policies"])
        for b in bodies
        if b.get("run_id") == run_id and b.get("action") == "call_model"
    ]


def timeline(effect: Any) -> str:
    """The effect's rows in ``aiosys runs show``'s timeline, as text."""
    out = Console(width=400, record=True, file=io.StringIO())
    out.print(timeline_table([effect]))
    return out.export_text()


async def test_a_high_risk_call_waits_for_a_partner_and_runs_once_approved(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    async with app:
        run = await start(app, "assess", text="the claim")
        await wait_status(app, run.id, "waiting")
        task = await wait_task(app, run.id)
        assert (task.name, task.role, task.status, task.tenant) == (POLICY, "partner", "open", "A")
        assert (task.sla, task.escalate_to) == (DAY, ("managing-partner",))
        assert task.data["action"] == "call_model"
        assert task.data["resource"] == 'Model::"judge"'
        assert task.data["principal"] == "user:A/rita"
        assert task.data["policies"] == [POLICY]
        assert task.data["effect"] == {"seq": 1, "kind": "model", "name": "call:judge"}
        assert "the claim" in json.dumps(task.data["inputs"])  # what the reviewer approves
        (effect,) = await app.effects(run.id)
        assert (effect.kind, effect.status) == ("model", "pending")
        assert "waiting for a partner to approve" in timeline(effect)
        assert (await app.lineage.show(run.id)).effects[0].human is None  # nobody decided yet
        assert effect_line(effect).startswith("model call:judge waiting for approval by a partner")
        assert approval_of(effect) | {"task_id": "-", "policy_version": "-"} == {
            "task_id": "-",
            "policy_version": "-",
            "status": "open",
            "role": "partner",
            "policies": [POLICY],
            "action": "call_model",
            "resource": 'Model::"judge"',
            "principal": "user:A/rita",
        }
        async with app.as_principal(VIC):  # without the role: refused, nothing runs
            with pytest.raises(PolicyDenied, match="role partner"):
                await app.complete_task(task.id, "approve")
        async with app.as_principal(PAT):
            with pytest.raises(InvalidInput, match="takes no edit"):
                await app.complete_task(task.id, "edit", data={"x": 1})
        assert (await app.get_run(run.id)).status == "waiting" and calls == []
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "approve", comment="checked")
        result = await run.result(timeout=10)
        (effect,) = await app.effects(run.id)
        lineage = await app.lineage.show(run.id)
        records = await audit_records(app, task.id)
        decided = await effect_decisions(app, run.id)
    assert result == "judged the claim" and calls == ["the claim"]
    given = approval_of(effect)
    assert effect.status == "ok"
    assert (given["action"], given["decided_by"], given["role"]) == ("approve", "pat", "partner")
    assert (given["task_id"], given["comment"], given["policies"]) == (task.id, "checked", [POLICY])
    assert given["decided_at"] >= task.created_at
    assert "approve by pat as partner at " in timeline(effect)  # aiosys runs show
    human = lineage.effects[0].human
    assert human is not None and (human.decided_by, human.role) == ("pat", "partner")
    # The effect's decisions: forbidden until approved, then allowed with the approval.
    verdicts = [(p["decision"], tuple(p["policies"])) for p in lineage.effects[0].policies]
    assert verdicts[0] == ("deny", (POLICY,)) and verdicts[-1][0] == "allow"
    assert decided == [("deny", [POLICY]), ("allow", ["same-tenant-effects"])]
    assert [(r["action"], r["principal"], r["outcome"]) for r in records] == [
        ("create_task", "user:A/rita", "ok"),
        ("complete_task", "user:A/vic", "error:PolicyDenied"),
        ("complete_task", "user:A/pat", "error:InvalidInput"),
        ("complete_task", "user:A/pat", "ok"),
    ]


async def test_the_console_timeline_shows_who_approved_or_rejected_an_effect_and_when(
    store_url: str, wait_status, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run page's timeline has a row under each effect that waited for a policy's
    approval: waiting for the role, then approved or rejected by whom, as what, when, with
    the comment and the asking policy; another tenant's session does not find the run."""
    from fastapi import FastAPI
    from tests.integration.test_console import approval_row, login

    from aiosys.ui import mount_console
    from aiosys.ui._console import when

    monkeypatch.setenv("AIOSYS_KEY_SECRET", "k" * 40)  # API keys of a PostgreSQL store
    app = make_app(store_url)
    api = FastAPI()
    mount_console(api, app, secret="oversight-console-secret-0123456789")

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t")

    async with app:
        bob = (await app.identity.keys.create("B", "bob", roles=["admin"])).key
        vera = (await app.identity.keys.create("A", "vera", roles=["viewer"])).key
        approved = await start(app, "assess", text="the claim")
        rejected = await start(app, "assess", text="the other claim")
        for run in (approved, rejected):
            await wait_status(app, run.id, "waiting")
        ok_task, no_task = await wait_task(app, approved.id), await wait_task(app, rejected.id)
        async with client() as c:  # a viewer of tenant A: reads the run, decides nothing
            await login(c, vera)
            page = (await c.get(f"/runs/{approved.id}")).text
            row = approval_row(page, 1)
            assert row.startswith("1 policy approval call:judge waiting"), row
            assert "waiting for a decision by the role partner" in row
            assert f"asked by {POLICY}" in row
        async with app.as_principal(PAT):
            await app.complete_task(ok_task.id, "approve", comment="checked")
            await app.complete_task(no_task.id, "reject", comment="too risky")
        await approved.result(timeout=10)
        await wait_status(app, rejected.id, "dead")
        decided = {t.id: t for t in await app.list_tasks(status="any")}
        async with client() as c:
            await login(c, vera)
            row = approval_row((await c.get(f"/runs/{approved.id}")).text, 1)
            at = when(decided[ok_task.id].decided_at)
            assert row == (
                f"1 policy approval call:judge approved approved by pat (partner) at {at} UTC "
                f"“checked” asked by {POLICY}"
            ), row
            row = approval_row((await c.get(f"/runs/{rejected.id}")).text, 1)
            assert f"rejected by pat (partner) at {when(decided[no_task.id].decided_at)}" in row
            assert "“too risky”" in row
        async with client() as c:
            await login(c, bob)
            assert (await c.get(f"/runs/{approved.id}")).status_code == 404


async def test_a_high_risk_workflow_waits_and_an_ordinary_one_does_not(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    async with app:
        plain = await start(app, "routine", text="plain")
        assert await plain.result(timeout=10) == "judged plain"
        risky = await start(app, "screening", text="risky")
        task = await wait_task(app, risky.id)
        assert calls == ["plain"] and task.data["resource"] == 'Model::"helper"'
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "approve")
        assert await risky.result(timeout=10) == "judged risky"
        assert await app.list_tasks(run_id=plain.id, status="any") == []
    assert calls == ["plain", "risky"]


async def test_a_rejection_fails_the_call_for_good_naming_policy_and_principal(
    store_url: str, wait_status, error_of
) -> None:
    app = make_app(store_url)
    async with app:
        run = await start(app, "assess", text="no")
        task = await wait_task(app, run.id)
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "reject", comment="too risky")
        row = await wait_status(app, run.id, "dead")
        (effect,) = await app.effects(run.id)
        with pytest.raises(RunFailed) as failed:
            await run.result(timeout=10)
        await app.resume(run.id)  # the decision stands: not asked again, not called
        await wait_status(app, run.id, "dead")
        assert len(await app.list_tasks(run_id=run.id, status="any")) == 1
    assert calls == []
    error = failed.value.__cause__
    assert isinstance(error, ApprovalRejected) and isinstance(error, PolicyDenied)
    assert error.__cause__ is None and error.__context__ is None  # the record says nothing else
    assert (error.decided_by, error.role, error.task_id) == ("pat", "partner", task.id)
    assert error.policies == (POLICY,) and error.resource == 'Model::"judge"'
    assert "reject by pat (partner)" in str(error) and "too risky" in str(error)
    assert error_of(row)["type"] == "aiosys.errors.ApprovalRejected"
    assert effect.status == "error"
    assert approval_of(effect)["action"] == "reject"


async def test_an_sla_that_passes_hands_the_approval_to_the_next_role(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    clock = Clock(app)
    async with app:
        run = await start(app, "assess", text="late")
        task = await wait_task(app, run.id)
        clock.advance(DAY - 60)  # not yet due
        await wait_status(app, run.id, "waiting")
        assert (await app.get_task(task.id)).role == "partner"
        clock.advance(61)
        moved = await wait_task(app, run.id, role="managing-partner")
        assert (moved.escalations, moved.status) == (1, "open")
        await wait_status(app, run.id, "waiting")
        async with app.as_principal(PAT):  # the partner's time is up
            with pytest.raises(PolicyDenied, match="role managing-partner"):
                await app.complete_task(task.id, "approve")
        assert calls == []
        async with app.as_principal(MIA):
            await app.complete_task(task.id, "approve")
        assert await run.result(timeout=10) == "judged late"
        (effect,) = await app.effects(run.id)
        records = await audit_records(app, task.id)
    assert calls == ["late"]
    assert approval_of(effect)["role"] == "managing-partner"
    assert ("escalate_task", "user:A/rita", "ok") in [
        (r["action"], r["principal"], r["outcome"]) for r in records
    ]


async def test_a_replay_neither_asks_twice_nor_calls_twice(store_url: str, wait_status) -> None:
    # max_parked=0: every wake-up replays the run from its record, from the first effect.
    app = make_app(store_url, max_parked=0)
    clock = Clock(app)
    async with app:
        run = await start(app, "two_calls")
        first = await wait_task(app, run.id)
        clock.advance(DAY + 1)  # an escalation wakes the run: replayed, still waiting
        await wait_task(app, run.id, role="managing-partner")
        await wait_status(app, run.id, "waiting")
        assert calls == []  # replayed through the whole chain: back to its task, not the call
        async with app.as_principal(MIA):
            await app.complete_task(first.id, "approve")
        second = await wait_task(app, run.id, seq=3)
        assert calls == ["one"]
        async with app.as_principal(PAT):
            await app.complete_task(second.id, "approve")
        assert await run.result(timeout=10) == ["judged one", "judged two"]
        tasks = await app.list_tasks(run_id=run.id, status="any")
        effects = await app.effects(run.id)
    assert calls == ["one", "two"]
    assert sorted((t.seq, t.status) for t in tasks) == [(1, "completed"), (3, "completed")]
    assert [(e.kind, e.status) for e in effects] == [
        ("model", "ok"),
        ("sleep", "ok"),
        ("model", "ok"),
    ]
    assert [approval_of(e)["decided_by"] for e in (effects[0], effects[2])] == ["mia", "pat"]


async def test_an_approval_the_policy_does_not_accept_is_a_denial(
    store_url: str, wait_status, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "oversight.cedar").write_text(
        '@id("needs-a-partner") @approval("partner")\n'
        'forbid(principal, action == Action::"call_model", resource)\n'
        'when { resource.risk_level == "high" };\n'  # no unless: no approval lets it through
    )
    app = make_app(store_url, policies)
    async with app:
        run = await start(app, "assess", text="x")
        task = await wait_task(app, run.id)
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "approve")
        with pytest.raises(RunFailed, match=r"approved by pat as partner.*still forbid"):
            await run.result(timeout=10)
    assert calls == []


async def test_the_start_of_a_high_risk_child_can_wait_for_an_approval_too(
    store_url: str, wait_status, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "oversight.cedar").write_text(
        '@id("high-risk-starts-need-a-partner") @approval("partner")\n'
        'forbid(principal, action == Action::"start_workflow", resource)\n'
        "when { resource has high_risk && resource.high_risk }\n"
        'unless { context has approval && context.approval.role == "partner" };\n'
    )
    app = make_app(store_url, policies)
    async with app:
        async with app.as_principal(RITA):  # a client's start cannot wait: refused
            with pytest.raises(ApprovalRequired, match="high-risk-starts-need-a-partner"):
                await app.start("screening", {"text": "direct"})
        run = await start(app, "intake", text="via intake")
        task = await wait_task(app, run.id)
        assert task.data["action"] == "start_workflow"
        assert task.data["resource"] == 'Workflow::"screening"'
        assert len(await app.list_runs()) == 1  # the child is not started yet
        async with app.as_principal(PAT):
            await app.complete_task(task.id, "approve")
        assert await run.result(timeout=10) == "judged via intake"
        effects = await app.effects(run.id)
    assert calls == ["via intake"]
    assert effects[0].kind == "child_start"
    assert approval_of(effects[0])["decided_by"] == "pat"


async def test_a_call_outside_a_workflow_cannot_wait(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        async with app.as_principal(RITA):
            with pytest.raises(ApprovalRequired, match="only a workflow's effect can wait"):
                await app.models.call("judge", "direct")
            assert (await app.models.call("helper", "fine")).output == "judged fine"
    assert calls == ["fine"]
