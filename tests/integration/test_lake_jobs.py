"""Lake maintenance jobs on the real job queue and a real PostgreSQL (SPEC §15.3, §23, §27 item 10).

Lake rows and counters are written with SQL (the capture itself is tested through the simulator in
test_lake_capture.py); the jobs run through a real `JobRunner` claiming them from the `jobs` table. Budgets and
pauses are configured short; a held row lock stands in for a slow batch where a test must act between batches.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from synapse_async.db.engine import Database
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.jobs.backfill import backfill_handler
from synapse_async.jobs.reconciliation import reconciliation_handler, whole_days
from synapse_async.jobs.retention import RetentionSettings, retention_handler
from synapse_async.jobs.runner import JobHandler, JobRunner
from synapse_async.jobs.store import JobActive, cancel_job, request_job
from synapse_async.tasks.scheduler import SLOTS, LakeScheduler
from tests.support import database_with_guild, wait_for

G = 920000000000000001
A, B, C = 920000000000001001, 920000000000001002, 920000000000001003


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    async with database_with_guild(migrated_database, G, "lake", statement_timeout_ms=15000) as database:
        yield database


@pytest.fixture
async def admin(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    yield conn
    for table in ("jobs", "event_lake", "event_counters", "reward_journal", "members", "settings"):
        await conn.execute(f"DELETE FROM {table}")
    await conn.close()


def _runner(db: Database, kind: str, handler: JobHandler, **kwargs: Any) -> JobRunner:
    return JobRunner(db, {kind: handler}, lambda: [G], f"test:{uuid.uuid4()}", heartbeat_seconds=0.05, **kwargs)


async def _request(db: Database, kind: str, params: dict[str, Any] | None = None) -> uuid.UUID:
    async with db.sessions.begin() as s:
        return await request_job(s, G, kind, "svc:test", params)


async def _run(db: Database, kind: str, handler: JobHandler, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Request a job, let a runner claim and finish it, return its row (result parsed)."""
    job_id = await _request(db, kind, params)
    await _runner(db, kind, handler).poll()
    return await _job(db, job_id)


async def _job(db: Database, job_id: uuid.UUID) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (await conn.exec_driver_sql(f"SELECT * FROM jobs WHERE job_id = '{job_id}'")).mappings().one()
    out = dict(row)
    if isinstance(out["result"], str):
        out["result"] = json.loads(out["result"])
    return out


def _progress(job: dict[str, Any]) -> dict[str, int]:
    progress = job["progress"]
    return dict(json.loads(progress) if isinstance(progress, str) else progress)


async def _old_rows(admin: asyncpg.Connection, n: int, age_days: int, user: int = A, start: int = 0) -> None:
    """`n` message_create rows recorded (and occurred) `age_days` ago, one second apart, in insertion order."""
    await admin.execute(
        "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, payload, occurred_at, recorded_at)"
        " SELECT $1, $2, 'message_create', 'msg:' || ($3 + i), '{}',"
        "        now() - make_interval(days => $4) + make_interval(secs => i),"
        "        now() - make_interval(days => $4) + make_interval(secs => i)"
        "   FROM generate_series(1, $5) AS i",
        G,
        user,
        start,
        age_days,
        n,
    )


async def _counter(admin: asyncpg.Connection, user: int, kind: str, period: str, count: int) -> None:
    await admin.execute(
        "INSERT INTO event_counters (guild_id, user_id, event_type, period, count) VALUES ($1, $2, $3, $4, $5)",
        G,
        user,
        kind,
        period,
        count,
    )


async def _counters(admin: asyncpg.Connection) -> dict[tuple[int, str, str], int]:
    rows = await admin.fetch("SELECT user_id, event_type, period, count FROM event_counters WHERE guild_id = $1", G)
    return {(int(r["user_id"]), r["event_type"], r["period"]): int(r["count"]) for r in rows}


async def _lake_count(admin: asyncpg.Connection) -> int:
    return int(await admin.fetchval("SELECT count(*) FROM event_lake WHERE guild_id = $1", G))


def _day(days_ago: int) -> str:
    return f"day:{(datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()}"


FAST = RetentionSettings(budget_seconds=600, pause_seconds=0)


