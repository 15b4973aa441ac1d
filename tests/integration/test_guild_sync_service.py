"""`services/guild_sync.py` with plain snapshots on the real database: change detection, soft deletes, undeletes,
seeding once, leave and return, and the single-role writes of GUILD_ROLE_CREATE/UPDATE/DELETE."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from synapse_async.db.urls import to_sqlalchemy_url
from synapse_async.services.guild_sync import (
    ChannelSnapshot,
    GuildSnapshot,
    RoleSnapshot,
    SyncResult,
    delete_channel,
    delete_role,
    mark_guild_left,
    sync_guild,
    sync_guilds,
    upsert_channel,
    upsert_role,
)

G = 700000000000000001
GENERAL = ChannelSnapshot(700000000000000010, "general", "text", None, 0)
VOICE = ChannelSnapshot(700000000000000011, "Lounge", "voice", None, 1)
EVERYONE = RoleSnapshot(G, "@everyone", 0, 0, False)
MOD = RoleSnapshot(700000000000000020, "Mod", 2, 8, False)
SNAP = GuildSnapshot(G, "Plain", 1, None, None, [GENERAL, VOICE], [EVERYONE, MOD])

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def sessions(migrated_database: str) -> AsyncIterator[Sessions]:
    engine = create_async_engine(to_sqlalchemy_url(migrated_database))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def rows(sessions: Sessions, sql: str) -> list[tuple[Any, ...]]:
    async with sessions() as s:
        return [tuple(r) for r in (await s.execute(text(sql), {"g": G})).all()]


async def live(sessions: Sessions, table: str, column: str) -> set[int]:
    found = await rows(sessions, f"SELECT {column} FROM {table} WHERE guild_id = :g AND deleted_at IS NULL")
    return {int(r[0]) for r in found}


async def test_full_syncs_detect_changes_soft_delete_and_seed_once(sessions: Sessions) -> None:
    assert await sync_guild(sessions, SNAP) == SyncResult(True, 2, 2, True)
    assert await sync_guild(sessions, SNAP) == SyncResult(False, 0, 0, False)  # a repeated READY is a no-op
    assert await rows(sessions, "SELECT count(*) FROM achievement_rarities WHERE guild_id = :g") == [(5,)]

    renamed = dataclasses.replace(SNAP, name="Renamed", channels=[GENERAL], roles=[EVERYONE])
    assert await sync_guild(sessions, renamed) == SyncResult(True, 1, 1, False)
    assert await live(sessions, "guild_channels", "channel_id") == {GENERAL.channel_id}
    assert await live(sessions, "guild_roles", "role_id") == {G}
    # Soft: the rows stay, marked, so rules that name them are still listed and flagged.
    assert await rows(sessions, "SELECT count(*) FROM guild_channels WHERE guild_id = :g") == [(2,)]

    moved = dataclasses.replace(VOICE, position=5)
    back = dataclasses.replace(SNAP, channels=[GENERAL, moved])
    assert await sync_guild(sessions, back) == SyncResult(True, 1, 1, False)
    assert await live(sessions, "guild_channels", "channel_id") == {GENERAL.channel_id, VOICE.channel_id}
    assert await live(sessions, "guild_roles", "role_id") == {G, MOD.role_id}
    assert await rows(sessions, f"SELECT position FROM guild_channels WHERE channel_id = {VOICE.channel_id}") == [(5,)]


async def test_leaving_and_coming_back(sessions: Sessions) -> None:
    await sync_guild(sessions, SNAP)
    await mark_guild_left(sessions, G)
    assert (await rows(sessions, "SELECT left_at IS NOT NULL FROM guilds WHERE guild_id = :g")) == [(True,)]
    result = await sync_guild(sessions, SNAP)
    assert result.guild_changed and not result.rarities_seeded
    assert (await rows(sessions, "SELECT left_at IS NULL FROM guilds WHERE guild_id = :g")) == [(True,)]


async def test_single_channel_and_role_writes(sessions: Sessions) -> None:
    await sync_guild(sessions, SNAP)
    booster = RoleSnapshot(700000000000000021, "Booster", 1, 0, True)
    assert await upsert_role(sessions, G, booster) is True
    assert await upsert_role(sessions, G, booster) is False  # unchanged: not rewritten
    assert await upsert_role(sessions, G, dataclasses.replace(booster, name="Server Booster")) is True
    assert await rows(sessions, f"SELECT name, managed FROM guild_roles WHERE role_id = {booster.role_id}") == [
        ("Server Booster", True)
    ]
    assert await delete_role(sessions, G, booster.role_id) is True
    assert await delete_role(sessions, G, booster.role_id) is False
    assert booster.role_id not in await live(sessions, "guild_roles", "role_id")
    assert await upsert_role(sessions, G, booster) is True  # a role id never comes back on Discord, but if it did
    assert booster.role_id in await live(sessions, "guild_roles", "role_id")

    news = ChannelSnapshot(700000000000000012, "news", "announcement", None, 3)
    await upsert_channel(sessions, G, news)
    assert news.channel_id in await live(sessions, "guild_channels", "channel_id")
    await delete_channel(sessions, G, news.channel_id)
    assert news.channel_id not in await live(sessions, "guild_channels", "channel_id")


def _guild(n: int, *, channels: int = 3, roles: int = 2) -> GuildSnapshot:
    """Guild number `n` of a batch, with ids of its own (800… range, apart from `G`)."""
    gid = 800000000000000000 + n * 1000
    return GuildSnapshot(
        gid,
        f"Batch {n}",
        gid + 999,
        None,
        None,
        [ChannelSnapshot(gid + 100 + c, f"c{c}", "text", None, c) for c in range(channels)],
        [
            RoleSnapshot(gid, "@everyone", 0, 0, False),
            *(RoleSnapshot(gid + 200 + r, f"r{r}", r + 1, 8, False) for r in range(roles)),
        ],
    )


async def structure(sessions: Sessions, guilds: list[int]) -> dict[str, set[tuple[Any, ...]]]:
    """Every stored row of these guilds' structure, deleted flags included, for comparing two ways of syncing."""
    async with sessions() as s:
        out: dict[str, set[tuple[Any, ...]]] = {}
        for table, sql in {
            "guilds": "SELECT guild_id, name, owner_id, afk_channel_id, icon_hash, left_at IS NULL,"
            " defaults_seeded_at IS NOT NULL FROM guilds",
            "channels": "SELECT guild_id, channel_id, name, type, parent_id, position, deleted_at IS NULL"
            " FROM guild_channels",
            "roles": "SELECT guild_id, role_id, name, position, permissions, managed, deleted_at IS NULL"
            " FROM guild_roles",
            "rarities": "SELECT guild_id, name, sort_order FROM achievement_rarities",
        }.items():
            rows = (await s.execute(text(f"{sql} WHERE guild_id = ANY(:g)"), {"g": guilds})).all()
            out[table] = {tuple(r) for r in rows}
        return out


