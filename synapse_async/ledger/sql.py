"""The ledger engine's SQL (SPEC §10.2, §10.3, §12.4): atomic increments only, never read-modify-write.

Each statement has a keyword-argument helper with ONE parameter order — guild first, then season, member, the
rest — so no caller ever has to remember that `$3` of one statement is the guild and `$1` of another the season.
Services and jobs that move money or levels call these helpers (or the engine), never the raw strings with
positional arguments. Statements are asyncpg's: prepared once per connection and cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from synapse_async.ledger.state import Preferences

MEMBER_COLUMNS = (
    "xp, level, peak_level, gold, lifetime_stars, messages_sent, reactions_given, reactions_received,"
    " threads_created, voice_minutes"
)
"""The member row every writer gets back after an update: what the level change and achievements read."""
SEASON_COLUMNS = (
    "stars AS s_stars, xp AS s_xp, messages_sent AS s_messages_sent, reactions_given AS s_reactions_given,"
    " reactions_received AS s_reactions_received, threads_created AS s_threads_created,"
    " voice_minutes AS s_voice_minutes"
)

# Level change (SPEC §10.2): the level columns and the bonus gold in one atomic update of the locked row.
_LEVEL_UPDATE = """
UPDATE members SET level = $3, peak_level = GREATEST(peak_level, $4), gold = gold + $5, updated_at = now()
 WHERE guild_id = $1 AND user_id = $2
RETURNING gold
"""
_JOURNAL = """
INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, season_id, xp_delta, star_delta,
                            details, occurred_at, actor_id)
