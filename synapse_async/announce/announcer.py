"""The announcer (SPEC §14): after-commit announcements, throttled per channel, in bounded queues, flushed on
shutdown (§3.3 step 5).

The pipeline calls `enqueue` after COMMIT and must never wait for Discord, so `enqueue` is synchronous, never blocks
and never raises: it picks the channel, appends to that channel's FIFO and wakes `run`. `run` (a supervised
background coroutine) starts one worker per channel that has queued entries and a free throttle slot; a worker sends
that channel's entries in order while slots last. Channels are independent, so a slow or throttled channel never
delays another, and one worker per channel keeps each channel's order.

Throttle: at most `per_channel` sends per channel in any sliding `window_seconds` (§14: 3 per 60 s), tracked with
the injected clock as the start times of the last `per_channel` sends. This is a spam limit on top of Discord's
rate limits, which hikari's REST client already honours.

Channel choice: the first candidate that `is_usable(guild_id, channel_id)` accepts (the caller's config cache: not
deleted, text-capable). A 403 or 404 from Discord means the cache was stale or a permission is missing: the entry
falls through to the next candidate, and the channel is remembered as refused for one window so that every queued
announcement does not repeat the same failing request (Discord counts 403/404s against the invalid-request limit).
Any other error (5xx after hikari's own retries, 400, 401) is logged and counted `failed`; there is no endless retry.

Memory (§25): every queue is bounded (`channel_queue` per channel, `total_queue` overall; overflow drops the oldest
entry). Drops are logged as one WARNING per channel per `drop_log_seconds` with counts by reason and kind
(`announce/drops.py`), so an outage's backlog cannot flood the log with one line per announcement. The send
history keeps `per_channel` timestamps per recently used channel and is pruned once per window, and the
refused-channel memo expires and is capped.

Every send uses allowed mentions "none" (`{"parse": []}` in the request body): `<@id>` renders as a name but never
pings, and neither can `@everyone` or a role mention in a template name or an award reason.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import hikari

from synapse_async.announce.drops import DropSummary
from synapse_async.obs.logging import get_logger

__all__ = ["Announcement", "AnnouncementKind", "Announcer"]

log = get_logger(__name__)

AnnouncementKind = Literal["level_up", "achievement", "manual_award"]

MAX_REFUSED_CHANNELS = 10_000
"""Cap of the refused-channel memo; entries also expire after one window."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """One announcement, built by the caller after COMMIT.

    `channel_candidates` is in priority order (template channel > `announce.channel_id` > event channel); the
    caller may leave duplicates in, they are tried once.
    """

    guild_id: int
    kind: AnnouncementKind
    user_id: int
    channel_candidates: tuple[int, ...]
    embed: hikari.Embed


@dataclass(slots=True)
class _Entry:
    """A queued announcement: `seq` orders entries by age (oldest = smallest); `next_index` is the first candidate
    not yet considered, so a fall-through never goes back to a channel already tried."""

    seq: int
    announcement: Announcement
    next_index: int = field(default=0)


class Announcer:
    """Sends announcements with per-channel throttling, bounded queues and a shutdown flush (see the module doc)."""

    def __init__(
        self,
        rest: hikari.api.RESTClient,
        *,
        is_usable: Callable[[int, int], bool] = lambda g, c: True,
        per_channel: int = 3,
        window_seconds: float = 60.0,
        channel_queue: int = 10,
        total_queue: int = 1000,
        drop_log_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_channel < 1 or channel_queue < 1 or total_queue < 1:
            raise ValueError("per_channel, channel_queue and total_queue must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self._rest = rest
        self._is_usable = is_usable
        self._per_channel = per_channel
        self._window = window_seconds
        self._channel_queue = channel_queue
        self._total_queue = total_queue
        self._clock = clock

        self._queues: dict[int, deque[_Entry]] = {}  # channel -> FIFO, sorted by seq
        self._history: dict[int, deque[float]] = {}  # channel -> start times of its last `per_channel` sends
        self._refused: dict[int, float] = {}  # channel -> clock time until which it is skipped (403/404)
        self._workers: dict[int, asyncio.Task[None]] = {}  # channel -> its running sender
        self._inflight: dict[int, _Entry] = {}  # channel -> entry being sent right now
        self._wake = asyncio.Event()
        self._seq = itertools.count()
        self._last_prune = clock()
        self._closed = False
        self._drop_log = DropSummary(drop_log_seconds)

        self._queued = 0
        self._dropped = 0
        self._sent = 0
        self._failed = 0
        self._skipped = 0

    # ------------------------------------------------------------------------------------------------ public API

    def enqueue(self, announcement: Announcement) -> None:
        """Queue `announcement` for its first usable channel; never blocks, never raises.

        No usable candidate → skipped (counted, logged). A full queue drops its oldest entry, not the new one: the
        newest announcement is the most relevant to what members see in the channel right now.
        """
        entry = _Entry(next(self._seq), announcement)
        if self._closed:
            self._count_dropped(entry, None, reason="shut_down")
            return
        channel = self._next_channel(entry)
        if channel is None:
            self._skip(entry)
            return
        self._place(entry, channel)

    async def run(self) -> None:
        """Send queued announcements as throttle slots free up; runs until cancelled (supervised, §23.1).

        Sleeps on an event that `enqueue` and finishing workers set, or until the earliest throttled channel gets a
        slot back. Cancelling it cancels the workers it started (an entry being sent then is counted dropped), so
        call `flush` first at shutdown.
        """
        try:
            while True:
                self._wake.clear()
                await self._wait(self._dispatch())
        finally:
            for task in list(self._workers.values()):
                task.cancel()

    async def flush(self, deadline: float) -> int:
        """Send what the throttle allows until `deadline` (`loop.time()`), then drop the rest (§3.3 step 5).

        Works whether or not `run` is still running. Returns early once everything is sent. At the deadline, sends
        still in flight are cancelled and queued entries dropped; both are counted and logged with counts per
        kind. Afterwards the announcer is closed: later `enqueue` calls are dropped (the pipeline is drained before
        this step, so none are expected).
        """
        loop = asyncio.get_running_loop()
        sent_before = self._sent
        while self._queues or self._workers:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            delay = self._dispatch()
            await self._wait(remaining if delay is None else min(delay, remaining))
        self._closed = True

        lost: list[_Entry] = list(self._inflight.values())
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        for queue in self._queues.values():
            lost.extend(queue)
            self._dropped += len(queue)
            self._queued -= len(queue)
        self._queues.clear()

        by_kind = Counter(e.announcement.kind for e in lost)
        fields = {
            "sent": self._sent - sent_before,
            "dropped": len(lost),
            "dropped_by_kind": dict(sorted(by_kind.items())),
        }
        self._log_drops(self._drop_log.due(self._clock(), force=True))
        if lost:
            log.warning("announcements_dropped_at_shutdown", **fields)
        else:
            log.info("announcements_flushed", **fields)
        return len(lost)

    def snapshot(self) -> dict[str, int]:
        """Counters for `/health` (§24.1): queued now, and dropped / sent / failed / skipped since start."""
        return {
            "queued": self._queued,
            "dropped": self._dropped,
            "sent": self._sent,
            "failed": self._failed,
            "skipped": self._skipped,
        }

    # ------------------------------------------------------------------------------------------------ channel choice

    def _usable(self, guild_id: int, channel_id: int) -> bool:
        """The caller's verdict, unless Discord recently refused the channel; a raising predicate counts as "no"
        because `enqueue` must never raise into the pipeline's after-commit step."""
        until = self._refused.get(channel_id)
        if until is not None:
            if self._clock() < until:
                return False
            del self._refused[channel_id]
        try:
            return bool(self._is_usable(guild_id, channel_id))
        except Exception as exc:
            log.warning(
                "announcement_channel_check_failed",
                guild_id=guild_id,
                channel_id=channel_id,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return False

    def _next_channel(self, entry: _Entry) -> int | None:
        """Advance `entry` to its next usable, not yet tried candidate (duplicates are tried once)."""
        candidates = entry.announcement.channel_candidates
        while entry.next_index < len(candidates):
            index = entry.next_index
            entry.next_index += 1
            channel = candidates[index]
            if channel in candidates[:index]:
                continue
            if self._usable(entry.announcement.guild_id, channel):
                return channel
        return None

    def _refuse(self, channel_id: int, now: float) -> None:
        """Remember a 403/404 for one window (re-inserted so the dict stays in expiry order, then capped)."""
        self._refused.pop(channel_id, None)
        self._refused[channel_id] = now + self._window
        while len(self._refused) > MAX_REFUSED_CHANNELS:
            del self._refused[next(iter(self._refused))]

    def _reroute(self, entry: _Entry, failed_channel: int) -> None:
        channel = self._next_channel(entry)
        if channel is None:
            self._skip(entry, last_channel=failed_channel)
        else:
            self._place(entry, channel)

    def _skip(self, entry: _Entry, last_channel: int | None = None) -> None:
        self._skipped += 1
        a = entry.announcement
        log.info(
            "announcement_skipped",
            reason="no_usable_channel",
            guild_id=a.guild_id,
            kind=a.kind,
            user_id=a.user_id,
            candidates=len(a.channel_candidates),
            last_channel_id=last_channel,
        )

    # ------------------------------------------------------------------------------------------------ queues

    def _place(self, entry: _Entry, channel: int) -> None:
        """Append to the channel's FIFO (a rerouted, older entry is inserted by age), then enforce both bounds."""
        queue = self._queues.setdefault(channel, deque())
        if not queue or queue[-1].seq < entry.seq:
            queue.append(entry)
        else:
            queue.insert(bisect.bisect([e.seq for e in queue], entry.seq), entry)
        self._queued += 1
        if len(queue) > self._channel_queue:
            self._drop_head(channel, reason="channel_queue_full")
        elif self._queued > self._total_queue:
            # Each queue is sorted by age, so the globally oldest entry is the oldest queue head.
            oldest = min(self._queues, key=lambda c: self._queues[c][0].seq)
            self._drop_head(oldest, reason="total_queue_full")
        self._wake.set()

    def _drop_head(self, channel: int, *, reason: str) -> None:
        queue = self._queues[channel]
        entry = queue.popleft()
        if not queue:
            del self._queues[channel]
        self._queued -= 1
        self._count_dropped(entry, channel, reason=reason)

    def _count_dropped(self, entry: _Entry, channel: int | None, *, reason: str) -> None:
        self._dropped += 1
        a = entry.announcement
        now = self._clock()
        self._log_drops(self._drop_log.note(channel, reason=reason, kind=a.kind, guild_id=a.guild_id, now=now))

    def _log_drops(self, records: list[dict[str, Any]]) -> None:
        """One WARNING per channel per `drop_log_seconds`, with counts (drops/drops.py), not one per drop."""
        for record in records:
            log.warning("announcements_dropped", queued=self._queued, **record)

    # ------------------------------------------------------------------------------------------------ sending

    def _slot_wait(self, channel: int, now: float) -> float:
        """Seconds until `channel` may send again (<= 0: now), by the sliding window over its last sends."""
        history = self._history.get(channel)
        if history is None or len(history) < self._per_channel:
            return 0.0
        return history[0] + self._window - now

    def _dispatch(self) -> float | None:
        """Start a worker for every channel with queued entries, no worker and a free slot; return the seconds until
        the earliest throttled channel frees a slot (None: nothing to wait for but a wake-up)."""
        now = self._clock()
        self._prune(now)
        next_delay: float | None = None
        for channel in list(self._queues):
            if channel in self._workers:
                continue
            wait = self._slot_wait(channel, now)
            if wait <= 0:
                task = asyncio.create_task(self._drain(channel), name=f"announce:{channel}")
                # A done-callback, not a `finally`: it also runs for a task cancelled before it ever started.
                task.add_done_callback(functools.partial(self._worker_done, channel))
                self._workers[channel] = task
            elif next_delay is None or wait < next_delay:
                next_delay = wait
        return next_delay

    async def _wait(self, delay: float | None) -> None:
        if delay is None:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.0)):
                await self._wake.wait()

    def _worker_done(self, channel: int, task: asyncio.Task[None]) -> None:
        """Forget a finished worker and wake the dispatcher (its channel may have more entries and a slot)."""
        if self._workers.get(channel) is task:
            del self._workers[channel]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("announcement_worker_failed", channel_id=channel, error=f"{type(exc).__name__}: {exc}"[:300])
        self._wake.set()

    async def _drain(self, channel: int) -> None:
        """Send `channel`'s entries in order while it has a free slot (one worker per channel keeps the order)."""
        while (queue := self._queues.get(channel)) and self._slot_wait(channel, self._clock()) <= 0:
            entry = queue.popleft()
            if not queue:
                del self._queues[channel]
            self._queued -= 1
            self._inflight[channel] = entry
            try:
                await self._deliver(entry, channel)
            except asyncio.CancelledError:
                self._dropped += 1
                log.warning(
                    "announcement_send_cancelled",
                    channel_id=channel,
                    kind=entry.announcement.kind,
                    guild_id=entry.announcement.guild_id,
                )
                raise
            finally:
                del self._inflight[channel]

    async def _deliver(self, entry: _Entry, channel: int) -> None:
        a = entry.announcement
        if not self._usable(a.guild_id, channel):  # deleted or refused while it waited in the queue
            self._reroute(entry, channel)
            return
        started = self._clock()
        try:
            await self._rest.create_message(
                channel,
                embed=a.embed,
                user_mentions=False,
                role_mentions=False,
                mentions_everyone=False,
                mentions_reply=False,
            )
        except (hikari.ForbiddenError, hikari.NotFoundError) as exc:
            self._refuse(channel, started)
            log.info(
                "announcement_channel_refused",
                channel_id=channel,
                guild_id=a.guild_id,
                kind=a.kind,
                status=int(exc.status),
                code=exc.code,
            )
            self._reroute(entry, channel)
            return
        except Exception as exc:
            # Counted against the throttle as well: a 5xx may still have posted the message.
            self._record_send(channel, started)
            self._failed += 1
            log.warning(
                "announcement_failed",
                channel_id=channel,
                guild_id=a.guild_id,
                kind=a.kind,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return
        self._record_send(channel, started)
        self._sent += 1

    def _record_send(self, channel: int, at: float) -> None:
        history = self._history.get(channel)
        if history is None:
            history = self._history[channel] = deque(maxlen=self._per_channel)
        history.append(at)

    def _prune(self, now: float) -> None:
        """Once per window, forget send histories that no longer limit anything and expired refusals (§25)."""
        if now - self._last_prune < self._window:
            return
        self._last_prune = now
        self._log_drops(self._drop_log.due(now))
        for channel, history in list(self._history.items()):
            if history[-1] + self._window <= now and channel not in self._queues and channel not in self._workers:
                del self._history[channel]
        for channel, until in list(self._refused.items()):
            if until <= now:
                del self._refused[channel]
