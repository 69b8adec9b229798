"""Streamed model calls: the answer reaches the caller piece by piece, as the provider sends it.

``app.models.stream(model, messages)`` is ``app.models.call`` whose text arrives in pieces::

    async with app.models.stream("chat-production", "hello") as stream:
        async for text in stream:
            print(text, end="")
    stream.response      # the metered ModelResponse: model, usage, cost, finish_reason

It is the same direct effect through the gate (policy, redaction of the input, budgets, rate
limits, breaker, metering, audit, traces); the one difference is a ``StreamSink`` on the
deployment call, which a streaming provider (``providers.base.StreamingProvider``: the
OpenAI-compatible one) hands each piece of text to as it arrives, and which puts it on the
caller's queue at once. A provider that cannot stream, and an answer from the cache, reach
the caller as one piece when the call ends. Entering the ``async with`` waits for the first
piece (or the end): an error before it (a policy denial, a budget, no model can serve)
raises there, so an HTTP gateway can still answer it with its status.

What holds, whatever the stream meets:

- the router retries or falls back only before the first piece reached the sink: after it,
  the caller holds text from one deployment, and a failure ends the stream with the error
  (``router.py``);
- personal data redacted from the request (``links/redact.py``) is restored in the pieces,
  as they arrive, for a caller allowed to read it, as in a whole answer;
- a stream that started is metered however it ends (``links/metering.py``): the provider's
  reported usage when it finished, else (cut short by an error, or cancelled because the
  caller went away: ``ModelStream.aclose``) the request's tokens and those of the text
  received so far, estimated (``tokens``) and priced by the card, with status ``error`` or
  ``cancelled``; that row settles its hard-budget reservation, which is therefore not
  released (``links/budget.py``). A stream cancelled before its first piece is not metered,
  as any cancelled call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .catalog import ModelCard
from .tokens import count_tokens, estimate_request_tokens
from .types import ModelRequest, ModelResponse, Usage


class StreamSink:
    """Where a streamed call's pieces go (``DeploymentCall.stream``): the caller's queue.

    ``begin`` is called by the last link before each attempt that streams, with the card
    and the request as sent (redacted, capped), so a cut-short stream can be priced."""

    __slots__ = ("_put", "card", "pieces", "request", "restorer")

    def __init__(self, put: Callable[[str], None]) -> None:
        self._put = put
        self.pieces: list[str] = []  # as the model wrote them
        self.card: ModelCard | None = None
        self.request: ModelRequest | None = None
        # Restores pseudonyms in the pieces (governance.redaction.StreamRestorer: ``feed``,
        # ``flush``), set by the redact link for an attempt whose request it redacted.
        self.restorer: Any = None

    @property
    def started(self) -> bool:
        """Some text reached the caller: no retry, no fallback from here on."""
        return bool(self.pieces)

    def begin(self, card: ModelCard, request: ModelRequest) -> None:
        self.card, self.request = card, request

    def emit(self, text: str) -> None:
        """One piece of the answer, to the caller now (empty pieces are dropped)."""
        if not text:
            return
        self.pieces.append(text)
        if self.restorer is not None:
            text = self.restorer.feed(text)
        if text:
            self._put(text)

    def end(self) -> None:
        """The provider's stream ended: what the restorer held back goes out."""
        restorer, self.restorer = self.restorer, None
        if restorer is not None:
            rest = restorer.flush()
            if rest:
                self._put(rest)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def partial(self) -> ModelResponse:
        """What a stream cut short used, estimated: the request's tokens and the text's,
        priced by the card (``started`` streams only: they have a card)."""
        card, request = self.card, self.request
        assert card is not None and request is not None
        text = self.text
        usage = Usage(
            input_tokens=estimate_request_tokens(request), output_tokens=count_tokens(text)
        )
        return ModelResponse(
            model=card.id, version=card.version, output=text, usage=usage, cost=card.cost(usage)
        )


def streamed(call: Any) -> StreamSink | None:
    """The sink of a deployment call whose stream has started (text reached the caller),
    else None."""
    sink = getattr(call, "stream", None)
    return sink if isinstance(sink, StreamSink) and sink.started else None


class _End:
    __slots__ = ()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _End()
Item = str | _End | _Failed


class ModelStream:
    """A streamed call (module docstring): ``async with`` it, then ``async for`` its pieces
    of text; ``response`` once it ended. Leaving the block early cancels the call (it is
    metered as ``cancelled`` when text had arrived)."""

    def __init__(self, run: Callable[[StreamSink], Awaitable[ModelResponse]]) -> None:
        self._run = run
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self.sink = StreamSink(self._queue.put_nowait)
        self.response: ModelResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._head: Item | None = None
        self._over = False

    @property
    def model(self) -> str | None:
        """The id of the card that serves the stream, once known (the first piece)."""
        if self.response is not None:
            return self.response.model
        card = self.sink.card
        return None if card is None or not self.sink.started else card.id

    async def _drive(self) -> None:
        try:
            response = await self._run(self.sink)
        except BaseException as exc:  # handed to the caller, who raises it
            self._queue.put_nowait(_Failed(exc))
            return
        self.response = response
        if not self.sink.started and isinstance(response.output, str):
            # A cache hit, a provider that does not stream: the answer in one piece, as the
            # gate presented it (pseudonyms restored already).
            self.sink.restorer = None
            self.sink.emit(response.output)
        self._queue.put_nowait(_END)

    async def __aenter__(self) -> ModelStream:
        if self._task is not None:
            raise RuntimeError("a model stream is entered once")
        self._task = asyncio.get_running_loop().create_task(self._drive())
        try:
            head = await self._queue.get()
        except BaseException:  # the caller was cancelled while waiting
            await self.aclose()
            raise
        if isinstance(head, _Failed):
            self._over = True
            await self._settle()
            raise head.error
        self._head = head
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._over:
            raise StopAsyncIteration
        if self._task is None:
            raise RuntimeError("enter the model stream (async with) before reading it")
        item = self._head if self._head is not None else await self._queue.get()
        self._head = None
        if isinstance(item, str):
            return item
        self._over = True
        await self._settle()
        if isinstance(item, _Failed):
            raise item.error
        raise StopAsyncIteration

    async def _settle(self) -> None:
        """Wait for the call's task to end; its outcome was handed over already (a caller
        cancelled meanwhile is, as ever, cancelled)."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """End the stream: a call still running is cancelled (the caller went away) and
        waited for, so its usage is metered before this returns."""
        self._over = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        await self._settle()
