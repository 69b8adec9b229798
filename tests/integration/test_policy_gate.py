"""Cedar policy at the gate (issue 10, point 2), with the shipped example policies, on both
stores and against the local OpenAI wire server.

The shipped policy ``confidential-stays-on-premises`` forbids confidential data to models
whose card says ``external``: such a call is refused with ``PolicyDenied`` naming it (a run
ends ``dead`` with it; a direct call raises it) and never reaches the provider, while the
same call to an on-premises model passes. Every decision, allow or deny, reaches the
decision listeners; the App's client actions are checked too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel
from tests.integration.conftest import HOLD_POLICY, shipped_policies

from aiosys import App, Context
from aiosys.errors import PermissionDenied, PolicyDenied, RunFailed, RunNotFound
from aiosys.governance.policy import Decision
from aiosys.kernel import Principal
from aiosys.models.contracts import RoutingPlan
from aiosys.models.types import Message, ModelRequest

pytestmark = pytest.mark.timeout(60)

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"
RULE = "confidential-stays-on-premises"


class In(BaseModel):
    text: str


class Out(BaseModel):
    answer: str


def make_app(store_url: str, wire, policies: Path = SHIPPED) -> App:
    app = App(store=store_url, policies_dir=policies)
    common = {"provider": "openai", "provider_model": "openai-wire", "endpoint": wire.endpoint}
    app.models.add_card({"id": "cloud", "external": True, "data_residency": "us", **common})
    app.models.add_card({"id": "onprem", "external": False, **common})
    return app


def decisions(app: App) -> list[Decision]:
    seen: list[Decision] = []
    assert app.policy is not None
    app.policy.listen(seen.append)
    return seen


async def test_confidential_data_to_an_external_model_ends_the_run_dead_naming_the_policy(
    store_url, openai_server, wait_status, error_of
):
    app = make_app(store_url, openai_server)

    @app.workflow
    async def ask(ctx: Context, model: str) -> str:
        response = await ctx.models.call(model, "the merger terms", classification="confidential")
        return str(response.output)

    async with app:
        seen = decisions(app)
        denied = await app.start("ask", {"model": "cloud"})
        with pytest.raises(RunFailed) as failed:
            await denied.result(timeout=20)
        allowed = await app.start("ask", {"model": "onprem"})
        assert await allowed.result(timeout=20) == "echo: the merger terms"
        row = await wait_status(app, denied.id, "dead")
        [effect] = await app.effects(denied.id)
    assert failed.value.status == "dead"
    cause = failed.value.__cause__
    assert isinstance(cause, PolicyDenied)
    assert cause.policies == (RULE,)
    assert cause.action == "call_model" and cause.resource == 'Model::"cloud"'
    assert cause.policy_version == app.policy.version
    assert (
        error_of(row)["type"] == "aiosys.errors.PolicyDenied" and RULE in error_of(row)["message"]
    )
    assert effect.status == "error"  # recorded: a replay raises it again without asking
    assert len(openai_server.requests) == 1  # only the on-premises call reached a model
    assert [(d.resource, d.decision) for d in seen if d.action == "call_model"] == [
        ('Model::"cloud"', "deny"),
        ('Model::"onprem"', "allow"),
    ]
    deny = next(d for d in seen if d.decision == "deny")
    assert (deny.run_id, deny.seq, deny.policies) == (denied.id, 1, (RULE,))
    assert deny.principal == "user:default/local" and deny.tenant == "default"


async def test_a_direct_model_call_is_refused_and_the_on_premises_one_passes(
    store_url, openai_server
):
    app = make_app(store_url, openai_server)
    async with app:
        seen = decisions(app)
        with pytest.raises(PolicyDenied) as denied:
            await app.models.call("cloud", "q3 numbers", classification="restricted")
        response = await app.models.call("onprem", "q3 numbers", classification="restricted")
        public = await app.models.call("cloud", "press release", classification="public")
    assert denied.value.policies == (RULE,)
    assert RULE in str(denied.value) and denied.value.policy_version in str(denied.value)
    assert response.output == "echo: q3 numbers" and public.output == "echo: press release"
    assert [r.body["messages"][0]["content"] for r in openai_server.requests] == [
        "q3 numbers",
        "press release",
    ]
    assert [(d.decision, d.run_id, d.seq) for d in seen] == [
        ("deny", None, None),
        ("allow", None, None),
        ("allow", None, None),
    ]


async def test_a_task_is_refused_when_a_model_its_plan_may_reach_is_forbidden(
    store_url, openai_server
):
    """The plan's ``internal_only_for`` already keeps confidential data from external
    candidates: the gate asks only about the models routing could use."""
    app = make_app(store_url, openai_server)

    def build(data: In) -> ModelRequest:
        return ModelRequest(messages=[Message(role="user", content=data.text)])

    def parse(response) -> dict[str, str]:
        return {"answer": str(response.output)}

    app.models.task(
        "leaky",
        input=In,
        output=Out,
        build=build,
        parse=parse,
        plan=RoutingPlan(["onprem", "cloud"], internal_only_for=set()),
    )
    app.models.task(
        "guarded",
        input=In,
        output=Out,
        build=build,
        parse=parse,
        plan=RoutingPlan(["onprem", "cloud"]),
    )
    async with app:
        with pytest.raises(PolicyDenied) as denied:
            await app.models.run("leaky", {"text": "x"}, classification="confidential")
        out = await app.models.run("guarded", {"text": "y"}, classification="confidential")
    assert denied.value.resource == 'Model::"cloud"'
    assert out.answer == "echo: y"


async def test_a_child_start_is_decided_once_at_the_gate(store_url, openai_server):
    """A child workflow's start is one ``start_workflow`` decision (its ``child_start``
    effect at the gate), not a second one as a client check of ``App.start``."""
    app = make_app(store_url, openai_server)

    @app.workflow
    async def kid(ctx: Context) -> int:
        return 7

    @app.workflow
    async def parent(ctx: Context) -> int:
        return int(await ctx.child("kid"))

    alice = Principal(id="alice", tenant="acme", roles={"operator"})
    async with app:
        seen = decisions(app)
        async with app.as_principal(alice):
            assert await app.run("parent") == 7
    starts = [(d.action, d.resource, d.run_id is not None) for d in seen]
    assert starts == [
        ("start_workflow", 'Workflow::"parent"', False),  # the client's start
        ("start_workflow", 'Workflow::"kid"', True),  # the parent's child_start effect
    ]


async def test_client_actions_are_checked_as_the_bound_principal(
    store_url, openai_server, tmp_path
):
    """Start, signal, cancel and resume pass the built-in roles, then the policies, as the
    bound principal (a client check after ``roles``); another tenant is refused by the
    kernel's scoping before any policy is asked."""
    policies = shipped_policies(tmp_path, runs=HOLD_POLICY)
    app = make_app(store_url, openai_server, policies)

    @app.workflow
    async def noop(ctx: Context) -> int:
        return 1

    @app.workflow
    async def hold(ctx: Context) -> int:
        return 2

    alice = Principal(id="alice", tenant="acme", roles={"operator"})
    await app.open()
    try:
        seen = decisions(app)
        async with app.as_principal(alice):
            run = await app.start("noop")
            held = await app.start("hold")
            with pytest.raises(PermissionDenied):
                await app.start("noop", tenant="globex")
            await app.cancel(run.id)
            with pytest.raises(PolicyDenied) as denied:
                await app.cancel(held.id)
        other = await app.start("noop", tenant="globex")  # the local default: every tenant
        async with app.as_principal(alice):
            with pytest.raises(RunNotFound):
                await app.cancel(other.id)
    finally:
        await app.close()
    assert denied.value.action == "cancel_run"
    assert denied.value.principal == "user:acme/alice"
    assert denied.value.policies == ("hold-runs-are-not-cancelled",)
    assert [(d.action, d.tenant, d.decision) for d in seen] == [
        ("start_workflow", "acme", "allow"),
        ("start_workflow", "acme", "allow"),
        ("cancel_run", "acme", "allow"),
        ("cancel_run", "acme", "deny"),
        ("start_workflow", "globex", "allow"),
    ]
    assert (await app.get_run(other.id)).status == "pending"
    assert (await app.get_run(held.id)).status == "pending"


