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
from sqlalchemy.ext.asyncio import AsyncEngine

from synapse_async.db.faults import ConnectionLost


@contextlib.asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """Yield an asyncpg connection inside a transaction; COMMIT on exit, ROLLBACK on error."""
    async with engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        conn: asyncpg.Connection = raw.driver_connection
        try:
            async with conn.transaction():
                yield conn
        except Exception as exc:
            if conn.is_closed():
                await sa_conn.invalidate(exc)
                raise ConnectionLost(f"connection lost during the transaction: {type(exc).__name__}") from exc
            raise
