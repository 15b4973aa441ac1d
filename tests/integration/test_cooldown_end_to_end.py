"""Message cooldowns with the DEFAULT setting, end to end (SPEC §9.3): simulator → hikari → pipeline → PostgreSQL.

Every other pipeline module turns the cooldown off; here the guild keeps the registry default (30 s, scope `user`),
restored through the settings service's own reset, so what is tested is what a fresh guild runs. Messages are
backdated (`at=`): the cooldown is decided on event time (the snowflake's), so the tests never wait for a clock.
Each test uses its own members, because the cooldown cache is per member and lives for the whole module.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services.settings import reset_setting
from synapse_async.settings.registry import REGISTRY
from tests.pipeline_support import (
    ACTOR,
    GUILD,
    MEMBERS_30,
    PLAIN,
    query,
    runtime_with_plain_channel,
    set_settings,
    settle,
    wait_key,
)
from tests.support import wait_for

U = MEMBERS_30
Sandbox = tuple[Runtime, DiscordSimulator, int]
COOLDOWN = 30  # the registry default, asserted by the fixture


@pytest.fixture(scope="module")
async def default_cooldown(fresh_database: str) -> AsyncIterator[Sandbox]:
    """A pipeline runtime whose guild has NO cooldown override (the default 30 s, scope `user`)."""
    async with runtime_with_plain_channel(fresh_database, 30) as (rt, plain):
        assert rt.simulator is not None and rt.components.db is not None and rt.components.cache is not None
        cache = rt.components.cache
        await reset_setting(rt.components.db.sessions, GUILD, "cooldown.seconds", ACTOR)
        await wait_for(lambda: cache.settings(GUILD).is_default("cooldown.seconds"))
        assert REGISTRY["cooldown.seconds"].default == COOLDOWN == cache.settings(GUILD).int("cooldown.seconds")
        assert (
            cache.settings(GUILD).is_default("cooldown.scope") and cache.settings(GUILD).str("cooldown.scope") == "user"
        )
        yield rt, rt.simulator, plain


def _base() -> datetime:
    """An event time safely in the past: backdated messages never collide with live ones."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


async def _post_one_by_one(rt: Runtime, sim: DiscordSimulator, posts: Sequence[tuple[int, int, int]]) -> list[str]:
    """Post (user, channel, seconds after base) one at a time, each committed before the next is sent (so every
    message is its own micro-batch); return the `zero_reason` of each ("" when paid)."""
    base, reasons = _base(), []
    for user, channel, offset in posts:
        msg = int(await sim.message(user, channel, PLAIN, at=base + timedelta(seconds=offset)))
        row = await wait_key(rt, f"msg:{msg}")
        reasons.append(row["zero_reason"] or "")
    return reasons


async def _new_channel(rt: Runtime, sim: DiscordSimulator, name: str) -> int:
    assert rt.components.cache is not None
    cache = rt.components.cache
    channel = int(await sim.create_channel(name, "announcement"))
    await wait_for(lambda: channel in cache.guild(GUILD).channels)
    return channel


async def _new_thread(rt: Runtime, sim: DiscordSimulator, parent: int, owner: int) -> int:
    """A thread the gateway cache knows, so its messages carry their parent (and are told apart from channels)."""
    thread = int(await sim.create_thread(parent, owner, "cooldown thread"))
    await wait_key(rt, f"thr:{thread}")
    return thread


async def test_user_scope_spans_every_channel_and_thread(default_cooldown: Sandbox) -> None:
    rt, sim, plain = default_cooldown
    other = await _new_channel(rt, sim, "other-user-scope")
    user = U[0]
    thread = await _new_thread(rt, sim, plain, user)
    reasons = await _post_one_by_one(
        rt,
        sim,
        [
            (user, plain, 0),  # paid
            (user, other, 5),  # another channel, same member: inside the member's cooldown
            (user, thread, 10),  # a thread too
            (user, plain, COOLDOWN - 1),  # 29 s after the paid one: still inside
            (user, thread, COOLDOWN),  # exactly 30 s: the window `0 ≤ Δ < 30` is over
            (user, other, COOLDOWN + 5),
        ],
    )
    assert reasons == ["", "cooldown", "cooldown", "cooldown", "", "cooldown"]


