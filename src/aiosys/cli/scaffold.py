"""``aiosys init``: the files a new project starts from."""

from __future__ import annotations

from pathlib import Path

from ..store import DEFAULT_URL

AIOSYS_TOML = f"""\
# aiosys settings for this directory. AIOSYS_STORE and --store take precedence over `store`.
app = "workflows:app"
# SQLite (embedded, the default) or postgresql://user@host:5432/dbname (scale-out)
store = "{DEFAULT_URL}"
# Workers delete runs that ended longer ago than this, with their rows (default: keep forever)
# retention = "30d"
"""

WORKFLOWS_PY = '''\
"""Example workflows. Try:

    aiosys run greet --input '{"name": "Ada"}'
    aiosys runs list
"""

from aiosys import App, Context, Retry

app = App()  # store from AIOSYS_STORE or aiosys.toml


@app.step(retry=Retry(attempts=3, backoff=0.5))
def shout(text: str) -> str:
    return text.upper()


@app.workflow(version="1")
async def greet(ctx: Context, name: str) -> dict:
    loud = await shout(f"hello, {name}")
    await ctx.sleep(0.1)  # a durable timer
    return {"greeting": loud}
'''

FILES = {"aiosys.toml": AIOSYS_TOML, "workflows.py": WORKFLOWS_PY}


def scaffold(directory: Path) -> list[tuple[Path, bool]]:
    """Write the files that are absent; each path with whether it was written."""
    done = []
    for name, text in FILES.items():
        path = directory / name
        written = not path.exists()
        if written:
            path.write_text(text, encoding="utf-8")
        done.append((path, written))
    return done
