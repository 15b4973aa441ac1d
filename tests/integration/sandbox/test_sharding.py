"""Sharding: each guild reaches exactly one shard, whether the shards live in one bot or in two processes' bots."""

from __future__ import annotations

import hikari

from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, DiscordSimulator
from synapse_async.sandbox.gateway import shard_for_guild

from .conftest import EventLog, make_bot, running

ALICE = SANDBOX_FIRST_MEMBER_ID


async def _second_guild(sim: DiscordSimulator) -> tuple[int, int]:
    """A second guild on the other shard of two; returns (sandbox guild's shard, other guild id)."""
    sandbox_shard = shard_for_guild(SANDBOX_GUILD_ID, 2)
    other = await sim.create_guild("Other", shard=(1 - sandbox_shard, 2))
    assert other.seqs == ()  # no bot connected yet
    await sim.join(ALICE, guild=other)
    assert shard_for_guild(other, 2) != sandbox_shard
    return sandbox_shard, other


def _guild_creates_per_session(sim: DiscordSimulator) -> dict[int, list[int]]:
    return {
        session.shard_id: [int(r.d["id"]) for r in session.dispatches("GUILD_CREATE")]
        for session in sim.gateway.sessions.values()
    }


async def test_two_shards_in_one_bot(sim: DiscordSimulator) -> None:
    sandbox_shard, other = await _second_guild(sim)
    bot = make_bot(sim)
    log = EventLog(bot, hikari.GuildAvailableEvent, hikari.GuildMessageCreateEvent)
    async with running(bot, sim, shard_count=2):
        available = await log.wait_for(hikari.GuildAvailableEvent, count=2)
        assert {e.guild_id: e.shard.id for e in available} == {
            SANDBOX_GUILD_ID: sandbox_shard,
            other: 1 - sandbox_shard,
        }
        assert _guild_creates_per_session(sim) == {sandbox_shard: [SANDBOX_GUILD_ID], 1 - sandbox_shard: [other]}
        assert sorted(tuple(p["shard"]) for p in sim.gateway.identify_payloads) == [(0, 2), (1, 2)]

        in_sandbox = await sim.message(ALICE, "general", "sandbox")
        in_other = await sim.message(ALICE, "general", "other", guild=other)
        assert len(in_sandbox.seqs) == len(in_other.seqs) == 1  # one session each
        events = await log.wait_for(hikari.GuildMessageCreateEvent, count=2)
        assert {e.message_id: e.shard.id for e in events} == {in_sandbox: sandbox_shard, in_other: 1 - sandbox_shard}
        assert bot.cache.get_guild(SANDBOX_GUILD_ID) is not None
        assert bot.cache.get_guild(other) is not None


async def test_two_bots_one_shard_each(sim: DiscordSimulator) -> None:
    sandbox_shard, other = await _second_guild(sim)
    bots = {shard: make_bot(sim) for shard in (0, 1)}
    logs = {shard: EventLog(b, hikari.GuildAvailableEvent, hikari.GuildMessageCreateEvent) for shard, b in bots.items()}
    async with running(bots[0], sim, shard_ids=[0], shard_count=2), running(bots[1], sim, shard_ids=[1], shard_count=2):
        owner_of = {SANDBOX_GUILD_ID: sandbox_shard, other: 1 - sandbox_shard}
        for shard, log in logs.items():
            available = await log.wait_for(hikari.GuildAvailableEvent)
            assert [e.guild_id for e in available] == [g for g, s in owner_of.items() if s == shard]
            assert [g.id for g in bots[shard].cache.get_guilds_view().values()] == [
                g for g, s in owner_of.items() if s == shard
            ]
        for guild in (SANDBOX_GUILD_ID, other):
            message = await sim.message(ALICE, "general", "routed", guild=guild)
            received = await logs[owner_of[guild]].wait_for(
                hikari.GuildMessageCreateEvent, lambda e, m=message: e.message_id == m
            )
            assert received[0].guild_id == guild
        for shard, log in logs.items():
            assert all(owner_of[e.guild_id] == shard for e in log.of(hikari.GuildMessageCreateEvent))
        assert len(log.of(hikari.GuildAvailableEvent)) == 1
