"""The in-memory configuration cache (SPEC §16.1).

The event path reads configuration only from here, never from the database, so a message costs no config query.
Each guild's configuration is one immutable `GuildConfig`; a reload builds a new one and swaps it in with a single
assignment, so a reader sees either the old or the new state, never a mix. A notification names one table (and
usually one guild) and reloads exactly that slice; after every listener (re)connection a full reload runs because
notifications sent while disconnected are lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from synapse_async.obs.logging import get_logger
from synapse_async.rewards.config import (
    DEFAULT_SETTINGS,
    CategoryInfo,
    ChannelInfo,
    GuildConfig,
    GuildInfo,
    Multiplier,
    NoXpTargets,
    RarityInfo,
    SeasonInfo,
    SeriesInfo,
    TemplateInfo,
)
from synapse_async.settings import REGISTRY, ResolvedSettings, normalize_stored

log = get_logger(__name__)


# --- loaders: one per notifiable table; each returns {guild_id: value for that GuildConfig field} -------------

# Which guilds a loader reads: one, several (a batch of targeted reloads, issue 27), or None for all of them.
Guilds = int | tuple[int, ...] | None
Loader = Callable[[AsyncConnection, Guilds], Awaitable[dict[int, Any]]]


async def _rows(
    conn: AsyncConnection, sql: str, guild_id: Guilds, *, where: str = "TRUE", order: str = "", **types: Any
) -> list[Any]:
    """Run `sql WHERE where [AND guild_id = :g | = ANY(:g)] [ORDER BY order]`; typed columns decode JSONB
    deterministically."""
    params: dict[str, object]
    if guild_id is None:
        stmt_sql, params = f"{sql} WHERE {where}", {}
    elif isinstance(guild_id, tuple):
        stmt_sql, params = f"{sql} WHERE {where} AND guild_id = ANY(CAST(:g AS bigint[]))", {"g": list(guild_id)}
    else:
        stmt_sql, params = f"{sql} WHERE {where} AND guild_id = :g", {"g": guild_id}
    stmt = text(stmt_sql + (f" ORDER BY {order}" if order else ""))
    query: Any = stmt.columns(**types) if types else stmt
    result = await conn.execute(query, params)
    return list(result.all())


def _group(rows: list[Any], build: Callable[[list[Any]], Any]) -> dict[int, Any]:
    grouped: dict[int, list[Any]] = {}
    for row in rows:
        grouped.setdefault(int(row.guild_id), []).append(row)
    return {g: build(rs) for g, rs in grouped.items()}


async def _load_settings(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, key, value FROM settings", guild_id, value=JSONB)

    def build(rs: list[Any]) -> ResolvedSettings:
        overrides: dict[str, object] = {}
        for r in rs:
            if r.key not in REGISTRY:
                log.warning("unknown_setting_ignored", guild_id=r.guild_id, key=r.key)
                continue
            try:
                overrides[r.key] = normalize_stored(r.key, r.value)
            except (TypeError, ValueError):
                log.warning("invalid_stored_setting_ignored", guild_id=r.guild_id, key=r.key)
        return ResolvedSettings(overrides)

    return _group(rows, build)


async def load_guild_settings(conn: AsyncConnection, guild_id: int) -> ResolvedSettings:
    """One guild's merged settings straight from the database, exactly as a reload would build them.

    For work that must not act on a cache the NOTIFY has not reached yet (a relevel claimed right after the
    curve change that queued it).
    """
    settings: ResolvedSettings = (await _load_settings(conn, guild_id)).get(guild_id, DEFAULT_SETTINGS)
    return settings


async def _load_guilds(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn, "SELECT guild_id, name, owner_id, afk_channel_id, icon_hash, left_at FROM guilds", guild_id
    )
    return {
        int(r.guild_id): GuildInfo(
            int(r.guild_id), r.name, int(r.owner_id), r.afk_channel_id, r.icon_hash, r.left_at is not None
        )
        for r in rows
    }


async def _load_channels(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn, "SELECT guild_id, channel_id, name, type, parent_id, deleted_at FROM guild_channels", guild_id
    )
    return _group(
        rows,
        lambda rs: {
            int(r.channel_id): ChannelInfo(int(r.channel_id), r.name, r.type, r.parent_id, r.deleted_at is not None)
            for r in rs
        },
    )


async def _load_type_defaults(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn,
        "SELECT guild_id, channel_type, event_type, xp_multiplier, star_multiplier FROM channel_type_defaults",
        guild_id,
    )
    return _group(
        rows,
        lambda rs: {
            (r.channel_type, r.event_type): Multiplier(float(r.xp_multiplier), float(r.star_multiplier)) for r in rs
        },
    )


async def _load_overrides(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn,
        "SELECT guild_id, channel_id, event_type, xp_multiplier, star_multiplier FROM channel_overrides",
        guild_id,
    )
    return _group(
        rows,
        lambda rs: {
            (int(r.channel_id), r.event_type): Multiplier(float(r.xp_multiplier), float(r.star_multiplier)) for r in rs
        },
    )


async def _load_role_multipliers(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, role_id, xp_multiplier, star_multiplier FROM role_multipliers", guild_id)
    return _group(
        rows, lambda rs: {int(r.role_id): Multiplier(float(r.xp_multiplier), float(r.star_multiplier)) for r in rs}
    )


async def _load_no_xp(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, target_type, target_id FROM no_xp_targets", guild_id)
    return _group(
        rows,
        lambda rs: NoXpTargets(
            frozenset(int(r.target_id) for r in rs if r.target_type == "channel"),
            frozenset(int(r.target_id) for r in rs if r.target_type == "role"),
        ),
    )


async def _load_level_roles(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn, "SELECT guild_id, role_id, level FROM level_role_rewards", guild_id, order="level, role_id"
    )
    return _group(rows, lambda rs: tuple((int(r.level), int(r.role_id)) for r in rs))


async def _load_templates(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn,
        "SELECT guild_id, id, name, description, category_id, rarity_id, series_id, series_order, trigger_type,"
        " trigger_config, xp_reward, gold_reward, badge_image_url, announce_channel_id, is_hidden, max_earners"
        " FROM achievement_templates",
        guild_id,
        where="active",
        order="series_id NULLS FIRST, series_order NULLS FIRST, id",
        trigger_config=JSONB,
    )
    return _group(
        rows,
        lambda rs: tuple(TemplateInfo.from_row(r._mapping) for r in rs),
    )


async def _load_categories(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, id, name, icon, sort_order FROM achievement_categories", guild_id)
    return _group(rows, lambda rs: {int(r.id): CategoryInfo(int(r.id), r.name, r.icon, r.sort_order) for r in rs})


async def _load_rarities(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, id, name, color, emoji, sort_order FROM achievement_rarities", guild_id)
    return _group(
        rows, lambda rs: {int(r.id): RarityInfo(int(r.id), r.name, r.color, r.emoji, r.sort_order) for r in rs}
    )


async def _load_series(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(conn, "SELECT guild_id, id, name, description FROM achievement_series", guild_id)
    return _group(rows, lambda rs: {int(r.id): SeriesInfo(int(r.id), r.name, r.description) for r in rs})


RECENT_SEASON_DAYS = 7
"""How long an ended season stays cached for attribution: far beyond the outage buffer's age bound (at most a day,
`PIPELINE_BUFFER_MAX_AGE_SECONDS`), so every event still buffered finds its season without a query."""


async def _load_seasons(conn: AsyncConnection, guild_id: Guilds) -> dict[int, Any]:
    rows = await _rows(
        conn,
        "SELECT guild_id, season_id, name, starts_at, ends_at, ended_at, status FROM seasons",
        guild_id,
        where=f"(status = 'active' OR COALESCE(ended_at, ends_at) > now() - interval '{RECENT_SEASON_DAYS} days')",
        order="guild_id, starts_at DESC, season_id DESC",
    )
    return _group(
        rows,
        lambda rs: tuple(
            SeasonInfo(int(r.season_id), r.name, r.starts_at, r.ends_at, r.ended_at, r.status == "active") for r in rs
        ),
    )


# table -> (GuildConfig field, loader, value when the guild has no rows)
_GUILD_TABLES: dict[str, tuple[str, Loader, Callable[[], Any]]] = {
    "settings": ("settings", _load_settings, lambda: DEFAULT_SETTINGS),
    "guilds": ("info", _load_guilds, lambda: None),
    "guild_channels": ("channels", _load_channels, dict),
    "channel_type_defaults": ("type_defaults", _load_type_defaults, dict),
    "channel_overrides": ("overrides", _load_overrides, dict),
    "role_multipliers": ("role_multipliers", _load_role_multipliers, dict),
    "no_xp_targets": ("no_xp", _load_no_xp, NoXpTargets),
    "level_role_rewards": ("level_roles", _load_level_roles, tuple),
    "achievement_templates": ("templates", _load_templates, tuple),
    "achievement_categories": ("categories", _load_categories, dict),
    "achievement_rarities": ("rarities", _load_rarities, dict),
    "achievement_series": ("series", _load_series, dict),
    "seasons": ("seasons", _load_seasons, tuple),
}
GLOBAL_TABLES = frozenset({"revoked_tokens"})
_TEMPLATE_VERSIONS = itertools.count(1)


class ConfigCache:
    """Per-guild configuration plus global revoked token ids, reloaded by table and guild."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._guilds: dict[int, GuildConfig] = {}
        self._revoked: frozenset[str] = frozenset()
        self.loaded = False
        self.full_reloads = 0
        self.reloads: Counter[str] = Counter()  # "<table>:<guild_id or *>" -> count, observable by tests
        self.reload_queries = 0  # targeted reloads run (one query each, for one guild or a batch of guilds)
        self.last_full_reload_at: datetime | None = None
        self.last_reload_at: datetime | None = None
        # Full and targeted reloads are serialized: a targeted reload that read newer data must never be
        # overwritten by a full reload whose snapshot is older.
        self._lock = asyncio.Lock()

    # --- reads (hot path: dictionary lookups only) -------------------------------------------------------------
    def guild(self, guild_id: int) -> GuildConfig:
        cfg = self._guilds.get(guild_id)
        return cfg if cfg is not None else GuildConfig(guild_id)

    def settings(self, guild_id: int) -> ResolvedSettings:
        return self.guild(guild_id).settings

    def known_guild_ids(self) -> frozenset[int]:
        return frozenset(g for g, c in self._guilds.items() if c.info is not None)

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    # --- reloads -------------------------------------------------------------------------------------------------
    async def full_reload(self) -> None:
        """Load every table for every guild in one consistent snapshot, then swap everything at once."""
        async with self._lock:
            await self._full_reload()

    async def _full_reload(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            per_table = {table: await loader(conn, None) for table, (_, loader, _) in _GUILD_TABLES.items()}
            revoked = await self._load_revoked(conn)
            await conn.rollback()
        guild_ids: set[int] = set()
        for values in per_table.values():
            guild_ids.update(values)
        fresh: dict[int, GuildConfig] = {}
        for gid in guild_ids:
            kwargs = {fld: per_table[table].get(gid, empty()) for table, (fld, _, empty) in _GUILD_TABLES.items()}
            fresh[gid] = GuildConfig(gid, **kwargs, templates_version=next(_TEMPLATE_VERSIONS))
        self._guilds = fresh
        self._revoked = revoked
        self.loaded = True
        self.full_reloads += 1
        self.last_full_reload_at = self.last_reload_at = datetime.now(UTC)
        log.info("config_cache_full_reload", guilds=len(fresh), revoked_ids=len(revoked))

    async def reload(self, table: str, guild_id: int | None) -> None:
        """Reload one table, for one guild or (guild_id None) for all guilds."""
        async with self._lock:
            await self._reload(table, guild_id)

    async def reload_guilds(self, table: str, guild_ids: Collection[int]) -> None:
        """Reload one table for several guilds with one query: after a batched guild sync hundreds of guilds
        notify at once, and a query each made the start in 10,000 guilds wait for 30,000 reloads (issue 27)."""
        if guild_ids:
            async with self._lock:
                await self._reload(table, tuple(sorted(guild_ids)))

    async def _reload(self, table: str, guild_id: Guilds) -> None:
        self.reload_queries += 1
        if table in GLOBAL_TABLES:
            async with self._engine.connect() as conn:
                self._revoked = await self._load_revoked(conn)
        else:
            fld, loader, empty = _GUILD_TABLES[table]
            async with self._engine.connect() as conn:
                values = await loader(conn, guild_id)
            if guild_id is None:
                targets: Collection[int] = set(self._guilds) | set(values)
            else:
                targets = guild_id if isinstance(guild_id, tuple) else (guild_id,)
            for gid in targets:
                old = self._guilds.get(gid) or GuildConfig(gid)
                changes: dict[str, Any] = {fld: values.get(gid, empty())}
                if fld == "templates":
                    changes["templates_version"] = next(_TEMPLATE_VERSIONS)
                self._guilds[gid] = dataclasses.replace(old, **changes)
        self.last_reload_at = datetime.now(UTC)
        if isinstance(guild_id, tuple):
            self.reloads.update(f"{table}:{gid}" for gid in guild_id)
            log.debug("config_cache_reload", table=table, guilds=len(guild_id))
        else:
            self.reloads[f"{table}:{guild_id if guild_id is not None else '*'}"] += 1
            log.debug("config_cache_reload", table=table, guild_id=guild_id)

    @staticmethod
    async def _load_revoked(conn: AsyncConnection) -> frozenset[str]:
        result = await conn.execute(text("SELECT jti FROM revoked_tokens WHERE expires_at > now()"))
        return frozenset(str(r[0]) for r in result.all())
