"""Queueing jobs (SPEC §5.1, §23.2): one active job per (guild, kind), and "run once more" instead of failing.

`enqueue` is used inside other writes (a settings change queues a `relevel`), so it must never fail the write: if
a job of that kind is already queued, nothing more is needed (it will read the new state when it runs); if one is
running, it is marked `rerun_requested` and the runner queues a fresh one when it ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ENQUEUE = text(
    """
    INSERT INTO jobs (job_id, guild_id, kind, params, requested_by)
    VALUES (:id, :g, :k, CAST(:params AS jsonb), :by)
    ON CONFLICT (guild_id, kind) WHERE status IN ('queued', 'running')
    DO UPDATE SET rerun_requested = jobs.rerun_requested OR jobs.status = 'running'
    RETURNING job_id, (xmax = 0) AS created
    """
)


async def enqueue(
    session: AsyncSession, guild_id: int, kind: str, requested_by: str, params: Mapping[str, object] | None = None
) -> tuple[uuid.UUID, bool]:
    """Queue a job (or mark the active one to run again); return (job id, whether a new job was created)."""
    row = (
        await session.execute(
            _ENQUEUE,
            {
                "id": uuid.uuid4(),
                "g": guild_id,
                "k": kind,
                "params": json.dumps(dict(params or {})),
                "by": requested_by,
            },
        )
    ).one()
    return row.job_id, bool(row.created)


class JobActive(Exception):
    """A job of that kind is already queued or running for the guild (SPEC §23.2); the API answers 409 with
    `job_id`, the scheduler skips the guild."""

    def __init__(self, guild_id: int, kind: str, job_id: uuid.UUID) -> None:
        super().__init__(f"a {kind} job is already active for guild {guild_id}: {job_id}")
        self.guild_id = guild_id
        self.kind = kind
        self.job_id = job_id


_REQUEST = text(
    """
    INSERT INTO jobs (job_id, guild_id, kind, params, requested_by)
    VALUES (:id, :g, :k, CAST(:params AS jsonb), :by)
    ON CONFLICT (guild_id, kind) WHERE status IN ('queued', 'running') DO NOTHING
    RETURNING job_id
    """
)
_ACTIVE = text("SELECT job_id FROM jobs WHERE guild_id = :g AND kind = :k AND status IN ('queued', 'running')")


async def request_job(
    session: AsyncSession, guild_id: int, kind: str, requested_by: str, params: Mapping[str, object] | None = None
) -> uuid.UUID:
    """Queue a job an admin (or the scheduler) asked for, or raise `JobActive` with the active job's id.

    Unlike `enqueue`, a request never piggybacks on the active job: its parameters (`days`, `dry_run`) may differ,
    and the caller must learn that its request was not taken. The active job can end between the refused insert
    and the look-up, so the pair is retried until one of them answers."""
    payload = json.dumps(dict(params or {}))
    while True:
        job_id = (
            await session.execute(
                _REQUEST, {"id": uuid.uuid4(), "g": guild_id, "k": kind, "params": payload, "by": requested_by}
            )
        ).scalar()
        if job_id is not None:
            return uuid.UUID(str(job_id))
        active = (await session.execute(_ACTIVE, {"g": guild_id, "k": kind})).scalar()
        if active is not None:
            raise JobActive(guild_id, kind, uuid.UUID(str(active)))


_CANCEL = text(
    """
    UPDATE jobs SET status = 'cancelled', finished_at = now()
     WHERE guild_id = :g AND job_id = :id AND status IN ('queued', 'running')
    RETURNING job_id
    """
)


async def cancel_job(session: AsyncSession, guild_id: int, job_id: uuid.UUID) -> bool:
    """Cancel a queued or running job of the guild; False if it has no such job or the job already ended.

    A queued job is never claimed afterwards; a running one learns of it at its next heartbeat and stops between
    batches, still recording its partial result (the runner keeps `cancelled`, SPEC §23.2)."""
    return (await session.execute(_CANCEL, {"g": guild_id, "id": job_id})).first() is not None
