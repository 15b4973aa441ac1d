"""Guild structure synchronisation (SPEC §3.2 step 9, §7.1): guilds, channels and roles mirrored into tables.

Input is a plain `GuildSnapshot` built by the gateway adapter, so this service knows nothing about hikari and the
sync is testable with plain data. One transaction per guild: upsert the guild, upsert every channel and role,
soft-delete those that disappeared, seed default rarities once, and NOTIFY only the tables whose rows really
changed — READY and guild-available repeat after every reconnect, and a no-op sync must stay a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
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
_UPSERT_CHANNELS = text(
    """
    INSERT INTO guild_channels AS t (guild_id, channel_id, name, type, parent_id, position)
    SELECT :guild_id, * FROM unnest(
        CAST(:ids AS bigint[]), CAST(:names AS text[]), CAST(:types AS text[]), CAST(:parents AS bigint[]),
        CAST(:positions AS integer[]))
    ON CONFLICT (guild_id, channel_id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
        parent_id = EXCLUDED.parent_id, position = EXCLUDED.position, deleted_at = NULL, synced_at = now()
    WHERE (t.name, t.type, t.parent_id, t.position, t.deleted_at)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.type, EXCLUDED.parent_id, EXCLUDED.position, NULL)
    RETURNING t.channel_id
    """
)
_UPSERT_ROLES = text(
    """
    INSERT INTO guild_roles AS t (guild_id, role_id, name, position, permissions, managed)
    SELECT :guild_id, * FROM unnest(
        CAST(:ids AS bigint[]), CAST(:names AS text[]), CAST(:positions AS integer[]),
        CAST(:permissions AS bigint[]), CAST(:managed AS boolean[]))
    ON CONFLICT (guild_id, role_id) DO UPDATE SET name = EXCLUDED.name, position = EXCLUDED.position,
        permissions = EXCLUDED.permissions, managed = EXCLUDED.managed, deleted_at = NULL, synced_at = now()
    WHERE (t.name, t.position, t.permissions, t.managed, t.deleted_at)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.position, EXCLUDED.permissions, EXCLUDED.managed, NULL)
    RETURNING t.role_id
    """
)
# Soft deletes, so that rules naming a removed channel or role stay visible and flagged (SPEC §6.1).
_DELETE_MISSING_CHANNELS = text(
    "UPDATE guild_channels SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
    " AND deleted_at IS NULL AND channel_id <> ALL(CAST(:kept AS bigint[])) RETURNING channel_id"
)
_DELETE_MISSING_ROLES = text(
    "UPDATE guild_roles SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
    " AND deleted_at IS NULL AND role_id <> ALL(CAST(:kept AS bigint[])) RETURNING role_id"
)
_DELETE_CHANNEL = text(
    "UPDATE guild_channels SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id AND channel_id = :id"
)
_DELETE_ROLE = text(
    "UPDATE guild_roles SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
    " AND role_id = :id AND deleted_at IS NULL RETURNING role_id"
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
    columns = {
        "guild_id": guild_id,
        "ids": [c.channel_id for c in channels],
        "names": [c.name for c in channels],
        "types": [c.type for c in channels],
        "parents": [c.parent_id for c in channels],
        "positions": [c.position for c in channels],
    }
    return len((await s.execute(_UPSERT_CHANNELS, columns)).all())


async def _upsert_roles(s: AsyncSession, guild_id: int, roles: Sequence[RoleSnapshot]) -> int:
    """Insert or update roles; return how many rows really changed (unchanged rows are not touched)."""
    if not roles:
        return 0
    columns = {
        "guild_id": guild_id,
        "ids": [r.role_id for r in roles],
        "names": [r.name for r in roles],
        "positions": [r.position for r in roles],
        "permissions": [r.permissions for r in roles],
        "managed": [r.managed for r in roles],
    }
    return len((await s.execute(_UPSERT_ROLES, columns)).all())


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
