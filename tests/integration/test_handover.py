"""The cross-process handover on `synapse_events` (SPEC §3.4, §16.3), with two processes on one database.

Two complete runtimes (each its own pool, LISTEN connection, real hikari client, announcer and role syncer) run
one shard each of a 2-shard deployment against one simulator and one PostgreSQL database. An award served by the
process that does NOT own the guild must be announced and role-synced by the one that does.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from synapse_async.domain.snowflakes import shard_of
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from tests.pipeline_support import ACTOR, ADMIN, ALICE, GUILD, member, write_config
from tests.support import make_runtime, wait_for


@pytest.fixture
async def two_processes(fresh_database: str) -> AsyncIterator[tuple[DiscordSimulator, Runtime, Runtime]]:
    sim = DiscordSimulator(members=5, seed=7, heartbeat_interval_ms=1000)
    await sim.start()
    env = {"DISCORD_TOKEN": sim.token, "DISCORD_API_URL": sim.api_url, "JWT_SECRET": secrets.token_urlsafe(48)}
    owned = shard_of(GUILD, 2)
    owner = make_runtime(fresh_database, **env, SHARD_COUNT="2", SHARD_IDS=str(owned))
    other = make_runtime(fresh_database, **env, SHARD_COUNT="2", SHARD_IDS=str(1 - owned))
    try:
        await owner.start()
        await other.start()
        for rt in (owner, other):
            cache = rt.components.cache
            assert cache is not None
            await wait_for(lambda c=cache: GUILD in c.known_guild_ids())  # type: ignore[misc]
        yield sim, owner, other
    finally:
        await other.shutdown()
        await owner.shutdown()
        await sim.stop()


async def test_an_award_served_elsewhere_is_announced_and_role_synced_by_the_owner(
    two_processes: tuple[DiscordSimulator, Runtime, Runtime],
) -> None:
    sim, owner, other = two_processes
    assert owner.owns(GUILD) and not other.owns(GUILD)
    assert other.components.db is not None and other.components.cache is not None and other.pipeline is not None
    assert owner.announcer is not None and other.announcer is not None
    assert owner.role_syncer is not None and other.role_syncer is not None
    general = sim.channel_id("general")
    role = int(await sim.create_role("Level 2", position=1))
    await write_config(
        owner,
        "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, 2)",
        "level_role_rewards",
        r=role,
    )
    # API actions have no channel of their own: announcements go to `announce.channel_id`.
    await update_settings(other.components.db.sessions, GUILD, {"announce.channel_id": str(general)}, ACTOR)
    for cache in (owner.components.cache, other.components.cache):
        assert cache is not None
        await wait_for(lambda c=cache: c.settings(GUILD).snowflake("announce.channel_id") == general)  # type: ignore[misc]
        await wait_for(lambda c=cache: bool(c.guild(GUILD).level_roles))  # type: ignore[misc]
    other_cache = other.components.cache
    before = len(sim.rest_calls)

    # The API request lands on the process that does not own the guild.
    await other.economy.award(
        guild_id=GUILD,
        user_id=ALICE,
        xp=200,  # 0 → 200 XP: level 4, past the level-2 reward role
        gold=0,
        reason="Handed over",
        actor=Actor(str(ADMIN), "user", "api"),
        request_id="handover-award-0001",
    )

    def posts() -> list[str]:
        return [
            c.json["embeds"][0]["title"]  # type: ignore[attr-defined]
            for c in sim.rest_calls[before:]
            if c.method == "POST" and c.path.endswith(f"/channels/{general}/messages")
        ]

    def patches() -> list[set[int]]:
        return [
            {int(r) for r in c.json["roles"]}  # type: ignore[attr-defined]
            for c in sim.rest_calls[before:]
            if c.method == "PATCH" and c.path.endswith(f"/members/{ALICE}")
        ]

    await wait_for(lambda: sorted(posts()) == ["Award", "Level up!"] and len(patches()) == 1)
    assert role in patches()[0]
    assert owner.announcer.snapshot()["sent"] == 2 and other.announcer.snapshot()["sent"] == 0
    assert owner.role_syncer.snapshot()["updated"] == 1 and other.role_syncer.snapshot()["updated"] == 0
    m = await member(owner, ALICE)
    assert m is not None and m["level"] == 4  # 195 ≤ 200 < 244

    # A manual grant served elsewhere: the owner re-reads the template and the granting admin.
    await write_config(
        owner,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, trigger_config)"
        " VALUES (:g, 'Handed', 'manual', '{}'::jsonb)",
        "achievement_templates",
    )
    await wait_for(lambda: any(t.name == "Handed" for t in other_cache.guild(GUILD).templates))
    template = next(t for t in other_cache.guild(GUILD).templates if t.name == "Handed")
    await other.economy.grant(
        guild_id=GUILD,
        user_id=ALICE,
        template_id=template.template_id,
        actor=Actor(str(ADMIN), "user", "api"),
        request_id="handover-grant-0001",
    )
    await wait_for(lambda: "Achievement unlocked!" in posts())
    assert owner.announcer.snapshot()["sent"] == 3 and other.announcer.snapshot()["sent"] == 0
