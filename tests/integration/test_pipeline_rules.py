"""Anti-gaming, voice ticks, seasons, achievements and announcements through the real pipeline (SPEC §7.3, §9, §11,
§12, §14). One sandbox runtime for the module; each test uses its own members and channels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from synapse_async.rewards.leveling import curve_for
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.tasks.seasons import SeasonRollover
from synapse_async.tasks.voice_ticker import VoiceTicker
from tests.pipeline_support import (
    GUILD,
    MEMBERS_30,
    PLAIN,
    journal,
    member,
    query,
    set_settings,
    settle,
    wait_key,
    write_config,
)
from tests.support import wait_for

U = MEMBERS_30


async def test_reaction_pays_reactor_and_author_then_decays_and_caps(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    reactor, author = U[0], U[1]
    paid: list[tuple[int, int, int, int, str | None]] = []
    for i in range(4):
        msg = int(await sim.message(author, plain, f"{PLAIN} #{i}"))
        await sim.react(reactor, msg, "👍")
        given = await wait_key(rt, f"rg:{msg}:{reactor}")
        received = await wait_key(rt, f"rr:{msg}:{reactor}")
        paid.append(
            (
                given["xp_delta"],
                given["star_delta"],
                received["xp_delta"],
                received["star_delta"],
                received["zero_reason"],
            )
        )
    # p = 0, 1, 2 → d = 1, 1/2, 1/3; p = 3 reaches the pair cap
    assert paid == [(2, 1, 3, 1, None), (1, 0, 1, 0, None), (0, 0, 1, 0, None), (0, 0, 0, 0, "pair_cap")]
    m = await member(rt, author)
    assert m is not None and m["reactions_received"] == 4


async def test_self_bot_and_unknown_targets(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, plain = plain_sandbox
    own = int(await sim.message(U[2], plain, PLAIN))
    await sim.react(U[2], own, "🔥")
    row = await wait_key(rt, f"rg:{own}:{U[2]}")
    assert row["zero_reason"] == "self"
    assert await query(rt, "SELECT 1 FROM reward_journal WHERE idempotency_key = :k", k=f"rr:{own}:{U[2]}") == []

    bot_user = int(await sim.join(username="a-bot", bot=True))
    bot_msg = int(await sim.message(bot_user, plain, "beep"))
    await sim.react(U[2], bot_msg, "🔥")
    assert (await wait_key(rt, f"rg:{bot_msg}:{U[2]}"))["zero_reason"] == "bot_target"

    # A reaction to a message the bot never saw and cannot fetch: the author stays unknown.
    template_msg = int(await sim.message(U[3], plain, PLAIN))
    await sim.react(U[2], template_msg, "🎉")
    await wait_key(rt, f"rg:{template_msg}:{U[2]}")
    _, record = sim.gateway.dispatched("MESSAGE_REACTION_ADD")[-1]
    ghost = template_msg + 12345
    payload = {k: v for k, v in record.d.items() if k != "message_author_id"}
    payload["message_id"] = str(ghost)
    await sim.gateway.dispatch("MESSAGE_REACTION_ADD", payload, guild_id=GUILD)
    assert (await wait_key(rt, f"rg:{ghost}:{U[2]}"))["zero_reason"] == "unknown_target"


async def test_reactor_cap_velocity_cap_and_remove_readd(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, plain = plain_sandbox
    await set_settings(rt, {"reactions.unique_reactor_cap": 3, "reactions.velocity_min_reactors": 1})
    try:
        msg = int(await sim.message(U[4], plain, PLAIN))
        for reactor in U[5:9]:
            await sim.react(reactor, msg, "👍")
        rows = [await wait_key(rt, f"rr:{msg}:{reactor}") for reactor in U[5:9]]
        # r = 0 → full 3 XP; r ≥ 1 inside the velocity window → capped at 1; r = 3 → reactor cap
        assert [(r["xp_delta"], r["zero_reason"]) for r in rows] == [
            (3, None),
            (1, None),
            (1, None),
            (0, "reactor_cap"),
        ]

        await sim.react(U[5], msg, "👍", remove=True)
        await sim.react(U[5], msg, "👍")  # re-add: the same lake key — a duplicate event
        await sim.react(U[5], msg, "😂")  # another emoji: recorded in the lake, never paid again
        await wait_for(_lake_has(rt, f"radd:{msg}:{U[5]}:u1f602"))
        await settle(rt)
        keys = [r["idempotency_key"] for r in await journal(rt, U[5]) if str(msg) in r["idempotency_key"]]
        assert keys == [f"rg:{msg}:{U[5]}"]
        removes = await query(rt, "SELECT 1 FROM event_lake WHERE source_key = :k", k=f"rrem:{msg}:{U[5]}:u1f44d")
        assert len(removes) == 1
    finally:
        await set_settings(rt, {"reactions.unique_reactor_cap": 10, "reactions.velocity_min_reactors": 5})


def _lake_has(rt: Runtime, key: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(await query(rt, "SELECT 1 FROM event_lake WHERE source_key = :k", k=key))

    return check


async def test_voice_ticks_follow_eligibility_and_the_hourly_cap(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, _ = plain_sandbox
    assert rt.pipeline is not None and rt.voice_ticker is not None and rt.components.cache is not None
    await set_settings(rt, {"voice.hourly_tick_cap": 2})
    lounge = sim.channel_id("Lounge")
    talker, listener, deaf, afk_member = U[10], U[11], U[12], U[13]
    await sim.voice(talker, "Lounge")
    await sim.voice(listener, "Lounge", self_mute=True)
    await sim.voice(deaf, "Lounge", self_mute=True, self_deaf=True)
    await sim.voice(afk_member, "AFK")
    tracker = rt.voice_ticker._tracker
    await wait_for(lambda: {talker, listener, deaf, afk_member} <= set(tracker.members(GUILD)))

    # A ticker of our own on the same tracker, cache and pipeline, with a clock we move by whole slots.
    clock = [time.time()]
    ticker = VoiceTicker(
        tracker, rt.components.cache, rt.pipeline.submit, rt.voice_ticker._member, clock=lambda: clock[0]
    )
    await ticker.check()  # aligns to the current slot
    slots = []
    for _ in range(3):
        clock[0] += 600
        await ticker.check()
        slots.append(int(clock[0] // 600) * 600)
    for slot in slots:
        await wait_key(rt, f"vt:{talker}:{slot}")
    await settle(rt)
    ticks = await journal(rt, talker, "voice_tick")
    assert [(t["xp_delta"], t["zero_reason"]) for t in ticks] == [(10, None), (10, None), (0, "hourly_cap")]
    assert len(await journal(rt, listener, "voice_tick")) == 3  # muted only: still eligible
    assert await journal(rt, deaf, "voice_tick") == []  # muted and deafened
    assert await journal(rt, afk_member, "voice_tick") == []  # AFK channel
    m = await member(rt, talker)
    assert m is not None and m["voice_minutes"] == 30  # capped ticks still add minutes
    assert [(t["idempotency_key"], t["channel_id"]) for t in ticks] == [(f"vt:{talker}:{s}", lounge) for s in slots]
    await set_settings(rt, {"voice.hourly_tick_cap": 6})


async def test_season_stats_rollover_with_auto_renew(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, plain = plain_sandbox
    assert rt.components.cache is not None and rt.components.db is not None
    cache = rt.components.cache
    now = datetime.now(UTC)
    await write_config(
        rt,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status) VALUES (:g, 'Season 1', :s, :e, 'active')",
        "seasons",
        s=now - timedelta(days=1),
        e=now + timedelta(seconds=3),
    )
    season = cache.guild(GUILD).active_season
    assert season is not None
    msg = int(await sim.message(U[14], plain, PLAIN))
    row = await wait_key(rt, f"msg:{msg}")
    assert row["season_id"] == season.season_id
    stats = await query(rt, "SELECT stars, xp, messages_sent FROM season_stats WHERE user_id = :u", u=U[14])
    assert stats == [{"stars": 1, "xp": 15, "messages_sent": 1}]

    await set_settings(rt, {"season.auto_renew": True})
    rollover = SeasonRollover(rt.components.db.sessions, cache, lambda: [GUILD])
    await wait_for(lambda: datetime.now(UTC) >= season.ends_at, timeout=10)
    await rollover.check()
    await wait_for(
        lambda: (
            cache.guild(GUILD).active_season is not None
            and cache.guild(GUILD).active_season.season_id != season.season_id
        )
    )
    seasons = await query(rt, "SELECT name, status, starts_at, ends_at, ended_at FROM seasons ORDER BY season_id")
    assert [(s["name"], s["status"]) for s in seasons] == [("Season 1", "ended"), ("Season 2", "active")]
    assert seasons[0]["ended_at"] == seasons[0]["ends_at"] == seasons[1]["starts_at"]  # no gap, no overlap
    audit = await query(rt, "SELECT action FROM audit_log WHERE guild_id = :g AND target_type = 'season' ORDER BY id")
    assert [a["action"] for a in audit] == ["season.auto_end", "season.auto_start"]
    msg2 = int(await sim.message(U[14], plain, PLAIN))
    row2 = await wait_key(rt, f"msg:{msg2}")
    assert row2["season_id"] != season.season_id
    m = await member(rt, U[14])
    assert m is not None and m["lifetime_stars"] == 2  # lifetime keeps counting across seasons
    per_season = await query(rt, "SELECT stars FROM season_stats WHERE user_id = :u ORDER BY season_id", u=U[14])
    assert [s["stars"] for s in per_season] == [1, 1]
    await set_settings(rt, {"season.auto_renew": False})


async def test_achievement_earned_once_with_reward_and_announcement(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    await write_config(
        rt,
        "INSERT INTO achievement_templates (guild_id, name, description, trigger_type, trigger_config, xp_reward,"
        " gold_reward, max_earners) VALUES (:g, 'Chatterbox', 'Three messages', 'stat_threshold',"
        ' \'{"stat": "messages_sent", "value": 3}\'::jsonb, 100, 20, 1)',
        "achievement_templates",
    )
    user, other = U[15], U[16]
    ids = [int(await sim.message(user, plain, f"{PLAIN} {i}")) for i in range(4)]
    await wait_key(rt, f"msg:{ids[-1]}")
    await settle(rt)
    earned = await query(rt, "SELECT user_id, source FROM member_achievements WHERE guild_id = :g")
    assert earned == [{"user_id": user, "source": "auto"}]
    ach = await wait_key(rt, f"msg:{ids[2]}#ach:{(await _template_id(rt, 'Chatterbox'))}")
    assert ach["xp_delta"] == 100
    m = await member(rt, user)
    assert m is not None and m["xp"] == 4 * 15 + 100
    # 45 + 100 = 145 XP crossed level 2 (125): that level change belongs to the achievement that moved it;
    # the 4th message (160 XP) crossed level 3 (156).
    assert (await wait_key(rt, f"{ach['idempotency_key']}#lvl"))["details"]["to"] == 2
    assert (await wait_key(rt, f"msg:{ids[3]}#lvl"))["details"]["to"] == 3
    assert m["gold"] == 20 + 2 * 50
    # max_earners = 1: a second member reaching the threshold earns nothing
    for i in range(3):
        last = int(await sim.message(other, plain, f"{PLAIN} other {i}"))
    await wait_key(rt, f"msg:{last}")
    await settle(rt)
    assert len(await query(rt, "SELECT 1 FROM member_achievements WHERE guild_id = :g")) == 1

    # Announcements went to the event's channel, never pinging anyone.
    def posts() -> list[object]:
        return [c for c in sim.rest_calls if c.method == "POST" and c.path.endswith(f"/channels/{plain}/messages")]

    await wait_for(lambda: len(posts()) >= 2)
    titles = [c.json["embeds"][0]["title"] for c in posts()]  # type: ignore[attr-defined]
    assert "Achievement unlocked!" in titles and "Level up!" in titles
    assert all(c.json["allowed_mentions"] == {"parse": []} for c in posts())  # type: ignore[attr-defined]


async def _template_id(rt: Runtime, name: str) -> int:
    rows = await query(rt, "SELECT id FROM achievement_templates WHERE guild_id = :g AND name = :n", n=name)
    return int(rows[0]["id"])


async def test_level_up_announcement_respects_the_member_preference(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, _ = plain_sandbox
    quiet = U[17]
    assert rt.components.cache is not None
    cache = rt.components.cache
    # A channel of its own: the shared one may still be inside its 3-per-minute announcement throttle.
    plain = int(await sim.create_channel("quiet-corner", "announcement"))
    await wait_for(lambda: plain in cache.guild(GUILD).channels)
    assert rt.components.db is not None
    from sqlalchemy import text

    async with rt.components.db.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, 'quiet')"),
            {"g": GUILD, "u": quiet},
        )
        await s.execute(
            text("INSERT INTO member_preferences (guild_id, user_id, announce_level_up) VALUES (:g, :u, false)"),
            {"g": GUILD, "u": quiet},
        )
    before = len(sim.rest_calls)
    await set_settings(rt, {"rewards.message.xp": 200})
    try:
        msg = int(await sim.message(quiet, plain, PLAIN))
        await wait_key(rt, f"msg:{msg}#lvl")
        await settle(rt)
        marker_user = U[18]
        marker = int(await sim.message(marker_user, plain, PLAIN))  # this one levels up and is announced
        await wait_key(rt, f"msg:{marker}#lvl")
        await wait_for(lambda: any(f"<@{marker_user}>" in str(c.json) for c in sim.rest_calls[before:]))  # type: ignore[attr-defined]
        assert not any(f"<@{quiet}>" in str(c.json) for c in sim.rest_calls[before:])  # type: ignore[attr-defined]
    finally:
        await set_settings(rt, {"rewards.message.xp": 15})


async def test_level_up_applies_reward_roles_and_skips_roles_above_the_bot(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    assert rt.role_syncer is not None
    low = int(await sim.create_role("Level 2", position=1))
    high = int(await sim.create_role("Level 3 (above bot)", position=10))  # above the bot's role
    for role, level in ((low, 2), (high, 3)):
        await write_config(
            rt,
            "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, :l)",
            "level_role_rewards",
            r=role,
            l=level,
        )
    climber = U[20]
    before = len(sim.rest_calls)
    await set_settings(rt, {"rewards.message.xp": 200})  # 200 XP: straight to level 4
    try:
        msg = int(await sim.message(climber, plain, PLAIN))
        await wait_key(rt, f"msg:{msg}#lvl")

        def patches() -> list[object]:
            return [
                c for c in sim.rest_calls[before:] if c.method == "PATCH" and c.path.endswith(f"/members/{climber}")
            ]

        await wait_for(lambda: len(patches()) == 1)
        call = patches()[0]
        assert low in {int(r) for r in call.json["roles"]}  # type: ignore[attr-defined]
        assert high not in {int(r) for r in call.json["roles"]}  # type: ignore[attr-defined]
        assert rt.role_syncer.problems(GUILD).get(high) == "role_above_bot"
    finally:
        await set_settings(rt, {"rewards.message.xp": 15})


async def test_curve_change_queues_a_relevel_job_that_pays_no_gold(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    user = U[22]
    msg = int(await sim.message(user, plain, PLAIN))
    await wait_key(rt, f"msg:{msg}")
    await settle(rt)
    before = await member(rt, user)
    assert before is not None and before["level"] == 1  # 15 XP
    await set_settings(rt, {"leveling.level_base": 10})  # required(1) = 12, required(2) = 15: 15 XP is level 3
    try:

        async def finished() -> bool:
            rows = await query(rt, "SELECT status FROM jobs WHERE guild_id = :g AND kind = 'relevel'")
            return bool(rows) and all(r["status"] == "succeeded" for r in rows)

        await wait_for(finished, timeout=30)
        job = (await query(rt, "SELECT job_id, result FROM jobs WHERE guild_id = :g AND kind = 'relevel'"))[0]
        after = await member(rt, user)
        assert (
            after is not None
            and (after["level"], after["peak_level"]) == (3, 3) == (curve_for(10, 1.25).level(15),) * 2
        )
        assert after["gold"] == before["gold"]  # relevel never pays level-up gold
        row = await wait_key(rt, f"relevel:{job['job_id']}:{user}")
        assert row["event_type"] == "level_change" and row["details"] == {"from": 1, "to": 3, "bonus": 0}
        assert job["result"]["changed"] >= 1
    finally:
        await set_settings(rt, {"leveling.level_base": 100})


async def test_manual_award_is_announced_after_commit_without_pings(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    from synapse_async.services.audit import Actor

    rt, sim, _ = plain_sandbox
    assert rt.components.db is not None and rt.components.cache is not None and rt.pipeline is not None
    cache = rt.components.cache
    channel = int(await sim.create_channel("awards", "announcement"))
    await wait_for(lambda: channel in cache.guild(GUILD).channels)
    before = len(sim.rest_calls)
    result = await rt.economy.award(
        guild_id=GUILD,
        user_id=U[24],
        xp=40,
        gold=-5,  # clamped to 0: only the positive XP part is announced
        reason="Helped a newcomer",
        actor=Actor("100000000000000010", "user", "api"),
        request_id="award-test-0001",
        channel_id=channel,
    )
    assert (result.xp_applied, result.gold_applied) == (40, 0)

    def posted() -> list[object]:
        return [
            c
            for c in sim.rest_calls[before:]
            if c.method == "POST" and c.path.endswith(f"/channels/{channel}/messages")
        ]

    await wait_for(lambda: len(posted()) == 1)
    body = posted()[0].json  # type: ignore[attr-defined]
    assert body["embeds"][0]["title"] == "Award"
    assert "+40" in body["embeds"][0]["description"] and "Gold" not in body["embeds"][0]["description"]
    assert body["allowed_mentions"] == {"parse": []}


async def test_announcements_show_the_avatar_and_the_admins_name(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    """SPEC §14: level-up and badge-less achievement embeds carry the avatar; footers name the admin, not an id."""
    from synapse_async.bot.gateway import DiscordGateway
    from synapse_async.services.audit import Actor

    rt, sim, _ = plain_sandbox
    assert rt.components.db is not None and rt.components.cache is not None and rt.pipeline is not None
    assert isinstance(rt.gateway, DiscordGateway)
    cache, hikari_cache = rt.components.cache, rt.gateway.bot.cache
    user, admin = U[27], 100000000000000010
    channel = int(await sim.create_channel("grants", "announcement"))
    await wait_for(lambda: channel in cache.guild(GUILD).channels)
    await write_config(
        rt,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, trigger_config, xp_reward)"
        " VALUES (:g, 'Helpful', 'manual', '{}'::jsonb, 200)",
        "achievement_templates",
    )
    await wait_for(lambda: any(t.name == "Helpful" for t in cache.guild(GUILD).templates))
    actor = Actor(str(admin), "user", "api")
    common = {"guild_id": GUILD, "user_id": user, "actor": actor, "channel_id": channel}
    await rt.economy.grant(template_id=await _template_id(rt, "Helpful"), request_id="grant-avatar-01", **common)
    await rt.economy.award(xp=5, gold=0, reason="Thanks", request_id="award-avatar-01", **common)

    def embeds() -> dict[str, dict[str, object]]:
        posts = [c for c in sim.rest_calls if c.method == "POST" and c.path.endswith(f"/channels/{channel}/messages")]
        return {c.json["embeds"][0]["title"]: c.json["embeds"][0] for c in posts}  # type: ignore[attr-defined]

    await wait_for(lambda: {"Achievement unlocked!", "Level up!", "Award"} <= set(embeds()))
    member_obj, admin_obj = hikari_cache.get_member(GUILD, user), hikari_cache.get_member(GUILD, admin)
    assert member_obj is not None and admin_obj is not None
    avatar = str(member_obj.display_avatar_url)
    got = embeds()
    assert got["Level up!"]["thumbnail"] == {"url": avatar}
    assert got["Achievement unlocked!"]["thumbnail"] == {"url": avatar}  # no badge: the avatar
    assert got["Achievement unlocked!"]["footer"] == {"text": f"Granted by {admin_obj.display_name}"}
    assert got["Award"]["footer"] == {"text": f"Awarded by {admin_obj.display_name}"}
    assert str(admin) not in str(got["Award"]["footer"])


async def test_mode_change_queues_a_level_role_sync_job(plain_sandbox: tuple[Runtime, DiscordSimulator, int]) -> None:
    rt, sim, _ = plain_sandbox
    climber = U[20]  # level 4 with the "Level 2" role from the level-roles test above
    low = next(r.id for r in sim.guild().roles.values() if r.name == "Level 2")
    assert low in sim.guild().members[climber].roles
    before = len(sim.rest_calls)
    await set_settings(rt, {"level_roles.mode": "replace"})
    try:

        async def synced() -> bool:
            rows = await query(rt, "SELECT status FROM jobs WHERE guild_id = :g AND kind = 'level_role_sync'")
            return bool(rows) and all(r["status"] == "succeeded" for r in rows)

        await wait_for(synced, timeout=30)
        patches = [c for c in sim.rest_calls[before:] if c.method == "PATCH" and c.path.endswith(f"/members/{climber}")]
        # replace: only the highest reward level ≤ 4 counts (level 3, above the bot: skipped) → "Level 2" goes
        assert len(patches) == 1
        assert low not in {int(r) for r in patches[0].json["roles"]}  # type: ignore[attr-defined]
    finally:
        await set_settings(rt, {"level_roles.mode": "stack"})


async def test_an_achievement_earned_inside_a_batch_matches_one_by_one(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    import asyncio

    rt, sim, plain = plain_sandbox
    assert rt.pipeline is not None
    await write_config(
        rt,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, trigger_config, xp_reward)"
        " VALUES (:g, 'Fast talker', 'stat_threshold', '{\"stat\": \"messages_sent\", \"value\": 3}'::jsonb, 7)",
        "achievement_templates",
    )
    template_id = await _template_id(rt, "Fast talker")
    user = U[25]
    ids = await asyncio.gather(*(sim.message(user, plain, f"{PLAIN} burst {i}") for i in range(6)))
    await wait_key(rt, f"msg:{max(int(i) for i in ids)}")
    await settle(rt)
    messages = await journal(rt, user, "message")
    third = messages[2]["idempotency_key"]  # the message that took messages_sent to 3, in commit order
    achievement = await journal(rt, user, "achievement")
    assert [a["idempotency_key"] for a in achievement] == [f"{third}#ach:{template_id}"]
    m = await member(rt, user)
    assert m is not None and m["xp"] == 6 * 15 + 7
    assert m["xp"] == sum(r["xp_delta"] for r in await journal(rt, user))
    # Whether the burst arrived as one batch (replayed one by one because it earns the badge mid-batch) or in
    # several, the outcome above is exactly that of one-by-one processing: that is the property under test.
