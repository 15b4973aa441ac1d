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

Full snapshots are written in batches (issue 27): a write submitted with its `snapshot` may be written together
with the snapshots at the head of other guilds' queues, by one `batch` call (one transaction, a few statements
by set) instead of a transaction per guild. A worker takes the ready guilds whose next write is a snapshot, up to
`batch_max`, so the GUILD_CREATEs that arrive while a batch is written form the next one; per guild nothing
changes (still one write at a time, in order). If a batch raises, its writes are retried one by one with their
own `write`, so only a guild whose own write fails is reported and the others are not lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

Write = Callable[[], Awaitable[object]]
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class _Queued(Generic[S]):
    what: str
    write: Write
    snapshot: S | None = None  # set: may be written in one `batch` call with other guilds' snapshots


class StructureWriter(Generic[S]):
    """Runs submitted writes on `workers` coroutines; per guild in submission order, one at a time; snapshots of
    several guilds in one `batch` call."""

    def __init__(
        self,
        workers: int,
        *,
        batch: Callable[[list[S]], Awaitable[object]] | None = None,
        batch_max: int = 250,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._workers = workers
        self._batch = batch
        self._batch_max = batch_max
        self._pending: dict[int, deque[_Queued[S]]] = {}
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
        self.batches = 0  # `batch` calls that succeeded
        self.batch_failures = 0  # `batch` calls that raised (their writes were then retried one by one)

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
            "batches": self.batches,
            "batch_failures": self.batch_failures,
        }

    def submit(
        self, guild_id: int, what: str, write: Write, *, replaces_pending: bool = False, snapshot: S | None = None
    ) -> None:
        """Queue `write` after the guild's earlier writes; with `replaces_pending` those not yet started are
        dropped first (the caller's write carries the guild's whole newer state). With `snapshot`, the write may
        instead happen through the `batch` call, together with other guilds' snapshots."""
        queue = self._pending.setdefault(guild_id, deque())
        if replaces_pending:
            self.superseded += len(queue)
            queue.clear()
        queue.append(_Queued(what, write, snapshot if self._batch is not None else None))
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
            first = self._take(guild_id)
            if first.snapshot is None:
                await self._run(guild_id, first)
                continue
            batch, after = [(guild_id, first)], None
            while len(batch) < self._batch_max and not self._ready.empty():
                other = self._ready.get_nowait()
                item = self._take(other)
                if item.snapshot is None:
                    after = (other, item)  # not batchable: written alone, right after the batch
                    break
                batch.append((other, item))
            await self._run_batch(batch)
            if after is not None:
                await self._run(*after)

    def _take(self, guild_id: int) -> _Queued[S]:
        """The guild's next write, counted as running from now on (for `backlog`)."""
        queue = self._pending[guild_id]
        item = queue.popleft()
        if not queue:
            del self._pending[guild_id]
        self._running += 1
        return item

    async def _run(self, guild_id: int, item: _Queued[S]) -> None:
        try:
            await self._execute(guild_id, item)
        finally:
            self._running -= 1
            self._after(guild_id)

    async def _execute(self, guild_id: int, item: _Queued[S]) -> None:
        try:
            await item.write()
            self.written += 1
        except Exception as exc:
            self.failed += 1
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"guild structure write {item.what} failed", "exception": exc, "guild_id": guild_id}
            )

    async def _run_batch(self, batch: list[tuple[int, _Queued[S]]]) -> None:
        assert self._batch is not None  # only snapshots are batched, and they are kept only with a batch call
        try:
            try:
                await self._batch([item.snapshot for _, item in batch if item.snapshot is not None])
            except Exception as exc:
                self.batch_failures += 1
                log.warning("structure_batch_failed", guilds=len(batch), error=type(exc).__name__)
                for guild_id, item in batch:  # one by one: only a guild whose own write fails is reported
                    await self._execute(guild_id, item)
            else:
                self.batches += 1
                self.written += len(batch)
        finally:
            for guild_id, _ in batch:
                self._running -= 1
                self._after(guild_id)

    def _after(self, guild_id: int) -> None:
        if guild_id in self._pending:
            self._ready.put_nowait(guild_id)  # back of the line: guilds take turns
        else:
            self._scheduled.discard(guild_id)
            if not self._scheduled:
                self._idle.set()
