"""Lifetime-XP ranks from `xp_rank_counts` equal SPEC §17.1 counted by brute force, after every kind of write and
at every moment a reader can observe, in this process and in another one (issue 27).

§17.1: rank = 1 + members still in the guild with strictly more XP; ties share a rank; a member who left or has
0 XP has no rank; `of` = members still in the guild with XP > 0. The brute force below reads `members` and counts
in Python; the served ranks come from the product's readers (`Standings.profile`, `services.ranks`), which read
the counts the triggers of migration 0011 keep. The writes are the product's own: the economy's award, the
gateway's join/leave statements, the pipeline's reward statement, the import's statements, a season change.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.imports.service import _CREATE_MEMBERS, _SET_MEMBER
from synapse_async.ledger import LevelEngine
from synapse_async.pipeline.sql import MEMBER_JOIN, MEMBER_LEAVE, reward_item
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services import ranks
from synapse_async.services.audit import Actor
from synapse_async.services.economy import Economy
from synapse_async.services.seasons import Seasons
from synapse_async.services.standings import Standings
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, settle, wait_key
from tests.support import get_json

ADMIN = Actor("100000000000000777", "user", "api", request_id="req-ranks")
_MIGRATION = Path(__file__).resolve().parents[2] / "migrations" / "versions" / "0011_rank_buckets.py"
BASE = 410000000000000000


@dataclass
class Env:
    url: str
    db: Database
    economy: Economy
    standings: Standings


@pytest.fixture(scope="module")
async def env(migrated_database: str) -> AsyncIterator[Env]:
    db = Database(migrated_database, pool_size=4, max_overflow=12, pool_timeout=30, statement_timeout_ms=15000)
    cache = ConfigCache(db.engine)
    await cache.full_reload()
    yield Env(migrated_database, db, Economy(db, LevelEngine(), cache, lambda _effects: None), Standings(db))
    await db.dispose()


async def connect(env: Env) -> asyncpg.Connection:
    return await asyncpg.connect(to_asyncpg_dsn(env.url))


def users(guild: int, n: int) -> list[int]:
    return [guild * 1000 + i for i in range(1, n + 1)]


# --------------------------------------------------------------------------------------------------- the checks

_BRUTE = "SELECT user_id, xp, left_at IS NULL AS present FROM members WHERE guild_id = $1"
# What the counts must be: recomputed from the members, the way the migration fills them.
_FROM_SCRATCH = """
SELECT l.level, m.xp >> (8 * l.level) AS key, count(*) AS members
  FROM members m CROSS JOIN generate_series(0, 3) AS l(level)
 WHERE m.guild_id = $1 AND m.left_at IS NULL AND m.xp > 0
 GROUP BY 1, 2
