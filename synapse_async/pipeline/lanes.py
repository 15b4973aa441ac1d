"""Per-guild ordered lanes with micro-batching, outage buffering and retries (SPEC §8.1–§8.2).

`submit` (the normalizer's `EventSink`) never blocks: events go into their guild's FIFO. Up to
`PIPELINE_CONCURRENCY` workers each take one guild at a time, so a guild's events are processed in arrival order
while different guilds proceed in parallel. A worker takes up to `batch_max` queued events into one transaction.

Failures are classified by cause (`db/faults.py`), and a fault is not a verdict on the data:
- TRANSIENT (connection closed or terminated, even at COMMIT; outcome unknown; pool timeout; server shutting down;
  serialization failure, deadlock, statement timeout): the same batch is retried with backoff 0.5 s doubling to
  30 s, for as long as it takes. The lane waits, order is preserved, events keep queueing in memory. A replay of a
  batch that did commit is recognised by the journal's idempotency keys and pays nothing twice.
- DATA (PostgreSQL rejected what this batch wrote: SQLSTATE 22/23): the batch is replayed one event per
  transaction, and only the event that fails on its own is dropped, logged with its normalized form, counted in
  `pipeline.failed`.
- UNKNOWN (neither, e.g. a bug): also replayed event by event; an event that fails `suspect_attempts` times in a
  row, while the database answers a probe, is dropped the same way (`fault=unknown`), so one poisoned event cannot
  stall its guild until the buffer's age bound drops everything behind it. While the probe fails, it waits.
The buffer is bounded by count and age (checked on every retry); beyond that the oldest *waiting* events are
dropped, each logged at ERROR with its keys and counted. Events in flight are never dropped by the bounds.
Nothing outside the database changes before COMMIT: the after-commit effects are handed to `on_commit`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from synapse_async.db.engine import Database
from synapse_async.db.faults import Fault, RetryPolicy, classify, retry_transient
from synapse_async.db.transactions import HeldConnection
from synapse_async.domain.events import PipelineEvent
from synapse_async.ledger import Effects, NeedsSingles
from synapse_async.obs.logging import get_logger
from synapse_async.pipeline.cooldowns import CooldownCache
from synapse_async.pipeline.processor import Processor

log = get_logger(__name__)
T = TypeVar("T")
BATCH_MAX = 1024
"""Most events in one transaction. A batch is what queued while the previous one ran, so this bound matters only in
bursts: there 1,024 (before: 256) sums more of a member's messages into one row update and one counter update each,
and pays one BEGIN/COMMIT per 1,024 events; `bench/pipeline.py`: 0.46–0.49 → 0.51–0.54 of raw ingest. A burst's
transaction then holds its rows for ~30 ms instead of ~12; paced traffic (1,000/s) still commits 1–2 events at a
time."""
# Steps 3–4 of author resolution (SPEC §7.4), run by the lane before processing (bot/authors.py).
ResolveAuthors = Callable[[asyncpg.Connection, Sequence[PipelineEvent]], Awaitable[list[PipelineEvent]]]


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
        batch_max: int = BATCH_MAX,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        suspect_attempts: int = 3,
        resolve_authors: ResolveAuthors | None = None,
        idle_release_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._processor = processor
        self._concurrency = concurrency
        self._buffer_events = buffer_events
        self._max_age_ns = int(buffer_max_age_seconds * 1e9)
        self._on_commit = on_commit
        self._batch_max = batch_max
        self._policy = RetryPolicy(base_delay=retry_base, max_delay=retry_max, attempts=None)
        self._suspect_attempts = suspect_attempts
        self._resolve_authors = resolve_authors
        self._idle_release_seconds = idle_release_seconds
        self._in_flight: dict[int, Sequence[PipelineEvent]] = {}  # guild -> batch taken out of its queue
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
        held = self._db.held_connection()
        try:
            while True:
                guild_id = await self._next_guild(held)
                self._busy += 1
                try:
                    queue = self._queues.get(guild_id)
                    while queue:
                        # Everything queued, up to the bound: batches grow with the load by themselves (what arrived
                        # while the previous transaction ran), and stay small and immediate when traffic is light.
                        # Taken out of the queue while in flight: the buffer bounds can only drop events still
                        # waiting.
                        batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
                        self._in_flight[guild_id] = batch
                        try:
                            await self._process_with_retry(batch, held)
                        finally:
                            del self._in_flight[guild_id]
                            self._buffered -= len(batch)
                finally:
                    self._busy -= 1
                    self._scheduled.discard(guild_id)
                    if self._queues.get(guild_id):
                        self._scheduled.add(guild_id)
                        self._ready.put_nowait(guild_id)
                    elif self._buffered == 0 and self._busy == 0:
                        self._idle.set()
        finally:
            await held.release()

    async def _next_guild(self, held: HeldConnection) -> int:
        """The next guild with queued events. The worker keeps its connection while events keep coming (at 1,000
        events/s a lane's queue empties after every small batch, and a checkout per batch — a pre-ping round trip
        and the pool's machinery — took 14 % of the lane's CPU samples in a benchmark run) and gives it back to the
        pool once none came for `idle_release_seconds`: idle lanes hold no connection."""
        if self._ready.empty() and held.holding:
            try:
                async with asyncio.timeout(self._idle_release_seconds):
                    return await self._ready.get()
            except TimeoutError:
                await held.release()
        return await self._ready.get()

    def _on_retry(self, attempt: int, error: BaseException, delay: float, *, size: int) -> None:
        self.stats.retries += 1
        log.warning("pipeline_retry", attempt=attempt, delay_s=round(delay, 3), error=type(error).__name__, batch=size)
        self._enforce_bounds()  # the age bound matters exactly while the lane cannot commit

    async def _retrying(self, op: Callable[[], Awaitable[T]], size: int) -> T:
        """Run `op` through every transient fault (the one retry loop of db/faults.py, unbounded here)."""
        return await retry_transient(
            op, policy=self._policy, on_retry=lambda a, e, d: self._on_retry(a, e, d, size=size)
        )

    async def _process_with_retry(self, batch: Sequence[PipelineEvent], held: HeldConnection) -> None:
        if self._resolve_authors is not None and any(getattr(e, "author_pending", False) for e in batch):
            batch = await self._with_authors(batch, held)
        if len(batch) == 1:
            await self._process_single(batch[0], held)
            return
        try:
            await self._retrying(lambda: self._process(batch, held), len(batch))
            return
        except NeedsSingles:
            self.stats.replayed_batches += 1
        except Exception as exc:
            log.warning("pipeline_batch_split", batch=len(batch), fault=classify(exc).value, error=type(exc).__name__)
        for event in batch:
            await self._process_single(event, held)

    async def _with_authors(self, batch: Sequence[PipelineEvent], held: HeldConnection) -> Sequence[PipelineEvent]:
        """Resolve pending authors (§7.4 steps 3–4) through every transient fault, before the batch's transaction.

        A non-transient failure here is a bug in the lookup, not a fault of the events: they go on with their
        authors unknown (a reaction then pays nobody: `unknown_target`), logged, rather than being dropped.
        """
        try:
            return await self._retrying(lambda: self._resolve(batch, held), len(batch))
        except Exception as exc:
            log.error("author_resolution_failed", batch=len(batch), error=repr(exc)[:300])
            return batch

    async def _process_single(self, event: PipelineEvent, held: HeldConnection) -> None:
        attempt = 1
        while True:
            try:
                await self._retrying(lambda: self._process([event], held, singles=True), 1)
                return
            except Exception as exc:
                if await self._after_failure(event, exc, attempt=attempt):
                    return
                attempt += 1

    async def _after_failure(self, event: PipelineEvent, exc: Exception, *, attempt: int) -> bool:
        """Decide about one event whose own transaction failed with a non-transient error: True = dropped."""
        fault = classify(exc)
        if fault is Fault.UNKNOWN and (attempt < self._suspect_attempts or not await self._database_answers()):
            self.stats.retries += 1
            log.warning("pipeline_suspect_retry", keys=_keys(event), attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(self._policy.base_delay * attempt)
            self._enforce_bounds()
            return False
        self.stats.failed += 1
        log.error(
            "event_failed",
            keys=_keys(event),
            fault=fault.value,
            normalized=repr(event)[:1000],
            error=repr(exc)[:300],
        )
        return True

    async def _database_answers(self) -> bool:
        try:
            await self._db.ping(timeout=2.0)
        except Exception:
            return False
        return True

    async def _resolve(self, batch: Sequence[PipelineEvent], held: HeldConnection) -> list[PipelineEvent]:
        assert self._resolve_authors is not None
        # On the lane's own connection: a second checkout per lane could exhaust the pool with every lane waiting.
        return await self._resolve_authors(await held.connection(), batch)

    async def _process(self, batch: Sequence[PipelineEvent], held: HeldConnection, *, singles: bool = False) -> None:
        await self._processor.renew_due(batch)  # the season these events belong to exists first (SPEC §11)
        async with held.transaction() as conn:
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
            # In flight first (taken out of their queues, not committed), then everything still waiting.
            left = [e for b in self._in_flight.values() for e in b] + [e for q in self._queues.values() for e in q]
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
