"""Rank benchmark (issue 27): a member's lifetime-XP rank at 100,000 or 1,000,000 members, and what keeping the
counts costs a write.

A fresh database (embedded PostgreSQL unless DATABASE_URL is set) is migrated to head and one guild is seeded with
`--members` members by one INSERT … SELECT generate_series (the triggers fill `xp_rank_counts` in the same
statement). Then, for `--seconds` each, `--concurrency` tasks on one pool read random members' ranks:

- `member`: the member's row alone (the same-run baseline: the least any profile costs);
- `count`: the row, then `count(*)` of the members above and of all ranked members (how `/profile` ranked before
  issue 27, an index-only scan of up to the whole guild);
- `tree`: the row with its rank and `of` from `xp_rank_counts` in the same statement (`services.ranks`);
- `profile_command`: `Standings.profile`, everything the `/profile` command reads.

Every `tree` rank of a sample of members is checked against the brute-force count (`mismatches` must be 0). The
write side: `--batches` UPDATEs of 100 random members' XP (a pipeline batch's shape) with the triggers on, then
with them disabled, in the same run (`write_cost` = the ratio). Last line: `RESULT …`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from synapse_async.db.engine import Database
from synapse_async.db.migrate import upgrade_to_head
from synapse_async.services.ranks import xp_higher_sql, xp_ranked_sql
from synapse_async.services.standings import Standings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, percentile

GUILD = 300_000_000_000_000_001
FIRST_USER = 200_000_000_000_000_000
# XP spread like a real guild: many members low, a long tail, plenty of ties (the same shape as bench/api.py).
SEED_SQL = """
INSERT INTO members (guild_id, user_id, display_name, xp, level, peak_level, gold, lifetime_stars, left_at)
SELECT $1::bigint, $2::bigint + n, 'member ' || n, (n * 7919) % 500000, 1, 1, 0, 0,
       CASE WHEN n % 50 = 0 THEN now() END
  FROM generate_series(1::bigint, $3::bigint) AS n
"""
_MEMBER = text("SELECT user_id, xp, left_at FROM members WHERE guild_id = :g AND user_id = :u")
_COUNT_HIGHER = text("SELECT count(*) FROM members WHERE guild_id = :g AND left_at IS NULL AND xp > :v")
_COUNT_RANKED = text("SELECT count(*) FROM members WHERE guild_id = :g AND left_at IS NULL AND xp > 0")
_TREE = text(
    f"SELECT m.user_id, m.xp, m.left_at, {xp_higher_sql('m.guild_id', 'm.xp')} AS higher,"
    f" {xp_ranked_sql('m.guild_id')} AS ranked FROM members m WHERE m.guild_id = :g AND m.user_id = :u"
)
_BATCH = "UPDATE members SET xp = xp + 15 WHERE guild_id = $1 AND user_id = ANY($2::bigint[])"
_TRIGGERS = ("insert", "update", "delete", "truncate")


async def timed(seconds: float, concurrency: int, one: Callable[[int], Awaitable[Any]], members: int) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            user = FIRST_USER + rng.randint(1, members)
            started = time.perf_counter()
            await one(user)
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50": round(percentile(latencies, 0.5), 2),
        "p95": round(percentile(latencies, 0.95), 2),
        "p99": round(percentile(latencies, 0.99), 2),
    }


async def measure(args: argparse.Namespace, url: str) -> None:
    await upgrade_to_head(url)
    conn = await asyncpg.connect(url)
    await conn.execute("INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'bench', 1, now())", GUILD)
    started = time.perf_counter()
    await conn.execute(SEED_SQL, GUILD, FIRST_USER, args.members)
    seed_s = time.perf_counter() - started
    await conn.execute("VACUUM ANALYZE members")
    await conn.execute("VACUUM ANALYZE xp_rank_counts")
    nodes = await conn.fetchval("SELECT count(*) FROM xp_rank_counts WHERE guild_id = $1", GUILD)
    print(f"seeded {args.members} members in {seed_s:.1f} s, {nodes} count nodes", flush=True)

    db = Database(url, pool_size=args.concurrency, max_overflow=0, pool_timeout=30, statement_timeout_ms=30_000)
    standings = Standings(db)

    async def member(user: int) -> None:
        async with db.engine.connect() as c:
            (await c.execute(_MEMBER, {"g": GUILD, "u": user})).first()

    async def count(user: int) -> None:
        async with db.engine.connect() as c:
            row = (await c.execute(_MEMBER, {"g": GUILD, "u": user})).one()
            await c.execute(_COUNT_HIGHER, {"g": GUILD, "v": int(row.xp)})
            await c.execute(_COUNT_RANKED, {"g": GUILD})

    async def tree(user: int) -> None:
        async with db.engine.connect() as c:
            (await c.execute(_TREE, {"g": GUILD, "u": user})).one()

    async def profile_command(user: int) -> None:
        await standings.profile(guild_id=GUILD, user_id=user, viewer_id=user, season=None)

    results: dict[str, dict[str, Any]] = {}
    try:
        for name, one in (("member", member), ("count", count), ("tree", tree), ("profile_command", profile_command)):
            results[name] = await timed(args.seconds, args.concurrency, one, args.members)
            print(f"{name}: {results[name]}", flush=True)
        mismatches = 0
        rng = random.Random(7)
        async with db.engine.connect() as c:
            for _ in range(args.checks):
                row = (await c.execute(_TREE, {"g": GUILD, "u": FIRST_USER + rng.randint(1, args.members)})).one()
                if row.left_at is not None:
                    continue
                brute = int((await c.execute(_COUNT_HIGHER, {"g": GUILD, "v": int(row.xp)})).scalar_one())
                ranked = int((await c.execute(_COUNT_RANKED, {"g": GUILD})).scalar_one())
                mismatches += int(row.higher) != brute or int(row.ranked) != ranked
    finally:
        await db.dispose()

    async def batches() -> float:
        rng = random.Random(11)
        began = time.perf_counter()
        for _ in range(args.batches):
            users = [FIRST_USER + rng.randint(1, args.members) for _ in range(100)]
            await conn.execute(_BATCH, GUILD, users)
        return (time.perf_counter() - began) * 1000 / args.batches

    with_triggers = await batches()
    for op in _TRIGGERS:
        await conn.execute(f"ALTER TABLE members DISABLE TRIGGER members_xp_rank_counts_{op}")
    without = await batches()
    await conn.close()
    m, c, t, p = (results[k] for k in ("member", "count", "tree", "profile_command"))
    print(
        f"RESULT members={args.members} seed_s={seed_s:.1f} nodes={nodes}"
        f" member_rps={m['rps']} member_p95_ms={m['p95']}"
        f" count_rps={c['rps']} count_p95_ms={c['p95']} count_p99_ms={c['p99']}"
        f" tree_rps={t['rps']} tree_p95_ms={t['p95']} tree_p99_ms={t['p99']}"
        f" profile_command_rps={p['rps']} profile_command_p95_ms={p['p95']} profile_command_p99_ms={p['p99']}"
        f" tree_vs_member={round(t['rps'] / max(m['rps'], 0.1), 2)}"
        f" tree_vs_count={round(t['rps'] / max(c['rps'], 0.1), 1)}"
        f" mismatches={mismatches} batch_ms_with_counts={with_triggers:.2f} batch_ms_without={without:.2f}"
        f" write_cost={with_triggers / max(without, 0.001):.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    async with fresh_database("bench_ranks") as url:
        await measure(args, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--batches", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
