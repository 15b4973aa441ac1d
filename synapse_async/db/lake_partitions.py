"""Daily partitions of `event_lake` (issue 27): created ahead, and dropped whole once every guild's retention passed.

A partition `event_lake_pYYYYMMDD` holds `occurred_at` in [that UTC midnight, the next). `ensure_partitions` makes
the ones for today and the next `ahead` days; rows that already landed in the DEFAULT partition for such a day are
moved into the new partition in the same transaction (PostgreSQL refuses to add a partition whose range the
DEFAULT partition still holds rows of), so creating a missing partition late is safe, only slower.

`drop_expired_partitions` drops a daily partition when its whole day lies before the cutoff AND none of its rows
was recorded at or after the cutoff (retention's clock is `recorded_at`, SPEC §15.3; an old event recorded late
stays for the batched DELETE). Dropping a partition is a catalog change: its rows are gone without a DELETE,
without dead tuples and without VACUUM work. Both functions hold one advisory lock so that processes running them
at once serialise, and bound their lock waits so the pipeline's inserts are never queued behind them for long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

AHEAD_DAYS: Final = 7
_NAME = re.compile(r"^event_lake_p(\d{8})$")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('event_lake_partitions'))")
_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '5s'")
_PARTITIONS = text(
    """
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'event_lake'::regclass
    """
)


def partition_name(day: date) -> str:
    return f"event_lake_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a daily partition covers, or None for any other table (the DEFAULT partition)."""
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def daily_partitions(conn: AsyncConnection) -> dict[date, str]:
    """Every daily partition attached to the lake, by day."""
    out: dict[date, str] = {}
    for (name,) in (await conn.execute(_PARTITIONS)).all():
        day = partition_day(name)
        if day is not None:
            out[day] = name
    return out


async def _create(conn: AsyncConnection, day: date) -> int:
    """Create `day`'s partition, moving its rows out of the DEFAULT partition; returns the rows moved."""
    name, low, high = partition_name(day), _midnight(day), _midnight(day + timedelta(days=1))
    await conn.execute(text(f"CREATE TABLE {name} (LIKE event_lake INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    moved = await conn.execute(
        text(
            f"""
            WITH moved AS (
                DELETE FROM event_lake_default WHERE occurred_at >= :low AND occurred_at < :high RETURNING *
            )
            INSERT INTO {name} SELECT * FROM moved
            """
        ),
        {"low": low, "high": high},
    )
    await conn.execute(
        text(
            f"ALTER TABLE event_lake ATTACH PARTITION {name}"
            f" FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
    )
    return int(moved.rowcount)


async def ensure_partitions(engine: AsyncEngine, today: date, ahead: int = AHEAD_DAYS) -> list[str]:
    """Create the missing daily partitions for `today` … `today + ahead`, one transaction each; returns their names."""
    created: list[str] = []
    for offset in range(ahead + 1):
        day = today + timedelta(days=offset)
        async with engine.begin() as conn:
            await conn.execute(_LOCK_TIMEOUT)
            await conn.execute(_LOCK)
            if day in await daily_partitions(conn):
                continue
            moved = await _create(conn, day)
        created.append(partition_name(day))
        log.info("lake_partition_created", partition=partition_name(day), moved_from_default=moved)
    return created


@dataclass(frozen=True, slots=True)
class DroppedPartition:
    name: str
    rows: int


async def drop_expired_partitions(engine: AsyncEngine, cutoff: datetime) -> list[DroppedPartition]:
    """Drop every daily partition whose day ends at or before `cutoff` and holds no row recorded since `cutoff`.

    `cutoff` must already be the LEAST retained moment over all guilds (the longest retention): a partition holds
    every guild's rows for its day.
    """
    dropped: list[DroppedPartition] = []
    async with engine.connect() as conn:
        days = sorted(await daily_partitions(conn))
    for day in days:
        if _midnight(day + timedelta(days=1)) > cutoff:
            break
        name = partition_name(day)
        async with engine.begin() as conn:
            await conn.execute(_LOCK_TIMEOUT)
            await conn.execute(_LOCK)
            if day not in await daily_partitions(conn):
                continue  # another process dropped it meanwhile
            await conn.execute(text(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))  # no late insert slips in
            row = (
                await conn.execute(
                    text(f"SELECT count(*) AS n, count(*) FILTER (WHERE recorded_at >= :cutoff) AS late FROM {name}"),
                    {"cutoff": cutoff},
                )
            ).one()
            if int(row.late):
                log.info("lake_partition_kept", partition=name, recorded_since_cutoff=int(row.late))
                continue
            await conn.execute(text(f"DROP TABLE {name}"))
        dropped.append(DroppedPartition(name, int(row.n)))
        log.info("lake_partition_dropped", partition=name, rows=int(row.n))
    return dropped
