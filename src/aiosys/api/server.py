"""``serve``: the HTTP API on uvicorn, as ``aiosys server`` runs it.

Shutdown drains like ``aiosys worker``: the first SIGTERM or SIGINT stops accepting
connections, lets the requests in flight finish (up to the grace period), then leaves the
API's lifespan, which stops the in-process worker with the same grace (runs in flight end or
park, the rest are given back to the queue) and closes the app. A second signal gives the
runs back at once. Either way the process ends normally (uvicorn would raise the signal
again after its shutdown, which kills the process with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn

from ..app import App
from ._app import create_api

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server whose second signal also forces the worker's drain, and whose
    signals are not raised again once it has shut down."""

    def __init__(self, config: uvicorn.Config, embedded: Any) -> None:
        super().__init__(config)
        self.embedded = embedded
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if sockets and self.started:  # uvicorn logs where it listens only for its own sockets
            self._log_started_message(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.should_exit = True
            return
        self.force_exit = True  # stop waiting for connections
        if self.embedded is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.embedded.force)

    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets)
        done = getattr(self.lifespan, "shutdown_event", None)
        if self.force_exit and done is not None and not done.is_set():
            await self.lifespan.shutdown()  # uvicorn leaves it out when forced: close the app


async def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    worker: bool = True,
    grace: float = 30.0,
    log_level: str = "info",
    max_body_size: int | str | None = None,
) -> None:
    """Serve ``app``'s HTTP API on ``host``:``port`` until SIGTERM or SIGINT; with
    ``worker``, run its worker in this process (the embedded default). ``grace``: seconds
    requests, then runs, in flight get to end at shutdown (see the module).
    ``max_body_size``: the cap on a request's body (``create_api``). ``OSError``
    naming the address when it cannot be listened on (in use, a host that does not
    resolve), before the worker starts: uvicorn would start the app and its worker first,
    then log the error and exit with its own status. The app is opened before it listens
    (``App.open(background=True)``): its store's error is raised here; its models load while
    it serves (``/healthz`` answers, ``/readyz`` is 503 saying what is loading)."""
    listener = _listen(host, port)
    try:
        # Opened here, its warm-up (providers, the redaction detector: seconds) left to run
        # while it serves: the lifespan's open only counts, so /healthz answers at once and
        # /readyz says what is loading until the warm-up ends.
        await app.open(background=True)
    except BaseException:
        listener.close()
        raise
    try:
        await _serve(app, listener, host, port, worker, grace, log_level, max_body_size)
    finally:
        await app.close()


async def _serve(
    app: App,
    listener: socket.socket,
    host: str,
    port: int,
    worker: bool,
    grace: float,
    log_level: str,
    max_body_size: int | str | None,
) -> None:
    api = create_api(app, worker=worker, drain_grace=grace, max_body_size=max_body_size)
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go to the process's logging (aiosys's JSON lines)
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(grace),  # 0: requests in flight are cut at once
        server_header=False,
        access_log=False,
    )
    with listener:
        await _Server(config, api.state.embedded).serve(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (the family the host resolves to);
    ``OSError`` saying which address and why when it cannot be."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


__all__ = ["serve"]
