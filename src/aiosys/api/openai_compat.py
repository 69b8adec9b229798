"""The OpenAI-compatible gateway: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

The official ``openai`` SDK (and LiteLLM, or anything that speaks the API) pointed at
``<server>/v1`` with an aiosys API key works unchanged. The gateway adds no logic of its own:
each request is one call of the model plane as the caller's principal
(``app.models.call``, ``app.models.stream``), so it goes through routing and fallbacks,
the cache, budgets, rate limits, redaction, policy, audit and traces like any model effect.

- ``model`` names a card (``id`` or ``id@version``), an alias (``chat-production``) or a
  task contract, whose routing plan then serves the messages as they are;
- ``stream: true`` answers with server-sent events in OpenAI's chunk format as the model's
  server sends them (``data: {chat.completion.chunk}`` ... ``data: [DONE]``), the usage in a
  last chunk when ``stream_options.include_usage`` is set. The response starts with the
  first piece of the answer, so an error before it (a denial, a budget, no model) still has
  its status; an error after it is an ``error`` event, which the SDK raises as
  ``APIError``. A client that goes away cancels the call, which is metered as
  ``cancelled`` with what it had received (``aiosys.models.streaming``);
- what aiosys metered comes back beside OpenAI's ``usage``: the ``x-aiosys-cost`` header (a
  plain decimal, ``0.0055``: the exact price of the usage, in the card's currency,
  ``x-aiosys-currency``; 0 for an answer from aiosys's cache) and ``x-aiosys-model`` (the
  deployment that served, ``id@version``), or for a stream an ``aiosys`` member of its last
  chunk (``cost``, ``currency``, ``deployment``, ``cached``);
- the data's classification, which policies and redaction decide on, is the
  ``X-Aiosys-Classification`` header (``confidential``, ...; none: unclassified; a label
  that is not one is a 400 naming the header and the labels);
- errors are OpenAI's (``openai_errors``): a policy denial is 403 naming the policy, an
  exhausted budget 429, a missing model 404, a bad key 401, no model able to serve 502/503,
  a body over the server's cap 413 (``aiosys.api._limits``).

``mount_openai(api, app, principal)`` adds the routes to a FastAPI application; ``principal``
is the FastAPI dependency that authenticates a request and returns its ``Principal`` (the
server's bearer-key dependency). Its ``Gateway`` can ``drain()`` the streams in flight on
shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Path
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..app import App
from ..errors import InvalidInput, ModelNotFound
from ..governance.policy_entities import check_classification
from ..kernel import Principal, bind_principal
from ..models.catalog import ModelCard
from ..models.plane import ModelPlane
from ..models.streaming import ModelStream
from ..models.types import ModelRequest, ModelResponse
from . import openai_schemas as schemas
from .openai_errors import BadParam, OpenAIRoute, classify, error_response, responses

CLASSIFICATION = "X-Aiosys-Classification"
_ERRORS = responses(400, 401, 403, 404, 413, 429, 500, 502, 503)
_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion; with stream true, server-sent events of "
        "chat.completion.chunk objects ending with data: [DONE].",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def classification_header(
    value: str | None = Header(
        None,
        alias=CLASSIFICATION,
        max_length=64,
        description="The data's classification (unclassified, public, internal, "
        "confidential, restricted; none: unclassified): policies and redaction decide on it.",
    ),
) -> str | None:
    """The ``X-Aiosys-Classification`` header's label; another value is a 400 naming the
    header and the labels it may be (never a policy's 403: it is the request's fault)."""
    try:
        return check_classification(value, CLASSIFICATION)
    except InvalidInput as exc:
        raise BadParam(str(exc), CLASSIFICATION) from None


class Gateway:
    """The gateway's routes over one ``App``, and the streams they are serving."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._open: dict[ModelStream, asyncio.Future[None]] = {}

    @property
    def streaming(self) -> int:
        """Streams being served now."""
        return len(self._open)

    async def drain(self) -> None:
        """Wait until the streams being served have ended (each metered and audited)."""
        while self._open:
            await asyncio.wait(list(self._open.values()))

    # ---- routes -------------------------------------------------------------------------

    def router(self, principal: Callable[..., Any]) -> APIRouter:
        """The routes; ``principal`` is the dependency giving the caller's ``Principal``."""
        app = self.app
        r = APIRouter(prefix="/v1", route_class=OpenAIRoute, tags=["OpenAI-compatible"])
        # Defaults, not ``Annotated`` aliases: the signatures are read from this module's
        # globals (postponed annotations), where names local to this method are not.
        caller = Depends(principal)
        classified = Depends(classification_header)

        @r.post(
            "/chat/completions",
            responses={**_STREAM_DOC, **_ERRORS},
            response_model=schemas.ChatCompletionDoc,
            summary="Chat completion (OpenAI-compatible)",
        )
        async def chat_completions(
            body: schemas.ChatCompletionRequest,
            caller: Principal = caller,
            classification: str | None = classified,
        ) -> Response:
            """A chat completion from the model, alias or task ``model`` names, through
            the gate; ``stream`` true answers with server-sent events as it is written."""
            return await self._chat(body, caller, classification)

        @r.post(
            "/embeddings",
            responses=_ERRORS,
            response_model=schemas.EmbeddingListDoc,
            summary="Embeddings (OpenAI-compatible)",
        )
        async def embeddings(
            body: schemas.EmbeddingRequest,
            caller: Principal = caller,
            classification: str | None = classified,
        ) -> Response:
            """Embeddings of ``input`` from the model ``model`` names, through the gate;
            ``encoding_format`` base64 gives little-endian float32, as OpenAI does;
            ``dimensions`` reaches the model, and vectors of another length are a 400."""
            return await self._embed(body, caller, classification)

        @r.get(
            "/models",
            responses=responses(401, 500),
            response_model=schemas.ModelListDoc,
            summary="Models (OpenAI-compatible)",
        )
        async def list_models(caller: Principal = caller) -> Response:
            """Every name ``model`` may take: cards, aliases and task contracts."""
            entries = schemas.model_entries(list(app.models.cards.values()), list(app.models.tasks))
            return JSONResponse({"object": "list", "data": entries})

        @r.get(
            "/models/{model:path}",
            responses=responses(401, 404, 500),
            response_model=schemas.ModelDoc,
            summary="One model (OpenAI-compatible)",
        )
        async def retrieve_model(
            model: str = Path(max_length=schemas.NAME), caller: Principal = caller
        ) -> Response:
            """One of the names ``/v1/models`` lists (or a card's ``id@version``)."""
            plane = app.models
            entries = schemas.model_entries(list(plane.cards.values()), list(plane.tasks))
            for entry in entries:
                if entry["id"] == model:
                    return JSONResponse(entry)
            card = plane.card(model)  # id@version; else ModelNotFound: 404
            return JSONResponse(schemas.model_entries([card], [])[0] | {"id": model})

        return r

    # ---- calls --------------------------------------------------------------------------

    async def _chat(
        self, body: schemas.ChatCompletionRequest, caller: Principal, classification: str | None
    ) -> Response:
        app = self.app
        plane = app.models
        _check_kind(plane, body.model, "chat", "/v1/chat/completions")
        request = _model_request(
            None,
            kind="chat",
            messages=schemas.chat_messages(body),
            params=schemas.chat_params(body),
        )
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        async with app.as_principal(caller):
            if body.stream:
                stream = plane.stream(body.model, request, classification=classification)
                await stream.__aenter__()  # an error before the first piece: its status
                usage = bool(body.stream_options and body.stream_options.include_usage)
                return self._stream(stream, usage, completion_id, created)
            response = await plane.call(body.model, request, classification=classification)
        body_out = schemas.completion(response, completion_id, created)
        return JSONResponse(body_out, headers=self._metered(response))

    async def _embed(
        self, body: schemas.EmbeddingRequest, caller: Principal, classification: str | None
    ) -> Response:
        app = self.app
        plane = app.models
        _check_kind(plane, body.model, "embed", "/v1/embeddings")
        request = _model_request(
            body.input,
            kind="embed",
            texts=schemas.embedding_texts(body),
            params=schemas.embedding_params(body),
        )
        async with app.as_principal(caller):
            response = await plane.call(body.model, request, classification=classification)
        body_out = schemas.embeddings(response, body.encoding_format, body.dimensions)
        return JSONResponse(body_out, headers=self._metered(response))

    # ---- answers ------------------------------------------------------------------------

    def _card(self, response: ModelResponse) -> ModelCard | None:
        try:
            return self.app.models.card(f"{response.model}@{response.version}")
        except ModelNotFound:  # replaced meanwhile
            return None

    def _metered(self, response: ModelResponse) -> dict[str, str]:
        metered = schemas.cost(response, self._card(response))
        return {
            "x-aiosys-cost": decimal_text(metered["cost"]),
            "x-aiosys-currency": metered["currency"],
            "x-aiosys-model": metered["deployment"],
        }

    def _stream(
        self, stream: ModelStream, usage: bool, completion_id: str, created: int
    ) -> StreamingResponse:
        self._open[stream] = asyncio.get_running_loop().create_future()
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        card = stream.sink.card
        if card is not None and stream.sink.started:
            headers["x-aiosys-model"] = card.key
        return EventStream(
            self._events(stream, usage, completion_id, created),
            media_type="text/event-stream",
            headers=headers,
            # Closes the stream if the body was never read (the client left before it).
            background=BackgroundTask(self._finish, stream),
        )

    async def _events(
        self, stream: ModelStream, usage: bool, completion_id: str, created: int
    ) -> AsyncIterator[bytes]:
        """The answer as OpenAI streams it (module docstring)."""
        nulls = {"usage": None} if usage else {}
        try:
            role = schemas.delta({"role": "assistant", "content": ""})
            yield _sse(schemas.chunk(completion_id, created, stream.model, role, **nulls))
            async for text in stream:
                piece = schemas.delta({"content": text})
                yield _sse(schemas.chunk(completion_id, created, stream.model, piece, **nulls))
            response = stream.response
            assert response is not None  # the stream ended: it has one
            metered = schemas.cost(response, self._card(response))
            finish = schemas.delta({}, response.finish_reason or "stop")
            tail = {"usage": None} if usage else {"aiosys": metered}
            yield _sse(schemas.chunk(completion_id, created, response.model, finish, **tail))
            if usage:
                used = schemas.usage(response.usage)
                last = schemas.chunk(
                    completion_id, created, response.model, [], usage=used, aiosys=metered
                )
                yield _sse(last)
            yield b"data: [DONE]\n\n"
        except Exception as exc:  # after the first piece: the error as an event
            _, body, _ = classify(exc)
            yield _sse(body)
        finally:
            await self._finish(stream)

    async def _finish(self, stream: ModelStream) -> None:
        """Close the stream (cancelling the call if it still runs, which meters it) and
        stop counting it; the client may be gone and its task cancelled: shielded."""
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        done = self._open.pop(stream, None)
        if done is not None and not done.done():
            done.set_result(None)


