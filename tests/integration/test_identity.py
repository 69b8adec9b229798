"""Identity and tenants through the Python API, on both stores: the tenant walk (every
public function of App, RunHandle and app.models, as tenant A against tenant B's objects:
a refusal or nothing), API keys (revoked, expired, unknown: refused), the built-in roles,
the client checks, runs.principal and its inheritance, and the no-identity default."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.apiclient import make_app

import aiosys
from aiosys.errors import AuthenticationFailed, PermissionDenied, RunNotFound, TaskNotFound
from aiosys.governance import identity as identity_mod
from aiosys.governance.identity_keys import ApiKeys
from aiosys.kernel import LOCAL, ClientCall, Principal, principal_of_run
from aiosys.kernel.app import RunHandle

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def _key_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOSYS_KEY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)  # no aiosys.toml, no ./models
    for var in [v for v in os.environ if v.startswith("AIOSYS_JWT_")]:
        monkeypatch.delenv(var)


async def principal_for(app: aiosys.App, tenant: str, who: str, *roles: str) -> Principal:
    new = await app.identity.keys.create(tenant, who, roles=roles)
    return await app.identity.authenticate(new.key)


async def wait_for(app: aiosys.App, run_id: str, *statuses: str) -> Any:
    async with asyncio.timeout(20):
        while True:
            row = await app.store.get_run(run_id)
            if row is not None and row.status in statuses:
                return row
            await asyncio.sleep(0.01)


def public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


# What the walk does not call as A against B, and why. A public attribute that is in neither
# this table nor the walk fails the test: a new method must be walked or exempted here.
APP_EXEMPT = {
    "add_check": "registers a check (configuration, no tenant data)",
    "as_principal": "binds a principal (no tenant data)",
    "checks": "the registered checks (configuration)",
    "close": "lifecycle",
    "open": "lifecycle",
    "embedded": "lifecycle (opens the app with its worker, as async with app:)",
    "concurrency": "a setting",
    "lease": "a setting",
    "max_parked": "a setting",
    "retention": "a setting",
    "policies_dir": "a setting",
    "policy": "the Cedar engine: decides requests, holds no tenant data",
    "audit": "walked below (AuditLog)",
    "lineage": "walked below (Lineage)",
    "ai_act": "walked below (AiAct)",
    "authorizer": "the gate's authorize interceptor (configuration)",
    "models_dir": "a setting",
    "preload_models": "a setting",
    "gate": "the effect chain (configuration)",
    "queue": "declares a queue (configuration)",
    "queues": "declared queues (configuration)",
    "safe_modules": "configuration",
    "spec": "a registered workflow's spec (code, not tenant data)",
    "step": "registration",
    "workflow": "registration",
    "workflows": "registration",
    "triggers": "registration (topic -> the workflows its events start: code, not tenant data)",
    "wf_keys": "registration",
    "use_store": "configuration, before opening",
    "models": "walked below (ModelPlane)",
    "store": "the raw store: the operator's in-process escape hatch, below every check",
    "identity": "the store's key admin API (operator's); the CLI checks manage_keys",
    "slo": "declares an SLO (configuration, no tenant data)",
    "slos": "the SLOs declared in code (configuration)",
    "tracing": "the tracer and its settings (configuration); spans are read by app.trace",
    "run_end_hooks": "configuration (who is told a run ended in this process)",
    "humans": "the human_task effect's executor: used inside workflows, as the run's principal",
    "approvals": "the gate's approve interceptor: used inside workflows, as the run's principal",
    "complete_wait": "the layers' hook below every check (they scope and check first), as store",
    "redaction": "the gate's redact interceptor and presenter (configuration); restoring is "
    "decided per effect by the run's principal's read_data",
    "redaction_settings": "a setting",
    "readiness": "a probe: whether the store answers with a current schema, no tenant data",
    "warming": "what the warm-up is loading (lifecycle, no tenant data)",
    "warmed": "lifecycle: waits for the warm-up (no tenant data)",
}
AUDIT_WALK = ("export", "extract", "verify", "checkpoint")
AUDIT_EXEMPT = {
    "append": "appends a record (the app's own writes), reads nothing",
    "admin_action": "appends a record of the caller's own action in its own tenant",
    "note_admin_action": "admin_action from a listener (a policy reload), reads nothing",
    "key_action": "admin_action of a key the caller created or revoked, reads nothing",
    "run_action": "appends a record of the caller's own action",
    "on_decision": "a policy listener: appends, reads nothing",
    "starting": "collects the caller's own start's decisions, reads nothing",
    "start_writes": "the kernel's start hook: the caller's own start's record",
    "appended": "counts records toward the next checkpoint, reads nothing",
    "interceptor": "the gate's audit interceptor",
    "effect_record": "builds a record of the caller's effect",
    "close": "lifecycle",
    "settings": "configuration",
    "checkpointer": "configuration (signs on close and on a timer)",
    "enabled": "a setting",
    "key_path": "configuration",
    "signing_key": "configuration: the operator's key, in this process already",
    "verify_key": "configuration: a public key",
}
LINEAGE_WALK = ("show", "runs", "openlineage")
LINEAGE_EXEMPT = {
    "settings": "configuration",
    "enabled": "a setting",
    "install": "puts the interceptor on the gate (configuration)",
    "listen": "subscribes to a policy engine (configuration)",
    "inputs": "names an effect kind's inputs (configuration)",
    "recorder": "the gate's lineage interceptor and hooks",
}
AI_ACT_WALK = ("export",)
HANDLE_EXEMPT = {"app": "its App", "created": "a flag", "id": "the run id", "tenant": "a field"}
MODELS_EXEMPT = {
    "add_card": "the shared catalog (no tenant data)",
    "add_provider": "configuration",
    "add_task": "configuration",
    "app": "its App",
    "bind": "used inside a workflow (runs as the run's principal)",
    "breakers": "configuration",
    "budgets": "configuration",
    "card": "the shared catalog",
    "cards": "the shared catalog",
    "close": "lifecycle",
    "contract": "configuration",
    "embed_model": "configuration",
    "flush_usage": "writes this process's pending rows (reads nothing back)",
    "links": "configuration",
    "load_files": "the shared catalog",
    "load_store": "the shared catalog",
    "preload": "lifecycle",
    "import_modules": "lifecycle (preload's imports)",
    "warm_up": "lifecycle: the app's warm-up while it runs",
    "provider": "configuration",
    "providers": "configuration",
    "redis_url": "configuration",
    "router": "configuration",
    "save_to_store": "the shared catalog",
    "task": "configuration",
    "tasks": "configuration",
}


async def first_piece(stream: Any) -> Any:
    """Enter a model stream (where a refusal is raised) and read its first piece."""
    async with stream:
        return await anext(stream)


async def refused_or_nothing(what: str, coro: Any) -> None:
    try:
        out = await coro
    except (PermissionDenied, RunNotFound, TaskNotFound):
        return
    assert out in ([], None, 0.0) or (isinstance(out, dict) and not out.get("calls")), (
        what,
        out,
    )


async def test_tenant_walk_every_public_function_as_a_against_b(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        alice = await principal_for(app, "A", "alice", "admin")
        bob = await principal_for(app, "B", "bob", "admin")
        async with app.as_principal(bob):
            waiting = await app.start("waits")
            dead = await app.start("dies")
            asking = await app.start("asks")
        await wait_for(app, waiting.id, "waiting")
        await wait_for(app, dead.id, "dead")
        await wait_for(app, asking.id, "waiting")
        (b_task,) = await app.list_tasks(tenant="B")
        usage = {
            "at": time.time(),
            "tenant": "B",
            "workflow": "waits",
            "run_id": waiting.id,
            "seq": 1,
            "task": None,
            "model": "m",
            "deployment": "d",
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost": 1.5,
            "latency_ms": 3.0,
            "status": "ok",
            "error": None,
            "reservation": None,
        }
        await app.store.execute("insert_usage", usage)
        b_runs = {waiting.id, dead.id, asking.id}

        app_walk = {
            "start": lambda: app.start("waits", tenant="B"),
            "publish": lambda: app.publish("greeting.sent", {"name": "x"}, tenant="B"),
            "run": lambda: app.run("waits", tenant="B"),
            "get_run": lambda: app.get_run(waiting.id),
            "effects": lambda: app.effects(dead.id),
            "trace": lambda: app.trace(dead.id),
            "list_runs": lambda: app.list_runs(),
            "signal": lambda: app.signal(waiting.id, "go", "x"),
            "cancel": lambda: app.cancel(waiting.id),
            "resume": lambda: app.resume(dead.id),
            "handle": lambda: app.handle(waiting.id).row(),
            "authorize": lambda: app.authorize("read_usage", tenant="B"),
            "stats": lambda: app.stats(tenant="B"),
            "check_slos": lambda: app.check_slos(tenant="B"),
            "metrics": lambda: app.metrics(tenant="B"),
            "list_tasks": lambda: app.list_tasks(tenant="B"),
            "get_task": lambda: app.get_task(b_task.id),
            "claim_task": lambda: app.claim_task(b_task.id),
            "release_task": lambda: app.release_task(b_task.id),
            "complete_task": lambda: app.complete_task(b_task.id, "approve"),
            "admit_run": lambda: app.admit_run("signal_run", waiting.id),
            "admit_task": lambda: app.admit_task("complete_task", b_task.id),
        }
        handle_walk = {
            "row": lambda h: h.row(),
            "status": lambda h: h.status(),
            "result": lambda h: h.result(timeout=5),
        }
        models_walk = {
            "run": lambda: app.models.run("t", {}, tenant="B"),
            "call": lambda: app.models.call("m", "hi", tenant="B"),
            "stream": lambda: first_piece(app.models.stream("m", "hi", tenant="B")),
            "usage": lambda: app.models.usage(tenant="B"),
            "spent": lambda: app.models.spent(tenant="B"),
            "run_usage": lambda: app.models.run_usage(waiting.id),
            "shadow_results": lambda: app.models.shadow_results(tenant="B"),
        }
        assert public(app) == set(app_walk) | set(APP_EXEMPT)
        assert public(RunHandle(app, "x")) == set(handle_walk) | set(HANDLE_EXEMPT)
        assert public(app.models) == set(models_walk) | set(MODELS_EXEMPT)

        async with app.as_principal(alice):
            for name, call in app_walk.items():
                await refused_or_nothing(f"app.{name}", call())
            for name, on_handle in handle_walk.items():
                for run_id in b_runs:
                    for tenant in (None, "B"):
                        h = app.handle(run_id, tenant=tenant)
                        await refused_or_nothing(f"handle.{name}", on_handle(h))
            for name, call in models_walk.items():
                await refused_or_nothing(f"models.{name}", call())
            # What A sees of its own: none of B's.
            assert await app.list_runs() == []
            assert await app.list_tasks(status="any") == []
            assert await app.models.usage() == []
            assert await app.models.spent() == 0.0
            mine = await app.stats(since="1h")
            assert (mine.tenant, mine.workflows, mine.models) == ("A", [], [])
            app.slo(workflow="dies", objective="error_rate", target=0.5)
            (slo_of_a,) = await app.check_slos(toml=None)  # B's dead run is not A's
            assert (slo_of_a.status, slo_of_a.samples) == ("no data", 0)
            app.slos.clear()
            assert 'tenant="B"' not in await app.metrics()  # no series of B's
            # The audit log: B's records neither exported nor verified nor signed by A.
            assert public(app.audit) == set(AUDIT_WALK) | set(AUDIT_EXEMPT)
            with pytest.raises(PermissionDenied):
                await app.audit.export(io.StringIO(), tenant="B")
            with pytest.raises(PermissionDenied):  # refused before anything is read
                await app.audit.extract(tenant="B")
            with pytest.raises(PermissionDenied):
                await app.audit.verify()
            with pytest.raises(PermissionDenied):
                await app.audit.checkpoint()
            out = io.StringIO()
            await app.audit.export(out)  # A's own extract: no record of B's in it
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            assert lines[0]["tenant"] == "A"
            assert all(e.get("tenant") in (None, "A") for e in lines[1:])
            assert not any(r in out.getvalue() for r in b_runs)
            streamed = "".join([text async for text in await app.audit.extract()])
            assert streamed.splitlines()[1:] == out.getvalue().splitlines()[1:]  # the same
            # Lineage: B's runs neither shown nor exported, B's model uses not listed.
            assert public(app.lineage) == set(LINEAGE_WALK) | set(LINEAGE_EXEMPT)
            for run_id in b_runs:
                with pytest.raises(RunNotFound):
                    await app.lineage.show(run_id)
                with pytest.raises(PermissionDenied):
                    await app.lineage.show(run_id, tenant="B")
                with pytest.raises(RunNotFound):
                    await app.lineage.openlineage(run_id)
            with pytest.raises(PermissionDenied):
                await app.lineage.runs("m", tenant="B")
            assert await app.lineage.runs("m") == []
            # The AI Act evidence: B's uses neither listed nor cited.
            assert public(app.ai_act) == set(AI_ACT_WALK)
            day = {"since": dt.datetime(2000, 1, 1), "until": dt.datetime(2100, 1, 1)}
            with pytest.raises(PermissionDenied):
                await app.ai_act.export("asks", tenant="B", **day)
            evidence = await app.ai_act.export("asks", **day)
            assert (evidence.header["tenant"], evidence.uses) == ("A", [])
            assert not any(r in evidence.extract + evidence.audit for r in b_runs)

        # B's objects are as they were.
        assert (await app.get_run(waiting.id)).status == "waiting"
        assert (await app.get_run(dead.id)).status == "dead"
        assert (await app.get_run(asking.id)).status == "waiting"
        assert (await app.get_task(b_task.id)).status == "open"
        assert await app.store.load_signals(waiting.id) == []
        assert {r.id for r in await app.list_runs(tenant="B")} == b_runs
        async with app.as_principal(bob):
            assert {r.id for r in await app.list_runs()} == b_runs
            assert [r["calls"] for r in await app.models.usage()] == [1]
            theirs = await app.stats(since="1h")
            assert [(w.workflow, w.runs, w.dead_letter_backlog) for w in theirs.workflows] == [
                ("dies", 1, 1)
            ]
            assert [m.model for m in theirs.models] == ["m"]
            assert await app.models.spent() == 1.5
            seen = await app.metrics()
            assert 'aiosys_runs_created_total{tenant="B",workflow="waits"} 1.0' in seen
            assert 'aiosys_model_cost_total{model="m",tenant="B"} 1.5' in seen
            await app.cancel(waiting.id)
            assert [t.id for t in await app.list_tasks()] == [b_task.id]
            await app.complete_task(b_task.id, "approve")
        assert await app.handle(asking.id).result(timeout=10) == "approve"


async def test_a_principal_starts_in_its_tenant_and_the_run_records_it(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        alice = await principal_for(app, "A", "alice", "runner")
        async with app.as_principal(alice):
            handle = await app.start("waits")
            with pytest.raises(PermissionDenied, match="tenant 'B'"):
                await app.start("waits", tenant="B")
        row = await app.get_run(handle.id)
        assert row.tenant == "A"
        assert json.loads(row.principal or "") == {
            "id": "alice",
            "tenant": "A",
            "kind": "user",
            "roles": ["runner"],
        }
        assert principal_of_run(row) == Principal("alice", "A", roles=frozenset({"runner"}))
        await app.cancel(handle.id)


async def test_a_child_run_inherits_its_parent_principal(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        alice = await principal_for(app, "A", "alice", "operator")
        async with app.as_principal(alice):
            parent = await app.start("parent")
        await wait_for(app, parent.id, "waiting")
        children = [r for r in await app.list_runs(workflow="waits") if r.parent_id == parent.id]
        async with asyncio.timeout(20):
            while not children:
                await asyncio.sleep(0.01)
                runs = await app.list_runs(workflow="waits")
                children = [r for r in runs if r.parent_id == parent.id]
        (child,) = children
        assert child.tenant == "A"
        assert principal_of_run(child) == principal_of_run(await app.get_run(parent.id))
        async with app.as_principal(alice):
            await app.signal(child.id, "go", 7)
            assert await parent.result(timeout=20) == 7


async def test_local_runs_record_no_principal(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        handle = await app.start("waits")
        row = await app.get_run(handle.id)
        assert row.principal is None and principal_of_run(row) is LOCAL
        assert row.tenant == "default"
        await app.cancel(handle.id)


async def test_roles_allow_and_refuse_by_action(store_url: str) -> None:
    app = make_app(store_url)
    async with app:
        viewer = await principal_for(app, "A", "vic", "viewer")
        runner = await principal_for(app, "A", "run", "runner")
        operator = await principal_for(app, "A", "ops", "operator")
        async with app.as_principal(runner):
            handle = await app.start("waits")
            assert (await handle.row()).tenant == "A"
            with pytest.raises(PermissionDenied, match=r"roles: runner.*signal run"):
                await app.signal(handle.id, "go")
            with pytest.raises(PermissionDenied, match="cancel run"):
                await app.cancel(handle.id)
        async with app.as_principal(viewer):
            assert [r.id for r in await app.list_runs()] == [handle.id]
            with pytest.raises(PermissionDenied, match=r"start workflow.*admin, operator, runner"):
                await app.start("waits")
        async with app.as_principal(operator):
            await app.cancel(handle.id)
            with pytest.raises(PermissionDenied, match=r"manage catalog.*local operator"):
                await app.authorize("manage_catalog")


async def test_a_check_sees_the_run_of_a_run_id_action_read_once(store_url: str) -> None:
    app = make_app(store_url)
    seen: list[ClientCall] = []

    async def deny_cancel(call: ClientCall) -> None:
        seen.append(call)
        if call.action == "cancel_run":
            raise PermissionDenied(
                f"no cancelling {call.workflow} in {call.run and call.run.tenant}"
            )

    app.add_check("test", deny_cancel)
    async with app:
        handle = await app.start("waits")
        await wait_for(app, handle.id, "waiting")
        with pytest.raises(PermissionDenied, match="no cancelling waits in default"):
            await app.cancel(handle.id)
        await app.signal(handle.id, "go", 1)
        assert await handle.result(timeout=20) == 1
    actions = [c.action for c in seen]
    assert actions[:4] == ["start_workflow", "cancel_run", "signal_run", "read_run"]
    signal = seen[2]
    assert signal.signal == "go" and signal.input == 1 and signal.run is not None
    assert signal.run.id == handle.id and signal.principal is LOCAL


async def test_local_false_checks_cost_nothing_for_the_local_principal(store_url: str) -> None:
    app = make_app(store_url)
    assert app.checks.names == ["roles"]
    assert not app.checks.wants(LOCAL)
    assert app.checks.wants(Principal("x", "A"))


async def test_revoked_expired_and_unknown_keys_are_refused(store_url: str) -> None:
    app = make_app(store_url)
    await app.open()
    try:
        now = [1_000_000.0]
        keys = ApiKeys(app.store, lambda: SECRET.encode(), clock=lambda: now[0])
        good = await keys.create("A", "alice", roles=["viewer"], expires_in=3600)
        assert (await keys.authenticate(good.key)).tenant == "A"
        revoked = await keys.create("A", "alice", expires_in=None)
        await keys.revoke(revoked.info.id)
        with pytest.raises(AuthenticationFailed, match=f"API key {revoked.info.id} was revoked"):
            await keys.authenticate(revoked.key)
        now[0] += 3600
        with pytest.raises(AuthenticationFailed, match=f"API key {good.info.id} has expired"):
            await keys.authenticate(good.key)
        unknown = "aiosys_0123456789abcdef_" + "x" * 43
        with pytest.raises(AuthenticationFailed, match="unknown API key 0123456789abcdef"):
            await keys.authenticate(unknown)
        forged = good.key[:-4] + "abcd"
        with pytest.raises(AuthenticationFailed, match="does not verify") as exc:
            await keys.authenticate(forged)
        assert forged not in str(exc.value)
        with pytest.raises(AuthenticationFailed, match="malformed API key"):
            await keys.authenticate("aiosys_nope")
        other_secret = ApiKeys(app.store, lambda: b"t" * 40, clock=lambda: 0.0)
        with pytest.raises(AuthenticationFailed, match="does not verify"):
            await other_secret.authenticate(good.key)
        listed = {k.id: k.status(now[0]) for k in await keys.list("A")}
        assert listed == {good.info.id: "expired", revoked.info.id: "revoked"}
        assert await keys.list("B") == []
    finally:
        await app.close()


async def test_keys_are_stored_only_as_a_keyed_hash(store_url: str) -> None:
    app = make_app(store_url)
    await app.open()
    try:
        new = await app.identity.keys.create("A", "svc", kind="service", roles=["runner"])
        rows = await app.store.fetch("get_api_key", {"id": new.info.id})
        stored = json.dumps(rows, default=str)
        assert new.key not in stored and new.key.split("_", 2)[2] not in stored
        assert len(rows[0]["hash"]) == 64
        principal = await app.identity.authenticate(f"Bearer {new.key}")
        assert (principal.id, principal.kind, principal.roles) == (
            "svc",
            "service",
            frozenset({"runner"}),
        )
    finally:
        await app.close()


async def test_a_principal_with_no_role_gets_no_key(store_url: str) -> None:
    app = make_app(store_url)
    await app.open()
    try:
        with pytest.raises(aiosys.errors.InvalidInput, match="no role in tenant 'A'"):
            await app.identity.keys.create("A", "nobody")
    finally:
        await app.close()


async def test_the_embedded_secret_is_created_0600_beside_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOSYS_KEY_SECRET")
    app = make_app(f"sqlite:///{tmp_path}/s.db")
    await app.open()
    try:
        new = await app.identity.keys.create("A", "alice", roles=["viewer"])
        secret = tmp_path / "key_secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        again = make_app(f"sqlite:///{tmp_path}/s.db")
        await again.open()
        try:
            assert (await again.identity.authenticate(new.key)).id == "alice"
        finally:
            await again.close()
    finally:
        await app.close()


async def test_a_server_store_without_a_configured_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIOSYS_KEY_SECRET")
    from aiosys.errors import ConfigError
    from aiosys.governance.identity_config import key_secret

    with pytest.raises(ConfigError, match="AIOSYS_KEY_SECRET"):
        key_secret("postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("AIOSYS_KEY_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        key_secret("postgresql://postgres@127.0.0.1/x")


async def test_without_identity_the_app_says_so_once_and_the_local_principal_does_all(
    store_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity_mod, "_said_no_identity", False)
    caplog.set_level(logging.INFO, logger="aiosys.governance")
    app = make_app(store_url)
    async with app:
        handle = await app.start("waits", tenant="T")
        await wait_for(app, handle.id, "waiting")
        await app.cancel(handle.id)
        assert (await app.get_run(handle.id)).status == "cancelled"
    again = make_app(store_url)
    await again.open()
    await again.close()
    said = [r for r in caplog.records if "without identity" in r.getMessage()]
    assert len(said) == 1


async def test_a_handle_reads_its_runs_end_though_its_start_row_is_stale(store_url: str) -> None:
    """A handle's ``result`` is checked against the row its start returned (not read again
    for the check), but the run's status is read fresh: a run that another worker ended
    before ``result`` is asked returns its result at once, as the principal that started
    it; another tenant's principal is refused (the handle names the run's tenant)."""
    starter = make_app(store_url)
    alice = Principal(id="alice", tenant="acme", roles={"operator"})
    await starter.open()  # no worker here: another process's worker executes the run
    try:
        async with starter.as_principal(alice):
            handle = await starter.start("waits")
        assert handle._started is not None and handle._started[1].status == "pending"
        async with make_app(store_url):  # a worker
            other = await wait_for(starter, handle.id, "waiting")
            assert other.status == "waiting"
            await starter.signal(handle.id, "go", 7)  # the local operator
            await wait_for(starter, handle.id, "succeeded")
        async with starter.as_principal(alice):
            assert await handle.result(timeout=20) == 7
        bob = Principal(id="bob", tenant="globex", roles={"operator"})
        async with starter.as_principal(bob):
            with pytest.raises(PermissionDenied, match="acts in tenant 'globex' only"):
                await handle.result(timeout=20)
    finally:
        await starter.close()
