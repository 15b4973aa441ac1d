"""The job runner (SPEC §23.1–§23.2): claims queued jobs of LOCAL guilds, heartbeats, finishes, re-queues.

Claiming uses `FOR UPDATE SKIP LOCKED`, so several processes never run the same job. A running job heartbeats
(and reports progress) every `heartbeat_seconds`; a job silent for `stale_seconds` is marked failed
(`interrupted`) by any runner. Cancellation (status set to `cancelled` by an admin) and shutdown take effect
between batches: handlers call `should_stop()`. A job marked `rerun_requested` while it ran is queued again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from synapse_async.db.engine import Database
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

_CLAIM = text(
    """
    UPDATE jobs SET status = 'running', owner_instance = :inst, started_at = now(), heartbeat_at = now()
     WHERE job_id = (SELECT job_id FROM jobs WHERE status = 'queued' AND guild_id = ANY(:guilds)
                      ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING job_id, guild_id, kind, params
    """
)
_HEARTBEAT = text(
    """
    UPDATE jobs SET heartbeat_at = now(), progress = CAST(:progress AS jsonb)
     WHERE job_id = :id RETURNING status
    """
)
_FINISH = text(
    """
    UPDATE jobs SET status = :status, result = CAST(:result AS jsonb), error = :error, finished_at = now()
     WHERE job_id = :id AND status = 'running'
    RETURNING rerun_requested, guild_id, kind, params, requested_by
    """
)
_REQUEUE = text(
    """
    INSERT INTO jobs (job_id, guild_id, kind, params, requested_by) VALUES (:id, :g, :k, CAST(:p AS jsonb), :by)
    ON CONFLICT DO NOTHING
    """
)
_STALE = text(
    """
    UPDATE jobs SET status = 'failed', error = 'interrupted', finished_at = now()
     WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :secs)
    RETURNING job_id
    """
)


@dataclass(slots=True)
class JobContext:
    job_id: uuid.UUID
    guild_id: int
    params: Mapping[str, Any]
    progress: dict[str, int] = field(default_factory=lambda: {"done": 0, "total": 0})
    cancelled: bool = False
    stopping: Callable[[], bool] = lambda: False

    def should_stop(self) -> bool:
        return self.cancelled or self.stopping()


JobHandler = Callable[[JobContext], Awaitable[dict[str, Any]]]


class JobRunner:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, JobHandler],
        local_guilds: Callable[[], Collection[int]],
        instance: str,
        *,
        heartbeat_seconds: float = 10.0,
        stale_seconds: float = 120.0,
    ) -> None:
        self._db = db
        self._handlers = handlers
        self._local_guilds = local_guilds
        self._instance = instance
        self._heartbeat_seconds = heartbeat_seconds
        self._stale_seconds = stale_seconds
        self._stopping = False
        self.finished: dict[str, int] = {}

    def stop(self) -> None:
        self._stopping = True

    async def poll(self) -> None:
        """Expire stale jobs, then claim and run queued jobs of local guilds until none is left."""
        async with self._db.sessions.begin() as s:
            for row in (await s.execute(_STALE, {"secs": self._stale_seconds})).all():
                log.error("job_interrupted", job_id=str(row.job_id))
        while not self._stopping:
            guilds = [int(g) for g in self._local_guilds()]
            if not guilds:
                return
            async with self._db.sessions.begin() as s:
                claimed = (await s.execute(_CLAIM, {"inst": self._instance, "guilds": guilds})).first()
            if claimed is None:
                return
            await self._run(claimed.job_id, int(claimed.guild_id), claimed.kind, dict(claimed.params or {}))

    async def _run(self, job_id: uuid.UUID, guild_id: int, kind: str, params: dict[str, Any]) -> None:
        ctx = JobContext(job_id, guild_id, params, stopping=lambda: self._stopping)
        beat = asyncio.create_task(self._heartbeat(ctx), name=f"job-heartbeat-{job_id}")
        status, result, error = "succeeded", None, None
        try:
            handler = self._handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler for job kind {kind!r}")
            result = await handler(ctx)
            if ctx.cancelled:
                status = "cancelled"
            elif self._stopping and ctx.should_stop():
                status, error = "failed", "interrupted"
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:500]
            log.exception("job_failed", job_id=str(job_id), kind=kind, guild_id=guild_id)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await self._finish(job_id, status, result, error)

    async def _heartbeat(self, ctx: JobContext) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            await self.report(ctx)

    async def report(self, ctx: JobContext) -> None:
        """Store progress and the heartbeat; learn about cancellation."""
        async with self._db.sessions.begin() as s:
            status = (await s.execute(_HEARTBEAT, {"id": ctx.job_id, "progress": json.dumps(ctx.progress)})).scalar()
        if status == "cancelled":
            ctx.cancelled = True

    async def _finish(self, job_id: uuid.UUID, status: str, result: dict[str, Any] | None, error: str | None) -> None:
        async with self._db.sessions.begin() as s:
            row = (
                await s.execute(
                    _FINISH,
                    {"id": job_id, "status": status, "result": json.dumps(result) if result else None, "error": error},
                )
            ).first()
            if row is not None and row.rerun_requested:
                await s.execute(
                    _REQUEUE,
                    {
                        "id": uuid.uuid4(),
                        "g": row.guild_id,
                        "k": row.kind,
                        "p": json.dumps(dict(row.params or {})),
                        "by": row.requested_by,
                    },
                )
        self.finished[status] = self.finished.get(status, 0) + 1
        log.info("job_finished", job_id=str(job_id), status=status)
