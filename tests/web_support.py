"""A guild with content for the web page tests: members with hostile names, achievements, seasons, a private member.

Activity goes through the real pipeline (simulator gateway → hikari → lanes); the private member switches
`public_profile` off with the real `/preferences` command; catalogue rows and the past season are configuration
written like an admin would (with their NOTIFY).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import text

from synapse_async.runtime import Runtime
from tests.pipeline_support import ACTOR, GUILD, pipeline_runtime, query, settle, write_config
from tests.support import wait_for

HOSTILE_NAMES = (
    "<img src=x onerror=alert(1)>",
    '"><script>alert(2)</script>',
    "\u202eevil\u202c reversed",
    "مرحبا بالعالم",
    "こんにちは世界のみなさん",
    "🎉🔥🚀",
    "W" * 100,
)
MESSAGE = "a perfectly ordinary message from a member of this guild"


@dataclass
class WebWorld:
    rt: Runtime
    channel: int
    hostile: dict[str, int] = field(default_factory=dict)
    private: int = 0
    active: list[int] = field(default_factory=list)
    past_season: int = 0


@contextlib.asynccontextmanager
async def web_world(database_url: str) -> AsyncIterator[WebWorld]:
    async with pipeline_runtime(database_url, 12, PUBLIC_RATE_LIMIT_PER_MINUTE="0") as rt:
        sim = rt.simulator
        assert sim is not None
        cache = rt.components.require_cache()
        channel = int(await sim.create_channel("web-test", "announcement"))
        await wait_for(lambda: channel in cache.guild(GUILD).channels)
        world = WebWorld(rt, channel)
        for i, name in enumerate(HOSTILE_NAMES):
            uid = int(await sim.join(username=f"hostile{i}", global_name=name))
            world.hostile[name] = uid
        members = [m for m in sim.member_ids() if m not in world.hostile.values()]
        world.active = members[:6]
        world.private = members[6]
        senders = [*world.active, world.private, *world.hostile.values()]
        for n, uid in enumerate(senders):
            for i in range(1 + n % 4):
                await sim.message(uid, channel, f"{MESSAGE} #{i}")
        await settle(rt)
        record = await sim.invoke(
            "preferences", user=world.private, options={"setting": "public_profile", "value": "off"}
        )
        assert "Public profile: off" in str(record.content), record
        await write_config(
            rt,
            "INSERT INTO achievement_categories (guild_id, name, sort_order) VALUES (:g, 'Chatting', 1)",
            "achievement_categories",
        )
        await write_config(
            rt,
            "INSERT INTO achievement_series (guild_id, name) VALUES (:g, 'Talker')",
            "achievement_series",
        )
        ids = {
            r["name"]: r["id"]
            for r in await query(rt, "SELECT id, name FROM achievement_series WHERE guild_id = :g", g=GUILD)
        }
        cats = {
            r["name"]: r["id"]
            for r in await query(rt, "SELECT id, name FROM achievement_categories WHERE guild_id = :g", g=GUILD)
        }
        rarity = await query(
            rt, "SELECT id FROM achievement_rarities WHERE guild_id = :g ORDER BY sort_order LIMIT 1", g=GUILD
        )
        await write_config(
            rt,
            "INSERT INTO achievement_templates (guild_id, name, description, trigger_type, xp_reward, gold_reward,"
            " is_hidden, category_id, series_id, series_order, rarity_id) VALUES"
            " (:g, 'First words', 'Say something', 'manual', 10, 5, false, :c, :s, 1, :r),"
            " (:g, 'Chatterbox', 'Say a lot', 'manual', 50, 20, false, :c, :s, 2, :r),"
            " (:g, 'Hidden gem', 'a secret criterion', 'manual', 5, 7, true, NULL, NULL, NULL, NULL)",
            "achievement_templates",
            c=cats["Chatting"],
            s=ids["Talker"],
            r=rarity[0]["id"] if rarity else None,
        )
        templates = {
            r["name"]: r["id"]
            for r in await query(rt, "SELECT id, name FROM achievement_templates WHERE guild_id = :g", g=GUILD)
        }
        economy = rt.components.require_economy()
        for n, uid in enumerate([world.active[0], world.hostile[HOSTILE_NAMES[0]], world.private]):
            await economy.grant(
                guild_id=GUILD, user_id=uid, template_id=templates["First words"], actor=ACTOR, request_id=f"web-{n}"
            )
        await write_config(
            rt,
            "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, ended_at) VALUES"
            " (:g, 'Spring <b>cup</b>', now() - interval '40 days', now() - interval '10 days', 'ended',"
            " now() - interval '10 days')",
            "seasons",
        )
        season = (await query(rt, "SELECT season_id FROM seasons WHERE guild_id = :g AND status = 'ended'", g=GUILD))[0]
        world.past_season = int(season["season_id"])
        assert rt.components.db is not None
        async with rt.components.db.sessions.begin() as session:  # statistics, not configuration: no NOTIFY
            for n, uid in enumerate([*world.active[:4], world.private]):
                await session.execute(
                    text("INSERT INTO season_stats (season_id, user_id, guild_id, stars) VALUES (:s, :u, :g, :n)"),
                    {"s": world.past_season, "u": uid, "g": GUILD, "n": 10 * (n + 1)},
                )
        yield world
