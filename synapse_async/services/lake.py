"""Event-lake reads the gateway side needs (SPEC §7.4 step 3: a deleted message's author from `msg:<id>`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_AUTHOR = text("SELECT user_id FROM event_lake WHERE guild_id = :g AND source_key = :k")


class LakeAuthorLookup:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self, guild_id: int, message_id: int) -> int | None:
        async with self._engine.connect() as conn:
            value = (await conn.execute(_AUTHOR, {"g": guild_id, "k": f"msg:{message_id}"})).scalar()
        return int(value) if value is not None else None
