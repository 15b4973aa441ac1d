"""Alembic environment for synapse-async: async-aware, and drivable from inside the running application.

Three ways in:

1. **Programmatic, with a connection** (how the app migrates, `synapse_async.db.migrate`): the caller opens an
   `AsyncConnection`, takes the migration advisory lock, and calls `command.upgrade()` inside
   `AsyncConnection.run_sync()` with the *sync* `Connection` facade stored in `config.attributes["connection"]`.
   Migrations then run on that connection, inside the caller's transaction; this module never commits it.
2. **Programmatic or CLI, without a connection**: the URL comes from `sqlalchemy.url` (if a caller set it) or the
   `DATABASE_URL` environment variable, is converted to `postgresql+asyncpg://`, and an async engine with no pool
   runs the migrations through `connection.run_sync()`.
3. **Offline** (`alembic upgrade head --sql`): SQL is rendered for the PostgreSQL dialect without connecting
   (no URL needed).

`compare_type` and `compare_server_default` are on, so `alembic revision --autogenerate` reports type and
server-default drift between `synapse_async.db.models` and the database, not only missing tables.
"""

from __future__ import annotations

import asyncio
import logging
import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from synapse_async.db.models import Base
from synapse_async.db.urls import redact, to_sqlalchemy_url

config = context.config

# Only the CLI passes an ini file. The app builds its Config in code and owns logging, which fileConfig would
# otherwise reconfigure (and, by default, silence every logger created so far).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
log = logging.getLogger("alembic.env")


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        **options,
    )


def _database_url() -> str | None:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    return url or None


def run_migrations_offline() -> None:
    """Render SQL instead of executing it; no database (and no URL) is needed, only the dialect."""
    _configure(dialect_name="postgresql", literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a sync `Connection` (either the caller's or one from our own engine)."""
    _configure(connection=connection)
    # If the connection is already inside a transaction (the app's `engine.begin()`), Alembic joins it and leaves
    # the commit to the caller; otherwise it begins and commits its own.
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(to_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    supplied = config.attributes.get("connection")
    if supplied is not None:
        if isinstance(supplied, AsyncConnection):
            raise TypeError(
                "config.attributes['connection'] must be the sync Connection passed to "
                "AsyncConnection.run_sync(), not the AsyncConnection itself"
            )
        if not isinstance(supplied, Connection):
            raise TypeError(f"config.attributes['connection'] is a {type(supplied).__name__}, not a Connection")
        do_run_migrations(supplied)
        return

    url = _database_url()
    if url is None:
        raise RuntimeError(
            "no database to migrate: set DATABASE_URL (postgresql://…) or pass a connection in "
            "config.attributes['connection']"
        )
    log.info("migrating %s", redact(url))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run_async_migrations(url))
    else:
        raise RuntimeError(
            "Alembic was invoked from inside a running event loop without a connection; use "
            "`await conn.run_sync(...)` and pass the sync connection in config.attributes['connection']"
        )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
