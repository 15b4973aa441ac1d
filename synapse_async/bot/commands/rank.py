"""`/rank [member]` (SPEC §29): the member's rank card as a public image reply; `/profile` keeps its embed.

Thin: the figures come from the same `Standings.profile` read as `/profile`, the image from the card service
(rendered off the event loop, cached by state). Bots and members without a row are refused like `/profile`.
"""

from __future__ import annotations

import hikari
import lightbulb

from synapse_async.bot.framework import Refusal, Responder, display_name, guild_id_of
from synapse_async.bot.render import escape
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.services.card import CardBusy, CardService, CardState, avatar_url, default_avatar_url
from synapse_async.services.standings import SeasonRef, Standings

loader = lightbulb.Loader()

BOTS_MESSAGE = "Bots don't take part."
BUSY_CARDS_MESSAGE = "Too many cards are being drawn right now; please try again in a moment."
CARD_FILENAME = "rank.png"


@loader.command
class RankCommand(lightbulb.SlashCommand, name="rank", description="Show a member's rank card"):
    member = lightbulb.user("member", "Whose card (default: yours)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        standings: Standings = lightbulb.di.INJECTED,
        cards: CardService = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        target: hikari.User = self.member or ctx.user
        if target.is_bot:
            raise Refusal(BOTS_MESSAGE)
        name = display_name(ctx, target)
        await responder.defer(ctx, ephemeral=False)
        config = cache.guild(guild_id)
        active = config.active_season
        season = None if active is None else SeasonRef(active.season_id, active.name, active.ends_at)
        profile = await standings.profile(
            guild_id=guild_id, user_id=int(target.id), viewer_id=int(ctx.user.id), season=season
        )
        if profile is None:
            raise Refusal(f"{escape(name)} hasn't earned anything yet.")
        settings = config.settings
        level, into, span = config.curve.progress(profile.xp)
        accent = settings.raw("card.accent")
        state = CardState(
            guild_id=guild_id,
            user_id=profile.user_id,
            display_name=name,
            avatar_url=avatar_url(cards.cdn, profile.user_id, profile.avatar_hash),
            default_avatar_url=default_avatar_url(cards.cdn, profile.user_id),
            level=level,
            rank=profile.rank,
            ranked_of=profile.ranked,
            xp_into_level=into,
            xp_for_next_level=span,
            season_stars=profile.season.stars if profile.season is not None else 0,
            gold=profile.gold,
            accent=cards.accent(guild_id, accent if isinstance(accent, str) else None),
            theme="light" if settings.str("card.theme") == "light" else "dark",
            xp_name=settings.str("economy.xp_name"),
            stars_name=settings.str("economy.stars_name"),
            gold_name=settings.str("economy.gold_name"),
        )
        try:
            card = await cards.card(state)
        except CardBusy:
            raise Refusal(BUSY_CARDS_MESSAGE) from None
        await responder.reply(ctx, attachment=hikari.Bytes(card.png, CARD_FILENAME), ephemeral=False)
