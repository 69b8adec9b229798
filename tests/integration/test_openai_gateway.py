"""The OpenAI-compatible gateway (``aiosys.api.openai_compat``) driven by the official ``openai``
SDK, unchanged, with an aiosys API key, on both stores, in front of a local server speaking
OpenAI's wire format: chat plain and streamed, embeddings, model listing; usage and cost as
recorded; policy denials, budgets, missing models, bad payloads, bad keys and dead providers
as the SDK's usual exceptions; streams that reach the client as the model writes them and
are metered when the client goes away. LiteLLM, pointed at it as an OpenAI-compatible
endpoint, works too.

The gateway is mounted on a FastAPI app of the test's own with a bearer-key dependency, as
the server mounts it; most tests reach it in process (``httpx`` ASGI transport), those that
time a stream through a real uvicorn in the test's loop (the ASGI transport buffers a body).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path

import httpx2
import numpy as np
import openai
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from tests.wire.control import (
    cut,
    malformed,
    rate_limited,
    rejected,
    server_error,
    slow,
    unexpected,
)
from tests.wire.openai_server import OpenAIWire, embedding_of
from tests.wire.serve import serve_here

from aiosys import App
from aiosys.api import create_api
from aiosys.api._auth import Caller
from aiosys.api.openai_compat import DirectPath, Gateway, mount_openai
from aiosys.errors import AuthenticationFailed, InvalidInput
from aiosys.kernel import Principal
from aiosys.models.contracts import RoutingPlan
from aiosys.models.links.budget import Budget
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.tokens import count_tokens
from aiosys.models.types import ModelRequest

pytestmark = pytest.mark.timeout(60)

POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"
PRICING = {"input_per_1k": 0.5, "output_per_1k": 1.5}


class Anything(BaseModel):
    pass


@pytest.fixture(autouse=True)
def _key_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """API keys of a PostgreSQL store are hashed under a server secret."""
    monkeypatch.setenv("AIOSYS_KEY_SECRET", "s" * 40)


def plain_bearer(app: App):
    """A dependency of one's own for ``mount_openai`` (``Authorization: Bearer <key>`` to the
    key's principal): the gateway then serves every request by FastAPI's full path."""

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            raise AuthenticationFailed("no credential: send Authorization: Bearer <API key>")
        return await app.identity.authenticate(header)

    return principal


@dataclass
class Env:
    app: App
    api: FastAPI
    gateway: Gateway
    key: str
    wire: OpenAIWire

    def client(self, base_url: str | None = None, key: str | None = None) -> openai.AsyncOpenAI:
        """The official SDK against the gateway: in process, or at ``base_url``."""
        http = (
            httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.api))
            if base_url is None
            else httpx2.AsyncClient()
        )
        return openai.AsyncOpenAI(
            base_url=f"{base_url or 'http://gateway'}/v1",
            api_key=key or self.key,
            http_client=http,
            max_retries=0,
        )


def make_app(store_url: str, wire: OpenAIWire) -> App:
    app = App(store=store_url, policies_dir=POLICIES)
    common = {"provider": "openai", "provider_model": "gpt-wire", "endpoint": wire.endpoint}
    app.models.add_card(
        {"id": "chat", "aliases": ["chat-production"], "pricing": PRICING, **common}
    )
    app.models.add_card({"id": "cloud", "external": True, "pricing": PRICING, **common})
    app.models.add_card({"id": "risky", "risk_level": "unacceptable", **common})
    app.models.add_card({"id": "embedder", "kind": "embed", **common})
    app.models.task(  # named as a model, its plan routes the messages as they are
        "answer",
        input=Anything,
        output=Anything,
        build=lambda _: ModelRequest(),
        parse=lambda r: {},
        plan=RoutingPlan(["chat"]),
    )
    return app


@pytest.fixture
async def env(store_url, openai_server):
    app = make_app(store_url, openai_server)
    async with app:
        new = await app.identity.keys.create("acme", "alice", roles=["runner"])
        api = FastAPI()
        gateway = mount_openai(api, app, Caller(app))  # the server's: DirectPath
        yield Env(app, api, gateway, new.key, openai_server)


async def usage_of(app: App, tenant: str = "acme") -> dict[str, dict]:
    return {row["model"]: row for row in await app.models.usage(tenant=tenant)}


# ---- chat, embeddings, models ---------------------------------------------------------


async def test_chat_answers_with_the_models_usage_and_aiosys_cost(env):
    client = env.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="chat-production",  # an alias
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello gateway"}]},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "chat"
    # The server counted 4 prompt words and 3 answer words; aiosys passes its usage on.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    sent = env.wire.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello gateway"},
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["model"]) == (0.2, 50, "gpt-wire")
    cost = float(raw.headers["x-aiosys-cost"])
    assert cost == pytest.approx(4 / 1000 * 0.5 + 3 / 1000 * 1.5)
    assert raw.headers["x-aiosys-currency"] == "USD"
    assert raw.headers["x-aiosys-model"] == "chat@1"
    usage = (await usage_of(env.app))["chat"]  # metered in the caller's tenant
    assert (usage["ok"], usage["input_tokens"], usage["output_tokens"]) == (1, 4, 3)
    assert usage["cost"] == pytest.approx(cost)
    stats = await env.app.stats(tenant="acme")
    [model] = stats.models
    assert (model.model, model.input_tokens, model.output_tokens) == ("chat", 4, 3)
    assert model.cost == pytest.approx(cost)
    assert await env.app.models.usage(tenant="default") == []


async def test_a_task_named_as_the_model_routes_by_its_plan(env):
    completion = await env.client().chat.completions.create(
        model="answer", messages=[{"role": "user", "content": "route me"}]
    )
    assert completion.choices[0].message.content == "echo: route me"
    assert completion.model == "chat"


async def test_a_streamed_chat_ends_with_the_usage_and_the_cost(env):
    stream = await env.client().chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this please"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        3,
        4,
    )
    assert all(c.usage is None for c in chunks[:-1])
    metered = last.model_extra["aiosys"]
    usage = (await usage_of(env.app))["chat"]
    assert (usage["ok"], usage["input_tokens"], usage["output_tokens"]) == (1, 3, 4)
    assert metered["cost"] == pytest.approx(usage["cost"]) and metered["deployment"] == "chat@1"


async def test_the_cost_is_its_exact_decimal_in_the_header_and_the_streams_last_chunk(env):
    # Prices summed in floats gave 0.0070999999999999995 for 3 input tokens at 0.1 and 4
    # output tokens at 1.7 per 1k: the header showed it as it is, the stream's JSON too.
    env.app.models.add_card(
        {"id": "odd", "provider": "openai", "endpoint": env.wire.endpoint,
         "pricing": {"input_per_1k": 0.1, "output_per_1k": 1.7}}
    )  # fmt: skip
    client = env.client()
    messages = [{"role": "user", "content": "stream this please"}]
    raw = await client.chat.completions.with_raw_response.create(model="odd", messages=messages)
    usage = raw.parse().usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    assert repr(3 / 1000 * 0.1 + 4 / 1000 * 1.7) == "0.0070999999999999995"  # the artifact
    assert raw.headers["x-aiosys-cost"] == "0.0071"
    stream = await client.chat.completions.create(
        model="odd", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].model_extra["aiosys"]["cost"] == float(raw.headers["x-aiosys-cost"])
    # A cost too small for plain repr is still a plain decimal in the header.
    env.app.models.add_card(
        {"id": "cheap", "provider": "openai", "endpoint": env.wire.endpoint,
         "pricing": {"input_per_1k": 0.000003, "output_per_1k": 0.0}}
    )  # fmt: skip
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=messages)
    assert raw.headers["x-aiosys-cost"] == "0.000000009"


async def test_embeddings_come_back_as_the_sdk_asks_for_them(env):
    client = env.client()
    texts = ["first text", "the second one"]
    packed = await client.embeddings.create(model="embedder", input=texts)  # base64 default
    plain = await client.embeddings.create(
        model="embedder", input="first text", encoding_format="float"
    )
    for row, text in zip(packed.data, texts, strict=True):
        assert row.embedding == pytest.approx(embedding_of(text), abs=1e-6)
    assert plain.data[0].embedding == pytest.approx(embedding_of("first text"))
    assert packed.usage.prompt_tokens == 5 and packed.model == "embedder"
    # What went over the wire is OpenAI's base64 of little-endian float32.
    raw = await client.embeddings.with_raw_response.create(
        model="embedder", input="x", encoding_format="base64"
    )
    vector = np.frombuffer(base64.b64decode(json.loads(raw.text)["data"][0]["embedding"]), "<f4")
    assert vector.tolist() == pytest.approx(embedding_of("x"), abs=1e-6)
    assert (await usage_of(env.app))["embedder"]["input_tokens"] == 5 + 2 + 1


async def test_embeddings_of_the_dimensions_asked_or_a_bad_request_naming_them(env):
    # `dimensions` reaches an OpenAI-compatible server, whose vectors are that long; a model
    # that gives vectors of another length (a server that ignores the field, an in-process
    # model of fixed size) is a 400 naming `dimensions`, never vectors of another length.
    client = env.client()
    for encoding in ("float", openai.NOT_GIVEN):  # not given: base64, decoded by the SDK
        short = await client.embeddings.create(
            model="embedder", input=["a text", "another"], dimensions=4, encoding_format=encoding
        )
        for row, text in zip(short.data, ["a text", "another"], strict=True):
            assert row.embedding == pytest.approx(embedding_of(text, 4), abs=1e-6)
        assert env.wire.requests[-1].body["dimensions"] == 4
    env.wire.honours_dimensions = False  # answers 8 floats, whatever is asked
    with pytest.raises(openai.BadRequestError) as ignored:
        await client.embeddings.create(model="embedder", input="a text", dimensions=4)
    error = ignored.value.body
    assert error["param"] == "dimensions" and error["type"] == "invalid_request_error"
    assert "vectors of 8 dimensions, not the 4 asked" in error["message"], error
    same = await client.embeddings.create(model="embedder", input="a text", dimensions=8)
    assert len(same.data[0].embedding) == 8  # what it gives is what was asked


async def test_an_in_process_embedder_cannot_give_other_dimensions(store_url, openai_server):
    register_callable("three-d", lambda texts: [[1.0, 0.0, 0.0] for _ in texts])
    app = make_app(store_url, openai_server)
    app.models.add_card({"id": "fixed", "kind": "embed", "provider": "local",
                         "provider_model": "three-d"})  # fmt: skip
    try:
        async with app:
            new = await app.identity.keys.create("acme", "alice", roles=["runner"])
            api = FastAPI()
            mount_openai(api, app, Caller(app))
            client = Env(app, api, Gateway(app), new.key, openai_server).client()
            with pytest.raises(openai.BadRequestError) as refused:
                await client.embeddings.create(model="fixed", input="x", dimensions=2)
            assert refused.value.body["param"] == "dimensions"
            assert "fixed@1" in refused.value.message
            ok = await client.embeddings.create(
                model="fixed", input="x", dimensions=3, encoding_format="float"
            )
            assert ok.data[0].embedding == [1.0, 0.0, 0.0]
    finally:
        unregister_callable("three-d")


async def test_models_lists_cards_aliases_and_tasks(env):
    client = env.client()
    listed = {m.id: m for m in (await client.models.list()).data}
    assert set(listed) == {"chat", "cloud", "risky", "embedder", "chat-production", "answer"}
    assert listed["chat-production"].model_extra["root"] == "chat"
    assert listed["embedder"].model_extra["kind"] == "embed"
    one = await client.models.retrieve("chat-production")
    assert (one.id, one.object) == ("chat-production", "model")
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


# ---- errors the SDK knows -----------------------------------------------------------------


async def test_a_denied_call_is_permission_denied_naming_the_policy(env):
    client = env.client()
    with pytest.raises(openai.PermissionDeniedError) as risky:
        await client.chat.completions.create(
            model="risky", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.PermissionDeniedError) as confidential:
        await client.chat.completions.create(
            model="cloud",
            messages=[{"role": "user", "content": "the merger terms"}],
            stream=True,
            extra_headers={"X-Aiosys-Classification": "confidential"},
        )
    assert "no-unacceptable-risk-models" in risky.value.message
    assert risky.value.body["policies"] == ["no-unacceptable-risk-models"]
    assert risky.value.body["code"] == "policy_denied"
    assert confidential.value.body["policies"] == ["confidential-stays-on-premises"]
    assert env.wire.requests == []  # neither reached a model
    public = await client.chat.completions.create(
        model="cloud",
        messages=[{"role": "user", "content": "a press release"}],
        extra_headers={"X-Aiosys-Classification": "public"},
    )
    assert public.choices[0].message.content == "echo: a press release"


async def test_an_unknown_classification_header_is_a_400_naming_it_and_the_labels(env):
    """A label that is not a data classification is the request's fault (400 naming the
    header and the labels it may be), for chat, streamed chat and embeddings alike; never a
    policy's 403, and nothing reaches a model. The Python API refuses it the same way, with
    or without policies, in a workflow before any effect."""
    client = env.client()
    calls = {
        "chat": lambda h: client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], extra_headers=h
        ),
        "stream": lambda h: client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=h
        ),
        "embed": lambda h: client.embeddings.create(model="embedder", input="hi", extra_headers=h),
    }
    for name, call in calls.items():
        for label in ("secret", "Confidential", "", "x" * 65):
            with pytest.raises(openai.BadRequestError) as bad:
                await call({"X-Aiosys-Classification": label})
            param = bad.value.param or ""
            assert param.endswith("X-Aiosys-Classification"), (name, label, bad.value.body)
            assert "X-Aiosys-Classification" in bad.value.message, (name, label)
            if len(label) <= 64:
                assert "public, internal, confidential, restricted" in bad.value.message
    assert env.wire.requests == []
    ok = await calls["chat"]({"X-Aiosys-Classification": "unclassified"})
    assert ok.choices[0].message.content == "echo: hi"
    with pytest.raises(InvalidInput, match="classification: unknown data classification"):
        await env.app.models.call("chat", "hi", classification="secret")
    with pytest.raises(InvalidInput, match="unknown data classification 'secret'"):
        async with env.app.models.stream("chat", "hi", classification="secret"):
            pass
    with pytest.raises(InvalidInput, match="unknown data classification 'secret'"):
        await env.app.models.run("answer", {}, classification="secret")
    assert len(env.wire.requests) == 1


async def test_an_exhausted_budget_is_a_rate_limit_error_with_the_reason(env):
    env.app.models.budgets.add(Budget("tenant", "acme", limit=0.000001))
    client = env.client()
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], stream=stream
            )
        assert refused.value.code == "insufficient_quota"
        assert "budget of tenant 'acme'" in refused.value.message
        assert refused.value.response.headers["x-should-retry"] == "false"
    assert env.wire.requests == []


async def test_a_missing_model_is_not_found(env):
    with pytest.raises(openai.NotFoundError) as missing:
        await env.client().chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found" and "gpt-9" in missing.value.message
    assert missing.value.body["param"] == "model"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": "chat", "messages": []}, "messages"),
        ({"model": "chat", "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": "chat", "messages": [{"role": "boss", "content": "x"}]}, "messages.0.role"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {
                "model": "chat",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tools",
        ),
        (
            {
                "model": "chat",
                "messages": [{"role": "user", "content": "x"}],
                "extra_headers": {"authorization": "Bearer theirs"},
            },
            "extra_headers",
        ),
        ({"model": "embedder", "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_a_bad_payload_is_a_bad_request_naming_the_field(env, payload, param):
    client = env.client()
    with pytest.raises(openai.BadRequestError) as bad:
        await client.post("/chat/completions", cast_to=object, body=payload)
    assert bad.value.body["param"] == param
    assert bad.value.body["type"] == "invalid_request_error"
    assert env.wire.requests == []


HI = [{"role": "user", "content": "x"}]
#: Every field of the two requests, each with a value of another JSON type than OpenAI's
#: (numeric strings, numbers for booleans, fractions for integers...), and the param named.
WRONG_TYPES = [
    ("chat", {"model": 7}, "model"),
    ("chat", {"messages": "hi"}, "messages"),
    ("chat", {"messages": [{"role": 1, "content": "x"}]}, "messages.0.role"),
    ("chat", {"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ("chat", {"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages.0.name"),
    (
        "chat",
        {"messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]},
        "messages.0.content.0.type",
    ),
    (
        "chat",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 2}]}]},
        "messages.0.content.0.text",
    ),
    ("chat", {"stream": "yes"}, "stream"),
    ("chat", {"stream": "true"}, "stream"),
    ("chat", {"stream": 1}, "stream"),
    ("chat", {"stream_options": "yes"}, "stream_options"),
    (
        "chat",
        {"stream": True, "stream_options": {"include_usage": "true"}},
        "stream_options.include_usage",
    ),
    ("chat", {"n": "1"}, "n"),
    ("chat", {"n": 1.0}, "n"),
    ("chat", {"n": True}, "n"),
    ("chat", {"max_tokens": "50"}, "max_tokens"),
    ("chat", {"max_tokens": 50.5}, "max_tokens"),
    ("chat", {"max_completion_tokens": "50"}, "max_completion_tokens"),
    ("chat", {"temperature": "0.5"}, "temperature"),
    ("chat", {"temperature": True}, "temperature"),
    ("chat", {"top_p": "1"}, "top_p"),
    ("chat", {"presence_penalty": "0"}, "presence_penalty"),
    ("chat", {"frequency_penalty": "0"}, "frequency_penalty"),
    ("chat", {"stop": 5}, "stop"),
    ("chat", {"stop": ["end", 5]}, "stop.1"),
    ("chat", {"seed": "42"}, "seed"),
    ("chat", {"seed": 4.2}, "seed"),
    ("chat", {"user": 5}, "user"),
    ("chat", {"response_format": "json"}, "response_format"),
    ("chat", {"logprobs": "false"}, "logprobs"),
    ("chat", {"top_logprobs": "0"}, "top_logprobs"),
    ("chat", {"logit_bias": {"50256": "-100"}}, "logit_bias.50256"),
    ("chat", {"parallel_tool_calls": 0}, "parallel_tool_calls"),
    ("chat", {"store": "no"}, "store"),
    ("chat", {"metadata": {"team": 7}}, "metadata.team"),
    ("chat", {"reasoning_effort": 1}, "reasoning_effort"),
    ("chat", {"service_tier": True}, "service_tier"),
    ("embed", {"model": ["embedder"]}, "model"),
    ("embed", {"input": 5}, "input"),
    ("embed", {"input": ["a", 5]}, "input.1"),
    ("embed", {"encoding_format": 1}, "encoding_format"),
    ("embed", {"dimensions": "4"}, "dimensions"),
    ("embed", {"dimensions": 4.0}, "dimensions"),
    ("embed", {"dimensions": True}, "dimensions"),
    ("embed", {"user": 5}, "user"),
]


@pytest.mark.parametrize(("path", "fields", "param"), WRONG_TYPES)
async def test_a_field_of_another_json_type_is_a_bad_request_naming_it(env, path, fields, param):
    # pydantic's lax mode took "stream": "yes" as true and "0.5" as 0.5; OpenAI does not.
    base = (
        {"model": "chat", "messages": HI} if path == "chat" else {"model": "embedder", "input": "x"}
    )
    route = "/chat/completions" if path == "chat" else "/embeddings"
    with pytest.raises(openai.BadRequestError) as bad:
        await env.client().post(route, cast_to=object, body=base | fields)
    assert bad.value.body["param"] == param, bad.value.body
    assert bad.value.body["type"] == "invalid_request_error"
    assert bad.value.response.headers["x-should-retry"] == "false"
    assert env.wire.requests == []


NON_FINITE = [
    ("chat", b'"temperature": NaN', "temperature"),
    ("chat", b'"top_p": Infinity', "top_p"),
    ("chat", b'"frequency_penalty": -1e999', "frequency_penalty"),
    ("chat", b'"top_k": NaN', "top_k"),  # an unknown field: the model's param
    ("chat", b'"options": {"weights": [1, -Infinity]}', "options.weights.1"),
    ("embed", b'"scale": 1e999', "scale"),
]


@pytest.mark.parametrize("classified", [False, True], ids=["unclassified", "classified"])
@pytest.mark.parametrize(("path", "field", "param"), NON_FINITE)
async def test_a_number_json_cannot_carry_is_a_bad_request_naming_it(
    env, path, field, param, classified
):
    # Python's and pydantic's JSON parsers take NaN, Infinity and 1e999 (inf); a declared
    # field said only "less than or equal to 2", and an unknown one reached the provider:
    # sent as the non-JSON ``NaN`` (chat), or a 503 blaming the model's server (embeddings).
    base = (
        b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], '
        if path == "chat"
        else b'{"model": "embedder", "input": "x", '
    )
    headers = {"authorization": f"Bearer {env.key}", "content-type": "application/json"}
    if classified:  # served with a label: the same refusal
        headers["x-aiosys-classification"] = "internal"
    route = "/chat/completions" if path == "chat" else "/embeddings"
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        response = await http.post(
            f"http://gateway/v1{route}", content=base + field + b"}", headers=headers
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error"), error
    assert "finite" in error["message"], error
    assert env.wire.requests == []


@pytest.mark.parametrize("classified", [False, True], ids=["direct", "full"])
@pytest.mark.parametrize("stream", [None, False])
async def test_stream_options_without_stream_is_a_bad_request_naming_it(env, stream, classified):
    # It was dropped silently (the gateway's own field): the answer came without the usage
    # chunk it asked for. OpenAI answers a 400 in these words.
    body = {"model": "chat", "messages": HI, "stream_options": {"include_usage": True}}
    if stream is not None:
        body["stream"] = stream
    headers = {"authorization": f"Bearer {env.key}"}
    if classified:  # the full path (FastAPI's parser, then the same model)
        headers["x-aiosys-classification"] = "internal"
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        response = await http.post("http://gateway/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error == {
        "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "type": "invalid_request_error",
        "param": "stream_options",
        "code": None,
    }
    assert env.wire.requests == []
    # null is no stream_options; stop and response_format are taken as they are.
    body = {"model": "chat", "messages": HI, "stream_options": None, "stop": ["zzz"]}
    body["response_format"] = {"type": "text"}
    answer = await env.client().post("/chat/completions", cast_to=object, body=body)
    assert answer["choices"][0]["message"]["content"] == "echo: x"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/chat/completions", "POST"),
        ("GET", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/v1/models/chat", "GET"),
    ],
)
async def test_a_method_the_gateway_path_does_not_take_is_405_in_openais_shape(
    env, method, path, allow
):
    # It was a problem details body (the rest of the server's shape), which the SDKs do not
    # read; OpenAI answers 405 in its own error body.
    headers = {"authorization": f"Bearer {env.key}"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        response = await http.request(method, f"http://gateway{path}", headers=headers)
    assert response.status_code == 405, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["allow"] == allow
    assert response.json() == {
        "error": {
            "message": f"Invalid method for URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


async def test_the_server_answers_a_wrong_method_on_the_gateway_as_openai_else_as_a_problem(env):
    api = create_api(env.app)
    headers = {"authorization": f"Bearer {env.key}"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=api)) as http:
        gateway = await http.get("http://server/v1/chat/completions", headers=headers)
        runs = await http.delete("http://server/v1/runs", headers=headers)
    assert gateway.status_code == 405 and gateway.headers["allow"] == "POST"
    assert gateway.json()["error"]["message"] == "Invalid method for URL (GET /v1/chat/completions)"
    assert runs.status_code == 405 and runs.headers["allow"] == "GET"
    assert runs.headers["content-type"] == "application/problem+json"
    assert runs.json()["title"] == "Method Not Allowed"


async def test_json_types_openai_takes_are_taken(env):
    # An integer where a number is asked (temperature 1), null for an optional field.
    client = env.client()
    body = {"model": "chat", "messages": HI, "temperature": 1, "top_p": 1, "stream": None}
    body |= {"logprobs": False, "store": True, "logit_bias": {"50256": -100}}
    answer = await client.post("/chat/completions", cast_to=object, body=body)
    assert answer["choices"][0]["message"]["content"] == "echo: x"
    sent = env.wire.requests[-1].body
    assert (sent["temperature"], sent["store"], sent["logit_bias"]) == (1, True, {"50256": -100})
    assert "logprobs" not in sent  # false: nothing asked


async def test_a_body_that_is_not_json_is_a_bad_request(env):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        response = await http.post(
            "http://gateway/v1/chat/completions",
            content=b"{not json",
            headers={"authorization": f"Bearer {env.key}", "content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_text_that_is_not_unicode_is_a_bad_request_naming_where(env):
    # A lone surrogate (JSON's "\ud800", valid JSON but no Unicode text) was a 500: the token
    # estimate could not encode it. It is refused where every model request is made.
    chat = {"model": "chat", "messages": [{"role": "user", "content": "a\ud800"}]}
    cases = (
        ("/chat/completions", chat, "messages.0.content"),
        ("/embeddings", {"model": "embedder", "input": ["ok", "\udfff"]}, "input.1"),
        ("/embeddings", {"model": "embedder", "input": "\udfff"}, "input"),
    )
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        for path, payload, where in cases:
            response = await http.post(
                f"http://gateway/v1{path}",
                content=json.dumps(payload).encode(),  # ensure_ascii: the escape as sent
                headers={"authorization": f"Bearer {env.key}", "content-type": "application/json"},
            )
            assert response.status_code == 400, (path, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert f"{where} holds a lone surrogate" in error["message"], error
            assert error["param"] == where, error  # the field as sent (it was null)
    assert env.wire.requests == []
    # The Python API refuses it the same way, before any effect.
    with pytest.raises(InvalidInput, match=r"messages\.0\.content holds a lone surrogate"):
        await env.app.models.call("chat", "x\ud800")


async def test_a_bad_key_is_an_authentication_error(env):
    for key in ("aiosys_0000000000000000_nope", "sk-not-ours"):
        with pytest.raises(openai.AuthenticationError) as refused:
            await env.client(key=key).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        await env.client(key="aiosys_x").models.list()


async def test_a_stream_the_model_breaks_off_ends_with_an_error_event(env):
    env.wire.next(cut(after=2))  # two words, then the model's server dies
    stream = await env.client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "tell me more"}], stream=True
    )
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as broken:
        async for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "echo: tell"
    assert "chat@1" in broken.value.message
    usage = (await usage_of(env.app))["chat"]  # what it sent is paid for
    assert usage["errors"] == 1 and usage["output_tokens"] == count_tokens("echo: tell")


async def test_a_dead_provider_is_service_unavailable(env):
    env.wire.always(server_error(500))
    with pytest.raises(openai.InternalServerError) as dead:
        await env.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "anyone?"}]
        )
    assert dead.value.status_code == 503
    assert "chat@1" in dead.value.message and dead.value.body["type"] == "server_error"


#: Every way the model's server can fail a call, and the model plane's errors it becomes
#: (tests/wire/control.py): ProviderUnavailable (5xx, 429, malformed, a timeout, no server),
#: ProviderRejected (400), DeploymentUnusable (401, 404) routed to NoRouteAvailable.
FAILURES = {  # name: (behaviour, the status the client gets; 200: a stream's error event)
    "server_error": (lambda: server_error(500), 503),
    "rate_limited": (lambda: rate_limited(1), 503),
    "rejected": (lambda: rejected(400, "max_tokens is too large for http://10.1.2.3:8000/v1"), 400),
    "unauthorized": (lambda: rejected(401), 502),
    "missing_model": (lambda: rejected(404), 502),
    "malformed": (malformed, 503),
    "unexpected": (unexpected, 503),
    "slow": (lambda: slow(5), 503),
    "cut": (lambda: cut(after=2), 200),
}


async def failure_said(env: Env, model: str, stream: bool) -> tuple[int, str]:
    """The status and the client-visible message of a call that fails (a stream's error
    event when it fails after its first piece)."""
    body = {"model": model, "messages": [{"role": "user", "content": "a b c"}], "stream": stream}
    headers = {"authorization": f"Bearer {env.key}"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=env.api)) as http:
        r = await http.post("http://gateway/v1/chat/completions", json=body, headers=headers)
    if r.status_code != 200:
        return r.status_code, r.text
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    errors = [e for e in events if "error" in e]
    assert errors, r.text  # every behaviour here fails the call
    return 200, json.dumps(errors[-1])


#: Each failure plain and streamed; a cut is a stream's (plain: an answer). The wire's
#: malformed answers are JSON bodies, not an event stream: a stream fails before its first
#: piece (503), never an empty answer.
CASES = [
    (failure, stream)
    for failure in FAILURES
    for stream in (False, True)
    if not (failure == "cut" and not stream)
]


@pytest.mark.parametrize(("failure", "stream"), CASES)
async def test_no_error_tells_the_client_where_the_model_is_served(env, failure, stream):
    # A provider's error names its endpoint (for the server's log): mid-stream it reached
    # the client in the error event. No answer, status or event, names a URL or a host.
    env.app.models.add_card(
        {"id": "hasty", "provider": "openai", "provider_model": "gpt-wire",
         "endpoint": env.wire.endpoint, "timeout": 0.5}
    )  # fmt: skip
    behaviour, expected = FAILURES[failure]
    env.wire.always(behaviour())
    status, said = await failure_said(env, "hasty", stream)
    assert status == expected, said
    host, port = env.wire.base_url.removeprefix("http://").rsplit(":", 1)
    for leak in (env.wire.base_url, host, f":{port}", "://", "10.1.2.3", "Traceback"):
        assert leak not in said, (failure, leak, said)
    assert "hasty@1" in said  # which deployment failed is the caller's to know


async def test_a_model_server_that_cannot_be_reached_is_not_named_either(env):
    env.app.models.add_card(
        {"id": "gone", "provider": "openai", "provider_model": "gpt-wire",
         "endpoint": "http://127.0.0.1:9/v1"}
    )  # fmt: skip
    for stream in (False, True):
        status, said = await failure_said(env, "gone", stream)
        assert status == 503, said
        for leak in ("127.0.0.1", ":9", "://", "Traceback"):
            assert leak not in said, (leak, said)
        assert "gone@1" in said


# ---- streams over a real connection ---------------------------------------------------------


@pytest.fixture
async def live(store_url):
    """The gateway behind uvicorn and the model's server, both in the test's loop (so the
    server's ``stream_gate`` is an ``asyncio.Event`` the test sets)."""
    wire = OpenAIWire()
    async with serve_here(wire.app) as wire_url:
        wire.base_url = wire_url
        app = make_app(store_url, wire)
        async with app:
            new = await app.identity.keys.create("acme", "alice", roles=["runner"])
            api = FastAPI()
            gateway = mount_openai(api, app, Caller(app))  # the server's: DirectPath
            async with serve_here(api) as base_url:
                yield Env(app, api, gateway, new.key, wire), base_url


async def test_a_streamed_piece_reaches_the_client_before_the_model_writes_the_next(live):
    env, base_url = live
    gate = asyncio.Event()
    env.wire.stream_gate = gate  # the model's server holds word 2 until the gate opens
    seen: list[str] = []
    async with asyncio.timeout(20):
        stream = await env.client(base_url).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "one two"}], stream=True
        )
        async for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text and not seen:
                assert not gate.is_set()
                gate.set()
            if text:
                seen.append(text)
    assert seen == ["echo:", " one", " two"]
    assert chunk.model_extra["aiosys"]["deployment"] == "chat@1"  # the finish chunk's


