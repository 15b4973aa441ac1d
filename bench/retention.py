"""Retention benchmark: the real `retention` job removing 1,000,000 synthetic lake rows (SPEC §15.3, issue 27).

    .venv/bin/python bench/retention.py [--rows 1000000] [--keep 100000] [--pause 0.1] [--users 1000]

Runs two scenarios in the same run, each on a fresh database filled alike: `--rows` rows recorded 120 days ago
(`message_create`, event times spread over 30 days, `--users` members, with their lake keys and `day:` counters)
and `--keep` recent rows.

- **baseline (batched DELETE)**: the old days have no daily partition (their rows sit in the DEFAULT partition, as
  in an unpartitioned lake) and no lake keys are written, so the job is the old one: it deletes the rows in batches
  of 5,000 with `--pause` seconds between batches, then the day counters.
- **partitioned**: the 30 old days have their daily partitions (as the maintenance job makes them), so the job
  drops whole partitions; the drop is timed on its own, then the rest of the job (pruning the 1,000,000 lake keys
  in batches with the same pacing, day counters).

Prints each scenario's time and rate and the lake's size afterwards (a DELETE leaves the space to VACUUM; a drop
returns it), and checks that exactly the old rows and their day counters went while `lifetime` counters stayed.
PostgreSQL is the embedded server unless DATABASE_URL is set. The last line is machine-readable:
`RESULT rows=… delete_seconds=… drop_seconds=… drop_rows=… speedup=… …`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from synapse_async.db.engine import Database
from synapse_async.db.lake_partitions import drop_expired_partitions, ensure_partitions
from synapse_async.db.migrate import upgrade_to_head
from synapse_async.jobs.retention import BATCH, RetentionSettings, retention_handler
from synapse_async.jobs.runner import JobContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database

GUILD = 940000000000000001
USER0 = 940000000000100000


async def fill(conn: asyncpg.Connection, rows: int, keep: int, users: int, *, keys: bool) -> None:
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
    if keys:  # the pipeline writes each row's key with it (the baseline stands for the lake before keys existed)
        await conn.execute(
            "INSERT INTO event_lake_keys (guild_id, source_key, occurred_at)"
            " SELECT guild_id, source_key, occurred_at FROM event_lake"
        )
    await conn.execute("ANALYZE event_lake")
    await conn.execute("ANALYZE event_lake_keys")
    await conn.execute("ANALYZE event_counters")


LAKE_SIZE = "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'event_lake'::regclass"


async def scenario(args: argparse.Namespace, *, partitioned: bool) -> dict[str, Any]:
    """Fill a fresh database and run the retention job once; figures and checks as a dict."""
    async with fresh_database() as database_url:
        await upgrade_to_head(database_url)
        db = Database(database_url, pool_size=2, max_overflow=0, pool_timeout=10, statement_timeout_ms=600_000)
        try:
            conn = await asyncpg.connect(database_url)
            try:
                if partitioned:
                    first = (datetime.now(UTC) - timedelta(days=151)).date()
                    await ensure_partitions(db.engine, first, ahead=31)
                started = time.perf_counter()
                await fill(conn, args.rows, args.keep, args.users, keys=partitioned)
                filled = time.perf_counter() - started
                lifetime_before = await conn.fetchval(
                    "SELECT sum(count) FROM event_counters WHERE guild_id = $1 AND period = 'lifetime'", GUILD
                )
                size_before = int(await conn.fetchval(LAKE_SIZE))

                drop_seconds, drop_rows, dropped = 0.0, 0, 0
                if partitioned:
                    started = time.perf_counter()
                    parts = await drop_expired_partitions(db.engine, datetime.now(UTC) - timedelta(days=90))
                    drop_seconds = time.perf_counter() - started
                    drop_rows, dropped = sum(p.rows for p in parts), len(parts)
                handler = retention_handler(db, RetentionSettings(budget_seconds=86400, pause_seconds=args.pause))
                started = time.perf_counter()
                result = await handler(JobContext(uuid.uuid4(), GUILD, {}))
                seconds = time.perf_counter() - started

                left = await conn.fetchval("SELECT count(*) FROM event_lake WHERE guild_id = $1", GUILD)
                keys_left = await conn.fetchval("SELECT count(*) FROM event_lake_keys WHERE guild_id = $1", GUILD)
                lifetime_after = await conn.fetchval(
                    "SELECT sum(count) FROM event_counters WHERE guild_id = $1 AND period = 'lifetime'", GUILD
                )
                size_after = int(await conn.fetchval(LAKE_SIZE))
            finally:
                await conn.close()
        finally:
            await db.dispose()
    deleted = int(result["rows_deleted"])
    gone = deleted + drop_rows
    keys_expected = args.keep if partitioned else 0
    ok = gone == args.rows and left == args.keep and keys_left == keys_expected and lifetime_before == lifetime_after
    return {
        "filled": filled,
        "deleted": deleted,
        "delete_batches": -(-deleted // BATCH),
        "job_seconds": seconds,
        "drop_seconds": drop_seconds,
        "drop_rows": drop_rows,
        "partitions": dropped,
        "keys": int(result["keys_deleted"]),
        "counters": int(result["day_counters_deleted"]),
        "size_before": size_before,
        "size_after": size_after,
        "ok": ok,
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between batches (spec: 0.1)")
    args = parser.parse_args()

    base = await scenario(args, partitioned=False)
    part = await scenario(args, partitioned=True)

    paused = max(base["delete_batches"] - 1, 0) * args.pause
    print(
        f"table: {args.rows:,} old + {args.keep:,} recent rows"
        f" (filled in {base['filled']:.1f} s / {part['filled']:.1f} s)"
    )
    print(
        f"baseline batched DELETE: {base['deleted']:,} rows in {base['job_seconds']:.2f} s"
        f" ({base['delete_batches']} batches, pause {args.pause:g} s, {base['job_seconds'] - paused:.2f} s net of"
        f" pauses; incl. {base['counters']:,} day counters);"
        f" lake {_mb(base['size_before'])} -> {_mb(base['size_after'])}"
    )
    print(
        f"partition drop:          {part['drop_rows']:,} rows in {part['drop_seconds']:.3f} s"
        f" ({part['partitions']} partitions); rest of the job (keys {part['keys']:,}, day counters"
        f" {part['counters']:,}, rows left to DELETE {part['deleted']:,}) {part['job_seconds']:.2f} s;"
        f" lake {_mb(part['size_before'])} -> {_mb(part['size_after'])}"
    )
    speedup = base["job_seconds"] / part["drop_seconds"] if part["drop_seconds"] > 0 else 0.0
    print(f"check: baseline {'OK' if base['ok'] else 'MISMATCH'}, partitioned {'OK' if part['ok'] else 'MISMATCH'}")
    print(
        f"RESULT rows={args.rows} delete_seconds={base['job_seconds']:.2f} drop_seconds={part['drop_seconds']:.3f}"
        f" drop_rows={part['drop_rows']} speedup={speedup:.0f} keys_seconds={part['job_seconds']:.2f}"
        f" size_after_delete={base['size_after']} size_after_drop={part['size_after']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
