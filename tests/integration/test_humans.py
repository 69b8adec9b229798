"""Human tasks (issue 12, point 1) on both stores: ``ctx.human_task`` parks the run, the
inbox decides it (the run resumes at once), edits are checked against the form, a task is
decided once (again: ``InvalidTaskState``) and only by its role (``PolicyDenied``), an SLA
escalates it on a clock the test moves (no sleeping), a replay returns the recorded decision
without a second task, tenants see only their own tasks, and every decision, claim and
escalation is audited."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pydantic
import pytest

import aiosys
from aiosys import Context
from aiosys.errors import (
    InvalidInput,
    InvalidTaskState,
    PermissionDenied,
    PolicyDenied,
    TaskNotFound,
)
from aiosys.humans import Decision, TaskRow
from aiosys.kernel import Principal

pytestmark = pytest.mark.timeout(60)

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"
DAY = 86_400.0

ALICE = Principal(id="alice", tenant="A", roles=frozenset({"paralegal"}))
AMY = Principal(id="amy", tenant="A", roles=frozenset({"paralegal"}))
VIC = Principal(id="vic", tenant="A", roles=frozenset({"viewer"}))
SAM = Principal(id="sam", tenant="A", roles=frozenset({"senior"}))
BOB = Principal(id="bob", tenant="B", roles=frozenset({"paralegal", "admin"}))


class Review(pydantic.BaseModel):
    """The form an edit of a summary must fit."""

    summary: str
    score: int = pydantic.Field(ge=0, le=10)


class Clock:
    """The store's clock, moved by the test (every timer, due time and claim reads it)."""

    def __init__(self, app: aiosys.App) -> None:
        self.app = app
        self.real = app.store.clock
        self.shift = 0.0
        app.store.clock = self.now  # type: ignore[method-assign]

    def now(self) -> float:
        return self.real() + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += seconds
        worker = self.app._worker
        if worker is not None:
            worker.kick()  # claim now: its due timers were set on the old time


def make_app(store_url: str, **kw: Any) -> aiosys.App:
    app = aiosys.App(store_url, models_dir="", preload_models=False, **kw)

    @app.workflow
    async def review(ctx: Context, text: str) -> dict[str, Any]:
        decision = await ctx.human_task(
            "review",
            role="paralegal",
            data={"summary": text, "score": 5},
            form=Review,
            sla="2d",
            escalate_to=["senior"],
        )
        return decision.model_dump(mode="json")

    @app.workflow
    async def triage(ctx: Context) -> dict[str, Any]:
        decision = await ctx.human_task(
            "triage", role="clerk", sla=60, escalate_to=["manager"], return_escalated=True
        )
        return decision.model_dump(mode="json")

    @app.workflow
    async def twice(ctx: Context) -> list[str]:
        first = await ctx.human_task("first", role="paralegal", data=1)
        await ctx.sleep(0.01)  # another park: with max_parked=0, a replay from the record
        second = await ctx.human_task("second", role="paralegal", data=2)
        return [first.action, second.action]

    @app.workflow
    async def assigned(ctx: Context) -> str | None:
        decision = await ctx.human_task("sign", role="paralegal", assignee="amy")
        return decision.decided_by

    return app


async def wait_task(app: aiosys.App, run_id: str, **expect: Any) -> TaskRow:
    """The run's task once it exists and has the attributes expected."""
    row = None
    async with asyncio.timeout(20):
        while True:
            rows = await app.list_tasks(run_id=run_id, status="any")
            if rows:
                row = rows[-1]
                if all(getattr(row, k) == v for k, v in expect.items()):
                    return row
            await asyncio.sleep(0.01)


