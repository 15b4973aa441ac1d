"""Guild structure synchronisation (SPEC §3.2 step 9, §7.1): guilds, channels and roles mirrored into tables.

Input is a plain `GuildSnapshot` built by the gateway adapter, so this service knows nothing about hikari and the
sync is testable with plain data. One transaction per guild: upsert the guild, upsert every channel and role,
soft-delete those that disappeared, seed default rarities once, and NOTIFY only the tables whose rows really
changed — READY and guild-available repeat after every reconnect, and a no-op sync must stay a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.db.models import AchievementRarity, Guild, GuildChannel, GuildRole
from synapse_async.db.notify import notify_config

_GUILDS = cast(Table, Guild.__table__)
_CHANNELS = cast(Table, GuildChannel.__table__)
_ROLES = cast(Table, GuildRole.__table__)
_RARITIES = cast(Table, AchievementRarity.__table__)

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


async def sync_guild(sessions: async_sessionmaker[AsyncSession], snap: GuildSnapshot) -> SyncResult:
    async with sessions.begin() as s:
        g = _GUILDS
        stmt = insert(g).values(
            guild_id=snap.guild_id,
            name=snap.name,
            owner_id=snap.owner_id,
            afk_channel_id=snap.afk_channel_id,
            icon_hash=snap.icon_hash,
        )
        changed_cols = (g.c.name, g.c.owner_id, g.c.afk_channel_id, g.c.icon_hash, g.c.left_at)
        new_vals = (
            stmt.excluded.name,
            stmt.excluded.owner_id,
            stmt.excluded.afk_channel_id,
            stmt.excluded.icon_hash,
            None,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[g.c.guild_id],
            set_={
                "name": stmt.excluded.name,
                "owner_id": stmt.excluded.owner_id,
                "afk_channel_id": stmt.excluded.afk_channel_id,
                "icon_hash": stmt.excluded.icon_hash,
                "left_at": None,
                "updated_at": func.now(),
            },
            where=func.row(*changed_cols).is_distinct_from(func.row(*new_vals)),
        ).returning(g.c.guild_id)
        guild_changed = (await s.execute(upsert)).first() is not None

        channels_changed = await _sync_channels(s, snap)
        roles_changed = await _sync_roles(s, snap)
        seeded = await _seed_defaults(s, snap.guild_id)

        if guild_changed:
            await notify_config(s, "guilds", snap.guild_id)
        if channels_changed:
            await notify_config(s, "guild_channels", snap.guild_id)
        if seeded:
            await notify_config(s, "achievement_rarities", snap.guild_id)
    return SyncResult(guild_changed, channels_changed, roles_changed, seeded)


async def _upsert_channels(s: AsyncSession, guild_id: int, channels: Sequence[ChannelSnapshot]) -> int:
    """Insert or update channels; return how many rows really changed (unchanged rows are not touched)."""
    if not channels:
        return 0
    t = _CHANNELS
    stmt = insert(t).values(
        [
            {
                "guild_id": guild_id,
                "channel_id": c.channel_id,
                "name": c.name,
                "type": c.type,
                "parent_id": c.parent_id,
                "position": c.position,
            }
            for c in channels
        ]
    )
    old = func.row(t.c.name, t.c.type, t.c.parent_id, t.c.position, t.c.deleted_at)
    new = func.row(stmt.excluded.name, stmt.excluded.type, stmt.excluded.parent_id, stmt.excluded.position, None)
    upsert = stmt.on_conflict_do_update(
        index_elements=[t.c.guild_id, t.c.channel_id],
        set_={
            "name": stmt.excluded.name,
            "type": stmt.excluded.type,
            "parent_id": stmt.excluded.parent_id,
            "position": stmt.excluded.position,
            "deleted_at": None,
            "synced_at": func.now(),
        },
        where=old.is_distinct_from(new),
    ).returning(t.c.channel_id)
    return len((await s.execute(upsert)).all())


async def _sync_channels(s: AsyncSession, snap: GuildSnapshot) -> int:
    changed = await _upsert_channels(s, snap.guild_id, snap.channels)
    return changed + await _soft_delete_missing(
        s, _CHANNELS, "channel_id", snap.guild_id, [c.channel_id for c in snap.channels]
    )


async def _soft_delete_missing(s: AsyncSession, t: Table, id_column: str, guild_id: int, kept: list[int]) -> int:
    """Mark the guild's rows absent from a full snapshot deleted; how many were. Soft, so that rules naming a
    removed channel or role stay visible and flagged (SPEC §6.1)."""
    ident = t.c[id_column]
    gone = (
        update(t)
        .where(t.c.guild_id == guild_id, t.c.deleted_at.is_(None), ident.not_in(kept))
        .values(deleted_at=func.now(), synced_at=func.now())
        .returning(ident)
    )
    return len((await s.execute(gone)).all())


async def _upsert_roles(s: AsyncSession, guild_id: int, roles: Sequence[RoleSnapshot]) -> int:
    """Insert or update roles; return how many rows really changed (unchanged rows are not touched)."""
    if not roles:
        return 0
    t = _ROLES
    stmt = insert(t).values(
        [
            {
                "guild_id": guild_id,
                "role_id": r.role_id,
                "name": r.name,
                "position": r.position,
                "permissions": r.permissions,
                "managed": r.managed,
            }
            for r in roles
        ]
    )
    old = func.row(t.c.name, t.c.position, t.c.permissions, t.c.managed, t.c.deleted_at)
    new = func.row(stmt.excluded.name, stmt.excluded.position, stmt.excluded.permissions, stmt.excluded.managed, None)
    upsert = stmt.on_conflict_do_update(
        index_elements=[t.c.guild_id, t.c.role_id],
        set_={
            "name": stmt.excluded.name,
            "position": stmt.excluded.position,
            "permissions": stmt.excluded.permissions,
            "managed": stmt.excluded.managed,
            "deleted_at": None,
            "synced_at": func.now(),
        },
        where=old.is_distinct_from(new),
    ).returning(t.c.role_id)
    return len((await s.execute(upsert)).all())


async def _sync_roles(s: AsyncSession, snap: GuildSnapshot) -> int:
    changed = await _upsert_roles(s, snap.guild_id, snap.roles)
    return changed + await _soft_delete_missing(s, _ROLES, "role_id", snap.guild_id, [r.role_id for r in snap.roles])


async def _seed_defaults(s: AsyncSession, guild_id: int) -> bool:
    g = _GUILDS
    seeded_at = (
        await s.execute(select(g.c.defaults_seeded_at).where(g.c.guild_id == guild_id).with_for_update())
    ).scalar()
    if seeded_at is not None:
        return False
    r = _RARITIES
    await s.execute(
        insert(r)
        .values(
            [
                {"guild_id": guild_id, "name": n, "color": c, "emoji": e, "sort_order": o}
                for n, c, e, o in DEFAULT_RARITIES
            ]
        )
        .on_conflict_do_nothing()
    )
    await s.execute(update(g).where(g.c.guild_id == guild_id).values(defaults_seeded_at=func.now()))
    return True


async def upsert_channel(sessions: async_sessionmaker[AsyncSession], guild_id: int, channel: ChannelSnapshot) -> None:
    """Channel create/update (SPEC §7.1): upsert one channel and NOTIFY if it changed."""
    async with sessions.begin() as s:
        if await _upsert_channels(s, guild_id, [channel]):
            await notify_config(s, "guild_channels", guild_id)


async def delete_channel(sessions: async_sessionmaker[AsyncSession], guild_id: int, channel_id: int) -> None:
    """Channel delete: soft-delete (overrides on removed channels stay visible and flagged, SPEC §6.1)."""
    t = _CHANNELS
    async with sessions.begin() as s:
        await s.execute(
            update(t)
            .where(t.c.guild_id == guild_id, t.c.channel_id == channel_id)
            .values(deleted_at=func.now(), synced_at=func.now())
        )
        await notify_config(s, "guild_channels", guild_id)


async def mark_guild_left(sessions: async_sessionmaker[AsyncSession], guild_id: int) -> None:
    """Bot removed: set `left_at`; data is kept and further events are ignored."""
    g = _GUILDS
    async with sessions.begin() as s:
        await s.execute(update(g).where(g.c.guild_id == guild_id).values(left_at=func.now(), updated_at=func.now()))
        await notify_config(s, "guilds", guild_id)


async def upsert_role(sessions: async_sessionmaker[AsyncSession], guild_id: int, role: RoleSnapshot) -> bool:
    """Role create/update (GUILD_ROLE_CREATE/UPDATE): a role made after start-up can be given a multiplier, a
    no-XP rule or a level reward at once, not only after the next full guild sync. True when the row changed.
    No NOTIFY: the config cache holds no roles (the routes and the syncer read `guild_roles` directly)."""
    async with sessions.begin() as s:
        return await _upsert_roles(s, guild_id, [role]) > 0


async def delete_role(sessions: async_sessionmaker[AsyncSession], guild_id: int, role_id: int) -> bool:
    """Role delete: soft-delete, so rules that named it stay visible and are flagged as pointing nowhere."""
    t = _ROLES
    async with sessions.begin() as s:
        gone = await s.execute(
            update(t)
            .where(t.c.guild_id == guild_id, t.c.role_id == role_id, t.c.deleted_at.is_(None))
            .values(deleted_at=func.now(), synced_at=func.now())
            .returning(t.c.role_id)
        )
        return gone.first() is not None
