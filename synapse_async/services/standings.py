"""Read models for members: the `/profile` card and the leaderboards (SPEC §17.1, §17.2).

Ranks come from `services.ranks`, the one §17.1 definition. The profile's lifetime-XP rank and `of` are read in
the member's own statement from `xp_rank_counts` (a few hundred count nodes at most, whatever the guild's size).
Leaderboards are index scans: `1 + count(strictly higher)` from the (guild, value DESC, user_id) indexes of
`members` and (season, value DESC, user_id) of `season_stats`, so their cost grows with the viewer's rank
(`tests/integration/test_standings_plans.py` checks the plans with EXPLAIN on 100,000 rows). Members who left,
and members whose value is 0, are not ranked (§17.1).

Reads are retried on transient faults like writes are (they change nothing, so retrying is always safe); a
database that stays away surfaces as `DatabaseUnavailable`, which the command layer answers with the busy reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.services.ranks import (
    Currency,
    RankBoard,
    page_ranks,
    rank_from_higher,
    rank_of,
    top,
    xp_higher_sql,
    xp_ranked_sql,
)

Scope = Literal["season", "lifetime"]

RECENT_BADGES = 5


# The viewer's own value on a board (the columns `services.ranks` ranks by).
_LIFETIME_VALUE: dict[Currency, str] = {"xp": "xp", "stars": "lifetime_stars", "gold": "gold"}
_SEASON_VALUE: dict[Currency, TextClause] = {
    "xp": text("SELECT xp FROM season_stats WHERE season_id = :s AND user_id = :u"),
    "stars": text("SELECT stars FROM season_stats WHERE season_id = :s AND user_id = :u"),
    "gold": text("SELECT gold_earned FROM season_stats WHERE season_id = :s AND user_id = :u"),
}


@dataclass(frozen=True, slots=True)
class SeasonLine:
    season_id: int
    name: str
    ends_at: datetime
    stars: int
    xp: int
    messages_sent: int
    reactions_given: int
    reactions_received: int
    voice_minutes: int


@dataclass(frozen=True, slots=True)
class Badge:
    """One earned achievement as the viewer may see it: a hidden one is masked for everyone but its earner."""

    template_id: int
    name: str
    rarity_emoji: str | None
    earned_at: datetime
    masked: bool


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: int
    display_name: str
    avatar_hash: str | None
    xp: int
    level: int
    gold: int
    lifetime_stars: int
    github_username: str | None
    rank: int | None  # None: not ranked (left, or 0 XP)
    ranked: int  # N of "#r of N"
    season: SeasonLine | None
    badge_count: int
    recent_badges: tuple[Badge, ...]


@dataclass(frozen=True, slots=True)
class BoardRow:
    rank: int
    user_id: int
    display_name: str
    value: int
    level: int


@dataclass(frozen=True, slots=True)
class Board:
    currency: Currency
    scope: Scope
    season_name: str | None
    rows: tuple[BoardRow, ...]
    viewer_rank: int | None


_MEMBER = text(
    """
    SELECT user_id, display_name, avatar_hash, xp, level, gold, lifetime_stars, github_username, left_at
      FROM members WHERE guild_id = :g AND user_id = :u
    """
)
# Everything `/profile` shows in ONE statement (one snapshot, one round trip), run on the driver: the member with
# their lifetime XP rank and `of` (`services.ranks`: read from the count tree, no count of rows), the active
# season's line ($3 null: none), how many achievements they hold and the newest `RECENT_BADGES` ($4) as parallel
# arrays. Four statements through SQLAlchemy in a transaction before (issue 27: `bench/ranks.py`).
_PROFILE: Final = f"""
    SELECT m.user_id, m.display_name, m.avatar_hash, m.xp, m.level, m.gold, m.lifetime_stars, m.github_username,
           m.left_at, {xp_higher_sql("m.guild_id", "m.xp")} AS xp_higher, {xp_ranked_sql("m.guild_id")} AS xp_ranked,
           ss.user_id IS NOT NULL AS has_season, ss.stars, ss.xp AS season_xp, ss.messages_sent, ss.reactions_given,
           ss.reactions_received, ss.voice_minutes,
           (SELECT count(*) FROM member_achievements c WHERE c.guild_id = m.guild_id AND c.user_id = m.user_id)
               AS badge_count,
           b.ids, b.names, b.hidden, b.emojis, b.earned
      FROM members m
      LEFT JOIN season_stats ss ON ss.guild_id = m.guild_id AND ss.season_id = $3 AND ss.user_id = m.user_id
     CROSS JOIN LATERAL (
           SELECT array_agg(x.id ORDER BY x.earned_at DESC, x.id DESC) AS ids,
                  array_agg(x.name ORDER BY x.earned_at DESC, x.id DESC) AS names,
                  array_agg(x.is_hidden ORDER BY x.earned_at DESC, x.id DESC) AS hidden,
                  array_agg(x.emoji ORDER BY x.earned_at DESC, x.id DESC) AS emojis,
                  array_agg(x.earned_at ORDER BY x.earned_at DESC, x.id DESC) AS earned
             FROM (SELECT t.id, t.name, t.is_hidden, r.emoji, a.earned_at
                     FROM member_achievements a
                     JOIN achievement_templates t ON t.guild_id = a.guild_id AND t.id = a.template_id
                     LEFT JOIN achievement_rarities r ON r.guild_id = t.guild_id AND r.id = t.rarity_id
                    WHERE a.guild_id = m.guild_id AND a.user_id = m.user_id
                    ORDER BY a.earned_at DESC, t.id DESC
                    LIMIT $4) AS x) AS b
     WHERE m.guild_id = $1 AND m.user_id = $2
    """


def rank_rows(rows: Sequence[tuple[int, str, int, int]]) -> tuple[BoardRow, ...]:
    """Rows sorted by value DESC then user id, from the top → their §17.1 ranks (`services.ranks.page_ranks`)."""
    ranks = page_ranks([value for _, _, value, _ in rows], offset=0, first_rank=1)
    return tuple(BoardRow(r, u, n, v, lv) for r, (u, n, v, lv) in zip(ranks, rows, strict=True))


@dataclass(frozen=True, slots=True)
class SeasonRef:
    """The season a read is about (from the config cache: the active one)."""

    season_id: int
    name: str
    ends_at: datetime


class Standings:
    """Profile and leaderboard reads; built once by the runtime and shared by the commands (and the API)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _read(self, query: Any) -> Any:
        async def attempt() -> Any:
            async with self._db.engine.connect() as conn:
                return await query(conn)

        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("standings"))

    async def profile(self, *, guild_id: int, user_id: int, viewer_id: int, season: SeasonRef | None) -> Profile | None:
        """The member's card as `viewer_id` may see it, or None when the member has no row (never earned anything)."""

        async def attempt() -> Any:
            async with self._db.engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                season_id = season.season_id if season is not None else None
                return await driver.fetchrow(_PROFILE, guild_id, user_id, season_id, RECENT_BADGES)

        row = await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("standings"))
        if row is None:
            return None
        line: SeasonLine | None = None
        if season is not None:
            values = (
                (row["stars"], row["season_xp"], row["messages_sent"], row["reactions_given"],
                 row["reactions_received"], row["voice_minutes"])
                if row["has_season"] else (0, 0, 0, 0, 0, 0)
            )  # fmt: skip
            line = SeasonLine(season.season_id, season.name, season.ends_at, *(int(v) for v in values))
        badges = tuple(
            Badge(i, name, emoji, earned, masked=bool(hidden) and viewer_id != user_id)
            for i, name, hidden, emoji, earned in zip(
                row["ids"] or (),
                row["names"] or (),
                row["hidden"] or (),
                row["emojis"] or (),
                row["earned"] or (),
                strict=True,
            )
        )
        return Profile(
            user_id=int(row["user_id"]),
            display_name=row["display_name"],
            avatar_hash=row["avatar_hash"],
            xp=int(row["xp"]),
            level=int(row["level"]),
            gold=int(row["gold"]),
            lifetime_stars=int(row["lifetime_stars"]),
            github_username=row["github_username"],
            rank=rank_from_higher(int(row["xp_higher"]), int(row["xp"])) if row["left_at"] is None else None,
            ranked=int(row["xp_ranked"]),
            season=line,
            badge_count=int(row["badge_count"]),
            recent_badges=badges,
        )

    async def leaderboard(
        self,
        *,
        guild_id: int,
        currency: Currency,
        scope: Scope,
        season: SeasonRef | None,
        size: int,
        viewer_id: int,
    ) -> Board:
        """Top `size` by `currency` in `scope` (a season scope needs `season`), and the viewer's own rank."""
        if scope == "season" and season is None:
            raise ValueError("a season leaderboard needs a season")

        async def query(conn: AsyncConnection) -> Board:
            board = RankBoard(guild_id, currency, season.season_id if scope == "season" and season else None)
            rows = await top(conn, board, limit=size)
            mine = (await conn.execute(_MEMBER, {"g": guild_id, "u": viewer_id})).first()
            value = 0
            if mine is not None and mine.left_at is None:
                if board.season_id is None:
                    value = int(getattr(mine, _LIFETIME_VALUE[currency]))
                else:
                    params = {"s": board.season_id, "u": viewer_id}
                    value = int((await conn.execute(_SEASON_VALUE[currency], params)).scalar() or 0)
            lines = tuple(BoardRow(r.rank, r.user_id, r.display_name, r.value, r.level) for r in rows)
            viewer_rank = await rank_of(conn, board, value)
            name = season.name if board.season_id is not None and season else None
            return Board(currency, scope, name, lines, viewer_rank)

        board: Board = await self._read(query)
        return board
