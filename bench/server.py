#!/usr/bin/env python
"""``aiosys server`` over HTTP: runs started per second, and the OpenAI-compatible gateway's
added latency beside LiteLLM's proxy, measured in the same run.

Every server is a real process (its own process group, killed on exit), reached by an
``aiohttp.ClientSession`` (HTTP/1.1, keep-alive, one connection per request in flight) in a
fresh child process per cell, so the client's CPU is apart from the servers'. aiohttp, not
httpx: the load generator shares the machine's two cores with the servers, and httpx's
client took 1.5-2 ms of CPU per request (as much as the gateway itself), which capped every
path's requests/s at 16 in flight near the client's own limit; aiohttp's C parser takes a
fraction of that. Each server is ready when its readiness URL answers 200 (``/readyz``: the
store reachable and the models loaded; LiteLLM: ``/health/liveliness``).

1. **Runs started** (``POST /v1/workflows/noop/runs`` with ``{"input": {}}``, 201 and a
   run id checked): ``aiosys server --app <a one-workflow app> --store URL`` in its
   embedded default (the API and an in-process worker, which runs the started runs beside
   the requests), on a fresh SQLite file and on a fresh PostgreSQL database (created, then
   dropped), a fresh server per (store, repetition). Runs/s and p50/p99 of the request.
2. **Gateway** (``POST /v1/chat/completions``, ``[{"role": "user", "content": "hi"}]``,
   every answer checked: ``"echo: hi"``), plain and ``stream: true`` (the latency is the
   time to the first ``data:`` event; the stream is read to ``[DONE]`` and checked), by
   three paths to the same local instant OpenAI-compatible server (tests/wire/
   openai_server.py's fast mode on uvicorn, its own process):

   - ``direct``: the mock itself (the baseline);
   - ``aiosys``: ``aiosys server`` (SQLite, embedded default, no identity configured: the
     local principal), its catalog one priced ``openai`` card pointing at the mock; the call
     goes through routing, metering (a usage row per call), policy, audit and tracing;
   - ``litellm``: ``litellm --config cfg.yaml`` (LiteLLM's proxy on uvicorn), the mock as
     an ``openai/`` model with ``api_base``; no database, no master key, telemetry,
     callbacks and spend logs off, the local cost map, logging at ERROR. Skipped (said so)
     when ``litellm.proxy`` cannot start (the ``litellm[proxy]`` bench extra).

   Added latency = the path's percentile - the direct call's, within each repetition,
   reported as the median over repetitions. CPU per request of each server process (and
   its children) from /proc over the timed section.

Targets from issue 13: aiosys's added latency at most a tenth of LiteLLM proxy's at p50
and p99, and at least 8x its requests/s at 16 in flight (plain and streamed); PASS/FAIL
is printed per target.

Cells run interleaved (``--repeat`` N: every repetition measures each cell once, the
paths in a rotated order); figures are medians over repetitions.

    .venv/bin/python bench/server.py                      # 2000 requests per cell, c=1,16
    .venv/bin/python bench/server.py --repeat 3
    .venv/bin/python bench/server.py --only sqlite,gateway
    .venv/bin/python bench/server.py --quick              # a smoke run (small sizes)

Results are printed as tables and written to bench/results/server-<timestamp>.json.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from _common import _version, bench_parser, choice_list, git_state
from _common import run_child as _run_child
from gateway import free_port, machine_busy, percentile, proc_cpu

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
STORES = ("sqlite", "postgres")
PARTS = (*STORES, "gateway")
PATHS = ("direct", "aiosys", "litellm")
MODEL = "bench-model"  # the mock's model name
CARD = "bench"  # the aiosys card and the LiteLLM model_name
MESSAGES = [{"role": "user", "content": "hi"}]
EXPECTED = "echo: hi"
WORKFLOW = "noop"
PG_ADMIN = os.environ.get("AIOSYS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

# Targets from the issue: aiosys adds at most a tenth of LiteLLM proxy's latency (p50 and
# p99) and serves at least eight times its requests/s at 16 in flight.
TARGET_ADDED_RATIO = 0.1
TARGET_RPS_RATIO = 8.0
TARGET_CONCURRENCY = 16
# A cell fails when more than this share of its requests fail (a few cut streams are
# counted and reported, not a reason to lose the cell).
MAX_FAILED = 0.01

# The app `aiosys server --app` loads: one workflow, and (for the gateway) one card.
APP_MODULE = f'''"""bench/server.py's app: one no-op workflow, one card pointing at the mock."""

