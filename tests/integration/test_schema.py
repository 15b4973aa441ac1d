"""The schema (SPEC §6, §22) against a real PostgreSQL: the initial migration, its agreement with the models, and
the database-side rules (CHECKs, partial unique indexes, foreign-key actions, triggers) actually biting.

Migrations are driven through Alembic's API exactly the way the application does it: an async engine, and the
sync connection handed to `migrations/env.py` via `config.attributes["connection"]` inside `run_sync`.
"""

from __future__ import annotations

import ast
import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from synapse_async.db.models import Base
from synapse_async.db.urls import to_asyncpg_dsn, to_sqlalchemy_url
from tests.conftest import create_database, drop_database
from tests.support import run_alembic

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
HEAD = "0015_counter_room"
GUILD = 100000000000000001
USER_A = 100000000000001000
USER_B = 100000000000001001


# ---- helpers ---------------------------------------------------------------------------------------------------


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def _upgrade(url: str, target: str = "head") -> None:
    await run_alembic(url, lambda cfg: command.upgrade(cfg, target))


async def _downgrade(url: str, target: str) -> None:
    await run_alembic(url, lambda cfg: command.downgrade(cfg, target))


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _tables(url: str) -> set[str]:
    """Tables the schema declares: partitions of the lake (made by date, not by the models) are left out."""
    rows = await _fetch(
        url,
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
    )
    return {r["relname"] for r in rows}


async def _partitions(url: str) -> set[str]:
    rows = await _fetch(url, "SELECT inhrelid::regclass::text AS name FROM pg_inherits")
    return {r["name"] for r in rows}


async def _version(url: str) -> list[str]:
    return [r["version_num"] for r in await _fetch(url, "SELECT version_num FROM alembic_version")]


_SNAPSHOT_QUERIES = {
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND a.attnum > 0
          AND NOT a.attisdropped AND c.relname <> 'alembic_version'
    """,
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'alembic_version'
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = conrelid)
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = format('%I', tablename)::regclass)
    """,
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
    """,
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    """,
    "sequences": """
        SELECT sequencename, data_type::text, start_value, increment_by FROM pg_sequences
        WHERE schemaname = 'public'
    """,
    "extensions": "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'",
}


async def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every schema object a migration or `create_all` can create, rendered by PostgreSQL itself."""
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        return {
            name: sorted([tuple(r) for r in await conn.fetch(sql)], key=repr) for name, sql in _SNAPSHOT_QUERIES.items()
        }
    finally:
        await conn.close()


async def _rejects(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.PostgresError:
    """Run `sql` in a savepoint, expect PostgreSQL to refuse it, and return the error for inspection."""
    with pytest.raises(asyncpg.PostgresError) as info:
        async with conn.transaction():
            await conn.execute(sql, *args)
    return info.value


# ON DELETE RESTRICT reports foreign_key_violation (23503) on older servers and restrict_violation (23001) on
# newer ones; callers mapping errors to 409 must accept both.
_RESTRICT_ERRORS = (asyncpg.ForeignKeyViolationError, asyncpg.RestrictViolationError)


def _constraint(error: asyncpg.PostgresError) -> str | None:
    return getattr(error, "constraint_name", None)


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
async def scratch_database(pg_server_url: str) -> AsyncIterator[str]:
    """An empty database of its own for tests that migrate up and down."""
    url = await create_database(pg_server_url)
    yield url
    await drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
async def schema_url(fresh_database: str) -> str:
    """The module's database, upgraded to head once by the test helpers (not by `synapse_async.db.migrate`)."""
    assert await _tables(fresh_database) == set()
    await _upgrade(fresh_database)
    return fresh_database


