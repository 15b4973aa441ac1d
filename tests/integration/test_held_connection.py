"""A busy lane keeps one pooled connection across its transactions (`db.transactions.HeldConnection`).

Real PostgreSQL: consecutive transactions run on the same backend (one checkout and ping for all), a backend
killed between two transactions makes the next one `ConnectionLost` (retried by the lane) and the one after runs on
a fresh connection, and a released connection goes back to the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from synapse_async.db.engine import Database
from synapse_async.db.faults import ConnectionLost
from synapse_async.db.urls import to_asyncpg_dsn


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, pool_size=1, max_overflow=0, pool_timeout=5, statement_timeout_ms=15000)
    yield database
    await database.dispose()


async def test_transactions_share_the_held_connection_until_it_is_released(db: Database) -> None:
    held = db.held_connection()
    pids = []
    for _ in range(3):
        async with held.transaction() as conn:
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
    assert len(set(pids)) == 1
    await held.release()
    # The pool has one connection: after the release, an ordinary transaction gets it at once.
    async with db.raw_transaction() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == pids[0]


async def test_a_connection_lost_between_transactions_is_replaced(db: Database, migrated_database: str) -> None:
    held = db.held_connection()
    async with held.transaction() as conn:
        first = await conn.fetchval("SELECT pg_backend_pid()")
    admin = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()

    async def backend() -> int:
        async with held.transaction() as conn:
            return int(await conn.fetchval("SELECT pg_backend_pid()"))

    # Whether the loss is seen before the next BEGIN (then it is simply replaced) or by it (`ConnectionLost`, which
    # the lane retries), the transaction after runs on a new backend; with a pool of ONE, that also proves the
    # lost connection went back to the pool, invalidated.
    try:
        second = await backend()
    except ConnectionLost:
        second = await backend()
    assert second != first
    await held.release()