import os

from aiosys import App, Context

app = App(models_dir="")  # the store comes from --store; the catalog is the card below
if os.environ.get("AIOSYS_BENCH_MOCK"):
    app.models.add_card(
        {{
            "id": "{CARD}",
            "provider": "openai",
            "endpoint": os.environ["AIOSYS_BENCH_MOCK"] + "/v1",
            "provider_model": "{MODEL}",
            "pricing": {{"input_per_1k": 0.001, "output_per_1k": 0.002}},
        }}
    )


@app.workflow()
async def {WORKFLOW}(ctx: Context) -> dict:
    return {{"ok": True}}
'''

LITELLM_CONFIG = """model_list:
  - model_name: {card}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: x
litellm_settings:
  telemetry: false
  success_callback: []
  failure_callback: []
  callbacks: []
  set_verbose: false
  json_logs: false
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
  dangerously_permit_weak_or_unset_master_key: true
"""


# =========================================================================================
# Server processes (each in its own process group, killed on exit)
# =========================================================================================


class Servers:
    """The server processes started so far; ``close`` kills each one's process group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        health_url: str,
        workdir: Path,
        env: dict[str, str | None] | None = None,
        timeout: float = 120.0,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` (output to ``workdir/<name>.log``; ``env`` over this process's,
        a None value unsets) and poll ``health_url`` until it answers 200; a process that
        exits first, or never answers, is an error with its log's tail."""
        import httpx

        log_path = workdir / f"{name}.log"
        environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for var, value in (env or {}).items():
            if value is None:
                environ.pop(var, None)
            else:
                environ[var] = value
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,  # its own process group, killed as one
            )
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(health_url, timeout=1.0).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop(proc)
                raise RuntimeError(
                    f"{name} did not answer {health_url} in {timeout:.0f}s:\n{_tail(log_path)}"
                )
            time.sleep(0.1)  # polling a process that has no readiness signal

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to its process group, SIGKILL after 15 s."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants so far (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += proc_cpu(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in children.read_text().split())
    return total


def aiosys_argv(port: int, store: str) -> list[str]:
    aiosys = Path(sys.executable).with_name("aiosys")
    head = [str(aiosys)] if aiosys.exists() else [sys.executable, "-m", "aiosys.cli"]
    return [*head, "server", "--app", "bench_server_app:app", "--store", store, "--port", str(port)]


def start_aiosys(
    servers: Servers, workdir: Path, store: str, mock: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    (workdir / "bench_server_app.py").write_text(APP_MODULE)
    port = free_port()
    env: dict[str, str | None] = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(workdir)])}
    if mock:
        env["AIOSYS_BENCH_MOCK"] = mock
    base = f"http://127.0.0.1:{port}"
    name = f"aiosys-{'gateway' if mock else store.split(':', 1)[0]}-{port}"
    proc = servers.start(name, aiosys_argv(port, store), f"{base}/readyz", workdir, env)
    return proc, base


def start_mock(servers: Servers, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(BENCH_DIR / "gateway.py"), "--_serve", str(port)]
    # The fast mock has no health route: its chat completion is the health check.
    proc = servers.start(f"mock-{port}", argv, f"{base}/docs", workdir, {"PYTHONPATH": str(REPO)})
    return proc, base


def litellm_missing() -> str | None:
    """Why LiteLLM's proxy cannot run here, or None."""
    if importlib.util.find_spec("litellm") is None:
        return "litellm is not installed (pip install -e '.[bench]')"
    if not Path(sys.executable).with_name("litellm").exists():
        return "the litellm command is not installed"
    return None


def start_litellm(
    servers: Servers, workdir: Path, mock: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(LITELLM_CONFIG.format(card=CARD, model=MODEL, api_base=mock + "/v1"))
    argv = [str(Path(sys.executable).with_name("litellm")), "--config", str(cfg)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    env: dict[str, str | None] = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the remote cost map
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    for var in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_URL", "REDIS_HOST"):
        env[var] = None  # no database, no key, no cache: the proxy alone
    base = f"http://127.0.0.1:{port}"
    proc = servers.start(f"litellm-{port}", argv, f"{base}/health/liveliness", workdir, env)
    return proc, base


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database (the server migrates it), dropped after."""
    import psycopg
    from psycopg import sql

    name = f"aiosys_bench_server_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


# =========================================================================================
# Child: one cell (kind, path, concurrency, stream) in a fresh process
# =========================================================================================


async def drive(
    call: Callable[[], Awaitable[float]], n: int, concurrency: int, pids: dict[str, int]
) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` loops (a closed loop: at most ``concurrency`` in
    flight); ``call`` checks its answer and returns its latency sample (seconds). A request
    that fails (an error status, a wrong answer, a stream cut short) is counted and left
    out of the latencies; more than ``MAX_FAILED`` of them fail the cell."""
    samples: list[float | None] = [None] * n
    failures: list[str] = []
    taken = 0

    async def loop() -> None:
        nonlocal taken
        while taken < n:
            i = taken
            taken += 1
            try:
                samples[i] = await call()
            except Exception as exc:  # counted: a server that fails some requests
                failures.append(f"{type(exc).__name__}: {exc}"[:300])

    busy0 = machine_busy()
    cpu0 = {k: tree_cpu(p) for k, p in pids.items()}
    client0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    wall = time.perf_counter() - wall0
    client = time.process_time() - client0
    cpu = {k: tree_cpu(p) - cpu0[k] for k, p in pids.items()}
    other = (machine_busy() - busy0 - client - sum(cpu.values())) / wall
    if len(failures) > MAX_FAILED * n:
        raise AssertionError(f"{len(failures)} of {n} requests failed; the first: {failures[0]}")
    ms = sorted(1000 * x for x in samples if x is not None)
    return {
        "requests": n,
        "failed_requests": len(failures),
        "first_failure": failures[0] if failures else None,
        "concurrency": concurrency,
        "wall_s": wall,
        "rps": n / wall,
        "p50_ms": percentile(ms, 0.50),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms),
        "max_ms": ms[-1],
        "client_cpu_ms_per_request": 1000 * client / n,
        "cpu_ms_per_request": {k: 1000 * v / n for k, v in cpu.items()},
        "other_load_cores": max(0.0, other),
    }


def make_call(client: Any, spec: dict[str, Any]) -> Callable[[], Awaitable[float]]:
    """The request of a cell on ``client`` (an ``aiohttp.ClientSession`` with its base URL),
    checking each answer."""
    headers = {"content-type": "application/json"}
    if spec["kind"] == "runs":
        url = f"/v1/workflows/{WORKFLOW}/runs"
        run_body = json.dumps({"input": {}}).encode()

        async def start_run() -> float:
            t = time.perf_counter()
            async with client.post(url, data=run_body, headers=headers) as r:
                raw = await r.read()
            dt_ = time.perf_counter() - t
            if r.status != 201 or not json.loads(raw).get("id"):
                raise AssertionError(f"POST {url}: {r.status} {raw[:300]!r}")
            return dt_

        return start_run

    body: dict[str, Any] = {"model": spec["model"], "messages": MESSAGES}
    if not spec["stream"]:
        plain = json.dumps(body).encode()

        async def chat() -> float:
            t = time.perf_counter()
            async with client.post("/v1/chat/completions", data=plain, headers=headers) as r:
                raw = await r.read()
            dt_ = time.perf_counter() - t
            if r.status != 200:
                raise AssertionError(f"chat: {r.status} {raw[:300]!r}")
            content = json.loads(raw)["choices"][0]["message"]["content"]
            if content != EXPECTED:
                raise AssertionError(f"chat answered {content!r}, expected {EXPECTED!r}")
            return dt_

        return chat

    streamed = json.dumps({**body, "stream": True}).encode()

    async def chat_stream() -> float:
        t = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        done = False
        async with client.post("/v1/chat/completions", data=streamed, headers=headers) as r:
            if r.status != 200:
                raise AssertionError(f"stream: {r.status} {(await r.read())[:300]!r}")
            async for raw_line in r.content:  # one line of the event stream at a time
                line = raw_line.decode().strip()
                if not line.startswith("data:"):
                    continue
                if first is None:
                    first = time.perf_counter() - t  # time to the first chunk
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    continue
                for choice in json.loads(data).get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
        text = "".join(parts)
        if not done or text.strip() != EXPECTED or first is None:
            raise AssertionError(f"stream ended {done=} with {text!r}, expected {EXPECTED!r}")
        return first

    return chat_stream


def child_main(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)

    async def main() -> dict[str, Any]:
        import aiohttp

        conc = spec["concurrency"]
        connector = aiohttp.TCPConnector(limit=conc)  # one connection per request in flight
        async with aiohttp.ClientSession(
            base_url=spec["base_url"],
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=60.0),
        ) as client:
            call = make_call(client, spec)
            if spec["warmup"]:
                await drive(call, spec["warmup"], conc, {})
            out = await drive(call, spec["requests"], conc, spec["pids"])
        return {"system": spec["system"], **out}

    result = asyncio.run(main())
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(result))


# =========================================================================================
# Parent: servers, cells, tables, JSON
# =========================================================================================


def run_cell(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    out_path = workdir / f"{spec['system']}-{spec['label']}.json"
    return _run_child(Path(__file__).resolve(), spec, out_path, workdir, timeout)


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repetitions; any failed repetition fails the cell."""
    failed = [r for r in reps if "error" in r]
    if failed:
        return failed[0]
    out: dict[str, Any] = {
        m: _median([r[m] for r in reps])
        for m in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "rps", "client_cpu_ms_per_request")
    }
    out["cpu_ms_per_request"] = {
        k: _median([r["cpu_ms_per_request"][k] for r in reps])
        for k in reps[0]["cpu_ms_per_request"]
    }
    out["repetitions"] = len(reps)
    out["rps_all"] = [round(r["rps"], 1) for r in reps]
    out["other_load_all"] = [round(r["other_load_cores"], 2) for r in reps]
    out["failed_requests"] = sum(r.get("failed_requests", 0) for r in reps)
    out["first_failure"] = next((r["first_failure"] for r in reps if r.get("first_failure")), None)
    return out


def added(reps: dict[str, list[dict[str, Any]]], path: str) -> dict[str, float] | None:
    """The path's latency minus the direct call's, paired by repetition, medians."""
    if path not in reps or "direct" not in reps:
        return None
    if any("error" in r for r in reps[path] + reps["direct"]):
        return None
    pairs = list(zip(reps[path], reps["direct"], strict=False))
    return {q: _median([x[f"{q}_ms"] - d[f"{q}_ms"] for x, d in pairs]) for q in ("p50", "p99")}


def gateway_verdicts(
    gw: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """The issue's targets per (mode, measure), from the paired repetitions."""
    verdicts = []
    for key, reps in gw.items():
        conc, mode = key.split("/")
        a, lite = added(reps, "aiosys"), added(reps, "litellm")
        if a is None or lite is None:
            continue
        for q in ("p50", "p99"):
            ratio = a[q] / lite[q] if lite[q] > 0 else float("nan")
            verdicts.append(
                {
                    "concurrency": int(conc),
                    "mode": mode,
                    "measure": f"added latency {q} (ms)",
                    "aiosys": a[q],
                    "litellm": lite[q],
                    "ratio": ratio,
                    "target": f"<= {TARGET_ADDED_RATIO:g}",
                    "pass": ratio <= TARGET_ADDED_RATIO,
                }
            )
        if int(conc) == TARGET_CONCURRENCY:
            per_rep = [
                x["rps"] / y["rps"] for x, y in zip(reps["aiosys"], reps["litellm"], strict=False)
            ]
            verdicts.append(
                {
                    "concurrency": int(conc),
                    "mode": mode,
                    "measure": "requests/s",
                    "aiosys": _median([r["rps"] for r in reps["aiosys"]]),
                    "litellm": _median([r["rps"] for r in reps["litellm"]]),
                    "ratio": _median(per_rep),
                    "target": f">= {TARGET_RPS_RATIO:g}",
                    "pass": _median(per_rep) >= TARGET_RPS_RATIO,
                }
            )
    return verdicts


def environment(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            d: _version(d)
            for d in ("aiosys", "aiohttp", "litellm", "uvicorn", "fastapi", "uvloop", "psycopg")
        },
        **git_state(REPO),
        "loadavg_at_start": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _progress(console: Any, what: str, res: dict[str, Any]) -> None:
    if "error" in res:
        console.print(f"[red]{what} failed:[/]\n{res['error']}")
        return
    cpu = "  ".join(f"{k} CPU {v:.2f}" for k, v in res["cpu_ms_per_request"].items())
    console.print(
        f"  {what:<28} p50 {res['p50_ms']:7.2f}  p99 {res['p99_ms']:7.2f} ms  "
        f"{res['rps']:7.0f} req/s  {cpu} ms/req  other load {res['other_load_cores']:.2f}"
    )


def measure_runs(
    args: argparse.Namespace, servers: Servers, tmp: Path, console: Any
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{"<store>/c<conc>": {"aiosys": [repetitions]}}: a fresh server per (store, rep)."""
    stores = [s for s in STORES if s in args.only]
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rep in range(args.repeat):
        order = stores[rep % len(stores) :] + stores[: rep % len(stores)]
        for store in order:
            with contextlib.ExitStack() as stack:
                if store == "postgres":
                    url = stack.enter_context(pg_database(args.pg_admin_url))
                else:
                    url = f"sqlite:///{tmp}/runs-r{rep}.db"
                proc, base = start_aiosys(servers, tmp, url)
                stack.callback(servers.stop, proc)
                for conc in args.concurrency:
                    spec = {
                        "system": f"runs-{store}",
                        "label": f"c{conc}-r{rep}",
                        "kind": "runs",
                        "base_url": base,
                        "concurrency": conc,
                        "requests": args.runs,
                        "warmup": args.warmup,
                        "pids": {"aiosys": proc.pid},
                    }
                    res = run_cell(spec, tmp, args.timeout)
                    out.setdefault(f"{store}/c{conc}", {}).setdefault("aiosys", []).append(res)
                    _progress(console, f"runs {store} c={conc} #{rep + 1}", res)
    return out


def measure_gateway(
    args: argparse.Namespace, servers: Servers, tmp: Path, console: Any, env: dict[str, Any]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{"<conc>/<plain|stream>": {path: [repetitions]}}; the servers stay up throughout."""
    mock, mock_url = start_mock(servers, tmp)
    aiosys, aiosys_url = start_aiosys(servers, tmp, f"sqlite:///{tmp}/gateway.db", mock_url)
    targets: dict[str, tuple[str, dict[str, int], str]] = {
        "direct": (mock_url, {"mock": mock.pid}, MODEL),
        "aiosys": (aiosys_url, {"aiosys": aiosys.pid, "mock": mock.pid}, CARD),
    }
    why = litellm_missing()
    if why is None:
        try:
            lite, lite_url = start_litellm(servers, tmp, mock_url)
            targets["litellm"] = (lite_url, {"litellm": lite.pid, "mock": mock.pid}, CARD)
        except RuntimeError as exc:
            why = f"its proxy did not start: {exc}"
    if why is not None:
        env["litellm_skipped"] = why
        console.print(f"[yellow]LiteLLM skipped ({why}): its columns and the targets are out.[/]")
    paths = [p for p in PATHS if p in targets]
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rep in range(args.repeat):
        order = paths[rep % len(paths) :] + paths[: rep % len(paths)]
        for conc in args.concurrency:
            for mode in ("plain", "stream"):
                for path in order:
                    base, pids, model = targets[path]
                    spec = {
                        "system": f"chat-{path}",
                        "label": f"c{conc}-{mode}-r{rep}",
                        "kind": "chat",
                        "stream": mode == "stream",
                        "model": model,
                        "base_url": base,
                        "concurrency": conc,
                        "requests": args.requests,
                        "warmup": args.warmup,
                        "pids": pids,
                    }
                    res = run_cell(spec, tmp, args.timeout)
                    out.setdefault(f"{conc}/{mode}", {}).setdefault(path, []).append(res)
                    _progress(console, f"chat {path} c={conc} {mode} #{rep + 1}", res)
    return out


def print_tables(
    console: Any,
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    gw: dict[str, dict[str, list[dict[str, Any]]]],
    verdicts: list[dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    from rich.table import Table

    if runs:
        t = Table(
            title=f"Runs started over HTTP (POST /v1/workflows/{WORKFLOW}/runs, aiosys server "
            f"with its in-process worker): {args.runs} per cell after {args.warmup} warm-up, "
            f"median of {args.repeat} repetition(s); latency in ms",
            title_justify="left",
        )
        for col in ("store", "conc", "runs/s", "p50", "p95", "p99", "server CPU ms/run"):
            t.add_column(col, justify="left" if col == "store" else "right")
        for key, by in runs.items():
            store, conc = key.split("/c")
            r = summarize(by["aiosys"])
            if "error" in r:
                t.add_row(store, conc, "[red]failed[/]", "", "", "", "")
                continue
            t.add_row(
                store,
                conc,
                _f(r["rps"], ",.0f"),
                _f(r["p50_ms"]),
                _f(r["p95_ms"]),
                _f(r["p99_ms"]),
                _f(r["cpu_ms_per_request"]["aiosys"]),
            )
        console.print(t)

    if gw:
        t = Table(
            title=f"Chat completions to a local instant OpenAI-compatible server: "
            f"{args.requests} per cell after {args.warmup} warm-up, median of {args.repeat} "
            f"repetition(s); streamed: time to first chunk; latency in ms",
            title_justify="left",
        )
        cols = ("conc", "mode", "path", "p50", "p99", "+p50", "+p99", "req/s")
        for col in (*cols, "server CPU ms/req", "mock CPU ms/req", "other load"):
            t.add_column(col, justify="left" if col in ("mode", "path") else "right")
        for key, by in gw.items():
            conc, mode = key.split("/")
            for path in PATHS:
                if path not in by:
                    continue
                r = summarize(by[path])
                if "error" in r:
                    t.add_row(conc, mode, path, "[red]failed[/]", *[""] * 7)
                    continue
                a = added(by, path) if path != "direct" else None
                cpu = r["cpu_ms_per_request"]
                t.add_row(
                    conc,
                    mode,
                    path,
                    _f(r["p50_ms"]),
                    _f(r["p99_ms"]),
                    _f(a["p50"] if a else None),
                    _f(a["p99"] if a else None),
                    _f(r["rps"], ",.0f"),
                    _f(cpu.get(path)),
                    _f(cpu.get("mock")),
                    ",".join(f"{x:.1f}" for x in r["other_load_all"]),
                )
            t.add_section()
        console.print(t)
        for key, by in gw.items():
            for path in PATHS:
                r = summarize(by[path]) if path in by else {}
                if r.get("failed_requests"):
                    console.print(
                        f"[yellow]{path} at {key}: {r['failed_requests']} request(s) failed "
                        f"(left out of the latencies); the first: {r['first_failure']}[/]"
                    )

    if verdicts:
        t = Table(title="aiosys against LiteLLM's proxy (targets from issue 13)")
        for col in ("conc", "mode", "measure", "aiosys", "LiteLLM", "ratio", "target", ""):
            t.add_column(col, justify="left" if col in ("mode", "measure") else "right")
        for v in verdicts:
            t.add_row(
                str(v["concurrency"]),
                v["mode"],
                v["measure"],
                _f(v["aiosys"], ",.2f"),
                _f(v["litellm"], ",.2f"),
                _f(v["ratio"], ".3f"),
                v["target"],
                "[green]PASS[/]" if v["pass"] else "[red]FAIL[/]",
            )
        console.print(t)


def parent_main(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 170)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f".server-{stamp}-", dir=RESULTS_DIR))
    env = environment(args)
    v = env["versions"]
    console.print(
        f"[bold]bench/server.py[/]  aiosys {v['aiosys']} (git {env['git_head']}"
        f"{', src dirty' if env['git_dirty'] else ''}, src {env['src_sha256']})  "
        f"LiteLLM {v['litellm']}  uvicorn {v['uvicorn']}  uvloop {v['uvloop']}  "
        f"Python {env['python']}  {env['cpus']} CPUs  "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    servers = Servers()
    # SIGTERM (a CI timeout, kill) ends through the finally below, servers and all.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    gw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        if any(s in args.only for s in STORES):
            runs = measure_runs(args, servers, tmp, console)
        if "gateway" in args.only:
            gw = measure_gateway(args, servers, tmp, console, env)
    except RuntimeError as exc:  # a server that would not start: its log's tail
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        servers.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    verdicts = gateway_verdicts(gw)
    console.print()
    print_tables(console, runs, gw, verdicts, args)
    env["loadavg_at_end"] = os.getloadavg()
    every = [r for part in (runs, gw) for by in part.values() for rs in by.values() for r in rs]
    others = [r["other_load_cores"] for r in every if "other_load_cores" in r]
    console.print(
        "[dim]Added (+) = the path's percentile - the direct call's at the same concurrency "
        "and mode, median over repetitions of the difference within each. Server CPU = the "
        "server process's (and its children's) CPU over the timed section / requests "
        "(/proc). Other load = cores the rest of the machine used meanwhile.[/]"
    )
    if others and _median(others) > 0.25:
        console.print(
            f"[yellow]Other work used a median {_median(others):.2f} cores (max "
            f"{max(others):.2f}) of the {env['cpus']} during the timed sections: repeat when "
            f"the machine is quieter.[/]"
        )
    if env.get("litellm_skipped"):
        console.print(f"[yellow]LiteLLM skipped: {env['litellm_skipped']}[/]")
    out = RESULTS_DIR / f"server-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "environment": env,
                "runs": {
                    k: {**{"summary": summarize(by["aiosys"])}, **by} for k, by in runs.items()
                },
                "gateway": {
                    k: {p: {"summary": summarize(rs), "repetitions": rs} for p, rs in by.items()}
                    for k, by in gw.items()
                },
                "verdicts": verdicts,
            },
            indent=2,
        )
    )
    console.print(f"\n[dim]results: {out.relative_to(REPO)}[/]")
    return 1 if any("error" in r for r in every) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(__doc__)
    p.add_argument("--requests", type=int, default=2000, help="timed chat requests per cell")
    p.add_argument("--runs", type=int, default=2000, help="timed runs started per cell")
    p.add_argument("--warmup", type=int, default=200, help="untimed requests per cell first")
    p.add_argument(
        "--only",
        type=choice_list(PARTS, "part"),
        default=list(PARTS),
        help="comma-separated subset of sqlite,postgres (runs started) and gateway",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 60 requests and runs per cell after 10 warm-up",
    )
    p.add_argument("--pg-admin-url", default=PG_ADMIN, help="where to create the database")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite files)")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.runs, args.warmup = 60, 60, 10
    if min(args.requests, args.runs, args.repeat) < 1 or args.warmup < 0:
        p.error("--requests, --runs and --repeat must be >= 1, --warmup >= 0")
    return args


if __name__ == "__main__":
    a = parse_args()
    if a._child:
        child_main(a._child, a._out)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(parent_main(a))
