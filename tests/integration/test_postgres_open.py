"""PostgreSQL only: opening a store, with a server that is missing or shared."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from aiosys.errors import ConfigError
from aiosys.store import open_store
from aiosys.store._sql import migrations
from aiosys.store.postgres import PostgresStore


async def test_unreachable_server_is_a_config_error_naming_it() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/aiosys")
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:1 \(database aiosys, schema public\)"):
        await store.open()


async def test_missing_database_is_a_config_error_naming_it(pg_admin_url: str) -> None:
    url = urlsplit(pg_admin_url)._replace(path="/aiosys_no_such_db").geturl()
    with pytest.raises(ConfigError, match="aiosys_no_such_db"):
        await PostgresStore(url).open()


def test_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad PostgreSQL URL: invalid URI query parameter"):
        PostgresStore("postgresql://secret@host/db?bogus=1")


async def test_store_must_be_opened_before_use(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="not open"):
        await PostgresStore(pg_url).get_run("x")


async def test_processes_opening_a_new_database_at_once_migrate_it_once(
    pg_admin_url: str,
) -> None:
    dbname = f"aiosys_test_{uuid.uuid4().hex[:12]}"
    ident = sql.Identifier(dbname)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    url = urlsplit(pg_admin_url)._replace(path=f"/{dbname}").geturl()
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert await stores[0].get_run("x") is None
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT version FROM aiosys_schema ORDER BY version")
            expected = [v for v, _ in migrations("postgres")]
            assert len(expected) >= 2
            assert [v for (v,) in await cur.fetchall()] == expected
    finally:
        for s in stores:
            await s.close()
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
