"""The `reconciliation` job (SPEC §15.3): make `day:` counters match the raw lake rows they count.

For each whole UTC day inside the retained window (after the cutoff's own, partly deleted, day and before today,
which is still being written), the raw rows are counted per (user, type) and compared with that day's counters;
wrong counters are set, missing ones inserted, spurious ones deleted. One day is one transaction and one batch:
cancellation takes effect between days. A late event committed for a checked day while the job counts it can
leave that one counter off by one until the next weekly run, which repairs it like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from synapse_async.cache.config_cache import load_guild_settings
from synapse_async.db.engine import Database
from synapse_async.db.transactions import raw_transaction
from synapse_async.jobs.runner import JobContext, JobHandler
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

MAX_REPORTED = 100

_COMPARE = """
WITH actual AS (
    SELECT user_id, event_type, count(*) AS n FROM event_lake
     WHERE guild_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND user_id IS NOT NULL
     GROUP BY user_id, event_type
), stored AS (
    SELECT user_id, event_type, count AS n FROM event_counters WHERE guild_id = $1 AND period = $4
)
SELECT COALESCE(a.user_id, s.user_id) AS user_id, COALESCE(a.event_type, s.event_type) AS event_type,
       s.n AS stored, COALESCE(a.n, 0) AS actual
  FROM actual a FULL JOIN stored s ON a.user_id = s.user_id AND a.event_type = s.event_type
"""
_SET = """
INSERT INTO event_counters AS ec (guild_id, user_id, event_type, period, count)
SELECT $1, u, t, $2, n FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS x(u, t, n)
ON CONFLICT (guild_id, user_id, event_type, period) DO UPDATE SET count = EXCLUDED.count, updated_at = now()
"""
_DROP = """
DELETE FROM event_counters c USING unnest($3::bigint[], $4::text[]) AS x(u, t)
 WHERE c.guild_id = $1 AND c.period = $2 AND c.user_id = x.u AND c.event_type = x.t
"""


def whole_days(cutoff: datetime, now: datetime) -> Iterator[date]:
    """The UTC days lying entirely inside [cutoff, now): from the day after the cutoff's to yesterday."""
    day = cutoff.astimezone(UTC).date()
    if datetime.combine(day, time(), UTC) < cutoff:
        day += timedelta(days=1)
    today = now.astimezone(UTC).date()
    while day < today:
        yield day
        day += timedelta(days=1)


def reconciliation_handler(db: Database) -> JobHandler:
    async def reconciliation(ctx: JobContext) -> dict[str, Any]:
        async with db.engine.connect() as conn:
            settings = await load_guild_settings(conn, ctx.guild_id)
        now = datetime.now(UTC)
        days = list(whole_days(now - timedelta(days=settings.int("lake.retention_days")), now))
        ctx.progress["total"] = len(days)
        groups = corrected = 0
        corrections: list[dict[str, Any]] = []
        for day in days:
            if await ctx.checkpoint():
                break
            period = f"day:{day.isoformat()}"
            start = datetime.combine(day, time(), UTC)
            async with raw_transaction(db.engine) as conn:
                rows = await conn.fetch(_COMPARE, ctx.guild_id, start, start + timedelta(days=1), period)
                wrong = [r for r in rows if r["stored"] != r["actual"]]
                present = [r for r in wrong if r["actual"] > 0]
                spurious = [r for r in wrong if r["actual"] == 0]
                if present:
                    await conn.execute(
                        _SET,
                        ctx.guild_id,
                        period,
                        [r["user_id"] for r in present],
                        [r["event_type"] for r in present],
                        [r["actual"] for r in present],
                    )
                if spurious:
                    await conn.execute(
                        _DROP,
                        ctx.guild_id,
                        period,
                        [r["user_id"] for r in spurious],
                        [r["event_type"] for r in spurious],
                    )
            groups += len(rows)
            corrected += len(wrong)
            for r in wrong[: MAX_REPORTED - len(corrections)]:
                corrections.append(
                    {
                        "user_id": str(r["user_id"]),
                        "event_type": r["event_type"],
                        "day": day.isoformat(),
                        "stored": None if r["stored"] is None else int(r["stored"]),
                        "actual": int(r["actual"]),
                    }
                )
            ctx.progress["done"] += 1
        log.info("lake_reconciliation", guild_id=ctx.guild_id, days=ctx.progress["done"], corrected=corrected)
        return {
            "days_checked": ctx.progress["done"],
            "groups_checked": groups,
            "corrected": corrected,
            "corrections": corrections,
        }

    return reconciliation
