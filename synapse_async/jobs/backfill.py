"""The `backfill` job (SPEC §15.3): raise `lifetime` and `season:` counters to at least what the journal shows.

Useful after the lake was off for a type, or for history from before the lake existed. The journal is aggregated
per (user, kind, season) for the kinds that have a lake counterpart; counters below those totals are raised,
never lowered (an upsert with GREATEST, so a pipeline increment racing the job is never undone). Members are
walked in batches of `BATCH` ids, one transaction each, cancellation between batches. `dry_run` computes the
same report and writes nothing.
"""

from __future__ import annotations

from typing import Any

from synapse_async.db.engine import Database
from synapse_async.db.transactions import raw_transaction
from synapse_async.domain.vocabulary import REWARD_KINDS
from synapse_async.jobs.runner import JobContext, JobHandler
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

BATCH = 1000
# Journal reward kind -> the lake type whose counters it stands for.
KIND_TO_LAKE = {"message": "message_create", "reaction_given": "reaction_add", "thread_create": "thread_create"}
SKIPPED_KINDS = sorted(k for k in REWARD_KINDS if k not in KIND_TO_LAKE)

_USERS = "SELECT user_id FROM members WHERE guild_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
_COUNT_USERS = "SELECT count(*) FROM members WHERE guild_id = $1"
_AGGREGATE = """
SELECT user_id, event_type, season_id, count(*) AS n FROM reward_journal
 WHERE guild_id = $1 AND user_id = ANY($2::bigint[]) AND event_type = ANY($3::text[])
 GROUP BY user_id, event_type, season_id
"""
_STORED = """
SELECT c.user_id, c.event_type, c.period, c.count FROM event_counters c
  JOIN unnest($2::bigint[], $3::text[], $4::text[]) AS x(u, t, p)
    ON c.user_id = x.u AND c.event_type = x.t AND c.period = x.p
 WHERE c.guild_id = $1
"""
_RAISE = """
INSERT INTO event_counters AS ec (guild_id, user_id, event_type, period, count)
SELECT $1, u, t, p, n FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[]) AS x(u, t, p, n)
ON CONFLICT (guild_id, user_id, event_type, period)
DO UPDATE SET count = GREATEST(ec.count, EXCLUDED.count), updated_at = now() WHERE ec.count < EXCLUDED.count
"""

Key = tuple[int, str, str]  # (user, lake type, period)


def journal_targets(groups: list[tuple[int, str, int | None, int]]) -> dict[Key, int]:
    """Counter floors from journal groups (user, kind, season or None, rows): `lifetime` sums every season and
    the unseasoned rows, `season:<id>` takes its own group."""
    targets: dict[Key, int] = {}
    for user, kind, season, n in groups:
        lake_type = KIND_TO_LAKE[kind]
        life = (user, lake_type, "lifetime")
        targets[life] = targets.get(life, 0) + n
        if season is not None:
            key = (user, lake_type, f"season:{season}")
            targets[key] = targets.get(key, 0) + n
    return targets


def backfill_handler(db: Database) -> JobHandler:
    async def backfill(ctx: JobContext) -> dict[str, Any]:
        dry_run = ctx.params.get("dry_run") is True
        groups_read = raised = 0
        after = 0
        async with raw_transaction(db.engine) as conn:
            ctx.progress["total"] = int(await conn.fetchval(_COUNT_USERS, ctx.guild_id))
        while not await ctx.checkpoint():
            async with raw_transaction(db.engine) as conn:
                users = [int(r["user_id"]) for r in await conn.fetch(_USERS, ctx.guild_id, after, BATCH)]
                rows = await conn.fetch(_AGGREGATE, ctx.guild_id, users, list(KIND_TO_LAKE))
                targets = journal_targets(
                    [(int(r["user_id"]), r["event_type"], r["season_id"], int(r["n"])) for r in rows]
                )
                keys = list(targets)
                stored = {
                    (int(r["user_id"]), r["event_type"], r["period"]): int(r["count"])
                    for r in await conn.fetch(
                        _STORED, ctx.guild_id, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
                    )
                }
                low = [k for k in keys if stored.get(k, 0) < targets[k]]
                if low and not dry_run:
                    await conn.execute(
                        _RAISE,
                        ctx.guild_id,
                        [k[0] for k in low],
                        [k[1] for k in low],
                        [k[2] for k in low],
                        [targets[k] for k in low],
                    )
            groups_read += len(rows)
            raised += len(low)
            ctx.progress["done"] += len(users)
            if len(users) < BATCH:
                break
            after = users[-1]
        log.info("lake_backfill", guild_id=ctx.guild_id, groups=groups_read, raised=raised, dry_run=dry_run)
        return {
            "groups_read": groups_read,
            "counters_raised": raised,
            "skipped_kinds": SKIPPED_KINDS,
            "dry_run": dry_run,
        }

    return backfill
