"""`tools/check_distributable.py` against real databases (issue 27): the migrated schema passes, and a table that
breaks the guild_id rules makes the script fail and name it.

The script is run as a subprocess, exactly as a developer or CI would run it, so its exit code is what is tested.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
from alembic import command

from synapse_async.db.urls import to_asyncpg_dsn
from tests.conftest import create_database, drop_database
from tests.support import run_alembic

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "check_distributable.py"


async def _run(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        url,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_migrated_schema_is_distributable(migrated_database: str) -> None:
    code, out = await _run(migrated_database)
    assert code == 0, out
    assert out.startswith("ok: ") or "\nok: " in out
    # Nothing is excused any more (migration 0014 rekeyed the last tables): the whole schema follows the rules.
    assert "(0 known exception(s) remaining)" in out, out
    assert "known (KNOWN_EXCEPTIONS)" not in out, out


async def test_the_schema_before_the_catalog_rekeying_fails_the_check(pg_server_url: str) -> None:
    """What 0014 fixed, seen by the script: at 0010 the catalog's surrogate keys, the templates' single-column
    foreign keys and the lake's id-first key are violations now that no table is excused."""
    url = await create_database(pg_server_url)
    try:
        await run_alembic(url, lambda cfg: command.upgrade(cfg, "0010_guild_keys"))
        code, out = await _run(url)
    finally:
        await drop_database(pg_server_url, url)
    assert code == 1, out
    for table in ("achievement_categories", "achievement_rarities", "achievement_series"):
        assert f"{table}: primary key pk_{table} (id) does not start with guild_id" in out
    assert "event_lake: primary key pk_event_lake (id, occurred_at) does not start with guild_id" in out
    for table in ("achievement_categories", "achievement_rarities", "achievement_series"):
        assert f"-> {table} does not pair guild_id with guild_id" in out


async def test_a_table_keyed_by_a_surrogate_id_fails_the_check(fresh_database: str) -> None:
    # The same shape the rules exist to catch: a guild-owned table whose primary key and unique constraint do not
    # start with guild_id, and a foreign key from it that does not pair guild_id with guild_id.
    await _execute(
        fresh_database,
        """
        CREATE TABLE parcels (guild_id bigint NOT NULL, parcel_id bigint NOT NULL, PRIMARY KEY (guild_id, parcel_id));
        CREATE TABLE bad_things (
            id bigserial PRIMARY KEY,
            guild_id bigint NOT NULL,
            code text NOT NULL,
            parcel_id bigint,
            CONSTRAINT uq_bad_code UNIQUE (code, guild_id),
            CONSTRAINT fk_bad_parcel FOREIGN KEY (guild_id, parcel_id) REFERENCES parcels (guild_id, parcel_id)
        );
        CREATE TABLE loose_ends (guild_id bigint NOT NULL, parcel_id bigint NOT NULL, PRIMARY KEY (guild_id, parcel_id),
            CONSTRAINT fk_loose FOREIGN KEY (parcel_id, guild_id) REFERENCES parcels (guild_id, parcel_id));
        CREATE UNIQUE INDEX uq_loose_lower ON loose_ends (lower(parcel_id::text));
        CREATE TABLE no_guild (name text PRIMARY KEY);
        """,
    )
    code, out = await _run(fresh_database)
    assert code == 1, out
    assert "bad_things: primary key bad_things_pkey (id) does not start with guild_id" in out
    assert "bad_things: unique constraint uq_bad_code (code, guild_id) does not start with guild_id" in out
    assert "loose_ends: foreign key fk_loose (parcel_id, guild_id) -> parcels does not pair guild_id" in out
    assert "loose_ends: unique index uq_loose_lower (<expression>) does not start with guild_id" in out
    assert "no_guild: has no guild_id column and is not listed in GLOBAL_TABLES" in out
    # The co-located foreign key of bad_things is fine, and so is parcels.
    assert "fk_bad_parcel" not in out
    assert "parcels:" not in out
