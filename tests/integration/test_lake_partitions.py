"""The partitioned event lake (issue 27) on a real PostgreSQL: the migration converting a populated lake, rows
landing in their day's partition, partitions created ahead by the maintenance scheduler, retention dropping whole
expired partitions, and time-bounded queries pruning partitions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command

from synapse_async.db.engine import Database
from synapse_async.db.lake_partitions import ensure_partitions, partition_name
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.jobs.retention import RetentionSettings, retention_handler
from synapse_async.jobs.runner import JobContext
from synapse_async.lake.queries import EventFilter, _event_where
from synapse_async.pipeline.sql import LAKE
from synapse_async.tasks.scheduler import LakeScheduler
from tests.conftest import create_database, drop_database
from tests.support import run_alembic

G = 930000000000000001
OTHER = 930000000000000002
U = 930000000000001001
BEFORE = "0007_idempotency_reservations"


def _today() -> date:
    return datetime.now(UTC).date()


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def _insert_lake(conn: asyncpg.Connection, key: str, at: datetime, guild: int = G) -> int | None:
    """One lake row through the pipeline's own statement (key gate, row, counters); its id or None if a duplicate."""
    row = await conn.fetchrow(LAKE, guild, U, "message_create", 1, None, key, "{}", at, ["lifetime"])
    assert row is not None
    return row["lake_id"]  # type: ignore[no-any-return]


async def _partition_of(conn: asyncpg.Connection, key: str) -> str:
    value = await conn.fetchval("SELECT tableoid::regclass::text FROM event_lake WHERE source_key = $1", key)
    return str(value)


async def _exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


# ---- the migration ---------------------------------------------------------------------------------------------


@pytest.fixture
async def scratch_database(pg_server_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_server_url)
    yield url
    await drop_database(pg_server_url, url)


_SNAPSHOT = (
    "SELECT id, guild_id, user_id, event_type, channel_id, target_id, source_key, payload::text, occurred_at,"
    " recorded_at FROM event_lake ORDER BY id"
)


async def test_migration_converts_a_populated_lake_without_losing_a_row(scratch_database: str) -> None:
    await run_alembic(scratch_database, lambda cfg: command.upgrade(cfg, BEFORE))
    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        # 3,000 rows over 30 days in the past, two guilds, plus some rows far in the past and in the future.
        await conn.execute(
            "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, payload, occurred_at, recorded_at)"
            " SELECT CASE WHEN i % 3 = 0 THEN $2::bigint ELSE $1::bigint END, $3::bigint, 'message_create',"
            "        'msg:' || i,"
            "        jsonb_build_object('message_id', i::text), now() - make_interval(mins => i * 14),"
            "        now() - make_interval(mins => i * 14) + interval '1 second'"
            "   FROM generate_series(1, 3000) AS i",
            G,
            OTHER,
            U,
        )
        await conn.execute(
            "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, occurred_at)"
            " VALUES ($1, $2, 'member_join', 'mj:old', now() - interval '400 days'),"
            "        ($1, $2, 'voice_join', 'vj:future', now() + interval '3 days')",
            G,
            U,
        )
        before = [tuple(r) for r in await conn.fetch(_SNAPSHOT)]
        days = await conn.fetchval("SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM event_lake")
    finally:
        await conn.close()
    assert len(before) == 3002

    await run_alembic(scratch_database, lambda cfg: command.upgrade(cfg, "head"))

    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'event_lake'") == "p"
        after = [tuple(r) for r in await conn.fetch(_SNAPSHOT)]
        assert after == before  # same ids, keys, payloads and times
        # Every row sits in its own day's partition: the DEFAULT partition holds nothing after the migration.
        assert await conn.fetchval("SELECT count(*) FROM event_lake_default") == 0
        assert await _partition_of(conn, "mj:old") == partition_name(_today() - timedelta(days=400))
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_lake'::regclass AND inhrelid <> "
            "'event_lake_default'::regclass"
        )
        assert partitions >= days
        assert await conn.fetchval("SELECT count(*) FROM event_lake_keys WHERE user_id = $1", U) == 3002
        # Exactly-once still holds for converted rows, and ids continue after the old ones.
        old_at = await conn.fetchval("SELECT occurred_at FROM event_lake WHERE source_key = 'msg:7'")
        assert await _insert_lake(conn, "msg:7", old_at) is None
        assert await _insert_lake(conn, "msg:7", datetime.now(UTC)) is None  # even with another time
        new_id = await _insert_lake(conn, "msg:new", datetime.now(UTC))
        assert new_id is not None and new_id > max(r[0] for r in before)
        assert await conn.fetchval("SELECT count(*) FROM event_lake") == 3003
    finally:
        await conn.close()

    # And back: the downgrade keeps every row too.
    await run_alembic(scratch_database, lambda cfg: command.downgrade(cfg, BEFORE))
    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'event_lake'") == "r"
        assert await conn.fetchval("SELECT count(*) FROM event_lake") == 3003
        assert [tuple(r) for r in await conn.fetch(_SNAPSHOT)][:3002] == before
    finally:
        await conn.close()


# ---- partitions at work ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, pool_size=2, max_overflow=0, pool_timeout=10, statement_timeout_ms=15000)
    yield database
    await database.dispose()


