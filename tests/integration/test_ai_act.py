"""AI Act evidence (issue 12, point 5) on both stores: the Article 12 extract of a day of runs
lists each use with its period, its inputs by content hash, the models that answered and
the persons who verified results (two human tasks per use, decided by two people), cites a
signed audit checkpoint (signed for it when none covered the day yet), and ``aiosys audit
verify`` verifies that checkpoint (the whole log) and the extract (its citations); an edited
person is caught; the Annex IV draft names the cards, contracts, policies and checkpoint; a
bad request is one line and exit 2."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from pydantic import BaseModel
from tests.integration.conftest import _wait_status as wait_status
from tests.integration.test_humans import Clock
from tests.integration.test_lineage import card
from tests.unit.clirunner import aiosys, ok, reported_error
from tests.wire.openai_server import OpenAIWire

import aiosys as aiosys_pkg
from aiosys import Context
from aiosys.errors import InvalidInput, PermissionDenied, UnknownWorkflow
from aiosys.governance.ai_act import EXTRACT_FILE, Evidence
from aiosys.kernel import Principal
from aiosys.models.contracts import RoutingPlan
from aiosys.models.types import Message, ModelRequest

pytestmark = pytest.mark.timeout(120)

POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"
DAY = dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
HOUR = 3600.0
ALICE = Principal(id="alice", tenant="A", roles=frozenset({"paralegal"}))
AMY = Principal(id="amy", tenant="A", roles=frozenset({"paralegal"}))
SAM = Principal(id="sam", tenant="A", roles=frozenset({"senior"}))
# The card is high-risk: the shipped oversight policy (examples/policies/oversight.cedar)
# makes each summary's model call wait for a partner's approval (Art. 14) first.
PAULA = Principal(id="paula", tenant="A", roles=frozenset({"partner"}))


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no aiosys.toml, no ./policies: the commands read the store


def sha(value: Any) -> str:
    """A content hash computed here on its own: SHA-256 of RFC 8785 JSON."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(value)).hexdigest()


class SumIn(BaseModel):
    text: str


class SumOut(BaseModel):
    summary: str


def set_clock(clock: Clock, when: dt.datetime) -> None:
    """Move the store's clock (``Clock``: every timer and record reads it) to ``when``."""
    clock.advance(when.timestamp() - clock.now())


def build(store_url: str, server: OpenAIWire) -> aiosys_pkg.App:
    app = aiosys_pkg.App(store_url, models_dir="", preload_models=False, policies_dir=POLICIES)
    app.models.add_card(
        {
            **card(server, "3"),
            "owner": "legal-ml",
            "description": "A chat model that summarizes letters.",
            "intended_use": ["summaries of incoming letters for a paralegal"],
            "training_data": ["public web text up to 2024"],
            "evaluation": {"rouge_l": 0.41},
            "failure_modes": ["misses figures in tables"],
            "risk_level": "high",
        }
    )
    app.models.task(
        "summarize",
        input=SumIn,
        output=SumOut,
        build=lambda d: ModelRequest(messages=[Message(role="user", content=d.text)]),
        parse=lambda r: {"summary": r.output},
        plan=RoutingPlan(["wire-gpt"]),
        slo_p95_ms=2000,
        version="2",
    )

    @app.step(name="ocr")
    def ocr(path: str) -> str:
        return f"text of {path}"

    @app.workflow
    async def intake(ctx: Context, path: str) -> dict[str, Any]:
        """Summarize a scanned letter; a paralegal reviews the summary, a senior signs off."""
        text = await ocr(path)
        summary = await ctx.models.run("summarize", {"text": text})
        review = await ctx.human_task("review", role="paralegal", data={"s": summary.summary})
        sign = await ctx.human_task("sign-off", role="senior", data={"s": summary.summary})
        return {"summary": summary.summary, "review": review.action, "sign": sign.action}

    @app.workflow
    async def other(ctx: Context, path: str) -> str:
        return await ocr(path)

    return app


async def use(app: aiosys_pkg.App, path: str, reviewer: Principal) -> str:
    """One use of ``intake`` in tenant A: its model call approved by Paula, reviewed by
    ``reviewer``, signed off by Sam."""
    run = await app.start("intake", {"path": path}, tenant="A")
    for who in (PAULA, reviewer, SAM):
        await wait_status(app, run.id, "waiting")
        async with app.as_principal(who):
            (task,) = await app.list_tasks()
            await app.complete_task(task.id, "approve")
    await run.result(timeout=30)
    return run.id


