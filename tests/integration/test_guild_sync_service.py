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
