"""``aiosys audit verify|export|checkpoint`` against a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for i in range(3):
        ok(
            aiosys(
                "run",
                "double",
                "--input",
                json.dumps({"x": i}),
                "--app",
                "cliapp:app",
                "--store",
                url,
                "--tenant",
                "acme" if i % 2 else "globex",
            )
        )
    return url


def test_verify_prints_one_line_and_exits_0_when_intact(store: str) -> None:
    result = ok(aiosys("audit", "verify", "--store", store))
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("audit log intact: ")
    assert "unsigned" not in line and "0 records after it" in line  # closing checkpoints
    report = json.loads(ok(aiosys("audit", "verify", "--json", "--store", store)).stdout)
    assert report["ok"] is True and report["first_bad"] is None and report["records"] > 3


def test_verify_exits_1_naming_the_edited_record(store: str) -> None:
    db = sqlite3.connect(store.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("UPDATE audit_log SET body = replace(body, 'ok', 'OK') WHERE seq = 2")
    db.close()
    result = aiosys("audit", "verify", "--store", store)
    assert result.exit_code == 1
    assert result.stdout.startswith("audit log NOT intact: record 2 (edited)")
    report = json.loads(aiosys("audit", "verify", "--json", "--store", store).stdout)
    assert report["first_bad"]["seq"] == 2 and report["first_bad"]["kind"] == "edited"


def test_a_tenant_export_verifies_on_its_own(store: str, tmp_path: Path) -> None:
    out = tmp_path / "acme.jsonl"
    result = ok(
        aiosys("audit", "export", "--tenant", "acme", "--output", str(out), "--store", store)
    )
    assert f"to {out}" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    records = [x for x in lines if x["type"] == "record"]
    assert records and {r["tenant"] for r in records} == {"acme"}
    assert any(x["type"] == "stub" for x in lines)
    assert ok(aiosys("audit", "verify", "--file", str(out), "--store", store)).stdout.startswith(
        "audit log intact: "
    )
    text = out.read_text()
    out.write_text(text.replace('\\"ok\\"', '\\"OK\\"', 1))
    result = aiosys("audit", "verify", "--file", str(out), "--store", store)
    assert result.exit_code == 1 and "NOT intact" in result.stdout


def test_export_to_stdout_and_time_bounds(store: str) -> None:
    everything = ok(aiosys("audit", "export", "--store", store)).stdout.splitlines()
    assert json.loads(everything[0])["type"] == "aiosys-audit-extract"
    none = ok(
        aiosys("audit", "export", "--from", "2000-01-01", "--to", "2000-01-02", "--store", store)
    ).stdout.splitlines()
    assert [json.loads(x)["type"] for x in none] == ["aiosys-audit-extract"]


def test_bad_options_are_one_line_errors(store: str, tmp_path: Path) -> None:
    assert "--from" in reported_error(
        aiosys("audit", "export", "--from", "yesterday", "--store", store), 2
    )
    assert "before --to" in reported_error(
        aiosys("audit", "export", "--from", "2020-01-02", "--to", "2020-01-01", "--store", store), 2
    )
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    assert "not an aiosys audit extract" in reported_error(
        aiosys("audit", "verify", "--file", str(junk), "--store", store)
    )
    assert "cannot read" in reported_error(
        aiosys("audit", "verify", "--file", str(tmp_path / "nope"), "--store", store)
    )
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    assert "audit key" in reported_error(
        aiosys("audit", "verify", "--public-key", str(bad_key), "--store", store)
    )


def test_checkpoint_signs_the_head_once(store: str) -> None:
    assert "nothing to sign" in ok(aiosys("audit", "checkpoint", "--store", store)).stdout
    ok(aiosys("runs", "list", "--store", store))
    db = sqlite3.connect(store.removeprefix("sqlite:///"), isolation_level=None)
    (n,) = db.execute("SELECT count(*) FROM audit_checkpoints").fetchone()
    db.close()
    assert n >= 1


def _forge(extract: str) -> str:
    """An extract with a record's content edited, its chain rebuilt and its checkpoints
    re-signed by a new key, which the header declares: what anyone can make."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aiosys.governance.audit_checkpoint import make_checkpoint
    from aiosys.governance.audit_keys import key_id, public_pem
    from aiosys.governance.audit_record import GENESIS, chain_hash, content_digest

    items = [json.loads(line) for line in extract.splitlines()]
    header, rest = items[0], items[1:]
    records = [x for x in rest if x["type"] == "record"]
    assert records[0]["seq"] == 1  # a whole extract: the chain starts at genesis
    records[1]["body"] = records[1]["body"].replace('"ok"', '"OK"')
    prev, hashes = GENESIS, {}
    for r in records:
        r["digest"] = content_digest(r["tenant"], r["at"], r["body"])
        r["prev_hash"], r["hash"] = prev, chain_hash(prev, r["seq"], r["digest"])
        prev = hashes[r["seq"]] = r["hash"]
    key = Ed25519PrivateKey.generate()
    header.update(key=key_id(key.public_key()), public_key=public_pem(key.public_key()))
    signed, cp = [], None
    for x in rest:
        if x["type"] == "checkpoint":
            old = json.loads(x["payload"])
            cp = make_checkpoint(key, old["n"], old["seq"], hashes[old["seq"]], old["at"], cp)
            signed.append({"type": "checkpoint", "payload": cp.payload, "signature": cp.signature})
    lines = [header, *signed, *records]
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def test_a_forged_extract_is_not_called_intact_on_the_key_it_declares(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = tmp_path / "forged.jsonl"
    forged.write_text(_forge(ok(aiosys("audit", "export", "--store", store)).stdout))
    key = os.environ["AIOSYS_AUDIT_KEY"]  # the operator's key (tests/conftest.py)
    # Where no key is configured (no AIOSYS_AUDIT_KEY, a fresh store's directory) and none
    # is passed: the extract is consistent with the key it carries, which proves nothing.
    monkeypatch.delenv("AIOSYS_AUDIT_KEY")
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'x.db'}"
    result = aiosys("audit", "verify", "--file", str(forged), "--store", elsewhere)
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("audit extract NOT verified: ")
    assert "unpinned" in result.stdout and "--public-key" in result.stdout
    report = json.loads(
        aiosys("audit", "verify", "--file", str(forged), "--json", "--store", elsewhere).stdout
    )
    assert report["ok"] is False and report["status"] == "unpinned"
    assert report["pinned"] is False and report["first_bad"] is None
    # Pinned to the operator's key, the forgery is found: passed, or configured.
    result = aiosys("audit", "verify", "--file", str(forged), "--public-key", key)
    assert result.exit_code == 1 and "NOT intact" in result.stdout, result.output
    assert "checkpoint" in result.stdout
    monkeypatch.setenv("AIOSYS_AUDIT_KEY", key)
    result = aiosys("audit", "verify", "--file", str(forged), "--store", elsewhere)
    assert result.exit_code == 1 and "NOT intact" in result.stdout, result.output
    # The genuine extract, pinned, is intact.
    genuine = tmp_path / "genuine.jsonl"
    genuine.write_text(ok(aiosys("audit", "export", "--store", store)).stdout)
    verified = ok(aiosys("audit", "verify", "--file", str(genuine), "--store", elsewhere))
    assert verified.stdout.startswith("audit log intact: ")