async def test_a_run_denied_under_one_version_resumes_under_the_fixed_one(
    store_url, openai_server, tmp_path, wait_status
):
    """Delete the forbid policy from its file and refresh: ``resume`` re-runs the dead
    run's denied effect under the new version, and it passes."""
    rule = "no-unacceptable-risk-models"
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    app = make_app(store_url, openai_server, policies)
    app.models.add_card(
        {
            "id": "risky",
            "provider": "openai",
            "endpoint": openai_server.endpoint,
            "provider_model": "openai-wire",
            "risk_level": "unacceptable",
        }
    )

    @app.workflow
    async def ask(ctx: Context) -> str:
        return str((await ctx.models.call("risky", "hi")).output)

    async with app:
        run = await app.start("ask")
        await wait_status(app, run.id, "dead")
        before = app.policy.version
        text = (policies / "data.cedar").read_text()
        start = text.index(f'@id("{rule}")')
        end = text.index(";", start) + 1
        (policies / "data.cedar").write_text(text[:start] + text[end:])
        assert await app.policy.source.refresh()
        assert app.policy.version != before and rule not in app.policy.policies.policies
        await app.resume(run.id)
        assert await run.result(timeout=20) == "echo: hi"


async def test_a_declared_step_is_checked_as_its_action_and_a_plain_one_is_not(
    store_url, openai_server, tmp_path, wait_status, error_of
):
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "exports.cedar").write_text(
        '@id("restricted-data-stays")\n'
        'forbid(principal, action == Action::"export", resource is Dataset)\n'
        "when { resource has classification &&\n"
        '       resource.classification in Classification::"confidential" };\n'
    )
    app = make_app(store_url, openai_server, policies)

    @app.step
    async def export_claims() -> int:
        return 3

    @app.step
    async def export_brochure() -> int:
        return 2

    @app.step
    async def count() -> int:
        return 1

    @app.workflow
    async def claims(ctx: Context) -> int:
        return await count() + await export_claims()

    @app.workflow
    async def brochure(ctx: Context) -> int:
        return await count() + await export_brochure()

    async with app:
        assert app.authorizer is not None
        app.authorizer.declare_step(
            export_claims.__qualname__,
            "export",
            ("Dataset", "claims", {"classification": "restricted"}),
        )
        app.authorizer.declare_step(
            export_brochure.__qualname__,
            "export",
            ("Dataset", "brochure", {"classification": "public"}),
        )
        seen = decisions(app)
        refused = await app.start("claims")
        row = await wait_status(app, refused.id, "dead")
        assert await app.run("brochure") == 3
    assert "restricted-data-stays" in error_of(row)["message"]
    assert [(d.resource, d.decision) for d in seen if d.action == "export"] == [
        ('Dataset::"claims"', "deny"),
        ('Dataset::"brochure"', "allow"),
    ]


