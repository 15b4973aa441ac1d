"""Public, unauthenticated guild endpoints (SPEC §19). Thin: parse, read cache or one query, render."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import text

from synapse_async.api.errors import ApiError, parse_snowflake
from synapse_async.api.keys import COMPONENTS, CONFIG, DB_GATE
from synapse_async.domain.config import GuildConfig
from synapse_async.settings import REGISTRY, to_json
from synapse_async.timeutil import iso

routes = web.RouteTableDef()
_CACHE_HEADERS = {"Cache-Control": "public, max-age=10"}


def _public_guild(request: web.Request) -> GuildConfig:
    """The guild of the path, or 404 when unknown, left, or its public API is disabled."""
    guild_id = parse_snowflake(request.match_info["guild_id"], "guild_id")
    guild = request.app[COMPONENTS].require_cache().guild(guild_id)
    if guild.info is None or guild.info.left or not guild.settings.bool("public_api.enabled"):
        raise ApiError.not_found("Unknown guild.")
    return guild


def icon_url(cdn: str, guild_id: int, icon_hash: str | None) -> str | None:
    if not icon_hash:
        return None
    ext = "gif" if icon_hash.startswith("a_") else "png"
    return f"{cdn}/icons/{guild_id}/{icon_hash}.{ext}"


def _season_json(guild: GuildConfig) -> dict[str, Any] | None:
    season = guild.active_season
    if season is None:
        return None
    return {
        "id": str(season.season_id),
        "name": season.name,
        "starts_at": iso(season.starts_at),
        "ends_at": iso(season.ends_at),
    }


@routes.get("/api/guilds/{guild_id}/settings")
async def public_settings(request: web.Request) -> web.Response:
    guild = _public_guild(request)
    assert guild.info is not None
    values = {key: to_json(key, guild.settings.raw(key)) for key, d in REGISTRY.items() if d.public}
    body = {
        **values,
        "guild_name": guild.info.name,
        "icon_url": icon_url(request.app[CONFIG].discord_cdn_url, guild.guild_id, guild.info.icon_hash),
    }
    return web.json_response(body, headers=_CACHE_HEADERS)


_METRICS_SQL = text(
    """
    SELECT count(*) AS members,
           coalesce(sum(xp), 0)::bigint AS total_xp,
           coalesce(sum(gold), 0)::bigint AS total_gold,
           coalesce(sum(lifetime_stars), 0)::bigint AS total_stars,
           count(*) FILTER (WHERE last_active_at > now() - interval '7 days') AS active_7d,
           count(*) FILTER (WHERE last_active_at > now() - interval '30 days') AS active_30d,
           coalesce(max(level), 1) AS top_level,
           (SELECT count(*) FROM member_achievements ma WHERE ma.guild_id = :g) AS achievements_earned
      FROM members
     WHERE guild_id = :g AND left_at IS NULL
    """
)


@routes.get("/api/guilds/{guild_id}/metrics")
async def metrics(request: web.Request) -> web.Response:
    guild = _public_guild(request)
    assert guild.info is not None
    db = request.app[COMPONENTS].require_db()
    async with request.app[DB_GATE].connect(db) as conn:
        row = (await conn.execute(_METRICS_SQL, {"g": guild.guild_id})).one()
    body = {
        "guild_id": str(guild.guild_id),
        "guild_name": guild.info.name,
        "members": row.members,
        "total_xp": row.total_xp,
        "total_gold": row.total_gold,
        "total_stars": row.total_stars,
        "active_members_7d": row.active_7d,
        "active_members_30d": row.active_30d,
        "top_level": row.top_level,
        "achievements_earned": row.achievements_earned,
        "season": _season_json(guild),
    }
    return web.json_response(body, headers=_CACHE_HEADERS)
