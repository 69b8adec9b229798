"""A worker process SIGKILLed mid-run and the run recovered by another: the run is one trace,
whose run span both workers' effect spans are children of, and each effect has one span,
exported once, by the worker that recorded it (the rescuer replays effects 1 and 2: no new
spans). Both workers are real ``aiosys worker`` processes exporting by OTLP/HTTP to a local
receiver; both stores."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crashapp
import pytest
from tests.integration.tracespans import otlp_receiver
from workerprocs import Workers, poll_until

from aiosys.observe.traceids import effect_span_id, run_trace

pytestmark = pytest.mark.timeout(120)

LEASE = 1.0


def attrs(span: Any) -> dict[str, Any]:
    """A protobuf span's attributes as a dict (text and integer values)."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        out[kv.key] = getattr(kv.value, kv.value.WhichOneof("value"))
    return out


def worker_id(log: str) -> str:
    found = re.search(r"worker (\S+) serving queues", log)
    assert found, log
    return found.group(1)


async def test_a_run_recovered_after_a_kill_is_one_trace_without_duplicate_spans(
    store_url: str, crash_log: Path, workers_factory: Callable[..., Workers]
) -> None:
    with otlp_receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: a recorded effect's span leaves soon
            "AIOSYS_TRACING": "on",
        }
        app = await crashapp.build(store_url).open()
        pool = workers_factory(store_url, concurrency=2, lease=LEASE, env=env)
        marker = crash_log.with_suffix(".held")  # hold_once's (crashapp.held_marker)

        def exported_seqs() -> set[int]:
            return {attrs(s)["aiosys.effect.seq"] for s in receiver.spans() if s.parent_span_id}

        async def before_kill() -> bool:
            return await asyncio.to_thread(marker.exists) and {1, 2} <= exported_seqs()

        try:
            lost = pool.spawn()
            await pool.wait_ready()
            run = await app.start("traced_handover")
            # The lost worker recorded effects 1 (a step) and 2 (a timer), exported their
            # spans, and blocks in effect 3: SIGKILL, its lease is left to expire.
            await poll_until(before_kill, 30, "effects 1 and 2 exported, effect 3 running")
            pool.kill(lost)
            rescuer = pool.spawn()
            await pool.wait_ready()
            async with asyncio.timeout(60):
                assert await app.handle(run.id).result() == 2

            async def run_span_exported() -> bool:
                return any(s.name == "run traced_handover" for s in receiver.spans())

            await poll_until(run_span_exported, 30, "the rescuer to export the run's span")
            spans = receiver.spans()
            stored = await app.trace(run.id)
            lost_id, rescuer_id = (
                worker_id(lost.log.read_text()),
                worker_id(rescuer.log.read_text()),
            )
        finally:
            pool.close()
            await app.close()

    ids = run_trace(run.id, None)
    # One trace, every span in it once.
    assert {s.trace_id.hex() for s in spans} == {f"{ids.trace_id:032x}"}
    assert len({s.span_id for s in spans}) == len(spans), [s.name for s in spans]
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == "run traced_handover" and root.span_id.hex() == f"{ids.span_id:016x}"
    # The run's span continues across the kill: both workers' effect spans are its children.
    effects = sorted(
        (s for s in spans if s.parent_span_id), key=lambda s: attrs(s)["aiosys.effect.seq"]
    )
    assert {s.parent_span_id.hex() for s in effects} == {f"{ids.span_id:016x}"}
    got = [(attrs(s)["aiosys.effect.seq"], s.name, attrs(s)["aiosys.worker"]) for s in effects]
    assert got == [
        (1, "step bump", lost_id),
        (2, "sleep", lost_id),
        (3, "step hold_once", rescuer_id),  # the lost worker never recorded it: no span
        (4, "step bump", rescuer_id),
    ]
    assert [s.span_id.hex() for s in effects] == [
        f"{effect_span_id(run.id, seq):016x}" for seq in (1, 2, 3, 4)
    ]
    # The store's trace is the same spans.
    assert [(s["span_id"], s["name"]) for s in stored] == [
        (s.span_id.hex(), s.name) for s in [root, *effects]
    ]
    assert [s["attributes"].get("aiosys.worker") for s in stored[1:]] == [
        lost_id,
        lost_id,
        rescuer_id,
        rescuer_id,
    ]
