"""`/season start <name> [days]` and `/season end` (SPEC §11, §17.3): public announcements of a season change.

The command always replaces an active season (the reply names the one it ended); the admin API must ask for that
explicitly. "None active" for `/season end` is answered from the cache before deferring, and again by the service
if another admin ended it meanwhile.
"""

from __future__ import annotations

import hikari
import lightbulb

from synapse_async.bot.commands.admin import ADMIN_PERMISSIONS
from synapse_async.bot.framework import (
    CommandInputError,
    Refusal,
    Responder,
    actor_of,
    admin_only,
    guild_id_of,
)
from synapse_async.bot.render import discord_date, escape, number
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.services.seasons import SeasonRejected, Seasons, days_problem, name_problem

loader = lightbulb.Loader()

NONE_ACTIVE_MESSAGE = "No season is active."
SEASON_REFUSALS = {
    "name_taken": "A season with that name already exists.",
    "none_active": NONE_ACTIVE_MESSAGE,
    "concurrent_change": "Another season change happened at the same moment; please try again.",
    "active_exists": "A season is already active.",
}

season = lightbulb.Group("season", "Start or end a season", default_member_permissions=ADMIN_PERMISSIONS)


@season.register
class StartSeason(
    lightbulb.SlashCommand, name="start", description="End any active season and start a new one", hooks=[admin_only]
):
    name = lightbulb.string("name", "Season name", max_length=100)
    days = lightbulb.integer("days", "How long it lasts (default: the server's setting)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        seasons: Seasons = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        days = self.days if self.days is not None else cache.settings(guild_id).int("season.default_days")
        if (problem := name_problem(self.name)) is not None:
            raise CommandInputError("name", problem)
        if (problem := days_problem(days)) is not None:
            raise CommandInputError("days", problem)
        await responder.defer(ctx, ephemeral=False)
        try:
            started = await seasons.start(
                guild_id=guild_id, name=self.name, days=days, actor=actor_of(ctx), replace_active=True
            )
        except SeasonRejected as rejected:
            raise Refusal(SEASON_REFUSALS[rejected.reason]) from rejected
        embed = hikari.Embed(
            title=f"New season: {escape(started.season.name)}",
            description=f"Ends {discord_date(started.season.ends_at)}",
        )
        if started.ended is not None:
            embed.add_field("Ended", escape(started.ended.name))
        await responder.reply(ctx, embed=embed, ephemeral=False)


@season.register
class EndSeason(lightbulb.SlashCommand, name="end", description="End the active season", hooks=[admin_only]):
    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        seasons: Seasons = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        if cache.guild(guild_id).active_season is None:
            raise Refusal(NONE_ACTIVE_MESSAGE)
        await responder.defer(ctx, ephemeral=False)
        try:
            ended = await seasons.end(guild_id=guild_id, actor=actor_of(ctx))
        except SeasonRejected as rejected:
            raise Refusal(SEASON_REFUSALS[rejected.reason]) from rejected
        stars_name = escape(cache.settings(guild_id).str("economy.stars_name"))
        # §17.1 ranks (ties share one), not list positions.
        lines = [f"{s.rank}. **{escape(s.display_name)}** — {number(s.stars)} {stars_name}" for s in ended.top]
        embed = hikari.Embed(
            title=f"{escape(ended.season.name)} has ended", description="\n".join(lines) or "Nobody earned any stars."
        )
        await responder.reply(ctx, embed=embed, ephemeral=False)


loader.command(season)
