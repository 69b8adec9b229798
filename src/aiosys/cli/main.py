"""The ``aiosys`` command (typer + rich).

Commands that run workflows (``run``, ``demo``, ``worker``) execute them in this process;
``start`` and the ``runs`` commands only touch the store, so they work next to any worker.
The kernel, the model plane and pydantic are imported by the commands that use them, not
when the command starts (``aiosys runs list`` never pays for them: tests/unit/test_cli_startup).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import AiosysError, RunFailed
from ..store import DEFAULT_URL
from ..store.base import SUCCEEDED, RunRow
from .audit import audit
from .common import (
    ApiKeyOption,
    AppOption,
    CreateFlag,
    JsonFlag,
    OneLineErrors,
    StoreOption,
    as_caller,
    console,
    create_store_dir,
    echo_json,
    err,
    exit_past_step_threads,
    fail,
    has_credential,
    load_app,
    parse_json,
    run_async,
    set_credential,
    tenant_name,
)
from .keys import keys
from .lineage import lineage
from .metrics import metrics as _metrics
from .models import models
from .policy import policy
from .prune import prune as _prune  # noqa: F401  (registers `aiosys runs prune`)
from .render import error_message, run_dict
from .runs import runs
from .server import server
from .stats import slo, stats
from .tasks import tasks

log = logging.getLogger("aiosys.worker")

#: The console's pages, as the demo names them (its nav links, tests/integration/
#: test_demo_serve.py); lineage is not one of them (``aiosys lineage show``, printed above).
CONSOLE_PAGES = "runs, the inbox, models, audit, stats, budgets"

_LOCAL_ONLY = "{what}: run it without an API key (unset AIOSYS_API_KEY, drop --api-key)"

cli = typer.Typer(
    help="aiosys: durable, governed, observable AI workflows.",
    no_args_is_help=True,
    cls=OneLineErrors,
)
cli.add_typer(runs, name="runs")
cli.add_typer(tasks, name="tasks")
cli.add_typer(models, name="models")
cli.add_typer(keys, name="keys")
cli.add_typer(policy, name="policy")
cli.add_typer(audit, name="audit")
cli.add_typer(lineage, name="lineage")
cli.add_typer(slo, name="slo")
cli.command("stats")(stats)
cli.command("metrics")(_metrics)
cli.command("server")(server)

WorkflowArg = Annotated[str, typer.Argument(help="The workflow's name.")]
InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        help="The workflow's parameters as a JSON object; @file.json reads a file, - stdin.",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Starting again with this key returns the same run."),
]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        callback=tenant_name,
        help="The tenant the run belongs to (default: the API key's, else 'default').",
    ),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"aiosys {version('aiosys')}")
        except PackageNotFoundError:  # run from a source tree that is not installed
            typer.echo("aiosys (not installed: version unknown)")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="Print the version."),
    ] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """aiosys: durable, governed, observable AI workflows."""
    set_credential(api_key)


@cli.command()
def run(
    workflow: WorkflowArg,
    input: InputOption = None,
    idempotency_key: KeyOption = None,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    serve_others: Annotated[
        bool,
        typer.Option(
            "--serve-others",
            help="Also execute the store's other pending runs of the app's workflows, as "
            "a worker does, while this run lasts (default: only this run and its children).",
        ),
    ] = False,
    app: AppOption = None,
    store: StoreOption = None,
    create: CreateFlag = False,
) -> None:
    """Start a run and execute it in this process; print its result (--json: its record).

    Only this run and the child runs it starts are executed here, unless --serve-others
    is given: other pending runs stay in the store for a worker. On a terminal, a spinner
    on stderr names what the run is doing or waiting for."""
    from ..observe.logs import configure_cli
    from .status import show_status

    if serve_others and has_credential():
        fail(
            _LOCAL_ONLY.format(
                what="--serve-others executes every tenant's pending runs, as a worker does"
            )
        )
    data = parse_json(input, "--input")
    configure_cli(logging.WARNING)  # the spinner says what the run does; problems are logged

    async def body() -> tuple[RunRow, bool]:
        the_app = load_app(app, store)
        if create:
            create_store_dir(the_app)
        async with the_app.embedded(own_runs_only=not serve_others), as_caller(the_app):
            handle = await the_app.start(
                workflow, data, idempotency_key=idempotency_key, tenant=tenant
            )
            spinner = asyncio.create_task(show_status(the_app.store, handle.id, err))
            try:
                await handle.result()
            except RunFailed:  # reported from the run's row below
                pass
            finally:
                spinner.cancel()
                await asyncio.gather(spinner, return_exceptions=True)
            return await handle.row(), handle.created

    row, created = run_async(body)
    if not created:
        err.print(f"idempotency key {idempotency_key!r}: existing run {row.id}", markup=False)
    if json_:  # the run's record, whatever its end (the exit code says which)
        echo_json(run_dict(row))
    if row.status != SUCCEEDED:
        fail(f"run {row.id} ({row.workflow}) ended {row.status}: {error_message(row.error)}")
    if json_:
        return
    result: Any = run_dict(row)["result"]
    err.print(f"run {row.id} {row.status}", style="dim", markup=False)
    if isinstance(result, str):
        typer.echo(result)
    else:
        echo_json(result)


@cli.command()
def start(
    workflow: WorkflowArg,
    input: InputOption = None,
    idempotency_key: KeyOption = None,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
    create: CreateFlag = False,
) -> None:
    """Record a run as pending for a worker to take; print its id."""
    data = parse_json(input, "--input")

    async def body() -> tuple[RunRow, bool]:
        the_app = load_app(app, store)
        if create:
            create_store_dir(the_app)
        await the_app.open()
        try:
            async with as_caller(the_app):
                handle = await the_app.start(
                    workflow, data, idempotency_key=idempotency_key, tenant=tenant
                )
                return await handle.row(), handle.created
        finally:
            await the_app.close()

    row, created = run_async(body)
    if json_:
        echo_json({**run_dict(row), "created": created})
    elif created:
        typer.echo(row.id)
    else:
        typer.echo(f"{row.id} (existing run: idempotency key {idempotency_key!r}, {row.status})")


@cli.command()
def demo(
    store: Annotated[
        str | None,
        typer.Option("--store", help=f"Store URL (default: {DEFAULT_URL})."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the web console and HTTP API on the demo's store until Ctrl-C "
            "(./run demo does).",
        ),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
) -> None:
    """Run the built-in document-intake demo here, a paralegal reviewing each document.

    Three documents (a scanned letter, two e-mails) go through OCR and a summary to a
    paralegal's review, decided by the demo as pat; then the letter's run's result, timeline
    and lineage; with --serve, the console on the demo's store."""
    from .demo import run_demo, show_outcome

    if has_credential():
        fail(_LOCAL_ONLY.format(what="the demo runs in its own tenant"))
    url = store or DEFAULT_URL
    out = console()
    outcome = run_async(lambda: run_demo(url, out))
    show_outcome(out, url, outcome)
    failed = any(r.status != SUCCEEDED for r in (outcome.row, *outcome.others))
    if serve:
        from ..api.server import serve as serve_api
        from ..demo import app as demo_app

        where = f"http://{host}:{port}/"
        out.print(
            f"\nthe console ({CONSOLE_PAGES}) on the demo's store: {where}"
            "\n(the HTTP API beside it: /v1/..., /openapi.json; Ctrl-C stops it)",
            markup=False,
            highlight=False,
        )
        run_async(lambda: serve_api(demo_app, host=host, port=port, worker=True, grace=5.0))
    if failed:
        raise typer.Exit(1)


@cli.command()
def init() -> None:
    """Write aiosys.toml and an example workflows.py here (files that exist are kept)."""
    from rich.text import Text

    from .scaffold import scaffold

    out = console()
    for path, written in scaffold(Path.cwd()):
        verb = ("wrote", "green") if written else ("kept ", "dim")
        out.print(Text.assemble(verb, f" {path.name}"))
    out.print('next: aiosys run greet --input \'{"name": "Ada"}\'', markup=False, highlight=False)


@cli.command()
def worker(
    app: AppOption = None,
    store: StoreOption = None,
    create: CreateFlag = False,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Queues to serve.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs in flight in this worker.")] = 64,
    lease: Annotated[
        float, typer.Option(min=0.1, help="Lease seconds; renewed every third.")
    ] = 30.0,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0.0,
            help="On SIGTERM/SIGINT, seconds to let runs in flight finish before giving "
            "them back; a second signal gives them back at once.",
        ),
    ] = 30.0,
) -> None:
    """Run a worker: claim runs from the store and execute them until stopped.

    The first SIGTERM or SIGINT drains it: no more claims, runs in flight go on until they
    end or park or the grace period passes, then the rest are given back to the queue for
    another worker. A second signal gives them back at once. Either way it exits 0."""
    from ..kernel import Worker
    from ..redact import mask_url

    if has_credential():
        fail(
            _LOCAL_ONLY.format(
                what="a worker serves every tenant and executes each run as the principal "
                "that started it"
            )
        )
    try:
        the_app = load_app(app, store)
        if create:
            create_store_dir(the_app)
    except AiosysError as exc:
        fail(str(exc))
    unknown = [q for q in queue or [] if q not in the_app.queues]
    if unknown:
        fail(
            f"queue {', '.join(map(repr, unknown))} is not declared by the app "
            f"(its queues: {', '.join(the_app.queues)}); declare it with app.queue(...) or "
            "@app.workflow(queue=...)"
        )
    from ..observe.logs import configure_cli

    configure_cli(logging.INFO)  # JSON lines on stderr, unless it is a terminal

    async def main() -> None:
        await the_app.open()
        w = Worker(
            the_app, queues=queue or None, concurrency=concurrency, lease=lease, drain_grace=grace
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            if not stop.is_set():
                log.info("%s: draining (grace %gs); send it again to stop at once", sig.name, grace)
                stop.set()
            else:
                log.warning("%s again: giving back the runs in flight now", sig.name)
                w.force()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        await w.start()
        where = mask_url(the_app.store.url)
        log.info("worker %s on %s, queues: %s", w.id, where, ", ".join(w.queues))
        try:
            await stop.wait()
        finally:
            await w.drain()
            await the_app.close()
            log.info("worker %s stopped", w.id)
        exit_past_step_threads(log, f"worker {w.id}")

    try:
        asyncio.run(main())
    except (AiosysError, OSError) as exc:  # the store cannot be opened, say
        fail(str(exc))


def main() -> None:
    cli()


__all__ = ["cli", "load_app", "main"]