@pytest.fixture
async def db(schema_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back, so constraint tests never see each other's rows."""
    conn = await asyncpg.connect(to_asyncpg_dsn(schema_url))
    tx = conn.transaction()
    await tx.start()
    try:
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


async def _member(conn: asyncpg.Connection, user_id: int = USER_A, guild_id: int = GUILD) -> None:
    await conn.execute(
        "INSERT INTO members (guild_id, user_id, display_name) VALUES ($1, $2, $3)", guild_id, user_id, "someone"
    )


# ---- migration -------------------------------------------------------------------------------------------------


async def test_upgrade_from_empty_creates_every_table(scratch_database: str) -> None:
    assert await _tables(scratch_database) == set()

    await _upgrade(scratch_database)

    assert await _tables(scratch_database) == set(Base.metadata.tables) | {"alembic_version"}
    assert len(Base.metadata.tables) == 32
    assert "event_lake_default" in await _partitions(scratch_database)
    assert await _version(scratch_database) == [HEAD]
    extensions = {r["extname"] for r in await _fetch(scratch_database, "SELECT extname FROM pg_extension")}
    assert "pg_trgm" in extensions
    triggers = await _fetch(
        scratch_database, "SELECT tgname, tgrelid::regclass::text AS tbl FROM pg_trigger WHERE NOT tgisinternal"
    )
    assert {(r["tbl"], r["tgname"]) for r in triggers} == {
        ("audit_log", "audit_log_append_only"),
        ("audit_log", "audit_log_no_truncate"),
        ("achievement_templates", "achievement_templates_clear_series_order"),
        ("achievement_categories", "achievement_categories_clear_templates"),
        ("achievement_rarities", "achievement_rarities_clear_templates"),
        ("achievement_series", "achievement_series_clear_templates"),
        ("jobs", "jobs_drop_payload"),
        *(("members", f"members_xp_rank_counts_{op}") for op in ("insert", "update", "delete", "truncate")),
    }


async def test_models_and_migration_agree_per_autogenerate(schema_url: str) -> None:
    engine = create_async_engine(to_sqlalchemy_url(schema_url), poolclass=NullPool)

    partitions = await _partitions(schema_url)

    def declared(name: str | None, type_: str, parent: Any) -> bool:
        return not (type_ == "table" and name in partitions)

    def compare(conn: Connection) -> list[Any]:
        opts = {"compare_type": True, "compare_server_default": True, "include_name": declared}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(compare)
    finally:
        await engine.dispose()
    assert diffs == []


async def test_models_and_migration_build_identical_catalogs(schema_url: str, scratch_database: str) -> None:
    """Autogenerate ignores CHECK constraints, partial-index predicates, operator classes and triggers; the
    catalogs PostgreSQL reports for `create_all()` and for the migration must therefore match object by object."""
    engine = create_async_engine(to_sqlalchemy_url(scratch_database), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()

    from_models = await _snapshot(scratch_database)
    from_migration = await _snapshot(schema_url)
    assert from_models["columns"], "snapshot saw no columns: the catalog queries are broken"
    for kind in _SNAPSHOT_QUERIES:
        assert from_migration[kind] == from_models[kind], kind


async def test_upgrade_twice_is_a_noop(scratch_database: str) -> None:
    await _upgrade(scratch_database)
    before = await _snapshot(scratch_database)

    # Second run through the other entry point of env.py: no connection given, URL from the config, own engine.
    # It runs in a worker thread because env.py refuses to start a nested event loop.
    cfg = _config()
    cfg.set_main_option("sqlalchemy.url", scratch_database.replace("%", "%%"))  # ini-style interpolation
    await asyncio.to_thread(command.upgrade, cfg, "head")

    assert await _snapshot(scratch_database) == before
    assert await _version(scratch_database) == [HEAD]


async def test_downgrade_to_base_then_upgrade_again(scratch_database: str) -> None:
    await _upgrade(scratch_database)
    first = await _snapshot(scratch_database)
    # Data in the append-only table must not stop a downgrade (DROP TABLE is not DELETE or TRUNCATE).
    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        await conn.execute(
            "INSERT INTO audit_log (actor_id, actor_kind, via, action, target_type)"
            " VALUES ('1', 'user', 'api', 'settings.update', 'setting')"
        )
    finally:
        await conn.close()

    await _downgrade(scratch_database, "base")

    assert await _tables(scratch_database) == {"alembic_version"}
    assert await _version(scratch_database) == []
    left = await _snapshot(scratch_database)
    assert {kind: rows for kind, rows in left.items() if rows} == {}

    await _upgrade(scratch_database)
    assert await _snapshot(scratch_database) == first
    assert await _version(scratch_database) == [HEAD]


_CATALOG_SNAPSHOTS = {
    "achievement_categories": "SELECT id, guild_id, name, icon, sort_order FROM achievement_categories ORDER BY id",
    "achievement_rarities": "SELECT id, guild_id, name, color, emoji, sort_order FROM achievement_rarities ORDER BY id",
    "achievement_series": "SELECT id, guild_id, name, description FROM achievement_series ORDER BY id",
    "achievement_templates": "SELECT id, guild_id, name, category_id, rarity_id, series_id, series_order,"
    " earned_count FROM achievement_templates ORDER BY id",
    "member_achievements": "SELECT guild_id, user_id, template_id FROM member_achievements ORDER BY 1, 2, 3",
    "event_lake": "SELECT id, guild_id, source_key, occurred_at FROM event_lake ORDER BY id",
}


async def _catalog_snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {table: [tuple(r) for r in await conn.fetch(sql)] for table, sql in _CATALOG_SNAPSHOTS.items()}


async def _primary_key(conn: asyncpg.Connection, table: str) -> list[str]:
    return list(
        await conn.fetchval(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, pos)"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.pos)"
            " FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
            table,
        )
    )


async def test_catalog_rekeying_keeps_every_row_of_a_populated_database(scratch_database: str) -> None:
    """Migration 0014 on a populated database: every catalog, template, badge and lake row survives with its id,
    the new composite keys hold, a reference to another guild's row (possible before) is cleared, and the
    downgrade brings the old keys back with every row."""
    before_rev = "0010_guild_keys"
    await _upgrade(scratch_database, before_rev)
    other = GUILD + 1
    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        refs: dict[int, tuple[list[int], list[int], list[int]]] = {}
        for guild in (GUILD, other):
            series = [
                await conn.fetchval(
                    "INSERT INTO achievement_series (guild_id, name) VALUES ($1, $2) RETURNING id", guild, f"S{i}"
                )
                for i in range(3)
            ]
            categories = [
                await conn.fetchval(
                    "INSERT INTO achievement_categories (guild_id, name) VALUES ($1, $2) RETURNING id", guild, f"C{i}"
                )
                for i in range(3)
            ]
            rarities = [
                await conn.fetchval(
                    "INSERT INTO achievement_rarities (guild_id, name, color) VALUES ($1, $2, '#123456') RETURNING id",
                    guild,
                    f"R{i}",
                )
                for i in range(3)
            ]
            refs[guild] = (series, categories, rarities)
            for i in range(30):
                await conn.execute(
                    "INSERT INTO achievement_templates (guild_id, name, trigger_type, series_id, series_order,"
                    " category_id, rarity_id) VALUES ($1, $2, 'manual', $3, $4, $5, $6)",
                    guild,
                    f"T{i}",
                    series[i % 3] if i % 2 == 0 else None,
                    i + 1 if i % 2 == 0 else None,
                    categories[i % 3] if i % 5 else None,
                    rarities[i % 3],
                )
            await conn.execute(
                "INSERT INTO member_achievements (guild_id, user_id, template_id, source)"
                " SELECT guild_id, $2, id, 'auto' FROM achievement_templates WHERE guild_id = $1",
                guild,
                USER_A,
            )
        # Written by hand, past the API's check: a template of GUILD pointing at the other guild's catalog rows.
        crossed = await conn.fetchval(
            "INSERT INTO achievement_templates (guild_id, name, trigger_type, series_id, series_order, category_id,"
            " rarity_id) VALUES ($1, 'Crossed', 'manual', $2, 99, $3, $4) RETURNING id",
            GUILD,
            refs[other][0][0],
            refs[other][1][0],
            refs[other][2][0],
        )
        await conn.execute(
            "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, occurred_at)"
            " SELECT CASE WHEN i % 2 = 0 THEN $1::bigint ELSE $2::bigint END, $3::bigint, 'message_create',"
            "        'msg:' || i, now() - make_interval(hours => i) FROM generate_series(1, 500) AS i",
            GUILD,
            other,
            USER_A,
        )
        before = await _catalog_snapshot(conn)
    finally:
        await conn.close()
    assert len(before["achievement_templates"]) == 61 and len(before["event_lake"]) == 500

    await _upgrade(scratch_database, "0014_catalog_guild_keys")

    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        after = await _catalog_snapshot(conn)
        # Every row is kept; only the crossed template lost its (foreign) references, as a deletion would do.
        expected = dict(before)
        expected["achievement_templates"] = [
            (*row[:3], None, None, None, None, row[7]) if row[0] == crossed else row
            for row in before["achievement_templates"]
        ]
        assert after == expected
        for table in ("achievement_categories", "achievement_rarities", "achievement_series"):
            assert await _primary_key(conn, table) == ["guild_id", "id"]
        assert await _primary_key(conn, "event_lake") == ["guild_id", "occurred_at", "id"]
        # The keys hold on the migrated rows: no crossing, and deleting still clears the references.
        error = await _rejects(
            conn, "UPDATE achievement_templates SET category_id = $2 WHERE id = $1", crossed, refs[other][1][1]
        )
        assert isinstance(error, asyncpg.ForeignKeyViolationError)
        series, categories, rarities = refs[GUILD]
        await conn.execute("DELETE FROM achievement_series WHERE id = $1", series[0])
        await conn.execute("DELETE FROM achievement_categories WHERE id = $1", categories[1])
        await conn.execute("DELETE FROM achievement_rarities WHERE id = $1", rarities[2])
        left = await conn.fetchval(
            "SELECT count(*) FROM achievement_templates WHERE series_id = $1 OR category_id = $2 OR rarity_id = $3",
            series[0],
            categories[1],
            rarities[2],
        )
        assert left == 0
        assert await conn.fetchval("SELECT count(*) FROM achievement_templates") == 61
    finally:
        await conn.close()

    await _downgrade(scratch_database, before_rev)
    conn = await asyncpg.connect(to_asyncpg_dsn(scratch_database))
    try:
        back = await _catalog_snapshot(conn)
        assert {table: len(rows) for table, rows in back.items()} == {
            table: len(rows) - (1 if table in ("achievement_categories", "achievement_rarities",
                                               "achievement_series") else 0)
            for table, rows in before.items()
        }  # fmt: skip
        assert back["event_lake"] == before["event_lake"]
        for table in ("achievement_categories", "achievement_rarities", "achievement_series"):
            assert await _primary_key(conn, table) == ["id"]
        assert await _primary_key(conn, "event_lake") == ["id", "occurred_at"]
        # The old single-column ON DELETE SET NULL is back.
        await conn.execute("DELETE FROM achievement_series WHERE id = $1", series[1])
        assert await conn.fetchval("SELECT count(*) FROM achievement_templates WHERE series_id = $1", series[1]) == 0
    finally:
        await conn.close()


def test_offline_mode_renders_the_whole_schema() -> None:
    cfg = _config()
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    command.upgrade(cfg, "head", sql=True)
    sql = buffer.getvalue()
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in sql
    for table in Base.metadata.tables:
        assert f"CREATE TABLE {table} (" in sql, table
    assert "CREATE TRIGGER audit_log_append_only" in sql


def test_revisions_do_not_import_the_models() -> None:
    """Revisions are frozen in time: importing the live models would silently change what old revisions do."""
    paths = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert paths
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name for name in imported if name.split(".")[0] == "synapse_async"}, path.name
        called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert "create_all" not in called, path.name