async def test_an_allowed_effect_carries_its_decision_in_its_one_audit_record(
    store_url, openai_server, tmp_path, wait_status
):
    """The decision on a step, allow or deny, is folded into the step's own audit record (one
    record per effect; a denied one ends error:PolicyDenied); a step no policy asks about
    has none."""
    import json

    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "exports.cedar").write_text(
        '@id("restricted-data-stays")\n'
        'forbid(principal, action == Action::"export", resource is Dataset)\n'
        "when { resource has classification &&\n"
        '       resource.classification in Classification::"confidential" };\n'
    )
    app = make_app(store_url, openai_server, policies)

    @app.step
    async def export_claims() -> int:
        return 3

    @app.step
    async def export_brochure() -> int:
        return 2

    @app.step
    async def count() -> int:
        return 1

    @app.workflow
    async def claims(ctx: Context) -> int:
        return await count() + await export_claims()

    @app.workflow
    async def brochure(ctx: Context) -> int:
        return await count() + await export_brochure()

    async with app:
        assert app.authorizer is not None and app.policy is not None
        app.authorizer.declare_step(
            export_claims.__qualname__,
            "export",
            ("Dataset", "claims", {"classification": "restricted"}),
        )
        app.authorizer.declare_step(
            export_brochure.__qualname__,
            "export",
            ("Dataset", "brochure", {"classification": "public"}),
        )
        refused = await app.start("claims")
        await wait_status(app, refused.id, "dead")
        passed = await app.start("brochure")
        assert await passed.result() == 3
        version = app.policy.version
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
        assert (await app.audit.verify()).ok
    bodies = [json.loads(r["body"]) for r in rows]

    def of(run_id: str) -> list[dict]:
        return [b for b in bodies if b["run_id"] == run_id]

    allowed = [b for b in of(passed.id) if b["action"] == "step"]
    assert [(b["resource"], b["outcome"], b["decision"]) for b in allowed] == [
        (count.__qualname__, "ok", None),
        (export_brochure.__qualname__, "ok", "allow"),
    ]
    folded = allowed[1]
    assert folded["policy_version"] == version and folded["policies"]
    assert folded["detail"]["policy_action"] == "export"
    assert folded["detail"]["policy_resource"] == 'Dataset::"brochure"'
    assert folded["detail"]["cached"] is False
    assert not [b for b in of(passed.id) if b["action"] == "export"]  # no second record
    denied = [b for b in of(refused.id) if b["resource"] == export_claims.__qualname__]
    assert [(b["decision"], b["policies"], b["outcome"]) for b in denied] == [
        ("deny", ["restricted-data-stays"], "error:PolicyDenied")
    ]
    assert denied[0]["detail"]["policy_resource"] == 'Dataset::"claims"'
    assert not [b for b in bodies if b["action"] == "export"]  # no record of its own


