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
goes through this module: the SQL helpers (`higher_count`, `ranked_count`, `top`, and `xp_higher_sql` /
`xp_ranked_sql` for a rank read in the same statement as the member's row).

Lifetime XP, the board of every profile (API, pages, `/profile`, `/rank`, the card), is not counted per request
(issue 27: a count is a scan of up to the whole guild, 1,000,000 index entries at a million members). The table
`xp_rank_counts` holds, per guild, how many ranked members sit under each node of a fixed 4-level radix tree over
the XP value (`RANK_BITS` bits per level): level 0 counts each exact value, level k counts `xp >> 8k`. Triggers on
`members` (migration 0011) keep it in the transaction that changes a member, so it is exact at every commit and
in every process. "Members strictly above v" is then the sum of at most 255 sibling nodes per level
(`higher_ranges`): a few hundred index entries at most, whatever the guild's size.
"""

from __future__ import annotations

from collections.abc import Sequence
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


# --------------------------------------------------------------------------------------------------- XP counts

RANK_BITS = 8
"""Bits of the XP value per level of `xp_rank_counts`: 256 children per node (migration 0011 holds a copy)."""
RANK_LEVELS = 4
"""Levels 0..3; the top level (`xp >> 24`) is open-ended, so any bigint value has a node on every level."""
_FANOUT = (1 << RANK_BITS) - 1


def node_keys(value: int) -> list[tuple[int, int]]:
    """The (level, key) nodes a ranked member with `value` is counted under, one per level."""
    return [(level, value >> (RANK_BITS * level)) for level in range(RANK_LEVELS)]


def higher_ranges(value: int) -> list[tuple[int, int, int | None]]:
    """(level, key above, last key or None) per level: the nodes whose members all have a value > `value`.

    A higher value x differs from `value` first (from the top) on some level k: x's key there is above value's and
    both share the key of level k + 1, so x is counted once, by a right sibling of value's node on level k (the top
    level has no parent: every key above). Each range holds at most 255 keys, so a rank reads at most
    255 × 3 + the top level's few keys. `xp_higher_sql` is the same ranges in SQL."""
    ranges: list[tuple[int, int, int | None]] = []
    for level in range(RANK_LEVELS):
        key = value >> (RANK_BITS * level)
        ranges.append((level, key, key | _FANOUT if level < RANK_LEVELS - 1 else None))
    return ranges


def xp_higher_sql(guild: str, value: str) -> str:
    """A scalar subquery: ranked members of guild `guild` with lifetime XP strictly above `value` (SQL expressions,
    e.g. `m.guild_id`, `m.xp` or bound parameters), summed from `xp_rank_counts` over `higher_ranges`.

    Used inside the statement that reads the member, so the value and the counts are of one snapshot: a rank
    never mixes a member's old XP with counts that already hold the new one."""
    arms = []
    for level in range(RANK_LEVELS):
        key = f"(CAST({value} AS bigint) >> {RANK_BITS * level})"
        upper = f" AND c.key <= ({key} | {_FANOUT})" if level < RANK_LEVELS - 1 else ""
        arms.append(
            f"SELECT c.members FROM xp_rank_counts c"
            f" WHERE c.guild_id = {guild} AND c.level = {level} AND c.key > {key}{upper}"
        )
    return f"(SELECT coalesce(sum(h.members), 0) FROM ({' UNION ALL '.join(arms)}) AS h)"


def xp_ranked_sql(guild: str) -> str:
    """A scalar subquery: `of` of the lifetime XP board (members still in the guild with XP > 0) = the sum of
    the top level's few nodes."""
    return (
        f"(SELECT coalesce(sum(c.members), 0) FROM xp_rank_counts c"
        f" WHERE c.guild_id = {guild} AND c.level = {RANK_LEVELS - 1})"
    )


_XP_HIGHER = text(f"SELECT {xp_higher_sql(':g', ':v')}")
_XP_RANKED = text(f"SELECT {xp_ranked_sql(':g')}")
_XP_ROW = text(
    f"""
    SELECT m.user_id, m.display_name, m.avatar_hash, m.level, m.xp, m.xp AS value,
           {xp_higher_sql("m.guild_id", "m.xp")} AS higher
      FROM members m WHERE m.guild_id = :g AND m.user_id = :u AND m.left_at IS NULL AND m.xp > 0
    """
)


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


def _params(board: RankBoard, **more: int) -> dict[str, int | None]:
    return {"g": board.guild_id, "s": board.season_id, **more}


def _is_lifetime_xp(board: RankBoard) -> bool:
    return board.season_id is None and board.currency == "xp"


async def higher_count(conn: AsyncConnection, board: RankBoard, value: int) -> int:
    """Ranked members with a value strictly above `value`: from `xp_rank_counts` for lifetime XP, else an
    index-only scan that stops at `value`."""
    if _is_lifetime_xp(board):
        sql = _XP_RANKED if value <= 0 else _XP_HIGHER
        return int((await conn.execute(sql, {"g": board.guild_id, "v": value})).scalar_one())
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
    if _is_lifetime_xp(board):
        # The row and the members above it in one statement (one snapshot).
        row = (await conn.execute(_XP_ROW, {"g": board.guild_id, "u": user_id})).first()
        return None if row is None else _row(1 + int(row.higher), row)
    row = (await conn.execute(_top_sql(board, one=True), _params(board, u=user_id, n=1, o=0))).first()
    if row is None:
        return None
    return _row(1 + await higher_count(conn, board, int(row.value)), row)


def _row(rank: int, r: Any) -> RankedRow:
    return RankedRow(rank, int(r.user_id), r.display_name, r.avatar_hash, int(r.value), int(r.level), int(r.xp))
