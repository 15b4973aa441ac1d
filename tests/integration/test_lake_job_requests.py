"""Admin requests for lake jobs and the jobs listing (synapse_async/lake/jobs.py) against a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from synapse_async.db.engine import Database
from synapse_async.jobs.store import JobActive
from synapse_async.lake.jobs import cancel, get_job, lake_job_params, list_jobs, request_lake_job
from synapse_async.lake.queries import InvalidLakeRequest
from synapse_async.services.audit import Actor

G = 950000000000000001
ACTOR = Actor("111", "user", "api", request_id="req-1")


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, pool_size=4, max_overflow=2, pool_timeout=5, statement_timeout_ms=15000)
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(
            f"INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ({G}, 'jobs', 1, now())"
        )
    yield database
    await database.dispose()


def test_request_bodies_are_validated_strictly_per_kind() -> None:
    assert lake_job_params("retention", {}) == {}
    assert lake_job_params("retention", {"days": 30}) == {"days": 30}
    assert lake_job_params("reconciliation", {}) == {}
    assert lake_job_params("backfill", {"dry_run": True}) == {"dry_run": True}
    cases: list[tuple[str, object, list[str]]] = [
        ("retention", {"days": 0}, ["days"]),
        ("retention", {"days": True}, ["days"]),
        ("retention", {"days": "30", "extra": 1}, ["days", "extra"]),
        ("reconciliation", {"days": 3}, ["days"]),
        ("backfill", {}, ["dry_run"]),
        ("backfill", {"dry_run": "yes"}, ["dry_run"]),
        ("retention", [], ["body"]),
        ("import", {}, ["kind"]),
    ]
    for kind, body, fields in cases:
        with pytest.raises(InvalidLakeRequest) as bad:
            lake_job_params(kind, body)
        assert sorted(p.field for p in bad.value.problems) == fields, (kind, body)


async def test_a_request_queues_audits_and_refuses_a_second_with_the_active_id(db: Database) -> None:
    job = await request_lake_job(db.sessions, G, "retention", {"days": 7}, ACTOR)
    assert (job.kind, job.status, job.params, job.requested_by) == ("retention", "queued", {"days": 7}, "111")
    assert job.progress == {"done": 0, "total": 0} and job.to_json()["job_id"] == str(job.job_id)
    with pytest.raises(JobActive) as refused:
        await request_lake_job(db.sessions, G, "retention", {}, ACTOR)
    assert refused.value.job_id == job.job_id
    with pytest.raises(InvalidLakeRequest):
        await request_lake_job(db.sessions, G, "backfill", {}, ACTOR)
    async with db.engine.connect() as conn:
        audit = (
            await conn.exec_driver_sql(
                f"SELECT action, target_id, request_id FROM audit_log WHERE guild_id = {G} ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in audit] == [("job.start", str(job.job_id), "req-1")]  # refusals wrote nothing

    cancelled = await cancel(db.sessions, G, job.job_id, ACTOR)
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.finished_at is not None
    again = await cancel(db.sessions, G, job.job_id, ACTOR)
    assert again is not None and again.status == "cancelled"
    assert await cancel(db.sessions, G, uuid.uuid4(), ACTOR) is None
    assert await cancel(db.sessions, G + 1, job.job_id, ACTOR) is None  # another guild's job is not found
    fresh = await request_lake_job(db.sessions, G, "retention", {}, ACTOR)  # allowed again once the first ended
    assert fresh.job_id != job.job_id


async def test_jobs_are_listed_newest_first_with_filters(db: Database) -> None:
    backfill = await request_lake_job(db.sessions, G, "backfill", {"dry_run": False}, ACTOR)
    async with db.engine.connect() as conn:
        every = await list_jobs(conn, G)
        assert every.items[0].job_id == backfill.job_id and every.total == len(every.items) >= 3
        times = [j.created_at for j in every.items]
        assert times == sorted(times, reverse=True)
        queued = await list_jobs(conn, G, status="queued")
        assert {j.kind for j in queued.items} == {"retention", "backfill"}
        only = await list_jobs(conn, G, kind="backfill", page_size=1)
        assert [j.job_id for j in only.items] == [backfill.job_id] and only.total == 1
        assert (await get_job(conn, G, backfill.job_id)) == backfill
        with pytest.raises(InvalidLakeRequest) as bad:
            await list_jobs(conn, G, kind="nope", status="done", page=0)
        assert sorted(p.field for p in bad.value.problems) == ["kind", "page", "status"]
