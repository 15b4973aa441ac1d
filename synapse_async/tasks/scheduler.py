"""The lake maintenance scheduler (SPEC §23.1): retention daily at 03:00 UTC, reconciliation Mondays 04:00 UTC.

Each check looks for schedule slots passed since the previous check and queues one job per LOCAL guild for each
(the process owning the guild's shard runs it; other processes schedule their own guilds). A guild whose job of
that kind is still active is skipped: that job does the same work. The first check starts the clock, so a
restart neither replays missed slots nor queues work at every start (a slot missed while no process ran is
caught up by the next day's or week's run, which covers everything the missed one would have).

Each check also keeps the lake's daily partitions created ahead (issue 27): the first check of every UTC day
(and so the first check after a start) creates any missing partition for today and the next `AHEAD_DAYS` days.
Partitions are shared by all guilds, so every process may do it; the helper serialises them with a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from synapse_async.db.lake_partitions import AHEAD_DAYS, ensure_partitions
from synapse_async.jobs.store import JobActive, request_job
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

SCHEDULER = "system"


@dataclass(frozen=True, slots=True)
class Slot:
    """A recurring UTC time: `hour` o'clock every day, or only on `weekday` (Monday = 0)."""

    kind: str
    hour: int
    weekday: int | None = None

    def latest(self, now: datetime) -> datetime:
        """The most recent occurrence at or before `now`."""
        at = now.astimezone(UTC).replace(hour=self.hour, minute=0, second=0, microsecond=0)
        if at > now:
            at -= timedelta(days=1)
        if self.weekday is not None:
            at -= timedelta(days=(at.weekday() - self.weekday) % 7)
        return at


SLOTS = (Slot("retention", 3), Slot("reconciliation", 4, weekday=0))


class LakeScheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        local_guilds: Callable[[], Collection[int]],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        slots: tuple[Slot, ...] = SLOTS,
        engine: AsyncEngine | None = None,
        ahead_days: int = AHEAD_DAYS,
    ) -> None:
        self._sessions = sessions
        self._local_guilds = local_guilds
        self._clock = clock
        self._slots = slots
        self._checked: datetime | None = None
        self._engine = engine
        self._ahead_days = ahead_days
        self._partitions_day: date | None = None
        self.queued: dict[str, int] = {}
        self.partitions_created: list[str] = []

    async def check(self) -> None:
        now = self._clock()
        await self.ensure_partitions(now.astimezone(UTC).date())
        previous, self._checked = self._checked, now
        if previous is None:
            return
        for slot in self._slots:
            if previous < slot.latest(now) <= now:
                await self.queue(slot.kind)

    async def ensure_partitions(self, today: date) -> None:
        """Create the lake's missing daily partitions once per UTC day (no-op without an engine)."""
        if self._engine is None or self._partitions_day == today:
            return
        self.partitions_created += await ensure_partitions(self._engine, today, self._ahead_days)
        self._partitions_day = today

    async def queue(self, kind: str) -> None:
        """One `kind` job per local guild, each in its own transaction (one guild's refusal stops no other)."""
        queued = skipped = 0
        for guild_id in sorted(self._local_guilds()):
            try:
                async with self._sessions.begin() as s:
                    await request_job(s, guild_id, kind, SCHEDULER)
                queued += 1
            except JobActive:
                skipped += 1
        self.queued[kind] = self.queued.get(kind, 0) + queued
        log.info("lake_jobs_scheduled", kind=kind, queued=queued, already_active=skipped)
