"""One raw asyncpg transaction on a pooled connection, with connection loss made explicit (SPEC §8.2).

The pipeline's lanes, the economy services and the relevel job run their statements on asyncpg directly
(prepared and cached), inside one transaction on a connection borrowed from the SQLAlchemy pool. When that
connection dies mid-transaction (even at COMMIT), asyncpg reports it in many shapes, some of them generic
`InterfaceError`s raised from `Transaction.__aexit__`. Here the *cause* is checked instead: if the connection is
closed afterwards, whatever was raised becomes `ConnectionLost` (outcome unknown, retry), and the pooled
connection is invalidated so the pool never hands it out again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from synapse_async.db.faults import ConnectionLost
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def _guarded(sa_conn: AsyncConnection, conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on `conn`; if the connection is closed afterwards, whatever was raised is `ConnectionLost`
    and the pooled connection is invalidated."""
    try:
        async with conn.transaction():
            yield conn
    except Exception as exc:
        if conn.is_closed():
            await sa_conn.invalidate(exc)
            raise ConnectionLost(f"connection lost during the transaction: {type(exc).__name__}") from exc
        raise


@contextlib.asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """Yield an asyncpg connection inside a transaction; COMMIT on exit, ROLLBACK on error."""
    async with engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        async with _guarded(sa_conn, raw.driver_connection) as conn:
            yield conn


class HeldConnection:
    """One pooled connection kept across consecutive transactions of a busy pipeline lane (SPEC §8.1).

    Every checkout from the pool pings the server first (`pool_pre_ping`) and goes through SQLAlchemy's pool
    machinery: measured in bench/pipeline.py, about as long as a small micro-batch's COMMIT. A lane that commits
    batch after batch checks out once and keeps the connection until no event came for a while (`release`, see
    `Pipeline._next_guild`). A connection lost in between is noticed by the next transaction (`ConnectionLost`,
    retried like any transient fault) and replaced by a fresh checkout; so is one left in an unknown state by a
    cancellation.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sa: AsyncConnection | None = None
        self._conn: asyncpg.Connection | None = None

    @property
    def holding(self) -> bool:
        """Whether a pooled connection is checked out now."""
        return self._sa is not None

    async def connection(self) -> asyncpg.Connection:
        """The held asyncpg connection, checked out now if none is held (or the held one is closed)."""
        if self._conn is not None and self._conn.is_closed():
            await self.release()
        if self._conn is None:
            sa_conn = await self._engine.connect()
            try:
                raw = await sa_conn.get_raw_connection()
            except BaseException:
                await sa_conn.close()
                raise
            self._sa, self._conn = sa_conn, raw.driver_connection
        return self._conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on the held connection; the same loss handling as `raw_transaction`."""
        conn = await self.connection()
        assert self._sa is not None
        try:
            async with _guarded(self._sa, conn) as inside:
                yield inside
        except ConnectionLost:
            await self.release()
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled mid-transaction: never reuse that connection
                await self.release()
            raise

    async def release(self) -> None:
        """Give the connection back to the pool; a closed (lost) one is invalidated so the pool never reuses it."""
        sa_conn, conn, self._sa, self._conn = self._sa, self._conn, None, None
        if sa_conn is None:
            return
        try:
            if conn is not None and conn.is_closed() and not sa_conn.invalidated:
                await sa_conn.invalidate()
            await sa_conn.close()
        except Exception as exc:
            # Giving back a broken connection must never fail the lane that lets go of it: the pool discards it.
            log.warning("held_connection_release_failed", error=type(exc).__name__)
