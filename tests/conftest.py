"""Fixtures shared by every test: a store URL for each store, and an open store.

``store_url`` runs a test once per store: a fresh SQLite file, and a fresh PostgreSQL
database cloned from a template database that holds the migrated schema (built once, and
again whenever the migrations change). The server is ``AIOSYS_TEST_PG``, by
default ``postgresql://postgres@127.0.0.1:5432/postgres``; if it is unreachable the
PostgreSQL half skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from aiosys.store import Store, _sql, open_store

# Local servers speaking the providers' wire formats: fixtures openai_server, anthropic_server.
pytest_plugins = ["tests.wire.fixtures"]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE = "aiosys_test_template"  # + the schema's fingerprint: one template per schema
TEMPLATE_LOCK = 0x61696F7374657374  # advisory lock: building (exclusive) or cloning (shared)


@pytest.fixture(autouse=True)
def _no_project_model_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps in tests start with an empty catalog: the repository's example cards under
    ./models would otherwise load into every App that opens (tests that want them say so)."""
    monkeypatch.setenv("AIOSYS_MODELS_DIR", "")


@pytest.fixture(scope="session")
def _audit_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path_factory.mktemp("audit") / "audit_key.pem"
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch, _audit_key_file: Path) -> None:
    """Apps in tests sign audit checkpoints with a key of the session (the embedded default
    would generate one under ./.aiosys of the directory the tests run in)."""
    monkeypatch.setenv("AIOSYS_AUDIT_KEY", str(_audit_key_file))


def _with_db(url: str, dbname: str) -> str:
    """The same server URL naming another database."""
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A maintenance database URL on the test server (skips if there is no server)."""
    url = os.environ.get("AIOSYS_TEST_PG", DEFAULT_PG)
    try:
        _admin(url).close()
    except psycopg.OperationalError as exc:
        info = conninfo_to_dict(url)
        where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
        message = f"PostgreSQL not reachable at {where}: {' '.join(str(exc).split())}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server for the tests (database 15 by default; skips if there is none,
    fails under ``CI=true``)."""
    import redis

    url = os.environ.get("AIOSYS_TEST_REDIS", "redis://127.0.0.1:6379/15")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        message = f"Redis not reachable at {url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


def _fingerprint() -> str:
    """Names the schema the migrations build, so a template built from older ones is rebuilt."""
    digest = hashlib.sha256()
    for version, text in _sql.migrations("postgres"):
        digest.update(f"{version}\n{text}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> str:
    """The name of a database holding the current schema, built when missing or outdated.

    Test sessions may run side by side on one server: the template is (re)built under an
    exclusive advisory lock and cloned under a shared one, so no session drops it while
    another clones it."""
    fingerprint = _fingerprint()
    # Checkouts with different migrations (branches tested side by side) each get their own.
    template = f"{TEMPLATE}_{fingerprint}"
    with _admin(pg_admin_url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (TEMPLATE_LOCK,))
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (template,),
        ).fetchone()
        if row is None or row[0] != fingerprint:
            name = sql.Identifier(template)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
            asyncio.run(_migrate(_with_db(pg_admin_url, template)))
            comment = sql.SQL("COMMENT ON DATABASE {} IS {}")
            conn.execute(comment.format(name, sql.Literal(fingerprint)))
    return template


async def _migrate(url: str) -> None:
    store = open_store(url)
    await store.open()
    await store.close()


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped after it."""
    dbname = f"aiosys_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_admin_url) as conn:
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (TEMPLATE_LOCK,))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(dbname), sql.Identifier(pg_template)
            )
        )
    try:
        yield _with_db(pg_admin_url, dbname)
    finally:
        with _admin(pg_admin_url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/aiosys.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
