"""A workflow whose step kills its worker process (as an OOM kill or a native crash does),
for the recovery-cap acceptance test. Each execution of the step appends a line to the file
named by ``AIOSYS_POISON_LOG`` before the process dies."""

from __future__ import annotations

import os

from aiosys import App, Context

app = App()


@app.step
def crash() -> None:
    fd = os.open(os.environ["AIOSYS_POISON_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.fsync(fd)
    os.close(fd)
    os._exit(137)


@app.workflow(max_recoveries=2)
async def poison(ctx: Context) -> None:
    await crash()
