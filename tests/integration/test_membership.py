"""Members joining and leaving, and guilds the bot has left, through the real pipeline (SPEC §7.1, §13, §15.1).

Simulator → real hikari → normalizer → pipeline → PostgreSQL, one sandbox runtime for the module; each test uses
its own members (and the guild test its own guild, since it removes the bot from it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from synapse_async.domain.events import MemberRef, MessageCreated
from synapse_async.domain.metadata import derive_metadata
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.world import snowflake_for
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, member, query, set_settings, settle, wait_key, write_config
from tests.support import wait_for

U = MEMBERS_30
Sandbox = tuple[Runtime, DiscordSimulator, int]


async def _lake(rt: Runtime, user: int, kind: str, guild: int = GUILD) -> list[dict[str, Any]]:
    return await query(
        rt,
        "SELECT * FROM event_lake WHERE guild_id = :g AND user_id = :u AND event_type = :k ORDER BY id",
        g=guild,
        u=user,
        k=kind,
    )


async def _wait_lake(rt: Runtime, user: int, kind: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` lake rows of `kind` exist for the member and return them (oldest first)."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        found[:] = await _lake(rt, user, kind)
        return len(found) >= count

    await wait_for(enough)
    return found


async def test_join_leave_and_rejoin_mark_the_member_row_and_the_lake(plain_sandbox: Sandbox) -> None:
    rt, sim, plain = plain_sandbox
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    newcomer = int(await sim.join(username="newcomer", joined_at=first))
    (join,) = await _wait_lake(rt, newcomer, "member_join", 1)
    assert join["payload"]["is_rejoin"] is False and join["payload"]["joined_at"] == first.isoformat()
    row = await member(rt, newcomer)
    assert row is not None and (row["joined_at"], row["left_at"]) == (first, None)
    await wait_key(rt, f"msg:{int(await sim.message(newcomer, plain, PLAIN))}")  # earns something to keep

    await sim.leave(newcomer)
    (leave,) = await _wait_lake(rt, newcomer, "member_leave", 1)
    row = await member(rt, newcomer)
    assert row is not None and row["left_at"] is not None and row["left_at"] == leave["occurred_at"]
    assert leave["payload"]["joined_at"] == first.isoformat()
    assert leave["payload"]["membership_seconds"] == int((leave["occurred_at"] - first).total_seconds())

    second = first + timedelta(days=1)
    await sim.join(newcomer, joined_at=second)
    joins = await _wait_lake(rt, newcomer, "member_join", 2)
    assert [j["payload"]["is_rejoin"] for j in joins] == [False, True]
    row = await member(rt, newcomer)
    # Back: `left_at` cleared, `joined_at` the new one, and what was earned before is kept (data is never dropped).
    assert row is not None and (row["joined_at"], row["left_at"], row["xp"]) == (second, None, 15)


async def test_restore_on_rejoin_syncs_level_roles_only_when_enabled(plain_sandbox: Sandbox) -> None:
    rt, sim, plain = plain_sandbox
    reward = int(await sim.create_role("Level 2 (rejoin)", position=1))
    await write_config(
        rt,
        "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, 2)",
        "level_role_rewards",
        r=reward,
    )
    kept_off, restored = U[10], U[11]

    def patches(user: int, since: int) -> list[Any]:
        return [c for c in sim.rest_calls[since:] if c.method == "PATCH" and c.path.endswith(f"/members/{user}")]

    def holds_reward(user: int) -> bool:
        found = sim.guild().members.get(user)
        return found is not None and reward in found.roles

    start = len(sim.rest_calls)
    await set_settings(rt, {"rewards.message.xp": 200})  # one message: level 4, which earns the level-2 role
    try:
        for user in (kept_off, restored):
            await wait_key(rt, f"msg:{int(await sim.message(user, plain, PLAIN))}#lvl")
            await wait_for(lambda user=user: holds_reward(user))  # type: ignore[misc]
    finally:
        await set_settings(rt, {"rewards.message.xp": 15})
    assert all(len(patches(user, start)) == 1 for user in (kept_off, restored))

    for user in (kept_off, restored):
        await sim.leave(user)
        await _wait_lake(rt, user, "member_leave", 1)

    # Off (the default): the member comes back without roles and nothing is written to Discord.
    rejoined = len(sim.rest_calls)
    await sim.join(kept_off)
    await _wait_lake(rt, kept_off, "member_join", 1)
    await settle(rt)

    await set_settings(rt, {"level_roles.restore_on_rejoin": True})
    try:
        await sim.join(restored)
        await wait_for(lambda: holds_reward(restored))
    finally:
        await set_settings(rt, {"level_roles.restore_on_rejoin": False})
    (call,) = patches(restored, rejoined)
    assert reward in {int(r) for r in call.json["roles"]}
    # Requests are synced in commit order: the earlier rejoin would have been written before this one.
    assert patches(kept_off, rejoined) == [] and not holds_reward(kept_off)
    m = await member(rt, kept_off)
    assert m is not None and m["level"] == 4  # the level is kept either way; only the roles differ


async def test_events_of_a_guild_the_bot_left_are_ignored(plain_sandbox: Sandbox) -> None:
    rt, sim, plain = plain_sandbox
    assert rt.components.cache is not None and rt.pipeline is not None and rt.gateway is not None
    cache, normalizer = rt.components.cache, rt.gateway.normalizer  # type: ignore[attr-defined]
    other = int(await sim.create_guild("Elsewhere"))
    owner = sim.guild(other).owner_id
    general = sim.channel_id("general", other)
    await wait_for(lambda: general in cache.guild(other).channels)
    past = datetime.now(UTC) - timedelta(hours=1)  # backdated: the default cooldown never hides a reward below
    served = int(await sim.message(owner, general, PLAIN, at=past, guild=other))
    assert (await _journal(rt, other, f"msg:{served}"))["zero_reason"] is None  # served: rewarded

    await sim.remove_guild(other)
    await wait_for(lambda: (info := cache.guild(other).info) is not None and info.left)
    assert (await query(rt, "SELECT left_at FROM guilds WHERE guild_id = :g", g=other))[0]["left_at"] is not None

    # A message that still reaches the gateway for the left guild: gated by the normalizer.
    _, record = next((s, r) for s, r in sim.gateway.dispatched("MESSAGE_CREATE") if r.d["id"] == str(served))
    late = snowflake_for(datetime.now(UTC), 1)
    gated = normalizer.gated
    await sim.gateway.dispatch("MESSAGE_CREATE", {**record.d, "id": str(late)}, guild_id=other)
    await wait_for(lambda: normalizer.gated > gated)
    # Then one in the served guild: the gateway delivers in order, so once it is committed the late one was handled.
    marker = int(await sim.message(U[20], plain, PLAIN))
    await wait_key(rt, f"msg:{marker}")
    # One buffered from before the leave (e.g. during an outage) reaches the lane after it: gated there too.
    buffered = int(snowflake_for(datetime.now(UTC), 2))
    rt.pipeline.submit(
        MessageCreated(
            guild_id=other,
            occurred_at=datetime.now(UTC),
            channel_id=general,
            parent_id=None,
            message_id=buffered,
            author=MemberRef(user_id=owner, display_name="owner", avatar_hash=None),
            meta=derive_metadata(PLAIN),
        )
    )
    await settle(rt)
    for message in (late, buffered):
        assert await query(rt, "SELECT 1 FROM reward_journal WHERE idempotency_key = :k", k=f"msg:{message}") == []
        assert await query(rt, "SELECT 1 FROM event_lake WHERE source_key = :k", k=f"msg:{message}") == []

    # Invited back: the same guild is served again, so it was the departure that silenced it.
    await sim.events.guild_create("Elsewhere", sim.world.user(owner), guild_id=other)
    await wait_for(lambda: (info := cache.guild(other).info) is not None and not info.left)
    back = sim.channel_id("general", other)
    await wait_for(lambda: back in cache.guild(other).channels)
    again = int(await sim.message(owner, back, PLAIN, guild=other))
    assert (await _journal(rt, other, f"msg:{again}"))["zero_reason"] is None


async def _journal(rt: Runtime, guild: int, key: str) -> dict[str, Any]:
    """The journal row `key` of `guild` once it is committed (`wait_key` is for the module's own guild)."""
    rows: list[dict[str, Any]] = []

    async def present() -> bool:
        rows[:] = await query(
            rt, "SELECT * FROM reward_journal WHERE guild_id = :g AND idempotency_key = :k", g=guild, k=key
        )
        return bool(rows)

    await wait_for(present)
    return rows[0]