async def test_channel_scope_keeps_one_cooldown_per_channel_and_per_thread(default_cooldown: Sandbox) -> None:
    rt, sim, plain = default_cooldown
    other = await _new_channel(rt, sim, "other-channel-scope")
    user = U[1]
    thread = await _new_thread(rt, sim, plain, user)
    await set_settings(rt, {"cooldown.scope": "channel"})
    try:
        reasons = await _post_one_by_one(
            rt,
            sim,
            [
                (user, plain, 0),  # paid: starts plain's cooldown
                (user, thread, 2),  # paid: a thread is its own channel, not its parent
                (user, other, 4),  # paid: another channel
                (user, plain, 10),  # plain's cooldown
                (user, thread, 12),  # the thread's own cooldown
                (user, other, 14),
                (user, plain, COOLDOWN),  # plain's window is over; the others are not
                (user, thread, COOLDOWN + 1),
                (user, other, COOLDOWN + 4),  # 30 s after its paid message at 4
            ],
        )
        assert reasons == ["", "", "", "cooldown", "cooldown", "cooldown", "", "cooldown", ""]
        # The scope key is the member per channel: another member in the same channel is not affected.
        assert await _post_one_by_one(rt, sim, [(U[2], plain, 1)]) == [""]
    finally:
        await set_settings(rt, {"cooldown.scope": "user"})


# Event times (s after base) with their outcome under the default 30 s cooldown, including out-of-order times: a
# message at 150 arriving after the paid one at 200 is paid (Δ < 0 is no cooldown), yet the member's last paid
# time stays 200, so the message at 220 is inside the cooldown. An overlay that kept the last PROCESSED paid time
# (150) instead of the latest would pay it.
SEQUENCE = [0, 10, 31, 45, 200, 150, 220, 231]
EXPECTED = ["", "cooldown", "", "cooldown", "", "", "cooldown", ""]


@contextlib.asynccontextmanager
async def _lane_held(rt: Runtime, sim: DiscordSimulator, channel: int, blocker: int) -> AsyncIterator[None]:
    """Hold the guild's lane: the blocker's member row is locked, and a message of theirs is in flight and waits for
    it, so whatever arrives meanwhile queues up and is taken as ONE micro-batch once the block is released."""
    assert rt.components.db is not None and rt.pipeline is not None
    pipeline = rt.pipeline
    await wait_key(rt, f"msg:{int(await sim.message(blocker, channel, PLAIN))}")  # the row to lock exists
    async with rt.components.db.engine.connect() as locker:
        await locker.execute(
            text("SELECT 1 FROM members WHERE guild_id = :g AND user_id = :u FOR UPDATE"), {"g": GUILD, "u": blocker}
        )
        await sim.message(blocker, channel, f"{PLAIN} (blocked)")

        async def waiting_on_the_lock() -> bool:
            rows = await query(
                rt,
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            return bool(rows[0]["n"])

        await wait_for(waiting_on_the_lock)
        assert pipeline.snapshot()["buffered"] == 1  # only the blocked message: the lane is busy with it
        yield
        await locker.rollback()


async def test_one_micro_batch_decides_cooldowns_like_separate_batches(default_cooldown: Sandbox) -> None:
    rt, sim, plain = default_cooldown
    assert rt.pipeline is not None
    stats = rt.pipeline.stats
    one_by_one = await _post_one_by_one(rt, sim, [(U[3], plain, s) for s in SEQUENCE])
    assert one_by_one == EXPECTED

    user, base = U[4], _base()
    async with _lane_held(rt, sim, plain, blocker=U[5]):
        batches, replayed = stats.batches, stats.replayed_batches
        ids = [int(await sim.message(user, plain, PLAIN, at=base + timedelta(seconds=s))) for s in SEQUENCE]
        await wait_for(lambda: rt.pipeline is not None and rt.pipeline.snapshot()["buffered"] == 1 + len(ids))
    await settle(rt)
    # The blocked message's transaction, then all of SEQUENCE in one more, never replayed one by one.
    assert (stats.batches - batches, stats.replayed_batches - replayed) == (2, 0)
    in_batch = [(await wait_key(rt, f"msg:{i}"))["zero_reason"] or "" for i in ids]
    assert in_batch == EXPECTED == one_by_one


async def test_a_batch_sees_the_cooldown_committed_by_an_earlier_batch(default_cooldown: Sandbox) -> None:
    """The overlay starts from the committed cooldown cache: a paid message of an earlier transaction still counts."""
    rt, sim, plain = default_cooldown
    user, base = U[6], _base()
    first = int(await sim.message(user, plain, PLAIN, at=base))
    assert (await wait_key(rt, f"msg:{first}"))["zero_reason"] is None
    async with _lane_held(rt, sim, plain, blocker=U[7]):
        ids = [int(await sim.message(user, plain, PLAIN, at=base + timedelta(seconds=s))) for s in (20, 29, 30, 40)]
        await wait_for(lambda: rt.pipeline is not None and rt.pipeline.snapshot()["buffered"] == 1 + len(ids))
    await settle(rt)
    assert [(await wait_key(rt, f"msg:{i}"))["zero_reason"] for i in ids] == ["cooldown", "cooldown", None, "cooldown"]
