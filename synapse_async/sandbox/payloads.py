"""Discord JSON shapes for world objects, as the real API sends them (API v10).

Every function here renders a `world` object into exactly the structure Discord puts on the wire, snowflakes as
strings and timestamps as ISO 8601 with offset, including the fields clients treat as mandatory (hikari's entity
factory indexes many keys directly and fails on a missing one). The gateway and REST layers never build entity
JSON by hand, so a shape is fixed in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from synapse_async.sandbox.world import (
    Attachment,
    Channel,
    ChannelType,
    Emoji,
    Guild,
    Member,
    Message,
    MessageType,
    Role,
    User,
    VoiceState,
    World,
)

JSON = dict[str, Any]

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


def iso(at: datetime | None) -> str | None:
    """Discord's timestamp format (`2024-01-01T00:00:00.000000+00:00`)."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def sid(value: int | None) -> str | None:
    """A snowflake as Discord sends it: a decimal string (or null)."""
    return None if value is None else str(value)


# ------------------------------------------------------------------------------------------------ users / members


def user_payload(user: User) -> JSON:
    payload: JSON = {
        "id": str(user.id),
        "username": user.username,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": user.avatar,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
    }
    if user.bot:
        payload["bot"] = True
    if user.system:
        payload["system"] = True
    return payload


def own_user_payload(user: User, *, with_email: bool = False) -> JSON:
    """`GET /users/@me` and READY's `user`: the public user plus account fields."""
    payload = user_payload(user)
    payload.update({"mfa_enabled": False, "verified": True, "locale": "en-US", "premium_type": 0})
    if with_email:
        payload["email"] = user.email
    return payload


def member_payload(world: World, guild: Guild, member: Member, *, with_user: bool = True) -> JSON:
    payload: JSON = {
        "nick": member.nick,
        "avatar": member.avatar,
        "banner": None,
        "roles": [str(r) for r in member.roles],
        "joined_at": iso(member.joined_at),
        "premium_since": iso(member.premium_since),
        "deaf": member.deaf,
        "mute": member.mute,
        "pending": member.pending,
        "flags": member.flags,
        "communication_disabled_until": iso(member.communication_disabled_until),
        "avatar_decoration_data": None,
    }
    if with_user:
        payload["user"] = user_payload(world.user(member.user_id))
    return payload


def interaction_member_payload(world: World, guild: Guild, member: Member) -> JSON:
    """A member inside an interaction: the usual fields plus the member's computed `permissions`."""
    payload = member_payload(world, guild, member)
    payload["permissions"] = str(guild.base_permissions(member.user_id))
    return payload


# ------------------------------------------------------------------------------------------------ roles


def role_payload(role: Role) -> JSON:
    payload: JSON = {
        "id": str(role.id),
        "name": role.name,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": 0,
    }
    if role.bot_id is not None:
        payload["tags"] = {"bot_id": str(role.bot_id)}
    return payload


# ------------------------------------------------------------------------------------------------ channels


