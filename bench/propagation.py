"""Config propagation benchmark (SPEC §25: admin write committed → cache serves the new value, p99 ≤ 5 ms).

    .venv/bin/python bench/propagation.py [--writes 500]

In ONE process and one run, against the same PostgreSQL server (embedded unless DATABASE_URL is set):
- baseline: the bare NOTIFY round trip — `SELECT pg_notify(…)` committed on one connection until a second,
  LISTENing connection's callback runs;
- the app's path: `update_settings` (the service the admin API and commands call: validation, audit row, NOTIFY in
  the same transaction) until the production `ConfigListener` has reloaded that guild's settings into the
  `ConfigCache` and the cache serves the new value. Reported from the COMMIT returning (what §25 measures) and from
  the call starting (write included).
Writes are sequential (each waits for its value to be served), so the figures are latencies, not throughput.
The last line is machine-readable: `RESULT notify_p50_ms=… notify_p99_ms=… commit_to_served_p50_ms=…
commit_to_served_p99_ms=… call_to_served_p50_ms=… call_to_served_p99_ms=… writes=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.cache.listener import ConfigListener, ListenerSettings
from synapse_async.db.engine import Database
from synapse_async.db.migrate import upgrade_to_head
from synapse_async.obs.logging import configure_logging
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, percentile

GUILD = 100000000000000001
ACTOR = Actor("svc:bench", "service", "api")


class ServedCache(ConfigCache):
    """The production cache, plus the moment each targeted reload has swapped its new structures in."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.served: asyncio.Queue[float] = asyncio.Queue()

    async def _reload(self, table: str, guild_id: int | None) -> None:
        await super()._reload(table, guild_id)
        self.served.put_nowait(time.perf_counter())


async def notify_round_trips(url: str, count: int) -> list[float]:
    """Milliseconds from issuing an autocommitted pg_notify to the listening connection's callback."""
    listener, sender = await asyncpg.connect(url), await asyncpg.connect(url)
    arrived: asyncio.Queue[float] = asyncio.Queue()
    await listener.add_listener("bench_baseline", lambda *_: arrived.put_nowait(time.perf_counter()))
    out = []
    try:
        for i in range(count):
            started = time.perf_counter()
            await sender.execute("SELECT pg_notify('bench_baseline', $1)", str(i))
            out.append((await asyncio.wait_for(arrived.get(), 10) - started) * 1000)
    finally:
        await listener.close()
        await sender.close()
    return out


async def admin_writes(db: Database, cache: ServedCache, count: int) -> tuple[list[float], list[float]]:
    """(commit → served, call → served) in milliseconds for `count` settings writes, each a new value."""
    from_commit, from_call = [], []
    for i in range(count):
        value = 1 + i % 3000  # always a change: cooldown.seconds accepts 0–3600
        started = time.perf_counter()
        await update_settings(db.sessions, GUILD, {"cooldown.seconds": value}, ACTOR)
        committed = time.perf_counter()
        served = await asyncio.wait_for(cache.served.get(), 10)
        if cache.settings(GUILD).int("cooldown.seconds") != value:
            raise RuntimeError("the reload after the NOTIFY did not serve the written value")
        # The NOTIFY is delivered at COMMIT, so the reload may finish before the commit's reply is read: 0 then.
        from_commit.append(max(served - committed, 0.0) * 1000)
        from_call.append((served - started) * 1000)
    return from_commit, from_call


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=500, help="writes per path (SPEC asks for at least 200)")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    async with fresh_database() as url:
        await upgrade_to_head(url)
        conn = await asyncpg.connect(url)
        await conn.execute("INSERT INTO guilds (guild_id, name, owner_id) VALUES ($1, 'Bench', 1)", GUILD)
        await conn.close()
        db = Database(url, pool_size=5, max_overflow=0, pool_timeout=5, statement_timeout_ms=5000)
        cache = ServedCache(db.engine)
        listener = ConfigListener(url, cache, ListenerSettings())
        task = asyncio.create_task(listener.run())
        try:
            await listener.first_attempt_done.wait()
            baseline = await notify_round_trips(url, args.writes)
            from_commit, from_call = await admin_writes(db, cache, args.writes)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await db.dispose()

    def p(values: list[float]) -> tuple[float, float]:
        return statistics.median(values), percentile(values, 0.99)

    rows = [("bare NOTIFY round trip", baseline), ("commit → served", from_commit), ("call → served", from_call)]
    for label, values in rows:
        p50, p99 = p(values)
        print(f"{label + ':':<26} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({len(values)} samples)")
    (n50, n99), (c50, c99), (a50, a99) = (p(v) for _, v in rows)
    print(
        f"RESULT notify_p50_ms={n50:.3f} notify_p99_ms={n99:.3f} commit_to_served_p50_ms={c50:.3f}"
        f" commit_to_served_p99_ms={c99:.3f} call_to_served_p50_ms={a50:.3f} call_to_served_p99_ms={a99:.3f}"
        f" writes={args.writes}"
    )


if __name__ == "__main__":
    asyncio.run(main())