async def test_retention_deletes_old_rows_and_day_counters_only(db: Database, admin: asyncpg.Connection) -> None:
    await admin.execute("INSERT INTO settings (guild_id, key, value) VALUES ($1, 'lake.retention_days', '30')", G)
    await _old_rows(admin, 7000, age_days=40)
    await _old_rows(admin, 50, age_days=2, start=100000)
    # A late event: it happened long ago but was recorded just now, so it is kept until it is old by recording.
    await admin.execute(
        "INSERT INTO event_lake (guild_id, user_id, event_type, source_key, payload, occurred_at)"
        " VALUES ($1, $2, 'message_create', 'msg:late', '{}', now() - interval '60 days')",
        G,
        A,
    )
    before = {
        (A, "message_create", "lifetime"): 7051,
        (A, "message_create", "season:3"): 7051,
        (B, "reaction_add", "season:2"): 4,
        (A, "message_create", _day(40)): 7000,
        (A, "message_create", _day(31)): 1,
        (A, "message_create", _day(29)): 1,
        (A, "message_create", _day(2)): 50,
    }
    for (user, kind, period), n in before.items():
        await _counter(admin, user, kind, period, n)

    job = await _run(db, "retention", retention_handler(db, FAST))

    assert job["status"] == "succeeded"
    assert job["result"]["rows_deleted"] == 7000 and job["result"]["day_counters_deleted"] == 2
    assert job["result"]["complete"] is True and job["result"]["retention_days"] == 30
    assert await _lake_count(admin) == 51  # the recent rows and the late one
    after = await _counters(admin)
    expected = {k: v for k, v in before.items() if k[2] not in (_day(40), _day(31))}
    assert after == expected  # lifetime and season counters untouched, recent day counters kept


async def test_retention_days_parameter_overrides_the_setting(db: Database, admin: asyncpg.Connection) -> None:
    await _old_rows(admin, 10, age_days=20)
    job = await _run(db, "retention", retention_handler(db, FAST), {"days": 10})
    assert job["result"]["rows_deleted"] == 10 and job["result"]["retention_days"] == 10
    job = await _run(db, "retention", retention_handler(db, FAST))  # the default 90 days: nothing more to do
    assert job["result"]["rows_deleted"] == 0


async def test_a_retention_run_cut_by_its_budget_resumes_next_time(db: Database, admin: asyncpg.Connection) -> None:
    await _old_rows(admin, 12000, age_days=100)
    await _counter(admin, A, "message_create", _day(100), 12000)
    await _counter(admin, A, "message_create", "lifetime", 12000)
    spent = RetentionSettings(budget_seconds=0, pause_seconds=0)  # the budget is over after every batch

    first = await _run(db, "retention", retention_handler(db, spent))
    assert (first["status"], first["result"]["rows_deleted"], first["result"]["complete"]) == ("succeeded", 5000, False)
    assert _progress(first) == {"done": 5000, "total": 12000}  # the final progress, not the last heartbeat's
    assert (await _counters(admin))[(A, "message_create", _day(100))] == 12000  # counters wait for the rows

    second = await _run(db, "retention", retention_handler(db, spent))
    assert (second["result"]["rows_deleted"], second["result"]["complete"]) == (5000, False)

    third = await _run(db, "retention", retention_handler(db, spent))
    assert (third["result"]["rows_deleted"], third["result"]["day_counters_deleted"]) == (2000, 1)
    assert third["result"]["complete"] is True
    assert await _lake_count(admin) == 0
    assert await _counters(admin) == {(A, "message_create", "lifetime"): 12000}


