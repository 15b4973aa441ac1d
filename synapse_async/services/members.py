"""Member profile refresh (SPEC §7.1 member update): names and avatars follow Discord, only for known members."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
