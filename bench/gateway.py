#!/usr/bin/env python
"""Model gateway overhead: what aiosys's model call path adds over the official ``openai``
SDK, beside LiteLLM's ``Router``, measured in the same run against the same server.

The server is tests/wire/openai_server.py in its fast mode (answers at once, keeps no log),
served by uvicorn in its own process (no access log, uvloop / httptools when installed), so
the client's CPU is measured apart from it. Every call is one chat completion of
``[{"role": "user", "content": "hi"}]``; every answer is checked (``"echo: hi"``).

Systems (each (system, concurrency, repetition) in a fresh child process):

- ``sdk``: ``AsyncOpenAI(...).chat.completions.create(...)`` directly, the baseline;
- ``sdk-post``: the same SDK client's ``client.post("/chat/completions", cast_to=
  httpx.Response, body=...)``, the request path aiosys's provider uses (the SDK's auth,
  headers, timeouts and status errors, without ``create``'s parameter transform and
  response model). aiosys minus this is what aiosys's own layers cost;
- ``aiosys``: ``await app.models.call("bench", messages)`` outside any workflow (App on a
  temp SQLite file, one priced ``openai`` card under a hard budget (``--no-budget``: none),
  no rate limits, no cache): a direct effect through the kernel's gate (its interceptors;
  nothing recorded), router, metering (one ``model_usage`` row per call, written behind
  the calls in batches), budget (one reservation row written before each call, settled by
  its usage row), rate-limit / cache links with nothing configured, breaker, provider (the
  same SDK's ``client.post``);
- ``litellm``: ``await Router(...).acompletion(model="bench", messages=...)`` with one
  deployment, telemetry, callbacks and the remote cost map off;
- ``workflow`` (reported apart, not compared): the same call as a recorded effect,
  ``ctx.models.call`` in a one-effect workflow run with ``app.run`` (includes the run's
  durable commits on SQLite, WAL + synchronous=FULL; the usage row commits with the record).

Systems run interleaved (``--repeat`` N: every repetition measures each system once, in a
rotated order). Overhead = the system's latency percentile - the SDK's at the same
concurrency, taken within each repetition and reported as the median over repetitions.
CPU per call = the client process's CPU time (all its threads) over the timed section /
calls; the server's CPU per call is shown beside it, and "other load" is the CPU (in cores)
the rest of the machine used meanwhile, so a figure taken on a busy machine shows it.

    .venv/bin/python bench/gateway.py                         # 2000 calls, c=1,16, all five
    .venv/bin/python bench/gateway.py --repeat 5
    .venv/bin/python bench/gateway.py --only sdk,aiosys --profile          # cProfile
    .venv/bin/python bench/gateway.py --only sdk,aiosys --profile --profiler pyinstrument
    .venv/bin/python bench/gateway.py --only sdk,aiosys --store-dir /dev/shm   # no disk sync

Results are printed as tables and written to bench/results/gateway-<timestamp>.json.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import _version, bench_parser, choice_list, git_state, make_profiler, profile_rows
from _common import run_child as _run_child

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SYSTEMS = ("sdk", "sdk-post", "aiosys", "litellm", "workflow")
MESSAGES = [{"role": "user", "content": "hi"}]
EXPECTED = "echo: hi"
MODEL = "bench-model"
LABELS = {"sdk": "openai SDK create (baseline)", "sdk-post": "openai SDK client.post"}

# Targets from the issue: aiosys adds at most a fifth of LiteLLM's overhead (p50 and p99)
# and serves at least four times its requests/s at concurrency 16.
TARGET_OVERHEAD_RATIO = 0.2
TARGET_RPS_RATIO = 4.0


# =========================================================================================
# The server (its own process)
# =========================================================================================


def serve_main(port: int) -> None:
    """uvicorn with the wire server's fast app and the fastest settings available."""
    sys.path.insert(0, str(REPO))
    import uvicorn
    from tests.wire.openai_server import build_app

    uvicorn.run(
        build_app(fast=True),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
    )


