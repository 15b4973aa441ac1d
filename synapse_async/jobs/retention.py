"""The `retention` job (SPEC §15.3): delete old raw lake rows, then the `day:` counters before the cutoff date.

Rows go in batches of `BATCH` (5,000), each its own short transaction, with a pause between batches so the
pipeline's inserts are never starved, and the run stops when its time budget is spent: what is left is found
again by the same predicate on the next run, so no cursor has to be stored. `lifetime` and `season:` counters are
never touched (SPEC §27 item 10): the counter statement can only match periods in the `day:` range.

Rows are chosen by `recorded_at` (the spec's retention clock), but walked through the `(guild_id, occurred_at, id)`
primary key: an event's time never lies after the moment it was recorded except by clock skew, so every row recorded
before the cutoff has `occurred_at` before the cutoff plus `OCCURRED_MARGIN`. That bounds the scan without an
extra index on the lake's hot insert path (docs/decisions.md). The DELETE then matches the chosen rows on the whole
primary key `(guild_id, occurred_at, id)` (migration 0014), bounded by time so only the partitions before the bound
are read.

The lake is partitioned by day (issue 27), so a run first drops every daily partition that lies wholly before the
LONGEST retention of any guild (`db/lake_partitions.py`): those rows go with no DELETE and no bloat. Retention is
per guild, so what a shorter-retention guild has between its own cutoff and that one is still removed by the
batched DELETE below, as are late-recorded rows a partition drop must keep. Then the `event_lake_keys` of this
guild's rows that are gone are pruned in batches too (narrow rows), so a key never outlives the retention window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.cache.config_cache import load_guild_settings
from synapse_async.db.engine import Database
from synapse_async.db.lake_partitions import drop_expired_partitions
from synapse_async.jobs.runner import JobContext, JobHandler
from synapse_async.obs.logging import get_logger
from synapse_async.rewards.config import DEFAULT_SETTINGS
from synapse_async.settings import normalize_stored

log = get_logger(__name__)

BATCH = 5000
# Lake keys are narrow (three columns, two indexes) and no live insert waits on an expired one, so they go in
# batches ten times larger: with the same pause, pruning a partition's worth of keys takes a tenth of the pauses.
KEY_BATCH = 50_000
OCCURRED_MARGIN = timedelta(days=1)

_COUNT_ROWS = text(
    "SELECT count(*) FROM event_lake WHERE guild_id = :g AND occurred_at < :bound AND recorded_at < :cutoff"
)
_DELETE_ROWS = text(
    """
    WITH doomed AS (
        SELECT occurred_at, id FROM event_lake
         WHERE guild_id = :g AND occurred_at < :bound AND recorded_at < :cutoff
         ORDER BY occurred_at, id LIMIT :n
    )
    DELETE FROM event_lake e USING doomed
     WHERE e.guild_id = :g AND e.occurred_at < :bound AND e.occurred_at = doomed.occurred_at AND e.id = doomed.id
    """
)
# Keys of rows that are gone: walked by (guild_id, occurred_at); the lake probe carries `occurred_at`, so it looks in
# one partition only. A key whose row is still there (recorded late) stays with it.
_DELETE_KEYS = text(
    """
    WITH doomed AS (
        SELECT k.source_key FROM event_lake_keys k
         WHERE k.guild_id = :g AND k.occurred_at < :bound
           AND NOT EXISTS (SELECT 1 FROM event_lake e WHERE e.guild_id = k.guild_id AND e.source_key = k.source_key
                                                        AND e.occurred_at = k.occurred_at)
         LIMIT :n
    )
    DELETE FROM event_lake_keys k USING doomed WHERE k.guild_id = :g AND k.source_key = doomed.source_key
    """
)
_RETENTION_SETTINGS = text("SELECT value FROM settings WHERE key = 'lake.retention_days'").columns(value=JSONB)
# 'day:…' sorts below 'lifetime' and 'season:…', so the range on the (guild_id, period) index holds day counters
# only; the LIKE makes that explicit rather than a property of the alphabet.
_DELETE_DAYS = text(
    """
    WITH doomed AS (
        SELECT user_id, event_type, period FROM event_counters
         WHERE guild_id = :g AND period >= 'day:' AND period < :before AND period LIKE 'day:%'
         LIMIT :n
    )
    DELETE FROM event_counters c USING doomed
     WHERE c.guild_id = :g AND c.user_id = doomed.user_id AND c.event_type = doomed.event_type
       AND c.period = doomed.period
    """
)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Pacing of a run: rows per batch, pause between batches, time budget (SPEC: 5,000 / 100 ms / 30 min); lake
    keys per batch."""

    budget_seconds: float = 1800.0
    pause_seconds: float = 0.1
    batch_rows: int = BATCH
    key_batch_rows: int = KEY_BATCH


