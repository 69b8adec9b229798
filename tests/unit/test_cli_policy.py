"""``aiosys policy check|validate|reload`` on the shipped example policies and card files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"
RULE = "confidential-stays-on-premises"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(SHIPPED, tmp_path / "policies")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "cloud.toml").write_text(
        'id = "cloud"\nprovider = "openai"\nexternal = true\ndata_residency = "us"\n'
    )
    (tmp_path / "models" / "onprem.toml").write_text('id = "onprem"\nprovider = "openai"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_POLICIES_DIR", raising=False)
    monkeypatch.setenv("AIOSYS_MODELS_DIR", "models")
    return tmp_path


def check(*args: str):
    return aiosys("policy", "check", "--principal", "acme/alice", "--action", "call_model", *args)


def test_check_denies_confidential_data_to_an_external_model_and_shows_the_policy(project):
    result = check("--resource", "model:cloud", "--context", '{"classification": "confidential"}')
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith('deny  call_model on Model::"cloud"')
    assert f"{RULE} (forbid, {Path('policies') / 'data.cedar'}:3)" in result.stdout
    assert "resource.external" in result.stdout  # the policy's text


def test_check_allows_the_on_premises_model_and_answers_json(project):
    result = ok(
        check(
            "--resource",
            "model:onprem",
            "--context",
            '{"classification": "confidential"}',
            "--json",
        )
    )
    answer = json.loads(result.stdout)
    assert answer["decision"] == "allow" and answer["errors"] == []
    assert [p["id"] for p in answer["policies"]] == ["same-tenant-effects"]
    assert answer["request"]["principal"] == {"type": "User", "id": "acme/alice"}


def test_check_names_the_approval_that_lifts_a_denial_and_allows_with_one(project):
    high = ("--resource", "model:onprem", "--resource-attrs", '{"risk_level": "high"}')
    result = check(*high, "--json")
    assert result.exit_code == 3, result.output
    answer = json.loads(result.stdout)
    assert [p["id"] for p in answer["policies"]] == ["high-risk-needs-approval"]
    assert answer["approval"] == {
        "role": "partner",
        "sla": 86400.0,
        "escalate_to": ["managing-partner"],
        "policies": ["high-risk-needs-approval"],
    }
    text = check(*high).stdout
    assert "a workflow's effect waits for a partner -> managing-partner, 86400s each" in text
    approved = '{"approval": {"task": "t", "principal": "pat", "role": "partner", "decided_at": 1}}'
    assert json.loads(ok(check(*high, "--context", approved, "--json")).stdout)["approval"] is None
    # A high-risk workflow, as an entity in the context: its call to a low-risk card waits too.
    risky = '{"workflow": {"id": "intake", "high_risk": true}}'
    result = check("--resource", "model:onprem", "--context", risky, "--json")
    assert result.exit_code == 3 and json.loads(result.stdout)["approval"]["role"] == "partner"
    assert ok(check("--resource", "model:onprem", "--context", '{"workflow": "intake"}'))


def test_check_takes_the_resource_attributes_from_the_command_line(project):
    result = check(
        "--resource",
        "model:other",
        "--resource-attrs",
        '{"external": true}',
        "--context",
        '{"classification": "restricted"}',
        "--json",
    )
    assert result.exit_code == 3
    assert [p["id"] for p in json.loads(result.stdout)["policies"]] == [RULE]


def test_check_explains_a_default_deny(project):
    result = aiosys(
        "policy",
        "check",
        "--principal",
        "service:acme/billing",
        "--action",
        "start_workflow",
        "--resource",
        "workflow:intake",
        "--context",
        '{"tenant": "globex"}',
    )
    assert result.exit_code == 3
    assert "no policy permits it" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--principal", "robot:acme/x"), "--principal 'robot:acme/x'"),
        (("--resource", "table:x"), "--resource 'table:x'"),
        (("--context", "{nope"), "--context is not valid JSON"),
        (("--context", '{"classification": "secret"}'), "unknown data classification 'secret'"),
    ],
)
def test_check_refuses_bad_arguments_in_one_line(project, args, message):
    base = {"--principal": "acme/alice", "--action": "call_model", "--resource": "model:cloud"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [x for kv in base.items() for x in kv]
    assert message in reported_error(aiosys("policy", "check", *argv), 2)


def test_check_refuses_a_model_it_knows_nothing_of(project):
    assert "no model card 'ghost'" in reported_error(check("--resource", "model:ghost"))


def test_validate_names_the_file_and_line_of_a_syntax_error(project):
    ok_result = ok(aiosys("policy", "validate"))
    assert ok_result.stdout.startswith("valid: 8 policies in policies, version ")
    (project / "policies" / "bad.cedar").write_text("permit(principal, action, resource)\n;;\n")
    message = reported_error(aiosys("policy", "validate"))
    assert f"{Path('policies') / 'bad.cedar'}:2: " in message


def test_validate_json_reports_a_broken_set_as_json(project, monkeypatch):
    good = json.loads(ok(aiosys("policy", "validate", "--json")).stdout)
    assert good["ok"] is True and len(good["policies"]) == 8
    (project / "policies" / "bad.cedar").write_text("permit(principal, action, resource)\n;;\n")
    for command in ("validate", "reload"):
        result = aiosys("policy", command, "--json")
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is False
        (error,) = report["errors"]
        assert (error["file"], error["line"]) == (str(Path("policies") / "bad.cedar"), 2)
        assert error["reason"] and "error:" not in result.output
    monkeypatch.chdir(project / "models")  # no ./policies here
    monkeypatch.delenv("AIOSYS_POLICIES_DIR", raising=False)
    result = aiosys("policy", "validate", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and "no policy directory" in report["errors"][0]["reason"]


def test_reload_touches_the_schema_only_for_a_valid_set(project):
    schema = project / "policies" / "schema.cedarschema"
    before = schema.stat().st_mtime_ns
    (project / "policies" / "bad.cedar").write_text("forbid(principal, action, resource\n")
    reported_error(aiosys("policy", "reload"))
    assert schema.stat().st_mtime_ns == before
    (project / "policies" / "bad.cedar").unlink()
    assert ok(aiosys("policy", "reload")).stdout.startswith("reloaded: 8 policies")


def test_without_a_policy_directory_the_commands_say_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_POLICIES_DIR", raising=False)
    assert "no policy directory" in reported_error(aiosys("policy", "validate"))


def test_check_answers_complete_task_on_a_human_task_by_its_role(project):
    def decide(*roles: str):
        args = ["policy", "check", "--principal", "acme/alice", "--action", "complete_task"]
        for role in roles:
            args += ["--role", role]
        attrs = '{"role": "paralegal", "workflow": "intake"}'
        return aiosys(*args, "--resource", "humantask:t-1", "--resource-attrs", attrs)

    allowed = ok(decide("paralegal"))
    assert allowed.stdout.startswith('allow  complete_task on HumanTask::"t-1"')
    assert "task-role-decides (permit" in allowed.stdout
    denied = decide("viewer")
    assert denied.exit_code == 3 and denied.stdout.startswith("deny  complete_task")
