"""Guild structure synchronisation (SPEC §3.2 step 9, §7.1): guilds, channels and roles mirrored into tables.

Input is a plain `GuildSnapshot` built by the gateway adapter, so this service knows nothing about hikari and the
sync is testable with plain data. One transaction per batch of guilds (one guild is a batch of one), each table
written by set: upsert the guilds, upsert every channel and role, soft-delete those that disappeared, seed
default rarities once, and NOTIFY only the tables whose rows really changed — READY and guild-available repeat
after every reconnect, and a no-op sync must stay a no-op.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.db.notify import notify_config, notify_config_changes

# SPEC §12.1: seeded once per guild while `defaults_seeded_at` is NULL (an admin who deletes them is not overruled).
DEFAULT_RARITIES: tuple[tuple[str, str, str, int], ...] = (
    ("Common", "#9E9E9E", "⚪", 0),
    ("Uncommon", "#4CAF50", "🟢", 1),
    ("Rare", "#2196F3", "🔵", 2),
    ("Epic", "#9C27B0", "🟣", 3),
    ("Legendary", "#FFC107", "🟡", 4),
)


_Row = TypeVar("_Row")


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
# statement each; rows travel as arrays (`unnest`), for one guild or for a batch of guilds alike. Built as Core
# constructs with multi-row VALUES they were compiled anew on every sync (the row count is part of the statement):
# at start-up in 10,000 guilds that compilation was a third of the event loop's time (bench/memory.py --guilds).
# A batch of guilds costs the same seven statements as one guild (issue 27): per-guild statements made a
# 10,000-guild start take 26 s after the last GUILD_CREATE, mostly round trips.
_UPSERT_GUILDS = text(
    """
    INSERT INTO guilds AS g (guild_id, name, owner_id, afk_channel_id, icon_hash)
    SELECT * FROM unnest(CAST(:guild_id AS bigint[]), CAST(:name AS text[]), CAST(:owner_id AS bigint[]),
        CAST(:afk_channel_id AS bigint[]), CAST(:icon_hash AS text[]))
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
        """Insert or update rows of any number of guilds from arrays, touching only rows that really change;
        RETURNING the guild of each changed row."""
        cols = [c for c, _ in self.columns]
        arrays = ", ".join(
            f"CAST(:{c} AS {t}[])" for c, t in (("guild_id", "bigint"), (self.key, "bigint"), *self.columns)
        )
        return text(
            f"INSERT INTO {self.table} AS t (guild_id, {self.key}, {', '.join(cols)})"
            f" SELECT * FROM unnest({arrays})"
            f" ON CONFLICT (guild_id, {self.key}) DO UPDATE SET"
            f" {', '.join(f'{c} = EXCLUDED.{c}' for c in cols)}, deleted_at = NULL, synced_at = now()"
            f" WHERE ({', '.join(f't.{c}' for c in cols)}, t.deleted_at)"
            f" IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in cols)}, NULL)"
            f" RETURNING t.guild_id"
        )

    def delete_missing(self) -> TextClause:
        """Soft-delete the live rows of the snapshots' guilds that their full snapshots no longer hold (rules
        naming them stay, flagged, §6.1). `kept_guild`/`kept_id` pair up the rows the snapshots do hold; EXCEPT
        is a hashed set difference, so the cost stays linear in the batch's rows."""
        return text(
            f"UPDATE {self.table} AS t SET deleted_at = now(), synced_at = now()"
            f" FROM (SELECT guild_id, {self.key} FROM {self.table}"
            f" WHERE guild_id = ANY(CAST(:guilds AS bigint[])) AND deleted_at IS NULL"
            f" EXCEPT SELECT * FROM unnest(CAST(:kept_guild AS bigint[]), CAST(:kept_id AS bigint[]))) AS gone"
            f" WHERE t.guild_id = gone.guild_id AND t.{self.key} = gone.{self.key}"
            f" RETURNING t.guild_id"
        )

    def delete_one(self) -> TextClause:
        return text(
            f"UPDATE {self.table} SET deleted_at = now(), synced_at = now() WHERE guild_id = :guild_id"
            f" AND {self.key} = :id AND deleted_at IS NULL RETURNING {self.key}"
        )

    def params(self, rows: Sequence[tuple[int, object]]) -> dict[str, object]:
        """Column arrays for `upsert` from (guild_id, snapshot) pairs."""
        names = (self.key, *(c for c, _ in self.columns))
        return {"guild_id": [g for g, _ in rows], **{n: [getattr(r, n) for _, r in rows] for n in names}}


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
# Claims the one-time seeding of every batch guild not yet seeded and seeds them in the same statement (the row
# lock serializes two processes syncing the same guild at once).
_SEED_RARITIES = text(
    """
    WITH claimed AS (
        UPDATE guilds SET defaults_seeded_at = now()
        WHERE guild_id = ANY(CAST(:guilds AS bigint[])) AND defaults_seeded_at IS NULL
        RETURNING guild_id
    ), seeded AS (
        INSERT INTO achievement_rarities (guild_id, name, color, emoji, sort_order)
        SELECT c.guild_id, r.* FROM claimed AS c CROSS JOIN unnest(
            CAST(:names AS text[]), CAST(:colors AS text[]), CAST(:emojis AS text[]), CAST(:orders AS integer[])) AS r
        ON CONFLICT DO NOTHING
    )
    SELECT guild_id FROM claimed
    """
)
_RARITY_COLUMNS = {
    "names": [n for n, _, _, _ in DEFAULT_RARITIES],
    "colors": [c for _, c, _, _ in DEFAULT_RARITIES],
    "emojis": [e for _, _, e, _ in DEFAULT_RARITIES],
    "orders": [o for _, _, _, o in DEFAULT_RARITIES],
}