# ---- constraints biting ----------------------------------------------------------------------------------------


async def test_member_server_defaults(db: asyncpg.Connection) -> None:
    await _member(db)
    row = await db.fetchrow("SELECT * FROM members WHERE guild_id = $1 AND user_id = $2", GUILD, USER_A)
    assert row is not None
    assert (row["xp"], row["level"], row["peak_level"], row["gold"], row["lifetime_stars"]) == (0, 1, 1, 0, 0)
    assert row["created_at"] is not None and row["created_at"].tzinfo is not None
    assert row["voice_minutes"] == 0


async def test_negative_xp_and_gold_rejected(db: asyncpg.Connection) -> None:
    await _member(db)
    await db.execute("UPDATE members SET xp = xp + 10, gold = gold + 5")

    error = await _rejects(db, "UPDATE members SET xp = xp - 11")
    assert isinstance(error, asyncpg.CheckViolationError)
    assert _constraint(error) == "ck_members_xp_non_negative"
    error = await _rejects(db, "UPDATE members SET gold = gold - 6")
    assert _constraint(error) == "ck_members_gold_non_negative"

    assert await db.fetchval("SELECT xp FROM members") == 10


async def test_level_range_and_peak_rejected(db: asyncpg.Connection) -> None:
    await _member(db)
    await db.execute("UPDATE members SET level = 1000, peak_level = 1000")
    assert _constraint(await _rejects(db, "UPDATE members SET level = 1001")) == "ck_members_level_range"
    assert _constraint(await _rejects(db, "UPDATE members SET level = 0")) == "ck_members_level_range"
    # peak_level is the highest level ever reached, so never below the current level.
    await db.execute("UPDATE members SET level = 5, peak_level = 10")
    assert _constraint(await _rejects(db, "UPDATE members SET level = 11")) == "ck_members_peak_level_range"