async def a_day(store_url: str, server: OpenAIWire) -> tuple[list[str], Evidence, dict[str, Any]]:
    """Runs the day before, two uses on the day (and a run of another workflow), one the day
    after; the day's evidence through the Python API, and what the store held around it."""
    app = build(store_url, server)
    async with app:
        clock = Clock(app)
        set_clock(clock, DAY - dt.timedelta(hours=1))
        await use(app, "before.pdf", ALICE)
        set_clock(clock, DAY + dt.timedelta(hours=9))
        first = await use(app, "scan-1.pdf", ALICE)
        set_clock(clock, DAY + dt.timedelta(hours=10))
        await (await app.start("other", {"path": "x.pdf"}, tenant="A")).result(timeout=30)
        set_clock(clock, DAY + dt.timedelta(hours=14))
        second = await use(app, "scan-2.pdf", AMY)
        set_clock(clock, DAY + dt.timedelta(days=1, minutes=30))
        await use(app, "after.pdf", AMY)
        last = await app.store.fetch("audit_last_checkpoint", {})
        head = (await app.store.fetch("audit_head", {}))[0]["seq"]
        evidence = await app.ai_act.export("intake", since=DAY, until=DAY + dt.timedelta(days=1))
        # Scoped as the audit export: another tenant's admin sees none of A's uses.
        admin_b = Principal(id="root", tenant="B", roles=frozenset({"admin"}))
        async with app.as_principal(admin_b):
            with pytest.raises(PermissionDenied):
                await app.ai_act.export(
                    "intake", since=DAY, until=DAY + dt.timedelta(days=1), tenant="A"
                )
            theirs = await app.ai_act.export("intake", since=DAY, until=DAY + dt.timedelta(days=1))
        with pytest.raises(InvalidInput, match="must end after it starts"):
            await app.ai_act.export("intake", since=DAY, until=DAY)
        with pytest.raises(UnknownWorkflow, match="'nope'"):
            await app.ai_act.export("nope", since=DAY, until=DAY + dt.timedelta(days=1))
        policy_version = app.policy.source.current.version if app.policy else None
    seen = {"before": last, "head": head, "policy_version": policy_version, "theirs": theirs}
    return [first, second], evidence, seen


