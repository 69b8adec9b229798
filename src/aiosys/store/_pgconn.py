"""psycopg plumbing of the PostgreSQL store; it knows nothing of runs.

A ``Slot`` is one connection that serves one coroutine at a time (a psycopg connection must
not be shared by concurrent coroutines), opens on first use and reopens after it breaks.
``transaction`` sends a transaction's statements together in pipeline mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Self, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from ._text import bind

T = TypeVar("T")
Conn = psycopg.AsyncConnection[DictRow]
Cursor = psycopg.AsyncCursor[DictRow]


class StorableCursor(psycopg.AsyncCursor[DictRow]):
    """A cursor whose statements bind their text storable (``_text.bind``); the store's
    connections use it for every statement."""

    async def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        return await super().execute(query, bind(params), prepare=prepare, binary=binary)

    async def executemany(
        self, query: Any, params_seq: Iterable[Any], *, returning: bool = False
    ) -> None:
        await super().executemany(query, [bind(p) for p in params_seq], returning=returning)


RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
ATTEMPTS = 3


class Slot:
    """One connection, used by one coroutine at a time; reopened after it breaks."""

    def __init__(self, connect: Callable[[], Awaitable[Conn]]) -> None:
        self._connect = connect
        self.conn: Conn | None = None
        self.lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Conn]:
        async with self.lock:
            if self.conn is None or self.conn.closed:
                self.conn = await self._connect()
            conn = self.conn
            try:
                yield conn
            finally:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    await _roll_back(conn)  # an error or a cancellation left a transaction open

    async def close(self) -> None:
        async with self.lock:
            if self.conn is not None:
                await self.conn.close()
                self.conn = None


class Tx:
    """The statements of one transaction in pipeline mode: ``run`` queues one, ``sync`` waits
    for the results so far; all results are readable once the transaction's block is left."""

    def __init__(self, conn: Conn, pipeline: psycopg.AsyncPipeline) -> None:
        self.conn = conn
        self.pipeline = pipeline

    async def run(self, query: str, params: dict[str, Any]) -> Cursor:
        return await self.conn.execute(query, params)

    async def sync(self) -> None:
        await self.pipeline.sync()


@contextlib.asynccontextmanager
async def transaction(slot: Slot, begin: bytes = b"BEGIN") -> AsyncIterator[Tx]:
    """One transaction: BEGIN, the statements and COMMIT go out together at the end of the
    block, in one round trip, unless the block syncs to read a result it depends on. (Not
    psycopg's ``transaction()``: in pipeline mode it syncs when it starts and ends.)"""
    async with slot.use() as conn, conn.pipeline() as pipeline:
        await conn.execute(begin, prepare=False)
        yield Tx(conn, pipeline)
        await conn.execute(b"COMMIT", prepare=False)


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction again if PostgreSQL chose it as a deadlock victim."""
    for n in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except RETRYABLE:
            if n == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def first(cur: Cursor) -> DictRow:
    """The row of a query that always returns one."""
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - these queries always return a row
        raise AssertionError("query returned no row")
    return row


async def _roll_back(conn: Conn) -> None:
    try:
        await conn.execute(b"ROLLBACK", prepare=False)
    except psycopg.Error:
        await conn.close()
