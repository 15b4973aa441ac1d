"""Member rows outside the reward path: profile refresh (SPEC §7.1 member update) and "is this a known member"."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

_REFRESH = text(
    """
    UPDATE members SET display_name = :name, avatar_hash = :avatar, updated_at = now()
     WHERE guild_id = :g AND user_id = :u
       AND (display_name, avatar_hash) IS DISTINCT FROM (:name, :avatar)
    """
)


async def refresh_profile(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, user_id: int, display_name: str, avatar_hash: str | None
) -> bool:
    """Update the stored name/avatar if a member row exists and differs; True when a row changed."""
    async with sessions.begin() as s:
        result = await s.execute(
            _REFRESH, {"g": guild_id, "u": user_id, "name": display_name[:100], "avatar": avatar_hash}
        )
        return bool(getattr(result, "rowcount", 0))


_KNOWN = text("SELECT 1 FROM members WHERE guild_id = :g AND user_id = :u")


async def is_known_member(conn: AsyncConnection, guild_id: int, user_id: int) -> bool:
    """Whether the bot has a member row for the user in this guild (the admin API's award/grant target check)."""
    return (await conn.execute(_KNOWN, {"g": guild_id, "u": user_id})).first() is not None
