"""The reward pipeline end to end: simulator → real hikari → normalizer → lanes → PostgreSQL (SPEC §8–§10, §27).

One sandbox runtime for the module; each test uses its own members so their balances are independent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from synapse_async.rewards.leveling import curve_for
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services.economy import AwardResult
from tests.pipeline_support import (
    ACTOR,
    GUILD,
    journal,
    member,
    pipeline_runtime,
    query,
    set_settings,
    settle,
    wait_key,
    write_config,
)

U = [100000000000001000 + i for i in range(20)]  # the sandbox members
PLAIN = "hello there, how is everyone doing"  # 34 chars: no quality factor applies


@pytest.fixture(scope="module")
async def sandbox(fresh_database: str) -> AsyncIterator[tuple[Runtime, DiscordSimulator]]:
    async with pipeline_runtime(fresh_database, 20) as rt:
        assert rt.simulator is not None
        yield rt, rt.simulator


async def post(
    sim: DiscordSimulator, user: int, content: str = PLAIN, channel: object = "general", **kw: object
) -> int:
    return int(await sim.message(user, channel, content, **kw))  # type: ignore[arg-type]


async def test_plain_message_pays_base_and_counts(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    message_id = await post(sim, U[0])
    row = await wait_key(rt, f"msg:{message_id}")
    assert (row["event_type"], row["xp_delta"], row["star_delta"], row["zero_reason"]) == ("message", 15, 1, None)
    m = await member(rt, U[0])
    assert m is not None
    assert (m["xp"], m["lifetime_stars"], m["messages_sent"], m["level"]) == (15, 1, 1, 1)
    assert m["last_active_at"] is not None
    lake = await query(rt, "SELECT event_type, payload FROM event_lake WHERE source_key = :k", k=f"msg:{message_id}")
    assert lake[0]["event_type"] == "message_create" and lake[0]["payload"]["length"] == len(PLAIN)
    assert "content" not in lake[0]["payload"]
    counters = await query(rt, "SELECT period, count FROM event_counters WHERE guild_id = :g AND user_id = :u", u=U[0])
    periods = {c["period"]: c["count"] for c in counters}
    assert periods["lifetime"] == 1 and any(p.startswith("day:") for p in periods)


async def test_quality_factors_and_too_short(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    rich = await post(sim, U[1], "look at this ```print('hi')``` and https://example.com please")
    short = await post(sim, U[1], "ok")
    short_with_file = await post(sim, U[1], "ok", attachments=1)
    assert (await wait_key(rt, f"msg:{rich}"))["xp_delta"] == 26  # 15 × 1.4 × 1.25 = 26.25
    too_short = await wait_key(rt, f"msg:{short}")
    assert (too_short["xp_delta"], too_short["zero_reason"]) == (0, "too_short")
    assert (await wait_key(rt, f"msg:{short_with_file}"))["xp_delta"] == 16  # attachments bypass min length: 16.5
    m = await member(rt, U[1])
    assert m is not None and m["messages_sent"] == 3  # zeroed messages still count in stats


async def test_multiplier_rules_first_hit_wins(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    general, help_, community = sim.channel_id("general"), sim.channel_id("help"), sim.channel_id("Community")
    upsert = (
        "INSERT INTO {t} (guild_id, {c}, event_type, xp_multiplier, star_multiplier) VALUES (:g, :x, :e, :m, :m)"
        " ON CONFLICT DO NOTHING"
    )
    await write_config(
        rt, upsert.format(t="channel_type_defaults", c="channel_type"), "channel_type_defaults", x="text", e="*", m=0.5
    )
    m1 = await post(sim, U[2], channel="help")
    first = await wait_key(rt, f"msg:{m1}")
    assert (first["xp_delta"], first["channel_id"]) == (7, help_)  # type default text,* = 0.5
    await write_config(
        rt, upsert.format(t="channel_overrides", c="channel_id"), "channel_overrides", x=community, e="message", m=3
    )
    m2 = await post(sim, U[2], channel="help")
    assert (await wait_key(rt, f"msg:{m2}"))["xp_delta"] == 45  # the category beats the type default
    await write_config(
        rt, upsert.format(t="channel_overrides", c="channel_id"), "channel_overrides", x=general, e="*", m=2
    )
    m3 = await post(sim, U[2], channel="general")
    assert (await wait_key(rt, f"msg:{m3}"))["xp_delta"] == 30  # the channel beats its category
    thread = int(await sim.create_thread("general", U[3], "a thread"))
    m4 = await post(sim, U[2], channel=thread)
    assert (await wait_key(rt, f"msg:{m4}"))["xp_delta"] == 30  # a thread inherits its parent's rule
    thread_row = await wait_key(rt, f"thr:{thread}")
    assert (thread_row["user_id"], thread_row["xp_delta"]) == (U[3], 40)  # thread_create 20 × parent's * rule 2


async def test_role_multipliers_and_no_xp(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    booster = int(await sim.create_role("Booster"))
    helper = int(await sim.create_role("Helper"))
    await sim.update_member(U[4], roles=[booster, helper])
    for role, xm, sm in ((booster, 2.0, 1.0), (helper, 1.5, 3.0)):
        await write_config(
            rt,
            "INSERT INTO role_multipliers (guild_id, role_id, xp_multiplier, star_multiplier) VALUES (:g, :r, :x, :s)",
            "role_multipliers",
            r=role,
            x=xm,
            s=sm,
        )
    m1 = await post(sim, U[4], channel="help")  # help: type default 0.5 × Community override 3 from before → 3
    row = await wait_key(rt, f"msg:{m1}")
    assert (row["xp_delta"], row["star_delta"]) == (90, 9)  # 15 × 3 × 2 (highest XP), 1 × 3 × 3 (highest stars)
    await write_config(
        rt,
        "INSERT INTO no_xp_targets (guild_id, target_type, target_id) VALUES (:g, 'role', :r)",
        "no_xp_targets",
        r=helper,
    )
    m2 = await post(sim, U[4], channel="help")
    row = await wait_key(rt, f"msg:{m2}")
    assert (row["xp_delta"], row["star_delta"], row["zero_reason"]) == (0, 0, "no_xp")


async def test_duplicates_and_replays_change_nothing_twice(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    ids = [await post(sim, U[5]) for _ in range(3)]
    await wait_key(rt, f"msg:{ids[-1]}")
    await sim.replay_last(3)
    marker = await post(sim, U[6])
    await wait_key(rt, f"msg:{marker}")
    await settle(rt)
    rows = await journal(rt, U[5], "message")
    assert [r["idempotency_key"] for r in rows] == [f"msg:{i}" for i in ids]
    m = await member(rt, U[5])
    assert m is not None and (m["xp"], m["messages_sent"]) == (sum(r["xp_delta"] for r in rows), 3)
    assert m["xp"] == 90  # 3 × 15 × 2 (#general's override), paid once each
    lake = await query(rt, "SELECT count(*) AS n FROM event_lake WHERE guild_id = :g AND user_id = :u", u=U[5])
    assert lake[0]["n"] == 3
    assert rt.pipeline is not None and rt.pipeline.stats.duplicates >= 3


async def test_thread_and_its_starter_message_both_pay(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    starter = await post(sim, U[7])
    thread = int(await sim.create_thread("general", U[7], "from a message", from_message=starter))
    assert thread == starter  # Discord: a thread started from a message shares its snowflake
    await wait_key(rt, f"thr:{thread}")
    assert (await wait_key(rt, f"msg:{starter}"))["event_type"] == "message"


async def test_pipeline_and_economy_writing_one_member_concurrently_lose_nothing(
    sandbox: tuple[Runtime, DiscordSimulator],
) -> None:
    """200 messages through the pipeline while manual awards hit the same member row (SPEC §27 item 2)."""
    rt, sim = sandbox
    assert rt.components.db is not None and rt.components.cache is not None and rt.economy is not None
    messages_done = asyncio.Event()
    awards: list[AwardResult] = []

    async def burst() -> list[int]:
        ids: list[int] = []
        for wave in range(10):  # in waves, so the lane commits many small batches while the awards run
            ids += await asyncio.gather(*(post(sim, U[8], f"burst message number {wave}-{i:02d}") for i in range(20)))
            await asyncio.sleep(0.02)
        await wait_key(rt, f"msg:{max(ids)}")
        await settle(rt)
        messages_done.set()
        return ids

    async def award_until_done() -> None:
        while not messages_done.is_set() or len(awards) < 5:
            result = await rt.economy.award(
                guild_id=GUILD,
                user_id=U[8],
                xp=7,
                gold=3,
                reason="concurrent award",
                actor=ACTOR,
                request_id=f"concurrent-{len(awards):04d}",
            )
            awards.append(result)

    await asyncio.gather(burst(), award_until_done())
    m = await member(rt, U[8])
    rows = await journal(rt, U[8], "message")
    award_rows = await journal(rt, U[8], "manual_award")
    assert m is not None and len(rows) == 200 and m["messages_sent"] == 200
    assert len(award_rows) == len(awards) and all(a.xp_applied == 7 and a.gold_applied == 3 for a in awards)
    # The two writers really interleaved on the row: awards were committed between the first and last message.
    first, last = min(r["id"] for r in rows), max(r["id"] for r in rows)
    assert any(first < r["id"] < last for r in award_rows)
    assert m["xp"] == sum(r["xp_delta"] for r in rows) + sum(
        r["xp_delta"] for r in await journal(rt, U[8]) if r["event_type"] != "message"
    )
    ledger = await query(rt, "SELECT coalesce(sum(delta), 0) AS s FROM gold_ledger WHERE user_id = :u", u=U[8])
    assert m["gold"] == ledger[0]["s"]
    assert m["level"] == curve_for(100, 1.25).level(m["xp"])


async def test_multi_level_jump_pays_gold_once_per_level(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    rt, sim = sandbox
    await set_settings(rt, {"rewards.message.xp": 1000})
    try:
        message_id = await post(sim, U[9], channel="general")  # general: × 2 → 2000 XP
        await wait_key(rt, f"msg:{message_id}")
        level_row = await wait_key(rt, f"msg:{message_id}#lvl")
        m = await member(rt, U[9])
        assert m is not None and m["xp"] == 2000
        expected = curve_for(100, 1.25).level(2000)
        assert (m["level"], m["peak_level"]) == (expected, expected) == (14, 14)
        assert level_row["details"] == {"from": 1, "to": 14, "bonus": 13 * 50}
        assert m["gold"] == 650
        ledger = await query(rt, "SELECT delta, balance_after, reason FROM gold_ledger WHERE user_id = :u", u=U[9])
        assert ledger == [{"delta": 650, "balance_after": 650, "reason": "level_up"}]
    finally:
        await set_settings(rt, {"rewards.message.xp": 15})


async def test_a_permanent_error_drops_only_the_faulty_event(sandbox: tuple[Runtime, DiscordSimulator]) -> None:
    from datetime import UTC, datetime

    from synapse_async.domain.events import MemberRef, VoiceTick

    rt, sim = sandbox
    assert rt.pipeline is not None
    failed = rt.pipeline.stats.failed
    # A tick with negative minutes violates the members CHECK (voice_minutes >= 0): a bug, not an outage.
    bad = VoiceTick(
        guild_id=GUILD,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        member=MemberRef(user_id=U[10], display_name="x", avatar_hash=None),
        channel_id=sim.channel_id("Lounge"),
        minutes=-5,
    )
    rt.pipeline.submit(bad)
    after = await post(sim, U[11])
    await wait_key(rt, f"msg:{after}")  # the lane went on
    await settle(rt)
    assert rt.pipeline.stats.failed == failed + 1
    assert await member(rt, U[10]) is None  # nothing of the faulty event was written
