"""The lake's read side and data-source switches (synapse_async/lake/queries.py) against a real PostgreSQL.

These are the service functions the admin endpoints of SPEC §20 will call; rows are written with SQL so each
test controls times and counts exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from synapse_async.cache.config_cache import load_guild_settings
from synapse_async.db.engine import Database
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES
from synapse_async.lake.queries import (
    EventFilter,
    InvalidLakeRequest,
    data_sources,
    lake_health,
    lake_storage,
    list_counters,
    list_events,
)
from synapse_async.services.audit import Actor
from synapse_async.services.lake_sources import set_data_sources

G, BIG = 930000000000000001, 930000000000000002
A, B = 930000000000001001, 930000000000001002
CH1, CH2 = 930000000000002001, 930000000000002002
NOW = datetime.now(UTC).replace(microsecond=0)
ACTOR = Actor("svc:test", "service", "api")


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, pool_size=4, max_overflow=2, pool_timeout=5, statement_timeout_ms=15000)
    admin = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    try:
        for guild in (G, BIG):
            await admin.execute(
                "INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'q', 1, now())", guild
            )
        # G: 40 rows, one an hour back from NOW: types cycle through the first four, users and channels alternate.
        await admin.execute(
            "INSERT INTO event_lake (guild_id, user_id, event_type, channel_id, source_key, payload, occurred_at)"
            " SELECT $1, CASE WHEN i % 2 = 0 THEN $2::bigint ELSE $3::bigint END,"
            "        (ARRAY['message_create','reaction_add','voice_join','message_delete'])[1 + i % 4],"
            "        CASE WHEN i % 2 = 0 THEN $4::bigint ELSE $5::bigint END, 'k:' || i, jsonb_build_object('n', i),"
            "        $6::timestamptz - make_interval(hours => i)"
            "   FROM generate_series(0, 39) AS i",
            G,
            A,
            B,
            CH1,
            CH2,
            NOW,
        )
        await admin.execute(
            "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, payload, occurred_at)"
            " SELECT $1, $2, 'message_create', 'k:' || i, '{}', now() FROM generate_series(1, 10050) AS i",
            BIG,
            A,
        )
        counters = [(A, "message_create", "lifetime", 50), (B, "message_create", "lifetime", 70)]
        counters += [(A, "reaction_add", "season:4", 5), (B, "reaction_add", f"day:{NOW.date().isoformat()}", 9)]
        for user, kind, period, n in counters:
            await admin.execute(
                "INSERT INTO event_counters (guild_id, user_id, event_type, period, count) VALUES ($1, $2, $3, $4, $5)",
                G,
                user,
                kind,
                period,
                n,
            )
    finally:
        await admin.close()
    yield database
    await database.dispose()


async def test_events_newest_first_with_filters_and_pages(db: Database) -> None:
    async with db.engine.connect() as conn:
        everything = await list_events(conn, G, EventFilter(), page_size=200)
        assert (everything.total, everything.total_capped, len(everything.items)) == (40, False, 40)
        times = [e.occurred_at for e in everything.items]
        assert times == sorted(times, reverse=True) and times[0] == NOW

        second = await list_events(conn, G, EventFilter(), page=2, page_size=15)
        assert [e.id for e in second.items] == [e.id for e in everything.items[15:30]] and second.total == 40

        a_messages = await list_events(conn, G, EventFilter(event_type="message_create", user_id=A))
        assert a_messages.total == 10 and {(e.user_id, e.event_type) for e in a_messages.items} == {
            (A, "message_create")
        }
        in_ch2 = await list_events(conn, G, EventFilter(channel_id=CH2))
        assert in_ch2.total == 20 and {e.channel_id for e in in_ch2.items} == {CH2}

        window = await list_events(conn, G, EventFilter(since=NOW - timedelta(hours=5), until=NOW))
        assert [e.payload["n"] for e in window.items] == [1, 2, 3, 4, 5]  # since inclusive, until exclusive

        page = await list_events(conn, G, EventFilter(user_id=B), page_size=1)
        shown = page.to_json()
        assert shown["total"] == 20 and shown["total_capped"] is False
        assert shown["items"][0]["user_id"] == str(B) and shown["items"][0]["channel_id"] == str(CH2)
        assert shown["items"][0]["occurred_at"].endswith("Z")


async def test_event_totals_are_exact_up_to_ten_thousand_then_capped(db: Database) -> None:
    async with db.engine.connect() as conn:
        big = await list_events(conn, BIG, EventFilter(), page_size=10)
        assert (big.total, big.total_capped, len(big.items)) == (10000, True, 10)
        assert (await list_events(conn, BIG, EventFilter(user_id=B))).total == 0


async def test_bad_event_queries_name_every_bad_field(db: Database) -> None:
    async with db.engine.connect() as conn:
        with pytest.raises(InvalidLakeRequest) as bad:
            await list_events(
                conn,
                G,
                EventFilter(event_type="message", since=NOW, until=NOW - timedelta(hours=1)),
                page=0,
                page_size=201,
            )
        assert sorted(p.field for p in bad.value.problems) == ["event_type", "page", "page_size", "until"]
        with pytest.raises(InvalidLakeRequest) as naive:
            await list_events(conn, G, EventFilter(since=datetime(2026, 1, 1)))
        assert [p.field for p in naive.value.problems] == ["since"]


async def test_data_sources_have_labels_and_are_written_all_or_nothing(db: Database) -> None:
    async with db.engine.connect() as conn:
        sources = data_sources(await load_guild_settings(conn, G))
    assert [s.event_type for s in sources] == list(LAKE_EVENT_TYPES) and all(s.enabled for s in sources)
    assert all(s.label and s.description for s in sources)

    with pytest.raises(InvalidLakeRequest) as bad:
        await set_data_sources(db.sessions, G, {"message_create": False, "reaction": True, "voice_join": "no"}, ACTOR)
    assert sorted(p.field for p in bad.value.problems) == ["sources.reaction", "sources.voice_join"]
    with pytest.raises(InvalidLakeRequest):
        await set_data_sources(db.sessions, G, {}, ACTOR)
    async with db.engine.connect() as conn:
        assert all(s.enabled for s in data_sources(await load_guild_settings(conn, G)))  # nothing was written

    written = await set_data_sources(db.sessions, G, {"message_create": False, "voice_join": False}, ACTOR)
    assert written == {"message_create": False, "voice_join": False}
    async with db.engine.connect() as conn:
        after = {s.event_type: s.enabled for s in data_sources(await load_guild_settings(conn, G))}
        audited = (
            await conn.exec_driver_sql(
                f"SELECT target_id FROM audit_log WHERE guild_id = {G} AND action = 'data_sources.update' ORDER BY 1"
            )
        ).all()
    assert {t for t, on in after.items() if not on} == {"message_create", "voice_join"}
    assert [r.target_id for r in audited] == ["lake.source.message_create", "lake.source.voice_join"]
    await set_data_sources(db.sessions, G, {"message_create": True, "voice_join": True}, ACTOR)


async def test_health_reports_totals_types_daily_counts_and_last_jobs(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO jobs (guild_id, kind, status, requested_by, result, started_at, finished_at) VALUES"
            f" ({G}, 'retention', 'succeeded', 'system', '{{\"rows_deleted\": 3}}', now(), now() - interval '2 days'),"
            f" ({G}, 'retention', 'failed', 'system', NULL, now(), now() - interval '1 day')"
        )
    async with db.engine.connect() as conn:
        settings = await load_guild_settings(conn, G)
        health = await lake_health(conn, G, settings, days=3, now=NOW)
        with pytest.raises(InvalidLakeRequest):
            await lake_health(conn, G, settings, days=91, now=NOW)
    assert (health.total_events, health.newest, health.oldest) == (40, NOW, NOW - timedelta(hours=39))
    assert (health.events_24h, health.events_7d) == (25, 40)  # hours 0–24 inclusive of the boundary
    assert health.by_type["message_create"] == 10 and health.by_type["member_join"] == 0
    assert sum(health.by_type.values()) == 40
    assert [d for d, _ in health.daily] == [NOW.date() - timedelta(days=i) for i in (2, 1, 0)]
    hours_today = NOW.hour + 1  # rows at hours 0 … NOW.hour back are today
    assert health.daily[-1][1] == min(hours_today, 40)
    assert health.retention_days == 90
    assert health.last_retention is not None and health.last_retention.status == "failed"
    assert health.last_reconciliation is None
    shown = health.to_json()
    assert shown["daily"][-1]["day"] == NOW.date().isoformat() and shown["last_retention"]["result"] is None


async def test_storage_uses_the_measured_row_size(db: Database) -> None:
    async with db.engine.connect() as conn:
        storage = await lake_storage(conn, G, await load_guild_settings(conn, G), now=NOW)
        measured = (
            await conn.exec_driver_sql(f"SELECT avg(pg_column_size(l.*)) FROM event_lake l WHERE guild_id = {G}")
        ).scalar_one()
    assert storage.rows == 40 and storage.avg_row_bytes == round(float(measured)) > 0
    assert storage.estimated_bytes == 40 * storage.avg_row_bytes
    assert storage.rows_per_day_7d == round(40 / 7, 2)
    assert storage.projected_bytes_at_retention == round(40 / 7 * 90 * storage.avg_row_bytes)


async def test_counters_sorted_by_count_with_filters(db: Database) -> None:
    async with db.engine.connect() as conn:
        every = await list_counters(conn, G)
        assert [c.count for c in every.items] == [70, 50, 9, 5] and every.total == 4
        mine = await list_counters(conn, G, user_id=A, event_type="reaction_add")
        assert [(c.period, c.count) for c in mine.items] == [("season:4", 5)]
        lifetime = await list_counters(conn, G, period="lifetime", page=2, page_size=1)
        assert [c.user_id for c in lifetime.items] == [A] and lifetime.total == 2
        assert lifetime.to_json()["items"][0]["user_id"] == str(A)
        for bad in ("day:2026-13-01", "day:20260101", "season:x", "week:1"):
            with pytest.raises(InvalidLakeRequest):
                await list_counters(conn, G, period=bad)