async def test_member_string_limits(db: asyncpg.Connection) -> None:
    error = await _rejects(
        db, "INSERT INTO members (guild_id, user_id, display_name) VALUES ($1, $2, $3)", GUILD, USER_A, "x" * 101
    )
    assert isinstance(error, asyncpg.StringDataRightTruncationError)
    await _member(db)
    await db.execute("UPDATE members SET github_username = 'octo-cat-1'")
    error = await _rejects(db, "UPDATE members SET github_username = 'octo--cat'")
    assert _constraint(error) == "ck_members_github_username_format"
    error = await _rejects(db, "UPDATE members SET github_username = $1", "a" * 40)
    assert isinstance(error, asyncpg.StringDataRightTruncationError)


async def test_second_active_season_for_one_guild_rejected(db: asyncpg.Connection) -> None:
    insert = (
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, ended_at)"
        " VALUES ($1, $2, now(), now() + interval '30 days', $3, $4)"
    )
    await db.execute(insert, GUILD, "Season 1", "ended", datetime.now(UTC))
    await db.execute(insert, GUILD, "Season 2", "active", None)
    await db.execute(insert, GUILD + 1, "Season 1", "active", None)  # another guild may have its own

    error = await _rejects(db, insert, GUILD, "Season 3", "active", None)
    assert isinstance(error, asyncpg.UniqueViolationError)
    assert _constraint(error) == "uq_seasons_one_active"

    # Ending the active season frees the slot.
    await db.execute(
        "UPDATE seasons SET status = 'ended', ended_at = now() WHERE guild_id = $1 AND status = 'active'", GUILD
    )
    await db.execute(insert, GUILD, "Season 3", "active", None)


async def test_season_shape_rules(db: asyncpg.Connection) -> None:
    error = await _rejects(
        db,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status) VALUES ($1, 'S', now(), now(), 'active')",
        GUILD,
    )
    assert _constraint(error) == "ck_seasons_ends_after_start"
    error = await _rejects(
        db,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status)"
        " VALUES ($1, 'S', now(), now() + interval '1 day', 'ended')",
        GUILD,
    )
    assert _constraint(error) == "ck_seasons_ended_at_matches_status"
    error = await _rejects(
        db,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status)"
        " VALUES ($1, 'S', now(), now() + interval '1 day', 'paused')",
        GUILD,
    )
    assert _constraint(error) == "ck_seasons_status_allowed"