def _overwrites(channel: Channel) -> list[JSON]:
    return [{"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)} for o in channel.overwrites]


def channel_payload(channel: Channel, *, with_guild_id: bool = True) -> JSON:
    """A non-thread guild channel (threads: `thread_payload`)."""
    if channel.is_thread:
        return thread_payload(channel, with_guild_id=with_guild_id)
    payload: JSON = {
        "id": str(channel.id),
        "type": int(channel.type),
        "name": channel.name,
        "position": channel.position,
        "parent_id": sid(channel.parent_id),
        "permission_overwrites": _overwrites(channel),
        "nsfw": channel.nsfw,
        "flags": channel.flags,
    }
    if with_guild_id:
        payload["guild_id"] = str(channel.guild_id)
    kind = channel.type
    if kind in (ChannelType.TEXT, ChannelType.ANNOUNCEMENT):
        payload.update(
            {
                "topic": channel.topic,
                "last_message_id": sid(channel.last_message_id),
                "rate_limit_per_user": channel.rate_limit_per_user,
                "last_pin_timestamp": None,
                "default_auto_archive_duration": 1440,
            }
        )
    elif kind.is_voice:
        payload.update(
            {
                "bitrate": channel.bitrate,
                "user_limit": channel.user_limit,
                "rtc_region": channel.rtc_region,
                "video_quality_mode": 1,
                "last_message_id": sid(channel.last_message_id),
                "rate_limit_per_user": channel.rate_limit_per_user,
            }
        )
    elif kind.is_thread_only:
        payload.update(
            {
                "topic": channel.topic,
                "last_message_id": sid(channel.last_message_id),
                "rate_limit_per_user": channel.rate_limit_per_user,
                "default_thread_rate_limit_per_user": 0,
                "default_auto_archive_duration": 4320,
                "available_tags": [],
                "default_reaction_emoji": None,
                "default_sort_order": None,
                "default_forum_layout": 0,
            }
        )
    return payload


def thread_payload(
    thread: Channel,
    *,
    with_guild_id: bool = True,
    newly_created: bool = False,
    bot_member_since: datetime | None = None,
    bot_user_id: int | None = None,
) -> JSON:
    """A thread channel; `newly_created` marks THREAD_CREATE for a thread that did not exist before."""
    created_at = thread.created_at
    metadata: JSON = {
        "archived": thread.archived,
        "archive_timestamp": iso(created_at or datetime.now(UTC)),
        "auto_archive_duration": thread.auto_archive_duration,
        "locked": thread.locked,
    }
    if created_at is not None:
        metadata["create_timestamp"] = iso(created_at)
    if thread.type == ChannelType.PRIVATE_THREAD:
        metadata["invitable"] = thread.invitable
    payload: JSON = {
        "id": str(thread.id),
        "type": int(thread.type),
        "name": thread.name,
        "parent_id": sid(thread.parent_id),
        "owner_id": sid(thread.owner_id),
        "last_message_id": sid(thread.last_message_id),
        "last_pin_timestamp": None,
        "rate_limit_per_user": thread.rate_limit_per_user,
        "message_count": thread.message_count,
        "total_message_sent": thread.message_count,
        "member_count": len(thread.member_ids),
        "thread_metadata": metadata,
        "flags": thread.flags,
    }
    if thread.type == ChannelType.PUBLIC_THREAD:
        payload["applied_tags"] = [str(t) for t in thread.applied_tags]
    if with_guild_id:
        payload["guild_id"] = str(thread.guild_id)
    if newly_created:
        payload["newly_created"] = True
    if bot_member_since is not None and bot_user_id is not None:
        payload["member"] = {
            "id": str(thread.id),
            "user_id": str(bot_user_id),
            "join_timestamp": iso(bot_member_since),
            "flags": 0,
        }
    return payload


def partial_channel_payload(guild: Guild, channel: Channel, permissions: int) -> JSON:
    """The `channel` object inside an interaction (partial, with the invoker's permissions in it)."""
    payload = channel_payload(channel)
    payload["permissions"] = str(permissions)
    return payload


# ------------------------------------------------------------------------------------------------ voice


def voice_state_payload(
    world: World, guild: Guild, state: VoiceState, *, channel_id: int | None, in_guild_create: bool = False
) -> JSON:
    """A voice state; `channel_id` None is a disconnect. Inside GUILD_CREATE Discord omits guild_id and member."""
    payload: JSON = {
        "channel_id": sid(channel_id),
        "user_id": str(state.user_id),
        "session_id": state.session_id,
        "deaf": state.deaf,
        "mute": state.mute,
        "self_deaf": state.self_deaf,
        "self_mute": state.self_mute,
        "self_video": state.self_video,
        "self_stream": state.self_stream,
        "suppress": state.suppress,
        "request_to_speak_timestamp": None,
    }
    if not in_guild_create:
        payload["guild_id"] = str(guild.id)
        member = guild.members.get(state.user_id)
        if member is not None:
            payload["member"] = member_payload(world, guild, member)
    return payload


# ------------------------------------------------------------------------------------------------ guilds


def _guild_fields(guild: Guild, world: World) -> JSON:
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": guild.icon,
        "icon_hash": guild.icon,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": sid(guild.afk_channel_id),
        "afk_timeout": guild.afk_timeout,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": sid(guild.system_channel_id),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "description": guild.description,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.preferred_locale,
        "nsfw_level": 0,
        "nsfw": False,
        "features": list(guild.features),
        "roles": [role_payload(r) for r in guild.sorted_roles()],
        "emojis": [],
        "stickers": [],
        "max_members": 500000,
        "max_presences": None,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "incidents_data": None,
    }


def guild_create_payload(
    world: World,
    guild: Guild,
    *,
    available: bool,
    include_all_members: bool,
    large_threshold: int,
) -> JSON:
    """GUILD_CREATE as sent after READY (`available`) or when the bot joins a guild.

    Like Discord, the member list holds everyone only when the client may receive it (presence intent and not a
    large guild); otherwise only the bot itself and members in voice channels, and the client chunks the rest.
    """
    member_count = len(guild.members)
    large = member_count > large_threshold
    if include_all_members and not large:
        listed = list(guild.members.values())
    else:
        wanted = {world.bot_user_id, *guild.voice_states}
        listed = [m for uid, m in guild.members.items() if uid in wanted]
    bot_member = guild.members.get(world.bot_user_id)
    payload = _guild_fields(guild, world)
    payload.update(
        {
            "joined_at": iso(guild.bot_joined_at),
            "large": large,
            "member_count": member_count,
            "members": [member_payload(world, guild, m) for m in listed],
            "channels": [channel_payload(c, with_guild_id=False) for c in guild.top_level_channels()],
            "threads": [
                thread_payload(
                    t,
                    bot_member_since=(
                        bot_member.joined_at if bot_member and world.bot_user_id in t.member_ids else None
                    ),
                    bot_user_id=world.bot_user_id,
                )
                for t in guild.threads()
                if not t.archived
            ],
            "voice_states": [
                voice_state_payload(world, guild, vs, channel_id=vs.channel_id, in_guild_create=True)
                for vs in guild.voice_states.values()
            ],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "lazy": True,
            "application_command_counts": {},
        }
    )
    if available:
        payload["unavailable"] = False
    return payload


def rest_guild_payload(world: World, guild: Guild, *, with_counts: bool) -> JSON:
    payload = _guild_fields(guild, world)
    if with_counts:
        payload["approximate_member_count"] = len(guild.members)
        payload["approximate_presence_count"] = 0
    return payload


def own_guild_payload(guild: Guild, user_id: int, *, with_counts: bool) -> JSON:
    """An entry of `GET /users/@me/guilds`."""
    payload: JSON = {
        "id": str(guild.id),
        "name": guild.name,
        "icon": guild.icon,
        "banner": None,
        "owner": guild.owner_id == user_id,
        "permissions": str(guild.base_permissions(user_id)),
        "features": list(guild.features),
    }
    if with_counts:
        payload["approximate_member_count"] = len(guild.members)
        payload["approximate_presence_count"] = 0
    return payload


# ------------------------------------------------------------------------------------------------ messages


def attachment_payload(attachment: Attachment) -> JSON:
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "size": attachment.size,
        "url": attachment.url,
        "proxy_url": attachment.url,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
    }


def emoji_payload(emoji: Emoji) -> JSON:
    if emoji.id is None:
        return {"id": None, "name": emoji.name}
    return {"id": str(emoji.id), "name": emoji.name, "animated": emoji.animated}


def message_payload(world: World, message: Message, *, with_reference: bool = True) -> JSON:
    """A full message object, as in MESSAGE_CREATE and REST responses."""
    author = world.user(message.author_id)
    guild = world.guilds.get(message.guild_id)
    payload: JSON = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author": user_payload(author),
        "content": message.content,
        "timestamp": iso(message.timestamp),
        "edited_timestamp": iso(message.edited_at),
        "tts": message.tts,
        "mention_everyone": message.mention_everyone,
        "mentions": [],
        "mention_roles": [str(r) for r in message.mention_role_ids],
        "attachments": [attachment_payload(a) for a in message.attachments],
        "embeds": list(message.embeds),
        "components": list(message.components),
        "pinned": False,
        "type": int(message.type),
        "flags": message.flags,
    }
    if guild is not None:
        payload["guild_id"] = str(guild.id)
        member = guild.members.get(message.author_id)
        if member is not None and message.webhook_id is None:
            payload["member"] = member_payload(world, guild, member, with_user=False)
    for user_id in message.mention_user_ids:
        user = world.users.get(user_id)
        if user is None:
            continue
        mention = user_payload(user)
        if guild is not None and user_id in guild.members:
            mention["member"] = member_payload(world, guild, guild.members[user_id], with_user=False)
        payload["mentions"].append(mention)
    if message.nonce is not None:
        payload["nonce"] = message.nonce
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
    if message.application_id is not None:
        payload["application_id"] = str(message.application_id)
    if message.interaction_id is not None and message.interaction_user_id is not None:
        invoker = user_payload(world.user(message.interaction_user_id))
        payload["interaction_metadata"] = {
            "id": str(message.interaction_id),
            "type": 2,
            "user": invoker,
            "authorizing_integration_owners": {"0": str(message.guild_id)},
            "name": message.interaction_name,
            "command_type": 1,
        }
        payload["interaction"] = {
            "id": str(message.interaction_id),
            "type": 2,
            "name": message.interaction_name,
            "user": invoker,
        }
    if message.reactions:
        payload["reactions"] = [
            {
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "me": world.bot_user_id in users,
                "me_burst": False,
                "burst_colors": [],
                "emoji": emoji_payload(message.reaction_emojis[key]),
            }
            for key, users in message.reactions.items()
            if users
        ]
    if message.reply_to is not None:
        payload["message_reference"] = {
            "type": 0,
            "message_id": str(message.reply_to),
            "channel_id": str(message.reference_channel_id or message.channel_id),
            "guild_id": str(message.guild_id),
        }
        referenced = world.messages.get(message.reply_to)
        if with_reference:
            payload["referenced_message"] = (
                message_payload(world, referenced, with_reference=False)
                if referenced is not None and not referenced.deleted
                else None
            )
    elif message.type == MessageType.THREAD_CREATED and message.thread_id is not None:
        payload["message_reference"] = {
            "type": 0,
            "channel_id": str(message.thread_id),
            "guild_id": str(message.guild_id),
        }
    return payload


