"""Starting and ending seasons by hand (SPEC §11): `/season start|end` and the admin API share these.

One transaction per change holds the status changes, their audit rows and the `seasons:<guild>` NOTIFY, so the
cache of every process learns of the new season exactly when it exists. Starting while a season is active ends it
in the same transaction when the caller asks (`replace_active`: the command always does, the API only with
`replace_active: true`); otherwise it is refused. The partial unique index `uq_seasons_one_active` is the last
word when two admins race: the loser's transaction fails and is reported as a conflict, never as a second season.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.db.notify import notify_config
from synapse_async.services.audit import Actor, record

MAX_NAME = 100
MAX_DAYS = 730
TOP_ON_END = 3

SeasonProblem = Literal["name_taken", "active_exists", "none_active", "concurrent_change", "unknown", "not_active"]


class SeasonRejected(Exception):
    """Nothing was written: the name is taken, a season is active (without replace), none is active, a race, the
    season is unknown, or `ends_at` was changed on a season that is no longer active."""

    def __init__(self, reason: SeasonProblem) -> None:
        super().__init__(reason)
        self.reason: SeasonProblem = reason


@dataclass(frozen=True, slots=True)
class SeasonRow:
    season_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class Standing:
    """One place of a season's final standings: `rank` per §17.1 (1 + members with strictly more stars, so ties
    share a rank), not the position in the list."""

    user_id: int
    display_name: str
    stars: int
    rank: int


@dataclass(frozen=True, slots=True)
class SeasonStarted:
    season: SeasonRow
    ended: SeasonRow | None  # the season this start replaced


@dataclass(frozen=True, slots=True)
class SeasonEnded:
    season: SeasonRow
    top: tuple[Standing, ...]  # by season stars, ties by user id; members who left excluded (§17.1)


_COLUMNS = "season_id, name, starts_at, ends_at, ended_at"
_END_ACTIVE = text(
    f"""
    UPDATE seasons SET status = 'ended', ended_at = now()
     WHERE guild_id = :g AND status = 'active'
    RETURNING {_COLUMNS}
    """
)
_ACTIVE = text(f"SELECT {_COLUMNS} FROM seasons WHERE guild_id = :g AND status = 'active' FOR UPDATE")
_NAME_TAKEN = text("SELECT 1 FROM seasons WHERE guild_id = :g AND name = :n")
_START = text(
    f"""
    INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, created_by)
    VALUES (:g, :n, now(), COALESCE(CAST(:e AS timestamptz), now() + make_interval(days => :d)), 'active', :by)
    RETURNING {_COLUMNS}
    """
)
# §17.1 ranks over the members still in the guild with stars > 0; `rank()` is exactly "1 + members with a strictly
# higher value". The (season_id, stars DESC, user_id) index feeds the window in order, so LIMIT stops it early.
_TOP = text(
    """
    SELECT s.user_id, m.display_name, s.stars, rank() OVER (ORDER BY s.stars DESC) AS rank
      FROM season_stats s
      JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
     WHERE s.season_id = :s AND s.stars > 0 AND m.left_at IS NULL
     ORDER BY s.stars DESC, s.user_id
     LIMIT :n
    """
)


_LIST = text(
    """
    SELECT season_id, name, status, starts_at, ends_at, ended_at, created_by, created_at
      FROM seasons WHERE guild_id = :g ORDER BY starts_at DESC, season_id DESC
    """
)
_LOCK = text(f"SELECT {_COLUMNS}, status FROM seasons WHERE guild_id = :g AND season_id = :s FOR UPDATE")
_RENAME = text(
    f"""
    UPDATE seasons SET name = COALESCE(CAST(:n AS varchar), name), ends_at = COALESCE(CAST(:e AS timestamptz), ends_at)
     WHERE guild_id = :g AND season_id = :s
    RETURNING {_COLUMNS}
    """
)


def _season(row: object) -> SeasonRow:
    return SeasonRow(
        int(row.season_id),  # type: ignore[attr-defined]
        row.name,  # type: ignore[attr-defined]
        row.starts_at,  # type: ignore[attr-defined]
        row.ends_at,  # type: ignore[attr-defined]
        row.ended_at,  # type: ignore[attr-defined]
    )


def _snapshot(season: SeasonRow) -> dict[str, object]:
    return {
        "name": season.name,
        "starts_at": season.starts_at.isoformat(),
        "ends_at": season.ends_at.isoformat(),
        "ended_at": season.ended_at.isoformat() if season.ended_at else None,
    }


def name_problem(name: str) -> str | None:
    """Why a season name is unusable (after trimming), or None."""
    if not name.strip():
        return "must not be empty"
    if len(name.strip()) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    return None


def days_problem(days: int) -> str | None:
    return None if 1 <= days <= MAX_DAYS else f"must be between 1 and {MAX_DAYS}"


async def _end_active(s: AsyncSession, actor: Actor, guild_id: int, active: object) -> SeasonRow:
    """End the (locked) active season now and audit it, in the caller's transaction."""
    ended = _season((await s.execute(_END_ACTIVE, {"g": guild_id})).one())
    await record(
        s,
        actor,
        guild_id=guild_id,
        action="season.end",
        target_type="season",
        target_id=str(ended.season_id),
        before={"status": "active", **_snapshot(_season(active))},
        after={"status": "ended", **_snapshot(ended)},
    )
    return ended


