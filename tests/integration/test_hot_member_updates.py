"""A message that pays nothing (cooldown) updates its member row in place — a HOT update, no index entry — and one
that pays XP does not (the leaderboard index on `xp` must follow it). Migration 0012 dropped the unused index on
`last_active_at`, which every message moves, and gave `members` room on its pages (fillfactor 85); migration 0015
gave the same room to `event_counters`, which every lake event increments three times.

Checked with the pipeline's own statement (`sql.MESSAGE_BATCH`) and PostgreSQL's per-transaction counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.domain.events import MemberRef, MessageCreated
from synapse_async.domain.metadata import derive_metadata
from synapse_async.pipeline import sql
from synapse_async.pipeline.batch import MessageBatch, PlannedMessage
from synapse_async.rewards.formula import Reward

GUILD = 920000000000000001
USER = 920000000000000002
AT = datetime(2026, 12, 1, tzinfo=UTC)

_HOT = (
    "SELECT pg_stat_get_xact_tuples_hot_updated('members'::regclass),"
    " pg_stat_get_xact_tuples_updated('members'::regclass)"
)


@pytest.fixture(scope="module")
async def conn(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    await connection.execute("INSERT INTO guilds (guild_id, name, owner_id) VALUES ($1, 'hot', 1)", GUILD)
    yield connection
    await connection.close()


def _message(i: int, reward: Reward) -> PlannedMessage:
    event = MessageCreated(
        guild_id=GUILD,
        occurred_at=AT + timedelta(seconds=i),
        channel_id=5,
        parent_id=None,
        message_id=930000000000000000 + i,
        author=MemberRef(user_id=USER, display_name="Hot", avatar_hash=None),
        meta=derive_metadata("a message of a decent length"),
    )
    return PlannedMessage(event, reward, None, None)


async def _updates(conn: asyncpg.Connection, i: int, reward: Reward) -> tuple[int, int]:
    """(HOT updates, updates) of `members` by one message's batch statement, inside its own transaction."""
    async with conn.transaction():  # the counters may still hold earlier transactions' counts: a difference
        hot_before, updated_before = await conn.fetchrow(_HOT)
        await conn.fetch(sql.MESSAGE_BATCH, *MessageBatch([_message(i, reward)]).arguments())
        hot, updated = await conn.fetchrow(_HOT)
    return int(hot - hot_before), int(updated - updated_before)


async def test_a_message_in_its_cooldown_is_a_hot_update_and_a_paid_one_is_not(conn: asyncpg.Connection) -> None:
    assert await _updates(conn, 0, Reward(15, 1, None, {})) == (0, 0)  # the member row is inserted
    assert await _updates(conn, 1, Reward(0, 0, "cooldown", {})) == (1, 1)  # messages_sent, last_active_at: HOT
    assert await _updates(conn, 2, Reward(0, 0, "cooldown", {})) == (1, 1)
    assert await _updates(conn, 3, Reward(15, 1, None, {})) == (0, 1)  # xp moved: the xp index needs an entry


async def test_an_incremented_counter_is_a_hot_update_on_a_page_filled_by_inserts(conn: asyncpg.Connection) -> None:
    """Migration 0015: a day's new counter rows leave room on their pages (fillfactor 85), so incrementing them
    later writes no index entry. At fillfactor 100 the first page is full and every increment is a non-HOT one."""
    users = list(range(USER + 1, USER + 501))
    await conn.execute(
        "INSERT INTO event_counters (guild_id, user_id, event_type, period, count)"
        " SELECT $1, u, 'message_create', 'day:2026-12-01', 1 FROM unnest($2::bigint[]) AS u",
        GUILD,
        users,
    )
    first_page = await conn.fetchval(
        "SELECT count(*) FROM event_counters WHERE guild_id = $1 AND (ctid::text::point)[0] = 0", GUILD
    )
    assert first_page > 20
    counters_hot = (
        "SELECT pg_stat_get_xact_tuples_hot_updated('event_counters'::regclass),"
        " pg_stat_get_xact_tuples_updated('event_counters'::regclass)"
    )
    async with conn.transaction():
        hot_before, updated_before = await conn.fetchrow(counters_hot)
        await conn.execute(
            "INSERT INTO event_counters AS ec (guild_id, user_id, event_type, period, count)"
            " SELECT $1, u, 'message_create', 'day:2026-12-01', 1 FROM unnest($2::bigint[]) AS u"
            " ON CONFLICT (guild_id, user_id, event_type, period)"
            " DO UPDATE SET count = ec.count + EXCLUDED.count, updated_at = now()",
            GUILD,
            users[:10],  # ten rows of the first page
        )
        hot, updated = await conn.fetchrow(counters_hot)
    assert (hot - hot_before, updated - updated_before) == (10, 10)
