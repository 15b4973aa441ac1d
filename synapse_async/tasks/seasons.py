"""Season rollover (SPEC §11, §23.1): end expired seasons and, with `season.auto_renew`, start the next at once.

Runs every 60 s in each process for its LOCAL guilds only, one transaction per guild: the status change, the
audit rows (actor `system`) and the `seasons:<guild>` NOTIFY commit together. An automatically ended season ends
exactly at its `ends_at` (not at the moment the task noticed), and the renewed season starts there, so
attribution windows `[starts_at, COALESCE(ended_at, ends_at))` never overlap or leave a gap.

The 60 s tick alone would leave events between `ends_at` and the tick without a season. So the pipeline asks for
the renewal first (`renew`, through `Processor.bind_renewal`) when an event of an auto-renewing guild is past its
active season's `ends_at`: the rollover runs at once (one at a time per guild; concurrent askers share it) and the
cache learns the new season before the event is attributed by its own time.

One guild's failure (a lock held past the statement timeout, a bad row) must not hold back every other guild's
rollover: each guild is tried, failures are logged per guild, and the cycle then raises so the task shows
`failed` in `/health` and the supervisor retries it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.notify import notify_config
from synapse_async.obs.logging import get_logger
from synapse_async.services.audit import Actor, record

log = get_logger(__name__)

_EXPIRE = text(
    """
    UPDATE seasons SET status = 'ended', ended_at = ends_at
     WHERE guild_id = :g AND status = 'active' AND ends_at <= now()
    RETURNING season_id, name, starts_at, ends_at
    """
)
_COUNT = text("SELECT count(*) FROM seasons WHERE guild_id = :g")
_NAME_TAKEN = text("SELECT 1 FROM seasons WHERE guild_id = :g AND name = :n")
_START = text(
    """
    INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, created_by)
    VALUES (:g, :n, :s, :e, 'active', 'system')
    RETURNING season_id
    """
)


class RolloverFailed(Exception):
    """Some guilds' rollover failed this cycle (each is logged); the others went ahead."""

    def __init__(self, guild_ids: list[int]) -> None:
        super().__init__(f"season rollover failed for {len(guild_ids)} guild(s): {guild_ids[:10]}")
        self.guild_ids = guild_ids


class SeasonRollover:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: ConfigCache,
        local_guilds: Callable[[], Collection[int]],
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._local_guilds = local_guilds
        self.ended = 0
        self.started = 0
        self._renewing: dict[int, asyncio.Future[None]] = {}

    async def renew(self, guild_id: int) -> None:
        """Roll the guild over now and reload its seasons into the cache (the pipeline's ask, see above). A failure
        is logged, never raised: the event then goes without a season, as it would have until the next tick."""
        pending = self._renewing.get(guild_id)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._renewing[guild_id] = future
        try:
            await self.roll_guild(guild_id)
            await self._cache.reload("seasons", guild_id)
        except Exception:
            log.exception("season_renewal_failed", guild_id=guild_id)
        finally:
            del self._renewing[guild_id]
            future.set_result(None)

    async def check(self) -> None:
        failed: list[int] = []
        first: Exception | None = None
        for guild_id in sorted(self._local_guilds()):
            try:
                await self.roll_guild(guild_id)
            except Exception as exc:
                failed.append(guild_id)
                first = first or exc
                log.exception("season_rollover_failed", guild_id=guild_id)
        if first is not None:
            raise RolloverFailed(failed) from first

    async def roll_guild(self, guild_id: int) -> None:
        system = Actor.system()
        settings = self._cache.settings(guild_id)
        async with self._sessions.begin() as s:
            ended = (await s.execute(_EXPIRE, {"g": guild_id})).all()
            if not ended:
                return
            for row in ended:
                self.ended += 1
                await record(
                    s,
                    system,
                    guild_id=guild_id,
                    action="season.auto_end",
                    target_type="season",
                    target_id=str(row.season_id),
                    before={"status": "active", "name": row.name},
                    after={"status": "ended", "ended_at": row.ends_at.isoformat()},
                )
            last = max(ended, key=lambda r: r.ends_at)
            if settings.bool("season.auto_renew"):
                number = int((await s.execute(_COUNT, {"g": guild_id})).scalar_one()) + 1
                base = settings.str("season.name_template").replace("{n}", str(number))[:100]
                name, suffix = base, 2
                while (await s.execute(_NAME_TAKEN, {"g": guild_id, "n": name})).first() is not None:
                    tag = f" ({suffix})"
                    name, suffix = base[: 100 - len(tag)] + tag, suffix + 1
                starts = last.ends_at
                ends = starts + timedelta(days=settings.int("season.default_days"))
                season_id = (await s.execute(_START, {"g": guild_id, "n": name, "s": starts, "e": ends})).scalar_one()
                self.started += 1
                await record(
                    s,
                    system,
                    guild_id=guild_id,
                    action="season.auto_start",
                    target_type="season",
                    target_id=str(season_id),
                    after={"name": name, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()},
                )
            await notify_config(s, "seasons", guild_id)
        log.info("season_rollover", guild_id=guild_id, ended=len(ended), renewed=settings.bool("season.auto_renew"))