class EventStream(StreamingResponse):
    """A ``StreamingResponse`` whose client leaving cancels the stream, with one asyncio
    task watching for the ``http.disconnect`` in place of Starlette's anyio task group
    (whose cancel scope formats a task's ``repr`` each time: a few percent of a streamed
    call's CPU, measured with py-spy over ``bench/server.py``). A server of ASGI spec 2.4
    tells of a client gone by raising from ``send``: Starlette's way is kept there."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = scope.get("asgi", {}).get("spec_version", "2.0")
        if scope["type"] != "http" or tuple(map(int, spec.split("."))) >= (2, 4):
            await super().__call__(scope, receive, send)
            return
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            streaming.cancel()  # the stream stops at the await it is in

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            # watch() runs only while the stream awaits: a cancel it made lands in there.
            if not left:
                raise
            streaming.uncancel()
        finally:
            watcher.cancel()
        if self.background is not None:
            await self.background()


def mount_openai(
    api: FastAPI, app: App, principal: Callable[..., Any], *, prefix: str = ""
) -> Gateway:
    """Add the gateway's routes (``/v1/chat/completions``, ``/v1/embeddings``,
    ``/v1/models``, ``/v1/models/{model}``, under ``prefix``) to ``api``, serving ``app``;
    ``principal`` is the dependency that authenticates a request and returns its
    ``Principal`` (an ``AuthenticationFailed`` it raises is answered 401). When it is the
    server's ``Caller`` (it has ``principal(authorization)``), the common request is served
    by a ``DirectPath`` middleware before FastAPI's routing, with the same answers."""
    gateway = Gateway(app)
    api.include_router(gateway.router(principal), prefix=prefix)
    authenticate = getattr(principal, "principal", None)
    if authenticate is not None:
        api.add_middleware(DirectPath, gateway=gateway, authenticate=authenticate, prefix=prefix)
    return gateway