class Seasons:
    """Manual season changes; built once by the runtime."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self,
        *,
        guild_id: int,
        name: str,
        actor: Actor,
        days: int,
        ends_at: datetime | None = None,
        replace_active: bool,
    ) -> SeasonStarted:
        """Start `name` now, lasting `days` (or until `ends_at`, which must be in the future)."""
        name = name.strip()
        for problem in (name_problem(name), days_problem(days)):
            if problem is not None:
                raise ValueError(problem)
        if ends_at is not None and ends_at <= datetime.now(UTC):
            raise ValueError("ends_at must be in the future")

        async def attempt() -> SeasonStarted:
            async with self._db.sessions.begin() as s:
                active = (await s.execute(_ACTIVE, {"g": guild_id})).first()
                if active is not None and not replace_active:
                    raise SeasonRejected("active_exists")
                if (await s.execute(_NAME_TAKEN, {"g": guild_id, "n": name})).first() is not None:
                    raise SeasonRejected("name_taken")
                ended = await _end_active(s, actor, guild_id, active) if active is not None else None
                params = {"g": guild_id, "n": name, "e": ends_at, "d": days, "by": actor.actor_id}
                try:
                    async with s.begin_nested():
                        started = _season((await s.execute(_START, params)).one())
                except IntegrityError as exc:  # a concurrent start won the one-active index or the name
                    raise SeasonRejected("concurrent_change") from exc
                await record(
                    s,
                    actor,
                    guild_id=guild_id,
                    action="season.start",
                    target_type="season",
                    target_id=str(started.season_id),
                    after={"status": "active", **_snapshot(started)},
                )
                await notify_config(s, "seasons", guild_id)
                return SeasonStarted(started, ended)

        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("season_start"))

    async def end(self, *, guild_id: int, actor: Actor, season_id: int | None = None) -> SeasonEnded:
        """End the active season now; `SeasonRejected('none_active')` if there is none. With `season_id` (the API)
        that season must be the active one: `unknown` when the guild has no such season, `not_active` when it
        has ended already."""

        async def attempt() -> SeasonEnded:
            async with self._db.sessions.begin() as s:
                active = (await s.execute(_ACTIVE, {"g": guild_id})).first()
                if season_id is not None and (active is None or active.season_id != season_id):
                    known = (await s.execute(_LOCK, {"g": guild_id, "s": season_id})).first() is not None
                    raise SeasonRejected("not_active" if known else "unknown")
                if active is None:
                    raise SeasonRejected("none_active")
                ended = await _end_active(s, actor, guild_id, active)
                await notify_config(s, "seasons", guild_id)
                top = await s.execute(_TOP, {"s": ended.season_id, "n": TOP_ON_END})
                standings = (Standing(int(r.user_id), r.display_name, int(r.stars), int(r.rank)) for r in top)
                return SeasonEnded(ended, tuple(standings))

        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("season_end"))

    async def update(
        self, *, guild_id: int, season_id: int, actor: Actor, name: str | None = None, ends_at: datetime | None = None
    ) -> SeasonRow:
        """Rename a season and/or move the end of the ACTIVE season (SPEC §20: `ends_at` > now, active only).

        A new `ends_at` reaches the rollover task through the `seasons` NOTIFY like any other season change.
        """
        if name is not None:
            name = name.strip()
            if (problem := name_problem(name)) is not None:
                raise ValueError(problem)
        if ends_at is not None and ends_at <= datetime.now(UTC):
            raise ValueError("ends_at must be in the future")

        async def attempt() -> SeasonRow:
            async with self._db.sessions.begin() as s:
                found = (await s.execute(_LOCK, {"g": guild_id, "s": season_id})).first()
                if found is None:
                    raise SeasonRejected("unknown")
                if ends_at is not None and found.status != "active":
                    raise SeasonRejected("not_active")
                taken = name is not None and name != found.name
                if taken and (await s.execute(_NAME_TAKEN, {"g": guild_id, "n": name})).first() is not None:
                    raise SeasonRejected("name_taken")
                params = {"g": guild_id, "s": season_id, "n": name, "e": ends_at}
                try:
                    async with s.begin_nested():
                        updated = _season((await s.execute(_RENAME, params)).one())
                except IntegrityError as exc:  # the name committed concurrently
                    raise SeasonRejected("name_taken") from exc
                await record(
                    s,
                    actor,
                    guild_id=guild_id,
                    action="season.update",
                    target_type="season",
                    target_id=str(season_id),
                    before={"status": found.status, **_snapshot(_season(found))},
                    after={"status": found.status, **_snapshot(updated)},
                )
                await notify_config(s, "seasons", guild_id)
                return updated

        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("season_update"))


async def list_seasons(conn: AsyncConnection, guild_id: int) -> list[dict[str, object]]:
    """Every season of the guild, newest first (a small bounded collection, SPEC §18)."""
    return [dict(r._mapping) for r in await conn.execute(_LIST, {"g": guild_id})]
