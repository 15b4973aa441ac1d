"""Retention benchmark: the real `retention` job deleting 1,000,000 synthetic lake rows (SPEC §15.3).

    .venv/bin/python bench/retention.py [--rows 1000000] [--keep 100000] [--pause 0.1] [--users 1000]

Fills a fresh database with `--rows` rows recorded 120 days ago (`message_create`, spread over 30 days and
`--users` members, with their `day:` counters) and `--keep` recent rows, then runs the retention job body once,
batched by 5,000 with `--pause` seconds between batches (the spec's 100 ms by default) and an unlimited budget.
Prints the wall-clock rate and the rate net of the configured pauses (what the database sustains), and checks
that exactly the old rows and their day counters went while `lifetime` counters stayed. PostgreSQL is the
embedded server unless DATABASE_URL is set (then a fresh database is created on that server). The last line is
machine-readable: `RESULT rows=… seconds=… rows_per_s=… net_rows_per_s=… batches=… counters_deleted=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from synapse_async.db.engine import Database
from synapse_async.db.migrate import upgrade_to_head
from synapse_async.jobs.retention import BATCH, RetentionSettings, retention_handler
from synapse_async.jobs.runner import JobContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database

GUILD = 940000000000000001
USER0 = 940000000000100000


async def fill(conn: asyncpg.Connection, rows: int, keep: int, users: int) -> None:
    await conn.execute("INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'bench', 1, now())", GUILD)
    # Old rows: recorded 120 days ago, event times spread over the 30 days before that.
    await conn.execute(
        "INSERT INTO event_lake (guild_id, user_id, event_type, channel_id, source_key, payload, occurred_at,"
        " recorded_at)"
        " SELECT $1, $2::bigint + i % $3, 'message_create', 1, 'msg:' || i,"
        "        jsonb_build_object('message_id', i::text, 'length', 40, 'word_count', 8, 'has_link', false),"
        "        now() - interval '150 days' + make_interval(secs => i * 2592000.0 / $4),"
        "        now() - interval '120 days'"
        "   FROM generate_series(1, $4) AS i",
        GUILD,
        USER0,
        users,
        rows,
    )
    await conn.execute(
        "INSERT INTO event_lake (guild_id, user_id, event_type, channel_id, source_key, payload, occurred_at)"
        " SELECT $1, $2::bigint + i % $3, 'message_create', 1, 'new:' || i, '{}', now() - make_interval(secs => i)"
        "   FROM generate_series(1, $4) AS i",
        GUILD,
        USER0,
        users,
        keep,
    )
    await conn.execute(
        "INSERT INTO event_counters (guild_id, user_id, event_type, period, count)"
        " SELECT $1, user_id, event_type, 'day:' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)"
        "   FROM event_lake WHERE guild_id = $1 GROUP BY 2, 3, 4"
        " UNION ALL SELECT $1, user_id, event_type, 'lifetime', count(*) FROM event_lake WHERE guild_id = $1"
        "  GROUP BY 2, 3",
        GUILD,
    )
    await conn.execute("ANALYZE event_lake")
    await conn.execute("ANALYZE event_counters")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between batches (spec: 0.1)")
    args = parser.parse_args()

    async with fresh_database() as database_url:
        await upgrade_to_head(database_url)
        db = Database(database_url, pool_size=2, max_overflow=0, pool_timeout=10, statement_timeout_ms=600_000)
        try:
            conn = await asyncpg.connect(database_url)
            try:
                started = time.perf_counter()
                await fill(conn, args.rows, args.keep, args.users)
                filled = time.perf_counter() - started
                lifetime_before = await conn.fetchval(
                    "SELECT sum(count) FROM event_counters WHERE guild_id = $1 AND period = 'lifetime'", GUILD
                )
                size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('event_lake'))")

                handler = retention_handler(db, RetentionSettings(budget_seconds=86400, pause_seconds=args.pause))
                ctx = JobContext(uuid.uuid4(), GUILD, {})
                started = time.perf_counter()
                result = await handler(ctx)
                seconds = time.perf_counter() - started

                left = await conn.fetchval("SELECT count(*) FROM event_lake WHERE guild_id = $1", GUILD)
                lifetime_after = await conn.fetchval(
                    "SELECT sum(count) FROM event_counters WHERE guild_id = $1 AND period = 'lifetime'", GUILD
                )
            finally:
                await conn.close()
        finally:
            await db.dispose()

    deleted = int(result["rows_deleted"])
    batches = -(-deleted // BATCH)
    paused = max(batches - 1, 0) * args.pause
    rate = deleted / seconds if seconds > 0 else 0.0
    net = deleted / (seconds - paused) if seconds > paused else 0.0
    print(f"table:      {args.rows:,} old + {args.keep:,} recent rows, {size} with indexes (filled in {filled:.1f} s)")
    print(f"retention:  {deleted:,} rows in {seconds:.1f} s, {batches} batches of {BATCH:,}, pause {args.pause:g} s")
    print(f"rate:       {rate:,.0f} rows/s wall clock, {net:,.0f} rows/s net of pauses")
    print(f"day counters deleted: {result['day_counters_deleted']:,}; complete: {result['complete']}")
    ok = deleted == args.rows and left == args.keep and lifetime_before == lifetime_after
    print(f"check: rows left {left:,} (expected {args.keep:,}), lifetime counters unchanged: "
          f"{lifetime_before == lifetime_after} -> {'OK' if ok else 'MISMATCH'}")  # fmt: skip
    print(
        f"RESULT rows={deleted} seconds={seconds:.2f} rows_per_s={rate:.0f} net_rows_per_s={net:.0f}"
        f" batches={batches} counters_deleted={result['day_counters_deleted']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