async def test_cancel_takes_effect_between_retention_batches(
    db: Database, admin: asyncpg.Connection, migrated_database: str
) -> None:
    await _old_rows(admin, 20000, age_days=100)
    # The 7,000th oldest row lies in the second batch: holding it keeps that batch waiting while the job is cancelled.
    held = await admin.fetchval(
        "SELECT id FROM event_lake WHERE guild_id = $1 ORDER BY occurred_at, id OFFSET 6999 LIMIT 1", G
    )
    job_id = await _request(db, "retention")
    locker = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    poll: asyncio.Task[None] | None = None
    try:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM event_lake WHERE id = $1 FOR UPDATE", held)
            poll = asyncio.create_task(_runner(db, "retention", retention_handler(db, FAST)).poll())

            async def second_batch_waiting() -> bool:
                return int(await admin.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")) > 0

            await wait_for(second_batch_waiting)
            async with db.sessions.begin() as s:
                assert await cancel_job(s, G, job_id)
            cancelled_at = await admin.fetchval("SELECT now()")

            async def seen_by_a_heartbeat() -> bool:
                return bool((await _job(db, job_id))["heartbeat_at"] > cancelled_at)

            await wait_for(seen_by_a_heartbeat)
        await asyncio.wait_for(poll, timeout=15)
    finally:
        if poll is not None and not poll.done():
            poll.cancel()
        await locker.close()
    job = await _job(db, job_id)
    assert job["status"] == "cancelled" and job["result"]["rows_deleted"] == 10000
    assert job["result"]["complete"] is False
    assert await _lake_count(admin) == 10000  # the batch in progress finished; no third batch started


async def test_reconciliation_repairs_wrong_missing_and_spurious_day_counters(
    db: Database, admin: asyncpg.Connection
) -> None:
    day = _day(3)
    await _old_rows(admin, 3, age_days=3)  # A: 3 rows, counter says 7
    await _old_rows(admin, 2, age_days=3, user=C, start=1000)  # C: 2 rows, no counter
    await _old_rows(admin, 4, age_days=5, user=B, start=2000)  # B on another day: 4 rows, counter right
    await _counter(admin, A, "message_create", day, 7)
    await _counter(admin, B, "reaction_add", day, 2)  # B: a counter without rows
    await _counter(admin, B, "message_create", _day(5), 4)
    await _counter(admin, A, "message_create", _day(0), 99)  # today is not a whole day: left alone
    await _counter(admin, A, "message_create", "lifetime", 1)  # not a day counter: left alone

    job = await _run(db, "reconciliation", reconciliation_handler(db))

    result = job["result"]
    assert job["status"] == "succeeded"
    assert result["days_checked"] == len(list(whole_days(datetime.now(UTC) - timedelta(days=90), datetime.now(UTC))))
    assert result["groups_checked"] == 4 and result["corrected"] == 3
    d = day.removeprefix("day:")
    assert sorted(result["corrections"], key=lambda c: (c["user_id"], c["event_type"])) == [
        {"user_id": str(A), "event_type": "message_create", "day": d, "stored": 7, "actual": 3},
        {"user_id": str(B), "event_type": "reaction_add", "day": d, "stored": 2, "actual": 0},
        {"user_id": str(C), "event_type": "message_create", "day": d, "stored": None, "actual": 2},
    ]
    assert await _counters(admin) == {
        (A, "message_create", day): 3,
        (C, "message_create", day): 2,
        (B, "message_create", _day(5)): 4,
        (A, "message_create", _day(0)): 99,
        (A, "message_create", "lifetime"): 1,
    }
    again = await _run(db, "reconciliation", reconciliation_handler(db))
    assert again["result"]["corrected"] == 0


def test_whole_days_of_the_retained_window() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert list(whole_days(datetime(2026, 3, 7, 8, 0, tzinfo=UTC), now)) == [date(2026, 3, 8), date(2026, 3, 9)]
    assert list(whole_days(datetime(2026, 3, 8, tzinfo=UTC), now)) == [date(2026, 3, 8), date(2026, 3, 9)]
    assert list(whole_days(datetime(2026, 3, 10, 1, tzinfo=UTC), now)) == []


async def _journal(admin: asyncpg.Connection, user: int, kind: str, season: int | None, n: int, tag: str) -> None:
    await admin.execute(
        "INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, season_id, xp_delta,"
        " star_delta, occurred_at) SELECT $1, $2, $3, $4 || i, $5, 1, 0, now() FROM generate_series(1, $6) AS i",
        G,
        user,
        kind,
        f"{tag}:",
        season,
        n,
    )


async def test_backfill_raises_counters_to_the_journal_and_never_lowers(
    db: Database, admin: asyncpg.Connection
) -> None:
    for user in (A, B):
        await admin.execute("INSERT INTO members (guild_id, user_id, display_name) VALUES ($1, $2, 'm')", G, user)
    await _journal(admin, A, "message", 1, 5, "a1")
    await _journal(admin, A, "message", None, 2, "a0")
    await _journal(admin, A, "voice_tick", 1, 9, "av")  # no lake counterpart
    await _journal(admin, B, "reaction_given", 2, 3, "b2")
    await _journal(admin, B, "thread_create", None, 1, "bt")
    await _counter(admin, A, "message_create", "lifetime", 10)  # above the journal's 7: must stay
    await _counter(admin, A, "message_create", "season:1", 1)  # below 5: raised
    before = await _counters(admin)

    dry = await _run(db, "backfill", backfill_handler(db), {"dry_run": True})
    assert dry["result"] == {
        "groups_read": 4,
        "counters_raised": 4,
        "skipped_kinds": ["reaction_received", "voice_tick"],
        "dry_run": True,
    }
    assert await _counters(admin) == before

    real = await _run(db, "backfill", backfill_handler(db), {"dry_run": False})
    assert (real["result"]["counters_raised"], real["result"]["dry_run"]) == (4, False)
    assert await _counters(admin) == {
        (A, "message_create", "lifetime"): 10,
        (A, "message_create", "season:1"): 5,
        (B, "reaction_add", "lifetime"): 3,
        (B, "reaction_add", "season:2"): 3,
        (B, "thread_create", "lifetime"): 1,
    }
    again = await _run(db, "backfill", backfill_handler(db))
    assert again["result"]["counters_raised"] == 0


async def test_a_second_request_while_one_is_active_is_refused_with_its_id(
    db: Database, admin: asyncpg.Connection
) -> None:
    first = await _request(db, "reconciliation")
    with pytest.raises(JobActive) as refused:
        await _request(db, "reconciliation")
    assert refused.value.job_id == first and refused.value.kind == "reconciliation"
    other = await _request(db, "retention")  # another kind is independent
    assert other != first
    await admin.execute("UPDATE jobs SET status = 'running', started_at = now() WHERE job_id = $1", first)
    with pytest.raises(JobActive):
        await _request(db, "reconciliation")
    async with db.sessions.begin() as s:
        assert await cancel_job(s, G, first)
        assert not await cancel_job(s, G, first)  # already ended
    assert await _request(db, "reconciliation") != first


_KILLED_RUNNER = """
import asyncio, sys
from synapse_async.db.engine import Database
from synapse_async.jobs.runner import JobRunner

async def main() -> None:
    db = Database(sys.argv[1], pool_size=2, max_overflow=0, pool_timeout=5, statement_timeout_ms=15000)

    async def forever(ctx):
        await asyncio.Event().wait()

    await JobRunner(db, {"retention": forever}, lambda: [int(sys.argv[2])], "doomed:1:x", heartbeat_seconds=0.05).poll()

asyncio.run(main())
"""


async def test_a_killed_runners_job_is_marked_interrupted_after_the_heartbeat_timeout(
    db: Database, admin: asyncpg.Connection, migrated_database: str
) -> None:
    job_id = await _request(db, "retention")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _KILLED_RUNNER, migrated_database, str(G))
    try:

        async def beating() -> bool:
            job = await _job(db, job_id)
            return job["status"] == "running" and job["heartbeat_at"] > job["started_at"]

        await wait_for(beating, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert (await _job(db, job_id))["status"] == "running"  # nobody told the database
    survivor = _runner(db, "retention", retention_handler(db, FAST), stale_seconds=0.3)

    async def expired() -> bool:
        await survivor.poll()
        return (await _job(db, job_id))["status"] == "failed"

    await wait_for(expired)
    job = await _job(db, job_id)
    assert job["error"] == "interrupted" and job["finished_at"] is not None


def test_schedule_slots_fall_on_the_spec_times() -> None:
    retention, reconciliation = SLOTS
    wed = datetime(2026, 3, 11, 2, 59, tzinfo=UTC)  # a Wednesday
    assert retention.latest(wed) == datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    assert retention.latest(wed + timedelta(minutes=1)) == datetime(2026, 3, 11, 3, 0, tzinfo=UTC)
    assert reconciliation.latest(wed) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # the Monday before
    monday = datetime(2026, 3, 16, 4, 0, tzinfo=UTC)
    assert reconciliation.latest(monday) == monday
    assert reconciliation.latest(monday - timedelta(seconds=1)) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)


