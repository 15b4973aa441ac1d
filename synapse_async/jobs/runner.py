"""The job runner (SPEC §23.1–§23.2): claims queued jobs of LOCAL guilds, heartbeats, finishes, re-queues.

Claiming uses `FOR UPDATE SKIP LOCKED`, so several processes never run the same job. A running job heartbeats
(and reports progress) every `heartbeat_seconds`; a job silent for `stale_seconds` is marked failed
(`interrupted`) by any runner. Cancellation (status set to `cancelled` by an admin) and shutdown take effect
between batches: handlers call `await ctx.checkpoint()` there, which reads the job's status (one primary-key
read per batch), so a cancel is seen before the next batch starts, not at the next 10 s heartbeat; between
checkpoints (and for handlers that only call `should_stop()`) the status is also read every
`cancel_check_seconds` (1 s). A job marked `rerun_requested` while it ran is queued again, however it ended — also
when the stale check ends it, or a requested relevel would be lost.

A job ends `failed` (`interrupted`) on shutdown only if it really stopped early — its handler was told to stop
(`should_stop()` answered True) — never when it finished its last batch while shutdown began: that job's real
outcome (`succeeded`) is recorded.

A job's outcome must not get lost on the way to its row: the heartbeat survives database errors (a dead
heartbeat would let the stale check end a healthy job, and its result would then have no `running` row left to
land in); the final write is retried through short outages; a job an admin set to `cancelled` still records its
result and `finished_at`; and shutdown waits for the batch in progress (`stop()` then `wait_stopped()`) so the job
ends `failed` (`interrupted`) at a batch boundary, not `running` until some runner's stale check (SPEC §3.3, §23.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from synapse_async.db.engine import Database
from synapse_async.db.faults import BACKGROUND, is_transient, log_retries, retry_transient
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
# An admin's `cancelled` (set with the time of the request) is final: the row keeps it, but still gets the result
# and the time the job really stopped.
_FINISH = text(
    """
    UPDATE jobs SET status = CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE :status END,
                    result = CAST(:result AS jsonb), error = :error, finished_at = now(),
                    progress = CAST(:progress AS jsonb)
     WHERE job_id = :id AND owner_instance = :inst AND status IN ('running', 'cancelled')
    RETURNING status, rerun_requested, guild_id, kind, params, requested_by
    """
)
_REQUEUE = text(
    """
    INSERT INTO jobs (job_id, guild_id, kind, params, requested_by) VALUES (:id, :g, :k, CAST(:p AS jsonb), :by)
    ON CONFLICT DO NOTHING
    """
)
_STATUS = text("SELECT status FROM jobs WHERE job_id = :id")
_STALE = text(
    """
    UPDATE jobs SET status = 'failed', error = 'interrupted', finished_at = now()
     WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :secs)
    RETURNING job_id, rerun_requested, guild_id, kind, params, requested_by
    """
)


class JobFailed(Exception):
    """A handler that failed part-way but knows what it did before failing: the job ends `failed` with `result`
    (an import reports the members it applied, SPEC §20.1)."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


async def _no_poll() -> None:
    return None


