"""The effect log: replay returns recorded outcomes; new outcomes are recorded durably.

It is the outermost interceptor, so an effect whose outcome is recorded never reaches
policy, cache, retry or the executor again.

Durability rule: no effect starts, and no run ends, before every earlier outcome of the run
is committed. A successful outcome is queued for the group commit and handed back to the
workflow at once; the workflow's next effect (or its end) waits for that commit. So a
crash can only repeat the effect whose record was not yet committed (the one in flight),
while a run's last record and its end share one transaction.

An executor or interceptor may add writes of its own to the record's transaction
(``EffectCall.also_write``: the model plane commits a call's usage rows this way) and is
told when that transaction has ended.

What the workflow receives is the decoded record, or for a kind with a presenter
(``Gate.present``) the presenter's view of it (given the record's ``meta``), on the first
execution and on replay alike; the record itself is never changed by it.

A step being retried has a ``pending`` record too (``record_retry``: the attempts that
failed, the last error, when the next attempt is due), and so has an effect an interceptor
parks before it runs (``record_pending``: the human approval a policy asks for). Unlike a
parked wait, such a record is not an outcome: on replay the effect goes through the whole
chain again, and the interceptor that wrote it goes on from what it recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ...errors import NonDeterminismError
from ...store.base import EffectRow, RecordEffect, now
from .. import serde
from ..control import Parked
from ..gate import EffectCall, Next, Presenter
from ..retry import is_transient


class EffectLog:
    """The interceptor. ``presenters``: the gate's (``Gate.present``), by effect kind: what
    the workflow (or a direct effect's caller) receives is the presenter's view of the
    record, on the first execution as on replay."""

    def __init__(self, presenters: dict[str, Presenter] | None = None) -> None:
        self.presenters = {} if presenters is None else presenters

    async def __call__(self, call: EffectCall, next: Next) -> Any:
        present = self.presenters.get(call.kind)
        if call.run_execution is None:  # a direct effect: nothing to replay or record
            out = await next(call)
            return out if present is None else await present(call, out, call.meta.get("record"))
        ex = call.run_execution
        recorded = ex.history.effects.get(call.seq)
        if recorded is not None:
            if recorded.kind != call.kind or recorded.name != call.name:
                raise NonDeterminismError(
                    f"run {ex.run.id} of {ex.run.workflow}@{ex.run.version}: effect #{call.seq} "
                    f"was recorded as {recorded.kind} {recorded.name!r} but the code now calls "
                    f"{call.kind} {call.name!r}; the workflow code changed under a running "
                    "version (register the change as a new version)"
                )
            if recorded.status == "ok":
                value = serde.loads(recorded.output, call.returns)
                if present is None:
                    return value
                return await present(call, value, json.loads(recorded.meta or "null"))
            if recorded.status == "error":
                assert recorded.error is not None
                exc = serde.rebuild_error(recorded.error, ex.app.safe_modules)
                ex.note_failed_effect(exc, call.seq)
                raise exc
            call.meta["pending"] = json.loads(recorded.output or "{}")
        # A parked wait is only checked again by its executor (the interceptors between here
        # and it saw the effect once, when it first ran); a step between retries, or an
        # effect an interceptor parked before it ran, is not.
        waiting = recorded is not None and not _through_chain(call.meta["pending"])
        await ex.flush()
        ex.check_cancelled()
        # The effect's start: its first record's, if it has one (the store keeps that one),
        # so that this copy of the record says what the store does.
        started = now() if recorded is None else recorded.started_at
        call.meta[STARTED] = started
        # A wait (timer, signal, child) raises Parked until it is satisfied: the execution is
        # suspended in place and the wait checked again when the run wakes.
        fresh = not waiting
        # When the wait began (recorded before a crash or a move), for ``Gate.wait_hooks``.
        parked_since = started if waiting else None
        failure: Exception | None = None
        while True:
            try:
                output = await (next(call) if fresh else ex.app.gate.execute(call))
                # The workflow gets the decoded record, as it will on replay (serde: "One
                # value").
                text, output = serde.record(
                    output, call.returns, f"the output of {call.kind} {call.name!r}"
                )
                break
            except Parked as parked:
                if fresh:
                    await self._record(call, started, "pending", output=json.dumps(parked.state))
                    call.meta["pending"] = parked.state
                    fresh = False
                    parked_since = started
                await ex.suspend(parked.wake_at)
            except Exception as live:
                failure = live
                break
        if parked_since is not None:
            ex.app.gate.wait_ended(call, parked_since, failure)
        if failure is not None:
            # The workflow gets the error rebuilt from its record, as it will on replay
            # (error_records: "one value"); the live one never leaks past the gate.
            error, exc = serde.record_error(
                failure, ex.app.safe_modules, transient=is_transient(failure)
            )
            del failure
            await self._record(call, started, "error", error=error)
            ex.note_failed_effect(exc, call.seq)
            raise exc
        fut = ex.committer.submit(self._write(call, started, "ok", output=text), _teller(call))
        ex.defer(fut)
        if present is None:
            return output
        return await present(call, output, call.meta.get("record"))

    async def _record(
        self,
        call: EffectCall,
        started: float,
        status: str,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> None:
        ex = call.execution
        write = self._write(call, started, status, output=output, error=error)
        fut = ex.committer.submit(write, _teller(call))
        try:
            result = await fut
        except Exception as exc:  # the store failed: leave the run to its lease
            raise ex.lost(f"could not record effect #{call.seq}: {exc}") from exc
        if not result.ok:
            raise ex.lost(f"a later claim refused the record of effect #{call.seq}")

    @staticmethod
    def _write(
        call: EffectCall,
        started: float,
        status: str,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> RecordEffect:
        ex = call.execution
        row = EffectRow(
            run_id=ex.run.id,
            seq=call.seq,
            kind=call.kind,
            name=call.name,
            status=status,
            output=output,
            error=error,
            attempt=call.meta.get("attempt", 1),
            started_at=started,
            finished_at=None if status == "pending" else now(),
            meta=_meta(call),
        )
        call.meta[WRITTEN] = row
        return RecordEffect(
            ex.owner,
            row,
            consume_signal=call.meta.get("consume_signal"),
            side_writes=tuple(call.side_writes),
            epoch=ex.epoch,
        )


RETRY = "next_attempt"  # the key of a pending record that a step's retry wrote
# The key of a pending record that an interceptor wrote for itself (``record_pending``): on
# replay the effect passes the whole chain again.
CHAIN = "chain"
# call.meta: when the effect started (Unix s: its first record's start, on a replay), and the
# ``EffectRow`` of its last record written (who is told it committed, ``on_recorded``, may
# read it: e.g. to export a trace span made from the record).
STARTED, WRITTEN = "started_at", "written"
RETRIES = "retries"  # the failed attempts so far, on the pending record and the final meta


async def record_retry(call: EffectCall, exc: BaseException, retry_at: float) -> None:
    """Commit, before a step is retried, that attempt ``call.meta["attempt"]`` failed with
    ``exc`` and the next one is due at ``retry_at``, as the effect's ``pending`` record, in a
    write of its own, so that a run recovered on another worker (or after a crash) goes on
    with the next attempt, at its time, instead of starting over at attempt 1. The side writes
    of the attempts so far (``also_write``: a model call's usage rows) are committed with it,
    so that a crash or a parked wait that ends in a replay keeps both or neither."""
    attempt = int(call.meta.get("attempt", 1))
    state = {RETRY: attempt + 1, "retry_at": retry_at, RETRIES: call.meta.get(RETRIES, [])}
    await record_pending(call, state, serde.dump_error(exc, transient=True))


async def record_pending(call: EffectCall, state: dict[str, Any], error: str | None = None) -> None:
    """Commit ``state`` (JSON values) as the effect's ``pending`` record, in a write of its
    own, before an interceptor parks the effect (``Execution.suspend``) or waits to try it
    again. It is not an outcome: a replay (after a crash, a move, an eviction) passes the
    effect through the whole chain again, with ``state`` in ``call.meta["pending"]``, so the
    interceptor goes on from it. The record's ``meta`` is ``call.meta["record"]`` as it is
    now; the side writes queued so far (``also_write``) commit with it. ``LeaseLost`` when
    the write fails or a later claim refuses it."""
    ex = call.execution
    write = EffectLog._write(
        call,
        call.meta.get(STARTED) or now(),  # the effect's start, not this write's
        "pending",
        output=json.dumps(state if RETRY in state else {**state, CHAIN: True}),
        error=error,
    )
    hooks = list(call.on_recorded)

    def tell(committed: bool) -> None:
        for hook in hooks:
            hook(committed)

    call.side_writes.clear()  # in this write now: later ones go with the outcome
    call.on_recorded.clear()
    try:
        result = await ex.committer.submit(write, tell if hooks else None)
    except Exception as err:  # the store failed: leave the run to its lease
        raise ex.lost(f"could not record effect #{call.seq}: {err}") from err
    if not result.ok:
        raise ex.lost(f"a later claim refused the record of effect #{call.seq}")


def _through_chain(pending: dict[str, Any]) -> bool:
    """Whether a pending record is an interceptor's (``record_retry``, ``record_pending``),
    not a wait of the effect's executor."""
    return RETRY in pending or bool(pending.get(CHAIN))


def _teller(call: EffectCall) -> Callable[[bool], None] | None:
    """Who to tell whether the record's transaction committed: ``also_write``'s callers."""
    if not call.on_recorded:
        return None

    def tell(committed: bool) -> None:
        for hook in call.on_recorded:
            hook(committed)

    return tell


def _meta(call: EffectCall) -> str | None:
    """What interceptors asked to keep on the effect (``call.meta["record"]``), and its
    failed attempts (``retries``, from the retry interceptor), as JSON."""
    record = call.meta.get("record")
    retries = call.meta.get(RETRIES)
    if retries:
        record = {**(record or {}), RETRIES: retries}
    return json.dumps(record) if record else None