async def test_an_effect_asked_about_several_models_keeps_a_record_per_decision(
    store_url, openai_server
):
    """A task that may reach two models is asked about each: both decisions are records of
    their own, beside the model effect's record, in its transaction."""
    import json

    app = make_app(store_url, openai_server)

    def build(data: In) -> ModelRequest:
        return ModelRequest(messages=[Message(role="user", content=data.text)])

    def parse(response) -> dict[str, str]:
        return {"answer": str(response.output)}

    app.models.task(
        "either",
        input=In,
        output=Out,
        build=build,
        parse=parse,
        plan=RoutingPlan(["onprem", "cloud"]),
    )

    @app.workflow
    async def ask(ctx: Context) -> str:
        out = await ctx.models.run("either", {"text": "hi"}, classification="public")
        return out.answer

    async with app:
        assert await app.run("ask") == "echo: hi"
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
        assert (await app.audit.verify()).ok
    bodies = [json.loads(r["body"]) for r in rows if json.loads(r["body"])["run_id"]]
    model = [b for b in bodies if b["action"] == "model"]
    assert [(b["outcome"], b["decision"]) for b in model] == [("ok", None)]
    # The start's record carries its start_workflow decision (folded in, one record).
    (start,) = [b for b in bodies if b["action"] == "start_workflow"]
    assert (start["outcome"], start["decision"]) == ("created", "allow")
    assert start["detail"]["policy_action"] == "start_workflow"
    effects = [b for b in bodies if b["action"] != "start_workflow"]
    asked = [(b["action"], b["resource"], b["decision"]) for b in effects if b["decision"]]
    assert asked == [
        ("call_model", 'Model::"onprem"', "allow"),
        ("call_model", 'Model::"cloud"', "allow"),
    ]
    assert {b["effect_seq"] for b in effects if b["decision"]} == {model[0]["effect_seq"]}


