"""The public activity list and its daily counts read the journal through its partial time index (migration 0012):
unpaid messages — most of a guild's journal — have no entry in it, yet both queries still use it (EXPLAIN on real
PostgreSQL after ANALYZE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from synapse_async.api import public_stats
from synapse_async.db.urls import to_sqlalchemy_url

GUILD = 910000000000000001
ROWS = 20_000
PAID_EVERY = 10  # one message in ten pays; the others are zero rows (cooldown)
INDEX = "ix_reward_journal_guild_id_occurred_at_id"


@pytest.fixture(scope="module")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(to_sqlalchemy_url(migrated_database))
    async with eng.begin() as conn:
        await conn.execute(text("INSERT INTO guilds (guild_id, name, owner_id) VALUES (:g, 'plans', 1)"), {"g": GUILD})
        await conn.execute(
            text(
                "INSERT INTO members (guild_id, user_id, display_name)"
                " SELECT :g, u, 'member ' || u FROM generate_series(1, 500) AS u"
            ),
            {"g": GUILD},
        )
        await conn.execute(
            text(
                """
                INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta,
                                            zero_reason, occurred_at)
                SELECT :g, 1 + i % 500, 'message', 'msg:' || i,
                       CASE WHEN i % :every = 0 THEN 20 ELSE 0 END, 0,
                       CASE WHEN i % :every = 0 THEN NULL ELSE 'cooldown' END,
                       now() - make_interval(secs => i * 60)
                  FROM generate_series(1, :n) AS i
                """
            ),
            {"g": GUILD, "n": ROWS, "every": PAID_EVERY},
        )
    async with eng.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE reward_journal"))
        await conn.execute(text("VACUUM ANALYZE members"))
    yield eng
    await eng.dispose()


async def _plan(eng: AsyncEngine, statement: TextClause, params: dict[str, Any]) -> str:
    async with eng.connect() as conn:
        return "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + statement.text), params))


async def test_unpaid_messages_have_no_entry_in_the_activity_index(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        entries = (
            await conn.execute(text("SELECT reltuples::bigint FROM pg_class WHERE relname = :i"), {"i": INDEX})
        ).scalar_one()
    assert entries == ROWS // PAID_EVERY  # VACUUM counted the index's tuples exactly


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (public_stats._ACTIVITY_PAGE, {"g": GUILD, "days": 30, "event_type": None, "limit": 20, "offset": 0}),
        (public_stats._ACTIVITY_COUNT, {"g": GUILD, "days": 30, "event_type": None}),
        (public_stats._DAILY, {"g": GUILD, "u": None, "days": 30}),
    ],
    ids=["activity page", "activity count", "daily counts"],
)
async def test_public_activity_reads_use_the_partial_index(
    engine: AsyncEngine, statement: TextClause, params: dict[str, Any]
) -> None:
    explained = await _plan(engine, statement, params)
    assert INDEX in explained, explained
    assert "Seq Scan on reward_journal" not in explained, explained
