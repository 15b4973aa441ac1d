"""Job bodies: `relevel` (SPEC §10.3) and `level_role_sync` (SPEC §13), in batches of 1,000 members.

Each relevel batch is one transaction (rows locked in user-id order); its after-commit effects (role syncs) go
through the same hook as the pipeline's. Relevel reads the guild's settings (the curve) from the database when it
starts, not from the cache: the job is queued in the transaction that changed the curve, so a runner may claim it
before that change's NOTIFY has reached the cache. Both stop between batches when the job is cancelled or the process
shuts down, and both are safe to re-run: relevel changes only members whose level differs, role sync only
members whose roles differ.

Role sync walks member IDS only: the syncer reads each member's level and the reward table when it reaches the
member (SPEC §13), since at ≤ 2 updates/s a batch of levels read up front would be minutes old by its end. Before
each member it asks whether a newer reward-table change has asked this job to run again (`rerun_requested`): then
the job stops at once (`superseded`), the runner queues the fresh one, and that one starts over with the new table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
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
_MEMBER_IDS = text(
    "SELECT user_id FROM members WHERE guild_id = :g AND user_id > :after AND left_at IS NULL ORDER BY user_id LIMIT :n"
)
_RERUN = text("SELECT rerun_requested FROM jobs WHERE job_id = :id")


class GuildRoleSync(Protocol):
    async def sync_guild(
        self,
        guild_id: int,
        user_ids: Iterable[int],
        *,
        per_second: float = 2.0,
        should_stop: Callable[[], bool] = ...,
        superseded: Callable[[], Awaitable[bool]] | None = None,
    ) -> dict[str, int]: ...


def relevel_handler(
    db: Database, engine: LevelEngine, cache: ConfigCache, after_commit: Callable[[Effects], None]
) -> JobHandler:
    async def relevel(ctx: JobContext) -> dict[str, Any]:
        async with db.engine.connect() as sa_conn:
            ctx.progress["total"] = int((await sa_conn.execute(_COUNT, {"g": ctx.guild_id})).scalar_one())
            settings = await load_guild_settings(sa_conn, ctx.guild_id)
        after, changed = 0, 0
        while not await ctx.checkpoint():
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

        async def superseded() -> bool:
            async with db.sessions() as s:
                return bool((await s.execute(_RERUN, {"id": ctx.job_id})).scalar())

        totals: dict[str, int] = {}
        after = 0
        while not await ctx.checkpoint():
            async with db.sessions() as s:
                rows = (await s.execute(_MEMBER_IDS, {"g": ctx.guild_id, "after": after, "n": BATCH})).all()
            counts = await syncer.sync_guild(
                ctx.guild_id, [int(r.user_id) for r in rows], should_stop=ctx.should_stop, superseded=superseded
            )
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            ctx.progress["done"] += len(rows)
            if len(rows) < BATCH or counts.get("superseded"):
                break
            after = int(rows[-1].user_id)
        return totals

    return level_role_sync
