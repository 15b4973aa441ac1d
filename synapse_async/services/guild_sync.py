"""Guild structure synchronisation (SPEC §3.2 step 9, §7.1): guilds, channels and roles mirrored into tables.

Input is a plain `GuildSnapshot` built by the gateway adapter, so this service knows nothing about hikari and the
sync is testable with plain data. One transaction per guild: upsert the guild, upsert every channel and role,
soft-delete those that disappeared, seed default rarities once, and NOTIFY only the tables whose rows really
changed — READY and guild-available repeat after every reconnect, and a no-op sync must stay a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.db.notify import notify_config, notify_configs

# SPEC §12.1: seeded once per guild while `defaults_seeded_at` is NULL (an admin who deletes them is not overruled).
DEFAULT_RARITIES: tuple[tuple[str, str, str, int], ...] = (
    ("Common", "#9E9E9E", "⚪", 0),
    ("Uncommon", "#4CAF50", "🟢", 1),
    ("Rare", "#2196F3", "🔵", 2),
    ("Epic", "#9C27B0", "🟣", 3),
    ("Legendary", "#FFC107", "🟡", 4),
)


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    channel_id: int
    name: str
    type: str  # text, announcement, forum, media, voice, stage, category (threads are never stored)
    parent_id: int | None
    position: int


@dataclass(frozen=True, slots=True)
class RoleSnapshot:
    role_id: int
    name: str
    position: int
    permissions: int
    managed: bool


@dataclass(frozen=True, slots=True)
class GuildSnapshot:
    guild_id: int
    name: str
    owner_id: int
    afk_channel_id: int | None
    icon_hash: str | None
    channels: Sequence[ChannelSnapshot]
    roles: Sequence[RoleSnapshot]


@dataclass(frozen=True, slots=True)
class SyncResult:
    guild_changed: bool
    channels_changed: int
    roles_changed: int
    rarities_seeded: bool


# The statements are constant text, so SQLAlchemy compiles nothing per call and asyncpg reuses one prepared
# statement each; rows travel as arrays (`unnest`). Built as Core constructs with multi-row VALUES they were
# compiled anew on every sync (the row count is part of the statement): at start-up in 10,000 guilds that
# compilation was a third of the event loop's time (bench/memory.py --guilds).
_UPSERT_GUILD = text(
    """
    INSERT INTO guilds AS g (guild_id, name, owner_id, afk_channel_id, icon_hash)
    VALUES (:guild_id, :name, :owner_id, :afk_channel_id, :icon_hash)
    ON CONFLICT (guild_id) DO UPDATE SET name = EXCLUDED.name, owner_id = EXCLUDED.owner_id,
        afk_channel_id = EXCLUDED.afk_channel_id, icon_hash = EXCLUDED.icon_hash, left_at = NULL, updated_at = now()
    WHERE (g.name, g.owner_id, g.afk_channel_id, g.icon_hash, g.left_at)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.owner_id, EXCLUDED.afk_channel_id, EXCLUDED.icon_hash, NULL)
    RETURNING g.guild_id
    """
)


@dataclass(frozen=True, slots=True)
class _Mirror:
    """One mirrored Discord table: its rows are snapshots whose field names are the table's columns."""

    table: str
    key: str
    columns: tuple[tuple[str, str], ...]  # (column, PostgreSQL type) after the key

    def upsert(self) -> TextClause:
        """Insert or update from arrays, touching only rows that really change; RETURNING those."""
        cols = [c for c, _ in self.columns]
        arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in ((self.key, "bigint"), *self.columns))
        return text(
            f"INSERT INTO {self.table} AS t (guild_id, {self.key}, {', '.join(cols)})"
            f" SELECT :guild_id, * FROM unnest({arrays})"
            f" ON CONFLICT (guild_id, {self.key}) DO UPDATE SET"
            f" {', '.join(f'{c} = EXCLUDED.{c}' for c in cols)}, deleted_at = NULL, synced_at = now()"
            f" WHERE ({', '.join(f't.{c}' for c in cols)}, t.deleted_at)"
            f" IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in cols)}, NULL)"
            f" RETURNING t.{self.key}"
        )

    def delete_missing(self) -> TextClause:
        """Soft-delete the guild's live rows absent from a full snapshot (rules naming them stay, flagged, §6.1)."""
        return text(
            f"UPDATE {self.table} SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
            f" AND deleted_at IS NULL AND {self.key} <> ALL(CAST(:kept AS bigint[])) RETURNING {self.key}"
        )

    def delete_one(self) -> TextClause:
        return text(
            f"UPDATE {self.table} SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
            f" AND {self.key} = :id AND deleted_at IS NULL RETURNING {self.key}"
        )

    def params(self, guild_id: int, rows: Sequence[object]) -> dict[str, object]:
        names = (self.key, *(c for c, _ in self.columns))
        return {"guild_id": guild_id, **{n: [getattr(r, n) for r in rows] for n in names}}