"""
_STORED = "SELECT level, key, members FROM xp_rank_counts WHERE guild_id = $1"


def definition(rows: list[Any]) -> dict[int, tuple[int | None, int]]:
    """§17.1 by brute force: user → (rank or None, of)."""
    ranked = [int(r["xp"]) for r in rows if r["present"] and r["xp"] > 0]
    of = len(ranked)
    return {
        int(r["user_id"]): ((1 + sum(1 for v in ranked if v > r["xp"])) if r["present"] and r["xp"] > 0 else None, of)
        for r in rows
    }


async def served(env: Env, guild: int, user_ids: list[int]) -> dict[int, tuple[int | None, int]]:
    """What `/profile` (and the rank card) shows each member: `Standings.profile`."""
    out: dict[int, tuple[int | None, int]] = {}
    for user in user_ids:
        profile = await env.standings.profile(guild_id=guild, user_id=user, viewer_id=user, season=None)
        if profile is not None:
            out[user] = (profile.rank, profile.ranked)
    return out


async def assert_exact(env: Env, guild: int) -> None:
    """The served ranks equal the brute-force definition, and the stored counts equal a recount from scratch."""
    conn = await connect(env)
    try:
        rows = await conn.fetch(_BRUTE, guild)
        stored = sorted(tuple(r) for r in await conn.fetch(_STORED, guild))
        scratch = sorted(tuple(r) for r in await conn.fetch(_FROM_SCRATCH, guild))
    finally:
        await conn.close()
    expected = definition(rows)
    assert await served(env, guild, list(expected)) == expected
    assert stored == scratch  # nodes that fell to 0 members are gone too


# --------------------------------------------------------------------------------------------------- the writes


async def award(env: Env, guild: int, user: int, xp: int, rid: str) -> None:
    await env.economy.award(guild_id=guild, user_id=user, xp=xp, gold=0, reason="t", actor=ADMIN, request_id=rid)


async def test_awards_ties_and_taking_xp_back(env: Env) -> None:
    guild = 9001
    a, b, c, d, e = users(guild, 5)
    for user, xp in ((a, 300), (b, 300), (c, 256), (d, 255), (e, 70_000)):
        await award(env, guild, user, xp, f"aw-{user}")
    await assert_exact(env, guild)
    tree = await served(env, guild, [a, b, c, d, e])
    assert tree == {e: (1, 5), a: (2, 5), b: (2, 5), c: (4, 5), d: (5, 5)}  # a tie shares rank 2; next is 4
    await award(env, guild, c, -256, "back-c")  # clamped at 0: c is no longer ranked
    await award(env, guild, d, 45, "more-d")  # 300: joins the tie across the 255/256 node boundary
    await assert_exact(env, guild)
    assert (await served(env, guild, [c, d])) == {c: (None, 4), d: (2, 4)}
    # The leaderboard's rows and the viewer rank read the same counts.
    async with env.db.engine.connect() as conn:
        board = ranks.RankBoard(guild, "xp")
        top = await ranks.top(conn, board, limit=2, offset=1)
        assert [(r.user_id, r.rank) for r in top] == [(a, 2), (b, 2)]
        mine = await ranks.row_of(conn, board, d)
        assert mine is not None and mine.rank == 2
        assert await ranks.ranked_count(conn, board) == 4


async def test_members_leaving_and_rejoining(env: Env) -> None:
    """The gateway's own statements (pipeline/sql.py): a member who leaves drops out of every rank and of `of`; back,
    they rank again with the XP they kept."""
    guild = 9002
    a, b, c = users(guild, 3)
    for user, xp in ((a, 500), (b, 400), (c, 100)):
        await award(env, guild, user, xp, f"aw-{user}")
    conn = await connect(env)
    try:
        await conn.execute(MEMBER_LEAVE, guild, a, None)
        await conn.execute("UPDATE members SET left_at = now() WHERE guild_id = $1 AND user_id = $2", guild, a)
        await assert_exact(env, guild)
        assert await served(env, guild, [a, b, c]) == {a: (None, 2), b: (1, 2), c: (2, 2)}
        await conn.execute(MEMBER_JOIN, guild, a, "back again", None, None)
        await assert_exact(env, guild)
        assert await served(env, guild, [a, b, c]) == {a: (1, 3), b: (2, 3), c: (3, 3)}
        await conn.execute(MEMBER_JOIN, guild, 9002999, "new", None, None)  # 0 XP: joins without a rank
        await assert_exact(env, guild)
        await conn.execute("DELETE FROM members WHERE guild_id = $1 AND user_id = $2", guild, b)  # data erasure
        await assert_exact(env, guild)
    finally:
        await conn.close()


async def test_the_pipelines_reward_statement_and_an_import(env: Env) -> None:
    """INSERT … ON CONFLICT DO UPDATE (a member's first reward inserts, later ones update) and an import that sets
    balances outright and creates members who already left."""
    guild = 9003
    a, b, c, d = users(guild, 4)
    conn = await connect(env)
    try:
        sql = reward_item("message")
        for i, (user, xp) in enumerate(((a, 20), (b, 15), (a, 15), (c, 35), (b, 20))):
            at = datetime.now(UTC)
            args = (guild, user, "message", f"k{i}", None, 1, None, None, xp, 0, None, "{}", at, "n", None, 1, False)
            await conn.execute(sql, *args)
        await assert_exact(env, guild)
        assert await served(env, guild, [a, b, c]) == {a: (1, 3), b: (1, 3), c: (1, 3)}  # 35 each: a three-way tie
        async with conn.transaction():
            await conn.fetch(_CREATE_MEMBERS, guild, [d, 9003998], [False, True], ["dee", "gone"])
            for user, xp in ((d, 1 << 30), (9003998, 5000), (a, 0)):
                await conn.fetch(_SET_MEMBER, guild, user, xp, 0, 0, None)
        await assert_exact(env, guild)
        assert await served(env, guild, [a, d, 9003998]) == {a: (None, 3), d: (1, 3), 9003998: (None, 3)}
    finally:
        await conn.close()


async def test_a_season_change_leaves_lifetime_ranks_as_they_were(env: Env) -> None:
    guild = 9004
    a, b = users(guild, 2)
    await award(env, guild, a, 10, "s-a")
    await award(env, guild, b, 20, "s-b")
    seasons = Seasons(env.db)
    await seasons.start(guild_id=guild, name="Spring", actor=ADMIN, days=30, replace_active=False)
    await award(env, guild, a, 15, "s-a2")  # 25: above b now, lifetime and season alike
    await seasons.end(guild_id=guild, actor=ADMIN)
    await assert_exact(env, guild)
    assert await served(env, guild, [a, b]) == {a: (1, 2), b: (2, 2)}


async def test_exact_at_every_moment_under_concurrent_writers(env: Env) -> None:
    """Writers in several transactions at once (awards, takes, leaves, rejoins, multi-statement batches) while a
    reader checks, in one snapshot each time, that the counts' rank of every member equals the brute force of the
    same snapshot: no moment in which a committed change is half applied. Deadlocks between writers are retried
    by the product's writers (a fault, not a verdict); the raw ones here retry the same way."""
    guild = 9005
    members = users(guild, 60)
    conn = await connect(env)
    try:
        await conn.fetch(_CREATE_MEMBERS, guild, members, [False] * 60, [None] * 60)
        await conn.execute(
            "UPDATE members SET xp = (user_id % 7) * 100 WHERE guild_id = $1", guild
        )  # ties from the start, some at 0
    finally:
        await conn.close()
    target = 15  # transactions committed by each writer
    writers_done = 0
    retried: list[str] = []

    async def raw_writer(seed: int) -> None:
        nonlocal writers_done
        rng = random.Random(seed)
        c = await connect(env)
        try:
            done = 0
            while done < target:
                picked = sorted(rng.sample(members, 3))  # member rows in one order: only the counts could deadlock
                try:
                    async with c.transaction():
                        for user in picked:
                            op = rng.random()
                            if op < 0.6:
                                await c.execute(
                                    "UPDATE members SET xp = greatest(xp + $3, 0) WHERE guild_id = $1 AND user_id = $2",
                                    guild, user, rng.choice((-300, -15, 15, 15, 256, 1000)),
                                )  # fmt: skip
                            elif op < 0.8:
                                await c.execute(MEMBER_LEAVE, guild, user, None)
                                await c.execute(
                                    "UPDATE members SET left_at = now() WHERE guild_id = $1 AND user_id = $2",
                                    guild,
                                    user,
                                )
                            else:
                                await c.execute(MEMBER_JOIN, guild, user, "back", None, None)
                    done += 1
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
                    retried.append(type(exc).__name__)
        finally:
            writers_done += 1
            await c.close()

    async def award_writer() -> None:
        nonlocal writers_done
        rng = random.Random(99)
        for i in range(target):
            await award(env, guild, rng.choice(members), rng.choice((5, 40, 300)), f"cc-{i}")
        writers_done += 1

    async def reader() -> int:
        c = await connect(env)
        checks = 0
        try:
            while writers_done < 5:
                async with c.transaction(isolation="repeatable_read", readonly=True):
                    rows = await c.fetch(_BRUTE, guild)
                    tree = await c.fetch(
                        f"SELECT m.user_id, {ranks.xp_higher_sql('m.guild_id', 'm.xp')} AS higher,"
                        f" {ranks.xp_ranked_sql('m.guild_id')} AS ranked"
                        " FROM members m WHERE m.guild_id = $1 AND m.left_at IS NULL AND m.xp > 0",
                        guild,
                    )
                expected = definition(rows)
                got = {int(r["user_id"]): (1 + int(r["higher"]), int(r["ranked"])) for r in tree}
                assert got == {u: v for u, v in expected.items() if v[0] is not None}
                checks += 1
                await asyncio.sleep(0.01)  # let the writers write between two looks
        finally:
            await c.close()
        return checks

    checks, *_ = await asyncio.gather(reader(), award_writer(), *(raw_writer(s) for s in range(4)))
    assert checks > 10, checks  # the reader saw many moments of concurrent writing
    await assert_exact(env, guild)


_OTHER_PROCESS = """
import asyncio, json, sys
from synapse_async.db.engine import Database
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services.standings import Standings
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, settle, wait_key
from tests.support import get_json

async def main():
    url, guild, user_ids = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    db = Database(url, pool_size=1, max_overflow=0, pool_timeout=30, statement_timeout_ms=15000)
    standings = Standings(db)
    out = {}
    for user in user_ids:
        p = await standings.profile(guild_id=guild, user_id=user, viewer_id=user, season=None)
        out[user] = [p.rank, p.ranked]
    await db.dispose()
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_another_process_serves_the_committed_rank_at_once(env: Env) -> None:
    """§3.4: processes by shard share one PostgreSQL. A change committed here is in the rank another process
    serves right after the commit, with no cache of its own to expire."""
    guild = 9006
    a, b, c = users(guild, 3)
    for user, xp in ((a, 100), (b, 200), (c, 300)):
        await award(env, guild, user, xp, f"p-{user}")

    async def other_process() -> dict[int, tuple[int | None, int]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _OTHER_PROCESS, env.url, str(guild), json.dumps([a, b, c]),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return {int(k): (v[0], v[1]) for k, v in json.loads(out).items()}

    assert await other_process() == {a: (3, 3), b: (2, 3), c: (1, 3)}
    await award(env, guild, a, 250, "p-a2")  # 350: first, committed before the other process asks
    conn = await connect(env)
    try:
        await conn.execute(MEMBER_LEAVE, guild, c, None)
        await conn.execute("UPDATE members SET left_at = now() WHERE guild_id = $1 AND user_id = $2", guild, c)
    finally:
        await conn.close()
    assert await other_process() == {a: (1, 2), b: (2, 2), c: (None, 2)}
    await assert_exact(env, guild)


async def test_the_migration_fills_the_counts_of_existing_members(env: Env) -> None:
    """Migration 0011 on a database with members: its fill equals a recount (here: emptied, then refilled with the
    migration's own statement, against members written before, including ties, 0 XP and members who left)."""
    spec = spec_from_file_location("rank_buckets_migration", _MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = module_from_spec(spec)
    spec.loader.exec_module(migration)
    guild = 9007
    conn = await connect(env)
    try:
        await conn.fetch(_CREATE_MEMBERS, guild, users(guild, 5), [False, False, False, False, True], [None] * 5)
        await conn.execute("UPDATE members SET xp = (user_id % 3) * 70000 WHERE guild_id = $1", guild)
        async with conn.transaction():
            await conn.execute("DELETE FROM xp_rank_counts")
            await conn.execute(migration._FILL)
        await assert_exact(env, guild)
    finally:
        await conn.close()


async def test_the_running_pipeline_keeps_ranks_exact(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    """The real path: simulator → hikari → pipeline batches (one INSERT … ON CONFLICT per batch) → the counts; a
    member leaving and coming back through the gateway. The public profile (HTTP) and `/profile` both answer the
    brute-force rank."""
    rt, sim, plain = plain_sandbox
    db = rt.components.require_db()
    standings = Standings(db)
    senders = MEMBERS_30[:12]

    async def check(*, http: bool) -> dict[int, tuple[int | None, int]]:
        async with db.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            expected = definition(await raw.fetch(_BRUTE, GUILD))
        for user, want in expected.items():
            profile = await standings.profile(guild_id=GUILD, user_id=user, viewer_id=user, season=None)
            assert profile is not None and (profile.rank, profile.ranked) == want
            if http:
                status, body = await get_json(rt.http_port, f"/api/guilds/{GUILD}/members/{user}")
                assert (status, body.get("rank")) == (
                    (404, None) if want[0] is None else (200, {"xp": want[0], "of": want[1]})
                )
        return expected

    async def drain(user: int) -> None:
        marker = int(await sim.message(user, plain, PLAIN))  # lanes keep order: after it, everything is committed
        await wait_key(rt, f"msg:{marker}")
        await settle(rt)

    for _round in range(3):
        for i, user in enumerate(senders):
            for _ in range(1 + i % 4):  # 3, 6, 9 or 12 messages: four values, each a tie of three
                await sim.message(user, plain, PLAIN)
    await sim.leave(senders[0])
    await drain(senders[5])
    seen = await check(http=True)
    assert seen[senders[0]][0] is None and len({rank for rank, _ in seen.values() if rank is not None}) > 3
    await sim.join(senders[0])
    await drain(senders[6])
    assert (await check(http=False))[senders[0]][0] is not None
