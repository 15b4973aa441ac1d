"""Admin requests for lake jobs and the jobs listing (SPEC §20 event-lake and jobs rows, §23.2), for the API.

`request_lake_job` validates the body strictly for its kind (`retention {days?}`, `reconciliation {}`,
`backfill {dry_run}`), queues the job and writes its audit row in one transaction, and raises `JobActive` with the
active job's id while one of that kind is queued or running (the API's 409). `list_jobs`, `get_job` and
`cancel` return the §23.2 job object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from synapse_async.domain.vocabulary import JOB_KINDS, JOB_STATUSES
from synapse_async.jobs.lake import LAKE_JOB_KINDS
from synapse_async.jobs.store import cancel_job, request_job
from synapse_async.lake.queries import MAX_PAGE_SIZE, InvalidLakeRequest, LakeProblem, check_page
from synapse_async.services.audit import Actor, record
from synapse_async.timeutil import iso

_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "retention": frozenset({"days"}),
    "reconciliation": frozenset(),
    "backfill": frozenset({"dry_run"}),
}


def lake_job_params(kind: str, body: object) -> dict[str, Any]:
    """The job's parameters from a request body, or `InvalidLakeRequest` naming every bad field."""
    if kind not in LAKE_JOB_KINDS:
        raise InvalidLakeRequest([LakeProblem("kind", "not_allowed", "must be " + ", ".join(LAKE_JOB_KINDS))])
    if not isinstance(body, Mapping):
        raise InvalidLakeRequest([LakeProblem("body", "invalid_type", "must be an object")])
    problems = [
        LakeProblem(str(name), "unknown_field", "not accepted here") for name in body if name not in _FIELDS[kind]
    ]
    params: dict[str, Any] = {}
    if "days" in body and "days" in _FIELDS[kind]:
        days = body["days"]
        if isinstance(days, bool) or not isinstance(days, int):
            problems.append(LakeProblem("days", "invalid_type", "must be an integer"))
        elif not 1 <= days <= 3650:
            problems.append(LakeProblem("days", "out_of_range", "must be from 1 to 3650"))
        else:
            params["days"] = days
    if kind == "backfill":
        dry_run = body.get("dry_run")
        if not isinstance(dry_run, bool):
            problems.append(LakeProblem("dry_run", "invalid_type", "required, true or false"))
        else:
            params["dry_run"] = dry_run
    if problems:
        raise InvalidLakeRequest(problems)
    return params


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: uuid.UUID
    kind: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": str(self.job_id),
            "kind": self.kind,
            "status": self.status,
            "params": self.params,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "requested_by": self.requested_by,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[JobView]
    page: int
    page_size: int
    total: int

    def to_json(self) -> dict[str, Any]:
        return {"items": [j.to_json() for j in self.items], "page": self.page, "page_size": self.page_size,
                "total": self.total}  # fmt: skip


_COLUMNS = "job_id, kind, status, params, progress, result, error, requested_by, created_at, started_at, finished_at"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _view(row: Any) -> JobView:
    return JobView(
        uuid.UUID(str(row.job_id)),
        row.kind,
        row.status,
        _json(row.params) or {},
        _json(row.progress) or {},
        _json(row.result),
        row.error,
        row.requested_by,
        row.created_at,
        row.started_at,
        row.finished_at,
    )


async def get_job(conn: AsyncConnection | AsyncSession, guild_id: int, job_id: uuid.UUID) -> JobView | None:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM jobs WHERE guild_id = :g AND job_id = :id"), {"g": guild_id, "id": job_id}
        )
    ).first()
    return None if row is None else _view(row)


async def request_lake_job(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, kind: str, body: object, actor: Actor
) -> JobView:
    """Validate, queue and audit in one transaction; the queued job object (the API's 202 body)."""
    params = lake_job_params(kind, body)
    async with sessions.begin() as s:
        job_id = await request_job(s, guild_id, kind, actor.actor_id, params)
        await record(
            s,
            actor,
            guild_id=guild_id,
            action="job.start",
            target_type="job",
            target_id=str(job_id),
            after={"kind": kind, "params": params},
        )
        job = await get_job(s, guild_id, job_id)
    assert job is not None  # inserted in this very transaction
    return job


async def cancel(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, job_id: uuid.UUID, actor: Actor
) -> JobView | None:
    """Cancel a queued or running job (audited); None if the guild has no such job. A job that already ended is
    returned unchanged: cancelling it again is not an error (the admin sees its final state)."""
    async with sessions.begin() as s:
        if await cancel_job(s, guild_id, job_id):
            await record(
                s,
                actor,
                guild_id=guild_id,
                action="job.cancel",
                target_type="job",
                target_id=str(job_id),
                after={"status": "cancelled"},
            )
        return await get_job(s, guild_id, job_id)


async def list_jobs(
    conn: AsyncConnection,
    guild_id: int,
    *,
    kind: str | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 25,
) -> JobPage:
    """The guild's jobs, newest first."""
    problems: list[LakeProblem] = []
    if kind is not None and kind not in JOB_KINDS:
        problems.append(LakeProblem("kind", "not_allowed", "must be one of " + ", ".join(JOB_KINDS)))
    if status is not None and status not in JOB_STATUSES:
        problems.append(LakeProblem("status", "not_allowed", "must be one of " + ", ".join(JOB_STATUSES)))
    problems += check_page(page, page_size, MAX_PAGE_SIZE)
    if problems:
        raise InvalidLakeRequest(problems)
    where = "guild_id = :g AND (CAST(:k AS text) IS NULL OR kind = :k) AND (CAST(:s AS text) IS NULL OR status = :s)"
    params: dict[str, Any] = {"g": guild_id, "k": kind, "s": status}
    total = (await conn.execute(text(f"SELECT count(*) FROM jobs WHERE {where}"), params)).scalar_one()
    rows = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM jobs WHERE {where} ORDER BY created_at DESC, job_id LIMIT :n OFFSET :o"),
            {**params, "n": page_size, "o": (page - 1) * page_size},
        )
    ).all()
    return JobPage([_view(r) for r in rows], page, page_size, int(total))