async def sync_guild(sessions: async_sessionmaker[AsyncSession], snap: GuildSnapshot) -> SyncResult:
    """One guild's full sync: `sync_guilds` with a batch of one (the same statements)."""
    return (await sync_guilds(sessions, [snap]))[snap.guild_id]


async def sync_guilds(
    sessions: async_sessionmaker[AsyncSession], snaps: Sequence[GuildSnapshot]
) -> dict[int, SyncResult]:
    """Full syncs of several guilds in one transaction, seven statements whatever their number.

    Each guild ends exactly as its snapshot says (changed rows updated, missing ones soft-deleted, returning ones
    undeleted), as if synced alone. A guild must appear once (the structure writer never batches two writes of
    one guild); if it appears twice the later snapshot wins. Guilds are written in id order, so two processes
    syncing overlapping batches (a re-shard) lock their rows in the same order."""
    by_guild = {s.guild_id: s for s in snaps}
    ordered = [by_guild[g] for g in sorted(by_guild)]
    guilds = [s.guild_id for s in ordered]
    channels = [(s.guild_id, c) for s in ordered for c in _unique(s.channels, "channel_id")]
    roles = [(s.guild_id, r) for s in ordered for r in _unique(s.roles, "role_id")]
    async with sessions.begin() as s:
        guild_rows = await s.execute(
            _UPSERT_GUILDS,
            {
                "guild_id": guilds,
                "name": [g.name for g in ordered],
                "owner_id": [g.owner_id for g in ordered],
                "afk_channel_id": [g.afk_channel_id for g in ordered],
                "icon_hash": [g.icon_hash for g in ordered],
            },
        )
        guilds_changed = {int(r[0]) for r in guild_rows}
        channels_changed = await _changed(
            s, _UPSERT_CHANNELS, _DELETE_MISSING_CHANNELS, _CHANNEL_TABLE, guilds, channels
        )
        roles_changed = await _changed(s, _UPSERT_ROLES, _DELETE_MISSING_ROLES, _ROLE_TABLE, guilds, roles)
        seeded = {int(r[0]) for r in await s.execute(_SEED_RARITIES, {"guilds": guilds, **_RARITY_COLUMNS})}
        await notify_config_changes(
            s,
            [("guilds", g) for g in sorted(guilds_changed)]
            + [("guild_channels", g) for g in sorted(channels_changed) if channels_changed[g]]
            + [("achievement_rarities", g) for g in sorted(seeded)],
        )
    return {g: SyncResult(g in guilds_changed, channels_changed[g], roles_changed[g], g in seeded) for g in guilds}


def _unique(rows: Sequence[_Row], key: str) -> list[_Row]:
    """One row per id (the last wins): ON CONFLICT DO UPDATE may not touch one row twice in a statement."""
    return list({getattr(r, key): r for r in rows}.values())


async def _changed(
    s: AsyncSession,
    upsert: TextClause,
    delete_missing: TextClause,
    table: _Mirror,
    guilds: list[int],
    rows: list[tuple[int, Any]],
) -> Counter[int]:
    """Upsert the batch's rows of one mirrored table and soft-delete the rest of its guilds' live rows; how
    many rows changed per guild (unchanged rows are not touched)."""
    changed: Counter[int] = Counter({g: 0 for g in guilds})
    if rows:
        changed.update(int(r[0]) for r in await s.execute(upsert, table.params(rows)))
    kept = {"guilds": guilds, "kept_guild": [g for g, _ in rows], "kept_id": [getattr(r, table.key) for _, r in rows]}
    changed.update(int(r[0]) for r in await s.execute(delete_missing, kept))
    return changed


async def _upsert_channels(s: AsyncSession, guild_id: int, channels: Sequence[ChannelSnapshot]) -> int:
    """Insert or update channels; return how many rows really changed (unchanged rows are not touched)."""
    if not channels:
        return 0
    return len((await s.execute(_UPSERT_CHANNELS, _CHANNEL_TABLE.params([(guild_id, c) for c in channels]))).all())


async def _upsert_roles(s: AsyncSession, guild_id: int, roles: Sequence[RoleSnapshot]) -> int:
    """Insert or update roles; return how many rows really changed (unchanged rows are not touched)."""
    if not roles:
        return 0
    return len((await s.execute(_UPSERT_ROLES, _ROLE_TABLE.params([(guild_id, r) for r in roles]))).all())


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
