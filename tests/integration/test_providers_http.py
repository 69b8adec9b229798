"""The HTTP providers, through the official SDKs, against local servers speaking the real
wire formats (tests/wire/): answers, usage, and every failure translated at the boundary."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
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

from aiosys.errors import ProviderRejected, ProviderUnavailable
from aiosys.models.catalog import ModelCard
from aiosys.models.providers.anthropic_messages import AnthropicProvider
from aiosys.models.providers.openai_compat import OpenAIProvider, sse_data
from aiosys.models.types import Message, ModelRequest


def chat(*messages: tuple[str, str], **params) -> ModelRequest:
    return ModelRequest(
        kind="chat", messages=[Message(role=r, content=c) for r, c in messages], params=params
    )


def openai_card(server, **overrides) -> ModelCard:
    fields = dict(
        id="wire-gpt",
        provider="openai",
        provider_model="gpt-wire",
        endpoint=server.endpoint,
        timeout=5.0,
    )
    return ModelCard(**(fields | overrides))


def anthropic_card(server, **overrides) -> ModelCard:
    fields = dict(
        id="wire-claude",
        provider="anthropic",
        provider_model="claude-wire",
        endpoint=server.endpoint,
        timeout=5.0,
    )
    return ModelCard(**(fields | overrides))


@pytest.fixture
async def openai_provider():
    provider = OpenAIProvider()
    yield provider
    await provider.close()


@pytest.fixture
async def anthropic_provider():
    provider = AnthropicProvider()
    yield provider
    await provider.close()


# --- OpenAI-compatible: answers ---------------------------------------------------------


async def test_chat_returns_the_servers_reply_and_its_usage(openai_server, openai_provider):
    request = chat(("system", "be brief"), ("user", "hello there wire"))
    result = await openai_provider.invoke(openai_card(openai_server), request)

    assert result.output == "echo: hello there wire"
    sent = openai_server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-wire"
    assert sent.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there wire"},
    ]
    assert sent.headers["authorization"] == "Bearer not-needed"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 4)
    usage = result.raw["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (5, 4, 9)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert result.finish_reason == "stop"
    assert result.provider_model == "gpt-wire"


async def test_chat_params_reach_the_server_and_unknown_ones_go_in_the_body(
    openai_server, openai_provider
):
    request = chat(("user", "one two three four"), max_tokens=2, temperature=0.0, top_k=5)
    result = await openai_provider.invoke(openai_card(openai_server), request)

    body = openai_server.requests[-1].body
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (2, 0.0, 5)
    assert result.output == "echo: one"
    assert result.finish_reason == "length"
    assert result.usage.output_tokens == 2


async def test_embeddings_come_back_in_input_order_with_usage(openai_server, openai_provider):
    texts = ["alpha", "beta gamma", "delta epsilon zeta"]
    card = openai_card(openai_server, id="wire-embed", kind="embed", provider_model="embed-wire")
    result = await openai_provider.invoke(card, ModelRequest(kind="embed", texts=texts))

    assert len(result.output) == len(texts)
    for vector, text in zip(result.output, texts, strict=True):
        assert vector == pytest.approx(embedding_of(text), abs=1e-6)  # float32 on the wire
    assert result.usage.input_tokens == 6
    sent = openai_server.requests[-1]
    assert (sent.path, sent.body["model"], sent.body["input"]) == (
        "/v1/embeddings",
        "embed-wire",
        texts,
    )


async def test_the_api_key_comes_from_the_variable_the_card_names(
    openai_server, openai_provider, monkeypatch
):
    openai_server.require_api_key = "sk-right"
    monkeypatch.setenv("WIRE_TEST_KEY", "sk-right")
    card = openai_card(openai_server, api_key_env="WIRE_TEST_KEY")
    assert (await openai_provider.invoke(card, chat(("user", "hi")))).output == "echo: hi"
    assert openai_server.requests[-1].headers["authorization"] == "Bearer sk-right"


# --- OpenAI-compatible: failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (rate_limited(retry_after=7), 7.0),
        (rate_limited(retry_after=7, ms=1500), 1.5),
        (rate_limited(retry_after=None), None),
    ],
    ids=["seconds", "milliseconds", "no-hint"],
)
async def test_429_is_unavailable_with_the_servers_retry_after(
    openai_server, openai_provider, behaviour, expected
):
    openai_server.next(behaviour)
    card = openai_card(openai_server)
    with pytest.raises(ProviderUnavailable, match="rate limited") as caught:
        await openai_provider.invoke(card, chat(("user", "hi")))
    assert caught.value.retry_after == expected
    assert "wire-gpt@1" in str(caught.value) and openai_server.endpoint in str(caught.value)


async def test_429_retry_after_as_an_http_date(openai_server, openai_provider):
    openai_server.next(rate_limited(retry_after=30, http_date=True))
    with pytest.raises(ProviderUnavailable) as caught:
        await openai_provider.invoke(openai_card(openai_server), chat(("user", "hi")))
    # An HTTP date has whole seconds: the hint lands within a second of 30.
    assert 28.5 <= caught.value.retry_after <= 30.5


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_unavailable_and_the_sdk_does_not_retry(
    openai_server, openai_provider, status
):
    openai_server.next(server_error(status))
    with pytest.raises(ProviderUnavailable, match=rf"\(HTTP {status}\): The server had an error"):
        await openai_provider.invoke(openai_card(openai_server), chat(("user", "hi")))
    assert openai_server.counts["server_error"] == 1
    assert len(openai_server.requests) == 1  # max_retries=0: the router retries, not the SDK


async def test_a_server_slower_than_the_cards_timeout_is_unavailable_in_about_that_time(
    openai_server, openai_provider
):
    openai_server.next(slow(30))
    card = openai_card(openai_server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"timed out after 0\.5s"):
        await openai_provider.invoke(card, chat(("user", "hi")))
    assert 0.4 < time.monotonic() - started < 3.0


@pytest.mark.parametrize("behaviour", [malformed(), unexpected()], ids=["not-json", "wrong-shape"])
async def test_a_malformed_answer_is_unavailable(openai_server, openai_provider, behaviour):
    openai_server.next(behaviour)
    with pytest.raises(ProviderUnavailable, match=r"malformed response from http://127\.0\.0\.1"):
        await openai_provider.invoke(openai_card(openai_server), chat(("user", "hi")))


async def test_a_malformed_embeddings_answer_is_unavailable(openai_server, openai_provider):
    openai_server.next(unexpected())
    card = openai_card(openai_server, kind="embed")
    with pytest.raises(ProviderUnavailable, match="malformed"):
        await openai_provider.invoke(card, ModelRequest(kind="embed", texts=["a"]))


async def test_400_is_rejected_with_the_servers_message(openai_server, openai_provider):
    openai_server.next(rejected(400, "This model's maximum context length is 8 tokens."))
    with pytest.raises(ProviderRejected) as caught:
        await openai_provider.invoke(openai_card(openai_server), chat(("user", "hi")))
    assert str(caught.value) == (
        f"wire-gpt@1 at {openai_server.endpoint} rejected the request (HTTP 400): "
        "This model's maximum context length is 8 tokens."
    )


async def test_a_wrong_api_key_is_rejected_naming_the_variable(
    openai_server, openai_provider, monkeypatch
):
    openai_server.require_api_key = "sk-right"
    monkeypatch.setenv("WIRE_TEST_KEY", "sk-wrong")
    card = openai_card(openai_server, api_key_env="WIRE_TEST_KEY")
    with pytest.raises(ProviderRejected, match=r"\(HTTP 401\): Incorrect API key.*\$WIRE_TEST_KEY"):
        await openai_provider.invoke(card, chat(("user", "hi")))
    assert openai_server.counts["unauthorized"] == 1


async def test_the_servers_own_validation_is_rejected(openai_server, openai_provider):
    with pytest.raises(ProviderRejected, match=r"\(HTTP 400\): Missing parameter 'tool_call_id'"):
        await openai_provider.invoke(openai_card(openai_server), chat(("tool", "42")))


async def test_params_the_provider_owns_are_refused_before_sending(openai_server, openai_provider):
    with pytest.raises(ProviderRejected, match="may not set 'model', 'stream'"):
        await openai_provider.invoke(
            openai_card(openai_server), chat(("user", "hi"), stream=True, model="other")
        )
    assert openai_server.requests == []


async def test_a_stream_gives_each_piece_then_the_servers_usage(openai_server, openai_provider):
    pieces: list[str] = []
    result = await openai_provider.stream(
        openai_card(openai_server), chat(("user", "three little words")), pieces.append
    )
    assert pieces == ["echo:", " three", " little", " words"]
    assert result.output == "echo: three little words" and result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (3, 4)
    assert result.provider_model == "gpt-wire"


async def test_a_stream_refused_before_it_starts_is_translated(openai_server, openai_provider):
    openai_server.next(rate_limited(retry_after=2), rejected(400, "Bad temperature."))
    card, pieces = openai_card(openai_server), []
    with pytest.raises(ProviderUnavailable, match="rate limited") as limited:
        await openai_provider.stream(card, chat(("user", "hi")), pieces.append)
    with pytest.raises(ProviderRejected, match=r"HTTP 400\): Bad temperature"):
        await openai_provider.stream(card, chat(("user", "hi")), pieces.append)
    assert limited.value.retry_after == 2 and pieces == []


async def test_a_stream_cut_mid_answer_is_unavailable_after_its_pieces(
    openai_server, openai_provider
):
    openai_server.next(cut(after=1))
    pieces: list[str] = []
    with pytest.raises(ProviderUnavailable, match="wire-gpt@1"):
        await openai_provider.stream(
            openai_card(openai_server), chat(("user", "hi there")), pieces.append
        )
    assert pieces == ["echo:"]


@pytest.mark.parametrize("behaviour", [malformed, unexpected], ids=["not-json", "wrong-shape"])
async def test_a_stream_answered_with_plain_json_is_unavailable_not_empty(
    openai_server, openai_provider, behaviour
):
    # A server that ignores ``stream: true`` and answers one JSON body: no event at all.
    openai_server.next(behaviour())
    pieces: list[str] = []
    with pytest.raises(ProviderUnavailable, match=r"malformed response.*not an event stream"):
        await openai_provider.stream(
            openai_card(openai_server), chat(("user", "hi")), pieces.append
        )
    assert pieces == []


def events_server(body: bytes, content_type: str = "text/event-stream"):
    """A Starlette app answering every chat request with ``body`` as it is."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def answer(request):
        return Response(body, media_type=content_type)

    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def piece(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            event(piece("half")) + event({"error": {"message": "the GPU fell over"}}),
            "failed mid-stream: the GPU fell over",
        ),
        (event(piece("half")), "the stream ended before the answer did"),
        (event(piece("half")) + b"data: {not json\n\n", "a chunk without choices"),
        (event(piece("half")) + event({"choices": "none"}), "a chunk without choices"),
    ],
    ids=["error-event", "ended-unfinished", "chunk-not-json", "chunk-wrong-shape"],
)
async def test_a_stream_that_goes_wrong_after_a_piece_is_unavailable(openai_provider, body, match):
    async with serve_here(events_server(body)) as url:
        card = ModelCard(id="events", provider="openai", endpoint=url + "/v1", timeout=5.0)
        pieces: list[str] = []
        with pytest.raises(ProviderUnavailable, match=match):
            await openai_provider.stream(card, chat(("user", "hi")), pieces.append)
    assert pieces == ["half"]


