"""``App.list_runs`` pages by cursor and filters by creation time, ``App.readiness`` says
whether the store answers with this code's schema, and a start's priority is refused
before any store sees it when it is not a 32-bit integer: on both stores."""

from __future__ import annotations

import pytest
from tests.integration.conftest import forget_migration

from aiosys import App, Context
from aiosys.errors import InvalidInput
from aiosys.kernel.cursor import parse_run_cursor, run_cursor


def make_app(store_url: str) -> App:
    app = App(store_url)

    @app.workflow
    async def noop(ctx: Context) -> None:
        return None

    return app


async def test_list_runs_pages_by_cursor_and_filters_by_time(store_url):
    app = make_app(store_url)
    await app.open()  # no worker: the runs stay pending
    try:
        started = [(await app.start("noop")).id for _ in range(5)]
        everything = await app.list_runs()
        assert [r.id for r in everything] == started[::-1]
        pages, cursor = [], None
        while True:
            page = await app.list_runs(cursor=cursor, limit=2)
            if not page:
                break
            pages.append([r.id for r in page])
            cursor = run_cursor(page[-1])
        assert [i for p in pages for i in p] == started[::-1] and len(pages) == 3
        middle = everything[2]
        newer = await app.list_runs(since=middle.created_at)
        assert [r.id for r in newer] == [r.id for r in everything[:3]]
        older = await app.list_runs(until=middle.created_at)
        assert [r.id for r in older] == [r.id for r in everything[3:]]
        for bad in ("", "x", "bm90IGpzb24", run_cursor(middle)[:-3]):
            with pytest.raises(InvalidInput, match="malformed cursor"):
                await app.list_runs(cursor=bad)
        with pytest.raises(InvalidInput, match="limit"):
            await app.list_runs(limit=0)
        # A window that ends where (or before) it starts would list nothing: refused, naming
        # both ends (it was a silent empty list).
        t = middle.created_at
        for since, until in ((t, t), (t + 3600, t)):
            with pytest.raises(InvalidInput, match=r"since \(.+\) must be before until \(.+\)"):
                await app.list_runs(since=since, until=until)
        # The stats' window too: its message names the caller's until, not "now".
        with pytest.raises(InvalidInput, match=r"must be before until \(.+\)"):
            await app.stats(since=t, until=t - 60)
    finally:
        await app.close()


def test_a_cursor_names_the_position_it_was_made_from():
    class Row:
        created_at = 1_700_000_000.123456
        id = "a-b-c"

    assert parse_run_cursor(run_cursor(Row())) == (Row.created_at, "a-b-c")  # type: ignore[arg-type]


async def test_readiness_says_when_the_store_lacks_a_migration(store_url):
    app = make_app(store_url)
    await app.open()
    try:
        ready = await app.readiness()
        assert (ready.ready, ready.reason, ready.behind) == (True, "", [])
        last = max(int(r["version"]) for r in await app.store.fetch("schema_versions", {}))
        forget_migration(store_url, last)
        behind = await app.readiness()
        assert (behind.ready, behind.behind) == (False, [last])
        assert f"{last:04d}" in behind.reason
    finally:
        await app.close()


async def test_readiness_of_a_store_that_cannot_be_opened_is_an_answer(tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/no/such/dir/a.db")
    ready = await app.readiness()
    assert not ready.ready and "cannot be reached" in ready.reason


async def test_a_priority_that_is_not_a_32_bit_integer_is_refused(store_url):
    app = make_app(store_url)
    await app.open()
    try:
        for bad in (2**31, -(2**31) - 1, True, 1.5):
            with pytest.raises(InvalidInput, match="priority"):
                await app.start("noop", priority=bad)  # type: ignore[arg-type]
        run = await app.start("noop", priority=2**31 - 1)
        assert (await run.row()).priority == 2**31 - 1
    finally:
        await app.close()
