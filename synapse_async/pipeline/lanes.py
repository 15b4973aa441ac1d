"""Per-guild ordered lanes with micro-batching, outage buffering and retries (SPEC §8.1–§8.2).

`submit` (the normalizer's `EventSink`) never blocks: events go into their guild's FIFO. Up to
`PIPELINE_CONCURRENCY` workers each take one guild at a time, so a guild's events are processed in arrival order
while different guilds proceed in parallel. A worker takes up to `batch_max` queued events into one transaction.

Failures: a transient error (connection lost, pool timeout, serialization failure, deadlock, statement timeout)
rolls back and retries the same batch with backoff 0.5 s doubling to 30 s — the lane waits, order is preserved
and events keep queueing in memory. The buffer is bounded by count and age; beyond that the oldest events are
dropped, each logged at ERROR with its keys and counted. A permanent error in a batch replays it event by event,
so only the faulty event is dropped (logged with its normalized form). Nothing outside the database changes
before COMMIT: the after-commit effects are handed to `on_commit`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from synapse_async.db.engine import Database, is_transient
from synapse_async.domain.events import PipelineEvent
from synapse_async.obs.logging import get_logger
from synapse_async.pipeline.processor import CooldownCache, Effects, NeedsSingles, Processor

log = get_logger(__name__)


@dataclass(slots=True)
class PipelineStats:
    processed: int = 0
    duplicates: int = 0
    dropped: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    ignored_after_shutdown: int = 0
    replayed_batches: int = 0  # batches replayed one event per transaction (duplicate or achievement inside)


def _keys(event: PipelineEvent) -> str:
    for attr in ("reward_key", "lake_key"):
        try:
            return str(getattr(event, attr))
        except (AttributeError, TypeError):
            continue
    return type(event).__name__


class Pipeline:
    def __init__(
        self,
        db: Database,
        processor: Processor,
        *,
        concurrency: int,
        buffer_events: int,
        buffer_max_age_seconds: float,
        on_commit: Callable[[Effects], None],
        batch_max: int = 256,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._db = db
        self._processor = processor
        self._concurrency = concurrency
        self._buffer_events = buffer_events
        self._max_age_ns = int(buffer_max_age_seconds * 1e9)
        self._on_commit = on_commit
        self._batch_max = batch_max
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._queues: dict[int, deque[PipelineEvent]] = {}
        self._ready: asyncio.Queue[int] = asyncio.Queue()
        self._scheduled: set[int] = set()
        self._buffered = 0
        self._busy = 0
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = PipelineStats()

    @property
    def processor(self) -> Processor:
        return self._processor

    @property
    def cooldowns(self) -> CooldownCache:
        return self._processor.cooldowns

    # --- intake ------------------------------------------------------------------------------------------------
    def submit(self, event: PipelineEvent) -> None:
        if not self._accepting:
            self.stats.ignored_after_shutdown += 1  # arrived after shutdown began: never accepted (SPEC §3.3)
            return
        if event.received_ns == 0:
            object.__setattr__(event, "received_ns", time.monotonic_ns())
        queue = self._queues.setdefault(event.guild_id, deque())
        queue.append(event)
        self._buffered += 1
        self._idle.clear()
        if self._buffered > self._buffer_events:
            # Only when over the count bound: the scan for the oldest event is O(guilds). The age bound matters only
            # while lanes cannot commit, and is enforced from the retry path then.
            self._enforce_bounds()
        if event.guild_id not in self._scheduled:
            self._scheduled.add(event.guild_id)
            self._ready.put_nowait(event.guild_id)

    def _enforce_bounds(self) -> None:
        """Drop the oldest buffered events beyond PIPELINE_BUFFER_EVENTS / PIPELINE_BUFFER_MAX_AGE_SECONDS."""
        now = time.monotonic_ns()
        while True:
            oldest_guild, oldest = None, None
            for guild_id, queue in self._queues.items():
                if queue and (oldest is None or queue[0].received_ns < oldest.received_ns):
                    oldest_guild, oldest = guild_id, queue[0]
            if oldest is None or oldest_guild is None:
                return
            too_many = self._buffered > self._buffer_events
            too_old = now - oldest.received_ns > self._max_age_ns
            if not (too_many or too_old):
                return
            self._queues[oldest_guild].popleft()
            self._buffered -= 1
            self.stats.dropped += 1
            log.error(
                "event_dropped_buffer_full" if too_many else "event_dropped_too_old",
                guild_id=oldest_guild,
                keys=_keys(oldest),
            )

    # --- workers -----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """The supervised coroutine: `concurrency` lane workers."""
        workers = [asyncio.create_task(self._worker(), name=f"pipeline-lane-{i}") for i in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            guild_id = await self._ready.get()
            self._busy += 1
            try:
                queue = self._queues.get(guild_id)
                while queue:
                    # Taken out of the queue while in flight: the buffer bounds can only drop events still waiting.
                    batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
                    try:
                        await self._process_with_retry(batch)
                    finally:
                        self._buffered -= len(batch)
            finally:
                self._busy -= 1
                self._scheduled.discard(guild_id)
                if self._queues.get(guild_id):
                    self._scheduled.add(guild_id)
                    self._ready.put_nowait(guild_id)
                elif self._buffered == 0 and self._busy == 0:
                    self._idle.set()

    async def _process_with_retry(self, batch: Sequence[PipelineEvent]) -> None:
        delay = self._retry_base
        while True:
            try:
                await self._process(batch)
                return
            except NeedsSingles:
                self.stats.replayed_batches += 1
                for event in batch:
                    await self._process_with_retry_single(event)
                return
            except Exception as exc:
                if is_transient(exc):
                    self.stats.retries += 1
                    log.warning("pipeline_retry", delay_s=delay, error=type(exc).__name__, batch=len(batch))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
                    self._enforce_bounds()
                    continue
                if len(batch) > 1:
                    for event in batch:
                        await self._process_with_retry_single(event)
                    return
                self.stats.failed += 1
                log.error("event_failed", keys=_keys(batch[0]), normalized=repr(batch[0])[:1000], error=repr(exc)[:300])
                return

    async def _process_with_retry_single(self, event: PipelineEvent) -> None:
        delay = self._retry_base
        while True:
            try:
                await self._process([event], singles=True)
                return
            except Exception as exc:
                if not is_transient(exc):
                    self.stats.failed += 1
                    log.error("event_failed", keys=_keys(event), normalized=repr(event)[:1000], error=repr(exc)[:300])
                    return
                self.stats.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    async def _process(self, batch: Sequence[PipelineEvent], *, singles: bool = False) -> None:
        async with self._db.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection
            async with conn.transaction():
                effects = await self._processor.process(conn, batch, singles=singles or len(batch) == 1)
        # COMMITTED: only now may caches, announcements and role syncs change.
        self.stats.batches += 1
        self.stats.processed += effects.processed
        self.stats.duplicates += effects.duplicates
        self._processor.committed(effects)
        try:
            self._on_commit(effects)
        except Exception:
            # The transaction is committed: a failing after-commit hook must never make the lane replay it.
            log.exception("after_commit_failed", processed=effects.processed)

    # --- shutdown ----------------------------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        self._accepting = False

    async def drain(self, timeout: float) -> int:
        """Wait until everything queued is committed or `timeout` passes; log what is left (count and keys)."""
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await self._idle.wait()
        except TimeoutError:
            left = [e for q in self._queues.values() for e in q]
            log.error("pipeline_drain_incomplete", left=len(left), keys=[_keys(e) for e in left[:100]])
            return len(left)
        return 0

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def snapshot(self) -> dict[str, Any]:
        return {
            "lanes_busy": self._busy,
            "buffered": self._buffered,
            "processed": self.stats.processed,
            "duplicates": self.stats.duplicates,
            "dropped": self.stats.dropped,
            "failed": self.stats.failed,
            "retries": self.stats.retries,
        }
