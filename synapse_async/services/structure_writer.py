"""Guild-structure writes through a few workers, in order per guild, superseded by newer full snapshots.

Why a queue and not one task per gateway event: at start-up Discord sends one GUILD_CREATE per guild, thousands
in a few seconds (a shard carries up to 2,500 guilds). Run as one coroutine each, every sync waited for a pooled
connection at once; with 10,000 guilds they all timed out after `DB_POOL_TIMEOUT_SECONDS`, retried together,
starved the pipeline, the job runner and the season rollover of connections, and finally most of the syncs were
given up. Here `workers` coroutines (`GUILD_SYNC_CONCURRENCY`) take the writes one at a time, so the structure
writes never hold more than that many connections and every sync that is queued is eventually written.

Per guild the writes keep their gateway order (a channel created after a GUILD_CREATE is upserted after that
guild's sync, which would otherwise soft-delete it as missing from the older snapshot), and only one write of a
guild runs at a time. A full snapshot (GUILD_CREATE, GUILD_UPDATE) or a leave replaces the guild's writes still
waiting: it is newer than all of them, so they could only write older state first. Guilds take turns (one
write each, round robin), so one busy guild cannot hold a worker.

A write that raises is reported to the event loop's exception handler (where tests fail on it and production
logs it) and the worker goes on with the next: one broken write must not stop the structure of every guild.
Transient database faults never get here: the writes passed in retry them and give up by themselves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

Write = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class _Queued:
    what: str
    write: Write


class StructureWriter:
    """Runs submitted writes on `workers` coroutines; per guild in submission order, one at a time."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = workers
        self._pending: dict[int, deque[_Queued]] = {}
        # Guilds waiting for a worker. A guild is in `_scheduled` while it is in `_ready` or being written, and
        # is in `_ready` at most once: that is what keeps its writes in order and one at a time.
        self._ready: asyncio.Queue[int] = asyncio.Queue()
        self._scheduled: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = 0
        self.written = 0
        self.superseded = 0  # queued writes dropped because a newer full snapshot or a leave replaced them
        self.failed = 0  # writes that raised (reported to the loop's exception handler)

    @property
    def backlog(self) -> int:
        """Writes queued or running (for /health: the start-up sync of many guilds is visible while it lasts)."""
        return sum(len(q) for q in self._pending.values()) + self._running

    def snapshot(self) -> dict[str, int]:
        return {
            "backlog": self.backlog,
            "written": self.written,
            "superseded": self.superseded,
            "failed": self.failed,
        }

    def submit(self, guild_id: int, what: str, write: Write, *, replaces_pending: bool = False) -> None:
        """Queue `write` after the guild's earlier writes; with `replaces_pending` those not yet started are
        dropped first (the caller's write carries the guild's whole newer state)."""
        queue = self._pending.setdefault(guild_id, deque())
        if replaces_pending:
            self.superseded += len(queue)
            queue.clear()
        queue.append(_Queued(what, write))
        self._idle.clear()
        if guild_id not in self._scheduled:
            self._scheduled.add(guild_id)
            self._ready.put_nowait(guild_id)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"structure-writer-{i}") for i in range(self._workers)
            ]

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or running, at most `timeout` seconds; True when drained."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("structure_writes_not_drained", backlog=self.backlog)
            return False
        return True

    async def close(self, drain_seconds: float) -> None:
        """Give queued writes `drain_seconds` (a leave must not be lost on a restart: the next READY simply
        omits the guild), then stop the workers; a write still running is cancelled and rolls back."""
        if self._tasks:
            await self.drain(drain_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            guild_id = await self._ready.get()
            queue = self._pending[guild_id]
            item = queue.popleft()
            if not queue:
                del self._pending[guild_id]
            self._running += 1
            try:
                await item.write()
                self.written += 1
            except Exception as exc:
                self.failed += 1
                asyncio.get_running_loop().call_exception_handler(
                    {"message": f"guild structure write {item.what} failed", "exception": exc, "guild_id": guild_id}
                )
            finally:
                self._running -= 1
                self._after(guild_id)

    def _after(self, guild_id: int) -> None:
        if guild_id in self._pending:
            self._ready.put_nowait(guild_id)  # back of the line: guilds take turns
        else:
            self._scheduled.discard(guild_id)
            if not self._scheduled:
                self._idle.set()
