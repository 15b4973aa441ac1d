"""Member slash commands (SPEC §17.2) through real hikari + lightbulb + the simulator + PostgreSQL.

Each test asserts the payload the simulator received: embed fields, the ephemeral flag, allowed mentions. Data is
made the way members and admins make it (the admin's `/award`, `/season start`), not written into tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from synapse_async.bot.commands.member import BOTS_MESSAGE, EMPTY_BOARD_MESSAGE, NO_SEASON_MESSAGE
from synapse_async.runtime import Runtime
from synapse_async.sandbox.interactions import InteractionRecord
from synapse_async.sandbox.world import SANDBOX_BOT_ID, SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, SANDBOX_OWNER_ID
from synapse_async.services.standings import SeasonRef, Standings
from tests.support import simulator_of as sim
from tests.support import wait_for

ADMIN = SANDBOX_OWNER_ID
ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1
CAROL = SANDBOX_FIRST_MEMBER_ID + 2
DAVE = SANDBOX_FIRST_MEMBER_ID + 3
NEWCOMER = SANDBOX_FIRST_MEMBER_ID + 9
EPHEMERAL = 64
NO_MENTIONS = {"parse": []}


async def scalar(app: Runtime, sql: str, **params: Any) -> Any:
    async with app.components.db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


def fields(record: InteractionRecord) -> dict[str, str]:
    (embed,) = record.embeds
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


def assert_ephemeral_answer(record: InteractionRecord, content: str) -> None:
    assert record.content == content
    assert record.ephemeral
    message = record.response_message
    assert message is not None and message.allowed_mentions == NO_MENTIONS


async def award(app: Runtime, user: int, *, xp: int = 0, gold: int = 0) -> InteractionRecord:
    record = await sim(app).invoke("award", user=ADMIN, options={"member": user, "xp": xp, "gold": gold})
    assert record.content is not None and record.content.startswith("Applied"), record.content
    return record


async def test_profile_of_a_member_without_data_is_an_ephemeral_notice(app: Runtime) -> None:
    record = await sim(app).invoke(
        "profile", user=ALICE, options={"member": NEWCOMER}, until=lambda r: bool(r.followups)
    )
    assert record.deferred and record.original_deleted  # the public placeholder never shows the notice
    name = sim(app).world.guilds[SANDBOX_GUILD_ID].members[NEWCOMER].nick or sim(app).world.user(NEWCOMER).display_name
    assert_ephemeral_answer(record, f"{name} hasn't earned anything yet.")


async def test_profile_of_a_bot_is_refused_before_deferring(app: Runtime) -> None:
    record = await sim(app).invoke("profile", user=ALICE, options={"member": SANDBOX_BOT_ID})
    assert not record.deferred
    assert_ephemeral_answer(record, BOTS_MESSAGE)


async def test_profile_shows_level_progress_gold_rank_and_stars(app: Runtime) -> None:
    await award(app, ALICE, xp=200, gold=1_500)
    record = await sim(app).invoke("profile", user=BOB, options={"member": ALICE})
    assert record.deferred and not record.ephemeral
    assert record.response_message is not None and record.response_message.allowed_mentions == NO_MENTIONS
    (embed,) = record.embeds
    assert embed["title"].endswith("'s profile")
    assert embed["thumbnail"]["url"]  # the avatar
    got = fields(record)
    # 200 XP with the default curve: level 4 starts at 195, level 5 at 244 (SPEC §10.1 table).
    assert got["Level"] == "4"
    assert got["XP"].splitlines() == ["200 · 5/49 to level 5", "▰▱▱▱▱▱▱▱▱▱"]
    gold = await scalar(
        app, "SELECT gold FROM members WHERE guild_id = :g AND user_id = :u", g=SANDBOX_GUILD_ID, u=ALICE
    )
    assert gold >= 1_500 and got["Gold"] == f"{gold:,}" and "," in got["Gold"]
    assert got["Rank"].startswith("#1 of ")
    assert got["Stars"] == "Season 0 · Lifetime 0"
    assert got["Season"] == "No active season"
    assert got["Achievements (0)"] == "None yet"


async def test_hidden_achievement_is_masked_for_others_and_named_for_the_earner(app: Runtime) -> None:
    created = await sim(app).invoke(
        "create-achievement",
        user=ADMIN,
        options={"name": "Night Owl", "trigger": "manual", "hidden": True, "description": "Posts at 3 am"},
    )
    assert created.content is not None and "Created achievement" in created.content, created.content
    cache = app.components.cache
    await wait_for(lambda: any(t.name == "Night Owl" for t in cache.guild(SANDBOX_GUILD_ID).templates))
    template = next(t for t in cache.guild(SANDBOX_GUILD_ID).templates if t.name == "Night Owl")
    granted = await sim(app).invoke(
        "grant-achievement", user=ADMIN, options={"member": CAROL, "achievement": str(template.template_id)}
    )
    assert granted.content is not None and granted.content.startswith("Granted"), granted.content

    seen_by_other = fields(await sim(app).invoke("profile", user=BOB, options={"member": CAROL}))
    assert seen_by_other["Achievements (1)"] == "Secret achievement"
    seen_by_self = fields(await sim(app).invoke("profile", user=CAROL))
    assert "Night Owl" in seen_by_self["Achievements (1)"]


async def test_names_are_escaped_so_they_cannot_format_or_mention(app: Runtime) -> None:
    await sim(app).update_member(DAVE, nick="**@everyone** <@1>")
    await award(app, DAVE, xp=10)
    record = await sim(app).invoke("profile", user=DAVE)
    title = record.embeds[0]["title"]
    assert "**" not in title.replace("\\*", "")
    assert "@everyone" not in title and "<@1>" not in title
    assert record.response_message is not None and record.response_message.allowed_mentions == NO_MENTIONS


async def test_leaderboard_by_xp_all_time_lists_ties_by_user_id_with_a_shared_rank(app: Runtime) -> None:
    # BOB joins ALICE's 200 XP: a tie, listed by user id, both #1 (🥇), the next is #3.
    await award(app, BOB, xp=200)
    record = await sim(app).invoke("leaderboard", user=BOB, options={"by": "xp", "scope": "lifetime"})
    assert not record.ephemeral
    (embed,) = record.embeds
    assert embed["title"] == "Leaderboard — XP (All time)"
    lines = embed["description"].splitlines()
    assert lines[0].startswith("🥇 ") and lines[1].startswith("🥇 ")
    assert lines[0].endswith("— 200 (Lv. 4)") and lines[1].endswith("— 200 (Lv. 4)")
    assert lines[2].startswith("🥉 ")  # rank 3: 1 + two members strictly higher
    assert embed["footer"]["text"] == "Your rank: #1"


async def test_leaderboard_by_gold_all_time_and_a_viewer_without_data(app: Runtime) -> None:
    record = await sim(app).invoke("leaderboard", user=NEWCOMER, options={"by": "gold", "scope": "lifetime"})
    (embed,) = record.embeds
    assert embed["title"] == "Leaderboard — Gold (All time)"
    assert embed["description"].splitlines()[0].startswith("🥇 ")
    assert embed["footer"]["text"] == "Unranked"


async def test_leaderboard_season_scope_without_a_season_is_refused(app: Runtime) -> None:
    record = await sim(app).invoke("leaderboard", user=ALICE, options={"scope": "season"})
    assert not record.deferred
    assert_ephemeral_answer(record, NO_SEASON_MESSAGE)


async def test_season_leaderboards_start_empty_and_default_to_the_season(app: Runtime) -> None:
    started = await sim(app).invoke("season start", user=ADMIN, options={"name": "Spring", "days": 30})
    assert started.embeds and started.embeds[0]["title"] == "New season: Spring"
    await wait_for(lambda: app.components.cache.guild(SANDBOX_GUILD_ID).active_season is not None)

    empty = await sim(app).invoke("leaderboard", user=ALICE, options={"by": "stars"}, until=lambda r: bool(r.followups))
    assert empty.original_deleted
    assert_ephemeral_answer(empty, EMPTY_BOARD_MESSAGE)

    await award(app, CAROL, xp=50)
    record = await sim(app).invoke("leaderboard", user=CAROL)  # default: xp, the active season
    (embed,) = record.embeds
    assert embed["title"] == "Leaderboard — XP (Spring)"
    assert len(embed["description"].splitlines()) == 1  # only CAROL has season XP
    assert embed["description"].endswith("— 50 (Lv. 1)")
    assert embed["footer"]["text"] == "Your rank: #1"
    # `/profile` reads the season's line in the same statement as the member: CAROL's row, and zeros for a member
    # without one in this season.
    profile = await sim(app).invoke("profile", user=CAROL)
    assert fields(profile)["Season"].startswith("Messages ")
    assert profile.embeds[0]["footer"]["text"].startswith("Spring · ends ")
    season = app.components.cache.guild(SANDBOX_GUILD_ID).active_season
    assert season is not None
    ref = SeasonRef(season.season_id, season.name, season.ends_at)
    standings = Standings(app.components.require_db())
    carol = await standings.profile(guild_id=SANDBOX_GUILD_ID, user_id=CAROL, viewer_id=CAROL, season=ref)
    alice = await standings.profile(guild_id=SANDBOX_GUILD_ID, user_id=ALICE, viewer_id=ALICE, season=ref)
    assert carol is not None and carol.season is not None and carol.season.xp == 50
    assert alice is not None and alice.season is not None and (alice.season.xp, alice.season.stars) == (0, 0)


async def test_buy_coffee_with_too_little_gold_writes_nothing(app: Runtime) -> None:
    ledger_before = await scalar(app, "SELECT count(*) FROM gold_ledger")
    cost = app.components.cache.settings(SANDBOX_GUILD_ID).int("economy.coffee_cost")
    record = await sim(app).invoke("buy-coffee", user=NEWCOMER)
    assert_ephemeral_answer(record, f"Not enough Gold: need {cost:,}, you have 0")
    assert await scalar(app, "SELECT count(*) FROM gold_ledger") == ledger_before
    member = await scalar(app, "SELECT count(*) FROM members WHERE user_id = :u", u=NEWCOMER)
    assert member == 0


async def test_buy_coffee_charges_once_even_when_the_interaction_is_delivered_twice(app: Runtime) -> None:
    cost = app.components.cache.settings(SANDBOX_GUILD_ID).int("economy.coffee_cost")
    gold_sql = "SELECT gold FROM members WHERE guild_id = :g AND user_id = :u"
    before = await scalar(app, gold_sql, g=SANDBOX_GUILD_ID, u=ALICE)
    record = await sim(app).invoke("buy-coffee", user=ALICE)
    assert_ephemeral_answer(record, f"☕ Enjoy! −{cost:,} Gold, balance {before - cost:,}")

    # Discord delivering the same INTERACTION_CREATE again: the duplicate stops at its refused acknowledgement.
    await sim(app).interactions.events.gateway.dispatch("INTERACTION_CREATE", record.payload, guild_id=SANDBOX_GUILD_ID)
    await wait_for(lambda: bool(record.rejected))
    assert record.rejected == ["second ack"]
    purchases = "SELECT count(*) FROM gold_ledger WHERE idempotency_key = :k"
    assert await scalar(app, purchases, k=f"buy:{record.id}") == 1
    assert await scalar(app, gold_sql, g=SANDBOX_GUILD_ID, u=ALICE) == before - cost


async def test_preferences_create_the_member_row_and_store_the_choice(app: Runtime) -> None:
    user = SANDBOX_FIRST_MEMBER_ID + 10
    record = await sim(app).invoke("preferences", user=user, options={"setting": "level_up", "value": "off"})
    assert_ephemeral_answer(record, "Level-up announcements: off")
    stored = await scalar(
        app,
        "SELECT announce_level_up FROM member_preferences WHERE guild_id = :g AND user_id = :u",
        g=SANDBOX_GUILD_ID,
        u=user,
    )
    assert stored is False
    record = await sim(app).invoke("preferences", user=user, options={"setting": "level_up", "value": "on"})
    assert_ephemeral_answer(record, "Level-up announcements: on")


async def test_link_github_valid_invalid_and_removal(app: Runtime) -> None:
    user = SANDBOX_FIRST_MEMBER_ID + 11
    github_sql = "SELECT github_username FROM members WHERE guild_id = :g AND user_id = :u"

    bad = await sim(app).invoke("link-github", user=user, options={"username": "-bad--name"})
    assert not bad.deferred
    assert bad.ephemeral and bad.content is not None and bad.content.startswith("username: ")
    assert await scalar(app, github_sql, g=SANDBOX_GUILD_ID, u=user) is None

    good = await sim(app).invoke("link-github", user=user, options={"username": "octo-cat"})
    assert_ephemeral_answer(good, "GitHub linked: octo\\-cat")
    assert await scalar(app, github_sql, g=SANDBOX_GUILD_ID, u=user) == "octo-cat"
    profile = fields(await sim(app).invoke("profile", user=user))
    assert profile["GitHub"] == "https://github.com/octo-cat"

    removed = await sim(app).invoke("link-github", user=user)
    assert_ephemeral_answer(removed, "GitHub link removed.")
    assert await scalar(app, github_sql, g=SANDBOX_GUILD_ID, u=user) is None