async def test_a_task_parks_the_run_and_its_decision_resumes_it_at_once(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("review", {"text": "a letter"})
        await wait_status(app, run.id, "waiting")
        (task,) = await app.list_tasks()
        assert (task.name, task.role, task.status, task.run_id) == (
            "review",
            "paralegal",
            "open",
            run.id,
        )
        assert task.data == {"summary": "a letter", "score": 5}
        assert task.form is not None and task.form["schema"]["required"] == ["summary", "score"]
        assert task.due_at == pytest.approx(task.created_at + 2 * DAY, abs=5)
        assert task.escalate_to == ("senior",)
        done = await app.complete_task(task.id, "approve", comment="fine")
        assert done.status == "completed" and done.decided_by == "local"
        result = await run.result(timeout=10)
        effects = await app.effects(run.id)
        shown = await app.get_task(task.id)
    assert result["action"] == "approve" and result["comment"] == "fine"
    assert result["data"] == {"summary": "a letter", "score": 5}
    assert (result["decided_by"], result["task_id"], result["role"]) == (
        "local",
        task.id,
        "paralegal",
    )
    assert [(e.kind, e.name, e.status) for e in effects] == [("human_task", "review", "ok")]
    assert json.loads(effects[0].meta or "{}")["task_id"] == task.id
    assert shown.status == "completed" and shown.decision is not None
    assert shown.decision.decided_at == result["decided_at"]


async def test_an_edit_is_checked_against_the_form_and_a_refused_one_leaves_the_task_open(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("review", {"text": "draft"})
        await wait_status(app, run.id, "waiting")
        (task,) = await app.list_tasks()
        with pytest.raises(InvalidInput, match=r"does not fit its form Review: score: Input"):
            await app.complete_task(task.id, "edit", data={"summary": "s", "score": 11})
        with pytest.raises(InvalidInput, match="summary: Field required"):
            await app.complete_task(task.id, "edit", data={"score": 3})
        with pytest.raises(InvalidInput, match="an edit carries the edited data"):
            await app.complete_task(task.id, "edit")
        with pytest.raises(InvalidInput, match="only an edit carries data"):
            await app.complete_task(task.id, "approve", data={"x": 1})
        with pytest.raises(InvalidInput, match="one of approve, reject, edit"):
            await app.complete_task(task.id, "maybe")
        assert (await app.get_task(task.id)).status == "open"
        assert (await app.get_run(run.id)).status == "waiting"
        # A valid edit is stored as the form dumps it (the score's text becomes a number).
        await app.complete_task(task.id, "edit", data={"summary": "better", "score": "7"})
        result = await run.result(timeout=10)
    assert result["action"] == "edit"
    assert result["data"] == {"summary": "better", "score": 7}


async def test_a_task_is_decided_once_and_only_by_its_role(store_url: str, wait_status) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("review", {"text": "t"}, tenant="A")
        await wait_status(app, run.id, "waiting")
        async with app.as_principal(VIC):
            assert await app.list_tasks(status="any") == []  # not for its role
        task = await _only_task(app)
        async with app.as_principal(VIC):
            with pytest.raises(PolicyDenied, match=r"complete_task.*role paralegal") as denied:
                await app.complete_task(task.id, "approve")
            assert denied.value.action == "complete_task"
            assert denied.value.principal == "user:A/vic"
            with pytest.raises(PermissionDenied, match="for the role paralegal"):
                await app.claim_task(task.id)
        async with app.as_principal(ALICE):
            assert [t.id for t in await app.list_tasks()] == [task.id]
            await app.complete_task(task.id, "reject", comment="no")
            with pytest.raises(
                InvalidTaskState, match=r"completed: .*decided by alice already"
            ) as again:
                await app.complete_task(task.id, "approve")
            assert again.value.task_status == "completed"
        async with app.as_principal(AMY):
            with pytest.raises(InvalidTaskState, match="already"):
                await app.complete_task(task.id, "approve")
            with pytest.raises(InvalidTaskState, match=r"cannot claim .* it is completed"):
                await app.claim_task(task.id)
            assert await app.list_tasks() == []  # nothing left to decide
        result = await run.result(timeout=10)
    assert (result["action"], result["decided_by"], result["comment"]) == ("reject", "alice", "no")


async def _only_task(app: aiosys.App) -> TaskRow:
    """The one task of the store, read as the local principal."""
    with aiosys.kernel.bind_principal(aiosys.kernel.LOCAL):
        (task,) = await app.list_tasks(status="any")
    return task


async def test_a_claimed_task_is_decided_or_released_by_its_holder_only(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("review", {"text": "t"}, tenant="A")
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        async with app.as_principal(ALICE):
            claimed = await app.claim_task(task.id)
            assert (claimed.status, claimed.claimed_by) == ("claimed", "alice")
            assert (await app.claim_task(task.id)).claimed_by == "alice"  # again: no change
        async with app.as_principal(AMY):
            assert [t.claimed_by for t in await app.list_tasks()] == ["alice"]
            with pytest.raises(InvalidTaskState, match="claimed by alice"):
                await app.claim_task(task.id)
            with pytest.raises(InvalidTaskState, match="claimed by alice"):
                await app.complete_task(task.id, "approve")
            with pytest.raises(PermissionDenied, match="alice holds it"):
                await app.release_task(task.id)
        async with app.as_principal(ALICE):
            assert (await app.release_task(task.id)).status == "open"
            with pytest.raises(InvalidTaskState, match="not claimed"):
                await app.release_task(task.id)
        async with app.as_principal(AMY):
            await app.complete_task(task.id, "approve")
        assert (await run.result(timeout=10))["decided_by"] == "amy"


async def test_an_assigned_task_starts_claimed_by_its_assignee(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("assigned", tenant="A")
        task = await wait_task(app, run.id)
        assert (task.status, task.claimed_by, task.assignee) == ("claimed", "amy", "amy")
        async with app.as_principal(ALICE):
            with pytest.raises(InvalidTaskState, match="claimed by amy"):
                await app.complete_task(task.id, "approve")
        async with app.as_principal(AMY):
            await app.complete_task(task.id, "approve")
        assert await run.result(timeout=10) == "amy"


async def test_an_sla_that_passes_hands_the_task_to_the_next_role(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    clock = Clock(app)
    async with app:
        run = await app.start("review", {"text": "slow"}, tenant="A")
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        async with app.as_principal(ALICE):
            await app.claim_task(task.id)
        clock.advance(2 * DAY - 60)  # not yet due: nothing moves
        await asyncio.sleep(0)
        assert (await app.get_task(task.id)).role == "paralegal"
        clock.advance(61)
        moved = await wait_task(app, run.id, role="senior")
        assert (moved.status, moved.claimed_by, moved.escalations) == ("open", None, 1)
        assert [(h["from"], h["to"]) for h in moved.history] == [("paralegal", "senior")]
        assert moved.due_at == pytest.approx(moved.history[0]["at"] + 2 * DAY)
        await wait_status(app, run.id, "waiting")  # parked again, until the senior's SLA
        async with app.as_principal(ALICE):
            assert await app.list_tasks() == []
            with pytest.raises(PolicyDenied, match="role senior"):
                await app.complete_task(task.id, "approve")
        async with app.as_principal(SAM):
            assert [t.id for t in await app.list_tasks()] == [task.id]
            await app.complete_task(task.id, "approve")
        result = await run.result(timeout=10)
        records = await audit_records(app, task.id)
    assert (result["decided_by"], result["role"]) == ("sam", "senior")
    # Every step, with who took it: the escalation as the run's principal, a refusal too.
    assert [(r["action"], r["principal"], r["outcome"]) for r in records] == [
        ("create_task", "user:default/local", "ok"),
        ("claim_task", "user:A/alice", "ok"),
        ("escalate_task", "user:default/local", "ok"),
        ("complete_task", "user:A/alice", "error:PolicyDenied"),
        ("complete_task", "user:A/sam", "ok"),
    ]
    assert records[2]["detail"]["to"] == "senior"
    assert records[4]["detail"]["decision"] == "approve"


async def test_return_escalated_ends_the_task_and_the_workflow_hears_of_it(
    store_url: str, wait_status
) -> None:
    app = make_app(store_url)
    clock = Clock(app)
    async with app:
        run = await app.start("triage")
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        clock.advance(61)
        result = await run.result(timeout=20)
        ended = await app.get_task(task.id)
        with pytest.raises(InvalidTaskState, match=r"escalated: .*ended by its SLA"):
            await app.complete_task(task.id, "approve")
    assert result["action"] == "escalated"
    assert (result["role"], result["escalated_to"], result["decided_by"]) == (
        "clerk",
        "manager",
        None,
    )
    assert ended.status == "escalated" and ended.decision == Decision(**result)
    assert [(h["from"], h["to"]) for h in ended.history] == [("clerk", "manager")]


async def test_a_replay_returns_the_recorded_decision_and_makes_no_second_task(
    store_url: str, wait_status
) -> None:
    # max_parked=0: every wake-up replays the run from its record, from the first effect.
    app = make_app(store_url, max_parked=0)
    async with app:
        run = await app.start("twice")
        first = await wait_task(app, run.id, name="first")
        await app.complete_task(first.id, "approve")
        second = await wait_task(app, run.id, name="second")
        await app.complete_task(second.id, "reject")
        assert await run.result(timeout=10) == ["approve", "reject"]
        tasks = await app.list_tasks(run_id=run.id, status="any")
        effects = await app.effects(run.id)
    assert sorted(t.name for t in tasks) == ["first", "second"]
    assert [(e.kind, e.status) for e in effects] == [
        ("human_task", "ok"),
        ("sleep", "ok"),
        ("human_task", "ok"),
    ]


async def test_tenants_see_and_decide_only_their_own_tasks(store_url: str, wait_status) -> None:
    app = make_app(store_url)
    async with app:
        async with app.as_principal(BOB):
            run = await app.start("review", {"text": "B's"})
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        assert task.tenant == "B"
        async with app.as_principal(ALICE):
            assert await app.list_tasks(status="any") == []
            with pytest.raises(PermissionDenied, match="tenant 'B'"):
                await app.list_tasks(tenant="B")
            for call in (
                app.get_task(task.id),
                app.claim_task(task.id),
                app.release_task(task.id),
                app.complete_task(task.id, "approve"),
            ):
                with pytest.raises(TaskNotFound, match="in tenant 'A'"):
                    await call
            with pytest.raises(PermissionDenied):
                await app.complete_task(task.id, "approve", tenant="B")
        assert (await app.get_task(task.id)).status == "open"
        async with app.as_principal(BOB):
            assert [t.id for t in await app.list_tasks()] == [task.id]
            await app.complete_task(task.id, "approve")
        assert (await run.result(timeout=10))["decided_by"] == "bob"


async def test_cedar_decides_complete_task_on_the_task(
    store_url: str, wait_status, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED, policies)
    (policies / "interns.cedar").write_text(
        '@id("interns-do-not-decide")\n'
        'forbid(principal, action == Action::"complete_task", resource is HumanTask)\n'
        'when { principal.roles.contains("intern") };\n'
    )
    intern = Principal(id="ian", tenant="A", roles=frozenset({"paralegal", "intern"}))
    app = make_app(store_url, policies_dir=policies)
    async with app:
        run = await app.start("review", {"text": "t"}, tenant="A")
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        async with app.as_principal(intern):
            with pytest.raises(PolicyDenied, match="interns-do-not-decide") as denied:
                await app.complete_task(task.id, "approve")
        assert denied.value.resource == f'HumanTask::"{task.id}"'
        async with app.as_principal(ALICE):  # the shipped baseline: the task's role decides
            await app.complete_task(task.id, "approve")
        assert (await run.result(timeout=10))["decided_by"] == "alice"


async def test_a_task_of_an_ended_run_cannot_be_decided(store_url: str, wait_status) -> None:
    app = make_app(store_url)
    async with app:
        run = await app.start("review", {"text": "t"})
        await wait_status(app, run.id, "waiting")
        task = await _only_task(app)
        await app.cancel(run.id)
        assert await app.list_tasks() == []  # nothing to decide any more
        with pytest.raises(InvalidTaskState, match="has ended"):
            await app.complete_task(task.id, "approve")


async def audit_records(app: aiosys.App, task_id: str) -> list[dict[str, Any]]:
    rows = await app.store.fetch_rows("audit_page", {"after": 0, "upto": 10**12, "limit": 10**6})
    out = []
    for row in rows:
        body = json.loads(row[-1]) if isinstance(row[-1], str) else None
        if body and body.get("resource") == f"task:{task_id}":
            out.append(body)
    return out