async def test_a_client_that_leaves_a_stream_has_what_it_got_metered(live):
    env, base_url = live
    env.wire.stream_gate = asyncio.Event()  # never set: the model stalls after word 1
    body = {"model": "chat", "messages": [{"role": "user", "content": "wait"}], "stream": True}
    async with asyncio.timeout(20), httpx2.AsyncClient() as http:
        async with http.stream(
            "POST",
            f"{base_url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {env.key}"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["x-aiosys-model"] == "chat@1"
            async for line in response.aiter_lines():
                if '"content":"echo:"' in line:
                    break  # got the first word: hang up
        await env.wire.abandoned.wait()  # the gateway closed its stream to the model
        await env.gateway.drain()  # and metered the call
    usage = (await usage_of(env.app))["chat"]
    assert (usage["calls"], usage["ok"], usage["errors"]) == (1, 0, 0)  # status cancelled
    assert usage["output_tokens"] == count_tokens("echo:") and usage["cost"] > 0
    assert env.gateway.streaming == 0


@pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's own TypedDicts at import
async def test_litellm_pointed_at_the_gateway_gets_answers(live, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    litellm = pytest.importorskip("litellm", reason="litellm is a bench extra, not installed")
    env, base_url = live
    response = await litellm.acompletion(
        model="openai/chat",
        api_base=f"{base_url}/v1",
        api_key=env.key,
        messages=[{"role": "user", "content": "via litellm"}],
    )
    assert response.choices[0].message.content == "echo: via litellm"
    assert response.usage.prompt_tokens == 2
    streamed = await litellm.acompletion(
        model="openai/chat",
        api_base=f"{base_url}/v1",
        api_key=env.key,
        messages=[{"role": "user", "content": "streamed via litellm"}],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in streamed])
    assert text == "echo: streamed via litellm"


async def test_personal_data_is_redacted_before_it_reaches_the_model_streamed_or_not(
    store_url, openai_server
):
    app = make_app(store_url, openai_server)
    common = {
        "provider": "openai",
        "provider_model": "gpt-wire",
        "endpoint": openai_server.endpoint,
    }
    app.models.add_card({"id": "scrubbed", "redaction": "always", **common})
    async with app:
        new = await app.identity.keys.create("acme", "alice", roles=["runner"])
        api = FastAPI()
        mount_openai(api, app, plain_bearer(app))  # FastAPI's full path
        client = Env(app, api, Gateway(app), new.key, openai_server).client()
        said = [{"role": "user", "content": "write to maria.garcia@example.com"}]
        plain = await client.chat.completions.create(model="scrubbed", messages=said)
        stream = await client.chat.completions.create(model="scrubbed", messages=said, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    sent = [r.body["messages"][0]["content"] for r in openai_server.requests]
    assert sent == ["write to <EMAIL_ADDRESS_1>"] * 2  # the model never saw the address
    # Both answers are restored for a caller the policies allow to read it (same tenant):
    # the stream's as its pieces arrive (tests/unit/test_redaction_rules.py: cut pieces).
    assert plain.choices[0].message.content == "echo: write to maria.garcia@example.com"
    assert streamed == "echo: write to maria.garcia@example.com"


# ---- the direct path (DirectPath, before FastAPI's routing) ---------------------------


class Inner:
    """The ASGI app behind a ``DirectPath``: what reaches it, with the body it reads."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen.append((scope["path"], body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


DIRECT_CASES = [  # (what differs from the common request, served directly?)
    ({}, True),
    ({"path": "/v1/embeddings", "body": b'{"model": "embedder", "input": "x"}'}, True),
    ({"path": "/v1/models"}, False),  # another route
    ({"method": "PUT"}, False),
    ({"root_path": "/behind"}, False),  # mounted under a prefix: the router's business
    ({"classification": b"internal"}, True),  # a label: served with it
    ({"classification": b"secret-ish"}, False),  # no label: the full path's 400 names it
    ({"classification": b"internal", "twice": True}, False),
    ({"content_type": b"text/plain"}, False),
    ({"content_type": None}, False),
    ({"length": False}, False),  # chunked: counted against the cap by FastAPI's limit
    ({"body": b'{"model": "chat", "messages": "x"}'}, False),  # does not validate
    ({"body": b'{"model": "chat", "messages": [{"role": "user", "content": "x"}'}, False),
]


@pytest.mark.parametrize(("change", "direct"), DIRECT_CASES)
async def test_the_direct_path_serves_only_the_common_request_and_hands_on_the_rest_whole(
    env, change, direct
):
    body = change.get("body", b'{"model": "chat", "messages": [{"role": "user", "content": "x"}]}')
    headers = [(b"authorization", f"Bearer {env.key}".encode())]
    if change.get("content_type", b"application/json; charset=utf-8") is not None:
        headers.append((b"content-type", change.get("content_type", b"application/json")))
    if change.get("length", True):
        headers.append((b"content-length", str(len(body)).encode()))
    if "classification" in change:
        headers.append((b"x-aiosys-classification", change["classification"]))
        if change.get("twice"):
            headers.append((b"x-aiosys-classification", b"public"))
    scope = {
        "type": "http",
        "method": change.get("method", "POST"),
        "path": change.get("path", "/v1/chat/completions"),
        "root_path": change.get("root_path", ""),
        "headers": headers,
        "query_string": b"",
    }
    pieces = [body[:7], body[7:]]  # the body in two messages, as a server may give it

    async def receive():
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    inner = Inner()
    caller = Caller(env.app)
    await DirectPath(inner, env.gateway, caller.principal)(scope, receive, send)
    status = sent[0]["status"]
    if direct:
        assert (status, inner.seen) == (200, []), sent
        assert len(env.wire.requests) == 1  # the model was called once, by the direct path
    else:  # handed on, with every byte of the body the client sent
        assert (status, inner.seen) == (299, [(scope["path"], body)])
        assert env.wire.requests == []