VALUES ($1, $2, $3, $4, $5, $6, 0, $7::jsonb, $8, $9)
ON CONFLICT (guild_id, idempotency_key) DO NOTHING
RETURNING id
"""
_LEDGER = """
INSERT INTO gold_ledger (guild_id, user_id, delta, balance_after, reason, journal_id, actor_id, idempotency_key, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (guild_id, idempotency_key) DO NOTHING
"""
_SEASON_GOLD = """
INSERT INTO season_stats AS ss (guild_id, season_id, user_id, gold_earned) VALUES ($1, $2, $3, $4)
ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET gold_earned = ss.gold_earned + EXCLUDED.gold_earned
"""
_SEASON_XP = """
INSERT INTO season_stats AS ss (guild_id, season_id, user_id, xp) VALUES ($1, $2, $3, GREATEST($4::bigint, 0))
ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET xp = GREATEST(ss.xp + $4::bigint, 0)
"""
_PREFERENCES = """
SELECT announce_level_up, announce_achievements, announce_awards FROM member_preferences
 WHERE guild_id = $1 AND user_id = $2
"""
_EARNED = "SELECT template_id FROM member_achievements WHERE guild_id = $1 AND user_id = $2"
_COUNTERS = """
SELECT event_type, period, count FROM event_counters
 WHERE guild_id = $1 AND user_id = $2 AND (event_type, period) IN (SELECT * FROM unnest($3::text[], $4::text[]))
"""
_SEASON_ROW = f"SELECT {SEASON_COLUMNS} FROM season_stats WHERE guild_id = $1 AND season_id = $2 AND user_id = $3"
# max_earners claimed atomically (SPEC §12.3): concurrent earners can never exceed it.
_CLAIM_TEMPLATE = """
UPDATE achievement_templates SET earned_count = earned_count + 1, updated_at = now()
 WHERE guild_id = $1 AND id = $2 AND active AND (max_earners IS NULL OR earned_count < max_earners)
RETURNING id
"""
_RECORD_BADGE = """
INSERT INTO member_achievements (guild_id, user_id, template_id, source, granted_by, journal_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING template_id
"""
_ADD_XP_GOLD = f"""
UPDATE members SET xp = xp + $3, gold = gold + $4, updated_at = now() WHERE guild_id = $1 AND user_id = $2
RETURNING {MEMBER_COLUMNS}
"""


async def set_level(
    conn: asyncpg.Connection, *, guild_id: int, user_id: int, level: int, peak: int, gold_bonus: int
) -> int:
    """Write a level change (the peak only rises) and its bonus gold; return the gold balance afterwards."""
    return int(await conn.fetchval(_LEVEL_UPDATE, guild_id, user_id, level, peak, gold_bonus))


async def journal(
    conn: asyncpg.Connection,
    *,
    guild_id: int,
    user_id: int,
    event_type: str,
    key: str,
    season_id: int | None,
    xp_delta: int,
    details: Mapping[str, Any],
    occurred_at: datetime,
    actor_id: str | None = None,
) -> int | None:
    """A keyed journal row without stars; None when `key` is already journaled (the idempotency gate)."""
    journal_id = await conn.fetchval(
        _JOURNAL, guild_id, user_id, event_type, key, season_id, xp_delta, json.dumps(details), occurred_at, actor_id
    )
    return int(journal_id) if journal_id is not None else None


async def gold_entry(
    conn: asyncpg.Connection,
    *,
    guild_id: int,
    user_id: int,
    delta: int,
    balance_after: int,
    reason: str,
    key: str,
    journal_id: int | None = None,
    actor_id: str | None = None,
    note: str | None = None,
) -> bool:
    """A keyed gold-ledger row; False when `key` was already there (a concurrent duplicate committed first)."""
    status = await conn.execute(
        _LEDGER, guild_id, user_id, delta, balance_after, reason, journal_id, actor_id, key, note
    )
    return not str(status).endswith(" 0")


async def season_gold(conn: asyncpg.Connection, *, guild_id: int, season_id: int, user_id: int, gold: int) -> None:
    await conn.execute(_SEASON_GOLD, guild_id, season_id, user_id, gold)


async def season_xp(conn: asyncpg.Connection, *, guild_id: int, season_id: int, user_id: int, xp: int) -> None:
    """Season XP moves with the member's XP but never below 0 (a revoke or negative award, SPEC §10.3)."""
    await conn.execute(_SEASON_XP, guild_id, season_id, user_id, xp)


async def preferences(conn: asyncpg.Connection, *, guild_id: int, user_id: int) -> Preferences:
    row = await conn.fetchrow(_PREFERENCES, guild_id, user_id)
    return Preferences() if row is None else Preferences(bool(row[0]), bool(row[1]), bool(row[2]))


async def earned_template_ids(conn: asyncpg.Connection, *, guild_id: int, user_id: int) -> frozenset[int]:
    return frozenset(int(r["template_id"]) for r in await conn.fetch(_EARNED, guild_id, user_id))


async def counters(
    conn: asyncpg.Connection, *, guild_id: int, user_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The member's event counters for the given (event type, period) keys; missing keys are simply absent."""
    wanted = list(keys)
    if not wanted:
        return {}
    rows = await conn.fetch(_COUNTERS, guild_id, user_id, [k[0] for k in wanted], [k[1] for k in wanted])
    return {(r["event_type"], r["period"]): int(r["count"]) for r in rows}


async def season_row(conn: asyncpg.Connection, *, guild_id: int, season_id: int, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_SEASON_ROW, guild_id, season_id, user_id)


async def claim_template(conn: asyncpg.Connection, *, guild_id: int, template_id: int) -> bool:
    """Take one `earned_count` slot of an active template; False when it is full or deactivated."""
    return await conn.fetchval(_CLAIM_TEMPLATE, guild_id, template_id) is not None


async def record_badge(
    conn: asyncpg.Connection,
    *,
    guild_id: int,
    user_id: int,
    template_id: int,
    source: str,
    granted_by: str | None,
    journal_id: int,
) -> bool:
    """The member's badge row; False when they already had it."""
    return (
        await conn.fetchval(_RECORD_BADGE, guild_id, user_id, template_id, source, granted_by, journal_id) is not None
    )


async def add_xp_gold(
    conn: asyncpg.Connection, *, guild_id: int, user_id: int, xp: int, gold: int
) -> asyncpg.Record | None:
    """Atomic increments of a member's XP and gold; the member row afterwards (`MEMBER_COLUMNS`)."""
    return await conn.fetchrow(_ADD_XP_GOLD, guild_id, user_id, xp, gold)