@pytest.fixture
async def admin(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    yield conn
    for table in ("event_lake", "event_lake_keys", "event_counters", "settings"):
        await conn.execute(f"DELETE FROM {table}")
    await conn.close()


async def test_inserts_land_in_their_days_partition(db: Database, admin: asyncpg.Connection) -> None:
    today = _today()
    assert await _insert_lake(admin, "msg:today", _at(today)) is not None
    assert await _insert_lake(admin, "msg:tomorrow", _at(today + timedelta(days=1), 0)) is not None
    assert await _insert_lake(admin, "msg:ancient", _at(today - timedelta(days=900))) is not None
    assert await _partition_of(admin, "msg:today") == partition_name(today)
    assert await _partition_of(admin, "msg:tomorrow") == partition_name(today + timedelta(days=1))
    assert await _partition_of(admin, "msg:ancient") == "event_lake_default"  # never a failed insert


async def test_the_maintenance_scheduler_creates_a_missing_future_partition(
    db: Database, admin: asyncpg.Connection
) -> None:
    day = _today() + timedelta(days=3)
    name = partition_name(day)
    await admin.execute(f"DROP TABLE {name}")
    assert await _insert_lake(admin, "msg:early", _at(day)) is not None
    assert await _partition_of(admin, "msg:early") == "event_lake_default"

    scheduler = LakeScheduler(db.sessions, lambda: [], engine=db.engine)
    await scheduler.check()

    assert scheduler.partitions_created == [name]
    assert await _exists(admin, name)
    assert await _partition_of(admin, "msg:early") == name  # moved out of the DEFAULT partition
    await scheduler.check()  # the same day: nothing more to do
    assert scheduler.partitions_created == [name]


async def test_retention_drops_a_wholly_expired_partition(db: Database, admin: asyncpg.Connection) -> None:
    old, late_day, recent = (_today() - timedelta(days=d) for d in (200, 150, 10))
    await ensure_partitions(db.engine, old, ahead=0)
    await ensure_partitions(db.engine, late_day, ahead=0)
    insert = (
        "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, occurred_at, recorded_at)"
        " SELECT $1, $2, 'message_create', $3 || i, $4, $5 FROM generate_series(1, $6) AS i"
    )
    await admin.execute(insert, G, U, "old:", _at(old), _at(old), 1200)
    await admin.execute(insert, OTHER, U, "oth:", _at(old), _at(old), 300)  # another guild, same day
    await admin.execute(insert, G, U, "late:", _at(late_day), datetime.now(UTC), 5)  # an old event recorded now
    await admin.execute(insert, G, U, "new:", _at(recent), _at(recent), 7)
    await admin.execute(
        "INSERT INTO event_lake_keys (guild_id, source_key, user_id, occurred_at)"
        " SELECT guild_id, source_key, user_id, occurred_at FROM event_lake"
    )

    handler = retention_handler(db, RetentionSettings(pause_seconds=0.0, key_batch_rows=500))  # keys: 3 batches
    result = await handler(JobContext(uuid.uuid4(), G, {}))

    assert result["partitions_dropped"] == [partition_name(old)]
    assert result["partition_rows_dropped"] == 1500  # every guild's rows of that day
    assert not await _exists(admin, partition_name(old))
    # The partition holding a row recorded within the window stays; so do that row and the recent ones.
    assert await _exists(admin, partition_name(late_day))
    assert await admin.fetchval("SELECT count(*) FROM event_lake WHERE guild_id = $1", G) == 12
    # Keys of this guild's dropped rows are pruned; the kept rows keep theirs (exactly-once still holds).
    assert await admin.fetchval("SELECT count(*) FROM event_lake_keys WHERE guild_id = $1", G) == 12
    assert result["keys_deleted"] == 1200
    assert await _insert_lake(admin, "late:1", datetime.now(UTC)) is None


async def test_a_longer_retention_elsewhere_keeps_the_partition(db: Database, admin: asyncpg.Connection) -> None:
    old = _today() - timedelta(days=200)
    await ensure_partitions(db.engine, old, ahead=0)
    await admin.execute(
        "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, occurred_at, recorded_at)"
        " SELECT $1, $2, 'message_create', 'k:' || i, $3, $3 FROM generate_series(1, 20) AS i",
        G,
        U,
        _at(old),
    )
    await admin.execute(
        "INSERT INTO settings (guild_id, key, value) VALUES ($1, 'lake.retention_days', $2)", OTHER, json.dumps(365)
    )

    result = await retention_handler(db, RetentionSettings(pause_seconds=0.0))(JobContext(uuid.uuid4(), G, {}))

    assert result["partitions_dropped"] == []
    assert await _exists(admin, partition_name(old))
    assert result["rows_deleted"] == 20  # this guild's own 90 days still apply, row by row
    await admin.execute(f"DROP TABLE {partition_name(old)}")


async def test_a_time_bounded_lake_query_prunes_partitions(db: Database, admin: asyncpg.Connection) -> None:
    today = _today()
    since, until = _at(today, 0), _at(today + timedelta(days=1), 0)
    where, params = _event_where(G, EventFilter(since=since, until=until))
    sql = f"SELECT id FROM event_lake WHERE {where} ORDER BY occurred_at DESC, id DESC LIMIT 50"
    for name, value in params.items():  # the API's statement with its values inlined, for EXPLAIN
        literal = f"'{value.isoformat()}'::timestamptz" if isinstance(value, datetime) else str(value)
        sql = sql.replace(f":{name}", literal)
    plan = json.loads(await admin.fetchval(f"EXPLAIN (FORMAT JSON) {sql}"))

    scanned: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            scanned.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    partitions = await admin.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_lake'::regclass")
    assert scanned == {partition_name(today)}
    assert len(scanned) < partitions
