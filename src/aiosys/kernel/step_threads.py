"""Threads of sync steps that have a timeout.

A sync step runs on a thread, and Python cannot kill a thread: an attempt that times out
keeps running after its ``StepTimeout`` is recorded. So:

- a sync step *with* a timeout runs on a thread of its own, not on the event loop's default
  pool that untimed sync steps share, so stuck timed-out attempts never take the threads
  healthy steps need;
- an attempt of an effect (run id, effect number) never starts in this process while an
  earlier attempt of the same effect still runs: it waits for that thread to end, and the
  log says so (another process cannot know; at-least-once already allows a repeat there);
- at most ``ABANDONED_PER_STEP`` timed-out attempts of one step (by name) may still run;
  past that, the step's new attempts fail at once with ``StepTimeout`` (transient, retried
  under the step's policy) until one of them ends. Other steps are not affected.

Abandoned threads are daemon threads: they do not keep the process alive at exit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..errors import StepTimeout

log = logging.getLogger("aiosys.steps")

ABANDONED_PER_STEP = 16

_lock = threading.Lock()
_live: dict[tuple[str, int], StepThread] = {}  # (run id, seq) -> its latest attempt's thread
_abandoned: Counter[str] = Counter()  # step name -> timed-out attempts still running
_pooled = 0  # attempts of untimed sync steps running on the event loop's default pool


def pooled(body: Callable[[], Any]) -> Callable[[], Any]:
    """``body`` counted while it runs on the default pool (``running_on_threads``)."""

    def counted() -> Any:
        global _pooled
        with _lock:
            _pooled += 1
        try:
            return body()
        finally:
            with _lock:
                _pooled -= 1

    return counted


def running_on_threads() -> int:
    """Sync step attempts still running on threads (a worker that stopped cannot end them:
    ``aiosys worker`` exits without waiting for them, their runs already given back)."""
    with _lock:
        return _pooled + sum(1 for t in _live.values() if not t._ended)


Outcome = tuple[bool, Any]  # (True, value) or (False, exception)


def abandoned(name: str) -> int:
    """How many timed-out attempts of step ``name`` still run on their threads."""
    with _lock:
        return _abandoned[name]


class StepThread:
    """One attempt of a sync step on a thread of its own."""

    def __init__(self, key: tuple[str, int], name: str, body: Callable[[], Any]) -> None:
        self.key = key
        self.name = name
        self._body = body
        self._ended = False
        self._abandoned_at: float | None = None
        self._result: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []
        self._thread = threading.Thread(target=self._main, name=f"aiosys-step:{name}", daemon=True)

    def start(self) -> asyncio.Future[Any]:
        """Start the thread; a future of the body's result on the running loop."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        self._result = (loop, result)
        self._thread.start()
        return result

    def abandon(self) -> None:
        """The attempt timed out (or its run was interrupted) while the body still runs."""
        with _lock:
            if not self._ended and self._abandoned_at is None:
                self._abandoned_at = time.monotonic()
                _abandoned[self.name] += 1

    def ended(self) -> asyncio.Future[Any]:
        """A future on the running loop that resolves once the thread has ended."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with _lock:
            if self._ended:
                fut.set_result(None)
            else:
                self._watchers.append((asyncio.get_running_loop(), fut))
        return fut

    def _main(self) -> None:
        outcome: Outcome
        try:
            outcome = (True, self._body())
        except BaseException as exc:  # the body turns BaseExceptions into errors already
            outcome = (False, exc)
        with _lock:
            self._ended = True
            watchers, self._watchers = self._watchers, []
            if _live.get(self.key) is self:
                del _live[self.key]
            abandoned_at = self._abandoned_at
            if abandoned_at is not None:
                _abandoned[self.name] -= 1
        if abandoned_at is not None:
            log.info(
                "step %r (run %s, effect #%d): a timed-out attempt's thread ended %.1fs "
                "after it was abandoned; its outcome is discarded",
                self.name,
                *self.key,
                time.monotonic() - abandoned_at,
            )
        if self._result is not None:
            _deliver(*self._result, outcome)
        for loop, fut in watchers:
            _deliver(loop, fut, (True, None))


def _deliver(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], outcome: Outcome) -> None:
    def settle() -> None:
        if fut.done():
            return
        ok, value = outcome
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # that loop is closed: nobody waits any more
        pass


async def run_with_timeout(
    key: tuple[str, int], name: str, body: Callable[[], Any], timeout: float
) -> Any:
    """Run ``body`` on a thread of its own; ``StepTimeout`` after ``timeout`` seconds, the
    thread left to end on its own (see the module's docstring)."""
    with _lock:
        previous = _live.get(key)
    if previous is not None:
        log.warning(
            "step %r (run %s, effect #%d): waiting for the previous attempt, which timed out "
            "and still runs on its thread (a thread cannot be killed), before the next one",
            name,
            *key,
        )
        await previous.ended()
        log.info("step %r (run %s, effect #%d): previous attempt ended; retrying", name, *key)
    with _lock:
        if _abandoned[name] >= ABANDONED_PER_STEP:
            raise StepTimeout(
                f"step {name!r} was not started: {_abandoned[name]} of its timed-out attempts "
                f"still run on their threads (at most {ABANDONED_PER_STEP}; a thread cannot "
                "be killed); fix what makes it hang or raise its timeout"
            )
        thread = StepThread(key, name, body)
        _live[key] = thread
    result = thread.start()
    try:
        async with asyncio.timeout(timeout) as cm:
            return await result
    except TimeoutError:
        if cm.expired():
            thread.abandon()
            raise StepTimeout(
                f"step {name!r} ran longer than its timeout of {timeout}s (its thread still "
                "runs; the next attempt waits for it to end)"
            ) from None
        raise
    except asyncio.CancelledError:
        thread.abandon()
        raise
