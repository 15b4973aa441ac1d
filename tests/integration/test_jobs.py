"""Jobs, season rollover and the shutdown order against a real PostgreSQL (SPEC §3.3 steps 3–5, §11, §23).

The runner tests drive a `JobRunner` with small job bodies of their own, so that a job's outcome is seen to reach
its row whatever happens around it; the shutdown tests run a sandbox runtime (simulator → real hikari → pipeline)
and the real `relevel` job. A held row lock plus a short statement timeout stands in for a slow database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.jobs.runner import JobContext, JobHandler, JobRunner
from synapse_async.jobs.store import cancel_job, enqueue
from synapse_async.rewards.leveling import curve_for
from synapse_async.tasks.seasons import RolloverFailed, SeasonRollover
from tests.pipeline_support import ALICE, GUILD, PLAIN, pipeline_runtime, query, set_settings, wait_key, write_config
from tests.support import database_with_guild, make_runtime, simulator_of, wait_for

RUNNER_GUILD = 910000000000000001


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    # A short statement timeout lets a held row lock make a heartbeat fail, as a slow database would.
    async with database_with_guild(migrated_database, RUNNER_GUILD, "jobs", statement_timeout_ms=300) as database:
        yield database


@pytest.fixture
async def admin(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    yield conn
    await conn.execute("DELETE FROM jobs")
    await conn.close()


def _runner(db: Database, handlers: dict[str, JobHandler], **kwargs: Any) -> JobRunner:
    return JobRunner(db, handlers, lambda: [RUNNER_GUILD], f"test:{uuid.uuid4()}", heartbeat_seconds=0.05, **kwargs)


async def _queue(db: Database, kind: str) -> uuid.UUID:
    async with db.sessions.begin() as s:
        job_id, _ = await enqueue(s, RUNNER_GUILD, kind, "svc:test")
    return job_id


async def _job(admin: asyncpg.Connection, job_id: uuid.UUID) -> asyncpg.Record:
    row = await admin.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
    assert row is not None
    return row


async def _lock_waiters(admin: asyncpg.Connection) -> int:
    return int(await admin.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"))


async def test_a_failed_heartbeat_is_retried_and_the_result_is_recorded(
    db: Database, admin: asyncpg.Connection
) -> None:
    release = asyncio.Event()

    async def waits(_ctx: JobContext) -> dict[str, Any]:
        await release.wait()
        return {"n": 1}

    job_id = await _queue(db, "relevel")
    poll = asyncio.create_task(_runner(db, {"relevel": waits}).poll())
    try:

        async def running() -> bool:
            return (await _job(admin, job_id))["status"] == "running"

        async def blocked() -> bool:
            return await _lock_waiters(admin) > 0

        async def unblocked() -> bool:
            return await _lock_waiters(admin) == 0

        await wait_for(running)
        async with admin.transaction():
            await admin.execute("SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE", job_id)
            await wait_for(blocked)  # a heartbeat waits on the row lock …
            await wait_for(unblocked)  # … until its statement times out: that heartbeat failed
        released_at = await admin.fetchval("SELECT now()")

        async def beating() -> bool:
            return bool((await _job(admin, job_id))["heartbeat_at"] > released_at)

        await wait_for(beating, timeout=5)
        release.set()
        await poll
    finally:
        release.set()
        await asyncio.gather(poll, return_exceptions=True)
    row = await _job(admin, job_id)
    assert (row["status"], row["error"]) == ("succeeded", None)
    assert row["result"] == '{"n": 1}' and row["finished_at"] is not None


async def test_a_cancelled_job_records_its_result_and_finish_time(db: Database, admin: asyncpg.Connection) -> None:
    async def batches(ctx: JobContext) -> dict[str, Any]:
        while not ctx.should_stop():
            ctx.progress["done"] += 1
            await asyncio.sleep(0.01)
        return {"batches": ctx.progress["done"]}

    job_id = await _queue(db, "relevel")
    poll = asyncio.create_task(_runner(db, {"relevel": batches}).poll())

    async def running() -> bool:
        return (await _job(admin, job_id))["status"] == "running"

    await wait_for(running)
    cancelled_at = await admin.fetchval(  # what an admin's cancel does
        "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE job_id = $1 RETURNING finished_at", job_id
    )
    await asyncio.wait_for(poll, timeout=10)
    row = await _job(admin, job_id)
    assert row["status"] == "cancelled" and row["result"] is not None and '"batches"' in row["result"]
    assert row["finished_at"] > cancelled_at  # when it really stopped: at the next batch boundary


async def test_a_job_cancelled_mid_batch_ends_interrupted_at_once(db: Database, admin: asyncpg.Connection) -> None:
    async def forever(_ctx: JobContext) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    job_id = await _queue(db, "relevel")
    poll = asyncio.create_task(_runner(db, {"relevel": forever}).poll())

    async def running() -> bool:
        return (await _job(admin, job_id))["status"] == "running"

    await wait_for(running)
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    row = await _job(admin, job_id)
    assert (row["status"], row["error"]) == ("failed", "interrupted") and row["finished_at"] is not None


async def test_a_cancel_is_seen_before_the_next_batch_however_long_the_heartbeat(
    db: Database, admin: asyncpg.Connection
) -> None:
    """SPEC §23.2: cancellation takes effect between batches — at the next checkpoint, not the next heartbeat."""
    first_done, go_on = asyncio.Event(), asyncio.Event()
    batches: list[int] = []

    async def two_batches(ctx: JobContext) -> dict[str, Any]:
        while not await ctx.checkpoint():
            batches.append(len(batches) + 1)
            if len(batches) == 1:
                first_done.set()
                await go_on.wait()
            if len(batches) == 2:
                break
        return {"batches": len(batches)}

    job_id = await _queue(db, "relevel")
    runner = JobRunner(db, {"relevel": two_batches}, lambda: [RUNNER_GUILD], "test:cancel", heartbeat_seconds=3600)
    poll = asyncio.create_task(runner.poll())
    try:
        await asyncio.wait_for(first_done.wait(), timeout=10)
        async with db.sessions.begin() as s:
            assert await cancel_job(s, RUNNER_GUILD, job_id)
        go_on.set()
        await asyncio.wait_for(poll, timeout=10)
    finally:
        go_on.set()
        await asyncio.gather(poll, return_exceptions=True)
    assert batches == [1]  # the second batch never ran
    row = await _job(admin, job_id)
    assert row["status"] == "cancelled" and row["result"] == '{"batches": 1}'


async def test_a_handler_that_only_asks_should_stop_hears_of_a_cancel_between_heartbeats(
    db: Database, admin: asyncpg.Connection
) -> None:
    async def spins(ctx: JobContext) -> dict[str, Any]:
        while not ctx.should_stop():  # batches of a handler that never awaits a checkpoint
            ctx.progress["done"] += 1
            await asyncio.sleep(0.01)
        return {"stopped": True}

    job_id = await _queue(db, "relevel")
    runner = JobRunner(
        db, {"relevel": spins}, lambda: [RUNNER_GUILD], "test:check", heartbeat_seconds=3600, cancel_check_seconds=0.05
    )
    poll = asyncio.create_task(runner.poll())
    try:

        async def running() -> bool:
            return (await _job(admin, job_id))["status"] == "running"

        await wait_for(running)
        async with db.sessions.begin() as s:
            assert await cancel_job(s, RUNNER_GUILD, job_id)
        await asyncio.wait_for(poll, timeout=10)
    finally:
        await asyncio.gather(poll, return_exceptions=True)
    row = await _job(admin, job_id)
    assert row["status"] == "cancelled" and row["result"] == '{"stopped": true}'


async def test_a_job_that_finishes_while_shutdown_begins_records_its_real_outcome(
    db: Database, admin: asyncpg.Connection
) -> None:
    """SPEC §3.3 step 3 interrupts jobs that STOP early; one whose last batch completes is `succeeded`."""
    in_last_batch, finish = asyncio.Event(), asyncio.Event()

    async def last_batch(ctx: JobContext) -> dict[str, Any]:
        if ctx.should_stop():
            return {"done": False}
        in_last_batch.set()
        await finish.wait()  # shutdown begins while the final batch runs; nothing is left after it
        return {"done": True}

    job_id = await _queue(db, "relevel")
    runner = _runner(db, {"relevel": last_batch})
    poll = asyncio.create_task(runner.poll())
    try:
        await asyncio.wait_for(in_last_batch.wait(), timeout=10)
        runner.stop()
        finish.set()
        assert await runner.wait_stopped(10)
        await asyncio.wait_for(poll, timeout=10)
    finally:
        finish.set()
        await asyncio.gather(poll, return_exceptions=True)
    row = await _job(admin, job_id)
    assert (row["status"], row["error"], row["result"]) == ("succeeded", None, '{"done": true}')

    # A job that had batches left when shutdown began stops at its checkpoint: that one ends interrupted.
    in_batch, go_on = asyncio.Event(), asyncio.Event()

    async def more_batches(ctx: JobContext) -> dict[str, Any]:
        in_batch.set()
        await go_on.wait()
        return {"done": not ctx.should_stop()}

    stopped = await _queue(db, "relevel")
    runner = _runner(db, {"relevel": more_batches})
    poll = asyncio.create_task(runner.poll())
    try:
        await asyncio.wait_for(in_batch.wait(), timeout=10)
        runner.stop()
        go_on.set()
        await asyncio.wait_for(poll, timeout=10)
    finally:
        go_on.set()
        await asyncio.gather(poll, return_exceptions=True)
    row = await _job(admin, stopped)
    assert (row["status"], row["error"], row["result"]) == ("failed", "interrupted", '{"done": false}')


async def test_the_stale_check_queues_a_requested_rerun(db: Database, admin: asyncpg.Connection) -> None:
    stale = uuid.uuid4()
    await admin.execute(
        "INSERT INTO jobs (job_id, guild_id, kind, status, started_at, heartbeat_at, rerun_requested, requested_by)"
        " VALUES ($1, $2, 'relevel', 'running', now() - interval '1 hour', now() - interval '1 hour', true, 'x')",
        stale,
        RUNNER_GUILD,
    )
    ran: list[uuid.UUID] = []

    async def records(ctx: JobContext) -> dict[str, Any]:
        ran.append(ctx.job_id)
        return {"ok": 1}

    await _runner(db, {"relevel": records}, stale_seconds=120).poll()
    old = await _job(admin, stale)
    assert (old["status"], old["error"]) == ("failed", "interrupted")
    # The change that asked for the rerun is not lost: a fresh job ran (and, being a rerun, asked for none).
    assert len(ran) == 1 and ran[0] != stale
    fresh = await _job(admin, ran[0])
    assert (fresh["status"], fresh["kind"], fresh["requested_by"]) == ("succeeded", "relevel", "x")


async def test_shutdown_lets_the_running_relevel_finish_its_batch_and_end_interrupted(fresh_database: str) -> None:
    """SPEC §3.3 step 3: jobs stop between batches and end failed (`interrupted`), not `running` until stale."""
    rt = make_runtime(fresh_database, SHUTDOWN_DEADLINE_SECONDS="20")  # steps 3–4 get up to 12 s
    await rt.start()
    admin = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    shutdown: asyncio.Task[None] | None = None
    try:
        assert rt.components.cache is not None and rt.components.db is not None and rt.jobs is not None
        await wait_for(lambda: GUILD in rt.components.cache.known_guild_ids())
        # 2,500 members whose stored level (5) is not what their 15 XP gives (1): three relevel batches.
        users = [200000000000000000 + i for i in range(2500)]
        await admin.execute(
            "INSERT INTO members (guild_id, user_id, display_name, xp, level, peak_level, joined_at)"
            " SELECT $1, u, 'm', 15, 5, 5, now() FROM unnest($2::bigint[]) AS u",
            GUILD,
            users,
        )
        async with admin.transaction():
            # Hold one member of the second batch: that batch waits for it while shutdown begins.
            await admin.execute(
                "SELECT 1 FROM members WHERE guild_id = $1 AND user_id = $2 FOR UPDATE", GUILD, users[1500]
            )
            async with rt.components.db.sessions.begin() as s:
                job_id, _ = await enqueue(s, GUILD, "relevel", "svc:test")

            async def second_batch_waiting() -> bool:
                return await _lock_waiters(admin) > 0

            await wait_for(second_batch_waiting, timeout=30)
            shutdown = asyncio.create_task(rt.shutdown())
            await wait_for(lambda: rt.jobs is not None and rt.jobs.stopping)
        await shutdown
        row = await admin.fetchrow("SELECT status, error, finished_at FROM jobs WHERE job_id = $1", job_id)
        assert row is not None
        assert (row["status"], row["error"]) == ("failed", "interrupted") and row["finished_at"] is not None
        relevelled = await admin.fetchval("SELECT count(*) FROM members WHERE guild_id = $1 AND level = 1", GUILD)
        assert relevelled == 2000  # the batch in progress completed; the third never started
    finally:
        if shutdown is None:
            await rt.shutdown()
        await admin.close()


async def test_role_updates_committed_during_the_shutdown_drain_are_still_made(fresh_database: str) -> None:
    """SPEC §3.3: the role syncer keeps working through the drain (step 4) and the flush (step 5)."""
    rt = make_runtime(fresh_database, SHUTDOWN_DEADLINE_SECONDS="20")
    await rt.start()
    admin = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    shutdown: asyncio.Task[None] | None = None
    try:
        sim, cache = rt.simulator, rt.components.cache
        assert sim is not None and cache is not None
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        role = int(await sim.create_role("Level 2", position=1))
        await write_config(
            rt,
            "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, 2)",
            "level_role_rewards",
            r=role,
        )
        await wait_for(lambda: bool(cache.guild(GUILD).level_roles))
        almost = curve_for(100, 1.25).xp_to_reach(2) - 1  # one message (15 XP) reaches level 2
        await admin.execute(
            "INSERT INTO members (guild_id, user_id, display_name, xp) VALUES ($1, $2, 'alice', $3)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = EXCLUDED.xp, level = 1",
            GUILD,
            ALICE,
            almost,
        )
        before = len(sim.rest_calls)
        async with admin.transaction():
            # The pipeline's transaction for the message waits for this lock while shutdown begins.
            await admin.execute("SELECT 1 FROM members WHERE guild_id = $1 AND user_id = $2 FOR UPDATE", GUILD, ALICE)
            await sim.message(ALICE, "general", "hello there, how is everyone doing")

            async def pipeline_waiting() -> bool:
                return await _lock_waiters(admin) > 0

            await wait_for(pipeline_waiting)
            shutdown = asyncio.create_task(rt.shutdown())
            await wait_for(lambda: rt.jobs is not None and rt.jobs.stopping)
        await shutdown
        patches = [c for c in sim.rest_calls[before:] if c.method == "PATCH" and c.path.endswith(f"/members/{ALICE}")]
        assert len(patches) == 1 and role in {int(r) for r in patches[0].json["roles"]}  # type: ignore[attr-defined]
        assert await admin.fetchval("SELECT level FROM members WHERE guild_id = $1 AND user_id = $2", GUILD, ALICE) == 2
    finally:
        if shutdown is None:
            await rt.shutdown()
        await admin.close()


async def test_relevel_uses_the_curve_in_the_database_even_before_the_cache_has_it(fresh_database: str) -> None:
    """A relevel claimed before its curve change's NOTIFY reached the cache must still use the new curve."""
    rt = make_runtime(fresh_database)
    await rt.start()
    admin = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    try:
        assert rt.components.cache is not None and rt.components.db is not None
        cache = rt.components.cache
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        user = 300000000000000001
        await admin.execute(
            "INSERT INTO members (guild_id, user_id, display_name, xp) VALUES ($1, $2, 'm', 15)", GUILD, user
        )
        # The curve change and its job commit together; the NOTIFY is left out, as if it had not arrived yet.
        async with rt.components.db.sessions.begin() as s:
            await s.execute(
                text("INSERT INTO settings (guild_id, key, value) VALUES (:g, 'leveling.level_base', '10'::jsonb)"),
                {"g": GUILD},
            )
            job_id, _ = await enqueue(s, GUILD, "relevel", "svc:test")

        async def finished() -> bool:
            return await admin.fetchval("SELECT status FROM jobs WHERE job_id = $1", job_id) == "succeeded"

        await wait_for(finished)
        assert cache.settings(GUILD).int("leveling.level_base") == 100  # the cache still has the old curve
        level = await admin.fetchval("SELECT level FROM members WHERE guild_id = $1 AND user_id = $2", GUILD, user)
        assert level == curve_for(10, 1.25).level(15) == 3
    finally:
        await rt.shutdown()
        await admin.close()