async def test_a_stream_without_done_but_finished_is_its_answer(openai_provider):
    # Some copies of the API end with a finish_reason and no [DONE]; comments, CRLF line
    # ends and a data line without its space are the format's too.
    body = (
        b": keep-alive\r\n\r\n"
        + b'data:{"choices": [{"index": 0, "delta": {"content": "a"}}]}\r\n\r\n'
        + event(piece(" b", finish="stop"))
        + event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}})
    )
    async with serve_here(events_server(body)) as url:
        card = ModelCard(id="events", provider="openai", endpoint=url + "/v1", timeout=5.0)
        pieces: list[str] = []
        result = await openai_provider.stream(card, chat(("user", "hi")), pieces.append)
    assert (pieces, result.output, result.finish_reason) == (["a", " b"], "a b", "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2, 2)


async def test_sse_data_follows_the_event_stream_format():
    lines = [
        b": a comment\n",
        b"event: message\n",
        b"data: one\n",
        b"data:two\n",  # no space: the value as it is
        b"id: 7\n",
        b"\n",
        b"data:  padded\r\n",  # one space dropped, the next kept
        b"\r\n",
        b"\n",  # a blank line with no data: no event
        b"data: unfinished\n",  # no blank line before the end: dropped
    ]

    async def source():
        for line in lines:
            yield line

    assert [d async for d in sse_data(source())] == ["one\ntwo", " padded"]


async def test_an_unreachable_endpoint_is_unavailable(openai_provider):
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    card = ModelCard(id="gone", provider="openai", endpoint=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(
        ProviderUnavailable, match=f"gone@1 at http://127.0.0.1:{port}/v1 is unreachable"
    ):
        await openai_provider.invoke(card, chat(("user", "hi")))


async def test_a_kind_the_provider_does_not_serve_is_rejected(openai_server, openai_provider):
    card = openai_card(openai_server, kind="ocr")
    with pytest.raises(ProviderRejected, match="serves chat and embed, not ocr"):
        await openai_provider.invoke(card, ModelRequest(kind="ocr", document="a.png"))


async def test_two_deployments_fail_independently(
    openai_server, start_wire_server, openai_provider
):
    fallback = start_wire_server(OpenAIWire)
    openai_server.always(server_error(502))
    primary, secondary = openai_card(openai_server), openai_card(fallback, id="wire-gpt-b")
    with pytest.raises(ProviderUnavailable, match=r"wire-gpt@1 .*\(HTTP 502\)"):
        await openai_provider.invoke(primary, chat(("user", "hi")))
    assert (await openai_provider.invoke(secondary, chat(("user", "hi")))).output == "echo: hi"
    assert (openai_server.counts["server_error"], fallback.counts["ok"]) == (1, 1)


def test_one_provider_serves_calls_from_successive_event_loops(openai_server):
    provider = OpenAIProvider()
    card = openai_card(openai_server)
    for word in ("first", "second"):  # e.g. two asyncio.run() in one script
        result = asyncio.run(provider.invoke(card, chat(("user", word))))
        assert result.output == f"echo: {word}"


# --- Anthropic Messages API -------------------------------------------------------------


async def test_anthropic_sends_system_prompts_in_the_system_field(
    anthropic_server, anthropic_provider
):
    request = chat(
        ("system", "you are terse"),
        ("user", "first question"),
        ("assistant", "ok"),
        ("user", "second question please"),
    )
    result = await anthropic_provider.invoke(anthropic_card(anthropic_server), request)

    sent = anthropic_server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == "you are terse"
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
    assert sent.body["model"] == "claude-wire"
    assert sent.body["max_tokens"] == 1024
    assert "not-needed" in (
        sent.headers.get("x-api-key"),
        sent.headers.get("authorization", "")[7:],
    )
    assert sent.headers["anthropic-version"]
    assert result.output == "echo: second question please"
    # Server's count: 3 (system) + 2 + 1 + 3 words in; 4 words out.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (9, 4)
    assert result.raw["usage"]["input_tokens"] == 9
    assert result.finish_reason == "end_turn"
    assert result.provider_model == "claude-wire"


async def test_anthropic_max_tokens_from_params_cuts_the_reply(
    anthropic_server, anthropic_provider
):
    request = chat(("user", "a b c d"), max_tokens=3, top_k=2)
    result = await anthropic_provider.invoke(anthropic_card(anthropic_server), request)
    assert (result.output, result.finish_reason) == ("echo: a b", "max_tokens")
    assert anthropic_server.requests[-1].body["top_k"] == 2


@pytest.mark.parametrize(
    ("behaviour", "error", "match"),
    [
        (rate_limited(retry_after=4), ProviderUnavailable, "rate limited .*per-minute rate limit"),
        (server_error(529), ProviderUnavailable, r"\(HTTP 529\): Overloaded"),
        (server_error(500), ProviderUnavailable, r"\(HTTP 500\): Internal server error"),
        (malformed(), ProviderUnavailable, "malformed response"),
        (unexpected(), ProviderUnavailable, "malformed response"),
        (
            rejected(400, "prompt is too long"),
            ProviderRejected,
            r"\(HTTP 400\): prompt is too long",
        ),
        (rejected(403), ProviderRejected, r"\(HTTP 403\): Your API key does not have permission"),
    ],
    ids=["429", "529", "500", "not-json", "wrong-shape", "400", "403"],
)
async def test_anthropic_failures_are_translated(
    anthropic_server, anthropic_provider, behaviour, error, match
):
    anthropic_server.next(behaviour)
    with pytest.raises(error, match=match) as caught:
        await anthropic_provider.invoke(anthropic_card(anthropic_server), chat(("user", "hi")))
    assert "wire-claude@1" in str(caught.value)
    if behaviour.status == 429:
        assert caught.value.retry_after == 4.0
    assert len(anthropic_server.requests) == 1


async def test_anthropic_timeout_is_unavailable(anthropic_server, anthropic_provider):
    anthropic_server.next(slow(30))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"timed out after 0\.5s"):
        await anthropic_provider.invoke(
            anthropic_card(anthropic_server, timeout=0.5), chat(("user", "hi"))
        )
    assert 0.4 < time.monotonic() - started < 3.0


async def test_anthropic_wrong_key_is_rejected(anthropic_server, anthropic_provider, monkeypatch):
    anthropic_server.require_api_key = "sk-ant-right"
    monkeypatch.delenv("WIRE_ANTHROPIC_KEY", raising=False)
    card = anthropic_card(anthropic_server, api_key_env="WIRE_ANTHROPIC_KEY")
    with pytest.raises(
        ProviderRejected, match=r"\(HTTP 401\): invalid x-api-key.*which is not set"
    ):
        await anthropic_provider.invoke(card, chat(("user", "hi")))


async def test_anthropic_refuses_tool_messages_before_sending(anthropic_server, anthropic_provider):
    with pytest.raises(ProviderRejected, match="no 'tool' role"):
        await anthropic_provider.invoke(anthropic_card(anthropic_server), chat(("tool", "42")))
    assert anthropic_server.requests == []


# --- every HTTP provider: params JSON cannot carry --------------------------------------


async def test_a_non_finite_param_is_refused_naming_it_before_any_provider_sends_it(
    store_url, openai_server, anthropic_server
):
    # The OpenAI wire wrote a Python caller's NaN as `NaN` (json.dumps), which the server
    # read as a number; every HTTP provider's params are JSON, which has none: refused as bad
    # input (InvalidInput, as the plane refuses text it cannot send), naming the param, before
    # any effect and for every provider, a request passed whole with params added too.
    from aiosys import App
    from aiosys.errors import InvalidInput

    app = App(store=store_url)
    app.models.add_card(openai_card(openai_server, id="gpt").model_dump())
    app.models.add_card(openai_card(openai_server, id="vectors", kind="embed").model_dump())
    app.models.add_card(anthropic_card(anthropic_server, id="claude").model_dump())
    calls = [
        ("gpt", "hi", {"temperature": float("nan")}, "params.temperature is nan"),
        ("claude", "hi", {"top_p": float("inf")}, "params.top_p is inf"),
        ("gpt", "hi", {"extra_body": {"w": [1.0, -float("inf")]}}, "params.extra_body.w.1"),
        ("gpt", chat(("user", "hi"), seed=1), {"temperature": float("nan")}, "params.temperature"),
    ]
    async with app:
        for model, messages, params, where in calls:
            with pytest.raises(InvalidInput, match=where) as refused:
                await app.models.call(model, messages, **params)
            assert "sent as JSON, which has no NaN or infinity" in str(refused.value)
        with pytest.raises(InvalidInput, match=r"params\.dimensions is nan"):
            ModelRequest(kind="embed", texts=["x"], params={"dimensions": float("nan")})
        assert openai_server.requests == [] and anthropic_server.requests == []
        fine = await app.models.call("gpt", "hi", temperature=0.5)
        assert fine.output == "echo: hi" and openai_server.requests[-1].body["temperature"] == 0.5
