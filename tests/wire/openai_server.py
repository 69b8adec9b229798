"""A local server speaking OpenAI's wire format: ``POST /v1/chat/completions`` and
``POST /v1/embeddings``, with the real JSON shapes of answers and errors.

Deterministic answers, usage counted by the server (whitespace-separated words):

- chat: ``"echo: <content of the last user message>"``; ``max_tokens`` /
  ``max_completion_tokens`` cut it to that many words with ``finish_reason: "length"``;
  usage has the real API's details: ``prompt_tokens_details.cached_tokens`` (the longest
  prefix of an earlier prompt, once it is ``cache_min_tokens`` long: 1024, as at OpenAI;
  tests lower it) and ``completion_tokens_details.reasoning_tokens`` (``REASONING_TOKENS``
  by the request's ``reasoning_effort``, counted in ``completion_tokens``);
- chat with ``stream: true``: the same answer as server-sent events in the API's chunk format
  (a first chunk with the role, one chunk per word, one with the ``finish_reason``, one with
  the usage when ``stream_options.include_usage`` is set, then ``data: [DONE]``). A test
  that must see the client read chunk 1 before chunk 2 leaves sets ``stream_gate`` (an
  ``asyncio.Event`` of the loop the server runs in: ``serve.serve_here``), awaited after the
  first word; ``cut(after=n)`` drops the connection after ``n`` words (a server that died);
  ``abandoned`` is set when a client went away before the end of a stream;
- embeddings: a unit vector of the request's ``dimensions`` (else ``OpenAIWire.dimensions``
  = 8; with ``honours_dimensions`` False, always that one, as a server that ignores the
  field answers) floats drawn from the SHA-256 of the text (``embedding_of``);
  ``encoding_format: base64`` is answered as the real API does (little-endian float32).

It checks what the real API checks first (``Authorization: Bearer <require_api_key>`` when
set: 401; a body that is not JSON, no ``model``, no ``messages`` / ``input``: 400), then
answers with the next behaviour (tests/wire/control.py: ``next``, ``always``, ``requests``,
``counts``, ``reset``)::

    wire = OpenAIWire()
    with run_server(wire.app) as base_url:       # tests/wire/serve.py
        wire.base_url = base_url                 # wire.endpoint: base_url + "/v1"
        wire.next(rate_limited(retry_after=2))

In tests use the ``openai_server`` fixture (tests/wire/fixtures.py). For benchmarks,
``build_app(fast=True)`` skips the log and the behaviours, and
``python -m tests.wire.openai_server --port 8300 --fast`` serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import struct
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .control import Behaviour, Recorded, WireControl, hold, words

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    409: "conflict",
    422: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to sample from this model.",
    404: "The model does not exist or you do not have access to it.",
    422: "Unprocessable request.",
    429: "Rate limit reached for requests.",
}
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": _ERROR_CODES.get(status),
        }
    }


def embedding_of(text: str, dimensions: int = 8) -> list[float]:
    """The server's deterministic embedding of ``text``: a unit vector."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend(b / 127.5 - 1 for b in digest)
        counter += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def reply_to(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return f"echo: {_text(last.get('content')) if last else ''}"


def _text(content: Any) -> str:
    """A message's text: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


# Reasoning tokens a reasoning model spends per ``reasoning_effort`` (deterministic here).
REASONING_TOKENS = {"minimal": 0, "low": 8, "medium": 16, "high": 32}


class OpenAIWire(WireControl):
    """The app (``.app``) and its control API."""

    cache_min_tokens: int = 1024  # OpenAI caches prompts of 1024 tokens or more

    def __init__(self, *, fast: bool = False, dimensions: int = 8) -> None:
        super().__init__()
        self.fast = fast
        self.dimensions = dimensions
        self.app: FastAPI = FastAPI(title="OpenAI wire format (test server)")
        self.app.post("/v1/chat/completions")(self._chat)
        self.app.post("/v1/embeddings")(self._embeddings)
        # Streams (see the module docstring): awaited after the first word when set; set when
        # a client went away before the end of a stream.
        self.stream_gate: Any = None
        self.abandoned = asyncio.Event()
        # False: ``dimensions`` is ignored, as some copies of the API do (the model's own).
        self.honours_dimensions = True

    def reset(self) -> None:
        super().reset()
        self.stream_gate = None
        self.abandoned = asyncio.Event()
        self.honours_dimensions = True

    @property
    def endpoint(self) -> str:
        """What a model card's ``endpoint`` should be (the SDK's ``base_url``)."""
        return f"{self.base_url}/v1"

    async def _chat(self, request: Request) -> Response:
        body, entry, refused = await self._admit(request)
        if refused is not None:
            return refused
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._refuse(entry, 400, "[] is too short - 'messages'", "messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
            ):
                return self._refuse(
                    entry, 400, f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role"
                )
            if m["role"] == "tool" and "tool_call_id" not in m:
                message = (
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have "
                    "a 'tool_call_id'."
                )
                return self._refuse(entry, 400, message, f"messages[{i}].tool_call_id")

        def answer() -> dict[str, Any]:
            reply = reply_to(messages).split(" ")
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            finish = "stop"
            if isinstance(limit, int) and len(reply) > limit:
                reply, finish = reply[:limit], "length"
            text = " ".join(reply)
            # Prompt caching is automatic: the longest prefix of an earlier prompt (of at
            # least cache_min_tokens, 1024 at OpenAI) is read from the cache, and counted in
            # prompt_tokens too. Reasoning models think first: their reasoning_tokens are
            # part of completion_tokens.
            said = [w for m in messages for w in _text(m.get("content")).split()]
            prompt = len(said)
            cached = 0
            if not self.fast:  # benchmarks: no cache to search
                cached = self.cached_prefix(said)
                self.cache_prompt(said)
            effort = body.get("reasoning_effort")
            reasoning = REASONING_TOKENS.get(effort, 0) if isinstance(effort, str) else 0
            completion = words(text) + reasoning
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": reasoning,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "system_fingerprint": "fp_wire",
            }

        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._respond(request, entry, answer, stream=usage)
        return await self._respond(request, entry, answer)

    async def _embeddings(self, request: Request) -> Response:
        body, entry, refused = await self._admit(request)
        if refused is not None:
            return refused
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._refuse(
                entry, 400, "'$.input' is invalid. Please check the API reference.", "input"
            )
        asked = body.get("dimensions") if self.honours_dimensions else None
        dimensions = asked or self.dimensions
        as_base64 = body.get("encoding_format") == "base64"

        def answer() -> dict[str, Any]:
            data = []
            for i, text in enumerate(texts):
                vector: Any = embedding_of(text, dimensions)
                if as_base64:
                    vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                data.append({"object": "embedding", "index": i, "embedding": vector})
            tokens = sum(words(t) for t in texts)
            return {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }

        return await self._respond(request, entry, answer)

    async def _admit(
        self, request: Request
    ) -> tuple[dict[str, Any], Recorded | None, Response | None]:
        """Parse and log the request; refuse it as the real API would (bad key, bad body)."""
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry = None if self.fast else self.record(request, body)
        if self.require_api_key is not None:
            if request.headers.get("authorization") != f"Bearer {self.require_api_key}":
                return (
                    {},
                    entry,
                    self._refuse(entry, 401, _DEFAULT_MESSAGES[401], mode="unauthorized"),
                )
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            return {}, entry, self._refuse(entry, 400, message)
        if not isinstance(body.get("model"), str):
            return (
                {},
                entry,
                self._refuse(entry, 400, "you must provide a model parameter", "model"),
            )
        return body, entry, None

    def _refuse(
        self,
        entry: Recorded | None,
        status: int,
        message: str,
        param: str | None = None,
        mode: str = "invalid",
    ) -> Response:
        if entry is not None:
            self.answered(entry, mode, status)
        return JSONResponse(error_body(status, message, param), status_code=status)

    async def _respond(
        self, request: Request, entry: Recorded | None, answer: Any, stream: bool | None = None
    ) -> Response:
        """The behaviour's answer; ``stream`` (not None) streams it, with the usage chunk
        when True."""
        if self.fast or entry is None:
            if stream is not None:
                return self._stream(answer(), stream, None)
            return JSONResponse(answer())
        behaviour: Behaviour = self.take()
        self.answered(entry, behaviour.mode, behaviour.status)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}", **dict(behaviour.headers)}
        if behaviour.delay:
            await hold(request, behaviour.delay)
        if stream is not None and behaviour.mode in ("ok", "slow", "cut"):
            cut = behaviour.cut_after if behaviour.mode == "cut" else None
            return self._stream(answer(), stream, cut, headers)
        if behaviour.mode in ("ok", "slow", "cut"):
            return JSONResponse(answer(), headers=headers)
        if behaviour.mode == "malformed":
            return Response(
                b'{"id": "chatcmpl-1", "choices": [{"ind',
                headers=headers,
                media_type="application/json",
            )
        if behaviour.mode == "unexpected":
            return JSONResponse({"status": "ok", "result": None}, headers=headers)
        message = behaviour.message or _DEFAULT_MESSAGES.get(behaviour.status, _SERVER_ERROR)
        return JSONResponse(
            error_body(behaviour.status, message), status_code=behaviour.status, headers=headers
        )

    def _stream(
        self,
        full: dict[str, Any],
        usage: bool,
        cut: int | None,
        headers: dict[str, str] | None = None,
    ) -> StreamingResponse:
        """``full`` (a chat completion) as the API streams it (module docstring)."""
        choice = full["choices"][0]
        base = {k: full[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"
        words = choice["message"]["content"].split(" ")
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n".encode()

        async def events() -> Any:
            done = False
            try:
                yield chunk({"role": "assistant", "content": "", "refusal": None})
                for i, piece in enumerate(pieces):
                    if i == cut:
                        raise ConnectionAbortedError(f"the wire server dies after {cut} chunks")
                    yield chunk({"content": piece})
                    if i == 0 and self.stream_gate is not None:
                        await self.stream_gate.wait()
                yield chunk({}, choice["finish_reason"])
                if usage:
                    tail = {**base, "choices": [], "usage": full["usage"]}
                    yield f"data: {json.dumps(tail)}\n\n".encode()
                yield b"data: [DONE]\n\n"
                done = True
            finally:
                if not done and cut is None:
                    self.abandoned.set()

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def build_app(fast: bool = False) -> FastAPI:
    """The app alone; ``fast`` answers every request at once (no log, no behaviours)."""
    return OpenAIWire(fast=fast).app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--fast", action="store_true", help="answer at once, keep no log")
    args = parser.parse_args()
    uvicorn.run(build_app(args.fast), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
