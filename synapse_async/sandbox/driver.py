"""The typed driver tests and benchmarks use to act in the simulated world.

Each method does what a Discord user, admin or outage would do (post, react, join, move in voice, create channels
or threads, run a slash command, drop the connection) and returns the gateway sequence number(s) it dispatched —
as `Seqs`, or as a `DispatchedId` when something new was created (the new id, carrying `.seqs`). Channels and roles
can be named (`"general"`) or given by id; the guild defaults to the sandbox guild.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from synapse_async.sandbox import console
from synapse_async.sandbox.events import WorldEvents
from synapse_async.sandbox.gateway import CloseRecord, GatewayServer, GatewaySession
from synapse_async.sandbox.interactions import JSON, CommandStore, InteractionRecord, InteractionsApi
from synapse_async.sandbox.recording import RestCall, RestRecorder
from synapse_async.sandbox.world import (
    Channel,
    ChannelType,
    Emoji,
    Guild,
    Message,
    Overwrite,
    Role,
    User,
    World,
)

Seqs = tuple[int, ...]


class Unset(enum.Enum):
    """Marks an argument that was not given (None is a meaningful value: "clear it")."""

    UNSET = 0


UNSET = Unset.UNSET
ChannelRef = int | str
RoleRef = int | str


class DispatchedId(int):
    """The id of something the driver created (an `int`), with the gateway sequence numbers it dispatched in `.seqs`.

    Under mypy's strict equality, compare with hikari ids through `int(...)`: both are unrelated `int` subclasses.
    """

    seqs: Seqs

    def __new__(cls, value: int, seqs: Sequence[int] = ()) -> DispatchedId:
        obj = super().__new__(cls, value)
        obj.seqs = tuple(seqs)
        return obj

    @property
    def seq(self) -> int | None:
        """The last sequence number dispatched (None when no session received anything)."""
        return self.seqs[-1] if self.seqs else None


_CHANNEL_TYPES: dict[str, ChannelType] = {
    "text": ChannelType.TEXT,
    "announcement": ChannelType.ANNOUNCEMENT,
    "news": ChannelType.ANNOUNCEMENT,
    "voice": ChannelType.VOICE,
    "stage": ChannelType.STAGE,
    "category": ChannelType.CATEGORY,
    "forum": ChannelType.FORUM,
    "media": ChannelType.MEDIA,
}


class SimulatorDriver:
    """Acts in the world through `WorldEvents` and observes the gateway, REST log and interactions."""

    world: World
    events: WorldEvents
    gateway: GatewayServer
    recorder: RestRecorder
    commands: CommandStore
    interactions: InteractionsApi

    # ------------------------------------------------------------------------------------------------ lookups

    @property
    def default_guild_id(self) -> int:
        return min(self.world.guilds)

    def guild(self, guild: int | None = None) -> Guild:
        return self.world.guild(self.default_guild_id if guild is None else guild)

    def channel_id(self, channel: ChannelRef, guild: int | None = None) -> int:
        """A channel's id from its id or its name (`"general"`, `"#general"`)."""
        if isinstance(channel, int):
            return channel
        name = channel.lstrip("#")
        for found in self.guild(guild).channels.values():
            if found.name == name:
                return found.id
        raise LookupError(f"no channel named {channel!r} in guild {self.guild(guild).id}")

    def channel(self, channel: ChannelRef, guild: int | None = None) -> Channel:
        return self.world.channel(self.channel_id(channel, guild))[1]

    def role_id(self, role: RoleRef, guild: int | None = None) -> int:
        if isinstance(role, int):
            return role
        for found in self.guild(guild).roles.values():
            if found.name == role:
                return found.id
        raise LookupError(f"no role named {role!r} in guild {self.guild(guild).id}")

    def member_ids(self, guild: int | None = None, *, include_bots: bool = False) -> list[int]:
        g = self.guild(guild)
        return sorted(uid for uid in g.members if include_bots or not self.world.user(uid).bot)

    def _guild_of_channel(self, channel: ChannelRef, guild: int | None) -> tuple[Guild, Channel]:
        return self.world.channel(self.channel_id(channel, guild))

    # ------------------------------------------------------------------------------------------------ guilds

    async def create_guild(
        self, name: str = "Guild", *, owner: int | None = None, shard: tuple[int, int] | None = None
    ) -> DispatchedId:
        """A new guild the bot joins (GUILD_CREATE → hikari GuildJoinEvent); `shard=(id, count)` picks its shard."""
        owner_user = self.world.users.get(owner) if owner is not None else None
        if owner_user is None:
            owner_user = User(id=owner or self.world.new_id(), username=f"owner_{name.lower()}")
        guild, seqs = await self.events.guild_create(name, owner_user, shard=shard)
        return DispatchedId(guild.id, seqs)

    async def update_guild(self, guild: int | None = None, **changes: Any) -> Seqs:
        """Change guild settings (name, afk_channel_id, owner_id, system_channel_id, …): GUILD_UPDATE."""
        g = self.guild(guild)
        for key, value in changes.items():
            if key in ("id", "roles", "channels", "members", "voice_states") or not hasattr(g, key):
                raise AttributeError(f"guild attribute {key!r} cannot be changed this way")
            setattr(g, key, value)
        return tuple(await self.events.guild_update(g))

    async def guild_outage(self, guild: int | None = None) -> Seqs:
        """The guild becomes unavailable (Discord outage): GUILD_DELETE with `unavailable: true`."""
        return tuple(await self.events.guild_outage(self.guild(guild)))

    async def guild_recovered(self, guild: int | None = None) -> Seqs:
        """The guild is available again: a full GUILD_CREATE, as after READY."""
        return tuple(await self.events.guild_recovered(self.guild(guild)))

    async def remove_guild(self, guild: int) -> Seqs:
        """The bot is kicked from the guild (GUILD_DELETE)."""
        return tuple(await self.events.guild_remove(self.guild(guild)))

    # ------------------------------------------------------------------------------------------------ channels

    async def create_channel(
        self,
        name: str,
        kind: ChannelType | str = ChannelType.TEXT,
        *,
        guild: int | None = None,
        parent: ChannelRef | None = None,
        topic: str | None = None,
        position: int | None = None,
        overwrites: Sequence[Overwrite] = (),
        nsfw: bool = False,
    ) -> DispatchedId:
        g = self.guild(guild)
        channel_type = _CHANNEL_TYPES[kind] if isinstance(kind, str) else kind
        if channel_type.is_thread:
            raise ValueError("use create_thread for threads")
        channel = Channel(
            id=self.world.new_id(),
            guild_id=g.id,
            type=channel_type,
            name=name,
            position=position if position is not None else len(list(g.top_level_channels())),
            parent_id=self.channel_id(parent, g.id) if parent is not None else None,
            topic=topic,
            overwrites=list(overwrites),
            nsfw=nsfw,
        )
        return DispatchedId(channel.id, await self.events.channel_create(g, channel))

    async def create_category(self, name: str, *, guild: int | None = None) -> DispatchedId:
        return await self.create_channel(name, ChannelType.CATEGORY, guild=guild)

    async def create_forum(
        self, name: str, *, guild: int | None = None, parent: ChannelRef | None = None, media: bool = False
    ) -> DispatchedId:
        kind = ChannelType.MEDIA if media else ChannelType.FORUM
        return await self.create_channel(name, kind, guild=guild, parent=parent)

    async def create_voice(
        self, name: str, *, guild: int | None = None, parent: ChannelRef | None = None, stage: bool = False
    ) -> DispatchedId:
        kind = ChannelType.STAGE if stage else ChannelType.VOICE
        return await self.create_channel(name, kind, guild=guild, parent=parent)

    async def update_channel(self, channel: ChannelRef, *, guild: int | None = None, **changes: Any) -> Seqs:
        """Change channel attributes (name, topic, position, parent_id, overwrites, nsfw, …): CHANNEL_UPDATE."""
        g, found = self._guild_of_channel(channel, guild)
        for key, value in changes.items():
            if not hasattr(found, key):
                raise AttributeError(f"channels have no attribute {key!r}")
            setattr(found, key, value)
        return tuple(await self.events.channel_update(g, found))

    async def delete_channel(self, channel: ChannelRef, *, guild: int | None = None) -> Seqs:
        g, found = self._guild_of_channel(channel, guild)
        return tuple(await self.events.channel_delete(g, found))

    async def create_thread(
        self,
        parent: ChannelRef,
        owner: int,
        name: str = "thread",
        *,
        guild: int | None = None,
        private: bool = False,
        from_message: int | None = None,
        content: str | None = None,
        created_at: datetime | None = None,
    ) -> DispatchedId:
        """A thread in a text/announcement channel (optionally from a message) or a post in a forum/media channel."""
        g, parent_channel = self._guild_of_channel(parent, guild)
        thread, seqs = await self.events.thread_create(
            g,
            parent_channel,
            owner,
            name,
            private=private,
            from_message=from_message,
            content=content,
            created_at=created_at,
        )
        return DispatchedId(thread.id, seqs)

    # ------------------------------------------------------------------------------------------------ roles

    async def create_role(
        self,
        name: str,
        *,
        guild: int | None = None,
        permissions: int = 0,
        position: int | None = None,
        managed: bool = False,
        color: int = 0,
    ) -> DispatchedId:
        """A role at `position` (default 1, just above @everyone, as Discord creates roles); others move up."""
        g = self.guild(guild)
        role = Role(
            id=self.world.new_id(),
            name=name,
            position=1 if position is None else position,
            permissions=permissions,
            managed=managed,
            color=color,
        )
        return DispatchedId(role.id, await self.events.role_create(g, role))

    async def update_role(self, role: RoleRef, *, guild: int | None = None, **changes: Any) -> Seqs:
        """Change a role (name, permissions, position, managed, color, hoist…): GUILD_ROLE_UPDATE."""
        g = self.guild(guild)
        found = g.roles[self.role_id(role, g.id)]
        for key, value in changes.items():
            if not hasattr(found, key):
                raise AttributeError(f"roles have no attribute {key!r}")
            setattr(found, key, value)
        return tuple(await self.events.role_update(g, found))

    async def delete_role(self, role: RoleRef, *, guild: int | None = None) -> Seqs:
        g = self.guild(guild)
        return tuple(await self.events.role_delete(g, self.role_id(role, g.id)))

    # ------------------------------------------------------------------------------------------------ members

    async def join(
        self,
        user: int | None = None,
        *,
        username: str | None = None,
        global_name: str | None = None,
        bot: bool = False,
        guild: int | None = None,
        joined_at: datetime | None = None,
    ) -> DispatchedId:
        """A user joins (GUILD_MEMBER_ADD). Unknown or omitted ids create a new user; rejoining keeps the user."""
        g = self.guild(guild)
        existing = self.world.users.get(user) if user is not None else None
        if existing is None:
            uid = user if user is not None else self.world.new_id()
            existing = User(id=uid, username=username or f"user_{uid}", global_name=global_name, bot=bot)
        return DispatchedId(existing.id, await self.events.member_join(g, existing, joined_at=joined_at))

    async def leave(self, user: int, *, guild: int | None = None) -> Seqs:
        """The member leaves (voice disconnect first if connected, then GUILD_MEMBER_REMOVE)."""
        return tuple(await self.events.member_leave(self.guild(guild), user))

    async def update_member(
        self,
        user: int,
        *,
        guild: int | None = None,
        nick: str | Unset | None = UNSET,
        roles: Sequence[RoleRef] | None = None,
        avatar: str | Unset | None = UNSET,
        global_name: str | Unset | None = UNSET,
        username: str | None = None,
    ) -> Seqs:
        """Change a member (nick, guild avatar, roles) or their user (global name, username): GUILD_MEMBER_UPDATE.

        Arguments left out are unchanged; pass None to clear a nick, avatar or global name.
        """
        g = self.guild(guild)
        member = g.members[user]
        account = self.world.user(user)
        if not isinstance(nick, Unset):
            member.nick = nick
        if not isinstance(avatar, Unset):
            member.avatar = avatar
        if roles is not None:
            member.roles = [self.role_id(r, g.id) for r in roles]
        if not isinstance(global_name, Unset):
            account.global_name = global_name
        if username is not None:
            account.username = username
        return tuple(await self.events.member_update(g, user))

    # ------------------------------------------------------------------------------------------------ activity

    async def message(
        self,
        user: int,
        channel: ChannelRef = "general",
        content: str = "",
        *,
        attachments: int = 0,
        reply_to: int | None = None,
        embeds: list[dict[str, Any]] | None = None,
        at: datetime | float | int | None = None,
        guild: int | None = None,
    ) -> DispatchedId:
        """`user` posts a message (MESSAGE_CREATE); `at` backdates it (the snowflake encodes that time)."""
        channel_id = self.channel_id(channel, guild)
        message, seqs = await self.events.create_message(
            channel_id=channel_id,
            author_id=user,
            content=content,
            attachments=attachments,
            reply_to=reply_to,
            embeds=embeds,
            at=at,
        )
        return DispatchedId(message.id, seqs)

    async def react(self, user: int, message: int, emoji: str | Emoji, *, remove: bool = False) -> Seqs:
        """Add (or remove) a reaction: MESSAGE_REACTION_ADD / _REMOVE. Unicode, `<:name:id>` or `name:id`."""
        parsed = emoji if isinstance(emoji, Emoji) else Emoji.parse(emoji)
        return tuple(await self.events.react(self.world.message(message), user, parsed, remove=remove))

    async def edit_message(self, message: int, content: str) -> Seqs:
        return tuple(await self.events.edit_message(self.world.message(message), {"content": content}))

    async def delete_message(self, message: int) -> Seqs:
        return tuple(await self.events.delete_message(self.world.message(message)))

    async def delete_messages(self, channel: ChannelRef, messages: Sequence[int], *, guild: int | None = None) -> Seqs:
        """A bulk delete (MESSAGE_DELETE_BULK)."""
        return tuple(await self.events.delete_messages(self.channel_id(channel, guild), list(messages)))

    async def voice(
        self,
        user: int,
        channel: ChannelRef | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
        mute: bool | None = None,
        deaf: bool | None = None,
        guild: int | None = None,
    ) -> Seqs:
        """Join/move to `channel`, change mute/deaf state, or leave with `channel=None`: VOICE_STATE_UPDATE."""
        g = self.guild(guild)
        channel_id = self.channel_id(channel, g.id) if channel is not None else None
        return tuple(
            await self.events.voice_update(
                g, user, channel_id, self_mute=self_mute, self_deaf=self_deaf, mute=mute, deaf=deaf
            )
        )

    # ------------------------------------------------------------------------------------------------ commands

    async def start_interaction(
        self,
        command: str,
        *,
        user: int,
        options: Mapping[str, Any] | None = None,
        channel: ChannelRef = "general",
        guild: int | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
        focused: str | None = None,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for a registered chat-input command without waiting for the answer."""
        g = self.guild(guild)
        return await self.interactions.dispatch_command(
            command,
            guild=g,
            channel_id=self.channel_id(channel, g.id),
            user_id=user,
            options=dict(options or {}),
            locale=locale,
            timeout=timeout,
            focused=focused,
        )

    async def autocomplete(
        self,
        command: str,
        *,
        user: int,
        focused: str,
        options: Mapping[str, Any],
        channel: ChannelRef = "general",
        guild: int | None = None,
        timeout: float = 5.0,
    ) -> list[JSON]:
        """Type `options[focused]` into option `focused` of `command` and return the choices the bot suggests."""
        interaction = await self.start_interaction(
            command, user=user, options=options, channel=channel, guild=guild, timeout=timeout, focused=focused
        )
        answered = await self.interactions.wait_until(interaction, lambda r: r.choices is not None, timeout)
        return list(answered.choices or [])

    async def invoke(
        self,
        command: str,
        *,
        user: int,
        options: Mapping[str, Any] | None = None,
        channel: ChannelRef = "general",
        guild: int | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
        followups: int = 0,
        until: Callable[[InteractionRecord], bool] | None = None,
    ) -> InteractionRecord:
        """Run slash command `command` ("profile", "admin award") as `user` and return the bot's answer.

        Waits (up to `timeout`) for the command to be registered, then for a final answer: a message response, or
        a deferral followed by an edit or a follow-up; plus `followups` follow-up messages, or until `until` holds.
        """
        interaction = await self.start_interaction(
            command, user=user, options=options, channel=channel, guild=guild, locale=locale, timeout=timeout
        )

        def done(record: InteractionRecord) -> bool:
            if until is not None:
                return until(record)
            return record.complete and len(record.followups) >= followups

        return await self.interactions.wait_until(interaction, done, timeout)

    # ------------------------------------------------------------------------------------------------ faults

    async def drop_connection(self, shard: int | None = None, *, mode: Literal["abort", "close"] = "abort") -> int:
        """Cut the gateway connection(s) abnormally; the client resumes and gets what it missed."""
        return await self.gateway.drop_connection(shard, mode=mode)

    async def replay_last(self, n: int = 1, *, shard: int | None = None) -> Seqs:
        """Deliver the last `n` dispatches again with new sequence numbers (duplicate delivery)."""
        return tuple(await self.gateway.replay_last(n, shard))

    async def request_reconnect(self, shard: int | None = None) -> int:
        return await self.gateway.request_reconnect(shard)

    async def invalidate_sessions(self, shard: int | None = None) -> int:
        return await self.gateway.invalidate_sessions(shard)

    # ------------------------------------------------------------------------------------------------ observing

    @property
    def rest_calls(self) -> list[RestCall]:
        return self.recorder.calls

    async def wait_for_rest(
        self, predicate: Callable[[RestCall], bool], timeout: float = 5.0, *, since: int = 0
    ) -> RestCall:
        """The first REST call (from index `since`) matching `predicate`, waiting up to `timeout` seconds."""
        return await self.recorder.wait_for(predicate, timeout, since=since)

    async def wait_for_ready(self, count: int = 1, timeout: float = 10.0) -> list[GatewaySession]:
        """Wait until `count` gateway sessions received READY and their guilds."""
        return await self.gateway.wait_for_ready(count, timeout)

    @property
    def close_codes(self) -> list[CloseRecord]:
        return self.gateway.close_codes

    def state(self) -> dict[str, Any]:
        """A JSON-ready summary of the world and the gateway (snowflakes as strings), e.g. for `GET /sandbox/state`."""
        guilds = []
        for guild in sorted(self.world.guilds.values(), key=lambda g: g.id):
            guilds.append(
                {
                    "id": str(guild.id),
                    "name": guild.name,
                    "owner_id": str(guild.owner_id),
                    "afk_channel_id": None if guild.afk_channel_id is None else str(guild.afk_channel_id),
                    "channels": [
                        {
                            "id": str(c.id),
                            "name": c.name,
                            "type": c.type.name.lower(),
                            "parent_id": None if c.parent_id is None else str(c.parent_id),
                        }
                        for c in sorted(guild.channels.values(), key=lambda c: (c.position, c.id))
                    ],
                    "roles": [
                        {"id": str(r.id), "name": r.name, "position": r.position, "managed": r.managed}
                        for r in guild.sorted_roles()
                    ],
                    "members": [
                        {
                            "user_id": str(m.user_id),
                            "username": self.world.user(m.user_id).username,
                            "display_name": m.nick or self.world.user(m.user_id).display_name,
                            "bot": self.world.user(m.user_id).bot,
                            "roles": [str(r) for r in m.roles],
                        }
                        for m in sorted(guild.members.values(), key=lambda m: m.user_id)
                    ],
                    "voice": [
                        {
                            "user_id": str(v.user_id),
                            "channel_id": str(v.channel_id),
                            "self_mute": v.self_mute,
                            "self_deaf": v.self_deaf,
                        }
                        for v in guild.voice_states.values()
                    ],
                }
            )
        return {
            "bot_user_id": str(self.world.bot_user_id),
            "guilds": guilds,
            "messages": len(self.world.messages),
            "sessions": [
                {
                    "session_id": s.session_id,
                    "shard": list(s.shard),
                    "seq": s.seq,
                    "connected": s.connection is not None,
                    "resumes": s.resumes,
                }
                for s in self.gateway.sessions.values()
            ],
            "rest_calls": len(self.recorder.calls),
            "bot_messages": self.bot_messages(),
            "commands": console.command_catalogue(self.commands, self.default_guild_id),
            "recent_messages": console.recent_messages(self.world, self.default_guild_id),
        }

    def bot_messages(self, limit: int = 100) -> list[dict[str, Any]]:
        """Everything the bot said, newest last: command responses and follow-ups (ephemeral ones marked with the
        one member who sees them) and messages it posted itself (announcements), for people driving the sandbox."""
        bot = self.world.bot_user_id
        shown: list[tuple[int, dict[str, Any]]] = []
        from_interactions: set[int] = set()
        for record in self.interactions.interactions.values():
            answers = [("response", record.original)] if record.original is not None else []
            answers += [("followup", m) for m in record.followups]
            for kind, message in answers:
                from_interactions.add(message.id)
                if kind == "response" and (record.original_deleted or record.loading):
                    continue
                shown.append((message.id, _said(message, kind, record.command_name, record.user_id)))
        for message in self.world.messages.values():
            if message.author_id == bot and message.id not in from_interactions:
                shown.append((message.id, _said(message, "message", None, None)))
        shown.sort(key=lambda item: item[0])
        return [item for _, item in shown[-limit:]]


def _said(message: Message, kind: str, command: str | None, user_id: int | None) -> dict[str, Any]:
    ephemeral = message.is_ephemeral
    return {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "kind": kind,
        "command": command,
        "invoked_by": None if user_id is None else str(user_id),
        "ephemeral": ephemeral,
        "visible_to": str(user_id) if ephemeral and user_id is not None else None,
        "content": message.content,
        "embeds": list(message.embeds),
        "timestamp": message.timestamp.isoformat(),
    }