def test_the_extract_of_a_day_lists_each_use_and_audit_verify_verifies_its_checkpoint(
    store_url: str, openai_server: OpenAIWire, tmp_path: Path
) -> None:
    (first, second), ev, seen = asyncio.run(a_day(store_url, openai_server))
    h = ev.header
    assert (h["type"], h["workflow"], h["tenant"]) == ("aiosys-ai-act-extract", "intake", None)
    assert h["regulation"] == "Regulation (EU) 2024/1689"
    assert (h["from"], h["to"]) == (DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat())
    assert [u["run_id"] for u in ev.uses] == [first, second] and h["uses"] == 2
    # Article 12(3)(a): the period of each use, within the day.
    for u, hour in zip(ev.uses, (9, 14), strict=True):
        start, end = dt.datetime.fromisoformat(u["start"]), dt.datetime.fromisoformat(u["end"])
        assert DAY + dt.timedelta(hours=hour) <= start < end < DAY + dt.timedelta(hours=hour + 1)
        assert u["status"] == "succeeded"
    # Article 12(3)(b), (c): what the inputs were checked against, the inputs by hash.
    u = ev.uses[0]
    assert u["input"] == sha({"path": "scan-1.pdf"})
    assert u["reference"] == {"models": ["wire-gpt@3"], "tasks": ["summarize@2"]}
    by_name = {e["name"]: e for e in u["effects"]}
    assert by_name["ocr"]["inputs"] == {"path": sha("scan-1.pdf")}
    assert by_name["summarize"]["inputs"] == {"input": sha({"text": "text of scan-1.pdf"})}
    assert by_name["summarize"]["model"] == "wire-gpt@3"
    assert all(by_name[n]["audit_seq"] is not None for n in ("ocr", "summarize"))
    # Article 12(3)(d), 14(5): the persons who verified the results, each by its record.
    people = [[(p["person"], p["role"], p["action"]) for p in u["verified_by"]] for u in ev.uses]
    approval = ("user:A/paula", "partner", "approve")
    assert people == [
        [approval, ("user:A/alice", "paralegal", "approve"), ("user:A/sam", "senior", "approve")],
        [approval, ("user:A/amy", "paralegal", "approve"), ("user:A/sam", "senior", "approve")],
    ]
    assert h["persons"] == ["user:A/alice", "user:A/amy", "user:A/paula", "user:A/sam"]
    assert all(p["audit_seq"] is not None for u in ev.uses for p in u["verified_by"])
    # The policy set's version, in force and deciding the uses.
    assert seen["policy_version"] is not None
    assert h["policy_version"] == seen["policy_version"]
    assert h["policy_versions"] == [seen["policy_version"]]
    # The checkpoint: none covered the day's records yet, so one was signed; it covers them.
    before = seen["before"]
    assert not before or before[0]["seq"] < seen["head"]
    cp = h["checkpoint"]
    assert cp["seq"] >= max(c["seq"] for u in ev.uses for c in u["audit"])
    assert ev.checkpoint.n == cp["n"]
    # Another tenant's admin got an extract of its own tenant: no use of A's.
    assert seen["theirs"].header["tenant"] == "B" and seen["theirs"].uses == []

    out = tmp_path / "evidence"
    paths = ev.write(out)
    assert {p.name for p in paths.values()} == {
        "ai-act-extract.jsonl",
        "audit-extract.jsonl",
        "annex-iv.md",
    }
    annex = paths["annex_iv"].read_text()
    for needed in (
        "Annex IV",
        "## 1. General description",
        "### 2(e) Human oversight measures (Article 14)",
        "Summarize a scanned letter",
        "summaries of incoming letters for a paralegal",
        "public web text up to 2024",
        "rouge_l",
        "misses figures in tables",
        "`summarize@2`",
        f"`{seen['policy_version']}`",
        "task-role-decides",
        f"number {cp['n']}: signs records 1 to {cp['seq']}",
        "Uses whose results at least two persons verified (Article 14(5)): 2 of 2",
    ):
        assert needed in annex, needed

    # `aiosys audit verify` verifies the checkpoint the extract cites: the whole log, signed
    # past it with that very checkpoint, and the extract's citations against the records.
    report = json.loads(ok(aiosys("audit", "verify", "--json", "--store", store_url)).stdout)
    assert report["status"] == "intact" and report["checkpoints"] >= cp["n"]
    assert report["signed_to"] >= cp["seq"]
    line = ok(aiosys("audit", "verify", "--store", store_url, "--file", str(paths["extract"])))
    assert line.stdout.startswith(
        f"AI Act extract verified: 2 uses, {sum(len(u['audit']) for u in ev.uses)} audit "
        f"records cited and 6 persons' decisions attested, under checkpoint {cp['n']} "
        f"(records 1 to {cp['seq']})"
    )
    # Someone else put down as the reviewer: the record says who decided.
    text = paths["extract"].read_text().replace('"user:A/alice"', '"user:A/mallory"')
    paths["extract"].write_text(text)
    bad = aiosys("audit", "verify", "--store", store_url, "--file", str(paths["extract"]))
    assert bad.exit_code == 1, bad.output
    assert "user:A/mallory's decision of task review" in bad.stdout
    assert "is not that decision" in bad.stdout

    # The command line: the same day from the store alone (the app closed and signed its
    # tail); the checkpoint it cites is verified the same way.
    cli_out = tmp_path / "cli"
    args = ["audit", "export", "--format", "ai-act", "--workflow", "intake", "--store", store_url]
    done = ok(aiosys(*args, "--from", "2025-03-04", "--to", "2025-03-05", "-o", str(cli_out)))
    assert "exported the AI Act evidence of intake: 2 uses, 4 persons" in done.stderr
    lines = (cli_out / EXTRACT_FILE).read_text().splitlines()
    assert [json.loads(x)["run_id"] for x in lines[1:]] == [first, second]
    ok(aiosys("audit", "verify", "--store", store_url, "--file", str(cli_out / EXTRACT_FILE)))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workflow", "nope", "--from", "2025-03-04", "--to", "2025-03-05"], "'nope'"),
        (["--workflow", "intake", "--from", "2025-03-05", "--to", "2025-03-04"], "before --to"),
        (["--workflow", "intake", "--from", "yesterday", "--to", "2025-03-04"], "ISO 8601"),
        (["--from", "2025-03-04", "--to", "2025-03-05"], "needs --workflow"),
        (["--workflow", "intake", "--to", "2025-03-05"], "needs --from"),
    ],
)
def test_a_bad_ai_act_request_is_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    args = ["audit", "export", "--format", "ai-act", "--store", store, "-o", str(tmp_path / "o")]
    assert message in reported_error(aiosys(*args, *extra), 2)


def test_an_unknown_format_and_a_stray_workflow_are_exit_2(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    bad = aiosys("audit", "export", "--format", "pdf", "--store", store)
    assert "--format must be one of audit, ai-act" in reported_error(bad, 2)
    stray = aiosys("audit", "export", "--workflow", "intake", "--store", store)
    assert "--workflow is for --format ai-act" in reported_error(stray, 2)