async def test_an_event_after_ends_at_belongs_to_the_renewed_season_before_any_rollover_tick(
    fresh_database: str,
) -> None:
    """SPEC §11: a renewed season starts at the previous `ends_at` and events are attributed by their own time —
    also those between `ends_at` and the rollover tick (here an hour away: only the event can cause the renewal)."""
    async with pipeline_runtime(fresh_database, 5, SEASON_CHECK_SECONDS="3600") as rt:
        await set_settings(rt, {"season.auto_renew": True})
        # A season whose end has just passed, as time would have it (the API only accepts ends in the future).
        await write_config(
            rt,
            "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, created_by)"
            " VALUES (:g, 'Old', now() - interval '1 day', now() - interval '1 second', 'active', 'x')",
            "seasons",
        )
        old = await query(rt, "SELECT season_id, ends_at FROM seasons WHERE guild_id = :g AND name = 'Old'")
        message_id = int(await simulator_of(rt).message(ALICE, "general", PLAIN))
        row = await wait_key(rt, f"msg:{message_id}")

        seasons = await query(
            rt, "SELECT season_id, name, starts_at, status FROM seasons WHERE guild_id = :g ORDER BY season_id"
        )
        assert [(s["name"], s["status"]) for s in seasons] == [("Old", "ended"), ("Season 2", "active")]
        renewed = seasons[1]
        assert renewed["starts_at"] == old[0]["ends_at"]  # no gap
        assert row["season_id"] == renewed["season_id"]
        stats = await query(
            rt,
            "SELECT messages_sent, xp FROM season_stats WHERE season_id = :s AND user_id = :u",
            s=renewed["season_id"],
            u=ALICE,
        )
        assert stats == [{"messages_sent": 1, "xp": row["xp_delta"]}] and row["xp_delta"] > 0


