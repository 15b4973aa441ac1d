"""Helpers shared by the integration tests: start a real Runtime in-process, wait for conditions, HTTP calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from synapse_async.bot.normalizer import EventSink
from synapse_async.config import load_config
from synapse_async.db.engine import Database
from synapse_async.db.migrate import alembic_config
from synapse_async.db.urls import to_sqlalchemy_url
from synapse_async.domain.events import GatewayDomainEvent
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.world import SANDBOX_GUILD_ID

# Short intervals so that behaviour which takes minutes in production takes a fraction of a second here.
FAST_ENV = {
    "HTTP_HOST": "127.0.0.1",
    "HTTP_PORT": "0",
    "LOG_LEVEL": "WARNING",
    "DB_PROBE_SECONDS": "0.2",
    "LISTEN_PING_SECONDS": "0.3",
    "MIGRATION_POLL_SECONDS": "0.1",
    "TASK_RESTART_SECONDS": "0.1",
    "SHUTDOWN_DEADLINE_SECONDS": "5",
    "DB_CONNECT_RETRY_SECONDS": "5",
    "JOB_POLL_SECONDS": "0.2",
    # Tests run the sandbox against their own per-module database on the session's server.
    "SANDBOX_ALLOW_EXTERNAL_DATABASE": "true",
}


def make_runtime(
    database_url: str, *, sink: EventSink | None = None, extensions: Sequence[str] | None = None, **env: str
) -> Runtime:
    merged = {**FAST_ENV, "DATABASE_URL": database_url, **env}
    return Runtime(load_config(merged), sink=sink, extensions=extensions)


@contextlib.asynccontextmanager
async def running(database_url: str, **env: str) -> AsyncIterator[Runtime]:
    """A started runtime (sandbox simulator) whose cache knows the sandbox guild; shut down afterwards."""
    rt = make_runtime(database_url, **env)
    await rt.start()
    try:
        cache = rt.components.require_cache()
        await wait_for(lambda: SANDBOX_GUILD_ID in cache.known_guild_ids())
        yield rt
    finally:
        await rt.shutdown()


@contextlib.asynccontextmanager
async def database_with_guild(
    url: str, guild_id: int, name: str, *, statement_timeout_ms: int
) -> AsyncIterator[Database]:
    """A small `Database` on `url` whose `guilds` table has `guild_id` (job and lake tests run without a gateway)."""
    database = Database(url, pool_size=4, max_overflow=2, pool_timeout=5, statement_timeout_ms=statement_timeout_ms)
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(
            f"INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ({int(guild_id)}, '{name}', 1, now())"
        )
    try:
        yield database
    finally:
        await database.dispose()


@contextlib.asynccontextmanager
async def started_simulator(*, members: int, seed: int) -> AsyncIterator[DiscordSimulator]:
    """A Discord simulator on its own (no app runtime), started and stopped around the block."""
    simulator = DiscordSimulator(members=members, seed=seed)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def run_alembic(url: str, action: Callable[[AlembicConfig], None]) -> None:
    """Run an Alembic command (upgrade or downgrade to a revision) on a connection we own, the way
    `synapse_async.db.migrate` does, for tests that walk the migrations themselves."""
    cfg = alembic_config()
    engine = create_async_engine(to_sqlalchemy_url(url), poolclass=NullPool)

    def run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        action(cfg)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def simulator_of(rt: Runtime) -> DiscordSimulator:
    """The in-process simulator of a runtime started without a Discord token."""
    assert rt.simulator is not None
    return rt.simulator


async def wait_for(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll until `predicate` is true; fail with a clear message after `timeout` (a guard, not a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def get_json(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, await resp.json()


class RecordingSink:
    """An `EventSink` that keeps what the normalizer produced (bounded), so a test sees exactly that."""

    def __init__(self, limit: int = 100_000) -> None:
        self.events: deque[GatewayDomainEvent] = deque(maxlen=limit)

    def submit(self, event: GatewayDomainEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
