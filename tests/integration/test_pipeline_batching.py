"""A set-based micro-batch leaves exactly the state of one-by-one processing (SPEC §8.1), on the real database.

Random runs of messages (several members, known and unknown names, avatars, channels, out-of-order times across a
season boundary, a cooldown, duplicate ids, too-short messages, level-ups) are processed twice from the same
committed state, each inside a transaction that is rolled back afterwards: once as the lane does it (the whole run
in one transaction, replayed one event per transaction if the batch answers `NeedsSingles`), once one event per
transaction. Members, journal, gold ledger, season stats, lake rows and counters must end up identical, and so
must the after-commit effects (level-ups, role syncs, counts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.domain.events import MemberRef, MessageCreated
from synapse_async.domain.metadata import derive_metadata
from synapse_async.ledger import Effects, NeedsSingles
from synapse_async.pipeline.cooldowns import CooldownCache
from synapse_async.pipeline.processor import Processor
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, set_settings, write_config

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(minutes=30)
SEASON_BOUNDARY = BASE + timedelta(seconds=100)
USERS = [*MEMBERS_30[:4], 100000000000009999]  # the last one has no member row yet
TABLES = ("members", "reward_journal", "gold_ledger", "season_stats", "event_lake", "event_counters")
VOLATILE = ["id", "journal_id", "created_at", "updated_at", "recorded_at"]  # sequence ids, clock times

# One message: (user index, name choice, avatar choice, channel choice, time offset s, message id choice, short?)
MESSAGE = st.tuples(
    st.integers(0, len(USERS) - 1),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 1),
    st.integers(0, 200),
    st.integers(0, 40),
    st.booleans(),
)


@pytest.fixture(scope="module")
async def conn(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    yield connection
    await connection.close()


@pytest.fixture(scope="module")
async def seasoned(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> tuple[Runtime, int, int]:
    """The sandbox with a season that ended inside the events' time span and the next one active, a 30-second
    cooldown, 60 XP a message and a channel outside the plain one; (runtime, plain channel, other channel)."""
    rt, _sim, plain = plain_sandbox
    assert rt.components.cache is not None
    cache = rt.components.cache
    await write_config(
        rt,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, ended_at, status)"
        " VALUES (:g, 'Old', :s1, :b, :b, 'ended'), (:g, 'New', :b, :e2, NULL, 'active')",
        "seasons",
        s1=BASE - timedelta(days=1),
        b=SEASON_BOUNDARY,
        e2=NOW + timedelta(days=1),
    )
    await set_settings(rt, {"cooldown.seconds": 30, "rewards.message.xp": 60})  # level-ups within a few messages
    other = next(c for c in cache.guild(GUILD).channels if c != plain)
    return rt, plain, other


def _events(items: list[tuple[int, int, int, int, int, int, bool]], channels: tuple[int, int]) -> list[MessageCreated]:
    out = []
    for user_index, name, avatar, channel, offset, message, short in items:
        user = USERS[user_index]
        out.append(
            MessageCreated(
                guild_id=GUILD,
                occurred_at=BASE + timedelta(seconds=offset),
                channel_id=channels[channel],
                parent_id=None,
                message_id=900_000_000_000_000_000 + message,
                author=MemberRef(
                    user_id=user,
                    display_name=(str(user), f"name-{user % 100}", "Ünïcode 名前")[name],
                    avatar_hash=(None, "a1", "b2")[avatar],
                ),
                meta=derive_metadata("hi" if short else PLAIN),
            )
        )
    return out


async def _state(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row the pipeline writes for the guild, without sequence ids and clock times, in a stable order."""
    state = {}
    for table in TABLES:
        rows = await conn.fetch(
            f"SELECT (to_jsonb(t) - $2::text[])::text AS r FROM {table} t WHERE guild_id = $1", GUILD, VOLATILE
        )
        state[table] = sorted(r["r"] for r in rows)
    return state


def _effects(all_effects: list[Effects]) -> dict[str, Any]:
    syncs: dict[tuple[int, int], int] = {}
    for effects in all_effects:
        syncs.update(effects.role_syncs)
    return {
        "processed": sum(e.processed for e in all_effects),
        "duplicates": sum(e.duplicates for e in all_effects),
        "level_ups": [(u.user_id, u.level, u.gold, u.channel_id) for e in all_effects for u in e.level_ups],
        "role_syncs": syncs,
    }


async def _in_rollback(conn: asyncpg.Connection, events: list[MessageCreated], rt: Runtime, *, batch: bool) -> Any:
    """Process `events` (as the lane does, or one by one) and read the state, inside a transaction rolled back."""
    assert rt.components.cache is not None
    processor = Processor(rt.components.cache, CooldownCache(10_000))
    done: list[Effects] = []
    replayed = False

    async def one(group: list[MessageCreated]) -> None:
        async with conn.transaction():  # a savepoint: the lane's transaction
            effects = await processor.process(conn, group, singles=len(group) == 1)
        processor.committed(effects)
        done.append(effects)

    outer = conn.transaction()
    await outer.start()
    try:
        if batch:
            try:
                await one(events)
            except NeedsSingles:
                replayed = True
                for event in events:
                    await one([event])
        else:
            for event in events:
                await one([event])
        return await _state(conn), _effects(done), replayed
    finally:
        await outer.rollback()


@pytest.mark.parametrize("lake", [True, False])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(MESSAGE, min_size=2, max_size=30))
async def test_a_batch_equals_one_by_one_on_random_runs(
    seasoned: tuple[Runtime, int, int],
    conn: asyncpg.Connection,
    lake: bool,
    items: list[tuple[int, int, int, int, int, int, bool]],
) -> None:
    rt, plain, other = seasoned
    assert rt.components.cache is not None
    if rt.components.cache.settings(GUILD).bool("lake.source.message_create") != lake:
        await set_settings(rt, {"lake.source.message_create": lake})
    events = _events(items, (plain, other))
    batched, batched_effects, _ = await _in_rollback(conn, events, rt, batch=True)
    single, single_effects, _ = await _in_rollback(conn, events, rt, batch=False)
    assert batched == single
    assert batched_effects == single_effects


async def test_a_run_of_new_messages_takes_the_set_based_path(
    seasoned: tuple[Runtime, int, int], conn: asyncpg.Connection
) -> None:
    """The property above holds whichever path a batch takes; this pins down that a run without duplicates or
    achievements is NOT replayed: one statement wrote all of it, with level-ups at the right messages."""
    rt, plain, other = seasoned
    await set_settings(rt, {"lake.source.message_create": True})
    items = [(i % 3, 1, 1, i % 2, 31 * i, i, False) for i in range(60)]  # 20 per member, every one paid
    events = _events(items, (plain, other))
    batched, batched_effects, replayed = await _in_rollback(conn, events, rt, batch=True)
    single, single_effects, _ = await _in_rollback(conn, events, rt, batch=False)
    assert not replayed  # the batch statement took them all
    assert batched_effects["level_ups"], "the run is long enough to cross levels mid-batch"
    assert batched == single
    assert batched_effects == single_effects