async def test_season_with_stats_cannot_be_deleted(db: asyncpg.Connection) -> None:
    season_id = await db.fetchval(
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status)"
        " VALUES ($1, 'S', now(), now() + interval '1 day', 'active') RETURNING season_id",
        GUILD,
    )
    await db.execute(
        "INSERT INTO season_stats (season_id, user_id, guild_id, stars) VALUES ($1, $2, $3, 3)",
        season_id,
        USER_A,
        GUILD,
    )
    error = await _rejects(db, "DELETE FROM seasons WHERE season_id = $1", season_id)
    assert isinstance(error, _RESTRICT_ERRORS)
    assert _constraint(error) == "fk_season_stats_guild_id_seasons"


async def test_stats_and_badges_cannot_point_at_another_guilds_season_or_template(db: asyncpg.Connection) -> None:
    """The composite keys of 0010 (issue 27): a row of one guild never refers to another guild's row."""
    season_id = await db.fetchval(
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, ended_at) VALUES"
        " ($1, 'Cross', now() - interval '3 days', now() - interval '2 days', 'ended', now()) RETURNING season_id",
        GUILD,
    )
    error = await _rejects(
        db,
        "INSERT INTO season_stats (season_id, user_id, guild_id, stars) VALUES ($1, $2, $3, 1)",
        season_id,
        USER_A,
        GUILD + 1,
    )
    assert isinstance(error, asyncpg.ForeignKeyViolationError)
    assert _constraint(error) == "fk_season_stats_guild_id_seasons"
    template_id = await _template(db, "Cross-guild")
    error = await _rejects(
        db,
        "INSERT INTO member_achievements (guild_id, user_id, template_id, source) VALUES ($1, $2, $3, 'auto')",
        GUILD + 1,
        USER_A,
        template_id,
    )
    assert isinstance(error, asyncpg.ForeignKeyViolationError)
    assert _constraint(error) == "fk_member_achievements_guild_id_achievement_templates"


async def test_audit_log_is_append_only(db: asyncpg.Connection) -> None:
    audit_id = await db.fetchval(
        "INSERT INTO audit_log (guild_id, actor_id, actor_kind, via, action, target_type, client_ip, after)"
        " VALUES ($1, '42', 'user', 'api', 'settings.update', 'setting', '203.0.113.7', '{\"v\": 1}')"
        " RETURNING id",
        GUILD,
    )

    for statement in (
        "UPDATE audit_log SET reason = 'rewritten'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        error = await _rejects(db, statement)
        assert isinstance(error, asyncpg.InsufficientPrivilegeError), statement
        assert "append-only" in str(error), statement

    row = await db.fetchrow("SELECT reason, action FROM audit_log WHERE id = $1", audit_id)
    assert row is not None
    assert (row["reason"], row["action"]) == (None, "settings.update")


async def test_audit_log_vocabulary(db: asyncpg.Connection) -> None:
    error = await _rejects(
        db,
        "INSERT INTO audit_log (actor_id, actor_kind, via, action, target_type)"
        " VALUES ('42', 'robot', 'api', 'x', 'y')",
    )
    assert _constraint(error) == "ck_audit_log_actor_kind_allowed"


@pytest.mark.parametrize(
    ("table", "key_columns", "key_values"),
    [
        ("channel_type_defaults", "channel_type, event_type", "'text', 'message'"),
        ("channel_overrides", "channel_id, event_type", "5, '*'"),
        ("role_multipliers", "role_id", "7"),
    ],
)
async def test_multipliers_limited_to_0_through_10(
    db: asyncpg.Connection, table: str, key_columns: str, key_values: str
) -> None:
    insert = (
        f"INSERT INTO {table} (guild_id, {key_columns}, xp_multiplier, star_multiplier)"
        f" VALUES ({GUILD}, {key_values}, $1, $2)"
    )
    for xp, stars in (("10.5", "1"), ("1", "10.5"), ("-0.001", "1")):
        error = await _rejects(db, insert, xp, stars)
        assert isinstance(error, asyncpg.CheckViolationError), (xp, stars)
        assert (_constraint(error) or "").endswith("_multiplier_range"), (xp, stars)
    await db.execute(insert, "10", "0")
    row = await db.fetchrow(f"SELECT xp_multiplier, star_multiplier FROM {table}")
    assert row is not None
    assert (str(row["xp_multiplier"]), str(row["star_multiplier"])) == ("10.000", "0.000")


async def test_channel_type_defaults_vocabulary(db: asyncpg.Connection) -> None:
    error = await _rejects(
        db,
        "INSERT INTO channel_type_defaults (guild_id, channel_type, event_type, xp_multiplier, star_multiplier)"
        " VALUES ($1, 'category', 'message', 1, 1)",
        GUILD,
    )
    assert _constraint(error) == "ck_channel_type_defaults_channel_type_allowed"


async def _template(conn: asyncpg.Connection, name: str, **columns: Any) -> int:
    names = ", ".join(["guild_id", "name", "trigger_type", *columns])
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 4))
    value: int = await conn.fetchval(
        f"INSERT INTO achievement_templates ({names}) VALUES ({placeholders}) RETURNING id",
        GUILD,
        name,
        "manual",
        *columns.values(),
    )
    return value


