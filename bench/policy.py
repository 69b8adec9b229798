#!/usr/bin/env python
"""Policy decision time per effect: the gate's ``authorize`` interceptor with 50 Cedar
policies, cached and uncached, beside cedarpy called directly with pre-parsed policies.

The policy set is the shipped example (examples/policies: schema and 6 policies) plus 44
generated ``forbid`` policies of the same shapes (tenant, role, model attributes and data
classification conditions), 50 in all, loaded and validated as an App loads them. Each
measured effect is a direct ``model`` effect (``EffectCall``) through ``Authorize``: the
principal's entity, the model card's entity, the context (classification, tenant), the
cache lookup, one decision listener (a no-op, as the audit log will subscribe) and a
``next`` that returns at once. Per-call times (``perf_counter_ns`` around each awaited
call) give p50 and p99.

- ``gate cached``: requests cycle over ``--shapes`` request shapes (principals x models x
  classifications), so after the first round every decision comes from the cache;
- ``gate uncached``: the same, with the decision cache off (size 0): Cedar every time;
- ``cedarpy direct``: ``cedarpy.is_authorized(request, PolicySet, entities_json, Schema)``
  on pre-parsed policy and schema handles, the same requests (what the uncached gate does
  under its bookkeeping), and without the schema (``cedarpy no schema``).

    .venv/bin/python bench/policy.py               # 20000 calls per system
    .venv/bin/python bench/policy.py --calls 50000 --shapes 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cedarpy  # noqa: E402

from aiosys.errors import PolicyDenied  # noqa: E402
from aiosys.governance.policy import PolicyEngine  # noqa: E402
from aiosys.governance.policy_entities import (  # noqa: E402
    PolicyRequest,
    attrs,
    classification,
    model_entity,
    principal_entity,
)
from aiosys.governance.policy_gate import Authorize  # noqa: E402
from aiosys.kernel import EffectCall, Principal, bind_principal  # noqa: E402

SHIPPED = ROOT / "examples" / "policies"
POLICIES = 50
LEVELS = ("public", "internal", "confidential", "restricted")


class Card:
    def __init__(self, i: int) -> None:
        self.id = f"model-{i}"
        self.external = i % 2 == 1
        self.risk_level = ("minimal", "low", "medium", "high")[i % 4]
        self.data_residency = ("eu", "us", "local")[i % 3]
        self.provider = "openai"
        self.kind = "chat"
        self.owner = "ml"


def generated(n: int) -> str:
    out = []
    for i in range(n):
        level = LEVELS[i % 4]
        out.append(
            f'@id("generated-{i}")\n'
            'forbid(principal, action == Action::"call_model", resource)\n'
            f'when {{ principal.tenant == "tenant-{i}" && '
            f'context.classification in Classification::"{level}" && '
            f'(resource.risk_level == "high" || resource.residency == "region-{i}") && '
            f'!principal.roles.contains("role-{i}") }};\n'
        )
    return "\n".join(out)


def policy_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="aiosys-policy-bench-"))
    for f in SHIPPED.iterdir():
        shutil.copy(f, directory / f.name)
    shipped = len(PolicyEngine.from_dir(directory).policies)
    (directory / "generated.cedar").write_text(generated(POLICIES - shipped))
    return directory


def percentiles(ns: list[int]) -> dict[str, float]:
    ns = sorted(ns)
    return {
        "p50_us": ns[len(ns) // 2] / 1000,
        "p99_us": ns[min(len(ns) - 1, int(len(ns) * 0.99))] / 1000,
        "mean_us": statistics.fmean(ns) / 1000,
    }


def shapes(n: int) -> list[tuple[Principal, Card, str]]:
    out = []
    for i in range(n):
        principal = Principal(id=f"user-{i % 7}", tenant=f"tenant-{i % 5}", roles={"analyst"})
        out.append((principal, Card(i % 11), LEVELS[i % 4]))
    return out


async def gate_times(engine: PolicyEngine, cases: list[Any], calls: int) -> list[int]:
    cards = {id(card): card for _, card, _ in cases}

    def resolve(call: EffectCall) -> list[Any]:
        return [cards[call.params["card"]]]

    authorize = Authorize(engine, resolve)

    async def nxt(call: EffectCall) -> None:
        return None

    prepared = []
    for principal, card, level in cases:
        params = {"model": card.id, "card": id(card), "classification": level}
        call = EffectCall(
            run_execution=None,
            seq=0,
            kind="model",
            name=card.id,
            params=params,
            direct_tenant=principal.tenant,
        )
        prepared.append((principal, call))
    for principal, call in prepared:  # warm: fills the cache when it is on
        with bind_principal(principal), contextlib.suppress(PolicyDenied):
            await authorize(call, nxt)
    times = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            principal, call = prepared[i % len(prepared)]
            with bind_principal(principal):
                start = clock()
                try:
                    await authorize(call, nxt)
                except PolicyDenied:  # confidential data to external models: denied
                    pass
                times.append(clock() - start)
    finally:
        gc.enable()
    return times


def direct_times(engine: PolicyEngine, cases: list[Any], calls: int, schema: bool) -> list[int]:
    loaded = engine.policies
    requests = []
    for principal, card, level in cases:
        context = attrs({"tenant": principal.tenant, "classification": classification(level)})
        req = PolicyRequest(principal_entity(principal), "call_model", model_entity(card), context)
        requests.append((req.cedar(), req.entities_json()))
    handle, schema_handle = loaded.cedar, loaded.schema if schema else None
    times = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            request, entities = requests[i % len(requests)]
            start = clock()
            cedarpy.is_authorized(request, handle, entities, schema_handle)
            times.append(clock() - start)
    finally:
        gc.enable()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per system")
    parser.add_argument("--shapes", type=int, default=32, help="distinct request shapes")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    directory = policy_dir()
    cached = PolicyEngine.from_dir(directory, poll_interval=3600)
    uncached = PolicyEngine.from_dir(directory, cache_size=0, poll_interval=3600)
    assert len(cached.policies) == POLICIES, len(cached.policies)
    for engine in (cached, uncached):
        engine.listen(lambda decision: None)
    cases = shapes(args.shapes)
    uncached_calls = max(1000, args.calls // 5)
    results = {
        "gate cached": percentiles(await gate_times(cached, cases, args.calls)),
        "gate uncached": percentiles(await gate_times(uncached, cases, uncached_calls)),
        "cedarpy direct": percentiles(direct_times(cached, cases, uncached_calls, True)),
        "cedarpy no schema": percentiles(direct_times(cached, cases, uncached_calls, False)),
    }
    shutil.rmtree(directory, ignore_errors=True)
    base = results["cedarpy direct"]["p50_us"]
    for row in results.values():
        row["p50_vs_cedarpy"] = row["p50_us"] / base
    meta = {
        "policies": POLICIES,
        "shapes": args.shapes,
        "calls": args.calls,
        "cedarpy": _version("cedarpy"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1m": os.getloadavg()[0],
        "cache_hits": cached.cache.hits,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(
        f"policy decision per effect: {POLICIES} policies, {args.shapes} request shapes, "
        f"cedarpy {meta['cedarpy']}, python {meta['python']}, load {meta['load_1m']:.2f}"
    )
    print(f"{'system':<20}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'p50 / cedarpy':>16}")
    for name, row in results.items():
        print(
            f"{name:<20}{row['p50_us']:>10.1f}{row['p99_us']:>10.1f}{row['mean_us']:>10.1f}"
            f"{row['p50_vs_cedarpy']:>16.2f}"
        )
    target = results["gate cached"]["p50_us"]
    print(f"target: gate cached p50 <= 20 us: {'met' if target <= 20 else 'NOT met'}")


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    asyncio.run(main())
