"""The world model on its own: determinism of the sandbox world, snowflakes, sharding, permissions, emoji."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.gateway import shard_for_guild
from synapse_async.sandbox.world import (
    ALL_PERMISSIONS,
    CHANNEL_AFK_ID,
    CHANNEL_GENERAL_ID,
    CHANNEL_LOUNGE_ID,
    DISCORD_EPOCH_MS,
    ROLE_ADMIN_ID,
    ROLE_BOT_ID,
    ROLE_MEMBER_ID,
    SANDBOX_BOT_ID,
    SANDBOX_FIRST_MEMBER_ID,
    SANDBOX_GUILD_ID,
    SANDBOX_OWNER_ID,
    ChannelType,
    Emoji,
    Overwrite,
    Permission,
    SnowflakeGenerator,
    build_sandbox_world,
    snowflake_for,
    snowflake_time,
)


def _fingerprint(members: int, seed: int) -> list[object]:
    world = build_sandbox_world(members=members, seed=seed)
    guild = world.guilds[SANDBOX_GUILD_ID]
    return [(u.id, u.username, u.global_name, u.avatar) for u in world.users.values()] + [
        (m.user_id, m.nick, m.joined_at, tuple(m.roles)) for m in guild.members.values()
    ]


def test_sandbox_world_is_deterministic_per_seed() -> None:
    assert _fingerprint(20, 42) == _fingerprint(20, 42)
    assert _fingerprint(20, 42) != _fingerprint(20, 43)


def test_sandbox_world_layout_matches_spec() -> None:
    world = build_sandbox_world(members=5, seed=1)
    guild = world.guilds[SANDBOX_GUILD_ID]
    assert guild.name == "Sandbox"
    assert guild.owner_id == SANDBOX_OWNER_ID
    assert guild.afk_channel_id == CHANNEL_AFK_ID
    regular = sorted(uid for uid in guild.members if uid >= SANDBOX_FIRST_MEMBER_ID)
    assert regular == [SANDBOX_FIRST_MEMBER_ID + i for i in range(5)]
    assert set(guild.members) == {*regular, SANDBOX_OWNER_ID, SANDBOX_BOT_ID}
    names = {c.name: c for c in guild.channels.values()}
    assert names["Community"].type == ChannelType.CATEGORY
    for child in ("general", "help", "showcase"):
        assert names[child].parent_id == names["Community"].id
    assert names["showcase"].type == ChannelType.FORUM
    assert names["Lounge"].type == ChannelType.VOICE
    assert names["AFK"].type == ChannelType.VOICE
    roles = guild.roles
    assert roles[SANDBOX_GUILD_ID].name == "@everyone"
    assert roles[ROLE_ADMIN_ID].permissions & Permission.ADMINISTRATOR
    assert roles[ROLE_BOT_ID].managed
    assert max(r.position for r in roles.values()) == roles[ROLE_BOT_ID].position
    assert ROLE_ADMIN_ID in guild.members[SANDBOX_OWNER_ID].roles
    assert all(ROLE_MEMBER_ID in guild.members[uid].roles for uid in regular)
    assert world.users[SANDBOX_BOT_ID].bot


def test_snowflakes_encode_the_requested_time() -> None:
    generator = SnowflakeGenerator()
    at = datetime(2024, 5, 17, 12, 30, 15, 250000, tzinfo=UTC)
    ids = [generator.next(at) for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert {snowflake_time(i) for i in ids} == {at}
    assert ids[0] >> 22 == int(at.timestamp() * 1000) - DISCORD_EPOCH_MS
    now_id = generator.next()
    assert abs(snowflake_time(now_id) - datetime.now(UTC)) < timedelta(seconds=2)
    with pytest.raises(ValueError, match="epoch"):
        snowflake_for(datetime(2014, 1, 1, tzinfo=UTC))


def test_shard_formula() -> None:
    assert shard_for_guild(SANDBOX_GUILD_ID, 1) == 0
    assert shard_for_guild(SANDBOX_GUILD_ID, 2) == (SANDBOX_GUILD_ID >> 22) % 2


def test_channel_permissions_apply_overwrites() -> None:
    world = build_sandbox_world(members=2, seed=1)
    guild = world.guilds[SANDBOX_GUILD_ID]
    general = guild.channels[CHANNEL_GENERAL_ID]
    member = SANDBOX_FIRST_MEMBER_ID
    assert guild.channel_permissions(member, general) & Permission.SEND_MESSAGES
    general.overwrites.append(Overwrite(id=guild.id, type=0, deny=int(Permission.SEND_MESSAGES)))
    assert not guild.channel_permissions(member, general) & Permission.SEND_MESSAGES
    general.overwrites.append(Overwrite(id=member, type=1, allow=int(Permission.SEND_MESSAGES)))
    assert guild.channel_permissions(member, general) & Permission.SEND_MESSAGES
    assert guild.channel_permissions(SANDBOX_OWNER_ID, general) == ALL_PERMISSIONS


def test_emoji_parsing() -> None:
    assert Emoji.parse("👍") == Emoji(name="👍")
    assert Emoji.parse("<:party:123>") == Emoji(name="party", id=123)
    assert Emoji.parse("<a:dance:456>") == Emoji(name="dance", id=456, animated=True)
    assert Emoji.parse("party:123").key == "123"


async def test_state_snapshot_is_json_ready() -> None:
    sim = DiscordSimulator(members=3, seed=5)
    await sim.start()
    try:
        await sim.voice(SANDBOX_FIRST_MEMBER_ID, "Lounge", self_mute=True)
        state = json.loads(json.dumps(sim.state()))
    finally:
        await sim.stop()
    (guild,) = state["guilds"]
    assert guild["id"] == str(SANDBOX_GUILD_ID)
    assert len(guild["members"]) == 5
    assert guild["voice"] == [
        {
            "user_id": str(SANDBOX_FIRST_MEMBER_ID),
            "channel_id": str(CHANNEL_LOUNGE_ID),
            "self_mute": True,
            "self_deaf": False,
        }
    ]
