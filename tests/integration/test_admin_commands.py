"""Admin slash commands (SPEC §17.3) through real hikari + lightbulb + the simulator + PostgreSQL: replies,
autocomplete, the admin check, audit rows `via = command`, and the sandbox's command endpoint."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import text

from synapse_async.bot.commands.admin import AUTOCOMPLETE_LIMIT, GRANT_REFUSALS
from synapse_async.bot.commands.season import NONE_ACTIVE_MESSAGE
from synapse_async.bot.framework import NOT_ADMIN_MESSAGE
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_BOT_ID, SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, SANDBOX_OWNER_ID
from tests.support import simulator_of as sim
from tests.support import wait_for

ADMIN = SANDBOX_OWNER_ID
ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1
G = SANDBOX_GUILD_ID


async def rows(app: Runtime, sql: str, **params: Any) -> list[Any]:
    async with app.components.db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def template_id(app: Runtime, name: str) -> int:
    cache = app.components.cache
    await wait_for(lambda: any(t.name == name for t in cache.guild(G).templates))
    return next(t.template_id for t in cache.guild(G).templates if t.name == name)


async def test_admin_commands_refuse_members_and_carry_manage_server(app: Runtime) -> None:
    for command, options in (("award", {"member": BOB, "xp": 5}), ("season end", {})):
        refused = await sim(app).invoke(command, user=ALICE, options=options)
        assert (refused.content, refused.ephemeral, refused.deferred) == (NOT_ADMIN_MESSAGE, True, False)
    store = sim(app).interactions.commands
    definitions = {r.name: store.payload(r) for r in store.records(None)}
    for name in ("award", "create-achievement", "grant-achievement", "season"):
        assert definitions[name]["default_member_permissions"] == str(1 << 5)  # MANAGE_GUILD
    for name in ("profile", "leaderboard", "buy-coffee"):
        assert definitions[name]["default_member_permissions"] in (None, "")


async def test_award_input_errors_are_answered_before_deferring(app: Runtime) -> None:
    cases = [
        ({"member": BOB, "xp": 1_000_001}, "xp: must be between -1,000,000 and 1,000,000"),
        ({"member": BOB}, "xp: xp or gold must be non-zero"),
        ({"member": BOB, "xp": 5, "reason": "x" * 201}, "reason: must be 1–200 characters"),
        ({"member": SANDBOX_BOT_ID, "gold": 5}, "member: bots don't take part"),
    ]
    for options, message in cases:
        record = await sim(app).invoke("award", user=ADMIN, options=options)
        assert (record.content, record.ephemeral, record.deferred) == (message, True, False)
    assert await rows(app, "SELECT 1 FROM reward_journal WHERE user_id = :u", u=BOB) == []


async def test_award_reports_applied_amounts_and_is_audited_via_command(app: Runtime) -> None:
    mark = len(sim(app).rest_calls)
    record = await sim(app).invoke(
        "award", user=ADMIN, options={"member": BOB, "xp": 130, "gold": -50, "reason": "Help"}
    )
    assert record.deferred and record.ephemeral
    # 130 XP reaches level 2 (125); gold −50 is clamped to what was there (the level-up gold).
    member = (await rows(app, "SELECT xp, gold, level FROM members WHERE guild_id = :g AND user_id = :u", g=G, u=BOB))[
        0
    ]
    assert member.xp == 130 and member.level == 2
    assert record.content is not None and record.content.startswith("Applied +130 XP and ")
    assert record.content.endswith(f"Now 130 XP, {member.gold:,} Gold, level 2.")
    audit = await rows(
        app,
        "SELECT actor_id, via, request_id FROM audit_log WHERE action = 'award.create' AND target_id = :t",
        t=str(BOB),
    )
    assert [(a.actor_id, a.via, a.request_id) for a in audit] == [(str(ADMIN), "command", f"interaction:{record.id}")]
    # The effects are published after commit like the pipeline's: the award and the level-up are announced.
    titles: set[str] = set()

    def announced(call: Any) -> bool:
        if call.route == "/channels/{channel_id}/messages" and call.method == "POST":
            titles.update(e.get("title", "") for e in call.json.get("embeds", []))
        return "Level up!" in titles

    await sim(app).wait_for_rest(announced, since=mark)


async def test_create_achievement_lists_every_field_error_and_writes_nothing(app: Runtime) -> None:
    record = await sim(app).invoke(
        "create-achievement", user=ADMIN, options={"name": "Chatty", "trigger": "stat_threshold", "xp_reward": -1}
    )
    assert not record.deferred and record.ephemeral
    assert record.content is not None
    assert record.content.splitlines() == [
        "stat: required",
        "value: required",
        "xp_reward: must be between 0 and 1,000,000",
    ]
    assert await rows(app, "SELECT 1 FROM achievement_templates WHERE name = 'Chatty'") == []


async def test_rarity_autocomplete_offers_the_guilds_rarities_filtered_by_input(app: Runtime) -> None:
    cache = app.components.cache
    await wait_for(lambda: len(cache.guild(G).rarities) == 5)  # seeded by guild sync (SPEC §12.1)
    options = {"name": "x", "trigger": "manual", "rarity": ""}
    everything = await sim(app).autocomplete("create-achievement", user=ADMIN, focused="rarity", options=options)
    assert [c["name"] for c in everything] == ["Common", "Uncommon", "Rare", "Epic", "Legendary"]
    filtered = await sim(app).autocomplete(
        "create-achievement", user=ADMIN, focused="rarity", options={**options, "rarity": "COMM"}
    )
    assert [c["name"] for c in filtered] == ["Common", "Uncommon"]
    rare = next(c["value"] for c in everything if c["name"] == "Rare")

    record = await sim(app).invoke(
        "create-achievement",
        user=ADMIN,
        options={"name": "Chatty", "trigger": "stat_threshold", "stat": "messages_sent", "value": 100, "rarity": rare,
                 "xp_reward": 50, "gold_reward": 5},
    )  # fmt: skip
    assert record.deferred and record.ephemeral
    created = await template_id(app, "Chatty")
    assert record.content == (
        f"Created achievement #{created} **Chatty**: trigger stat_threshold "
        "(stat=messages_sent, value=100, scope=lifetime); rewards 50 XP, 5 gold."
    )
    stored = await rows(app, "SELECT rarity_id, trigger_config FROM achievement_templates WHERE id = :i", i=created)
    assert stored[0].rarity_id == int(rare)
    assert stored[0].trigger_config == {"stat": "messages_sent", "value": 100, "scope": "lifetime"}
    audit = await rows(
        app, "SELECT via FROM audit_log WHERE action = 'achievement.create' AND target_id = :t", t=str(created)
    )
    assert [a.via for a in audit] == ["command"]

    taken = await sim(app).invoke("create-achievement", user=ADMIN, options={"name": "Chatty", "trigger": "manual"})
    assert (taken.content, taken.ephemeral) == ("name: already exists", True)


async def test_grant_autocomplete_and_every_refusal(app: Runtime) -> None:
    for i in range(AUTOCOMPLETE_LIMIT + 2):
        made = await sim(app).invoke(
            "create-achievement", user=ADMIN, options={"name": f"Badge {i:02}", "trigger": "manual"}
        )
        assert made.content is not None and made.content.startswith("Created"), made.content
    await template_id(app, f"Badge {AUTOCOMPLETE_LIMIT + 1:02}")
    choices = await sim(app).autocomplete(
        "grant-achievement", user=ADMIN, focused="achievement", options={"member": ALICE, "achievement": "badge"}
    )
    assert len(choices) == AUTOCOMPLETE_LIMIT and all(c["name"].startswith("Badge") for c in choices)
    narrowed = await sim(app).autocomplete(
        "grant-achievement", user=ADMIN, focused="achievement", options={"member": ALICE, "achievement": "badge 26"}
    )
    assert [c["name"] for c in narrowed] == ["Badge 26"]

    target = narrowed[0]["value"]
    first = await sim(app).invoke("grant-achievement", user=ADMIN, options={"member": ALICE, "achievement": target})
    assert first.content is not None and first.content.startswith(f"Granted achievement #{target} to "), first.content
    again = await sim(app).invoke("grant-achievement", user=ADMIN, options={"member": ALICE, "achievement": target})
    assert (again.content, again.ephemeral) == (GRANT_REFUSALS["already_earned"], True)
    unknown = await sim(app).invoke("grant-achievement", user=ADMIN, options={"member": ALICE, "achievement": "nope"})
    assert (unknown.content, unknown.deferred) == (
        "achievement: unknown in this server; pick one of the suggestions",
        False,
    )

    async with app.components.db.sessions.begin() as s:  # an admin elsewhere caps the template at its one earner
        await s.execute(text("UPDATE achievement_templates SET max_earners = 1 WHERE id = :i"), {"i": int(target)})
    full = await sim(app).invoke("grant-achievement", user=ADMIN, options={"member": BOB, "achievement": target})
    assert (full.content, full.ephemeral) == (GRANT_REFUSALS["max_earners"], True)
    audit = await rows(app, "SELECT via FROM audit_log WHERE action = 'achievement.grant'")
    assert [a.via for a in audit] == ["command"]


async def test_season_start_replaces_the_active_season_and_end_shows_the_top(app: Runtime) -> None:
    cache = app.components.cache
    none = await sim(app).invoke("season end", user=ADMIN)
    assert (none.content, none.ephemeral, none.deferred) == (NONE_ACTIVE_MESSAGE, True, False)

    first = await sim(app).invoke("season start", user=ADMIN, options={"name": "Alpha", "days": 10})
    assert not first.ephemeral and first.deferred
    (embed,) = first.embeds
    assert embed["title"] == "New season: Alpha"
    assert embed["description"].startswith("Ends <t:") and embed["description"].endswith(":D>")
    assert "fields" not in embed or embed["fields"] == []
    await wait_for(lambda: (s := cache.guild(G).active_season) is not None and s.name == "Alpha")

    second = await sim(app).invoke("season start", user=ADMIN, options={"name": "Beta"})
    (embed,) = second.embeds
    assert embed["title"] == "New season: Beta"
    assert embed["fields"] == [{"name": "Ended", "value": "Alpha", "inline": False}]
    statuses = await rows(app, "SELECT name, status FROM seasons WHERE guild_id = :g ORDER BY season_id", g=G)
    assert [(s.name, s.status) for s in statuses] == [("Alpha", "ended"), ("Beta", "active")]
    await wait_for(lambda: (s := cache.guild(G).active_season) is not None and s.name == "Beta")

    clash = await sim(app).invoke(
        "season start", user=ADMIN, options={"name": "Alpha"}, until=lambda r: bool(r.followups)
    )
    assert clash.original_deleted and clash.ephemeral
    assert clash.content == "A season with that name already exists."

    bad_days = await sim(app).invoke("season start", user=ADMIN, options={"name": "Gamma", "days": 731})
    assert (bad_days.content, bad_days.deferred) == ("days: must be between 1 and 730", False)

    beta = cache.guild(G).active_season
    assert beta is not None
    await sim(app).invoke("award", user=ADMIN, options={"member": ADMIN, "xp": 1})  # the admin takes part too
    async with app.components.db.sessions.begin() as s:  # season stars as the pipeline would have paid them
        for user, stars in ((ALICE, 7), (BOB, 9), (ADMIN, 7)):
            await s.execute(  # their rows, whichever tests ran before
                text(
                    "INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, :n)"
                    " ON CONFLICT (guild_id, user_id) DO NOTHING"
                ),
                {"g": G, "u": user, "n": f"Member {user % 100}"},
            )
            await s.execute(
                text(
                    "INSERT INTO season_stats (season_id, user_id, guild_id, stars) VALUES (:s, :u, :g, :n)"
                    " ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET stars = EXCLUDED.stars"
                ),
                {"s": beta.season_id, "u": user, "g": G, "n": stars},
            )
    ended = await sim(app).invoke("season end", user=ADMIN)
    assert not ended.ephemeral
    (embed,) = ended.embeds
    assert embed["title"] == "Beta has ended"
    lines = embed["description"].splitlines()
    assert [line.split(" — ")[1] for line in lines] == ["9 Stars", "7 Stars", "7 Stars"]
    # §17.1: the two members tied on 7 share rank 2 (no rank 3).
    assert [line.split(".")[0] for line in lines] == ["1", "2", "2"]
    audit = await rows(app, "SELECT action, via FROM audit_log WHERE target_type = 'season' ORDER BY id")
    assert [(a.action, a.via) for a in audit] == [
        ("season.start", "command"),
        ("season.end", "command"),
        ("season.start", "command"),
        ("season.end", "command"),
    ]


async def test_the_sandbox_endpoint_runs_a_command_as_a_member(app: Runtime) -> None:
    url = f"http://127.0.0.1:{app.http_port}/sandbox/commands"
    async with aiohttp.ClientSession() as http:
        body = {"user_id": str(BOB), "command": "leaderboard", "options": {"by": "xp", "scope": "lifetime"}}
        async with http.post(url, json=body) as resp:
            assert resp.status == 200
            answer = await resp.json()
        async with http.post(url, json={"user_id": str(BOB), "command": "profile", "bogus": 1}) as resp:
            assert resp.status == 400
            problem = await resp.json()
    assert answer["ephemeral"] is False and answer["deferred"] is True
    assert answer["embeds"][0]["title"] == "Leaderboard — XP (All time)"
    assert problem["error"]["details"][0]["field"] == "bogus"


async def test_the_sandbox_endpoint_names_valid_commands_and_options_at_once(app: Runtime) -> None:
    """Unknown commands, subcommands and options are a 400 naming the valid ones (SPEC §30), not a 10 s wait."""
    url = f"http://127.0.0.1:{app.http_port}/sandbox/commands"
    cases = [
        ({"command": "levels"}, "command", "unknown command 'levels'; the bot has registered: award,"),
        ({"command": "leaderboard", "options": {"sort": "xp"}}, "options", "unknown option(s) 'sort' of /leaderboard"),
        ({"command": "season"}, "command", "/season needs a subcommand: end, start"),
        ({"command": "season pause"}, "command", "unknown subcommand 'pause' of /season; valid: end, start"),
        ({"command": "preferences"}, "options", "/preferences needs option(s):"),
    ]
    async with aiohttp.ClientSession() as http:
        for extra, field, start in cases:
            async with http.post(url, json={"user_id": str(BOB), **extra}) as resp:
                assert resp.status == 400, extra
                [detail] = (await resp.json())["error"]["details"]
            assert detail["field"] == field and detail["message"].startswith(start), detail