async def test_a_step_asked_twice_commits_both_decisions_with_its_record(
    store_url, openai_server, tmp_path
):
    """An effect with several audit records and nothing else beside its record (PostgreSQL:
    one statement with the record) keeps them all, chained, and the log verifies."""
    import json

    from aiosys.governance.policy_entities import resource_entity

    app = make_app(store_url, openai_server)

    @app.step
    async def copy() -> int:
        return 7

    @app.step
    async def done() -> int:
        return 1

    @app.workflow
    async def copies(ctx: Context) -> int:
        # copy's record commits alone, before done starts (the last one goes with the end)
        return await copy() + await done()

    async with app:
        assert app.authorizer is not None
        public = {"classification": "public"}
        app.authorizer.describe(
            "step",
            lambda call: (
                [
                    ("read_data", resource_entity("Dataset", "from", public)),
                    ("export", resource_entity("Dataset", "to", public)),
                ]
                if call.name == copy.__qualname__
                else []
            ),
        )
        assert await app.run("copies") == 8
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
        report = await app.audit.verify()
    assert report.ok, report.line()
    bodies = [json.loads(r["body"]) for r in rows]
    step = [b for b in bodies if b["resource"] == copy.__qualname__]
    assert [(b["outcome"], b["decision"]) for b in step] == [("ok", None)]
    asked = [(b["action"], b["resource"], b["effect_seq"]) for b in bodies if b["decision"]]
    seq = step[0]["effect_seq"]
    assert [a for a in asked if a[2] == seq] == [
        ("read_data", 'Dataset::"from"', seq),
        ("export", 'Dataset::"to"', seq),
    ]


async def test_a_start_is_one_record_with_its_decision_committed_with_the_run(
    store_url, openai_server, tmp_path
):
    """A start's record carries its ``start_workflow`` decision (one record, no decision
    record beside it) and commits in the transaction that inserts the run; a start that
    returns an existing run (an idempotency key) is a record of its own (``existing``),
    and a denied start is one refusal record with the denial folded in."""
    import json

    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "runs.cedar").write_text(
        '@id("no-secret-starts")\n'
        'forbid(principal, action == Action::"start_workflow", resource)\n'
        'when { resource == Workflow::"secret" };\n'
    )
    app = make_app(store_url, openai_server, policies)

    @app.workflow
    async def noop(ctx: Context) -> int:
        return 1

    @app.workflow
    async def secret(ctx: Context) -> int:
        return 2

    alice = Principal(id="alice", tenant="acme", roles={"operator"})
    await app.open()
    try:
        async with app.as_principal(alice):
            run = await app.start("noop", idempotency_key="k1")
            again = await app.start("noop", idempotency_key="k1")
            with pytest.raises(PolicyDenied):
                await app.start("secret")
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
        assert (await app.audit.verify()).ok
    finally:
        await app.close()
    assert (again.id, again.created) == (run.id, False)
    bodies = [json.loads(r["body"]) for r in rows]
    starts = [
        (b["action"], b["run_id"], b["outcome"], b["decision"], b["policies"], b["principal"])
        for b in bodies
    ]
    assert starts == [
        ("start_workflow", run.id, "created", "allow", ["same-tenant-runs"], "user:acme/alice"),
        ("start_workflow", run.id, "existing", "allow", ["same-tenant-runs"], "user:acme/alice"),
        (
            "start_workflow",
            None,
            "error:PolicyDenied",
            "deny",
            ["no-secret-starts"],
            "user:acme/alice",
        ),
    ]
    assert all(b["detail"]["policy_action"] == "start_workflow" for b in bodies)
    assert [r["tenant"] for r in rows] == ["acme"] * 3


