"""Policy files: validated against the schema when loaded, refused with file and line, the
last good set kept in force, reloaded when a file changes (polled on a controlled clock)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aiosys.errors import ApprovalRequired
from aiosys.governance.policy import PolicyEngine
from aiosys.governance.policy_approval import Approval
from aiosys.governance.policy_entities import (
    PolicyRequest,
    Ref,
    attrs,
    model_entity,
    principal_entity,
)
from aiosys.governance.policy_files import (
    PolicyFileError,
    PolicySource,
    load_policy_dir,
    split_statements,
)
from aiosys.kernel import LOCAL

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(SHIPPED, directory)
    return directory


class Card:
    id = "cloud"
    external = True
    risk_level = "low"
    data_residency = "us"
    provider = "openai"
    kind = "chat"
    owner = "ml"


def confidential_to_cloud() -> PolicyRequest:
    context = attrs({"tenant": "default", "classification": Ref("Classification", "restricted")})
    return PolicyRequest(principal_entity(LOCAL), "call_model", model_entity(Card()), context)


def test_the_shipped_policies_load_with_their_ids_files_and_lines():
    loaded = load_policy_dir(SHIPPED)
    rule = loaded.policies["confidential-stays-on-premises"]
    assert Path(rule.file).name == "data.cedar" and rule.effect == "forbid"
    lines = (SHIPPED / "data.cedar").read_text().splitlines()
    assert lines[rule.line - 1] == '@id("confidential-stays-on-premises")'
    assert rule.text.startswith("@id(") and rule.text.endswith(";")
    assert len(loaded.version) == 16 and load_policy_dir(SHIPPED).version == loaded.version


def test_a_policy_without_an_id_is_named_by_its_file_and_line(policies: Path):
    (policies / "extra.cedar").write_text(
        '// no id; "quoted"\n\nforbid(principal, action == Action::"export", resource);\n'
    )
    assert "extra.cedar:3" in load_policy_dir(policies).policies


def test_a_syntax_error_is_refused_with_its_file_and_line(policies: Path):
    (policies / "broken.cedar").write_text(
        '@id("fine")\npermit(principal, action, resource);\n\n'
        "forbid(principal, action, resource)\n  when { resource.external = };\n"
    )
    with pytest.raises(PolicyFileError) as refused:
        load_policy_dir(policies)
    assert (Path(refused.value.file).name, refused.value.line) == ("broken.cedar", 5)
    assert "unexpected token" in refused.value.reason
    assert str(refused.value).startswith(f"{policies / 'broken.cedar'}:5: ")


def test_a_missing_semicolon_is_refused_at_the_end_of_its_file(policies: Path):
    (policies / "broken.cedar").write_text("permit(principal, action, resource)\n")
    with pytest.raises(PolicyFileError) as refused:
        load_policy_dir(policies)
    assert refused.value.line == 1 and "unexpected end of input" in refused.value.reason


def test_a_schema_error_is_refused_with_the_policy_line_and_reason(policies: Path):
    (policies / "typo.cedar").write_text(
        'permit(principal, action, resource);\n@id("typo")\nforbid(principal, '
        'action == Action::"call_model", resource)\nwhen { resource.externl };\n'
    )
    with pytest.raises(PolicyFileError) as refused:
        load_policy_dir(policies)
    assert (Path(refused.value.file).name, refused.value.line) == ("typo.cedar", 2)
    assert "externl" in refused.value.reason and "policy1" not in refused.value.reason


def test_a_broken_schema_is_refused_with_its_line(policies: Path):
    schema = policies / "schema.cedarschema"
    schema.write_text(schema.read_text() + "\nentity Broken = { a: Strin };\n")
    with pytest.raises(PolicyFileError) as refused:
        load_policy_dir(policies)
    lines = schema.read_text().splitlines()
    assert "Strin" in lines[refused.value.line - 1] and "Strin" in refused.value.reason


def test_a_duplicate_id_names_both_places(policies: Path):
    (policies / "dup.cedar").write_text(
        '@id("confidential-stays-on-premises")\npermit(principal, action, resource);\n'
    )
    with pytest.raises(PolicyFileError, match=r"dup.cedar:1: duplicate policy id .*data.cedar"):
        load_policy_dir(policies)


def test_a_missing_schema_is_refused(policies: Path):
    (policies / "schema.cedarschema").unlink()
    with pytest.raises(PolicyFileError, match=r"schema\.cedarschema is missing"):
        load_policy_dir(policies)


def test_statements_split_at_semicolons_outside_strings_and_comments():
    text = '// a; b\n@id("x;y")\npermit(principal, action, resource)\n when { "a;\\"b" == "c" };\n'
    [(line, source)] = split_statements(text)
    assert line == 2 and source.startswith('@id("x;y")') and source.endswith("};")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bump(path: Path, by: int = 1) -> None:
    """Give the file a later mtime than it had (a filesystem's clock may be coarse)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + by * 1_000_000_000))


async def test_a_broken_edit_is_refused_and_the_last_good_set_stays_in_force(policies: Path):
    engine = PolicyEngine.from_dir(policies)
    good = engine.version
    assert not engine.decide(confidential_to_cloud())[0].allowed
    data = policies / "data.cedar"
    data.write_text(data.read_text() + "\nforbid(principal, action, resource) when { 1 + };\n")
    bump(data)
    assert not await engine.source.refresh()
    assert engine.version == good
    assert isinstance(engine.source.last_error, PolicyFileError)
    assert engine.source.last_error.file == str(data)
    verdict, _ = engine.decide(confidential_to_cloud())
    assert verdict.policies == ("confidential-stays-on-premises",)


async def test_the_engine_reloads_on_change_at_its_poll_interval(policies: Path):
    clock = Clock()
    source = PolicySource(policies, poll_interval=5.0, clock=clock)
    engine = PolicyEngine(source)
    source.load()
    first = engine.version
    assert not engine.decide(confidential_to_cloud())[0].allowed
    data = policies / "data.cedar"
    text = data.read_text()
    start = text.index('@id("confidential-stays-on-premises")')
    data.write_text(text[:start] + text[text.index(";", start) + 1 :])
    bump(data)
    clock.now = 1.0  # not due yet: the set in force answers, from the cache
    verdict, cached = engine.decide(confidential_to_cloud())
    assert (verdict.allowed, cached, engine.version) == (False, True, first)
    clock.now = 6.0  # due: the decision that finds the edit is answered by the new set
    verdict, cached = engine.decide(confidential_to_cloud())
    assert (verdict.allowed, cached) == (True, False)
    assert engine.version != first


async def test_the_first_decision_after_an_edit_is_made_under_the_new_set(policies: Path):
    """An emergency forbid put in force (``aiosys policy reload``) holds from the first
    decision that looks at the files: none is let through by the set it replaces, also in
    a worker that made no decision for a while (the files are looked at on a decision)."""
    clock = Clock()
    source = PolicySource(policies, poll_interval=2.0, clock=clock)
    engine = PolicyEngine(source)
    source.load()
    data = policies / "data.cedar"
    text = data.read_text()
    start = text.index('@id("confidential-stays-on-premises")')
    rule = text[start : text.index(";", start) + 1]
    data.write_text(text.replace(rule, ""))
    bump(data)
    clock.now = 3.0
    assert engine.decide(confidential_to_cloud())[0].allowed  # the rule is gone
    data.write_text(text)  # and back: the next decision that looks sees it
    bump(data, by=2)
    clock.now = 3600.0  # idle for an hour, then one call
    verdict, _ = engine.decide(confidential_to_cloud())
    assert (verdict.allowed, verdict.policies) == (False, ("confidential-stays-on-premises",))


# ---- approvals (@approval, @sla, @escalate) -------------------------------------------------

HIGH_RISK = (
    'forbid(principal, action == Action::"call_model", resource)\n'
    'when { resource.risk_level == "high" }\n'
    "unless { context has approval };\n"
)


def test_the_shipped_oversight_policy_asks_a_partner_then_a_managing_partner():
    rule = load_policy_dir(SHIPPED).policies["high-risk-needs-approval"]
    assert rule.approval == Approval("partner", 86_400.0, ("managing-partner",))


@pytest.mark.parametrize(
    ("annotations", "policy", "reason"),
    [
        ('@approval("partner")', "permit(principal, action, resource);", "not to a permit"),
        ('@approval("")', HIGH_RISK, "names a role"),
        ('@approval("senior partner")', HIGH_RISK, "names a role"),
        ('@approval("partner") @sla("tomorrow")', HIGH_RISK, "@sla: "),
        ('@approval("partner") @sla("0s")', HIGH_RISK, "more than 0 seconds"),
        ('@approval("partner") @escalate("senior,,partner")', HIGH_RISK, "@escalate names"),
        ('@sla("1d") @escalate("boss")', HIGH_RISK, "@sla and @escalate without @approval"),
    ],
)
def test_a_malformed_approval_is_refused_with_its_file_and_line(
    policies: Path, annotations: str, policy: str, reason: str
):
    (policies / "zz.cedar").write_text(f'// first line\n@id("x") {annotations}\n{policy}')
    with pytest.raises(PolicyFileError, match=f"zz.cedar:2: policy 'x': .*{reason}") as err:
        load_policy_dir(policies)
    assert err.value.line == 2


def test_a_denial_is_lifted_by_an_approval_only_when_every_deciding_policy_asks_one(
    policies: Path,
):
    (policies / "zz.cedar").write_text(
        '@id("a") @approval("partner") @sla("2d") @escalate("boss")\n' + HIGH_RISK
        + '@id("b") @approval("partner") @sla("1h") @escalate("boss")\n' + HIGH_RISK
        + '@id("c") @approval("clerk")\n' + HIGH_RISK
        + '@id("d")\n' + HIGH_RISK
    )  # fmt: skip
    loaded = load_policy_dir(policies)
    assert loaded.approval(("a", "b")) == (Approval("partner", 3600.0, ("boss",), ("a", "b")), "")
    assert loaded.approval(("a", "d")) == (None, "")
    assert loaded.approval(()) == (None, "")  # nothing permits: no approval lifts that
    none, why = loaded.approval(("a", "c"))
    assert none is None and "different roles (a: partner -> boss; c: clerk)" in why


def test_the_engine_raises_approval_required_and_explains_it(policies: Path):
    (policies / "oversight.cedar").unlink()
    (policies / "zz.cedar").write_text('@id("a") @approval("partner")\n' + HIGH_RISK)
    engine = PolicyEngine.from_dir(policies)
    card = type("HighCard", (Card,), {"risk_level": "high"})()
    context = attrs({"tenant": "default", "classification": Ref("Classification", "public")})
    request = PolicyRequest(principal_entity(LOCAL), "call_model", model_entity(card), context)
    with pytest.raises(ApprovalRequired, match="until a person with the role partner") as err:
        engine.authorize(request, principal=LOCAL.uid, tenant="default")
    assert (err.value.role, err.value.sla, err.value.policies) == ("partner", None, ("a",))
    assert engine.explain(request).approval == Approval("partner", None, (), ("a",))
    approved = attrs(
        {
            "tenant": "default",
            "classification": Ref("Classification", "public"),
            "approval": {"task": "t", "principal": "pat", "role": "partner", "decided_at": 1},
        }
    )
    again = PolicyRequest(principal_entity(LOCAL), "call_model", model_entity(card), approved)
    assert engine.authorize(again, principal=LOCAL.uid, tenant="default").allowed