_CHANNEL_TABLE = _Mirror(
    "guild_channels",
    "channel_id",
    (("name", "text"), ("type", "text"), ("parent_id", "bigint"), ("position", "integer")),
)
_ROLE_TABLE = _Mirror(
    "guild_roles",
    "role_id",
    (("name", "text"), ("position", "integer"), ("permissions", "bigint"), ("managed", "boolean")),
)
_UPSERT_CHANNELS, _DELETE_MISSING_CHANNELS, _DELETE_CHANNEL = (
    _CHANNEL_TABLE.upsert(),
    _CHANNEL_TABLE.delete_missing(),
    _CHANNEL_TABLE.delete_one(),
)
_UPSERT_ROLES, _DELETE_MISSING_ROLES, _DELETE_ROLE = (
    _ROLE_TABLE.upsert(),
    _ROLE_TABLE.delete_missing(),
    _ROLE_TABLE.delete_one(),
)
_MARK_LEFT = text("UPDATE guilds SET left_at = now(), updated_at = now() WHERE guild_id = :guild_id")
# Claims the one-time seeding (the row lock serializes two processes syncing the same guild at once).
_CLAIM_SEEDING = text(
    "UPDATE guilds SET defaults_seeded_at = now() WHERE guild_id = :guild_id AND defaults_seeded_at IS NULL"
    " RETURNING guild_id"
)
_SEED_RARITIES = text(
    """
    INSERT INTO achievement_rarities (guild_id, name, color, emoji, sort_order)
    SELECT :guild_id, * FROM unnest(
        CAST(:names AS text[]), CAST(:colors AS text[]), CAST(:emojis AS text[]), CAST(:orders AS integer[]))
    ON CONFLICT DO NOTHING
    """
)
_RARITY_COLUMNS = {
    "names": [n for n, _, _, _ in DEFAULT_RARITIES],
    "colors": [c for _, c, _, _ in DEFAULT_RARITIES],
    "emojis": [e for _, _, e, _ in DEFAULT_RARITIES],
    "orders": [o for _, _, _, o in DEFAULT_RARITIES],
}


async def sync_guild(sessions: async_sessionmaker[AsyncSession], snap: GuildSnapshot) -> SyncResult:
    async with sessions.begin() as s:
        guild_changed = (
            await s.execute(
                _UPSERT_GUILD,
                {
                    "guild_id": snap.guild_id,
                    "name": snap.name,
                    "owner_id": snap.owner_id,
                    "afk_channel_id": snap.afk_channel_id,
                    "icon_hash": snap.icon_hash,
                },
            )
        ).first() is not None
        kept = {"guild_id": snap.guild_id}
        channels_changed = await _upsert_channels(s, snap.guild_id, snap.channels) + len(
            (await s.execute(_DELETE_MISSING_CHANNELS, {**kept, "kept": [c.channel_id for c in snap.channels]})).all()
        )
        roles_changed = await _upsert_roles(s, snap.guild_id, snap.roles) + len(
            (await s.execute(_DELETE_MISSING_ROLES, {**kept, "kept": [r.role_id for r in snap.roles]})).all()
        )
        seeded = (await s.execute(_CLAIM_SEEDING, kept)).first() is not None
        if seeded:
            await s.execute(_SEED_RARITIES, {**kept, **_RARITY_COLUMNS})

        changed = {"guilds": guild_changed, "guild_channels": channels_changed > 0, "achievement_rarities": seeded}
        await notify_configs(s, [table for table, yes in changed.items() if yes], snap.guild_id)
    return SyncResult(guild_changed, channels_changed, roles_changed, seeded)


async def _upsert_channels(s: AsyncSession, guild_id: int, channels: Sequence[ChannelSnapshot]) -> int:
    """Insert or update channels; return how many rows really changed (unchanged rows are not touched)."""
    if not channels:
        return 0
    return len((await s.execute(_UPSERT_CHANNELS, _CHANNEL_TABLE.params(guild_id, channels))).all())


async def _upsert_roles(s: AsyncSession, guild_id: int, roles: Sequence[RoleSnapshot]) -> int:
    """Insert or update roles; return how many rows really changed (unchanged rows are not touched)."""
    if not roles:
        return 0
    return len((await s.execute(_UPSERT_ROLES, _ROLE_TABLE.params(guild_id, roles))).all())


async def upsert_channel(sessions: async_sessionmaker[AsyncSession], guild_id: int, channel: ChannelSnapshot) -> None:
    """Channel create/update (SPEC §7.1): upsert one channel and NOTIFY if it changed."""
    async with sessions.begin() as s:
        if await _upsert_channels(s, guild_id, [channel]):
            await notify_config(s, "guild_channels", guild_id)


async def delete_channel(sessions: async_sessionmaker[AsyncSession], guild_id: int, channel_id: int) -> None:
    """Channel delete: soft-delete (overrides on removed channels stay visible and flagged, SPEC §6.1)."""
    async with sessions.begin() as s:
        await s.execute(_DELETE_CHANNEL, {"guild_id": guild_id, "id": channel_id})
        await notify_config(s, "guild_channels", guild_id)


async def mark_guild_left(sessions: async_sessionmaker[AsyncSession], guild_id: int) -> None:
    """Bot removed: set `left_at`; data is kept and further events are ignored."""
    async with sessions.begin() as s:
        await s.execute(_MARK_LEFT, {"guild_id": guild_id})
        await notify_config(s, "guilds", guild_id)


async def upsert_role(sessions: async_sessionmaker[AsyncSession], guild_id: int, role: RoleSnapshot) -> bool:
    """Role create/update (GUILD_ROLE_CREATE/UPDATE): a role made after start-up can be given a multiplier, a
    no-XP rule or a level reward at once, not only after the next full guild sync. True when the row changed.
    No NOTIFY: the config cache holds no roles (the routes and the syncer read `guild_roles` directly)."""
    async with sessions.begin() as s:
        return await _upsert_roles(s, guild_id, [role]) > 0


async def delete_role(sessions: async_sessionmaker[AsyncSession], guild_id: int, role_id: int) -> bool:
    """Role delete: soft-delete, so rules that named it stay visible and are flagged as pointing nowhere."""
    async with sessions.begin() as s:
        return (await s.execute(_DELETE_ROLE, {"guild_id": guild_id, "id": role_id})).first() is not None
