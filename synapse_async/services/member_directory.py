"""The admin's view of members (SPEC §20 members rows): search, detail, full journal and gold ledger.

Reads only. The search is a case-insensitive substring of the display name with LIKE wildcards escaped (so `50%`
finds "50%", not everyone), served by the `pg_trgm` index on `display_name`, or an exact user id when the term
is a snowflake. Sort columns come from a fixed map, never from input. Members who left are included and flagged:
an admin may need to look at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.domain.snowflakes import parse_snowflake
from synapse_async.services.members import is_known_member

MemberSort = Literal["xp", "gold", "level", "stars", "name"]

_ORDER: Final[dict[MemberSort, str]] = {
    "xp": "xp DESC, user_id",
    "gold": "gold DESC, user_id",
    "level": "level DESC, xp DESC, user_id",
    "stars": "lifetime_stars DESC, user_id",
    "name": "lower(display_name), user_id",
}
MEMBER_COLUMNS: Final = (
    "user_id, display_name, avatar_hash, xp, level, peak_level, gold, lifetime_stars, messages_sent, "
    "reactions_given, reactions_received, threads_created, voice_minutes, github_username, joined_at, left_at, "
    "last_active_at, created_at, updated_at"
)


def like_pattern(term: str) -> str:
    """`term` as a LIKE substring pattern with `\\`, `%` and `_` taken literally (ESCAPE '\\')."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Rows:
    """One page of rows (as mappings) and the total number of matches."""

    items: list[dict[str, Any]]
    total: int


def _rows(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row._mapping.items() if k != "total"} for row in result]


def _total(result_rows: Sequence[Any]) -> int | None:
    return int(result_rows[0].total) if result_rows else None


async def _page(conn: AsyncConnection, page_sql: Any, count_sql: Any, params: dict[str, Any]) -> Rows:
    rows = (await conn.execute(page_sql, params)).all()
    total = _total(rows)
    if total is None:  # an empty page: the count may still be non-zero (a page past the end)
        total = int((await conn.execute(count_sql, params)).scalar_one())
    return Rows(_rows(rows), total)


async def search_members(
    conn: AsyncConnection, guild_id: int, *, q: str | None, sort: MemberSort, limit: int, offset: int
) -> Rows:
    """Members matching `q` (name substring or exact id), sorted, one page."""
    where = ["guild_id = :g"]
    params: dict[str, Any] = {"g": guild_id, "limit": limit, "offset": offset}
    if q:
        match = ["display_name ILIKE :pattern ESCAPE '\\'"]
        params["pattern"] = like_pattern(q)
        user_id = parse_snowflake(q.strip())
        if user_id is not None:
            match.append("user_id = :uid")
            params["uid"] = user_id
        where.append("(" + " OR ".join(match) + ")")
    condition = " AND ".join(where)  # only the fixed clauses above; values are bound
    page_sql = text(
        f"SELECT {MEMBER_COLUMNS}, count(*) OVER () AS total FROM members WHERE {condition} "
        f"ORDER BY {_ORDER[sort]} LIMIT :limit OFFSET :offset"
    )
    count_sql = text(f"SELECT count(*) FROM members WHERE {condition}")
    return await _page(conn, page_sql, count_sql, params)


_MEMBER = text(f"SELECT {MEMBER_COLUMNS} FROM members WHERE guild_id = :g AND user_id = :u")
_PREFERENCES = text(
    """
    SELECT announce_level_up, announce_achievements, announce_awards
      FROM member_preferences WHERE guild_id = :g AND user_id = :u
    """
)
_SEASON_STATS = text(
    """
    SELECT s.season_id, s.name, s.status, st.stars, st.xp, st.gold_earned, st.messages_sent, st.reactions_given,
           st.reactions_received, st.threads_created, st.voice_minutes
      FROM season_stats st JOIN seasons s ON s.guild_id = st.guild_id AND s.season_id = st.season_id
     WHERE st.guild_id = :g AND st.user_id = :u
     ORDER BY s.starts_at DESC, s.season_id DESC
    """
)
_BADGES = text(
    """
    SELECT a.template_id, t.name, t.is_hidden, a.earned_at, a.source, a.granted_by, a.journal_id
      FROM member_achievements a JOIN achievement_templates t ON t.guild_id = a.guild_id AND t.id = a.template_id
     WHERE a.guild_id = :g AND a.user_id = :u
     ORDER BY a.earned_at DESC, a.template_id DESC
    """
)
DEFAULT_PREFERENCES: Final = {"announce_level_up": True, "announce_achievements": True, "announce_awards": True}


@dataclass(frozen=True, slots=True)
class MemberDetail:
    member: dict[str, Any]
    preferences: dict[str, Any]
    seasons: list[dict[str, Any]]
    achievements: list[dict[str, Any]]


async def member_detail(conn: AsyncConnection, guild_id: int, user_id: int) -> MemberDetail | None:
    """The member row, preferences (defaults when never set), season stats and every earned badge."""
    params = {"g": guild_id, "u": user_id}
    row = (await conn.execute(_MEMBER, params)).first()
    if row is None:
        return None
    prefs = (await conn.execute(_PREFERENCES, params)).first()
    return MemberDetail(
        dict(row._mapping),
        dict(prefs._mapping) if prefs is not None else dict(DEFAULT_PREFERENCES),
        _rows(await conn.execute(_SEASON_STATS, params)),
        _rows(await conn.execute(_BADGES, params)),
    )


_JOURNAL = text(
    """
    SELECT id, event_type, idempotency_key, season_id, channel_id, counterpart_id, ref_id, xp_delta, star_delta,
           zero_reason, actor_id, details, occurred_at, recorded_at, count(*) OVER () AS total
      FROM reward_journal WHERE guild_id = :g AND user_id = :u
     ORDER BY occurred_at DESC, id DESC LIMIT :limit OFFSET :offset
    """
).columns(details=JSONB)
_JOURNAL_COUNT = text("SELECT count(*) FROM reward_journal WHERE guild_id = :g AND user_id = :u")
_LEDGER = text(
    """
    SELECT id, delta, balance_after, reason, journal_id, actor_id, idempotency_key, note, created_at,
           count(*) OVER () AS total
      FROM gold_ledger WHERE guild_id = :g AND user_id = :u
     ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset
    """
)
_LEDGER_COUNT = text("SELECT count(*) FROM gold_ledger WHERE guild_id = :g AND user_id = :u")


async def _member_rows(
    conn: AsyncConnection, page_sql: Any, count_sql: Any, guild_id: int, user_id: int, limit: int, offset: int
) -> Rows | None:
    params = {"g": guild_id, "u": user_id, "limit": limit, "offset": offset}
    if not await is_known_member(conn, guild_id, user_id):
        return None
    return await _page(conn, page_sql, count_sql, params)


async def member_journal(conn: AsyncConnection, guild_id: int, user_id: int, *, limit: int, offset: int) -> Rows | None:
    """Full `reward_journal` rows of the member, newest first; None for an unknown member."""
    return await _member_rows(conn, _JOURNAL, _JOURNAL_COUNT, guild_id, user_id, limit, offset)


async def member_ledger(conn: AsyncConnection, guild_id: int, user_id: int, *, limit: int, offset: int) -> Rows | None:
    """Full `gold_ledger` rows of the member, newest first; None for an unknown member."""
    return await _member_rows(conn, _LEDGER, _LEDGER_COUNT, guild_id, user_id, limit, offset)
