"""Schema migrations through Alembic, driven from asyncio (SPEC §3.2 step 6, §26 `migrate`).

Several processes may start at once against one database, so upgrades run under a transaction-scoped PostgreSQL
advisory lock: the first process migrates, the others wait on the lock and then find nothing to do. Processes
with `DB_AUTO_MIGRATE=false` never migrate; they compare the database's revision with the code's head and report
`migrations_pending` until an operator runs `python -m synapse_async migrate`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from synapse_async.db.urls import to_sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Arbitrary constant shared by every synapse-async process: "the schema migration lock".
MIGRATION_LOCK_KEY = 0x5_1A_95E


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def is_at_head(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


def _is_downgrade(script: ScriptDirectory, current: str | None, target: str) -> bool:
    if target == "base":
        return current is not None
    if current is None or target in ("head", "heads"):
        return False
    older = {rev.revision for rev in script.iterate_revisions(current, "base")}
    return target in older and target != current


async def migrate(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str | None]:
    """Move the schema to `target` (up or down) under the advisory lock; return (before, after) revisions."""
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)

    def run(conn: Connection) -> tuple[str | None, str | None]:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        before = _current(conn)
        cfg.attributes["connection"] = conn
        if _is_downgrade(script, before, target):
            command.downgrade(cfg, target)
        else:
            command.upgrade(cfg, target)
        return before, _current(conn)

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def upgrade_to_head(url: str) -> None:
    """Convenience for tools and tests: upgrade the database at `url` to head with a short-lived engine."""
    engine = create_async_engine(to_sqlalchemy_url(url))
    try:
        await migrate(engine, "head")
    finally:
        await engine.dispose()