async def test_a_batch_of_guilds_is_stored_exactly_as_each_snapshot_says(sessions: Sessions) -> None:
    snaps = [_guild(n, channels=n % 4, roles=n % 3) for n in range(1, 121)]  # some without channels at all
    results = await sync_guilds(sessions, snaps)
    assert set(results) == {s.guild_id for s in snaps}
    for snap in snaps:
        assert results[snap.guild_id] == SyncResult(True, len(snap.channels), len(snap.roles), True)
    stored = await structure(sessions, [s.guild_id for s in snaps])
    assert stored["channels"] == {
        (s.guild_id, c.channel_id, c.name, c.type, c.parent_id, c.position, True) for s in snaps for c in s.channels
    }
    assert stored["roles"] == {
        (s.guild_id, r.role_id, r.name, r.position, r.permissions, r.managed, True) for s in snaps for r in s.roles
    }
    assert len(stored["rarities"]) == 5 * len(snaps)
    # The same READY again: nothing changes, nothing is notified, nothing seeded twice.
    again = await sync_guilds(sessions, snaps)
    assert set(again.values()) == {SyncResult(False, 0, 0, False)}
    assert await structure(sessions, [s.guild_id for s in snaps]) == stored


async def test_changes_between_two_creates_in_a_batch_equal_syncing_each_guild_alone(sessions: Sessions) -> None:
    """Guilds whose channels and roles changed between two GUILD_CREATEs (renamed, moved, gone, new, back),
    synced in one batch next to unchanged ones, end exactly as when each is synced alone."""
    first = [_guild(n, channels=4, roles=3) for n in range(200, 230)]
    second = []
    for i, snap in enumerate(first):
        if i % 3 == 0:  # unchanged
            second.append(snap)
            continue
        kept = [dataclasses.replace(c, name=f"{c.name}-renamed", position=c.position + 10) for c in snap.channels[1:3]]
        new = ChannelSnapshot(snap.guild_id + 150, "brand-new", "voice", None, 0)
        roles = [snap.roles[0], dataclasses.replace(snap.roles[1], permissions=1 << 40)]  # one role gone
        second.append(dataclasses.replace(snap, name=f"{snap.name}!", channels=[*kept, new], roles=roles))
    batched, alone = second[: len(second) // 2], second[len(second) // 2 :]

    await sync_guilds(sessions, first)
    results = await sync_guilds(sessions, batched)
    for snap in alone:
        await sync_guild(sessions, snap)
    guild_ids = [s.guild_id for s in second]
    stored = await structure(sessions, guild_ids)

    # Batched or alone, each guild's rows are exactly its newest snapshot, and what it no longer holds is marked.
    for snap, old in zip(second, first, strict=True):
        channels = {r[1:] for r in stored["channels"] if r[0] == snap.guild_id}
        roles = {r[1:] for r in stored["roles"] if r[0] == snap.guild_id}
        live_channels = {(c.channel_id, c.name, c.type, c.parent_id, c.position, True) for c in snap.channels}
        live_roles = {(r.role_id, r.name, r.position, r.permissions, r.managed, True) for r in snap.roles}
        assert {c for c in channels if c[-1]} == live_channels
        assert {r for r in roles if r[-1]} == live_roles
        kept_ids = {c.channel_id for c in snap.channels}
        assert {c[0] for c in channels if not c[-1]} == {c.channel_id for c in old.channels} - kept_ids
        assert {r[0] for r in roles if not r[-1]} == {r.role_id for r in old.roles} - {r.role_id for r in snap.roles}
        assert (snap.guild_id, snap.name) in {(g[0], g[1]) for g in stored["guilds"]}
    for i, snap in enumerate(batched):
        # Channels: 2 renamed + 1 new + 2 gone; roles: 1 changed + 2 gone.
        expected = SyncResult(False, 0, 0, False) if i % 3 == 0 else SyncResult(True, 5, 3, False)
        assert results[snap.guild_id] == expected, i

    # A channel deleted, then back in the next create: live again, in a batch.
    back = [
        dataclasses.replace(s, channels=[*s.channels, o.channels[0]])
        for s, o in zip(batched, first[: len(batched)], strict=True)
    ]
    await sync_guilds(sessions, back)
    restored = await structure(sessions, [s.guild_id for s in back])
    for snap, old in zip(back, first[: len(back)], strict=True):
        assert (snap.guild_id, old.channels[0].channel_id) in {(r[0], r[1]) for r in restored["channels"] if r[6]}
