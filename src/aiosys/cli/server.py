"""``aiosys server``: the HTTP API (``aiosys.api``) on uvicorn, with a worker in the same
process unless ``--no-worker``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AiosysError
from .common import (
    AppOption,
    CreateFlag,
    StoreOption,
    _toml_app,
    create_store_dir,
    exit_past_step_threads,
    fail,
    has_credential,
    load_app,
)

log = logging.getLogger("aiosys.api")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's: the
    server's loop runs every request's callbacks, and uvloop's (libuv, in C) costs about a
    sixth less CPU per gateway request than asyncio's pure Python one. uvicorn picks
    httptools' HTTP parser by itself when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        return None
    return uvloop.new_event_loop


def _config_dir(config: Path) -> Path:
    """The directory ``--config`` puts the server in: the one holding ``aiosys.toml``."""
    if config.is_dir():
        config = config / "aiosys.toml"
    if config.name != "aiosys.toml":
        fail(f"--config {config}: name an aiosys.toml file or the directory that holds one")
    if not config.is_file():
        fail(f"--config {config}: no such file")
    return config.parent


def server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Serve the API only (scale-out: `aiosys worker` processes run the runs).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="An aiosys.toml (or its directory): the server runs there, so its app, "
            "store, policies/ and models/ are found as the other commands find them there.",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0.0,
            help="On SIGTERM/SIGINT, seconds requests and then runs in flight get to end "
            "before the runs are given back; a second signal gives them back at once.",
        ),
    ] = 30.0,
    max_body_size: Annotated[
        str | None,
        typer.Option(
            "--max-body-size",
            help="The cap on a request's body (bytes, or 512KiB, 16MiB, ...): a larger one "
            "is answered 413 before it is read whole. Default: $AIOSYS_MAX_BODY_SIZE, else "
            "max_body_size under [server] in aiosys.toml, else 8MiB.",
        ),
    ] = None,
    app: AppOption = None,
    store: StoreOption = None,
    create: CreateFlag = False,
) -> None:
    """Serve the HTTP API (/v1, /metrics, /healthz, /readyz; OpenAPI at /openapi.json).

    The embedded default is one process: the API and a worker on the app's store, so
    `aiosys server` alone is a working system. With --no-worker it serves the API only,
    beside `aiosys worker` processes sharing a PostgreSQL store. Callers authenticate
    with `Authorization: Bearer <API key or OIDC token>`; without identity configured,
    requests without it act as the local principal."""
    from ..api._limits import resolve_max_body_size
    from ..app import App as PublicApp
    from ..observe.logs import configure_cli
    from ..redact import mask_url

    if has_credential():
        fail(
            "a server serves every tenant and authenticates each request itself: run it "
            "without an API key (unset AIOSYS_API_KEY, drop --api-key)"
        )
    if config is not None:
        os.chdir(_config_dir(config))
    try:
        the_app = load_app(app, store) if app or _toml_app() else PublicApp(store=store)
        if create:
            create_store_dir(the_app)
    except AiosysError as exc:
        fail(str(exc))
    if not isinstance(the_app, PublicApp):
        fail(
            f"aiosys server serves an aiosys.App (it authenticates callers with its "
            f"identity), not {type(the_app).__module__}.{type(the_app).__name__}"
        )
    try:  # a cap that is no size: one line now, not a traceback once serving
        limit = resolve_max_body_size(max_body_size)
    except AiosysError as exc:
        fail(str(exc))
    configure_cli(logging.INFO)

    async def main() -> None:
        from ..api.server import serve

        # A store that cannot be opened is one error line, here; the models load while
        # the server answers (/healthz at once, /readyz once loaded).
        await the_app.open(background=True)
        try:
            where = mask_url(the_app.store.url)
            mode = "API only" if no_worker else "API and a worker"
            log.info("aiosys server on http://%s:%d (%s), store %s", host, port, mode, where)
            await serve(
                the_app,
                host=host,
                port=port,
                worker=not no_worker,
                grace=grace,
                max_body_size=limit,
            )
        finally:
            await the_app.close()
        log.info("aiosys server stopped")
        exit_past_step_threads(log, "aiosys server")

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except (AiosysError, OSError) as exc:
        fail(str(exc))


__all__ = ["server"]
