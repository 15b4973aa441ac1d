"""Turns a committed transaction's effects into announcements (SPEC §14): guild toggles, channel choice, embeds.

The processor already checked the member's preferences and the guild toggles inside the transaction; here the
channel candidates are ordered (template channel > `announce.channel_id` > the event's channel) and the embeds
built from cached display settings, then everything is queued on the announcer — after COMMIT only.

People appear as Discord shows them (SPEC §14): the member's avatar on level-ups (and on achievements without a
badge), the granting or awarding admin by display name. Both come from the gateway cache through a
`MemberDirectory`, so publishing stays synchronous and free of I/O. An admin the cache does not know is shown as
"an admin", a service identity by its id (`svc:…`); a raw user id is never shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import hikari

from synapse_async.announce.announcer import Announcement, Announcer
from synapse_async.announce.embeds import achievement_embed, award_embed, level_up_embed
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.ledger import Effects
from synapse_async.rewards.config import GuildConfig, TemplateInfo


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


UNKNOWN_ADMIN = "an admin"


class MemberDirectory(Protocol):
    """What the embeds need to know about people, answered from memory."""

    def avatar_url(self, guild_id: int, user_id: int) -> str | None: ...

    def display_name(self, guild_id: int, user_id: int) -> str | None: ...


class GatewayDirectory:
    """A `MemberDirectory` over hikari's gateway cache (the guild member first, then the user)."""

    def __init__(self, cache: hikari.api.Cache) -> None:
        self._cache = cache

    def avatar_url(self, guild_id: int, user_id: int) -> str | None:
        person: hikari.Member | hikari.User | None = self._cache.get_member(guild_id, user_id)
        if person is None:
            person = self._cache.get_user(user_id)
        return str(person.display_avatar_url) if person is not None else None

    def display_name(self, guild_id: int, user_id: int) -> str | None:
        member = self._cache.get_member(guild_id, user_id)
        if member is not None:
            return member.display_name
        user = self._cache.get_user(user_id)
        return (user.global_name or user.username) if user is not None else None


class _NoDirectory:
    def avatar_url(self, guild_id: int, user_id: int) -> str | None:
        return None

    def display_name(self, guild_id: int, user_id: int) -> str | None:
        return None


class AnnouncementPublisher:
    def __init__(self, announcer: Announcer, cache: ConfigCache, people: MemberDirectory | None = None) -> None:
        self._announcer = announcer
        self._cache = cache
        self._people: MemberDirectory = people if people is not None else _NoDirectory()

    def _admin(self, guild_id: int, actor_id: str) -> str:
        """How the admin behind a grant or award is named in the footer."""
        if not actor_id.isdigit():
            return actor_id  # a service identity (`svc:…`) or `system`: its id is its name
        return self._people.display_name(guild_id, int(actor_id)) or UNKNOWN_ADMIN

    def publish(self, effects: Effects) -> None:
        for up in effects.level_ups:
            guild = self._cache.guild(up.guild_id)
            embed = level_up_embed(
                user_id=up.user_id,
                level=up.level,
                gold=up.gold,
                gold_name=guild.settings.str("economy.gold_name"),
                avatar_url=self._people.avatar_url(up.guild_id, up.user_id),
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
                awarded_by=self._admin(award.guild_id, award.actor_id),
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
            image_url=template.badge_image_url or self._people.avatar_url(guild.guild_id, user_id),
            granted_by=self._admin(guild.guild_id, granted_by) if granted_by is not None else None,
        )
        channels = _candidates(template.announce_channel_id, s.snowflake("announce.channel_id"), channel)
        return Announcement(guild.guild_id, "achievement", user_id, channels, embed)
