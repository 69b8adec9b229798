"""A small app for the CLI tests (``--app cliapp:app`` with this directory on sys.path)."""

from __future__ import annotations

from typing import Any

import pydantic

from aiosys import App, Context, PermanentError, Retry, TransientError, current_step

app = App()


class Review(pydantic.BaseModel):
    """The form of an edit of ``reviewed``'s task."""

    summary: str
    score: int = pydantic.Field(ge=0, le=10)


@app.step(retry=Retry(attempts=3, backoff=0.0, jitter=0.0))
def flaky_double(x: int) -> int:
    """Fails transiently on its first attempt, so its effect records attempt 2."""
    info = current_step()
    if info is not None and info.attempt == 1:
        raise TransientError("not yet")
    return 2 * x


@app.step
def broken() -> None:
    raise PermanentError("broken for good")


@app.workflow
async def greet(ctx: Context, name: str) -> str:
    return f"hello {name}"


@app.workflow
async def double(ctx: Context, x: int) -> dict[str, int]:
    return {"doubled": await flaky_double(x)}


@app.workflow
async def dies(ctx: Context) -> None:
    await broken()


@app.workflow
async def waits(ctx: Context) -> Any:
    return await ctx.wait_for("go", timeout=60)


@app.workflow
async def crashes(ctx: Context, n: int = 0) -> None:
    """Raises in the workflow's own body (no effect failed)."""
    raise ValueError(f"bad n {n}")


@app.workflow
async def reviewed(ctx: Context, text: str = "a letter") -> dict[str, Any]:
    """A human task for a paralegal; returns the decision."""
    decision = await ctx.human_task(
        "review", role="paralegal", data={"summary": text, "score": 5}, form=Review, sla="2d"
    )
    return decision.model_dump(mode="json")