class DirectPath:
    """ASGI, around FastAPI's middleware and routing: the gateway's common request served at
    once. A ``POST`` to ``/v1/chat/completions`` or ``/v1/embeddings`` with a declared
    ``Content-Length``, a JSON content type, at most one classification header naming a
    label, and a body that validates as the route's model (pydantic's JSON parser, in Rust)
    is answered by the route's own call (``Gateway._chat``, ``_embed``) for the caller
    ``authenticate`` gives (``Caller.principal``); its errors are the routes' own
    (``openai_errors.error_response``). Anything else (another path or method, a chunked
    body, another content type, a body that does not validate, a classification that is no
    label) goes on to ``app`` with the body as it was sent, so each error is found and said
    in one place: the route's full path.

    Why: FastAPI's middleware, routing, dependency solving and two-step body parsing were
    more than a third of the gateway's CPU per call (py-spy over ``bench/server.py``'s
    gateway cell), and the call itself is the same either way. A declared length over the
    server's cap never reaches here (``aiosys.api._limits.DeclaredBodyLimit`` is outside).
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        authenticate: Callable[[str | None], Awaitable[Principal]],
        prefix: str = "",
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.routes: dict[str, tuple[type[BaseModel], _Call]] = {
            f"{prefix}/v1/chat/completions": (schemas.ChatCompletionRequest, gateway._chat),
            f"{prefix}/v1/embeddings": (schemas.EmbeddingRequest, gateway._embed),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.routes.get(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        model, call = route
        authorization = content_type = label = None
        declared, labels = False, 0
        for name, value in scope["headers"]:  # lower-case names (ASGI); the first of each
            if name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"content-type":
                content_type = content_type or value.decode("latin-1")
            elif name == b"content-length":
                declared = True
            elif name == _CLASSIFICATION:
                label, labels = value.decode("latin-1"), labels + 1
        if not declared or labels > 1 or not _json_type(content_type) or not _label(label):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            request = model.model_validate_json(body)
        except ValidationError:  # said by the full path, as it says it
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            caller = await self.authenticate(authorization)
            with bind_principal(caller):
                response = await call(request, caller, label)
        except Exception as exc:  # as OpenAIRoute answers it
            response = error_response(exc)
        await response(scope, receive, send)


_Call = Callable[[Any, Principal, str | None], Awaitable[Response]]
_CLASSIFICATION = CLASSIFICATION.lower().encode()


def _label(value: str | None) -> bool:
    """Whether a classification header's value is served directly: none, or a label."""
    try:
        check_classification(value)
    except InvalidInput:
        return False
    return True


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given again first."""
    given = False

    async def again() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def _json_type(content_type: str | None) -> bool:
    """``application/json`` (parameters allowed), as FastAPI reads a body as JSON."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _model_request(sent_input: object, **fields: Any) -> ModelRequest:
    """The plane's request; text it refuses (a lone surrogate, ``InvalidInput`` naming
    ``messages.0.content`` or ``texts.1``) is a 400 whose ``param`` is the field as sent
    (``messages.0.content``; ``input.1``, or ``input`` for one text), never ``null``."""
    try:
        return ModelRequest(**fields)
    except InvalidInput as exc:
        message = str(exc)
        where, _, rest = message.partition(" ")
        if where.startswith("texts."):
            where = "input" if isinstance(sent_input, str) else "input." + where[6:]
        elif not where.startswith("messages."):
            raise
        raise BadParam(f"{where} {rest}", where) from None


def _check_kind(plane: ModelPlane, model: str, kind: str, path: str) -> None:
    """A card (or alias) of another kind is the caller's mistake: 400 naming it."""
    try:
        card = plane.card(model)
    except ModelNotFound:  # a task's name, or nothing (404 from the call)
        return
    if card.kind != kind:
        raise BadParam(
            f"model {model!r} is of kind {card.kind}: {path} serves {kind} models", "model"
        )


def decimal_text(cost: float) -> str:
    """A cost as a plain decimal (``0.0055``, ``0.00001``): the float's shortest form, which
    is the exact price (``ModelCard.cost`` rounds it once from decimal), never in exponent
    notation; the same value as the JSON number of a stream's ``aiosys.cost``."""
    return format(Decimal(repr(float(cost))), "f")


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


__all__ = ["CLASSIFICATION", "DirectPath", "EventStream", "Gateway", "mount_openai"]
