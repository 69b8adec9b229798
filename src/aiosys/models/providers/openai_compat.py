"""OpenAI-compatible HTTP models: the official ``openai`` SDK's client, and its headers.

One wire format serves OpenAI itself and the servers that copy it: vLLM, Ollama, the
llama.cpp server, Ray Serve, Triton's OpenAI front end. A card names the server's base URL
(``endpoint``, e.g. ``http://gpu-1:8000/v1``; none means api.openai.com, or the SDK's
``OPENAI_BASE_URL``), the model's name there (``provider_model``) and the environment
variable holding the key (``api_key_env``).

Chat, plain and streamed, is the gateway's hot path: it is sent straight over aiohttp (the
transport the SDK itself runs on here) with the headers of the SDK client for the card (its
auth, organisation, project and client headers), and its failures are translated exactly
as the SDK's are (``sdk_errors``: the same statuses, the same messages). Embeddings go
through the SDK. Nobody retries below the router: the router retries and falls back, and
two retry loops stacked would multiply attempts and hide the 429s the router wants to see.

``stream`` asks for the answer as server-sent events (``stream: true``, with
``stream_options.include_usage`` so the last chunk carries the usage), reads them as they
arrive (``sse_data``) and gives each chunk's ``choices[0].delta.content`` to ``emit`` at
once. A server that sends no usage chunk (some copies of the API ignore ``stream_options``)
has its usage estimated from the request and the text (``tokens``). An error event, a
broken connection, a malformed chunk, an answer that is not an event stream, or one that
ends with neither ``[DONE]`` nor a ``finish_reason`` fail the call as any failure would
(``ProviderUnavailable``), never an empty success.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, NoReturn

import aiohttp
import openai
from openai.resources.embeddings import AsyncEmbeddings

from ...errors import ProviderRejected, ProviderUnavailable
from ...observe.propagation import trace_headers
from ..catalog import ModelCard
from ..tokens import count_tokens, estimate_request_tokens
from ..types import Kind, ModelRequest, ProviderResult, Usage
from ._http_errors import (
    WireStatus,
    install_classifier,
    malformed,
    provider_message,
    sdk_errors,
)
from ._sdk import ClientCache, api_key, request_body, split_params
from .base import Emit

_CHAT_RESERVED = ("model", "messages", "stream", "stream_options", "timeout")
_EMBED_RESERVED = ("model", "input", "encoding_format", "timeout")


def _client(endpoint: str | None, key: str, timeout: float) -> openai.AsyncOpenAI:
    # aiohttp under the SDK's httpx2 client (``openai[aiohttp]``, the SDK's documented
    # DefaultAioHttpClient): its C parser and connection pool in place of httpcore's pure
    # Python one; the SDK's request path, status errors and SSE decoder are unchanged, and
    # aiohttp's errors come back as httpx2's. Measured through the gateway: about 0.6 ms
    # less CPU per call (of ~3).
    return openai.AsyncOpenAI(
        base_url=endpoint,
        api_key=key,
        max_retries=0,
        timeout=timeout,
        http_client=openai.DefaultAioHttpClient(timeout=timeout),
    )


class OpenAIProvider:
    """``chat`` (``/chat/completions``) and ``embed`` (``/embeddings``)."""

    name = "openai"
    kinds: frozenset[Kind] = frozenset({"chat", "embed"})

    def __init__(self) -> None:
        self._clients: ClientCache[_Deployment] = ClientCache(_Deployment)
        install_classifier()

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        key, hint = api_key(card)
        deployment = self._clients.get(card, key)
        endpoint = deployment.wire.base
        if request.kind == "chat":
            return await self._chat(deployment.wire, card, request, endpoint, hint)
        if request.kind == "embed":
            return await self._embed(deployment.sdk, card, request, endpoint, hint)
        raise ProviderRejected(
            f"{card.key}: the openai provider serves chat and embed, not {request.kind}"
        )

    async def _chat(
        self,
        wire: _Wire,
        card: ModelCard,
        request: ModelRequest,
        endpoint: str,
        hint: str,
    ) -> ProviderResult:
        # A plain chat, the gateway's hot path, goes straight over aiohttp (the transport the
        # SDK itself uses here) with the SDK client's own headers (its auth, organisation,
        # project and client headers, built once per client): the SDK's request machinery
        # (options, header merging, its httpx2 shim over aiohttp, the auth-retry wrapper)
        # was half of the gateway's CPU per call and adds nothing to one JSON POST.
        # Measured with bench/server.py against a local instant server: about 0.6 ms less
        # CPU per call. Failures are translated as the SDK's are (``sdk_errors``: the same
        # statuses, the same messages); streams and embeddings keep the SDK's path.
        body, options = _chat_body(card, request)
        with sdk_errors(card, endpoint, hint):
            data = await wire.post_json("/chat/completions", body, options, card.timeout)
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
            usage = _usage(data.get("usage") or {})
            finish_reason = choice.get("finish_reason")
            provider_model = data.get("model")
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise malformed(card, endpoint, f"no choices[0].message ({exc!r})") from exc
        if not isinstance(content, str):
            raise malformed(card, endpoint, "choices[0].message.content is missing")
        return _result(content, usage, finish_reason, provider_model, data)

    async def stream(self, card: ModelCard, request: ModelRequest, emit: Emit) -> ProviderResult:
        """A chat request, streamed (module docstring)."""
        if request.kind != "chat":
            raise ProviderRejected(
                f"{card.key}: the openai provider streams chat, not {request.kind}"
            )
        key, hint = api_key(card)
        wire = self._clients.get(card, key).wire
        endpoint = wire.base
        body, options = _chat_body(card, request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        usage: Any = None
        finish_reason: Any = None
        provider_model: Any = None
        done = False
        # Straight over aiohttp, as a plain chat (``_chat``), the events read by ``sse_data``.
        with sdk_errors(card, endpoint, hint):
            events = wire.events("/chat/completions", body, options, card.timeout)
            async with contextlib.aclosing(events):
                async for data in events:
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(data)
                        if isinstance(chunk, dict) and chunk.get("error"):
                            said = provider_message(chunk, "an error event")
                            raise ProviderUnavailable(
                                f"{card.key} at {endpoint} failed mid-stream: {said}"
                            )
                        choices = chunk.get("choices") or ()
                        usage = chunk.get("usage") or usage
                        provider_model = chunk.get("model") or provider_model
                        for choice in choices:
                            if choice.get("index", 0) != 0:
                                continue
                            text = (choice.get("delta") or {}).get("content")
                            finish_reason = choice.get("finish_reason") or finish_reason
                            if text:
                                if not isinstance(text, str):
                                    raise TypeError("delta.content is not text")
                                parts.append(text)
                                emit(text)
                    except (AttributeError, TypeError, ValueError) as exc:
                        raise malformed(card, endpoint, f"a chunk without choices ({exc})") from exc
        if not done and finish_reason is None:
            # Ended cleanly but unfinished: neither [DONE] nor a finish_reason came.
            raise malformed(card, endpoint, "the stream ended before the answer did")
        output = "".join(parts)
        if isinstance(usage, dict):
            counted = _usage(usage)
        else:  # the server sent no usage: estimated, as for a model that reports none
            counted = Usage.model_construct(
                input_tokens=estimate_request_tokens(request), output_tokens=count_tokens(output)
            )
        return _result(output, counted, finish_reason, provider_model, None)

    async def _embed(
        self,
        client: openai.AsyncOpenAI,
        card: ModelCard,
        request: ModelRequest,
        endpoint: str,
        hint: str,
    ) -> ProviderResult:
        if not request.texts:
            return ProviderResult(output=[], provider_model=card.upstream_model)
        kwargs = split_params(card, request.params, AsyncEmbeddings.create, _EMBED_RESERVED)
        kwargs["extra_headers"] = trace_headers(kwargs.get("extra_headers"))
        with sdk_errors(card, endpoint, hint):
            response: Any = await client.embeddings.create(
                model=card.upstream_model, input=request.texts, timeout=card.timeout, **kwargs
            )
            try:
                rows = sorted(response.data, key=lambda row: row.index)
                vectors = [[float(x) for x in row.embedding] for row in rows]
                usage = response.usage
                input_tokens = usage.prompt_tokens if usage is not None else 0
                provider_model = response.model
            except (AttributeError, TypeError, ValueError) as exc:
                raise malformed(card, endpoint, f"no data[].embedding ({exc})") from exc
        if len(vectors) != len(request.texts):
            raise malformed(
                card, endpoint, f"{len(vectors)} embeddings for {len(request.texts)} texts"
            )
        return ProviderResult(
            output=vectors,
            usage=Usage(input_tokens=input_tokens or 0),
            provider_model=provider_model if isinstance(provider_model, str) else None,
        )

    async def close(self) -> None:
        await self._clients.close()


class _Deployment:
    """What calls one endpoint with one key (on one event loop: ``ClientCache``): the SDK's
    client (embeddings, and the headers) and the wire built from it (chat, plain and
    streamed)."""

    def __init__(self, endpoint: str | None, key: str, timeout: float) -> None:
        self.sdk = _client(endpoint, key, timeout)
        self.wire = _Wire(self.sdk)

    async def close(self) -> None:
        await self.wire.close()
        await self.sdk.close()


class _Wire:
    """One endpoint's aiohttp session and the SDK client's headers, for plain JSON POSTs."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.base = str(client.base_url).rstrip("/")
        headers = {**client.default_headers, **client.auth_headers}
        self.headers = {k: v for k, v in headers.items() if isinstance(v, str)}
        # The SDK's own pool limits (openai.DefaultAioHttpClient: 100 connections).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            read_bufsize=2**20,  # an event's line may be up to 2 MiB (aiohttp's cap: 2x this)
        )

    async def post_json(
        self, path: str, body: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> Any:
        """POST ``body`` as JSON; the answer's JSON. ``WireStatus`` for an error status,
        aiohttp's errors as they are, ``json.JSONDecodeError`` for a body that is not JSON
        (all translated by ``sdk_errors``). ``timeout`` (seconds) bounds the connection and
        each read, as the SDK's does."""
        async with self._post(path, body, options, timeout) as response:
            if response.status >= 400:
                await _raise_status(response)
            return json.loads(await response.read())

    async def events(
        self, path: str, body: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AsyncGenerator[str, None]:
        """POST ``body`` as JSON; the ``data`` of each server-sent event of the answer, as it
        arrives. Errors as ``post_json``'s; an answer that is not an event stream is a
        ``ValueError`` (malformed)."""
        async with self._post(path, body, options, timeout) as response:
            if response.status >= 400:
                await _raise_status(response)
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise ValueError(
                    f"not an event stream: a stream was asked, the answer is {kind or 'untyped'}"
                )
            async for data in sse_data(response.content):
                yield data

    def _post(
        self, path: str, body: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> Any:
        headers = self.headers
        if options.get("headers"):
            headers = {**headers, **options["headers"]}
        return self.session.post(
            self.base + path,
            data=json.dumps(body).encode(),
            headers=headers,
            params=options.get("params"),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
        )

    async def close(self) -> None:
        await self.session.close()


async def _raise_status(response: aiohttp.ClientResponse) -> NoReturn:
    raw = await response.read()
    try:
        error: object = json.loads(raw)
    except ValueError:
        error = raw.decode(errors="replace")
    raise WireStatus(response.status, error, response.headers)


async def sse_data(lines: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The ``data`` of each event of a ``text/event-stream`` read line by line (the WHATWG
    HTML standard, "Parsing an event stream": ``field: value`` lines, one leading space
    dropped from the value, ``data`` lines joined by newlines, a blank line ends an event, a
    line starting with ``:`` is a comment, an event unfinished at the end is dropped).
    Written here because the format is these few rules and the SDK's own decoder
    (``openai._streaming``) is private; ``event``, ``id`` and ``retry`` are not needed."""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)


def _chat_body(card: ModelCard, request: ModelRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body and the SDK request options of a chat request to ``card``."""
    body, options = request_body(card, request.params, _CHAT_RESERVED)
    body["model"] = card.upstream_model
    body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    options["timeout"] = card.timeout
    options["headers"] = trace_headers(options.get("headers"))  # the effect span's
    return body, options


def _result(
    output: str, usage: Usage, finish_reason: Any, provider_model: Any, raw: Any
) -> ProviderResult:
    """A chat result; the server's ``finish_reason`` and ``model`` kept when they are text."""
    return ProviderResult.model_construct(
        output=output,
        usage=usage,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        provider_model=provider_model if isinstance(provider_model, str) else None,
        raw=raw,
    )


def _usage(usage: dict[str, Any]) -> Usage:
    """The chat usage as reported: ``prompt_tokens`` include the cached ones
    (``prompt_tokens_details.cached_tokens``), ``completion_tokens`` the reasoning ones
    (``completion_tokens_details.reasoning_tokens``). Servers that copy the format often
    send no details, or ``null``: zero."""
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage.model_construct(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )
