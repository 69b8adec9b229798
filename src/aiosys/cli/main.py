"""The ``aiosys`` command (typer + rich)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import AiosysError
from ..kernel import App, Worker

cli = typer.Typer(help="aiosys: durable, governed, observable AI workflows.", no_args_is_help=True)
err = Console(stderr=True)

AppOption = Annotated[
    str | None,
    typer.Option("--app", help="The app as module:attribute (default: `app` in aiosys.toml)."),
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (default: AIOSYS_STORE, aiosys.toml, or SQLite)."),
]


@cli.callback()
def _root() -> None:
    """aiosys: durable, governed, observable AI workflows."""


def load_app(ref: str | None, store: str | None = None) -> App:
    """Import ``module:attribute``; the current directory is importable, as with uvicorn."""
    if ref is None and Path("aiosys.toml").is_file():
        with Path("aiosys.toml").open("rb") as f:
            value = tomllib.load(f).get("app")
        ref = value if isinstance(value, str) else None
    if not ref:
        raise AiosysError("no app given: pass --app module:attribute or set app = in aiosys.toml")
    module_name, _, attr = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AiosysError(f"cannot import app module {module_name!r}: {exc}") from None
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise AiosysError(f"{ref!r} is not an aiosys App (found {type(app).__name__})")
    if store:
        app._store_arg = store
        app._store = None
    return app


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@cli.command()
def worker(
    app: AppOption = None,
    store: StoreOption = None,
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q", help="Queues to serve.")] = None,
    concurrency: Annotated[int, typer.Option(help="Runs in flight in this worker.")] = 64,
    lease: Annotated[float, typer.Option(help="Lease seconds; renewed every third.")] = 30.0,
) -> None:
    """Run a worker: claim runs from the store and execute them until stopped."""
    try:
        the_app = load_app(app, store)
    except AiosysError as exc:
        fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        await the_app.open()
        w = Worker(the_app, queues=queue or None, concurrency=concurrency, lease=lease)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await w.start()
        err.print(f"worker {w.id} on {the_app.store.url}, queues: {', '.join(w.queues)}")
        try:
            await stop.wait()
        finally:
            await w.stop()
            await the_app.close()

    asyncio.run(main())


def main() -> None:
    cli()
