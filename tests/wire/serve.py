"""Run an ASGI app with uvicorn on 127.0.0.1, on a free port, in a background thread.

::

    with run_server(app) as base_url:   # "http://127.0.0.1:<port>"
        ...

    async with serve_here(app) as base_url:   # in the test's own event loop
        ...

The socket is bound before the thread starts (port 0: the OS picks a free port, so there
is no race for it); the context waits until uvicorn says it has started, and on exit asks
it to stop and joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn


@contextmanager
def run_server(
    app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 10.0
) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # A request still held by a slow behaviour must not hold the shutdown for long.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"wire-server-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{port} exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server on {host}:{port} did not start in {startup_timeout}s"
                )
            time.sleep(0.005)  # polling uvicorn's `started` flag, which has no event to wait on
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@asynccontextmanager
async def serve_here(app: Any, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the running event loop (the test's), on a free port:
    the app's objects (an ``aiosys.App``, an ``asyncio.Event`` a test sets) live in the
    loop the test awaits in. The socket listens before the server starts, so a client
    that connects first waits in the backlog: nothing to poll for."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
