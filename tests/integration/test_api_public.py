"""The public endpoints of SPEC §19 over real HTTP, on activity produced through the real pipeline (§27 item 9).

Messages go through the simulator's gateway and hikari into the pipeline; achievements are granted by the
economy service; a member leaves through a real GUILD_MEMBER_REMOVE. The checks are about what the public may
see: no journal details, counterparts or channel ids, no hidden achievement data, no members who left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.api.public_stats import SECRET_NAME, avatar_url, earn_pct
from synapse_async.runtime import Runtime
from tests.api_support import base, call
from tests.pipeline_support import (
    ACTOR,
    ALICE,
    BOB,
    CAROL,
    GUILD,
    member,
    pipeline_runtime,
    query,
    set_settings,
    settle,
    write_config,
)
from tests.support import wait_for

SECRET_CRITERIA = "react with the hidden emoji forty-two times"
PREFIX = f"/api/guilds/{GUILD}"


class World:
    def __init__(self, rt: Runtime, channel: int, secret_id: int, open_id: int) -> None:
        self.rt, self.channel, self.secret_id, self.open_id = rt, channel, secret_id, open_id


async def _grant(rt: Runtime, user: int, template_id: int, request_id: str) -> None:
    await rt.components.require_economy().grant(
        guild_id=GUILD, user_id=user, template_id=template_id, actor=ACTOR, request_id=request_id
    )


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[World]:
    async with pipeline_runtime(fresh_database, 30, PUBLIC_RATE_LIMIT_PER_MINUTE="0") as rt:
        sim = rt.simulator
        assert sim is not None
        cache = rt.components.require_cache()
        channel = int(await sim.create_channel("public-test", "announcement"))
        await wait_for(lambda: channel in cache.guild(GUILD).channels)
        for user, count in ((ALICE, 3), (BOB, 2), (CAROL, 1)):
            for i in range(count):
                await sim.message(user, channel, f"message number {i} from a member of the guild, long enough")
        await settle(rt)
        await write_config(
            rt,
            "INSERT INTO achievement_templates (guild_id, name, description, trigger_type, xp_reward, gold_reward,"
            " is_hidden) VALUES (:g, 'Hidden gem', :d, 'manual', 5, 7, true), (:g, 'Chatterbox', 'Say hi', 'manual',"
            " 1, 2, false)",
            "achievement_templates",
            d=SECRET_CRITERIA,
        )
        rows = await query(rt, "SELECT id, name FROM achievement_templates WHERE guild_id = :g")
        ids = {r["name"]: r["id"] for r in rows}
        await _grant(rt, ALICE, ids["Hidden gem"], "grant-hidden-1")
        await _grant(rt, ALICE, ids["Chatterbox"], "grant-open-1")
        await _grant(rt, CAROL, ids["Chatterbox"], "grant-open-2")
        await sim.leave(CAROL)
        await wait_for(lambda: _left(rt, CAROL))
        yield World(rt, channel, ids["Hidden gem"], ids["Chatterbox"])


async def _left(rt: Runtime, user: int) -> bool:
    row = await member(rt, user)
    return row is not None and row["left_at"] is not None


async def _get(world: World, path: str, **params: Any) -> Any:
    reply = await call("GET", base(world.rt) + PREFIX + path, params=params)
    assert reply.status == 200, (path, reply.body)
    assert reply.headers["Cache-Control"] == "public, max-age=10"
    return reply.body


def _text(body: Any) -> str:
    return json.dumps(body)


# --------------------------------------------------------------------------------------------------- pure parts


def test_earn_pct_rounds_half_up_and_is_zero_without_members() -> None:
    assert earn_pct(1, 8) == 12.5
    assert earn_pct(1, 3) == 33.3
    assert earn_pct(2, 3) == 66.7
    assert earn_pct(1, 16) == 6.3  # 6.25 rounds up, not to even
    assert earn_pct(5, 0) == 0.0


def test_avatar_urls_follow_the_cdn_rules() -> None:
    assert avatar_url("https://cdn", 42, "a_abc") == "https://cdn/avatars/42/a_abc.gif"
    assert avatar_url("https://cdn", 42, "abc") == "https://cdn/avatars/42/abc.png"
    user = 175928847299117063
    assert avatar_url("https://cdn", user, None) == f"https://cdn/embed/avatars/{(user >> 22) % 6}.png"


# --------------------------------------------------------------------------------------------------- leaderboard


async def test_leaderboard_ranks_present_members_and_omits_zero_values(world: World) -> None:
    body = await _get(world, "/leaderboard", by="xp", season="lifetime")
    users = [item["user_id"] for item in body["items"]]
    assert users[:2] == [str(ALICE), str(BOB)] and str(CAROL) not in users
    assert [item["rank"] for item in body["items"]] == list(range(1, len(users) + 1))
    assert all(item["value"] > 0 for item in body["items"]) and body["total"] == len(users)
    assert body["season"] is None and body["page"] == 1 and body["page_size"] == 25
    paged = await _get(world, "/leaderboard", by="xp", season="lifetime", page=2, page_size=1)
    assert [i["user_id"] for i in paged["items"]] == [str(BOB)] and paged["items"][0]["rank"] == 2


async def test_leaderboard_refuses_a_bad_kind_and_an_unknown_season(world: World) -> None:
    bad = await call("GET", base(world.rt) + PREFIX + "/leaderboard", params={"by": "karma"})
    unknown = await call("GET", base(world.rt) + PREFIX + "/leaderboard", params={"season": "987654"})
    assert bad.status == 400 and bad.body["error"]["details"][0]["field"] == "by"
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_found"


# --------------------------------------------------------------------------------------------------- activity


async def test_activity_exposes_only_public_facts(world: World) -> None:
    body = await _get(world, "/activity", days=7, page_size=100)
    kinds = {item["event_type"] for item in body["items"]}
    assert "message" in kinds and "achievement" in kinds
    assert kinds <= {"message", "reaction_given", "reaction_received", "thread_create", "voice_tick", "level_up",
                     "achievement"}  # fmt: skip
    for item in body["items"]:
        assert set(item) == {"id", "user_id", "display_name", "avatar_url", "event_type", "xp", "stars",
                             "occurred_at", "level", "name"}  # fmt: skip
        assert item["user_id"] != str(CAROL)
    names = {item["name"] for item in body["items"] if item["event_type"] == "achievement"}
    assert names == {SECRET_NAME, "Chatterbox"}
    text = _text(body)
    assert str(world.channel) not in text and SECRET_CRITERIA not in text and "Hidden gem" not in text
    only = await _get(world, "/activity", event_type="achievement")
    assert {i["event_type"] for i in only["items"]} == {"achievement"}


async def test_daily_activity_counts_paid_items_per_day(world: World) -> None:
    body = await _get(world, "/activity/daily", days=1)
    messages = [d for d in body["items"] if d["event_type"] == "message"]
    assert len(messages) == 1 and messages[0]["count"] == 5  # Carol's message belongs to a member who left


# --------------------------------------------------------------------------------------------------- members


async def test_profiles_show_non_hidden_badges_and_404_for_members_who_left(world: World) -> None:
    alice = await _get(world, f"/members/{ALICE}")
    assert alice["user_id"] == str(ALICE) and alice["rank"]["xp"] == 1
    assert [b["name"] for b in alice["achievements"]] == ["Chatterbox"]
    assert alice["xp_into_level"] + (alice["xp_for_next_level"] - alice["xp_into_level"]) >= 0
    assert SECRET_CRITERIA not in _text(alice) and "Hidden gem" not in _text(alice)
    gone = await call("GET", base(world.rt) + PREFIX + f"/members/{CAROL}")
    unknown = await call("GET", base(world.rt) + PREFIX + "/members/123456789012345678")
    assert gone.status == 404 and unknown.status == 404


# --------------------------------------------------------------------------------------------------- achievements


async def test_achievements_mask_hidden_templates(world: World) -> None:
    body = await _get(world, "/achievements")
    by_id = {item["id"]: item for item in body["items"]}
    secret, public = by_id[world.secret_id], by_id[world.open_id]
    assert secret["name"] == SECRET_NAME and secret["hidden"] is True
    assert secret["description"] is None and secret["xp_reward"] is None and secret["gold_reward"] is None
    assert public["name"] == "Chatterbox" and public["xp_reward"] == 1 and public["earned_count"] == 2
    with_xp = await query(
        world.rt, "SELECT count(*) AS n FROM members WHERE guild_id = :g AND left_at IS NULL AND xp > 0"
    )
    assert public["earn_pct"] == earn_pct(2, with_xp[0]["n"])
    assert SECRET_CRITERIA not in _text(body)
    recent = await _get(world, "/achievements/recent", limit=50)
    assert {(i["user_id"], i["name"]) for i in recent["items"]} == {
        (str(ALICE), SECRET_NAME),
        (str(ALICE), "Chatterbox"),
    }


async def test_seasons_metrics_and_settings_answer(world: World) -> None:
    seasons = await _get(world, "/seasons")
    assert isinstance(seasons["items"], list)
    metrics = await _get(world, "/metrics")
    assert metrics["guild_id"] == str(GUILD) and metrics["achievements_earned"] >= 3
    settings = await _get(world, "/settings")
    assert settings["economy.xp_name"] == "XP" and "guild_name" in settings


async def test_everything_is_404_when_the_public_api_is_disabled(world: World) -> None:
    await set_settings(world.rt, {"public_api.enabled": False})
    try:
        for path in ("/metrics", "/leaderboard", "/seasons", "/activity", "/activity/daily", f"/members/{ALICE}",
                     "/achievements", "/achievements/recent", "/settings"):  # fmt: skip
            reply = await call("GET", base(world.rt) + PREFIX + path)
            assert reply.status == 404, path
    finally:
        await set_settings(world.rt, {"public_api.enabled": True})


async def test_public_reads_are_micro_cached_per_path_and_query(world: World) -> None:
    """Within the micro-cache TTL the same URL gets the same bytes; another query is computed afresh."""
    first = await _get(world, "/leaderboard", season="lifetime", page_size=7)
    db = world.rt.components.require_db()
    sql = "UPDATE members SET display_name = :n WHERE guild_id = :g AND user_id = :u"
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), {"n": "Renamed", "g": GUILD, "u": BOB})
    try:
        again = await _get(world, "/leaderboard", season="lifetime", page_size=7)
        fresh = await _get(world, "/leaderboard", season="lifetime", page_size=8)
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(sql), {"n": first["items"][1]["display_name"], "g": GUILD, "u": BOB})
    assert again == first
    assert fresh["items"][1]["display_name"] == "Renamed"
