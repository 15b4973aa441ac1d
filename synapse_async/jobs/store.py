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
