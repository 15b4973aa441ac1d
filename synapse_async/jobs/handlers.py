"""Job bodies: `relevel` (SPEC §10.3) and `level_role_sync` (SPEC §13), in batches of 1,000 members.

Each relevel batch is one transaction (rows locked in user-id order); its after-commit effects (role syncs) go
through the same hook as the pipeline's. Relevel reads the guild's settings (the curve) from the database when it
starts, not from the cache: the job is queued in the transaction that changed the curve, so a runner may claim it
before that change's NOTIFY has reached the cache. Both stop between batches when the job is cancelled or the process
shuts down, and both are safe to re-run: relevel changes only members whose level differs, role sync only
members whose roles differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy import text

from synapse_async.cache.config_cache import ConfigCache, load_guild_settings
from synapse_async.db.engine import Database
from synapse_async.db.faults import BACKGROUND, log_retries, retry_transient
from synapse_async.jobs.runner import JobContext, JobHandler
from synapse_async.ledger import Effects, LevelEngine, Tx, sql
from synapse_async.rewards.config import GuildConfig

BATCH = 1000
_BATCH_ROWS = f"""
SELECT user_id, {sql.MEMBER_COLUMNS} FROM members
 WHERE guild_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3 FOR UPDATE
"""
_COUNT = text("SELECT count(*) FROM members WHERE guild_id = :g")
_LEVELS = text(
    "SELECT user_id, level FROM members WHERE guild_id = :g AND user_id > :after AND left_at IS NULL"
    " ORDER BY user_id LIMIT :n"
)


class GuildRoleSync(Protocol):
    async def sync_guild(
        self, guild_id: int, levels: dict[int, int], *, per_second: float = 2.0, should_stop: Callable[[], bool] = ...
    ) -> dict[str, int]: ...


def relevel_handler(
    db: Database, engine: LevelEngine, cache: ConfigCache, after_commit: Callable[[Effects], None]
) -> JobHandler:
    async def relevel(ctx: JobContext) -> dict[str, Any]:
        async with db.engine.connect() as sa_conn:
            ctx.progress["total"] = int((await sa_conn.execute(_COUNT, {"g": ctx.guild_id})).scalar_one())
            settings = await load_guild_settings(sa_conn, ctx.guild_id)
        after, changed = 0, 0
        while not ctx.should_stop():
            guild = dataclasses.replace(cache.guild(ctx.guild_id), settings=settings)

            async def batch(guild: GuildConfig = guild, after: int = after) -> tuple[list[asyncpg.Record], Tx, int]:
                async with db.raw_transaction() as conn:
                    rows = await conn.fetch(_BATCH_ROWS, ctx.guild_id, after, BATCH)
                    tx, n = Tx(conn, singles=True), 0
                    for row in rows:
                        if await engine.relevel_member(tx, guild, int(row["user_id"]), row, str(ctx.job_id)):
                            n += 1
                return rows, tx, n

            # A batch replayed after a transient fault (even one whose COMMIT did happen) changes only members whose
            # level still differs, so the retry is exactly-once.
            rows, tx, n = await retry_transient(
                batch, policy=BACKGROUND, on_retry=log_retries("relevel", guild_id=ctx.guild_id)
            )
            changed += n
            after_commit(tx.effects)
            ctx.progress["done"] += len(rows)
            if len(rows) < BATCH:
                break
            after = int(rows[-1]["user_id"])
        return {"members": ctx.progress["done"], "changed": changed}

    return relevel


def level_role_sync_handler(db: Database, syncer: GuildRoleSync) -> JobHandler:
    async def level_role_sync(ctx: JobContext) -> dict[str, Any]:
        async with db.sessions() as s:
            ctx.progress["total"] = int((await s.execute(_COUNT, {"g": ctx.guild_id})).scalar_one())
        totals: dict[str, int] = {}
        after = 0
        while not ctx.should_stop():
            async with db.sessions() as s:
                rows = (await s.execute(_LEVELS, {"g": ctx.guild_id, "after": after, "n": BATCH})).all()
            counts = await syncer.sync_guild(
                ctx.guild_id, {int(r.user_id): int(r.level) for r in rows}, should_stop=ctx.should_stop
            )
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            ctx.progress["done"] += len(rows)
            if len(rows) < BATCH:
                break
            after = int(rows[-1].user_id)
        return totals

    return level_role_sync