@dataclass(slots=True)
class JobContext:
    job_id: uuid.UUID
    guild_id: int
    params: Mapping[str, Any]
    progress: dict[str, int] = field(default_factory=lambda: {"done": 0, "total": 0})
    cancelled: bool = False
    stopping: Callable[[], bool] = lambda: False
    poll: Callable[[], Awaitable[None]] = _no_poll
    halted: bool = False
    """The handler was told to stop (and so ends early): only then is a shutdown an interruption."""

    def should_stop(self) -> bool:
        stop = self.cancelled or self.stopping()
        if stop:
            self.halted = True
        return stop

    async def checkpoint(self) -> bool:
        """Between batches: learn whether the job was cancelled (from its row, now) and whether to stop."""
        if not self.cancelled:
            try:
                await self.poll()
            except Exception as exc:  # a fault is no verdict on the job: the heartbeat's check will catch up
                log.warning("job_cancel_check_failed", job_id=str(self.job_id), error=type(exc).__name__)
        return self.should_stop()


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
        cancel_check_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._handlers = handlers
        self._local_guilds = local_guilds
        self._instance = instance
        self._heartbeat_seconds = heartbeat_seconds
        self._stale_seconds = stale_seconds
        self._cancel_check_seconds = min(cancel_check_seconds, heartbeat_seconds)
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.finished: dict[str, int] = {}

    def stop(self) -> None:
        """No new claims; the running job stops at its next batch boundary."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def wait_stopped(self, timeout: float) -> bool:
        """After `stop()`: wait (bounded) until no job is running any more; False if one still was at `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.error("job_did_not_stop", timeout_s=timeout)
            return False
        return True

    async def poll(self) -> None:
        """Expire stale jobs, then claim and run queued jobs of local guilds until none is left."""
        async with self._db.sessions.begin() as s:
            for row in (await s.execute(_STALE, {"secs": self._stale_seconds})).all():
                log.error("job_interrupted", job_id=str(row.job_id), rerun=bool(row.rerun_requested))
                if row.rerun_requested:
                    await _requeue(s, row)
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
        self._idle.clear()
        try:
            ctx = JobContext(job_id, guild_id, params, stopping=lambda: self._stopping)
            ctx.poll = lambda: self._check_cancelled(ctx)
            status, result, error = await self._execute(ctx, kind)
            await retry_transient(
                lambda: self._finish(job_id, status, result, error, ctx.progress),
                policy=BACKGROUND,
                on_retry=log_retries("job_finish"),
            )
        finally:
            self._idle.set()

    async def _execute(self, ctx: JobContext, kind: str) -> tuple[str, dict[str, Any] | None, str | None]:
        """Run the handler with a heartbeat beside it; return (status, result, error)."""
        job_id, guild_id = ctx.job_id, ctx.guild_id
        beat = asyncio.create_task(self._heartbeat(ctx), name=f"job-heartbeat-{job_id}")
        try:
            handler = self._handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler for job kind {kind!r}")
            result = await handler(ctx)
        except asyncio.CancelledError:
            # Cancelled mid-batch (the shutdown budget ran out): that batch rolled back. Record the end now rather
            # than leave the job `running` until the stale check.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._finish(job_id, "failed", None, "interrupted", ctx.progress)
            raise
        except Exception as exc:
            log.exception("job_failed", job_id=str(job_id), kind=kind, guild_id=guild_id)
            partial = exc.result if isinstance(exc, JobFailed) else None
            return "failed", partial, f"{type(exc).__name__}: {exc}"[:500]
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        if ctx.cancelled:
            return "cancelled", result, None
        if ctx.halted and self._stopping:
            return "failed", result, "interrupted"
        # Finished all its work — even if shutdown began meanwhile: that is its real outcome.
        return "succeeded", result, None

    async def _heartbeat(self, ctx: JobContext) -> None:
        """Beat every `heartbeat_seconds` and look for a cancel every `cancel_check_seconds`, until cancelled. A
        failed beat or check is logged and the next one tried: the job itself is still alive."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self._heartbeat_seconds
        while True:
            await asyncio.sleep(max(0.0, min(self._cancel_check_seconds, next_beat - loop.time())))
            beat = loop.time() >= next_beat
            try:
                if beat:
                    next_beat = loop.time() + self._heartbeat_seconds
                    await self.report(ctx)
                elif not ctx.cancelled:
                    await self._check_cancelled(ctx)
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("job_heartbeat_error", job_id=str(ctx.job_id))
                else:
                    log.warning("job_heartbeat_failed", job_id=str(ctx.job_id), error=type(exc).__name__)

    async def _check_cancelled(self, ctx: JobContext) -> None:
        async with self._db.sessions() as s:
            status = (await s.execute(_STATUS, {"id": ctx.job_id})).scalar()
        if status == "cancelled":
            ctx.cancelled = True

    async def report(self, ctx: JobContext) -> None:
        """Store progress and the heartbeat; learn about cancellation."""
        async with self._db.sessions.begin() as s:
            status = (await s.execute(_HEARTBEAT, {"id": ctx.job_id, "progress": json.dumps(ctx.progress)})).scalar()
        if status == "cancelled":
            ctx.cancelled = True

    async def _finish(
        self,
        job_id: uuid.UUID,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        progress: Mapping[str, int],
    ) -> None:
        """Record the outcome, with the final progress (the last heartbeat may be up to a beat behind it)."""
        async with self._db.sessions.begin() as s:
            row = (
                await s.execute(
                    _FINISH,
                    {
                        "id": job_id,
                        "inst": self._instance,
                        "status": status,
                        "result": json.dumps(result) if result else None,
                        "error": error,
                        "progress": json.dumps(dict(progress)),
                    },
                )
            ).first()
            if row is not None and row.rerun_requested:
                await _requeue(s, row)
        final = row.status if row is not None else status
        self.finished[final] = self.finished.get(final, 0) + 1
        log.info("job_finished", job_id=str(job_id), status=final, recorded=row is not None)


async def _requeue(session: AsyncSession, row: Any) -> None:
    """Queue a fresh job like `row` (a job that was asked to run once more while it ran)."""
    await session.execute(
        _REQUEUE,
        {
            "id": uuid.uuid4(),
            "g": row.guild_id,
            "k": row.kind,
            "p": json.dumps(dict(row.params or {})),
            "by": row.requested_by,
        },
    )
