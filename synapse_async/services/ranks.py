"""The one rank definition of the project (SPEC §17.1, §19), used by the commands, the public API, the web pages
and the rank card.

    rank(value) = 1 + the number of ranked members with a strictly higher value
    ranked      = members still in the guild (`left_at IS NULL`) whose value is > 0
    of          = the number of ranked members

Ties share a rank and are listed by user id; a member who left, or whose value is 0, has no rank (None) and is
not counted in `of`. A list page never numbers rows by position: a page that starts in the middle of a tie
shows the tie's rank (see `page_ranks`).

Issue 22 found three readings of this rule in three places (the public leaderboard numbered positions, the public
profile counted 0-XP members in `of`, percentages counted members who left). Everything that shows a rank now
goes through this module: the SQL helpers (`higher_count`, `ranked_count`, `top`) for exact answers on an index
scan, and `RankIndex`, the same rule over a cached sorted array for reads that must be cheap at 100,000 members
(the public profile, §25).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

Currency = Literal["xp", "stars", "gold"]

# The column each currency ranks by; fixed here, never taken from input.
_LIFETIME_COLUMN: dict[Currency, str] = {"xp": "xp", "stars": "lifetime_stars", "gold": "gold"}
_SEASON_COLUMN: dict[Currency, str] = {"xp": "xp", "stars": "stars", "gold": "gold_earned"}
# "This season row's member has left", answered from the partial index of members who left (migration 0002).
_LEFT = "SELECT 1 FROM members m WHERE m.guild_id = s.guild_id AND m.user_id = s.user_id AND m.left_at IS NOT NULL"


@dataclass(frozen=True, slots=True)
class RankBoard:
    """What is ranked: a currency over the guild's lifetime totals, or within one season (`season_id`)."""

    guild_id: int
    currency: Currency = "xp"
    season_id: int | None = None


@dataclass(frozen=True, slots=True)
class RankedRow:
    rank: int
    user_id: int
    display_name: str
    avatar_hash: str | None
    value: int
    level: int
    xp: int  # the member's lifetime XP (the level progress shown beside any board)


def rank_from_higher(higher: int, value: int) -> int | None:
    """§17.1 from the count of ranked members strictly above: None when the value itself is not ranked."""
    return higher + 1 if value > 0 else None


