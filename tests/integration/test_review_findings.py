"""What a newcomer's review of issues 10 and 11 found, each fixed where it was born and
shown here: roles on audit export, an empty credential, durations past what dates hold,
a malformed policy question, an extract its key does not verify, unbounded limits, and a
help text that lost its ``[[slo]]``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys.durations import parse_before, parse_duration

TESTS_DIR = Path(__file__).resolve().parents[1]
SHIPPED = TESTS_DIR.parent / "examples" / "policies"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIOSYS_KEY_SECRET", "c" * 40)
    for var in [v for v in os.environ if v.startswith("AIOSYS_JWT_") or v == "AIOSYS_API_KEY"]:
        monkeypatch.delenv(var)


def key(store: str, tenant: str, who: str, *roles: str, expires: str | None = None) -> Any:
    args = ["keys", "create", "--tenant", tenant, "--principal", who, "--json", "--store", store]
    for role in roles:
        args += ["--role", role]
    if expires is not None:
        args += ["--expires", expires]
    return json.loads(ok(aiosys(*args)).stdout)


def a_run(store: str, tenant: str = "acme") -> None:
    ok(
        aiosys(
            "run",
            "double",
            "--input",
            '{"x": 1}',
            "--app",
            "cliapp:app",
            "--store",
            store,
            "--tenant",
            tenant,
        )
    )


def test_audit_export_takes_the_role_admin(store_url: str, tmp_path: Path) -> None:
    a_run(store_url)
    out = tmp_path / "x.jsonl"
    for roles in [("none",), ("runner",), ("viewer",), ("operator",)]:
        k = key(store_url, "acme", "who" + "".join(roles), *roles)["key"]
        error = reported_error(
            aiosys("--api-key", k, "audit", "export", "-o", str(out), "--store", store_url)
        )
        assert "may not export audit records: that takes the role admin" in error
    admin = key(store_url, "acme", "boss", "admin")["key"]
    ok(aiosys("--api-key", admin, "audit", "export", "-o", str(out), "--store", store_url))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["tenant"] == "acme"
    assert {r["tenant"] for r in lines if r["type"] == "record"} == {"acme"}


def test_an_empty_api_key_is_refused_not_the_local_principal(store_url: str) -> None:
    for value in ["", "   "]:
        error = reported_error(aiosys("--api-key", value, "runs", "list", "--store", store_url), 2)
        assert "--api-key is empty" in error


@pytest.mark.parametrize("text", ["1000000d", "99999999999999999999d", "36526d", "5300w"])
def test_a_duration_past_100_years_is_refused_everywhere(store_url: str, text: str) -> None:
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration(text)
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_before(text, 1.8e9)
    assert parse_duration("36525d") == 36525 * 86400.0
    for args in (
        ["stats", "--since", text],
        ["models", "usage", "--since", text],
        ["runs", "prune", "--before", text, "--dry-run"],
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--principal",
            "p",
            "--role",
            "viewer",
            "--expires",
            text,
        ],
    ):
        error = reported_error(aiosys(*args, "--store", store_url), 2)
        assert "100 years" in error, (args, error)
    listed = ok(aiosys("keys", "list", "--store", store_url))  # nothing stored: still lists
    assert "Traceback" not in listed.output


def test_a_point_in_time_out_of_range_is_an_error_not_a_traceback(store_url: str) -> None:
    error = reported_error(
        aiosys("stats", "--since", "0001-01-01T00:00:00+14:00", "--store", store_url), 2
    )
    assert "out of the range" in error or "not" in error


def test_policy_check_refuses_a_request_the_schema_cannot_pose(tmp_path: Path) -> None:
    base = ["policy", "check", "--dir", str(SHIPPED), "--principal", "acme/alice"]
    error = reported_error(aiosys(*base, "--action", "fly", "--resource", "workflow:x"), 2)
    assert 'action `Action::"fly"` does not exist' in error
    error = reported_error(
        aiosys(
            *base,
            "--action",
            "start_workflow",
            "--resource",
            "model:gpt",
            "--resource-attrs",
            '{"external": true}',
        ),
        2,
    )
    assert "does not fit the policy schema" in error
    ok(aiosys(*base, "--action", "start_workflow", "--resource", "workflow:x"))


def test_export_refuses_a_key_that_does_not_verify_its_checkpoints(
    store_url: str, tmp_path: Path
) -> None:
    a_run(store_url)
    ok(aiosys("audit", "checkpoint", "--store", store_url))
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    error = reported_error(
        aiosys("audit", "export", "--public-key", str(other), "--store", store_url)
    )
    assert "the extract would not verify" in error


def test_limits_are_bounded(store_url: str) -> None:
    error = reported_error(
        aiosys("runs", "list", "--limit", "9223372036854775808", "--store", store_url), 2
    )
    assert "--limit" in error


def test_slo_check_help_shows_its_slo_tables() -> None:
    text = ok(aiosys("slo", "check", "--help")).output
    assert "[[slo]]" in text


def test_a_reader_that_leaves_early_is_not_an_error(store_url: str) -> None:
    """``aiosys audit export | head -1``: the pipe closes; no error line, no traceback."""
    import asyncio
    import subprocess
    import sys

    from aiosys import App
    from aiosys.governance.audit_record import AuditRecord

    async def fill() -> None:  # more than a pipe's buffer holds (64 KiB)
        app = App(store=store_url)
        async with app:
            for i in range(400):
                body = {"note": "x" * 300}
                await app.audit.append(
                    AuditRecord("user:acme/a", "acme", "step", f"r{i}", at=i + 1, detail=body)
                )

    asyncio.run(fill())
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosys.cli", "audit", "export", "--store", store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert json.loads(first)["type"] == "aiosys-audit-extract"
    assert "error" not in stderr.lower() and "Traceback" not in stderr, stderr


def test_a_principal_refuses_roles_as_one_string_and_empty_names() -> None:
    from aiosys.kernel import Principal

    with pytest.raises(TypeError, match="not the string 'admin'"):
        Principal(id="alice", tenant="acme", roles="admin")  # type: ignore[arg-type]
    for bad in ({"id": "", "tenant": "acme"}, {"id": "a", "tenant": ""}, {"id": 5, "tenant": "t"}):
        with pytest.raises(ValueError, match="must be a non-empty string"):
            Principal(**bad)  # type: ignore[arg-type]
    assert Principal(id="alice", tenant="acme", roles=["admin"]).roles == frozenset({"admin"})


def test_revoking_with_the_whole_key_does_not_echo_its_secret(store_url: str) -> None:
    made = key(store_url, "acme", "bob", "viewer")
    error = reported_error(aiosys("keys", "revoke", made["key"], "--store", store_url), 1)
    # The secret is what follows "aiosys_<id>_" (it may hold "_" itself: base64url).
    secret = made["key"].removeprefix(f"aiosys_{made['id']}_")
    assert len(secret) >= 20 and made["key"] not in error and secret not in error
    assert f"its id is {made['id']}" in error
    ok(aiosys("keys", "revoke", made["id"], "--store", store_url))


def test_runs_show_lists_each_failed_attempt_of_a_step(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeline shows a retried step's failed attempt, its error and when the next was
    due (``meta.retries``), not only the attempt that ended it."""
    monkeypatch.setenv("COLUMNS", "240")  # one table row per line
    a_run(store_url)  # `double`: its step fails once (TransientError "not yet"), then passes
    (run,) = json.loads(
        ok(aiosys("runs", "list", "--json", "--workflow", "double", "--store", store_url)).stdout
    )
    shown = ok(aiosys("runs", "show", run["id"], "--store", store_url)).stdout
    lines = [line for line in shown.splitlines() if "flaky_double" in line]
    assert len(lines) == 2, shown
    assert "retried" in lines[0] and "not yet" in lines[0] and "next attempt due" in lines[0]
    assert "ok" in lines[1]


def test_creating_and_revoking_a_key_are_audited_without_its_secret(store_url: str) -> None:
    made = key(store_url, "acme", "bob", "viewer", expires="30d")
    ok(aiosys("keys", "revoke", made["id"], "--store", store_url))
    extract = ok(aiosys("audit", "export", "--store", store_url)).stdout
    assert made["key"] not in extract
    bodies = [json.loads(line) for line in extract.splitlines()]
    records = [json.loads(b["body"]) for b in bodies if b.get("type") == "record"]
    keyed = [r for r in records if r["resource"] == f"key:{made['id']}"]
    assert [(r["action"], r["outcome"]) for r in keyed] == [
        ("create_key", "created"),
        ("revoke_key", "revoked"),
    ]
    assert all(r["detail"]["principal"] == "bob" for r in keyed)
    assert keyed[0]["detail"]["roles"] == "viewer" and "expires_at" in keyed[0]["detail"]
    assert all(r["principal"] == "user:default/local" for r in keyed)
