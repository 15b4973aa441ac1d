"""The `retention` job (SPEC §15.3): delete old raw lake rows, then the `day:` counters before the cutoff date.

Rows go in batches of `BATCH` (5,000), each its own short transaction, with a pause between batches so the
pipeline's inserts are never starved, and the run stops when its time budget is spent: what is left is found
again by the same predicate on the next run, so no cursor has to be stored. `lifetime` and `season:` counters are
never touched (SPEC §27 item 10): the counter statement can only match periods in the `day:` range.

Rows are chosen by `recorded_at` (the spec's retention clock), but walked through the `(guild_id, occurred_at)`
index: an event's time never lies after the moment it was recorded except by clock skew, so every row recorded
before the cutoff has `occurred_at` before the cutoff plus `OCCURRED_MARGIN`. That bounds the scan without an
extra index on the lake's hot insert path (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from synapse_async.cache.config_cache import load_guild_settings
from synapse_async.db.engine import Database
from synapse_async.jobs.runner import JobContext, JobHandler
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

BATCH = 5000
OCCURRED_MARGIN = timedelta(days=1)

_COUNT_ROWS = text(
    "SELECT count(*) FROM event_lake WHERE guild_id = :g AND occurred_at < :bound AND recorded_at < :cutoff"
)
_DELETE_ROWS = text(
    """
    WITH doomed AS (
        SELECT id FROM event_lake
         WHERE guild_id = :g AND occurred_at < :bound AND recorded_at < :cutoff
         ORDER BY occurred_at, id LIMIT :n
    )
    DELETE FROM event_lake e USING doomed WHERE e.id = doomed.id
    """
)
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
    """Pacing of a run: rows per batch, pause between batches, time budget (SPEC: 5,000 / 100 ms / 30 min)."""

    budget_seconds: float = 1800.0
    pause_seconds: float = 0.1
    batch_rows: int = BATCH


def retention_days(params: Mapping[str, Any], default: int) -> int:
    """The run's retention: the request's `days` (validated by the API, 1–3650) or the guild's setting."""
    days = params.get("days")
    if isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650:
        return days
    return default


def retention_handler(
    db: Database, settings: RetentionSettings, *, clock: Callable[[], float] = time.monotonic
) -> JobHandler:
    async def retention(ctx: JobContext) -> dict[str, Any]:
        async with db.engine.connect() as conn:
            guild_settings = await load_guild_settings(conn, ctx.guild_id)
        days = retention_days(ctx.params, guild_settings.int("lake.retention_days"))
        cutoff = datetime.now(UTC) - timedelta(days=days)
        before = f"day:{cutoff.date().isoformat()}"
        rows_args = {"g": ctx.guild_id, "cutoff": cutoff, "bound": cutoff + OCCURRED_MARGIN}
        async with db.sessions() as s:
            ctx.progress["total"] = int((await s.execute(_COUNT_ROWS, rows_args)).scalar_one())
        deadline = clock() + settings.budget_seconds

        async def drain(statement: Any, args: dict[str, Any], on_batch: Callable[[int], None]) -> bool:
            """Delete in batches until nothing is left (True) or the job must stop or is out of budget (False)."""
            while True:
                async with db.sessions.begin() as s:
                    result = await s.execute(statement, {**args, "n": settings.batch_rows})
                deleted = int(result.rowcount)  # type: ignore[attr-defined]
                on_batch(deleted)
                if deleted < settings.batch_rows:
                    return True
                if await ctx.checkpoint() or clock() >= deadline:
                    return False
                await asyncio.sleep(settings.pause_seconds)

        counts = {"rows": 0, "counters": 0}

        def rows_batch(n: int) -> None:
            counts["rows"] += n
            ctx.progress["done"] += n

        def counters_batch(n: int) -> None:
            counts["counters"] += n

        # SPEC order: rows first, then day counters; a run cut short leaves the rest of both to the next run.
        complete = await drain(_DELETE_ROWS, rows_args, rows_batch) and await drain(
            _DELETE_DAYS, {"g": ctx.guild_id, "before": before}, counters_batch
        )
        rows, counters = counts["rows"], counts["counters"]
        log.info("lake_retention", guild_id=ctx.guild_id, rows=rows, counters=counters, complete=complete)
        return {
            "retention_days": days,
            "cutoff": cutoff.isoformat(),
            "rows_deleted": rows,
            "day_counters_deleted": counters,
            "complete": complete,
        }

    return retention
