"""Public, unauthenticated guild endpoints (SPEC §19). Thin: parse, read cache or one query, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final

import asyncpg
from pydantic import BaseModel, Field, create_model
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.middleware import CLIENT_IP
from synapse_async.api.schema import GuildPath, NoParams, ResponseModel, Snowflake, UtcTime
from synapse_async.rewards.config import GuildConfig
from synapse_async.settings import REGISTRY, to_json

api = Api()
_TAG: Final = "public"
CACHE_HEADERS: Final = {"Cache-Control": "public, max-age=10"}


class SeasonRef(ResponseModel):
    id: str
    name: str
    starts_at: UtcTime
    ends_at: UtcTime


def public_guild(call: Call[Any, Any, Any]) -> GuildConfig:
    """The guild of the path, or 404 when unknown, left, or its public API is disabled."""
    guild = call.platform.components.require_cache().guild(call.path.guild_id)
    if guild.info is None or guild.info.left or not guild.settings.bool("public_api.enabled"):
        raise ApiError.not_found("Unknown guild.")
    return guild


def public_read(call: Call[Any, Any, Any]) -> AbstractAsyncContextManager[AsyncConnection]:
    """The only way a public handler reads: the public pool and gate, on behalf of the request's client IP."""
    return call.platform.public_read(call.request.get(CLIENT_IP) or "unknown")


@asynccontextmanager
async def public_driver(call: Call[Any, Any, Any]) -> AsyncIterator[asyncpg.Connection]:
    """`public_read`'s connection as the asyncpg driver's own, for a hot read that is one statement.

    A statement run here is prepared once per connection and runs outside any transaction (a single statement is
    its own snapshot): no `BEGIN`/`ROLLBACK` round trips and no SQLAlchemy compile and result layers. On the
    public profile's cache-miss path those were most of its cost (issue 27, `bench/api.py`)."""
    async with public_read(call) as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        yield driver


def public_reply(body: BaseModel) -> Reply:
    return Reply(body, headers=CACHE_HEADERS)


def icon_url(cdn: str, guild_id: int, icon_hash: str | None) -> str | None:
    if not icon_hash:
        return None
    ext = "gif" if icon_hash.startswith("a_") else "png"
    return f"{cdn}/icons/{guild_id}/{icon_hash}.{ext}"


def season_ref(guild: GuildConfig) -> SeasonRef | None:
    season = guild.active_season
    if season is None:
        return None
    return SeasonRef(id=str(season.season_id), name=season.name, starts_at=season.starts_at, ends_at=season.ends_at)


# The public settings (§5.2 `public`) as one model generated from the registry, so the document lists each key.
_PUBLIC_KEYS: Final = tuple(key for key, d in REGISTRY.items() if d.public)
PublicSettings: type[ResponseModel] = create_model(  # type: ignore[call-overload]
    "PublicSettings",
    __base__=ResponseModel,
    guild_name=(str, ...),
    icon_url=(str | None, ...),
    **{key.replace(".", "__"): (Any, Field(alias=key)) for key in _PUBLIC_KEYS},
)


@api.route(
    "GET", "/api/guilds/{guild_id}/settings", summary="Public settings", tag=_TAG, access=Access.PUBLIC,
    path_model=GuildPath, guard=public_guild, response=PublicSettings,
)  # fmt: skip
async def public_settings(call: Call[GuildPath, NoParams, None]) -> Reply:
    """The public settings (§5.2) plus the guild's name and icon."""
    guild = public_guild(call)
    assert guild.info is not None
    values = {key: to_json(key, guild.settings.raw(key)) for key in _PUBLIC_KEYS}
    body = {
        "guild_name": guild.info.name,
        "icon_url": icon_url(call.platform.config.discord_cdn_url, guild.guild_id, guild.info.icon_hash),
    }
    return public_reply(PublicSettings.model_validate(body | values))


_METRICS_SQL = text(
    """
    SELECT count(*) AS members,
           coalesce(sum(xp), 0)::bigint AS total_xp,
           coalesce(sum(gold), 0)::bigint AS total_gold,
           coalesce(sum(lifetime_stars), 0)::bigint AS total_stars,
           count(*) FILTER (WHERE last_active_at > now() - interval '7 days') AS active_7d,
           count(*) FILTER (WHERE last_active_at > now() - interval '30 days') AS active_30d,
           coalesce(max(level), 1) AS top_level,
           (SELECT count(*) FROM member_achievements ma
              JOIN members p ON p.guild_id = ma.guild_id AND p.user_id = ma.user_id AND p.left_at IS NULL
             WHERE ma.guild_id = :g) AS achievements_earned
      FROM members
     WHERE guild_id = :g AND left_at IS NULL
    """
)


class Metrics(ResponseModel):
    guild_id: Snowflake
    guild_name: str
    members: int
    total_xp: int
    total_gold: int
    total_stars: int
    active_members_7d: int
    active_members_30d: int
    top_level: int
    achievements_earned: int
    season: SeasonRef | None


@api.route(
    "GET", "/api/guilds/{guild_id}/metrics", summary="Guild totals", tag=_TAG, access=Access.PUBLIC,
    path_model=GuildPath, guard=public_guild, response=Metrics,
)  # fmt: skip
async def public_metrics(call: Call[GuildPath, NoParams, None]) -> Reply:
    """Members, totals, activity ("active" uses `last_active_at`), top level, badges earned, the season: all of
    members still in the guild (a badge of a member who left is not counted)."""
    guild = public_guild(call)
    async with public_read(call) as conn:
        return public_reply(await guild_metrics(conn, guild))


async def guild_metrics(conn: AsyncConnection, guild: GuildConfig) -> Metrics:
    """The totals of one served guild; the public twin and the console's overview (`admin_metrics`) read this."""
    assert guild.info is not None
    row = (await conn.execute(_METRICS_SQL, {"g": guild.guild_id})).one()
    return Metrics(
        guild_id=guild.guild_id,
        guild_name=guild.info.name,
        members=row.members,
        total_xp=row.total_xp,
        total_gold=row.total_gold,
        total_stars=row.total_stars,
        active_members_7d=row.active_7d,
        active_members_30d=row.active_30d,
        top_level=row.top_level,
        achievements_earned=row.achievements_earned,
        season=season_ref(guild),
    )