def page_ranks(values: Sequence[int], *, offset: int, first_rank: int) -> list[int]:
    """Ranks of a page of values sorted highest first that starts at `offset` (0-based) of the ranked list.

    `first_rank` is the rank of the page's first value (`1 + higher_count`); every later value is either equal
    to the one before it (same rank) or lower, and then every ranked member before it is strictly higher, so its
    rank is its position + 1."""
    ranks: list[int] = []
    for i, value in enumerate(values):
        if i == 0:
            ranks.append(first_rank)
        elif value == values[i - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(offset + i + 1)
    return ranks


# --------------------------------------------------------------------------------------------------- SQL


def _higher_sql(board: RankBoard) -> TextClause:
    if board.season_id is None:
        column = _LIFETIME_COLUMN[board.currency]
        return text(f"SELECT count(*) FROM members WHERE guild_id = :g AND left_at IS NULL AND {column} > :v")
    column = _SEASON_COLUMN[board.currency]
    return text(
        f"SELECT count(*) FROM season_stats s WHERE s.season_id = :s AND s.{column} > :v AND NOT EXISTS ({_LEFT})"
    )


def _top_sql(board: RankBoard, *, one: bool = False) -> TextClause:
    """A page of the ranked list, or with `one` the row of member :u if it is ranked at all."""
    if board.season_id is None:
        column = _LIFETIME_COLUMN[board.currency]
        only = "AND user_id = :u" if one else ""
        return text(
            f"""
            SELECT user_id, display_name, avatar_hash, level, xp, {column} AS value
              FROM members
             WHERE guild_id = :g AND left_at IS NULL AND {column} > 0 {only}
             ORDER BY {column} DESC, user_id
             LIMIT :n OFFSET :o
            """
        )
    column = _SEASON_COLUMN[board.currency]
    only = "AND s.user_id = :u" if one else ""
    return text(
        f"""
        SELECT s.user_id, m.display_name, m.avatar_hash, m.level, m.xp, s.{column} AS value
          FROM season_stats s
          JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
         WHERE s.season_id = :s AND m.guild_id = :g AND s.{column} > 0 AND m.left_at IS NULL {only}
         ORDER BY s.{column} DESC, s.user_id
         LIMIT :n OFFSET :o
        """
    )


def _values_sql(board: RankBoard) -> TextClause:
    if board.season_id is None:
        column = _LIFETIME_COLUMN[board.currency]
        return text(f"SELECT {column} FROM members WHERE guild_id = :g AND left_at IS NULL AND {column} > 0")
    column = _SEASON_COLUMN[board.currency]
    return text(
        f"SELECT s.{column} FROM season_stats s WHERE s.season_id = :s AND s.{column} > 0 AND NOT EXISTS ({_LEFT})"
    )


def _params(board: RankBoard, **more: int) -> dict[str, int | None]:
    return {"g": board.guild_id, "s": board.season_id, **more}


async def higher_count(conn: AsyncConnection, board: RankBoard, value: int) -> int:
    """Ranked members with a value strictly above `value` (an index-only scan that stops at `value`)."""
    return int((await conn.execute(_higher_sql(board), _params(board, v=value))).scalar_one())


async def rank_of(conn: AsyncConnection, board: RankBoard, value: int) -> int | None:
    """The rank of a member whose value is `value` (the caller passes 0 for a member who left)."""
    if value <= 0:
        return None
    return rank_from_higher(await higher_count(conn, board, value), value)


async def ranked_count(conn: AsyncConnection, board: RankBoard) -> int:
    """`of`: members still in the guild with a value > 0."""
    return await higher_count(conn, board, 0)


async def top(conn: AsyncConnection, board: RankBoard, *, limit: int, offset: int = 0) -> list[RankedRow]:
    """One page of the ranked list (value DESC, user id), each row with its §17.1 rank, ties across pages too."""
    rows = (await conn.execute(_top_sql(board), _params(board, n=limit, o=offset))).all()
    if not rows:
        return []
    first = 1 if offset == 0 else 1 + await higher_count(conn, board, int(rows[0].value))
    ranks = page_ranks([int(r.value) for r in rows], offset=offset, first_rank=first)
    return [_row(rank, r) for rank, r in zip(ranks, rows, strict=True)]


async def row_of(conn: AsyncConnection, board: RankBoard, user_id: int) -> RankedRow | None:
    """One member's row of the ranked list with its §17.1 rank (a tie shares it); None when the member is not
    ranked on this board (left, or value 0). The leaderboard's pinned "your row" reads this."""
    row = (await conn.execute(_top_sql(board, one=True), _params(board, u=user_id, n=1, o=0))).first()
    if row is None:
        return None
    return _row(1 + await higher_count(conn, board, int(row.value)), row)


def _row(rank: int, r: Any) -> RankedRow:
    return RankedRow(rank, int(r.user_id), r.display_name, r.avatar_hash, int(r.value), int(r.level), int(r.xp))


async def ranked_values(conn: AsyncConnection, board: RankBoard) -> list[int]:
    """Every ranked value of the board (for `RankIndex`)."""
    return [int(v) for v in (await conn.execute(_values_sql(board), _params(board))).scalars()]


# --------------------------------------------------------------------------------------------------- cached


@dataclass(slots=True)
class _Entry:
    values: array[int]
    loaded_at: float


class RankIndex:
    """§17.1 over a sorted array of a board's ranked values, reloaded at most once per `ttl` seconds.

    Counting the members above one member is a scan of up to the whole guild; at 100,000 members that made every
    public profile cost tens of milliseconds. Here a rank is a binary search. The arrays are bounded (an LRU of
    `max_boards`), a reload runs once however many requests wait for it, and a rank is at most `ttl` seconds old
    (within the public `max-age` anyway)."""

    def __init__(self, ttl: float, *, max_boards: int = 16, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_boards
        self._clock = clock
        self._entries: OrderedDict[RankBoard, _Entry] = OrderedDict()
        self._locks: dict[RankBoard, asyncio.Lock] = {}
        self.loads = 0

    async def rank(
        self, board: RankBoard, value: int, load: Callable[[], Awaitable[Iterable[int]]]
    ) -> tuple[int | None, int]:
        """(rank or None, of) of a member with `value`; `load` returns the board's ranked values (> 0, present)."""
        entry = self._entries.get(board)
        if entry is None or self._clock() - entry.loaded_at > self._ttl:
            lock = self._locks.setdefault(board, asyncio.Lock())
            async with lock:
                entry = self._entries.get(board)
                if entry is None or self._clock() - entry.loaded_at > self._ttl:
                    self.loads += 1
                    values = array("q", sorted(v for v in await load() if v > 0))
                    entry = _Entry(values, self._clock())
                    self._entries[board] = entry
                    if len(self._entries) > self._max:
                        evicted, _ = self._entries.popitem(last=False)
                        self._locks.pop(evicted, None)
        self._entries.move_to_end(board)
        values = entry.values
        higher = len(values) - bisect.bisect_right(values, value)
        return rank_from_higher(higher, value), len(values)
