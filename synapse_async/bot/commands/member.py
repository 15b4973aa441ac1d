"""Member commands (SPEC §17.2): `/profile`, `/leaderboard`, `/link-github`, `/preferences`, `/buy-coffee`.

Thin adapters: check the input (before deferring), defer with the final reply's visibility, call one service,
render. Errors are raised and answered by the framework's error handler.
"""

from __future__ import annotations

import hikari
import lightbulb

from synapse_async.bot.framework import (
    CommandInputError,
    Refusal,
    Responder,
    display_name,
    guild_id_of,
    member_args,
)
from synapse_async.bot.render import CURRENCY_OF, escape, leaderboard_embed, number, profile_embed
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.services.economy import Economy
from synapse_async.services.member_settings import PREFERENCE_LABELS, MemberSettings, Preference, github_problem
from synapse_async.services.ranks import Currency
from synapse_async.services.standings import Scope, SeasonRef, Standings

loader = lightbulb.Loader()

BOTS_MESSAGE = "Bots don't take part."
EMPTY_BOARD_MESSAGE = "Nobody is on this leaderboard yet."
NO_SEASON_MESSAGE = "No season is active; try scope lifetime."


def _active_season(cache: ConfigCache, guild_id: int) -> SeasonRef | None:
    season = cache.guild(guild_id).active_season
    return None if season is None else SeasonRef(season.season_id, season.name, season.ends_at)


@loader.command
class ProfileCommand(lightbulb.SlashCommand, name="profile", description="Show a member's level, XP and badges"):
    member = lightbulb.user("member", "Whose profile (default: yours)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        standings: Standings = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        target: hikari.User = self.member or ctx.user
        if target.is_bot:
            raise Refusal(BOTS_MESSAGE)
        name = display_name(ctx, target)
        await responder.defer(ctx, ephemeral=False)
        profile = await standings.profile(
            guild_id=guild_id,
            user_id=int(target.id),
            viewer_id=int(ctx.user.id),
            season=_active_season(cache, guild_id),
        )
        if profile is None:
            raise Refusal(f"{escape(name)} hasn't earned anything yet.")
        config = cache.guild(guild_id)
        settings = config.settings
        embed = profile_embed(
            profile,
            curve=config.curve,
            xp_name=settings.str("economy.xp_name"),
            gold_name=settings.str("economy.gold_name"),
            stars_name=settings.str("economy.stars_name"),
            avatar_url=str(target.display_avatar_url),
        )
        await responder.reply(ctx, embed=embed, ephemeral=False)


@loader.command
class LeaderboardCommand(lightbulb.SlashCommand, name="leaderboard", description="The top members of this server"):
    by = lightbulb.string(
        "by",
        "Rank by (default: xp)",
        choices=[lightbulb.Choice("xp", "xp"), lightbulb.Choice("stars", "stars"), lightbulb.Choice("gold", "gold")],
        default="xp",
    )
    scope = lightbulb.string(
        "scope",
        "This season or all time (default: the season, if one is active)",
        choices=[lightbulb.Choice("season", "season"), lightbulb.Choice("lifetime", "lifetime")],
        default=None,
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        standings: Standings = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        if self.by not in CURRENCY_OF:
            raise CommandInputError("by", "must be one of: xp, stars, gold")
        if self.scope not in (None, "season", "lifetime"):
            raise CommandInputError("scope", "must be season or lifetime")
        currency: Currency = self.by  # type: ignore[assignment]
        season = _active_season(cache, guild_id)
        scope: Scope = self.scope or ("season" if season is not None else "lifetime")  # type: ignore[assignment]
        if scope == "season" and season is None:
            raise Refusal(NO_SEASON_MESSAGE)
        await responder.defer(ctx, ephemeral=False)
        settings = cache.settings(guild_id)
        board = await standings.leaderboard(
            guild_id=guild_id,
            currency=currency,
            scope=scope,
            season=season,
            size=settings.int("leaderboard.size"),
            viewer_id=int(ctx.user.id),
        )
        if not board.rows:
            raise Refusal(EMPTY_BOARD_MESSAGE)
        embed = leaderboard_embed(board, currency_name=settings.str(CURRENCY_OF[currency]))
        await responder.reply(ctx, embed=embed, ephemeral=False)


@loader.command
class LinkGithubCommand(lightbulb.SlashCommand, name="link-github", description="Show your GitHub on your profile"):
    username = lightbulb.string("username", "Your GitHub username (leave out to remove it)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        members: MemberSettings = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        me = member_args(ctx)
        username = self.username.strip() if self.username is not None else None
        if username is not None and (problem := github_problem(username)) is not None:
            raise CommandInputError("username", problem)
        await responder.defer(ctx, ephemeral=True)
        await members.link_github(**me, username=username)
        message = f"GitHub linked: {escape(username)}" if username is not None else "GitHub link removed."
        await responder.reply(ctx, message)


@loader.command
class PreferencesCommand(
    lightbulb.SlashCommand,
    name="preferences",
    description="Choose what is announced for you and whether your profile is public",
):
    setting = lightbulb.string(
        "setting",
        "Which setting",
        choices=[lightbulb.Choice(label, key) for key, label in PREFERENCE_LABELS.items()],
    )
    value = lightbulb.string(
        "value", "On or off", choices=[lightbulb.Choice("on", "on"), lightbulb.Choice("off", "off")]
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        members: MemberSettings = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        me = member_args(ctx)
        if self.setting not in PREFERENCE_LABELS:
            raise CommandInputError("setting", "must be one of: " + ", ".join(PREFERENCE_LABELS))
        if self.value not in ("on", "off"):
            raise CommandInputError("value", "must be on or off")
        preference: Preference = self.setting
        await responder.defer(ctx, ephemeral=True)
        await members.set_preference(**me, preference=preference, on=self.value == "on")
        await responder.reply(ctx, f"{PREFERENCE_LABELS[preference]}: {self.value}")


@loader.command
class BuyCoffeeCommand(lightbulb.SlashCommand, name="buy-coffee", description="Spend gold on a coffee"):
    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        economy: Economy = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        await responder.defer(ctx, ephemeral=True)
        result = await economy.buy_coffee(
            guild_id=guild_id,
            user_id=int(ctx.user.id),
            interaction_id=int(ctx.interaction.id),
        )
        gold_name = escape(cache.settings(guild_id).str("economy.gold_name"))
        if result.ok:
            message = f"☕ Enjoy! −{number(result.cost)} {gold_name}, balance {number(result.balance)}"
        else:
            message = f"Not enough {gold_name}: need {number(result.cost)}, you have {number(result.balance)}"
        await responder.reply(ctx, message)