async def test_the_scheduler_queues_one_job_per_local_guild_when_a_slot_passes(
    db: Database, admin: asyncpg.Connection
) -> None:
    other = G + 1
    now = [datetime(2026, 3, 16, 2, 59, 50, tzinfo=UTC)]  # Monday, just before both slots
    scheduler = LakeScheduler(db.sessions, lambda: [G, other], clock=lambda: now[0])

    async def jobs() -> list[tuple[int, str]]:
        rows = await admin.fetch("SELECT guild_id, kind FROM jobs ORDER BY guild_id, kind")
        return [(int(r["guild_id"]), r["kind"]) for r in rows]

    await scheduler.check()  # the first check only starts the clock
    now[0] += timedelta(seconds=5)
    await scheduler.check()
    assert await jobs() == []
    now[0] += timedelta(seconds=10)  # 03:00:05
    await scheduler.check()
    assert await jobs() == [(G, "retention"), (other, "retention")]
    now[0] += timedelta(seconds=30)
    await scheduler.check()  # the same slot never queues twice
    assert len(await jobs()) == 2
    now[0] = datetime(2026, 3, 16, 4, 0, 1, tzinfo=UTC)
    await scheduler.check()  # retention still queued (not run yet): only reconciliation is added
    assert await jobs() == [(G, "reconciliation"), (G, "retention"), (other, "reconciliation"), (other, "retention")]
    now[0] = datetime(2026, 3, 17, 3, 0, 1, tzinfo=UTC)
    await scheduler.check()  # yesterday's retention is still active: refused, skipped, nothing raised
    assert scheduler.queued == {"retention": 2, "reconciliation": 2}
