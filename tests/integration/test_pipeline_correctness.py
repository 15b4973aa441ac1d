"""Engine defects found by reading it against the spec, each proven through the real pipeline (simulator → hikari →
lanes → PostgreSQL): series gating by manual tiers (§12.1), full templates after a revoke or reactivation (§12.3,
§12.4), the author's roles for `reaction_received` (§9.1), season attribution by event time (§11), and one level-up
announcement per event (§14). One sandbox runtime; each test uses its own members and deactivates its templates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from synapse_async.rewards.leveling import curve_for
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from tests.pipeline_support import (
    ACTOR,
    GUILD,
    MEMBERS_30,
    PLAIN,
    member,
    query,
    set_settings,
    settle,
    wait_key,
    write_config,
)
from tests.support import wait_for

U = MEMBERS_30


async def _template(rt: Runtime, name: str, trigger: str, config: str, **columns: Any) -> int:
    names = "".join(f", {c}" for c in columns)
    values = "".join(f", :{c}" for c in columns)
    await write_config(
        rt,
        f"INSERT INTO achievement_templates (guild_id, name, trigger_type, trigger_config{names})"
        f" VALUES (:g, :n, :t, CAST(:c AS jsonb){values})",
        "achievement_templates",
        n=name,
        t=trigger,
        c=config,
        **columns,
    )
    rows = await query(rt, "SELECT id FROM achievement_templates WHERE guild_id = :g AND name = :n", n=name)
    return int(rows[0]["id"])


async def _set_active(rt: Runtime, template_id: int, active: bool, *, notify: bool = True) -> None:
    sql = "UPDATE achievement_templates SET active = :a WHERE id = :i"
    if notify:
        await write_config(rt, sql, "achievement_templates", a=active, i=template_id)
        return
    assert rt.components.db is not None
    async with rt.components.db.sessions.begin() as s:  # a change whose NOTIFY has not arrived yet
        await s.execute(text(sql), {"a": active, "i": template_id})


async def _badges(rt: Runtime, user: int) -> list[tuple[int, str]]:
    rows = await query(
        rt,
        "SELECT template_id, source FROM member_achievements WHERE guild_id = :g AND user_id = :u ORDER BY 1",
        u=user,
    )
    return [(r["template_id"], r["source"]) for r in rows]


async def _message(rt: Runtime, sim: DiscordSimulator, user: int, channel: int, **kw: Any) -> int:
    message_id = int(await sim.message(user, channel, PLAIN, **kw))
    await wait_key(rt, f"msg:{message_id}")
    await settle(rt)
    return message_id


async def test_a_manual_lower_tier_gates_the_series(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, plain = plain_sandbox
    assert rt.components.db is not None and rt.components.cache is not None and rt.pipeline is not None
    await write_config(
        rt, "INSERT INTO achievement_series (guild_id, name) VALUES (:g, 'Helper')", "achievement_series"
    )
    series = (await query(rt, "SELECT id FROM achievement_series WHERE guild_id = :g AND name = 'Helper'"))[0]["id"]
    tier1 = await _template(rt, "Helper I", "manual", "{}", series_id=series, series_order=1)
    tier2 = await _template(
        rt, "Helper II", "stat_threshold", '{"stat": "messages_sent", "value": 1}', series_id=series, series_order=2
    )
    user = U[0]
    try:
        await _message(rt, sim, user, plain)
        assert await _badges(rt, user) == []  # tier 1 (manual) not earned: tier 2 is not earnable yet
        await rt.economy.grant(
            guild_id=GUILD,
            user_id=user,
            template_id=tier1,
            actor=ACTOR,
            request_id="series-gate-1",
        )
        second = await _message(rt, sim, user, plain)
        assert await _badges(rt, user) == [(tier1, "grant"), (tier2, "auto")]
        assert await wait_key(rt, f"msg:{second}#ach:{tier2}")  # earned by the next change, not before
    finally:
        await _set_active(rt, tier2, False)


async def test_a_revoke_frees_a_full_template_for_the_next_change(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    assert rt.components.db is not None and rt.components.cache is not None and rt.pipeline is not None
    template = await _template(
        rt, "First talker", "stat_threshold", '{"stat": "messages_sent", "value": 1}', max_earners=1
    )
    first, second = U[1], U[2]
    try:
        await _message(rt, sim, first, plain)
        assert await _badges(rt, first) == [(template, "auto")]
        await _message(rt, sim, second, plain)
        assert await _badges(rt, second) == []  # full: max_earners 1
        await rt.economy.revoke(
            guild_id=GUILD,
            user_id=first,
            template_id=template,
            actor=ACTOR,
            request_id="free-a-slot-1",
            reason="slot for someone else",
        )
        again = await _message(rt, sim, second, plain)
        assert await _badges(rt, second) == [(template, "auto")]  # the freed slot goes to the next change
        assert await wait_key(rt, f"msg:{again}#ach:{template}")
        counted = await query(rt, "SELECT earned_count FROM achievement_templates WHERE id = :i", i=template)
        assert counted == [{"earned_count": 1}]
    finally:
        await _set_active(rt, template, False)


async def test_a_template_found_inactive_is_earned_again_after_reactivation(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    template = await _template(rt, "Regular", "stat_threshold", '{"stat": "messages_sent", "value": 1}')
    user = U[3]
    try:
        # Deactivated in the database while the cache still lists it: the claim fails, as for a full template.
        await _set_active(rt, template, False, notify=False)
        await _message(rt, sim, user, plain)
        assert await _badges(rt, user) == []
        await _set_active(rt, template, True)  # reactivated (with its NOTIFY)
        again = await _message(rt, sim, user, plain)
        assert await _badges(rt, user) == [(template, "auto")]
        assert await wait_key(rt, f"msg:{again}#ach:{template}")
    finally:
        await _set_active(rt, template, False)


async def test_reaction_received_applies_the_authors_roles(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    loud = int(await sim.create_role("Loud author"))
    muted = int(await sim.create_role("Muted author"))
    await write_config(
        rt,
        "INSERT INTO role_multipliers (guild_id, role_id, xp_multiplier, star_multiplier) VALUES (:g, :r, 3, 2)",
        "role_multipliers",
        r=loud,
    )
    await write_config(
        rt,
        "INSERT INTO no_xp_targets (guild_id, target_type, target_id) VALUES (:g, 'role', :r)",
        "no_xp_targets",
        r=muted,
    )
    reactor, boosted, silenced = U[4], U[5], U[6]
    await sim.update_member(boosted, roles=[loud])
    await sim.update_member(silenced, roles=[muted])
    boosted_msg = int(await sim.message(boosted, plain, PLAIN))
    silenced_msg = int(await sim.message(silenced, plain, PLAIN))
    await sim.react(reactor, boosted_msg, "👍")
    await sim.react(reactor, silenced_msg, "👍")
    received = await wait_key(rt, f"rr:{boosted_msg}:{reactor}")
    assert (received["xp_delta"], received["star_delta"], received["zero_reason"]) == (9, 2, None)  # 3 × 3, 1 × 2
    silent = await wait_key(rt, f"rr:{silenced_msg}:{reactor}")
    assert (silent["xp_delta"], silent["star_delta"], silent["zero_reason"]) == (0, 0, "no_xp")
    # The reactor holds neither role: their own item is paid at the base rate (first pair reaction: 2 XP, 1 star).
    given = await wait_key(rt, f"rg:{boosted_msg}:{reactor}")
    assert (given["xp_delta"], given["star_delta"]) == (2, 1)


async def test_one_level_up_announcement_per_event(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, _ = plain_sandbox
    assert rt.components.cache is not None
    cache = rt.components.cache
    channel = int(await sim.create_channel("level-ups", "announcement"))  # its own 3-per-minute throttle
    await wait_for(lambda: channel in cache.guild(GUILD).channels)
    template = await _template(
        rt, "Big welcome", "stat_threshold", '{"stat": "messages_sent", "value": 1}', xp_reward=1000
    )
    user = U[7]
    before = len(sim.rest_calls)
    await set_settings(rt, {"rewards.message.xp": 200})
    try:
        message_id = await _message(rt, sim, user, channel)
        # The message crossed some levels; the achievement's 1,000 XP, in the same event, crossed several more.
        curve = curve_for(100, 1.25)
        assert (await wait_key(rt, f"msg:{message_id}#lvl"))["details"]["to"] == curve.level(200) > 1
        final = curve.level(1200)
        assert final > curve.level(200)
        assert (await wait_key(rt, f"msg:{message_id}#ach:{template}#lvl"))["details"]["to"] == final
        m = await member(rt, user)
        assert m is not None and m["level"] == final and m["gold"] == (final - 1) * 50

        def posts() -> list[dict[str, Any]]:
            return [
                c.json["embeds"][0]  # type: ignore[attr-defined]
                for c in sim.rest_calls[before:]
                if c.method == "POST" and c.path.endswith(f"/channels/{channel}/messages")
            ]

        # Level-ups are queued before the achievement on the same channel FIFO: once it is posted, all are.
        await wait_for(lambda: any(p["title"] == "Achievement unlocked!" for p in posts()))
        level_ups = [p for p in posts() if p["title"] == "Level up!"]
        assert len(level_ups) == 1
        assert f"**Level {final}**" in level_ups[0]["description"]
        assert f"+{(final - 1) * 50} " in level_ups[0]["description"]  # all the gold the event paid
    finally:
        await set_settings(rt, {"rewards.message.xp": 15})
        await _set_active(rt, template, False)


async def test_events_are_attributed_to_the_season_of_their_own_time(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    """A message buffered across a rollover (backdated into the ended season) still belongs to that season."""
    rt, sim, plain = plain_sandbox
    assert rt.components.cache is not None
    cache = rt.components.cache
    now = datetime.now(UTC)
    boundary = now - timedelta(hours=1)
    await write_config(
        rt,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, ended_at, status)"
        " VALUES (:g, 'Old', :s1, :b, :b, 'ended'), (:g, 'New', :b, :e2, NULL, 'active')",
        "seasons",
        s1=now - timedelta(days=2),
        b=boundary,
        e2=now + timedelta(days=1),
    )
    seasons = {r["name"]: r["season_id"] for r in await query(rt, "SELECT name, season_id FROM seasons")}
    assert cache.guild(GUILD).active_season is not None
    assert cache.guild(GUILD).active_season.season_id == seasons["New"]
    user = U[8]
    buffered = await _message(rt, sim, user, plain, at=boundary - timedelta(minutes=30))
    current = await _message(rt, sim, user, plain)
    ancient = await _message(rt, sim, user, plain, at=now - timedelta(days=3))  # before every season
    assert (await wait_key(rt, f"msg:{buffered}"))["season_id"] == seasons["Old"]
    assert (await wait_key(rt, f"msg:{current}"))["season_id"] == seasons["New"]
    assert (await wait_key(rt, f"msg:{ancient}"))["season_id"] is None
    stats = await query(rt, "SELECT season_id, xp, messages_sent FROM season_stats WHERE user_id = :u", u=user)
    assert sorted((s["season_id"], s["xp"], s["messages_sent"]) for s in stats) == sorted(
        [(seasons["Old"], 15, 1), (seasons["New"], 15, 1)]
    )
    counters = await query(
        rt,
        "SELECT period FROM event_counters WHERE guild_id = :g AND user_id = :u AND period LIKE 'season:%'",
        u=user,
    )
    assert sorted(c["period"] for c in counters) == sorted(f"season:{s}" for s in seasons.values())
