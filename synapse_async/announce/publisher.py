"""Turns a committed transaction's effects into announcements (SPEC §14): guild toggles, channel choice, embeds.

The processor already checked the member's preferences and the guild toggles inside the transaction; here the
channel candidates are ordered (template channel > `announce.channel_id` > the event's channel) and the embeds
built from cached display settings, then everything is queued on the announcer — after COMMIT only.
"""

from __future__ import annotations

from collections.abc import Callable

from synapse_async.announce.announcer import Announcement, Announcer
from synapse_async.announce.embeds import achievement_embed, award_embed, level_up_embed
from synapse_async.cache.config_cache import ConfigCache, GuildConfig, TemplateInfo
from synapse_async.pipeline.processor import Effects


def _candidates(*channels: int | None) -> tuple[int, ...]:
    return tuple(dict.fromkeys(c for c in channels if c is not None))


def usable_channels(cache: ConfigCache) -> Callable[[int, int], bool]:
    """Known text-capable channels that are not deleted; threads (never stored) are tried and may be refused."""

    def usable(guild_id: int, channel_id: int) -> bool:
        channel = cache.guild(guild_id).channels.get(channel_id)
        if channel is None:
            return True
        return not channel.deleted and channel.type in ("text", "announcement", "voice", "stage")

    return usable


class AnnouncementPublisher:
    def __init__(self, announcer: Announcer, cache: ConfigCache) -> None:
        self._announcer = announcer
        self._cache = cache

    def publish(self, effects: Effects) -> None:
        for up in effects.level_ups:
            guild = self._cache.guild(up.guild_id)
            embed = level_up_embed(
                user_id=up.user_id,
                level=up.level,
                gold=up.gold,
                gold_name=guild.settings.str("economy.gold_name"),
                avatar_url=None,
            )
            channels = _candidates(guild.settings.snowflake("announce.channel_id"), up.channel_id)
            self._announcer.enqueue(Announcement(up.guild_id, "level_up", up.user_id, channels, embed))
        for earned in effects.achievements:
            guild = self._cache.guild(earned.guild_id)
            self._announcer.enqueue(
                self._achievement(guild, earned.user_id, earned.template, earned.channel_id, earned.granted_by)
            )
        for award in effects.awards:
            guild = self._cache.guild(award.guild_id)
            s = guild.settings
            embed = award_embed(
                user_id=award.user_id,
                xp=max(award.xp, 0),
                gold=max(award.gold, 0),
                xp_name=s.str("economy.xp_name"),
                gold_name=s.str("economy.gold_name"),
                reason=award.reason,
                awarded_by=award.actor_id,
            )
            channels = _candidates(s.snowflake("announce.channel_id"), award.channel_id)
            self._announcer.enqueue(Announcement(award.guild_id, "manual_award", award.user_id, channels, embed))

    def _achievement(
        self, guild: GuildConfig, user_id: int, template: TemplateInfo, channel: int | None, granted_by: str | None
    ) -> Announcement:
        rarity = guild.rarities.get(template.rarity_id) if template.rarity_id is not None else None
        s = guild.settings
        embed = achievement_embed(
            user_id=user_id,
            name=template.name,
            rarity_name=rarity.name if rarity else None,
            rarity_emoji=rarity.emoji if rarity else None,
            rarity_color=rarity.color if rarity else None,
            description=template.description,
            hidden=template.is_hidden,
            xp=template.xp_reward,
            gold=template.gold_reward,
            xp_name=s.str("economy.xp_name"),
            gold_name=s.str("economy.gold_name"),
            image_url=template.badge_image_url,
            granted_by=granted_by,
        )
        channels = _candidates(template.announce_channel_id, s.snowflake("announce.channel_id"), channel)
        return Announcement(guild.guild_id, "achievement", user_id, channels, embed)
