"""Redaction (issue 12, point 3), on both stores, against a local server speaking OpenAI's
wire format (it answers ``echo: <the last user message>``, so an answer holds what the model
was sent):

- an input with an e-mail address, a phone number, a card number (Luhn-valid; a Luhn-invalid
  one stays), an IBAN and a person's name reaches an external card with none of them, and an
  on-premises card of the same app gets the text as it is;
- the same value gets the same pseudonym in every model call of a run, also after the app
  restarts and the run is replayed from its record;
- a caller the policies allow ``read_data`` gets the values back in the output, another gets
  the pseudonyms;
- the effect keeps the types and counts, and no raw value is anywhere in the store's effects
  (with their spans), audit records, usage rows or cache.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel
from tests.wire.openai_server import OpenAIWire

from aiosys import App, Context
from aiosys.errors import InvalidInput
from aiosys.governance.redaction import Redaction
from aiosys.kernel import Principal
from aiosys.models.contracts import RoutingPlan
from aiosys.models.links.cache import CachePolicy
from aiosys.models.types import Message, ModelRequest
from aiosys.store import open_store
from aiosys.store.base import NewRun

pytestmark = pytest.mark.timeout(120)

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "policies"
NAME, EMAIL, PHONE = "Maria Garcia", "maria.garcia@example.com", "(415) 555-0132"
CARD, IBAN = "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"
NOT_A_CARD = "4111 1111 1111 1112"  # fails the Luhn check: not personal data, sent as it is
TEXT = (
    f"Client {NAME} ({EMAIL}, {PHONE}) paid the retainer with {CARD} from {IBAN}; "
    f"the card {NOT_A_CARD} was declined."
)
VALUES = [NAME, EMAIL, PHONE, CARD, IBAN, "4111111111111111", "4155550132", "GB82WEST"]
REDACTED = (
    "Client <PERSON_1> (<EMAIL_ADDRESS_1>, <PHONE_NUMBER_1>) paid the retainer with "
    f"<CREDIT_CARD_1> from <IBAN_CODE_1>; the card {NOT_A_CARD} was declined."
)
COUNTS = {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "IBAN_CODE": 1, "PERSON": 1, "PHONE_NUMBER": 1}


class In(BaseModel):
    text: str


class Out(BaseModel):
    answer: str


def build(data: In) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=data.text)])


def parse(response: Any) -> dict[str, str]:
    return {"answer": str(response.output)}


def make_app(store_url: str, wire: OpenAIWire, policies: Path | None = None, **kw: Any) -> App:
    """Cards ``cloud`` (external) and ``onprem`` on one server (told apart by the model name
    they send); tasks ``summarize`` (to ``cloud``: its plan lets confidential data go out)
    and ``local`` (to ``onprem``)."""
    app = App(store=store_url, policies_dir=policies or "", **kw)
    common = {"provider": "openai", "endpoint": wire.endpoint}
    app.models.add_card({"id": "cloud", "provider_model": "gpt-cloud", "external": True, **common})
    app.models.add_card({"id": "onprem", "provider_model": "llama-local", **common})
    out_of_house = RoutingPlan(["cloud"], internal_only_for={"restricted"})
    app.models.task("summarize", input=In, output=Out, build=build, parse=parse, plan=out_of_house)
    app.models.task(
        "local", input=In, output=Out, build=build, parse=parse, plan=RoutingPlan(["onprem"])
    )
    return app


def sent_to(wire: OpenAIWire, model: str) -> list[str]:
    """The user messages each request to ``model`` carried, in order."""
    return [
        r.body["messages"][-1]["content"]
        for r in wire.requests
        if r.path.endswith("/chat/completions") and r.body["model"] == model
    ]


def model_metas(effects: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.meta) for e in effects if e.kind == "model"]


def stored_text(store_url: str) -> str:
    """Every value of every row of the tables that keep what effects did (effects with their
    spans, the audit log, usage rows, the model cache, shadow outcomes), as one text."""
    tables = ["effects", "audit_log", "model_usage", "model_cache", "model_shadows"]
    out: list[str] = []
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            for table in tables:
                out += [repr(row) for row in db.execute(f"SELECT * FROM {table}")]
    else:
        with psycopg.connect(store_url, autocommit=True) as db:
            for table in [*tables, "audit_pending"]:
                out += [repr(row) for row in db.execute(f"SELECT * FROM {table}".encode())]
    return "\n".join(out)


def pseudonym_rows(store_url: str) -> list[tuple[Any, ...]]:
    query = "SELECT token, entity, value, tenant FROM pseudonyms ORDER BY token"
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            return list(db.execute(query))
    with psycopg.connect(store_url, autocommit=True) as db:
        return [tuple(r) for r in db.execute(query.encode())]


async def test_personal_data_never_reaches_an_external_model_and_comes_back_in_the_output(
    store_url: str, openai_server: OpenAIWire
) -> None:
    app = make_app(store_url, openai_server, trace_content=True)

    @app.workflow
    async def review(ctx: Context, text: str) -> dict[str, str]:
        first = await ctx.models.run("summarize", {"text": text}, classification="confidential")
        again = f"Follow-up for {NAME}: write to {EMAIL}."
        second = await ctx.models.run("summarize", {"text": again}, classification="confidential")
        return {"first": first.answer, "second": second.answer}

    @app.workflow
    async def in_house(ctx: Context, text: str) -> str:
        local = await ctx.models.run("local", {"text": text}, classification="confidential")
        return str(local.answer)

    async with app:
        run = await app.start("review", {"text": TEXT}, tenant="acme")
        result = await run.result(timeout=60)
        effects = await app.effects(run.id, tenant="acme")
        kept = stored_text(store_url)
        in_house_run = await app.start("in_house", {"text": TEXT}, tenant="acme")
        local = await in_house_run.result(timeout=60)
        local_effects = await app.effects(in_house_run.id, tenant="acme")

    # The external card saw pseudonyms only, the same ones in both calls of the run.
    first, second = sent_to(openai_server, "gpt-cloud")
    assert first == REDACTED
    assert second == "Follow-up for <PERSON_1>: write to <EMAIL_ADDRESS_1>."
    # The caller (the local operator; no policies: every caller may) gets the values back.
    assert result == {
        "first": f"echo: {TEXT}",
        "second": f"echo: Follow-up for {NAME}: write to {EMAIL}.",
    }
    # The effects keep types and counts.
    metas = model_metas(effects)
    assert metas[0]["redaction"] == {
        "entities": COUNTS,
        "mode": "pseudonymize",
        "sent": ["cloud@1"],
        "restore": sorted(COUNTS),
    }
    assert metas[0]["redacted"] == (
        "CREDIT_CARD:1,EMAIL_ADDRESS:1,IBAN_CODE:1,PERSON:1,PHONE_NUMBER:1"
    )
    assert metas[1]["redaction"]["entities"] == {"EMAIL_ADDRESS": 1, "PERSON": 1}
    span = metas[0]["span"]["attributes"]
    assert span["aiosys.redaction.entities"] == [f"{k}={v}" for k, v in sorted(COUNTS.items())]
    assert "<PERSON_1>" in span["gen_ai.input.messages"]  # the content shown is what was sent
    # No raw value anywhere in what the store keeps of the effects (their records, outputs
    # and spans), the audit log, usage rows, the cache; the mapping is kept in the run's
    # pseudonyms, scoped to its tenant.
    assert "<EMAIL_ADDRESS_1>" in kept and "CREDIT_CARD:1" in kept
    for value in VALUES:
        assert value not in kept, value
    assert NOT_A_CARD in kept  # not personal data: it went to the model and is in the record
    assert pseudonym_rows(store_url) == [
        ("<CREDIT_CARD_1>", "CREDIT_CARD", CARD, "acme"),
        ("<EMAIL_ADDRESS_1>", "EMAIL_ADDRESS", EMAIL, "acme"),
        ("<IBAN_CODE_1>", "IBAN_CODE", IBAN, "acme"),
        ("<PERSON_1>", "PERSON", NAME, "acme"),
        ("<PHONE_NUMBER_1>", "PHONE_NUMBER", PHONE, "acme"),
    ]
    # An on-premises card gets the text as it is, and nothing is redacted on its effect.
    assert sent_to(openai_server, "llama-local") == [TEXT]
    assert local == f"echo: {TEXT}"
    assert not any("redaction" in meta for meta in model_metas(local_effects))


async def test_a_caller_the_policies_allow_gets_the_values_and_another_the_pseudonyms(
    store_url: str, openai_server: OpenAIWire, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("schema.cedarschema", "baseline.cedar"):
        shutil.copy(SHIPPED / name, policies / name)
    (policies / "pii.cedar").write_text(
        '@id("pii-restored-for-paralegals")\n'
        'forbid(principal, action == Action::"read_data", resource is Dataset)\n'
        "when { resource has classification &&\n"
        '       resource.classification in Classification::"confidential" }\n'
        'unless { principal.local || principal.roles.contains("paralegal") };\n'
    )
    app = make_app(store_url, openai_server, policies)

    @app.workflow
    async def ask(ctx: Context, text: str) -> str:
        out = await ctx.models.run("summarize", {"text": text}, classification="confidential")
        return str(out.answer)

    alice = Principal(id="alice", tenant="acme", roles={"operator", "paralegal"})
    bob = Principal(id="bob", tenant="acme", roles={"operator"})
    async with app:
        seen: list[Any] = []
        assert app.policy is not None
        app.policy.listen(seen.append)
        async with app.as_principal(alice):
            allowed = await (await app.start("ask", {"text": TEXT})).result(timeout=60)
        async with app.as_principal(bob):
            refused_run = await app.start("ask", {"text": TEXT})
            refused = await refused_run.result(timeout=60)
            [effect] = [e for e in await app.effects(refused_run.id) if e.kind == "model"]
            # Outside a run too (the HTTP gateway's way): the bound principal decides.
            direct = await app.models.run(
                "summarize", {"text": TEXT}, classification="confidential"
            )

    assert allowed == f"echo: {TEXT}"
    assert refused == f"echo: {REDACTED}"
    assert direct.answer == f"echo: {REDACTED}"
    assert json.loads(effect.meta)["redaction"]["restore"] == []
    reads = [(d.principal, d.resource, d.decision) for d in seen if d.action == "read_data"]
    assert ("user:acme/alice", 'Dataset::"pii/PERSON"', "allow") in reads
    assert ("user:acme/bob", 'Dataset::"pii/PERSON"', "deny") in reads
    assert {d.policies for d in seen if d.decision == "deny"} == {("pii-restored-for-paralegals",)}


async def test_pseudonyms_stay_the_same_after_a_restart_and_a_replay(
    store_url: str, openai_server: OpenAIWire, wait_status: Any
) -> None:
    def app_of() -> App:
        app = make_app(store_url, openai_server)

        @app.workflow
        async def letters(ctx: Context) -> list[str]:
            one = f"Dear {NAME}, your reference is {EMAIL}."
            first = await ctx.models.run("summarize", {"text": one}, classification="confidential")
            await ctx.wait_for("go")
            two = f"{NAME} asked Peter Olsen to call {PHONE}."
            second = await ctx.models.run("summarize", {"text": two}, classification="confidential")
            return [first.answer, second.answer]

        return app

    first_app = app_of()
    async with first_app:
        run = await first_app.start("letters", tenant="acme")
        await wait_status(first_app, run.id, "waiting")
    second_app = app_of()
    async with second_app:  # a new process, as far as the run is concerned: replayed
        await second_app.signal(run.id, "go", tenant="acme")
        result = await second_app.handle(run.id, tenant="acme").result(timeout=60)
    first, second = sent_to(openai_server, "gpt-cloud")
    assert first == "Dear <PERSON_1>, your reference is <EMAIL_ADDRESS_1>."
    assert second == "<PERSON_1> asked <PERSON_2> to call <PHONE_NUMBER_1>."
    assert result == [
        f"echo: Dear {NAME}, your reference is {EMAIL}.",
        f"echo: {NAME} asked Peter Olsen to call {PHONE}.",
    ]
    assert len(openai_server.requests) == 2  # the first call was replayed, not sent again


async def test_a_task_card_and_mode_choose_what_is_redacted(
    store_url: str, openai_server: OpenAIWire
) -> None:
    """A card marked ``never`` gets raw text even when external and confidential; a task
    marked ``always`` is redacted on an on-premises card, unclassified; ``mask`` leaves no
    pseudonym to restore; unclassified data to an external card is not redacted (auto)."""
    app = make_app(store_url, openai_server)
    common = {"provider": "openai", "endpoint": openai_server.endpoint}
    app.models.add_card(
        {"id": "trusted", "provider_model": "gpt-dpa", "external": True, "redaction": "never"}
        | common
    )
    plan = RoutingPlan(["trusted"], internal_only_for=set())
    app.models.task("trusted", input=In, output=Out, build=build, parse=parse, plan=plan)
    masked = Redaction(when="always", mode="mask", entities=frozenset({"EMAIL_ADDRESS"}))
    app.models.task(
        "masked",
        input=In,
        output=Out,
        build=build,
        parse=parse,
        plan=RoutingPlan(["onprem"]),
        redaction=masked,
        cache=CachePolicy(ttl=60),
    )
    async with app:
        trusted = await app.models.run("trusted", {"text": TEXT}, classification="confidential")
        mask = await app.models.run("masked", {"text": TEXT})
        again = await app.models.run("masked", {"text": TEXT})  # the cache: the masked request
        public = await app.models.run("summarize", {"text": TEXT}, classification="public")
    assert trusted.answer == f"echo: {TEXT}"
    assert mask.answer == again.answer == f"echo: {TEXT.replace(EMAIL, '<EMAIL_ADDRESS>')}"
    assert sent_to(openai_server, "llama-local") == [TEXT.replace(EMAIL, "<EMAIL_ADDRESS>")]
    assert public.answer == f"echo: {TEXT}"
    assert sent_to(openai_server, "gpt-cloud") == [TEXT]
    assert EMAIL not in stored_text(store_url)  # the cache keeps the masked request's answer


async def test_a_pseudonym_is_kept_only_under_the_runs_current_claim_and_read_in_its_tenant(
    store_url: str,
) -> None:
    """``pseudonym_put`` (a side write of the model effect that used it) writes nothing for
    an execution whose claim was taken over, and keeps the first meaning of a token."""
    store = open_store(store_url)
    await store.open()
    try:
        new = NewRun(uuid.uuid4().hex, "wf", "1", "acme", "default", 0, "{}")
        run, created = await store.create_run(new, owner="w", lease=60.0)
        assert created
        row = {"run_id": run.id, "token": "<PERSON_1>", "tenant": "acme", "entity": "PERSON"}
        row |= {"value": NAME, "now": 1.0}
        assert await store.execute("pseudonym_put", row | {"epoch": run.epoch + 1}) == 0
        assert await store.execute("pseudonym_put", row | {"epoch": run.epoch}) == 1
        other = row | {"value": "Someone Else", "epoch": run.epoch}
        assert await store.execute("pseudonym_put", other) == 0
        mine = await store.fetch("pseudonyms_of_run", {"run_id": run.id, "tenant": "acme"})
        theirs = await store.fetch("pseudonyms_of_run", {"run_id": run.id, "tenant": "globex"})
    finally:
        await store.close()
    assert mine == [{"token": "<PERSON_1>", "entity": "PERSON", "value": NAME}]
    assert theirs == []


async def test_an_unknown_classification_is_refused_before_any_call_without_policies(
    store_url: str, openai_server: OpenAIWire, wait_status: Any
) -> None:
    """Without policies an unknown label was taken silently (and counted as strict by
    redaction); it is the caller's error (``InvalidInput`` naming the labels), in a workflow
    before any effect (the run fails with it) as outside one; nothing is sent."""
    app = make_app(store_url, openai_server)

    @app.workflow
    async def typo(ctx: Context) -> Any:
        return await ctx.models.run("summarize", {"text": TEXT}, classification="confidental")

    async with app:
        run = await app.start("typo")
        row = await wait_status(app, run.id, "failed")
        error = json.loads(row.error or "{}")
        assert error["type"] == "aiosys.errors.InvalidInput", error
        assert "unknown data classification 'confidental'" in error["message"]
        assert "public, internal, confidential, restricted" in error["message"]
        assert [e.kind for e in await app.effects(run.id)] == []
        with pytest.raises(InvalidInput, match="unknown data classification 'secret'"):
            await app.models.call("cloud", TEXT, classification="secret")
    assert openai_server.requests == []