def server_settings() -> dict[str, str]:
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "app": "tests.wire.openai_server.build_app(fast=True)",
        "access_log": "off",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server and wait until it answers a chat completion."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--_serve", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    body = {"model": MODEL, "messages": MESSAGES}
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the wire server exited with {proc.returncode}:\n{err}")
        try:
            r = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=1.0)
            if r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == EXPECTED:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the wire server on port {port} did not answer in {timeout}s")
        time.sleep(0.05)  # polling a process that has no readiness signal


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used so far, over all cores (Linux
    /proc/stat: user, nice, system, irq, softirq, steal)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# =========================================================================================
# The timed loop, shared by every system
# =========================================================================================


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


async def drive(call: Any, calls: int, concurrency: int, server_pid: int) -> dict[str, Any]:
    """``calls`` calls from ``concurrency`` loops that take the next call as they finish
    one (a closed loop: at most ``concurrency`` in flight); every answer checked."""
    latencies = [0.0] * calls
    taken = 0

    async def loop() -> None:
        nonlocal taken
        while taken < calls:
            i = taken
            taken += 1
            t = time.perf_counter()
            out = await call()
            latencies[i] = time.perf_counter() - t
            if out != EXPECTED:
                raise AssertionError(f"call {i} answered {out!r}, expected {EXPECTED!r}")

    busy0, srv0 = machine_busy(), proc_cpu(server_pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    wall = time.perf_counter() - wall0
    cpu, srv = time.process_time() - cpu0, proc_cpu(server_pid) - srv0
    # What the rest of the machine (other engineers' tests, ...) ran meanwhile, in cores.
    other = (machine_busy() - busy0 - cpu - srv) / wall
    latencies.sort()
    ms = [1000 * x for x in latencies]
    return {
        "calls": calls,
        "concurrency": concurrency,
        "wall_s": wall,
        "rps": calls / wall,
        "cpu_ms_per_call": 1000 * cpu / calls,
        "server_cpu_ms_per_call": 1000 * srv / calls,
        "client_cpu_utilisation": cpu / wall,
        "other_load_cores": max(0.0, other),
        "p50_ms": percentile(ms, 0.50),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms),
        "max_ms": ms[-1],
        "verified": True,
    }


# =========================================================================================
# Children: one system, one concurrency, one fresh process
# =========================================================================================


async def setup_sdk(spec: dict[str, Any]) -> tuple[Any, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=spec["base_url"] + "/v1", api_key="x", max_retries=0)

    async def call() -> Any:
        r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content

    return call, client.close


async def setup_sdk_post(spec: dict[str, Any]) -> tuple[Any, Any]:
    import httpx2
    import openai

    client = openai.AsyncOpenAI(base_url=spec["base_url"] + "/v1", api_key="x", max_retries=0)
    body = {"model": MODEL, "messages": MESSAGES}

    async def call() -> Any:
        r = await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
        return r.json()["choices"][0]["message"]["content"]

    return call, client.close


async def setup_litellm(spec: dict[str, Any]) -> tuple[Any, Any]:
    # LITELLM_LOCAL_MODEL_COST_MAP is set in the child's environment before this import.
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm.callbacks = []
    litellm.suppress_debug_info = True
    router = Router(
        model_list=[
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": spec["base_url"] + "/v1",
                    "api_key": "x",
                },
            }
        ]
    )

    async def call() -> Any:
        r = await router.acompletion(model="bench", messages=MESSAGES)
        return r.choices[0].message.content  # type: ignore[union-attr]

    async def close() -> None:
        with contextlib.suppress(Exception):
            await litellm.close_litellm_async_clients()  # type: ignore[attr-defined]

    return call, close


def aiosys_app(spec: dict[str, Any]) -> Any:
    from aiosys import App

    db_dir = spec["store_dir"] or spec["tmpdir"]
    # models_dir="": the catalog is the one card below, whatever ./models holds.
    app = App(store=f"sqlite:///{db_dir}/{spec['system']}-{spec['label']}.db", models_dir="")
    app.models.add_card(
        {
            "id": "bench",
            "provider": "openai",
            "endpoint": spec["base_url"] + "/v1",  # the SDK's base_url
            "provider_model": MODEL,
            # Priced, so a budget has something to reserve (and bounds the output).
            "pricing": {"input_per_1k": 0.001, "output_per_1k": 0.002},
        }
    )
    if spec.get("budget"):  # every call reserves its worst case under a hard budget first
        from aiosys.models.links.budget import Budget

        app.models.budgets.add(Budget("tenant", "default", 1e9, period="total"))
    return app