async def test_max_earners_never_exceeded(db: asyncpg.Connection) -> None:
    template_id = await _template(db, "Once", max_earners=1)
    increment = "UPDATE achievement_templates SET earned_count = earned_count + 1 WHERE id = $1"

    await db.execute(increment, template_id)
    error = await _rejects(db, increment, template_id)
    assert _constraint(error) == "ck_achievement_templates_max_earners_not_exceeded"
    # The conditional increment the app uses simply matches no row once the template is full.
    conditional = increment + " AND (max_earners IS NULL OR earned_count < max_earners)"
    assert await db.execute(conditional, template_id) == "UPDATE 0"
    assert await db.fetchval("SELECT earned_count FROM achievement_templates WHERE id = $1", template_id) == 1

    error = await _rejects(
        db,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, max_earners)"
        " VALUES ($1, 'Never', 'manual', 0)",
        GUILD,
    )
    assert _constraint(error) == "ck_achievement_templates_max_earners_positive"


async def test_template_rules(db: asyncpg.Connection) -> None:
    series_id = await db.fetchval(
        "INSERT INTO achievement_series (guild_id, name) VALUES ($1, 'Chatter') RETURNING id", GUILD
    )
    await _template(db, "Tier 1", series_id=series_id, series_order=1)

    error = await _rejects(
        db,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, series_id, series_order)"
        " VALUES ($1, 'Tier 1 again', 'manual', $2, 1)",
        GUILD,
        series_id,
    )
    assert _constraint(error) == "uq_achievement_templates_guild_id_series_id_series_order"
    for columns, constraint in (
        ("series_id", "ck_achievement_templates_series_order_iff_series"),
        ("series_order", "ck_achievement_templates_series_order_iff_series"),
    ):
        value = series_id if columns == "series_id" else 2
        error = await _rejects(
            db,
            f"INSERT INTO achievement_templates (guild_id, name, trigger_type, {columns})"
            " VALUES ($1, 'X', 'manual', $2)",
            GUILD,
            value,
        )
        assert _constraint(error) == constraint, columns
    checks = {
        "xp_reward = 1000001": "ck_achievement_templates_xp_reward_range",
        "gold_reward = -1": "ck_achievement_templates_gold_reward_range",
        "badge_image_url = 'http://example.com/a.png'": "ck_achievement_templates_badge_image_url_https",
        "trigger_type = 'whenever'": "ck_achievement_templates_trigger_type_allowed",
        "trigger_config = '[]'::jsonb": "ck_achievement_templates_trigger_config_is_object",
    }
    for assignment, constraint in checks.items():
        error = await _rejects(db, f"UPDATE achievement_templates SET {assignment}")
        assert _constraint(error) == constraint, assignment


async def _catalog_refs(conn: asyncpg.Connection, guild_id: int = GUILD, suffix: str = "") -> tuple[int, int, int]:
    """A series, a category and a rarity of `guild_id`: their ids."""
    series_id = await conn.fetchval(
        "INSERT INTO achievement_series (guild_id, name) VALUES ($1, $2) RETURNING id", guild_id, "S" + suffix
    )
    category_id = await conn.fetchval(
        "INSERT INTO achievement_categories (guild_id, name) VALUES ($1, $2) RETURNING id", guild_id, "C" + suffix
    )
    rarity_id = await conn.fetchval(
        "INSERT INTO achievement_rarities (guild_id, name, color) VALUES ($1, $2, '#2196F3') RETURNING id",
        guild_id,
        "Rare" + suffix,
    )
    return series_id, category_id, rarity_id