async def test_one_guilds_failed_rollover_does_not_hold_back_the_others(
    db: Database, admin: asyncpg.Connection
) -> None:
    stuck, fine = RUNNER_GUILD + 1, RUNNER_GUILD + 2
    for gid in (stuck, fine):
        await admin.execute(
            "INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'g', 1, now())"
            " ON CONFLICT DO NOTHING",
            gid,
        )
        await admin.execute(
            "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, created_by)"
            " VALUES ($1, 'S1', now() - interval '2 days', now() - interval '1 minute', 'active', 'x')",
            gid,
        )
    cache = ConfigCache(db.engine)
    await cache.full_reload()
    rollover = SeasonRollover(db.sessions, cache, lambda: [stuck, fine])

    async def status(gid: int) -> str:
        return str(await admin.fetchval("SELECT status FROM seasons WHERE guild_id = $1", gid))

    async with admin.transaction():
        await admin.execute("SELECT 1 FROM seasons WHERE guild_id = $1 FOR UPDATE", stuck)
        with pytest.raises(RolloverFailed) as failure:
            await rollover.check()  # the stuck guild's UPDATE waits for the lock until its statement times out
        assert failure.value.guild_ids == [stuck]
    assert (await status(stuck), await status(fine)) == ("active", "ended")
    await rollover.check()  # the next cycle catches the stuck guild up
    assert await status(stuck) == "ended" and rollover.ended == 2