async def setup_aiosys(spec: dict[str, Any]) -> tuple[Any, Any]:
    app = aiosys_app(spec)
    await app.open()  # the store alone: no worker, nothing runs beside the calls
    models = app.models

    async def call() -> Any:
        return (await models.call("bench", MESSAGES)).output

    return call, app.close


async def setup_workflow(spec: dict[str, Any]) -> tuple[Any, Any]:
    from aiosys import Context

    app = aiosys_app(spec)

    @app.workflow()
    async def one_call(ctx: Context) -> Any:
        return (await ctx.models.call("bench", MESSAGES)).output

    await app.__aenter__()  # the embedded worker runs the workflows

    async def call() -> Any:
        return await app.run("one_call", {})

    async def close() -> None:
        await app.__aexit__(None, None, None)

    return call, close


SETUP = {
    "sdk": setup_sdk,
    "sdk-post": setup_sdk_post,
    "aiosys": setup_aiosys,
    "litellm": setup_litellm,
    "workflow": setup_workflow,
}


def child_main(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"system": spec["system"]}
        call, close = await SETUP[spec["system"]](spec)
        try:
            await drive(call, spec["warmup"], spec["concurrency"], spec["server_pid"])
            out.update(await drive(call, spec["calls"], spec["concurrency"], spec["server_pid"]))
            if spec["profile"]:
                prof = make_profiler(spec["profiler"])
                prof.enable() if spec["profiler"] == "cprofile" else prof.start()
                try:
                    pres = await drive(call, spec["calls"], spec["concurrency"], spec["server_pid"])
                finally:
                    prof.disable() if spec["profiler"] == "cprofile" else prof.stop()
                out["profile"] = profile_rows(
                    spec["profiler"], prof, spec["profile_top"], Path(spec["profile_base"])
                )
                out["profile"]["calls"] = spec["calls"]
                out["profile"]["profiled_rps"] = pres["rps"]
                out["profile"]["profiled_p50_ms"] = pres["p50_ms"]
        finally:
            await close()
        return out

    result = asyncio.run(main())
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(result))


# =========================================================================================
# Parent: server, children, tables, JSON
# =========================================================================================


def environment(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            d: _version(d) for d in ("aiosys", "openai", "httpx", "litellm", "uvicorn", "fastapi")
        },
        "server": server_settings(),
        **git_state(REPO),
        "loadavg_at_start": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }


def run_child(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    out_path = workdir / f"{spec['system']}-{spec['label']}.json"
    # no fetch of LiteLLM's remote cost map
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return _run_child(Path(__file__).resolve(), spec, out_path, workdir, timeout, env)


METRICS = (
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "rps",
    "cpu_ms_per_call",
    "server_cpu_ms_per_call",
)


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the repetitions; any failed repetition fails the cell."""
    failed = [r for r in reps if "error" in r]
    if failed:
        return failed[0]
    out: dict[str, Any] = {m: _median([r[m] for r in reps]) for m in METRICS}
    out["repetitions"] = len(reps)
    out["rps_all"] = [round(r["rps"], 1) for r in reps]
    out["p50_all"] = [round(r["p50_ms"], 3) for r in reps]
    out["loadavg_1m"] = [round(r["loadavg_before"][0], 2) for r in reps]
    out["other_load_all"] = [round(r["other_load_cores"], 2) for r in reps]
    profile = next((r["profile"] for r in reps if "profile" in r), None)
    if profile is not None:
        out["profile"] = profile
    return out


def compare(
    cells: dict[int, dict[str, Any]], reps: dict[int, dict[str, list[dict[str, Any]]]]
) -> dict[int, Any]:
    """Overheads over the SDK and the ratios against LiteLLM, per concurrency.

    Paired by repetition: repetition i of a system is compared with repetition i of the SDK
    (measured minutes apart at most, under the same background load), and the median of
    those differences (or ratios) is reported, so a load swing between repetitions does not
    land on one system alone."""
    out: dict[int, Any] = {}
    for conc, by_system in cells.items():
        row: dict[str, Any] = {}
        out[conc] = row
        sdk = by_system.get("sdk")
        if sdk is None or "error" in sdk:
            continue
        sdk_reps = reps[conc]["sdk"]
        for system in ("sdk-post", "aiosys", "litellm", "workflow"):
            r = by_system.get(system)
            if r is None or "error" in r:
                continue
            pairs = list(zip(reps[conc][system], sdk_reps, strict=False))
            row[system] = {}
            for key in ("p50", "p95", "p99", "mean", "cpu"):
                metric = "cpu_ms_per_call" if key == "cpu" else f"{key}_ms"
                diffs = [x[metric] - b[metric] for x, b in pairs]
                row[system][key] = _median(diffs)
                row[system][f"{key}_all"] = [round(d, 3) for d in diffs]
        post = by_system.get("sdk-post")
        if "aiosys" in row and post is not None and "error" not in post:
            # aiosys's own layers: aiosys minus the SDK request path it drives.
            pairs = list(zip(reps[conc]["aiosys"], reps[conc]["sdk-post"], strict=False))
            own: dict[str, Any] = {}
            for key in ("p50", "p95", "p99", "cpu"):
                metric = "cpu_ms_per_call" if key == "cpu" else f"{key}_ms"
                own[key] = _median([x[metric] - b[metric] for x, b in pairs])
            row["aiosys_over_post"] = own
        a, lite = by_system.get("aiosys"), by_system.get("litellm")
        if "aiosys" in row and "litellm" in row and a is not None and lite is not None:
            ratios: dict[str, Any] = {}
            for key in ("p50", "p99", "cpu"):
                la = row["litellm"][key]
                ratios[f"overhead_{key}"] = row["aiosys"][key] / la if la > 0 else float("nan")
            per_rep = [
                x["rps"] / y["rps"]
                for x, y in zip(reps[conc]["aiosys"], reps[conc]["litellm"], strict=False)
            ]
            ratios["rps"] = _median(per_rep)
            ratios["rps_all"] = [round(v, 2) for v in per_rep]
            sdk_per_rep = [
                x["rps"] / y["rps"] for x, y in zip(sdk_reps, reps[conc]["litellm"], strict=False)
            ]
            ratios["sdk_rps_over_litellm"] = _median(sdk_per_rep)
            row["ratios"] = ratios
        out[conc] = row
    return out


def print_tables(
    console: Any, cells: dict[int, dict[str, Any]], cmp: dict[int, Any], args: argparse.Namespace
) -> None:
    from rich.table import Table

    def f(x: float | None, fmt: str = ".3f") -> str:
        return "-" if x is None else format(x, fmt)

    t = Table(
        title=f"Chat completion against a local instant OpenAI-compatible server: "
        f"{args.calls} calls per cell after {args.warmup} warm-up, median of {args.repeat} "
        f"repetition(s); latency in ms",
        title_justify="left",
    )
    for col in (
        "conc",
        "system",
        "p50",
        "p95",
        "p99",
        "req/s",
        "CPU ms/call",
        "+p50",
        "+p95",
        "+p99",
        "+CPU ms",
        "server CPU ms/call",
        "other load",
    ):
        t.add_column(col, justify="left" if col == "system" else "right")
    for conc, by_system in cells.items():
        for system in ("sdk", "sdk-post", "aiosys", "litellm"):
            r = by_system.get(system)
            if r is None:
                continue
            if "error" in r:
                t.add_row(str(conc), system, "[red]failed[/]", *[""] * 10)
                continue
            o = cmp.get(conc, {}).get(system, {})
            t.add_row(
                str(conc),
                LABELS.get(system, system),
                f(r["p50_ms"]),
                f(r["p95_ms"]),
                f(r["p99_ms"]),
                f(r["rps"], ",.0f"),
                f(r["cpu_ms_per_call"]),
                f(o.get("p50")),
                f(o.get("p95")),
                f(o.get("p99")),
                f(o.get("cpu")),
                f(r["server_cpu_ms_per_call"]),
                ",".join(f"{x:.1f}" for x in r["other_load_all"]),
            )
        t.add_section()
    console.print(t)

    rt = Table(title="aiosys against LiteLLM Router (targets from the issue)", title_justify="left")
    for col in ("conc", "measure", "aiosys", "LiteLLM", "ratio", "target", "met"):
        rt.add_column(col, justify="left" if col in ("measure",) else "right")
    for conc, row in cmp.items():
        ratios = row.get("ratios")
        if not ratios:
            continue
        for q in ("p50", "p99"):
            ratio = ratios[f"overhead_{q}"]
            met = ratio <= TARGET_OVERHEAD_RATIO
            rt.add_row(
                str(conc),
                f"overhead at {q} (ms)",
                f(row["aiosys"][q]),
                f(row["litellm"][q]),
                f(ratio, ".3f"),
                f"<= {TARGET_OVERHEAD_RATIO:g}",
                "[green]yes[/]" if met else "[red]no[/]",
            )
        a, lite = cells[conc]["aiosys"], cells[conc]["litellm"]
        rps_met = ratios["rps"] >= TARGET_RPS_RATIO
        rt.add_row(
            str(conc),
            "requests/s",
            f(a["rps"], ",.0f"),
            f(lite["rps"], ",.0f"),
            f(ratios["rps"], ".2f"),
            f">= {TARGET_RPS_RATIO:g}" if conc != 1 else "-",
            ("[green]yes[/]" if rps_met else "[red]no[/]") if conc != 1 else "-",
        )
        rt.add_row(
            str(conc),
            "  (openai SDK alone, req/s)",
            f(cells[conc]["sdk"]["rps"], ",.0f"),
            f(lite["rps"], ",.0f"),
            f(ratios["sdk_rps_over_litellm"], ".2f"),
            "-",
            "-",
        )
        rt.add_row(
            str(conc),
            "added CPU ms/call",
            f(row["aiosys"]["cpu"]),
            f(row["litellm"]["cpu"]),
            f(ratios["overhead_cpu"], ".3f"),
            "-",
            "-",
        )
        own = row.get("aiosys_over_post")
        if own is not None:
            rt.add_row(
                str(conc),
                "  aiosys's own layers over SDK client.post: +p50 / +p99 / +CPU ms",
                f"{f(own['p50'])} / {f(own['p99'])} / {f(own['cpu'])}",
                "-",
                "-",
                "-",
                "-",
            )
        rt.add_section()
    if rt.row_count:
        console.print(rt)

    wt = Table(
        title="aiosys model call as a recorded workflow effect (ctx.models.call in a one-effect "
        "workflow, app.run, SQLite WAL + synchronous=FULL; not compared with LiteLLM)",
        title_justify="left",
    )
    for col in ("conc", "p50", "p95", "p99", "req/s (runs/s)", "CPU ms/run", "+p50 over SDK"):
        wt.add_column(col, justify="right")
    any_wf = False
    for conc, by_system in cells.items():
        r = by_system.get("workflow")
        if r is None:
            continue
        any_wf = True
        if "error" in r:
            wt.add_row(str(conc), "[red]failed[/]", "", "", "", "", "")
            continue
        o = cmp.get(conc, {}).get("workflow", {})
        wt.add_row(
            str(conc),
            f(r["p50_ms"]),
            f(r["p95_ms"]),
            f(r["p99_ms"]),
            f(r["rps"], ",.0f"),
            f(r["cpu_ms_per_call"]),
            f(o.get("p50")),
        )
    if any_wf:
        console.print(wt)


def print_profile(console: Any, label: str, prof: dict[str, Any]) -> None:
    """Times per call, in microseconds (the profiled pass made ``calls`` calls)."""
    from rich.markup import escape
    from rich.table import Table

    calls = prof["calls"]

    def us(seconds: float) -> str:
        return f"{1e6 * seconds / calls:,.1f}"

    def table(title: str, rows: list[dict[str, Any]], key: str, head: str) -> None:
        t = Table(title=f"{label}: {title}", title_justify="left")
        cprof = bool(rows) and "ncalls" in rows[0]
        if cprof:
            t.add_column("ncalls/call", justify="right")
        t.add_column(head, justify="right")
        if key == "cumtime" and cprof:
            t.add_column("own µs/call", justify="right")
        t.add_column("function  file:line", overflow="fold")
        for r in rows:
            cells = [us(r[key])]
            if key == "cumtime" and cprof:
                cells.append(us(r["tottime"]))
            if cprof:
                n = str(r["ncalls"]).split("/")[0]
                cells = [f"{int(n) / calls:.2f}", *cells]
            t.add_row(*cells, escape(r["func"]))
        console.print(t)

    console.print(
        f"[bold]{label} profile[/] ({prof['profiler']}): profiled pass of {calls} calls, "
        f"{prof['profiled_rps']:.0f} req/s, p50 {prof['profiled_p50_ms']:.2f} ms "
        f"(the profiler's own cost inflates small functions)"
    )
    table("top by cumulative time", prof["cumulative"], "cumtime", "cum µs/call")
    table("aiosys functions by cumulative time", prof["aiosys"], "cumtime", "cum µs/call")
    table("top by own time", prof["own"], "tottime", "own µs/call")
    for k in ("prof_file", "tree_file"):
        if k in prof:
            console.print(f"[dim]{k}: {prof[k]}[/]")


def parent_main(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 170)
    systems = [s for s in SYSTEMS if s in args.only]
    concurrencies = args.concurrency
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f".gateway-{stamp}-", dir=RESULTS_DIR))
    env = environment(args)
    v = env["versions"]
    console.print(
        f"[bold]bench/gateway.py[/]  aiosys {v['aiosys']} (git {env['git_head']}"
        f"{', src dirty' if env['git_dirty'] else ''}, src {env['src_sha256']})  "
        f"openai {v['openai']}  httpx {v['httpx']}  LiteLLM {v['litellm']}  "
        f"Python {env['python']}  {env['cpus']} CPUs  load {os.getloadavg()[0]:.2f} "
        f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    srv = env["server"]
    console.print(
        f"[dim]server: uvicorn loop={srv['loop']} http={srv['http']}, no access log, own process[/]"
    )
    # The SQLite files live beside the repo (the same disk a real deployment would use)
    # unless --store-dir moves them (e.g. to /dev/shm, to see what the disk sync costs).
    store_tmp = (
        Path(tempfile.mkdtemp(prefix=f"aiosys-gateway-{stamp}-", dir=args.store_dir))
        if args.store_dir
        else None
    )
    env["store_dir"] = str(store_tmp or tmp)
    reps: dict[int, dict[str, list[dict[str, Any]]]] = {c: {} for c in concurrencies}
    server, base_url = start_server()
    env["base_url"] = base_url
    try:
        for rep in range(args.repeat):
            # Rotate the order every repetition so no system always runs first or last.
            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
            for conc in concurrencies:
                for system in order:
                    label = f"c{conc}-r{rep}"
                    spec = {
                        "system": system,
                        "label": label,
                        "concurrency": conc,
                        "calls": args.calls,
                        "warmup": args.warmup,
                        "base_url": base_url,
                        "server_pid": server.pid,
                        "tmpdir": str(tmp),
                        "store_dir": str(store_tmp) if store_tmp else None,
                        "budget": args.budget,
                        "profile": args.profile and system in ("aiosys", "workflow") and rep == 0,
                        "profiler": args.profiler,
                        "profile_top": args.profile_top,
                        "profile_base": str(RESULTS_DIR / f"gateway-{stamp}-{system}-c{conc}"),
                    }
                    res = run_child(spec, tmp, args.timeout)
                    reps[conc].setdefault(system, []).append(res)
                    if "error" in res:
                        console.print(
                            f"[red]{system} c={conc} #{rep + 1} failed:[/]\n{res['error']}"
                        )
                        continue
                    console.print(
                        f"  c={conc:<3} {system:<9} #{rep + 1}  p50 {res['p50_ms']:7.3f}  "
                        f"p95 {res['p95_ms']:7.3f}  p99 {res['p99_ms']:7.3f} ms  "
                        f"{res['rps']:7.0f} req/s  CPU {res['cpu_ms_per_call']:.3f} ms/call  "
                        f"server CPU {res['server_cpu_ms_per_call']:.3f} ms/call  "
                        f"other load {res['other_load_cores']:.2f}  "
                        f"loadavg {res['loadavg_before'][0]:.2f}"
                    )
    finally:
        stop_server(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            if store_tmp is not None:
                shutil.rmtree(store_tmp, ignore_errors=True)

    cells = {c: {s: summarize(r) for s, r in by.items()} for c, by in reps.items()}
    cmp = compare(cells, reps)
    console.print()
    print_tables(console, cells, cmp, args)
    env["loadavg_at_end"] = os.getloadavg()
    la0, la1 = env["loadavg_at_start"], env["loadavg_at_end"]
    console.print(
        f"[dim]Overhead (+) = the system's percentile - the SDK's at the same concurrency, "
        f"median over repetitions of the difference within each repetition; absolute figures "
        f"are medians over repetitions. CPU = the client process's CPU time over the timed "
        f"section / calls (all its threads); server CPU from /proc. Other load = cores' worth "
        f"of CPU the rest of the machine used during each timed section (/proc/stat minus "
        f"client and server), per repetition. Load average (1/5/15 min, includes this "
        f"benchmark) at start {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f}, at end "
        f"{la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f} on {env['cpus']} CPUs.[/]"
    )
    others = [
        r["other_load_cores"]
        for by in reps.values()
        for rs in by.values()
        for r in rs
        if "other_load_cores" in r
    ]
    env["other_load_cores_max"] = max(others, default=0.0)
    if others and _median(others) > 0.25:
        console.print(
            f"[yellow]Other work used a median {_median(others):.2f} cores (max "
            f"{max(others):.2f}) of the {env['cpus']} during the timed sections: repeat when "
            f"the machine is quieter for steadier figures.[/]"
        )
    if args.profile:
        for conc, by_system in cells.items():
            for system in ("aiosys", "workflow"):
                prof = (by_system.get(system) or {}).get("profile")
                if prof:
                    console.print()
                    print_profile(console, f"{system} c={conc}", prof)

    out = RESULTS_DIR / f"gateway-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "environment": env,
                "cells": {str(c): v for c, v in cells.items()},
                "comparison": {str(c): v for c, v in cmp.items()},
                "repetitions": {str(c): v for c, v in reps.items()},
            },
            indent=2,
        )
    )
    console.print(f"\n[dim]results: {out.relative_to(REPO)}[/]")
    failed = [(c, s) for c, by in cells.items() for s, r in by.items() if "error" in r]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(__doc__)
    p.add_argument("--calls", type=int, default=2000, help="timed calls per cell")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls per cell first")
    p.add_argument(
        "--only",
        type=choice_list(SYSTEMS, "system"),
        default=list(SYSTEMS),
        help="comma-separated subset of sdk,sdk-post,aiosys,litellm,workflow (overheads need sdk)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the timed pass, profile one more pass of the aiosys and workflow cells",
    )
    p.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile")
    p.add_argument("--profile-top", type=int, default=30)
    p.add_argument("--keep", action="store_true", help="keep the temp SQLite files")
    p.add_argument(
        "--store-dir",
        help="directory for aiosys's SQLite files (default: a temp dir under bench/results, "
        "on the repo's disk); e.g. /dev/shm to take the disk's sync out of the figures",
    )
    p.add_argument(
        "--budget",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a hard budget on the aiosys calls' tenant: each call reserves its worst-case "
        "cost in the store before it is sent (default on; --no-budget: none)",
    )
    p.add_argument("--_serve", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    if a._serve:
        serve_main(a._serve)
    elif a._child:
        child_main(a._child, a._out)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(parent_main(a))
