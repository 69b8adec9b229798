"""How a test steers a wire server: behaviours, the queue of next ones, and what it saw.

A ``Behaviour`` says how the server answers one request. Tests build them with the
functions below and hand them to a server (``OpenAIWire`` / ``AnthropicWire``, both
``WireControl``)::

    server.next(rate_limited(retry_after=2), server_error())  # the next two requests
    server.always(slow(5))                                    # every request after the queue
    server.requests[-1].body                                  # the JSON the client sent
    server.counts["rate_limited"]                             # requests answered that way
    server.reset()                                            # back to ok, log emptied

Checks that a real API makes before anything else (the API key when ``require_api_key``
is set, a well-formed body) come first and do not consume a queued behaviour; they count as
``unauthorized`` and ``invalid``.

The state is touched by the test's thread and the server's thread, hence the lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request


@dataclass(frozen=True)
class Behaviour:
    mode: str  # ok, slow, rate_limited, server_error, rejected, malformed, unexpected, cut
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    message: str | None = None
    cut_after: int = 0  # ``cut``: words streamed before the connection drops


def ok() -> Behaviour:
    """A normal answer."""
    return Behaviour("ok")


def slow(seconds: float) -> Behaviour:
    """A normal answer after ``seconds`` (ends early when the client hangs up, e.g. on its
    timeout), to trigger client timeouts."""
    return Behaviour("slow", delay=seconds)


def rate_limited(
    retry_after: float | None = 1, *, ms: float | None = None, http_date: bool = False
) -> Behaviour:
    """HTTP 429 with ``retry-after: <seconds>`` (as an HTTP date with ``http_date``; none with
    ``retry_after=None``) and ``retry-after-ms: <ms>`` when ``ms`` is given."""
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        if http_date:
            when = datetime.now(UTC) + timedelta(seconds=retry_after)
            headers.append(("retry-after", format_datetime(when, usegmt=True)))
        else:
            headers.append(("retry-after", f"{retry_after:g}"))
    if ms is not None:
        headers.append(("retry-after-ms", f"{ms:g}"))
    return Behaviour("rate_limited", status=429, headers=tuple(headers))


def server_error(status: int = 500, message: str | None = None) -> Behaviour:
    """A 5xx in the API's error shape."""
    return Behaviour("server_error", status=status, message=message)


def rejected(status: int = 400, message: str | None = None) -> Behaviour:
    """A 4xx (400, 401, 403, 404, 422, ...) in the API's error shape."""
    return Behaviour("rejected", status=status, message=message)


def cut(after: int = 1) -> Behaviour:
    """A stream (``stream: true``) that sends ``after`` words, then drops the connection
    without ending the body: a server that died mid-answer. Without ``stream``: ok."""
    return Behaviour("cut", cut_after=after)


def malformed() -> Behaviour:
    """HTTP 200, ``content-type: application/json``, and a body that is not JSON."""
    return Behaviour("malformed")


def unexpected() -> Behaviour:
    """HTTP 200 and valid JSON of the wrong shape (no choices, no content)."""
    return Behaviour("unexpected")


@dataclass
class Recorded:
    """One request as the server saw it; ``body`` is the parsed JSON (None if it was not)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    mode: str | None = None  # how it was answered
    status: int | None = None


@dataclass
class WireControl:
    """The control API shared by the wire servers (see the module docstring)."""

    app: Any = field(default=None, repr=False)  # the ASGI app, set by the server class
    require_api_key: str | None = None
    base_url: str = ""  # set once the server runs: http://127.0.0.1:<port>
    requests: list[Recorded] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _queue: deque[Behaviour] = field(default_factory=deque)
    _default: Behaviour = field(default_factory=ok)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Prompt caching, as the providers do it: a prompt whose leading words an earlier prompt
    # had (at least ``cache_min_tokens`` of them) reads those from the cache.
    cache_min_tokens: int = 0
    _prompts: list[list[str]] = field(default_factory=list)

    def cached_prefix(self, prompt: list[str]) -> int:
        """How many leading words of ``prompt`` an earlier prompt cached (0: too few)."""
        with self._lock:
            best = 0
            for seen in self._prompts:
                n = 0
                for a, b in zip(seen, prompt, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
        return best if best >= max(1, self.cache_min_tokens) else 0

    def cache_prompt(self, prompt: list[str]) -> None:
        """Keep ``prompt`` in the prompt cache (later prompts starting with it read it)."""
        with self._lock:
            self._prompts.append(prompt)
            del self._prompts[:-1000]  # the recent ones are enough for a test

    def next(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order."""
        with self._lock:
            self._queue.extend(behaviours)

    def always(self, behaviour: Behaviour) -> None:
        """Answer with ``behaviour`` whenever the queue is empty."""
        with self._lock:
            self._default = behaviour

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._default = ok()
            self.requests.clear()
            self.counts.clear()
            self.require_api_key = None
            self._prompts.clear()
            self.cache_min_tokens = type(self).cache_min_tokens

    def record(self, request: Request, body: Any) -> Recorded:
        entry = Recorded(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(entry)
        return entry

    def answered(self, entry: Recorded, mode: str, status: int) -> None:
        with self._lock:
            entry.mode, entry.status = mode, status
            self.counts[mode] += 1

    def take(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self._default


async def hold(request: Request, seconds: float) -> None:
    """Wait ``seconds``, or until the client hangs up (its timeout fired), whichever first:
    a slow answer must not keep the server busy after nobody waits for it."""

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(hung_up(), seconds)
    except TimeoutError:
        pass


def words(text: str) -> int:
    """The wire servers' token count: whitespace-separated words."""
    return len(text.split())
