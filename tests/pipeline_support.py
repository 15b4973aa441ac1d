"""Helpers for pipeline tests: a sandbox runtime (simulator → real hikari → pipeline → PostgreSQL) and DB reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text

from synapse_async.db.notify import notify_config
from synapse_async.runtime import Runtime
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from tests.support import make_runtime, wait_for

GUILD = 100000000000000001
ADMIN = 100000000000000010
ALICE = 100000000000001000
BOB = 100000000000001001
CAROL = 100000000000001002
ACTOR = Actor("svc:test", "service", "api")
MEMBERS_30 = [100000000000001000 + i for i in range(30)]  # the members of a 30-member sandbox
PLAIN = "hello there, how is everyone doing"  # 34 chars: no quality factor applies


async def query(rt: Runtime, sql: str, **params: Any) -> list[dict[str, Any]]:
    assert rt.components.db is not None
    async with rt.components.db.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(text(sql), {"g": GUILD, **params})).all()]


async def member(rt: Runtime, user: int) -> dict[str, Any] | None:
    rows = await query(rt, "SELECT * FROM members WHERE guild_id = :g AND user_id = :u", u=user)
    return rows[0] if rows else None


async def journal(rt: Runtime, user: int, kind: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM reward_journal WHERE guild_id = :g AND user_id = :u"
    if kind is not None:
        sql += " AND event_type = :k"
    return await query(rt, sql + " ORDER BY id", u=user, k=kind)


async def journal_key(rt: Runtime, key: str) -> dict[str, Any] | None:
    rows = await query(rt, "SELECT * FROM reward_journal WHERE guild_id = :g AND idempotency_key = :k", k=key)
    return rows[0] if rows else None


async def wait_key(rt: Runtime, key: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the journal row with `key` is committed and return it."""
    found: dict[str, Any] = {}

    async def present() -> bool:
        row = await journal_key(rt, key)
        if row is not None:
            found.update(row)
        return row is not None

    await wait_for(present, timeout=timeout)
    return found


async def settle(rt: Runtime) -> None:
    assert rt.pipeline is not None
    await rt.pipeline.wait_idle()


async def set_settings(rt: Runtime, values: dict[str, object]) -> None:
    assert rt.components.db is not None and rt.components.cache is not None
    cache = rt.components.cache
    await update_settings(rt.components.db.sessions, GUILD, values, ACTOR)
    await wait_for(lambda: all(cache.settings(GUILD).raw(k) == _normal(v) for k, v in values.items()))


def _normal(value: object) -> object:
    if isinstance(value, list):
        return tuple(int(v) for v in value)
    return value


async def write_config(rt: Runtime, sql: str, table: str, **params: Any) -> None:
    """Write a config row directly (the admin API comes later) with the NOTIFY in the same transaction."""
    assert rt.components.db is not None and rt.components.cache is not None
    cache = rt.components.cache
    before = cache.reloads[f"{table}:{GUILD}"]
    async with rt.components.db.sessions.begin() as s:
        await s.execute(text(sql), {"g": GUILD, **params})
        await notify_config(s, table, GUILD)
    await wait_for(lambda: cache.reloads[f"{table}:{GUILD}"] > before)


@contextlib.asynccontextmanager
async def pipeline_runtime(database_url: str, members: int, **env: str) -> AsyncIterator[Runtime]:
    """A started sandbox runtime with `members` simulated members and the cooldown off; shut down afterwards."""
    rt = make_runtime(database_url, SANDBOX_MEMBERS=str(members), **env)
    await rt.start()
    try:
        assert rt.simulator is not None and rt.components.cache is not None
        cache = rt.components.cache
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        await set_settings(rt, {"cooldown.seconds": 0})
        yield rt
    finally:
        await rt.shutdown()


@contextlib.asynccontextmanager
async def runtime_with_plain_channel(database_url: str, members: int) -> AsyncIterator[tuple[Runtime, int]]:
    """`pipeline_runtime` plus an announcement channel outside the category, where no multiplier rule applies."""
    async with pipeline_runtime(database_url, members) as rt:
        assert rt.simulator is not None and rt.components.cache is not None
        cache = rt.components.cache
        plain = int(await rt.simulator.create_channel("plain", "announcement"))
        await wait_for(lambda: plain in cache.guild(GUILD).channels)
        yield rt, plain