async def test_deleting_series_category_rarity_nulls_references(db: asyncpg.Connection) -> None:
    """Migration 0014: the composite foreign keys are NO ACTION; a BEFORE DELETE trigger on each catalog table
    clears the reference on the guild's templates (and, for a series, `series_order` with it)."""
    series_id, category_id, rarity_id = await _catalog_refs(db)
    template_id = await _template(
        db, "T", series_id=series_id, series_order=3, category_id=category_id, rarity_id=rarity_id
    )
    second_tier = await _template(db, "T2", series_id=series_id, series_order=4, category_id=category_id)
    kept_series, kept_category, kept_rarity = await _catalog_refs(db, suffix=" kept")
    untouched = await _template(
        db, "Kept", series_id=kept_series, series_order=1, category_id=kept_category, rarity_id=kept_rarity
    )

    await db.execute("DELETE FROM achievement_series WHERE id = $1", series_id)
    await db.execute("DELETE FROM achievement_categories WHERE id = $1", category_id)
    await db.execute("DELETE FROM achievement_rarities WHERE id = $1", rarity_id)

    row = await db.fetchrow("SELECT * FROM achievement_templates WHERE id = $1", template_id)
    assert row is not None
    assert (row["series_id"], row["series_order"], row["category_id"], row["rarity_id"]) == (None, None, None, None)
    row = await db.fetchrow("SELECT * FROM achievement_templates WHERE id = $1", second_tier)
    assert row is not None
    assert (row["series_id"], row["series_order"], row["category_id"]) == (None, None, None)
    row = await db.fetchrow("SELECT * FROM achievement_templates WHERE id = $1", untouched)
    assert row is not None
    assert (row["series_id"], row["series_order"], row["category_id"], row["rarity_id"]) == (
        kept_series,
        1,
        kept_category,
        kept_rarity,
    )
    # A whole guild's catalog in one statement (several rows, several templates each) goes the same way.
    await db.execute("DELETE FROM achievement_series WHERE guild_id = $1", GUILD)
    await db.execute("DELETE FROM achievement_categories WHERE guild_id = $1", GUILD)
    await db.execute("DELETE FROM achievement_rarities WHERE guild_id = $1", GUILD)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM achievement_templates WHERE guild_id = $1"
            " AND (series_id IS NOT NULL OR series_order IS NOT NULL"
            " OR category_id IS NOT NULL OR rarity_id IS NOT NULL)",
            GUILD,
        )
        == 0
    )
    error = await _rejects(
        db, "INSERT INTO achievement_rarities (guild_id, name, color) VALUES ($1, 'Bad', 'red')", GUILD
    )
    assert _constraint(error) == "ck_achievement_rarities_color_format"


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("series_id", "fk_achievement_templates_guild_id_achievement_series"),
        ("category_id", "fk_achievement_templates_guild_id_achievement_categories"),
        ("rarity_id", "fk_achievement_templates_guild_id_achievement_rarities"),
    ],
)
async def test_a_template_cannot_point_at_another_guilds_catalog(
    db: asyncpg.Connection, column: str, constraint: str
) -> None:
    """Migration 0014: the database, not only the API, refuses a category, rarity or series of another guild."""
    elsewhere = dict(zip(("series_id", "category_id", "rarity_id"), await _catalog_refs(db, GUILD + 1), strict=True))
    extra = ", series_order" if column == "series_id" else ""
    insert = (
        f"INSERT INTO achievement_templates (guild_id, name, trigger_type, {column}{extra})"
        f" VALUES ($1, 'Crossed', 'manual', $2{', 1' if extra else ''})"
    )
    error = await _rejects(db, insert, GUILD, elsewhere[column])
    assert isinstance(error, asyncpg.ForeignKeyViolationError)
    assert _constraint(error) == constraint
    template_id = await _template(db, "Linked later")
    error = await _rejects(
        db,
        f"UPDATE achievement_templates SET {column} = $2{extra and ', series_order = 1'} WHERE id = $1",
        template_id,
        elsewhere[column],
    )
    assert _constraint(error) == constraint
    # The other guild's own template may use it.
    await db.execute(insert, GUILD + 1, elsewhere[column])


async def test_earned_template_cannot_be_deleted(db: asyncpg.Connection) -> None:
    template_id = await _template(db, "Earned")
    await db.execute(
        "INSERT INTO member_achievements (guild_id, user_id, template_id, source) VALUES ($1, $2, $3, 'auto')",
        GUILD,
        USER_A,
        template_id,
    )
    error = await _rejects(db, "DELETE FROM achievement_templates WHERE id = $1", template_id)
    assert isinstance(error, _RESTRICT_ERRORS)
    assert _constraint(error) == "fk_member_achievements_guild_id_achievement_templates"
    error = await _rejects(
        db,
        "INSERT INTO member_achievements (guild_id, user_id, template_id, source) VALUES ($1, $2, $3, 'grant')",
        GUILD,
        USER_B,
        template_id,
    )
    assert _constraint(error) == "ck_member_achievements_grant_has_granter"


async def test_member_preferences_cascade_with_member(db: asyncpg.Connection) -> None:
    await _member(db)
    await db.execute("INSERT INTO member_preferences (guild_id, user_id) VALUES ($1, $2)", GUILD, USER_A)
    assert await db.fetchval("SELECT announce_level_up FROM member_preferences") is True
    error = await _rejects(db, "INSERT INTO member_preferences (guild_id, user_id) VALUES ($1, $2)", GUILD, USER_B)
    assert isinstance(error, asyncpg.ForeignKeyViolationError)

    await db.execute("DELETE FROM members WHERE guild_id = $1 AND user_id = $2", GUILD, USER_A)
    assert await db.fetchval("SELECT count(*) FROM member_preferences") == 0


async def test_journal_and_ledger_rules(db: asyncpg.Connection) -> None:
    journal = (
        "INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta,"
        " zero_reason, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
    )
    await db.execute(journal, GUILD, USER_A, "message", "msg:1", 15, 1, None)
    error = await _rejects(db, journal, GUILD, USER_B, "message", "msg:1", 15, 1, None)
    assert _constraint(error) == "uq_reward_journal_guild_id_idempotency_key"
    await db.execute(journal, GUILD + 1, USER_A, "message", "msg:1", 15, 1, None)  # keys are per guild
    assert _constraint(await _rejects(db, journal, GUILD, USER_A, "message", "msg:2", 5, 0, "cooldown")) == (
        "ck_reward_journal_zero_reason_pays_nothing"
    )
    assert _constraint(await _rejects(db, journal, GUILD, USER_A, "message", "msg:3", -5, 0, None)) == (
        "ck_reward_journal_event_rewards_non_negative"
    )
    await db.execute(journal, GUILD, USER_A, "manual_award", "award:x", -5, 0, None)  # awards may subtract
    assert await db.fetchval("SELECT details FROM reward_journal WHERE idempotency_key = 'msg:1' LIMIT 1") == "{}"

    ledger = (
        "INSERT INTO gold_ledger (guild_id, user_id, delta, balance_after, reason, idempotency_key)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
    )
    await db.execute(ledger, GUILD, USER_A, 50, 50, "level_up", "msg:1#lvl")
    assert _constraint(await _rejects(db, ledger, GUILD, USER_A, 0, 50, "manual_award", "award:0")) == (
        "ck_gold_ledger_delta_non_zero"
    )
    assert _constraint(await _rejects(db, ledger, GUILD, USER_A, 50, 100, "purchase", "buy:1")) == (
        "ck_gold_ledger_delta_sign_matches_reason"
    )
    assert _constraint(await _rejects(db, ledger, GUILD, USER_A, -60, -10, "purchase", "buy:2")) == (
        "ck_gold_ledger_balance_after_non_negative"
    )


