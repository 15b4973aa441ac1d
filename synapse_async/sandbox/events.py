"""World mutations and the gateway dispatches Discord sends for them.

Both the test driver (a member posts, reacts, joins…) and the REST layer (the bot posts a message, edits a member's
roles, answers an interaction) change the world in the same ways, and Discord announces each change over the
gateway. Doing the mutation and the dispatch in one method keeps the world and what the client saw consistent, and
fixes the event order (e.g. a member leaving voice before leaving the guild) in one place.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from synapse_async.sandbox import payloads
from synapse_async.sandbox.gateway import GatewayServer, shard_for_guild
from synapse_async.sandbox.world import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    Attachment,
    Channel,
    ChannelType,
    Emoji,
    Guild,
    Member,
    Message,
    MessageFlag,
    MessageType,
    Permission,
    Role,
    User,
    VoiceState,
    World,
    snowflake_time,
    to_ms,
)

JSON = dict[str, Any]

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
CDN_URL = "https://cdn.discordapp.com"


class WorldEvents:
    """Applies a change to the world and dispatches the matching gateway event(s); returns the sequence numbers."""

    def __init__(self, world: World, gateway: GatewayServer) -> None:
        self.world = world
        self.gateway = gateway

    # ------------------------------------------------------------------------------------------------ messages

    async def create_message(
        self,
        *,
        channel_id: int,
        author_id: int,
        content: str = "",
        attachments: int | list[Attachment] = 0,
        reply_to: int | None = None,
        embeds: list[JSON] | None = None,
        components: list[JSON] | None = None,
        allowed_mentions: JSON | None = None,
        flags: int = 0,
        message_type: MessageType | None = None,
        at: datetime | float | int | None = None,
        message_id: int | None = None,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: tuple[int, int, str] | None = None,
        nonce: str | int | None = None,
        tts: bool = False,
        thread_id: int | None = None,
        reference_channel_id: int | None = None,
    ) -> tuple[Message, list[int]]:
        """Store a message and dispatch MESSAGE_CREATE (ephemeral messages are never dispatched, as on Discord).

        `interaction` is `(interaction_id, invoking_user_id, command_name)` for interaction responses.
        """
        guild, channel = self.world.channel(channel_id)
        if channel.type == ChannelType.CATEGORY or channel.type.is_thread_only:
            # Forum and media channels only hold threads; posts go into the thread (see thread_create).
            raise ValueError(f"cannot post a message in {channel.type.name} channel {channel_id}")
        mid = message_id if message_id is not None else self.world.new_id(at)
        timestamp = _as_datetime(at, mid)
        if isinstance(attachments, int):
            files = [
                Attachment(
                    id=self.world.new_id(),
                    filename=f"file{i}.png",
                    size=1024 * (i + 1),
                    url=f"{CDN_URL}/attachments/{channel_id}/{mid}/file{i}.png",
                )
                for i in range(attachments)
            ]
        else:
            files = list(attachments)
        if message_type is None:
            message_type = MessageType.REPLY if reply_to is not None else MessageType.DEFAULT
        mention_users = [int(u) for u in _USER_MENTION.findall(content)]
        replied = self.world.messages.get(reply_to) if reply_to is not None else None
        if message_type == MessageType.REPLY and replied is not None and replied.author_id not in mention_users:
            # A reply pings its target by default, and Discord lists the target among the mentions.
            mention_users.append(replied.author_id)
        everyone = ("@everyone" in content or "@here" in content) and bool(
            guild.base_permissions(author_id) & Permission.MENTION_EVERYONE
        )
        message = Message(
            id=mid,
            channel_id=channel_id,
            guild_id=guild.id,
            author_id=author_id,
            content=content,
            timestamp=timestamp,
            type=message_type,
            attachments=files,
            embeds=list(embeds or []),
            components=list(components or []),
            reply_to=reply_to,
            reference_channel_id=reference_channel_id,
            allowed_mentions=allowed_mentions,
            mention_user_ids=mention_users,
            mention_role_ids=[int(r) for r in _ROLE_MENTION.findall(content) if int(r) in guild.roles],
            mention_everyone=everyone,
            flags=flags,
            tts=tts,
            nonce=nonce,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction_id=interaction[0] if interaction else None,
            interaction_user_id=interaction[1] if interaction else None,
            interaction_name=interaction[2] if interaction else None,
            thread_id=thread_id,
        )
        self.world.messages[mid] = message
        channel.last_message_id = mid
        if channel.is_thread:
            channel.message_count += 1
            if author_id not in channel.member_ids and not self.world.user(author_id).bot:
                channel.member_ids.add(author_id)
        if message.is_ephemeral:
            return message, []
        seqs = await self.gateway.dispatch(
            "MESSAGE_CREATE", payloads.message_payload(self.world, message), guild_id=guild.id
        )
        return message, seqs

    async def edit_message(self, message: Message, changes: JSON) -> list[int]:
        """Apply a message edit (content, embeds, components, flags, allowed_mentions) and dispatch MESSAGE_UPDATE."""
        if "content" in changes:
            message.content = changes["content"] or ""
            message.mention_user_ids = [int(u) for u in _USER_MENTION.findall(message.content)]
        if "embeds" in changes:
            message.embeds = list(changes["embeds"] or [])
        if "components" in changes:
            message.components = list(changes["components"] or [])
        if "allowed_mentions" in changes:
            message.allowed_mentions = changes["allowed_mentions"]
        if changes.get("flags") is not None:
            message.flags = (message.flags & MessageFlag.EPHEMERAL) | int(changes["flags"])
        message.flags &= ~int(MessageFlag.LOADING)
        message.edited_at = datetime.now(UTC)
        if message.is_ephemeral:
            return []
        return await self.gateway.dispatch(
            "MESSAGE_UPDATE", payloads.message_payload(self.world, message), guild_id=message.guild_id
        )

    async def delete_message(self, message: Message) -> list[int]:
        message.deleted = True
        if message.is_ephemeral:
            return []
        return await self.gateway.dispatch(
            "MESSAGE_DELETE",
            {"id": str(message.id), "channel_id": str(message.channel_id), "guild_id": str(message.guild_id)},
            guild_id=message.guild_id,
        )

    async def delete_messages(self, channel_id: int, message_ids: list[int]) -> list[int]:
        guild, _channel = self.world.channel(channel_id)
        for mid in message_ids:
            stored = self.world.messages.get(mid)
            if stored is not None:
                stored.deleted = True
        return await self.gateway.dispatch(
            "MESSAGE_DELETE_BULK",
            {"ids": [str(m) for m in message_ids], "channel_id": str(channel_id), "guild_id": str(guild.id)},
            guild_id=guild.id,
        )

    async def react(self, message: Message, user_id: int, emoji: Emoji, *, remove: bool = False) -> list[int]:
        """Add or remove a reaction; re-adding an existing reaction or removing a missing one dispatches nothing."""
        guild = self.world.guild(message.guild_id)
        users = message.reactions.setdefault(emoji.key, set())
        message.reaction_emojis.setdefault(emoji.key, emoji)
        if remove:
            if user_id not in users:
                return []
            users.discard(user_id)
            return await self.gateway.dispatch(
                "MESSAGE_REACTION_REMOVE",
                payloads.reaction_remove_payload(guild, message, user_id, emoji),
                guild_id=guild.id,
            )
        if user_id in users:
            return []
        users.add(user_id)
        return await self.gateway.dispatch(
            "MESSAGE_REACTION_ADD",
            payloads.reaction_add_payload(self.world, guild, message, user_id, emoji),
            guild_id=guild.id,
        )

    # ------------------------------------------------------------------------------------------------ voice

    async def voice_update(
        self,
        guild: Guild,
        user_id: int,
        channel_id: int | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
        mute: bool | None = None,
        deaf: bool | None = None,
        self_video: bool = False,
        self_stream: bool = False,
    ) -> list[int]:
        """Join, move, change state in, or leave (channel None) a voice channel; dispatch VOICE_STATE_UPDATE."""
        member = guild.members.get(user_id)
        if member is None:
            raise LookupError(f"user {user_id} is not a member of guild {guild.id}")
        current = guild.voice_states.get(user_id)
        if channel_id is None:
            if current is None:
                return []
            del guild.voice_states[user_id]
            return await self.gateway.dispatch(
                "VOICE_STATE_UPDATE",
                payloads.voice_state_payload(self.world, guild, current, channel_id=None),
                guild_id=guild.id,
            )
        channel = guild.channels.get(channel_id)
        if channel is None or not channel.type.is_voice:
            raise ValueError(f"{channel_id} is not a voice or stage channel of guild {guild.id}")
        state = current or VoiceState(
            user_id=user_id, channel_id=channel_id, session_id=f"{self.world.rng.getrandbits(128):032x}"
        )
        state.channel_id = channel_id
        state.self_mute = self_mute
        state.self_deaf = self_deaf
        state.mute = member.mute if mute is None else mute
        state.deaf = member.deaf if deaf is None else deaf
        state.self_video = self_video
        state.self_stream = self_stream
        state.suppress = channel.type == ChannelType.STAGE
        guild.voice_states[user_id] = state
        return await self.gateway.dispatch(
            "VOICE_STATE_UPDATE",
            payloads.voice_state_payload(self.world, guild, state, channel_id=channel_id),
            guild_id=guild.id,
        )

    # ------------------------------------------------------------------------------------------------ members

    async def member_join(
        self, guild: Guild, user: User, *, joined_at: datetime | None = None, roles: list[int] | None = None
    ) -> list[int]:
        if user.id not in self.world.users:
            self.world.add_user(user)
        if user.id in guild.members:
            raise ValueError(f"user {user.id} is already a member of guild {guild.id}")
        member = Member(user_id=user.id, roles=list(roles or []), joined_at=joined_at or datetime.now(UTC))
        guild.members[user.id] = member
        payload = payloads.member_payload(self.world, guild, member)
        payload["guild_id"] = str(guild.id)
        return await self.gateway.dispatch("GUILD_MEMBER_ADD", payload, guild_id=guild.id)

    async def member_leave(self, guild: Guild, user_id: int) -> list[int]:
        """Leave (or kick): a member in voice is disconnected first, as Discord does."""
        if user_id not in guild.members:
            raise LookupError(f"user {user_id} is not a member of guild {guild.id}")
        seqs = await self.voice_update(guild, user_id, None)
        del guild.members[user_id]
        seqs += await self.gateway.dispatch(
            "GUILD_MEMBER_REMOVE",
            {"guild_id": str(guild.id), "user": payloads.user_payload(self.world.user(user_id))},
            guild_id=guild.id,
        )
        return seqs

    async def member_update(self, guild: Guild, user_id: int) -> list[int]:
        """Dispatch GUILD_MEMBER_UPDATE with the member's current state (after the caller changed it)."""
        member = guild.members[user_id]
        payload = payloads.member_payload(self.world, guild, member)
        payload["guild_id"] = str(guild.id)
        return await self.gateway.dispatch("GUILD_MEMBER_UPDATE", payload, guild_id=guild.id)

    # ------------------------------------------------------------------------------------------------ channels

    async def channel_create(self, guild: Guild, channel: Channel) -> list[int]:
        guild.channels[channel.id] = channel
        return await self.gateway.dispatch("CHANNEL_CREATE", payloads.channel_payload(channel), guild_id=guild.id)

    async def channel_update(self, guild: Guild, channel: Channel) -> list[int]:
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        return await self.gateway.dispatch(event, payloads.channel_payload(channel), guild_id=guild.id)

    async def channel_delete(self, guild: Guild, channel: Channel) -> list[int]:
        """Delete a channel or thread; deleting a channel also removes its threads (as Discord does, silently)."""
        del guild.channels[channel.id]
        if channel.is_thread:
            return await self.gateway.dispatch(
                "THREAD_DELETE",
                {
                    "id": str(channel.id),
                    "guild_id": str(guild.id),
                    "parent_id": str(channel.parent_id),
                    "type": int(channel.type),
                },
                guild_id=guild.id,
            )
        for thread in [t for t in guild.threads() if t.parent_id == channel.id]:
            del guild.channels[thread.id]
        for state in [s for s in guild.voice_states.values() if s.channel_id == channel.id]:
            del guild.voice_states[state.user_id]
        return await self.gateway.dispatch("CHANNEL_DELETE", payloads.channel_payload(channel), guild_id=guild.id)

    async def thread_create(
        self,
        guild: Guild,
        parent: Channel,
        owner_id: int,
        name: str,
        *,
        private: bool = False,
        from_message: int | None = None,
        content: str | None = None,
        created_at: datetime | None = None,
        auto_archive_duration: int = 1440,
    ) -> tuple[Channel, list[int]]:
        """Create a thread with Discord's side effects.

        - From a message: the thread shares the message's snowflake (so its id encodes the message's time, while
          `create_timestamp` is the creation time), and a THREAD_STARTER_MESSAGE opens the thread.
        - In a forum or media channel: the starter post is a message with the thread's id, dispatched after
          THREAD_CREATE.
        - Otherwise a public thread leaves a THREAD_CREATED system message in the parent channel.
        """
        created = created_at or datetime.now(UTC)
        if parent.type.is_thread_only:
            if from_message is not None or private:
                raise ValueError("forum/media posts are public and not started from a message")
            thread_type = ChannelType.PUBLIC_THREAD
        elif parent.type == ChannelType.ANNOUNCEMENT:
            thread_type = ChannelType.ANNOUNCEMENT_THREAD
        elif parent.type == ChannelType.TEXT:
            thread_type = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        else:
            raise ValueError(f"cannot create a thread in {parent.type.name} channel {parent.id}")
        if from_message is not None:
            starter = self.world.message(from_message)
            if starter.channel_id != parent.id:
                raise ValueError(f"message {from_message} is not in channel {parent.id}")
            thread_id = from_message
        else:
            starter = None
            thread_id = self.world.new_id(created)
        thread = Channel(
            id=thread_id,
            guild_id=guild.id,
            type=thread_type,
            name=name,
            parent_id=parent.id,
            owner_id=owner_id,
            created_at=created,
            auto_archive_duration=auto_archive_duration,
            member_ids={owner_id},
        )
        guild.channels[thread.id] = thread
        seqs = await self.gateway.dispatch(
            "THREAD_CREATE",
            payloads.thread_payload(
                thread,
                newly_created=True,
                bot_member_since=created if owner_id == self.world.bot_user_id else None,
                bot_user_id=self.world.bot_user_id,
            ),
            guild_id=guild.id,
        )
        if parent.type.is_thread_only:
            parent.last_message_id = thread.id
            _msg, more = await self.create_message(
                channel_id=thread.id, author_id=owner_id, content=content or name, message_id=thread.id, at=created
            )
            seqs += more
        elif starter is not None:
            starter.thread_id = thread.id
            starter.flags |= int(MessageFlag.HAS_THREAD)
            _msg, more = await self.create_message(
                channel_id=thread.id,
                author_id=starter.author_id,
                message_type=MessageType.THREAD_STARTER_MESSAGE,
                reply_to=starter.id,
                reference_channel_id=parent.id,
                at=created,
            )
            seqs += more
        elif thread_type == ChannelType.PUBLIC_THREAD:
            _msg, more = await self.create_message(
                channel_id=parent.id,
                author_id=owner_id,
                content=name,
                message_type=MessageType.THREAD_CREATED,
                thread_id=thread.id,
                at=created,
            )
            seqs += more
        if content and not parent.type.is_thread_only:
            _msg, more = await self.create_message(channel_id=thread.id, author_id=owner_id, content=content)
            seqs += more
        return thread, seqs

    # ------------------------------------------------------------------------------------------------ roles

    async def role_create(self, guild: Guild, role: Role) -> list[int]:
        moved = self._make_room(guild, role.position)
        guild.roles[role.id] = role
        seqs = await self.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": payloads.role_payload(role)}, guild_id=guild.id
        )
        for other in moved:
            seqs += await self.role_update(guild, other)
        return seqs

    async def role_update(self, guild: Guild, role: Role) -> list[int]:
        return await self.gateway.dispatch(
            "GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": payloads.role_payload(role)}, guild_id=guild.id
        )

    async def role_delete(self, guild: Guild, role_id: int) -> list[int]:
        del guild.roles[role_id]
        for member in guild.members.values():
            if role_id in member.roles:
                member.roles.remove(role_id)
        return await self.gateway.dispatch(
            "GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role_id)}, guild_id=guild.id
        )

    @staticmethod
    def _make_room(guild: Guild, position: int) -> list[Role]:
        moved = [r for r in guild.roles.values() if r.id != guild.id and r.position >= position]
        guild.insert_role_position(position)
        return moved

    # ------------------------------------------------------------------------------------------------ guilds

    def new_guild_id(self, shard: tuple[int, int] | None) -> int:
        """A fresh guild id, on `(shard_id, shard_count)` if asked (ids are time-based: try the next ms)."""
        base = to_ms(None)
        for offset in range(10_000):
            candidate = self.world.new_id(base + offset)
            if shard is None or shard_for_guild(candidate, shard[1]) == shard[0]:
                return candidate
        raise RuntimeError(f"no guild id found for shard {shard}")

    async def guild_create(
        self,
        name: str,
        owner: User,
        *,
        shard: tuple[int, int] | None = None,
        guild_id: int | None = None,
    ) -> tuple[Guild, list[int]]:
        """A new guild the bot joins now: @everyone, the bot's managed role, `#general`, owner and bot as members."""
        gid = guild_id if guild_id is not None else self.new_guild_id(shard)
        if gid in self.world.guilds:
            raise ValueError(f"guild {gid} exists")
        now = datetime.now(UTC)
        if owner.id not in self.world.users:
            self.world.add_user(owner)
        guild = Guild(id=gid, name=name, owner_id=owner.id, bot_joined_at=now)
        bot_role = Role(
            id=self.world.new_id(),
            name=self.world.bot_user.username,
            position=1,
            permissions=DEFAULT_BOT_PERMISSIONS,
            managed=True,
            bot_id=self.world.bot_user_id,
        )
        guild.roles[gid] = Role(id=gid, name="@everyone", position=0, permissions=DEFAULT_EVERYONE_PERMISSIONS)
        guild.roles[bot_role.id] = bot_role
        general = Channel(id=self.world.new_id(), guild_id=gid, type=ChannelType.TEXT, name="general")
        guild.channels[general.id] = general
        guild.system_channel_id = general.id
        guild.members[owner.id] = Member(user_id=owner.id, roles=[], joined_at=now)
        guild.members[self.world.bot_user_id] = Member(
            user_id=self.world.bot_user_id, roles=[bot_role.id], joined_at=now
        )
        self.world.guilds[gid] = guild
        return guild, await self.gateway.dispatch_guild_create(gid)

    async def guild_update(self, guild: Guild) -> list[int]:
        """GUILD_UPDATE with the guild's current settings (after the caller changed them)."""
        return await self.gateway.dispatch(
            "GUILD_UPDATE", payloads.rest_guild_payload(self.world, guild, with_counts=False), guild_id=guild.id
        )

    async def guild_outage(self, guild: Guild) -> list[int]:
        """A Discord outage: GUILD_DELETE with `unavailable: true` (hikari: GuildUnavailableEvent)."""
        return await self.gateway.dispatch(
            "GUILD_DELETE", {"id": str(guild.id), "unavailable": True}, guild_id=guild.id
        )

    async def guild_recovered(self, guild: Guild) -> list[int]:
        """The guild is back after an outage: a full GUILD_CREATE marked available (hikari: GuildAvailableEvent)."""
        return await self.gateway.dispatch_guild_create(guild.id, available=True)

    async def guild_remove(self, guild: Guild) -> list[int]:
        """The bot is removed from the guild: GUILD_DELETE without `unavailable`."""
        seqs = await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild_id=guild.id)
        del self.world.guilds[guild.id]
        return seqs


def _as_datetime(at: datetime | float | int | None, fallback_id: int) -> datetime:
    if at is None:
        return snowflake_time(fallback_id)
    if isinstance(at, datetime):
        return at.astimezone(UTC)
    return datetime.fromtimestamp(to_ms(at) / 1000, tz=UTC)