async def test_a_start_record_is_written_only_with_the_run_it_creates(store_url, tmp_path):
    """``audit_append_for_run`` in ``create_run``'s transaction: written when the run is
    created, not when an idempotency key returns an existing one."""
    from aiosys.governance.audit_record import AuditRecord
    from aiosys.store import open_store
    from aiosys.store.base import NewRun

    app = App(store=store_url, policies_dir="")
    await app.open()  # migrated
    await app.close()
    store = open_store(store_url)
    await store.open()
    try:

        def new(run_id: str) -> NewRun:
            return NewRun(
                id=run_id,
                workflow="w",
                version="1",
                tenant="acme",
                queue="default",
                priority=0,
                input="{}",
                idempotency_key="same",
                parent_id=None,
                deadline_at=None,
                created_at=1.0,
            )

        def write(run_id: str) -> tuple[str, dict]:
            rec = AuditRecord(
                principal="user:acme/a",
                tenant="acme",
                action="start_workflow",
                resource=f"run:{run_id}",
                outcome="created",
                run_id=run_id,
                at=1,
            )
            return ("audit_append_for_run", {**rec.params(), "run_id": run_id})

        _, created = await store.create_run(new("r1"), also=[write("r1")])
        _, again = await store.create_run(new("r2"), also=[write("r2")])
        # Chained at the next append (PostgreSQL keeps a start's record pending till then).
        assert (await store.fetch("audit_seal", {}))[0]["seq"] == 1
        rows = await store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 100})
    finally:
        await store.close()
    assert (created, again) == (True, False)
    import json

    assert [json.loads(r["body"])["run_id"] for r in rows] == ["r1"]


async def test_a_policy_reload_is_audited_loaded_or_refused(store_url, openai_server, tmp_path):
    # Each reload a process makes is a record: the version put in force, or the broken set
    # refused with its reason and the version kept.
    import json

    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    app = make_app(store_url, openai_server, policies)
    async with app:
        first = app.policy.version
        (policies / "extra.cedar").write_text(
            '@id("extra-forbid")\n'
            'forbid(principal, action == Action::"export", resource is Dataset)\n'
            "when { resource has classification &&\n"
            '       resource.classification in Classification::"confidential" };\n'
        )
        assert await app.policy.source.refresh()
        second = app.policy.version
        (policies / "broken.cedar").write_text("permit(principal, action, resource\n")
        assert not await app.policy.source.refresh()
        assert app.policy.version == second
        await app.audit.close()  # the background appends, committed
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 100})
    loads = [json.loads(r["body"]) for r in rows]
    loads = [b for b in loads if b["action"] == "load_policies"]
    assert [(b["outcome"], b["detail"]["policy_version"]) for b in loads] == [
        ("loaded", second),
        ("refused", second),
    ]
    assert second != first and loads[0]["resource"] == f"policies:{second}"
    assert "broken.cedar" in loads[1]["detail"]["reason"]
    assert loads[0]["principal"] == "user:default/local"


async def test_a_reload_found_by_a_tenants_decision_is_recorded_as_the_process(
    store_url, openai_server, tmp_path
):
    # A worker finds an edit on whichever decision looks at the files first: the reload is
    # the process's act, not that of the principal whose call happened to look (tenant B's
    # user did not load policies, and B's extract must not say so).
    import json

    from aiosys.kernel import bind_principal

    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    app = make_app(store_url, openai_server, policies)
    bob = Principal(id="bob", tenant="B", kind="user", roles=frozenset({"operator"}))
    async with app:
        (policies / "extra.cedar").write_text(
            '@id("extra-forbid")\nforbid(principal, action == Action::"export", resource);\n'
        )
        with bind_principal(bob):
            assert await app.policy.source.refresh()
        (policies / "broken.cedar").write_text("permit(principal, action, resource\n")
        with bind_principal(bob):
            assert not await app.policy.source.refresh()
        await app.audit.close()  # the background appends, committed
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 100})
    loads = [(r["tenant"], json.loads(r["body"])) for r in rows]
    loads = [(t, b) for t, b in loads if b["action"] == "load_policies"]
    assert [(t, b["principal"], b["outcome"]) for t, b in loads] == [
        ("default", "user:default/local", "loaded"),
        ("default", "user:default/local", "refused"),
    ]