def reaction_add_payload(world: World, guild: Guild, message: Message, user_id: int, emoji: Emoji) -> JSON:
    payload: JSON = {
        "user_id": str(user_id),
        "channel_id": str(message.channel_id),
        "message_id": str(message.id),
        "guild_id": str(guild.id),
        "emoji": emoji_payload(emoji),
        "message_author_id": str(message.author_id),
        "burst": False,
        "burst_colors": [],
        "type": 0,
    }
    member = guild.members.get(user_id)
    if member is not None:
        payload["member"] = member_payload(world, guild, member)
    return payload


def reaction_remove_payload(guild: Guild, message: Message, user_id: int, emoji: Emoji) -> JSON:
    return {
        "user_id": str(user_id),
        "channel_id": str(message.channel_id),
        "message_id": str(message.id),
        "guild_id": str(guild.id),
        "emoji": emoji_payload(emoji),
        "burst": False,
        "type": 0,
    }


# ------------------------------------------------------------------------------------------------ application


def application_payload(world: World, *, verify_key: str) -> JSON:
    """`GET /oauth2/applications/@me`."""
    owner = world.guilds[min(world.guilds)].owner_id if world.guilds else world.bot_user_id
    return {
        "id": str(world.application_id),
        "name": world.bot_user.username,
        "icon": None,
        "description": "Simulated application",
        "summary": "",
        "type": None,
        "bot": user_payload(world.bot_user),
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user_payload(world.user(owner)),
        "verify_key": verify_key,
        "flags": world.application_flags,
        "team": None,
        "tags": [],
        "rpc_origins": [],
        "redirect_uris": [],
        "approximate_guild_count": len(world.guilds),
        "approximate_user_install_count": 0,
        "integration_types_config": {
            "0": {"oauth2_install_params": {"scopes": ["bot", "applications.commands"], "permissions": "268437504"}}
        },
        "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "268437504"},
    }