def retention_days(params: Mapping[str, Any], default: int) -> int:
    """The run's retention: the request's `days` (validated by the API, 1–3650) or the guild's setting."""
    days = params.get("days")
    if isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650:
        return days
    return default


async def longest_retention_days(conn: AsyncConnection) -> int:
    """The longest `lake.retention_days` any guild keeps (the default counts: a guild without the setting has it)."""
    days = DEFAULT_SETTINGS.int("lake.retention_days")
    for (value,) in (await conn.execute(_RETENTION_SETTINGS)).all():
        try:
            stored = normalize_stored("lake.retention_days", value)
        except (TypeError, ValueError):
            continue  # ignored by the cache too: the guild runs on the default
        if isinstance(stored, int):
            days = max(days, stored)
    return days


def retention_handler(
    db: Database, settings: RetentionSettings, *, clock: Callable[[], float] = time.monotonic
) -> JobHandler:
    async def retention(ctx: JobContext) -> dict[str, Any]:
        async with db.engine.connect() as conn:
            guild_settings = await load_guild_settings(conn, ctx.guild_id)
            longest = await longest_retention_days(conn)
        days = retention_days(ctx.params, guild_settings.int("lake.retention_days"))
        now = datetime.now(UTC)
        cutoff = now - timedelta(days=days)
        # Whole partitions first: only what every guild's retention has passed (the request's `days` may only
        # shorten this guild's window, never another's).
        dropped = await drop_expired_partitions(db.engine, now - timedelta(days=longest))
        before = f"day:{cutoff.date().isoformat()}"
        rows_args = {"g": ctx.guild_id, "cutoff": cutoff, "bound": cutoff + OCCURRED_MARGIN}
        async with db.sessions() as s:
            ctx.progress["total"] = int((await s.execute(_COUNT_ROWS, rows_args)).scalar_one())
        deadline = clock() + settings.budget_seconds

        async def drain(
            statement: Any, args: dict[str, Any], on_batch: Callable[[int], None], batch: int = settings.batch_rows
        ) -> bool:
            """Delete in batches until nothing is left (True) or the job must stop or is out of budget (False)."""
            while True:
                async with db.sessions.begin() as s:
                    result = await s.execute(statement, {**args, "n": batch})
                deleted = int(result.rowcount)  # type: ignore[attr-defined]
                on_batch(deleted)
                if deleted < batch:
                    return True
                if await ctx.checkpoint() or clock() >= deadline:
                    return False
                await asyncio.sleep(settings.pause_seconds)

        counts = {"rows": 0, "counters": 0, "keys": 0}

        def rows_batch(n: int) -> None:
            counts["rows"] += n
            ctx.progress["done"] += n

        def counters_batch(n: int) -> None:
            counts["counters"] += n

        def keys_batch(n: int) -> None:
            counts["keys"] += n

        # SPEC order: rows first, then day counters; a run cut short leaves the rest of both to the next run.
        complete = (
            await drain(_DELETE_ROWS, rows_args, rows_batch)
            and await drain(
                _DELETE_KEYS, {"g": ctx.guild_id, "bound": rows_args["bound"]}, keys_batch, settings.key_batch_rows
            )
            and await drain(_DELETE_DAYS, {"g": ctx.guild_id, "before": before}, counters_batch)
        )
        rows, counters = counts["rows"], counts["counters"]
        partition_rows = sum(d.rows for d in dropped)
        log.info(
            "lake_retention",
            guild_id=ctx.guild_id,
            rows=rows,
            counters=counters,
            keys=counts["keys"],
            partitions_dropped=len(dropped),
            partition_rows=partition_rows,
            complete=complete,
        )
        return {
            "retention_days": days,
            "cutoff": cutoff.isoformat(),
            "rows_deleted": rows,
            "day_counters_deleted": counters,
            "keys_deleted": counts["keys"],
            "partitions_dropped": [d.name for d in dropped],
            "partition_rows_dropped": partition_rows,
            "complete": complete,
        }

    return retention