async def test_event_lake_and_counters_rules(db: asyncpg.Connection) -> None:
    gate = (
        "INSERT INTO event_lake_keys (guild_id, source_key, occurred_at) VALUES ($1, $2, now())"
        " ON CONFLICT (guild_id, source_key) DO NOTHING RETURNING source_key"
    )
    assert await db.fetchval(gate, GUILD, "msg:1") == "msg:1"
    assert await db.fetchval(gate, GUILD, "msg:1") is None  # duplicate detected
    assert await db.fetchval(gate, GUILD + 1, "msg:1") == "msg:1"  # keys are per guild
    lake = (
        "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, occurred_at)"
        " VALUES ($1, $2, $3, $4, now()) RETURNING id"
    )
    assert await db.fetchval(lake, GUILD, USER_A, "message_create", "msg:1") is not None
    error = await _rejects(db, lake, GUILD, USER_A, "typing_start", "typ:1")
    assert _constraint(error) == "ck_event_lake_event_type_allowed"

    counter = "INSERT INTO event_counters (guild_id, user_id, event_type, period, count) VALUES ($1, $2, $3, $4, $5)"
    for period in ("lifetime", "season:12", "day:2025-03-01"):
        await db.execute(counter, GUILD, USER_A, "message_create", period, 1)
    for period in ("season:", "day:2025-3-1", "week:1", "lifetime "):
        error = await _rejects(db, counter, GUILD, USER_A, "message_create", period, 1)
        assert _constraint(error) == "ck_event_counters_period_format", period
    error = await _rejects(db, counter, GUILD, USER_A, "reaction_add", "lifetime", -1)
    assert _constraint(error) == "ck_event_counters_count_non_negative"


async def test_one_active_job_per_guild_and_kind(db: asyncpg.Connection) -> None:
    insert = "INSERT INTO jobs (guild_id, kind, requested_by) VALUES ($1, $2, 'svc:test') RETURNING job_id"
    job_id = await db.fetchval(insert, GUILD, "relevel")
    row = await db.fetchrow("SELECT status, params, progress, rerun_requested FROM jobs WHERE job_id = $1", job_id)
    assert row is not None
    assert (row["status"], row["params"], row["progress"], row["rerun_requested"]) == (
        "queued",
        "{}",
        '{"done": 0, "total": 0}',
        False,
    )
    await db.fetchval(insert, GUILD, "retention")  # another kind is independent

    error = await _rejects(db, insert, GUILD, "relevel")
    assert _constraint(error) == "uq_jobs_one_active"
    await db.execute("UPDATE jobs SET status = 'running', started_at = now() WHERE job_id = $1", job_id)
    assert _constraint(await _rejects(db, insert, GUILD, "relevel")) == "uq_jobs_one_active"

    error = await _rejects(db, "UPDATE jobs SET status = 'succeeded' WHERE job_id = $1", job_id)
    assert _constraint(error) == "ck_jobs_finished_at_matches_status"
    await db.execute("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE job_id = $1", job_id)
    await db.fetchval(insert, GUILD, "relevel")  # the slot is free again

    await db.execute("INSERT INTO job_payloads (job_id, body) VALUES ($1, '[1, 2]')", job_id)
    await db.execute("DELETE FROM jobs WHERE job_id = $1", job_id)
    assert await db.fetchval("SELECT count(*) FROM job_payloads") == 0


async def test_platform_formats(db: asyncpg.Connection) -> None:
    insert = (
        "INSERT INTO idempotency_keys (principal, route, key, request_hash, status, response)"
        " VALUES ($1, 'POST /x', $2, 'h', $3, '{}')"
    )
    await db.execute(insert, "42", "abcdefgh", 201)
    assert _constraint(await _rejects(db, insert, "42", "short", 201)) == "ck_idempotency_keys_key_format"
    assert _constraint(await _rejects(db, insert, "42", "abcdefgi", 99)) == "ck_idempotency_keys_status_range"
    error = await _rejects(db, "INSERT INTO oauth_states (state, expires_at) VALUES ('s', now() - interval '1 second')")
    assert _constraint(error) == "ck_oauth_states_expires_after_created"
