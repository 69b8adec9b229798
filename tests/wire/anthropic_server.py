"""A local server speaking Anthropic's Messages API: ``POST /v1/messages``, with the real
JSON shapes of answers and errors (``{"type": "error", "error": {"type", "message"}}``).

Deterministic answers, usage counted by the server (whitespace-separated words of the
system prompt and the messages): the reply is ``"echo: <text of the last user message>"``,
cut to ``max_tokens`` words with ``stop_reason: "max_tokens"``, else ``"end_turn"``. A
request with ``cache_control`` is answered with ``cache_read_input_tokens`` (the prefix an
earlier such prompt had) and ``cache_creation_input_tokens`` (the rest); one with
``thinking`` enabled with a thinking block and ``output_tokens_details.thinking_tokens``.

It checks what the real API checks first: the key, in ``x-api-key`` or (as recent SDKs
send it) ``Authorization: Bearer`` (present; equal to ``require_api_key`` when set: 401),
``anthropic-version`` (400), a JSON body with ``model``, ``max_tokens`` and ``messages``
whose roles are ``user`` / ``assistant`` only (a ``system`` role is refused: system prompts
go in the top-level ``system`` field). Then it answers with the next behaviour
(tests/wire/control.py: ``next``, ``always``, ``requests``, ``counts``, ``reset``).

A card's ``endpoint`` is ``wire.endpoint`` (the base URL: the SDK adds ``/v1/messages``).
In tests use the ``anthropic_server`` fixture (tests/wire/fixtures.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .control import Behaviour, Recorded, WireControl, hold, words

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    529: "Overloaded",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def _text(content: Any) -> str:
    """A message's (or system prompt's) text: a string, or its text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


class AnthropicWire(WireControl):
    """The app (``.app``) and its control API."""

    def __init__(self) -> None:
        super().__init__()
        self.app: FastAPI = FastAPI(title="Anthropic Messages API wire format (test server)")
        self.app.post("/v1/messages")(self._messages)

    @property
    def endpoint(self) -> str:
        return self.base_url

    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry = self.record(request, body)
        key = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization"))
        if not key or (self.require_api_key is not None and key != self.require_api_key):
            return self._error(entry, 401, _DEFAULT_MESSAGES[401], mode="unauthorized")
        if not request.headers.get("anthropic-version"):
            return self._error(entry, 400, "anthropic-version: header is required")
        problem = _invalid(body)
        if problem:
            return self._error(entry, 400, problem)
        assert isinstance(body, dict)

        behaviour: Behaviour = self.take()
        self.answered(entry, behaviour.mode, behaviour.status)
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **dict(behaviour.headers)}
        if behaviour.delay:
            await hold(request, behaviour.delay)
        if behaviour.mode in ("ok", "slow"):
            return JSONResponse(self._answer(body), headers=headers)
        if behaviour.mode == "malformed":
            return Response(
                b'{"id": "msg_1", "content": [{"ty', headers=headers, media_type="application/json"
            )
        if behaviour.mode == "unexpected":
            return JSONResponse({"status": "ok", "result": None}, headers=headers)
        message = behaviour.message or _DEFAULT_MESSAGES.get(
            behaviour.status, "Internal server error"
        )
        return JSONResponse(
            error_body(behaviour.status, message), status_code=behaviour.status, headers=headers
        )

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = _answer(body)
        usage = answer["usage"]
        # Prompt caching when asked (a ``cache_control`` at the top level or on a block): the
        # prompt up to the breakpoint (here: all of it) is read from the cache as far as an
        # earlier prompt had it, and the rest written; input_tokens counts what follows the
        # breakpoint (none).
        if "cache_control" in json.dumps(body):
            prompt = _prompt_words(body)
            read = self.cached_prefix(prompt)
            self.cache_prompt(prompt)
            usage["cache_read_input_tokens"] = read
            usage["cache_creation_input_tokens"] = len(prompt) - read
            usage["input_tokens"] = 0
        # Extended thinking: a thinking block first; its tokens are part of output_tokens.
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            spent = min(THINKING_TOKENS, int(thinking.get("budget_tokens") or 0))
            block = {"type": "thinking", "thinking": " ".join(["hmm"] * spent), "signature": "s"}
            answer["content"].insert(0, block)
            usage["output_tokens"] += spent
            usage["output_tokens_details"] = {"thinking_tokens": spent}
        return answer

    def _error(self, entry: Recorded, status: int, message: str, mode: str = "invalid") -> Response:
        self.answered(entry, mode, status)
        return JSONResponse(error_body(status, message), status_code=status)


def _bearer(value: str | None) -> str | None:
    return value[7:] if value and value.startswith("Bearer ") else None


def _invalid(body: Any) -> str | None:
    """What the real API would say about this body, or None if it is acceptable."""
    if not isinstance(body, dict):
        return "There was an issue with your request body: invalid JSON"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a valid integer greater than 0"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            return (
                f'messages.{i}.role: Unexpected role "{role}". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
    return None


THINKING_TOKENS = 12  # the words a thinking model spends thinking (at most its budget)


def _prompt_words(body: dict[str, Any]) -> list[str]:
    said = _text(body.get("system")).split()
    return said + [w for m in body["messages"] for w in _text(m["content"]).split()]


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    messages = body["messages"]
    last = next((m for m in reversed(messages) if m["role"] == "user"), None)
    reply = f"echo: {_text(last['content']) if last else ''}".split(" ")
    stop = "end_turn"
    if len(reply) > body["max_tokens"]:
        reply, stop = reply[: body["max_tokens"]], "max_tokens"
    text = " ".join(reply)
    prompt = words(_text(body.get("system"))) + sum(words(_text(m["content"])) for m in messages)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt,
            "output_tokens": words(text),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
