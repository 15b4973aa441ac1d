"""The public endpoints of SPEC §19 over real HTTP, on activity produced through the real pipeline (§27 item 9).

Messages go through the simulator's gateway and hikari into the pipeline; achievements are granted by the
economy service; a member leaves through a real GUILD_MEMBER_REMOVE. The checks are about what the public may
see: no journal details, counterparts or channel ids, no hidden achievement data, no members who left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.api.platform import MICRO_CACHE_REFRESH_AFTER, MICRO_CACHE_REFRESHES_AT_ONCE
from synapse_async.api.public_stats import SECRET_NAME, avatar_url, earn_pct
from synapse_async.runtime import Runtime
from synapse_async.services.standings import Standings
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
SECRET_CATEGORY = "Easter eggs"
SECRET_SERIES = "Gem hunt"
PREFIX = f"/api/guilds/{GUILD}"
DAVE = 100000000000001003  # present, 0 XP


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
            "INSERT INTO achievement_categories (guild_id, name) VALUES (:g, :c)",
            "achievement_categories",
            c=SECRET_CATEGORY,
        )
        await write_config(
            rt,
            "INSERT INTO achievement_series (guild_id, name) VALUES (:g, :s)",
            "achievement_series",
            s=SECRET_SERIES,
        )
        await write_config(
            rt,
            "INSERT INTO achievement_templates (guild_id, name, description, trigger_type, xp_reward, gold_reward,"
            " is_hidden, category_id, series_id, series_order) VALUES (:g, 'Hidden gem', :d, 'manual', 5, 7, true,"
            " (SELECT id FROM achievement_categories WHERE guild_id = :g),"
            " (SELECT id FROM achievement_series WHERE guild_id = :g), 1),"
            " (:g, 'Chatterbox', 'Say hi', 'manual', 1, 2, false, NULL, NULL, NULL)",
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
        # A present member who never earned anything: not ranked, not counted in `of` or any percentage.
        await _sql(
            rt,
            "INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, 'Dave')"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = 0, left_at = NULL",
            u=DAVE,
        )
        yield World(rt, channel, ids["Hidden gem"], ids["Chatterbox"])


async def _sql(rt: Runtime, sql: str, **params: Any) -> None:
    async with rt.components.require_db().engine.begin() as conn:
        await conn.execute(text(sql), {"g": GUILD, **params})


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
    assert users == [str(ALICE), str(BOB)]  # Carol left, Dave has 0 XP
    assert [item["rank"] for item in body["items"]] == [1, 2]
    assert all(item["value"] > 0 for item in body["items"]) and body["total"] == 2
    assert body["season"] is None and body["page"] == 1 and body["page_size"] == 25


async def test_leaderboard_ties_share_a_rank_on_every_page(world: World) -> None:
    """§17.1: rank = 1 + members strictly higher. Bob tied with Alice is rank 1 (listed after her by user id), on
    page 1 and on page 2 of size 1 alike; a position-numbered list would say 2."""
    alice = await member(world.rt, ALICE)
    bob = await member(world.rt, BOB)
    assert alice is not None and bob is not None and alice["xp"] > bob["xp"]
    await _sql(world.rt, "UPDATE members SET xp = :x WHERE guild_id = :g AND user_id = :u", x=alice["xp"], u=BOB)
    try:
        # page sizes no other test uses: fresh answers, not the micro-cache's
        whole = await _get(world, "/leaderboard", by="xp", season="lifetime", page_size=9)
        second = await _get(world, "/leaderboard", by="xp", season="lifetime", page=2, page_size=1)
        pinned = await _get(world, "/leaderboard", by="xp", season="lifetime", page_size=1, user_id=str(BOB))
    finally:
        await _sql(world.rt, "UPDATE members SET xp = :x WHERE guild_id = :g AND user_id = :u", x=bob["xp"], u=BOB)
    assert [(i["user_id"], i["rank"]) for i in whole["items"]] == [(str(ALICE), 1), (str(BOB), 1)]
    assert [(i["user_id"], i["rank"]) for i in second["items"]] == [(str(BOB), 1)]
    # The pinned "your row" (`user_id`) follows the same rule, also when the member is not on the page asked for.
    assert [i["user_id"] for i in pinned["items"]] == [str(ALICE)]
    assert pinned["member"]["user_id"] == str(BOB) and pinned["member"]["rank"] == 1
    for absent in (CAROL, DAVE):  # left; 0 XP: not ranked, so no row
        assert (await _get(world, "/leaderboard", season="lifetime", user_id=str(absent)))["member"] is None


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
    badges = [item for item in body["items"] if item["event_type"] == "achievement"]
    assert {item["name"] for item in badges} == {SECRET_NAME, "Chatterbox"}
    # §19: a secret achievement appears without amounts (its XP reward would identify it); an open one shows them.
    secret = [item for item in badges if item["name"] == SECRET_NAME]
    assert secret and all(item["xp"] is None and item["stars"] is None for item in secret)
    assert any(item["xp"] == 1 for item in badges if item["name"] == "Chatterbox")
    text = _text(body)
    assert str(world.channel) not in text and SECRET_CRITERIA not in text and "Hidden gem" not in text
    only = await _get(world, "/activity", event_type="achievement")
    assert {i["event_type"] for i in only["items"]} == {"achievement"}


async def test_daily_activity_counts_paid_items_per_day(world: World) -> None:
    body = await _get(world, "/activity/daily", days=1)
    messages = [d for d in body["items"] if d["event_type"] == "message"]
    assert len(messages) == 1 and messages[0]["count"] == 5  # Carol's message belongs to a member who left


async def test_daily_buckets_are_utc_days_whatever_the_servers_time_zone(world: World) -> None:
    """A paid item at 23:30 UTC yesterday is yesterday's, and outside `days=1`, even when the database server's
    time zone is UTC+14 (where it is already today; a window computed in the server's zone would count it)."""
    rt, db = world.rt, world.rt.components.require_db()
    database = (await query(rt, "SELECT current_database() AS d"))[0]["d"]
    insert = (
        "INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta,"
        " occurred_at) VALUES (:g, :u, 'message', 'tz-test-1', 3, 0,"
        " date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 minutes')"
    )
    await _sql(rt, insert, u=BOB)
    await _sql(rt, f"ALTER DATABASE \"{database}\" SET timezone = 'Pacific/Kiritimati'")
    await db.public_engine.dispose()  # new connections take the server's (database's) time zone
    try:
        async with db.public_engine.connect() as conn:
            assert (await conn.execute(text("SHOW timezone"))).scalar_one() == "Pacific/Kiritimati"
        assert rt.api is not None
        rt.api.micro_cache.clear()  # the answers of other tests within the TTL are not what is tested
        one = (await call("GET", base(rt) + PREFIX + "/activity/daily?days=1")).body
        two = (await call("GET", base(rt) + PREFIX + "/activity/daily?days=2")).body
    finally:
        await _sql(rt, f'ALTER DATABASE "{database}" RESET timezone')
        await db.public_engine.dispose()
        await _sql(rt, "DELETE FROM reward_journal WHERE guild_id = :g AND idempotency_key = 'tz-test-1'")
    today = [d for d in one["items"] if d["event_type"] == "message"]
    assert len(today) == 1 and today[0]["count"] == 5, one
    days = sorted((d["date"], d["count"]) for d in two["items"] if d["event_type"] == "message")
    assert len(days) == 2 and days[0][1] == 1 and days[1][1] == 5, two


# --------------------------------------------------------------------------------------------------- members


async def test_profiles_show_non_hidden_badges_and_404_for_members_who_left(world: World) -> None:
    alice = await _get(world, f"/members/{ALICE}")
    assert alice["user_id"] == str(ALICE)
    assert [b["name"] for b in alice["achievements"]] == ["Chatterbox"]
    assert 0 <= alice["xp_into_level"] < alice["xp_for_next_level"]
    assert SECRET_CRITERIA not in _text(alice) and "Hidden gem" not in _text(alice)
    gone = await call("GET", base(world.rt) + PREFIX + f"/members/{CAROL}")
    unknown = await call("GET", base(world.rt) + PREFIX + "/members/123456789012345678")
    assert gone.status == 404 and unknown.status == 404


async def test_profile_rank_follows_the_one_definition(world: World) -> None:
    """§17.1/§19: `of` counts present members with XP > 0 (Alice, Bob: not Carol who left, not 0-XP Dave); a 0-XP
    member has no rank; the profile's rank is the one /profile shows (services.ranks)."""
    alice = await _get(world, f"/members/{ALICE}")
    bob = await _get(world, f"/members/{BOB}")
    dave = await _get(world, f"/members/{DAVE}")
    assert alice["rank"] == {"xp": 1, "of": 2} and bob["rank"] == {"xp": 2, "of": 2}
    assert dave["rank"] == {"xp": None, "of": 2}
    standings = Standings(world.rt.components.require_db())
    card = await standings.profile(guild_id=GUILD, user_id=BOB, viewer_id=BOB, season=None)
    assert card is not None and (card.rank, card.ranked) == (bob["rank"]["xp"], bob["rank"]["of"])


# --------------------------------------------------------------------------------------------------- achievements


async def test_achievements_mask_hidden_templates(world: World) -> None:
    """A hidden template reveals neither name, description, category, series, rewards nor id (§19)."""
    body = await _get(world, "/achievements")
    secret = [item for item in body["items"] if item["hidden"]]
    public = [item for item in body["items"] if item["id"] == world.open_id]
    assert len(secret) == 1 and len(public) == 1
    assert secret[0] | {"rarity": None, "earned_count": 0, "earn_pct": 0.0} == {
        "id": None,
        "name": SECRET_NAME,
        "description": None,
        "category": None,
        "rarity": None,
        "series": None,
        "xp_reward": None,
        "gold_reward": None,
        "badge_image_url": None,
        "earned_count": 0,
        "earn_pct": 0.0,
        "hidden": True,
    }
    text_ = _text(body)
    assert SECRET_CRITERIA not in text_ and SECRET_CATEGORY not in text_ and SECRET_SERIES not in text_
    assert public[0]["name"] == "Chatterbox" and public[0]["xp_reward"] == 1
    recent = await _get(world, "/achievements/recent", limit=50)
    assert {(i["user_id"], i["name"], i["achievement_id"]) for i in recent["items"]} == {
        (str(ALICE), SECRET_NAME, None),
        (str(ALICE), "Chatterbox", world.open_id),
    }


async def test_earn_rates_and_totals_count_only_members_still_in_the_guild(world: World) -> None:
    """Chatterbox was earned by Alice and by Carol, who left: 1 earner of 2 members with XP is 50.0 % (counting
    Carol gave 100 %; issue 22 saw 133.3 %). The guild's badge total leaves Carol's out as well."""
    body = await _get(world, "/achievements")
    chatterbox = next(item for item in body["items"] if item["id"] == world.open_id)
    secret = next(item for item in body["items"] if item["hidden"])
    assert (chatterbox["earned_count"], chatterbox["earn_pct"]) == (1, 50.0)
    assert (secret["earned_count"], secret["earn_pct"]) == (1, 50.0)
    metrics = await _get(world, "/metrics")
    assert metrics["achievements_earned"] == 2  # Alice's two; Carol's Chatterbox is not counted
    assert metrics["members"] == 3  # Alice, Bob, Dave


async def test_seasons_metrics_and_settings_answer(world: World) -> None:
    seasons = await _get(world, "/seasons")
    assert seasons["items"] == []  # no season was started in this guild
    metrics = await _get(world, "/metrics")
    assert metrics["guild_id"] == str(GUILD) and metrics["season"] is None
    settings = await _get(world, "/settings")
    assert settings["economy.xp_name"] == "XP" and settings["guild_name"]


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


async def test_a_profile_lists_its_badges_newest_first_with_their_rarity(world: World) -> None:
    """The profile's one statement aggregates the badges: newest first, each with its rarity's name (or null),
    hidden ones left out; a member without any has an empty list; the rewards are 0, so Dave stays unranked."""
    rt = world.rt
    assert rt.api is not None
    rt.api.micro_cache.clear()
    assert (await _get(world, f"/members/{DAVE}"))["achievements"] == []
    await write_config(rt, "INSERT INTO achievement_rarities (guild_id, name, color) VALUES (:g, 'Prized', '#3366ff')",
                       "achievement_rarities")  # fmt: skip
    await write_config(
        rt,
        "INSERT INTO achievement_templates (guild_id, name, trigger_type, xp_reward, gold_reward, rarity_id)"
        " VALUES (:g, 'First steps', 'manual', 0, 0, NULL), (:g, 'Shadow', 'manual', 0, 0, NULL),"
        " (:g, 'Regular', 'manual', 0, 0,"
        "  (SELECT id FROM achievement_rarities WHERE guild_id = :g AND name = 'Prized'))",
        "achievement_templates",
    )
    await write_config(rt, "UPDATE achievement_templates SET is_hidden = true WHERE guild_id = :g AND name = 'Shadow'",
                       "achievement_templates")  # fmt: skip
    rows = await query(rt, "SELECT id, name FROM achievement_templates WHERE guild_id = :g")
    ids = {r["name"]: r["id"] for r in rows}
    try:
        await _grant(rt, DAVE, ids["First steps"], "grant-dave-1")
        await _grant(rt, DAVE, ids["Shadow"], "grant-dave-2")
        await _grant(rt, DAVE, ids["Regular"], "grant-dave-3")
        rt.api.micro_cache.clear()
        badges = (await _get(world, f"/members/{DAVE}"))["achievements"]
        assert [(b["name"], b["rarity"]) for b in badges] == [("Regular", "Prized"), ("First steps", None)]
        assert badges[0]["earned_at"] >= badges[1]["earned_at"]
    finally:
        new = [ids["First steps"], ids["Shadow"], ids["Regular"]]
        await _sql(rt, "DELETE FROM member_achievements WHERE guild_id = :g AND user_id = :u", u=DAVE)
        drop = "DELETE FROM achievement_templates WHERE guild_id = :g AND id = ANY(CAST(:ids AS bigint[]))"
        await write_config(rt, drop, "achievement_templates", ids=new)
        await write_config(
            rt, "DELETE FROM achievement_rarities WHERE guild_id = :g AND name = 'Prized'", "achievement_rarities"
        )
        rt.api.micro_cache.clear()


async def test_a_cached_answer_read_late_is_recomputed_in_the_background(world: World) -> None:
    """Refresh ahead: an entry read after `refresh_after` is still served as it is (nobody waits for the query),
    and the recomputed answer replaces it before the entry's TTL runs out."""
    rt = world.rt
    platform = rt.api
    assert platform is not None
    platform.micro_cache.clear()
    first = await _get(world, f"/members/{BOB}")
    sql = "UPDATE members SET display_name = :n WHERE guild_id = :g AND user_id = :u"
    platform.refresh_after = 0.0
    try:
        await _sql(rt, sql, n="Bob, renamed", u=BOB)
        served = await _get(world, f"/members/{BOB}")  # from the cache; starts the refresh
        assert served == first
        await asyncio.gather(*platform.refreshes_running())
        platform.refresh_after = 3600.0  # no further refresh: what follows is the refreshed entry itself
        again = await _get(world, f"/members/{BOB}")
        assert again["display_name"] == "Bob, renamed"
        assert {k: v for k, v in again.items() if k != "display_name"} == {
            k: v for k, v in first.items() if k != "display_name"
        }
    finally:
        platform.refresh_after = MICRO_CACHE_REFRESH_AFTER
        await _sql(rt, sql, n=first["display_name"], u=BOB)
        platform.micro_cache.clear()


async def test_background_refreshes_are_bounded(world: World) -> None:
    """Past `MICRO_CACHE_REFRESHES_AT_ONCE` running refreshes a due entry is not refreshed (no queue forms at the
    public gate ahead of real requests); a refresh that fails leaves nothing behind."""
    platform = world.rt.api
    assert platform is not None
    release = asyncio.Event()
    started: list[str] = []

    def blocked(key: str) -> Any:
        async def compute() -> None:
            started.append(key)
            await release.wait()

        return compute

    async def failing() -> None:
        raise RuntimeError("the refresh broke")

    for n in range(MICRO_CACHE_REFRESHES_AT_ONCE + 2):
        platform.refresh_ahead(f"due-{n}", blocked(f"due-{n}"))
    running = platform.refreshes_running()
    assert len(running) == MICRO_CACHE_REFRESHES_AT_ONCE
    release.set()
    await asyncio.gather(*running)
    assert started == [f"due-{n}" for n in range(MICRO_CACHE_REFRESHES_AT_ONCE)]
    platform.refresh_ahead("broken", failing)
    await asyncio.gather(*platform.refreshes_running())
    assert platform.refreshes_running() == ()
