"""An app for the tests of ``aiosys run`` serving its own run (``--app ownruns:app``)."""

from __future__ import annotations

from aiosys import App, Context

app = App()
# A queue with a global limit: a run started on it is not leased at its start but claimed,
# so a child on it reaches the worker through the claim query.
app.queue("limited", concurrency=4)


@app.workflow
async def greet(ctx: Context, name: str) -> str:
    return f"hello {name}"


@app.workflow(queue="limited")
async def grandchild(ctx: Context, name: str) -> str:
    return f"grand {name}"


@app.workflow(queue="limited")
async def child(ctx: Context, name: str) -> str:
    return await ctx.child("grandchild", {"name": name}) + " via child"


@app.workflow
async def family(ctx: Context, name: str) -> str:
    """A run whose child (on a claimed queue) starts a grandchild and waits for it."""
    return await ctx.child("child", {"name": name})


@app.step
async def unfinished_greets() -> int:
    runs = await app.list_runs(workflow="greet", limit=1000)
    return sum(r.status not in ("succeeded", "failed", "cancelled", "dead") for r in runs)


@app.workflow
async def until_greeted(ctx: Context) -> int:
    """Ends when no run of ``greet`` is left unfinished (parking between looks)."""
    for looks in range(1, 2001):
        if await unfinished_greets() == 0:
            return looks
        await ctx.sleep(0.02)
    raise RuntimeError("the greet runs never finished")


@app.workflow
async def naps(ctx: Context) -> str:
    """Sleeps (parked) long enough for a status line to be drawn, were one drawn."""
    await ctx.sleep(0.6)
    return "rested"
