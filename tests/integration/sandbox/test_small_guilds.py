"""`--extra-guilds`: the minimal guilds the scale benchmark adds to the simulator's world (SPEC §25)."""

from __future__ import annotations

import hikari

from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.__main__ import parse_args
from synapse_async.sandbox.workload import add_small_guilds
from synapse_async.sandbox.world import ChannelType, build_sandbox_world
from tests.support import wait_for

from .conftest import make_bot, running


def test_small_guilds_each_have_a_channel_the_bot_and_an_owner() -> None:
    world = build_sandbox_world(members=1)
    before = set(world.guilds)
    ids = add_small_guilds(world, 3)
    assert len(set(ids)) == 3 and set(world.guilds) == before | set(ids)
    for guild_id in ids:
        guild = world.guilds[guild_id]
        assert [c.type for c in guild.channels.values()] == [ChannelType.TEXT]
        assert set(guild.members) == {world.bot_user_id, guild.owner_id}
        (bot_role,) = guild.members[world.bot_user_id].roles
        assert guild.roles[bot_role].managed and guild.roles[bot_role].bot_id == world.bot_user_id
    assert parse_args(["--extra-guilds", "3"]).extra_guilds == 3


async def test_a_bot_receives_every_extra_guild() -> None:
    sim = DiscordSimulator(members=2, seed=7)
    ids = add_small_guilds(sim.world, 5)
    await sim.start()
    try:
        bot = make_bot(sim)
        async with running(bot, sim):
            await wait_for(lambda: {hikari.Snowflake(g) for g in ids} <= set(bot.cache.get_guilds_view()))
            assert all(len(bot.cache.get_guild_channels_view_for_guild(g)) == 1 for g in ids)
    finally:
        await sim.stop()
