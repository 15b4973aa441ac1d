"""hikari events → immutable domain events (SPEC §7.1–§7.5). The text of a message never leaves this module.

This is the adapter between the Discord library and the product. It applies the gates (DMs, bots, webhooks,
system messages, left guilds, threads merely gained access to), stamps the event time once (snowflake time,
thread creation time, `joined_at`, or gateway receipt), derives message metadata and drops the text, resolves
reaction and delete authors from memory (LRU, then hikari's cache; the lake and REST steps run in the lane, see
`bot/authors.py`, so no listener awaits I/O and no event overtakes another), classifies voice updates against the
tracker, and hands each result to the pipeline's `EventSink`. Nothing here touches the database; guild and
channel synchronisation lives in `services/guild_sync.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, cast

import hikari

from synapse_async.bot.authors import AuthorIndex
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.domain.events import (
    GatewayDomainEvent,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageCreated,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ThreadCreated,
    VoiceStateChanged,
)
from synapse_async.domain.metadata import derive_metadata, emoji_key
from synapse_async.domain.snowflakes import snowflake_time
from synapse_async.domain.voice import VoiceTracker
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

# Only default and reply messages count (SPEC §7.1); every other type is a system message.
_COUNTED_MESSAGE_TYPES = frozenset({hikari.MessageType.DEFAULT, hikari.MessageType.REPLY})


def _count(ids: object) -> int | None:
    """Length of a gateway id list, or None where hikari left it UNDEFINED (then the text is counted instead)."""
    return len(cast(Sequence[int], ids)) if ids is not hikari.UNDEFINED else None


class EventSink(Protocol):
    """Where normalized events go: the pipeline (SPEC §8). `submit` never blocks; order of calls is preserved."""

    def submit(self, event: GatewayDomainEvent) -> None: ...


class Normalizer:
    """Stateful only in the bounded author index and the voice tracker."""

    def __init__(
        self,
        sink: EventSink,
        cache: ConfigCache,
        *,
        authors: AuthorIndex,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._config = cache
        self.authors = authors
        self._clock = clock
        self.voice = VoiceTracker()
        self._app: hikari.GatewayBot | None = None
        self.gated = 0
        self.emitted = 0

    # --- helpers -----------------------------------------------------------------------------------------------
    def bind(self, app: hikari.GatewayBot) -> None:
        """Give the normalizer the client whose caches and REST it reads (set once by the gateway adapter)."""
        self._app = app
        self.authors.bind(app.rest.fetch_message)

    @property
    def app(self) -> hikari.GatewayBot:
        if self._app is None:
            raise RuntimeError("Normalizer.bind() must be called before events are dispatched")
        return self._app

    def now(self) -> datetime:
        """Gateway receipt time (the injected clock, so tests can pin it)."""
        return self._clock()

    def _guild_ignored(self, guild_id: int) -> bool:
        info = self._config.guild(guild_id).info
        return info is not None and info.left

    def _emit(self, event: GatewayDomainEvent) -> None:
        self.emitted += 1
        self._sink.submit(event)

    def _gate(self) -> None:
        self.gated += 1

    @staticmethod
    def _member_ref(user: hikari.User, member: hikari.Member | None) -> MemberRef:
        if member is not None:
            return MemberRef(
                user_id=int(user.id),
                display_name=member.display_name,
                avatar_hash=member.guild_avatar_hash or user.avatar_hash,
                role_ids=tuple(int(r) for r in member.role_ids),
            )
        name = user.global_name or user.username
        return MemberRef(user_id=int(user.id), display_name=name, avatar_hash=user.avatar_hash)

    def _parent_of(self, guild_id: int, channel_id: int) -> int | None:
        """The parent channel when `channel_id` is a thread (threads are never stored, SPEC §6.1)."""
        if channel_id in self._config.guild(guild_id).channels:
            return None
        thread = self.app.cache.get_thread(channel_id)
        return int(thread.parent_id) if thread is not None else None

    # --- message create / delete -------------------------------------------------------------------------------
    def on_message_create(self, event: hikari.GuildMessageCreateEvent) -> None:
        received = time.monotonic_ns()
        message = event.message
        # Every message in a served guild feeds the author index, bot messages included (SPEC §7.4).
        self.authors.remember(int(message.id), int(message.author.id), message.author.is_bot, int(message.channel_id))
        if (
            message.webhook_id is not None
            or message.author.is_bot
            or message.author.is_system
            or message.type not in _COUNTED_MESSAGE_TYPES
            or self._guild_ignored(int(event.guild_id))
        ):
            self._gate()
            return
        reply_to: int | None = None
        ref = message.referenced_message
        if isinstance(ref, hikari.PartialMessage) and isinstance(ref.author, hikari.User):
            reply_to = int(ref.author.id)
        meta = derive_metadata(
            message.content,
            attachment_count=len(message.attachments),
            user_mentions=_count(message.user_mentions_ids),
            role_mentions=_count(message.role_mention_ids),
            is_reply=message.type == hikari.MessageType.REPLY,
            reply_to_user_id=reply_to,
        )
        guild_id, channel_id = int(event.guild_id), int(message.channel_id)
        self._emit(
            MessageCreated(
                guild_id=guild_id,
                occurred_at=snowflake_time(int(message.id)),
                received_ns=received,
                channel_id=channel_id,
                parent_id=self._parent_of(guild_id, channel_id),
                message_id=int(message.id),
                author=self._member_ref(message.author, event.member),
                meta=meta,
            )
        )

    def on_message_delete(self, event: hikari.GuildMessageDeleteEvent) -> None:
        if self._guild_ignored(int(event.guild_id)):
            self._gate()
            return
        now = self._clock()
        author = self._known_author(int(event.message_id), event.old_message)
        self._emit(
            MessageDeleted(
                guild_id=int(event.guild_id),
                occurred_at=now,
                received_ns=time.monotonic_ns(),
                channel_id=int(event.channel_id),
                message_id=int(event.message_id),
                author_id=author[0] if author else None,
                bulk=False,
                author_pending=author is None,
            )
        )

    def on_bulk_delete(self, event: hikari.GuildBulkMessageDeleteEvent) -> None:
        if self._guild_ignored(int(event.guild_id)):
            self._gate()
            return
        now = self._clock()
        for message_id in sorted(int(m) for m in event.message_ids):
            old = event.old_messages.get(hikari.Snowflake(message_id))
            author = self._known_author(message_id, old)
            self._emit(
                MessageDeleted(
                    guild_id=int(event.guild_id),
                    occurred_at=now,
                    received_ns=time.monotonic_ns(),
                    channel_id=int(event.channel_id),
                    message_id=message_id,
                    author_id=author[0] if author else None,
                    bulk=True,
                    author_pending=author is None,
                )
            )

    def _known_author(self, message_id: int, cached: hikari.Message | None) -> tuple[int, bool] | None:
        """Author resolution steps 1–2 of SPEC §7.4, in memory; None leaves steps 3–4 to the lane."""
        known = self.authors.known(message_id)
        if known is not None:
            return known
        if cached is not None:
            return int(cached.author.id), cached.author.is_bot
        return None

    # --- reactions ---------------------------------------------------------------------------------------------
    @staticmethod
    def _emoji(event: hikari.GuildReactionAddEvent | hikari.GuildReactionDeleteEvent) -> tuple[str, bool]:
        if event.emoji_id is not None:
            return emoji_key(int(event.emoji_id)), True
        return emoji_key(str(event.emoji_name or "")), False

    def on_reaction_add(self, event: hikari.GuildReactionAddEvent) -> None:
        received = time.monotonic_ns()
        now = self._clock()
        guild_id = int(event.guild_id)
        member = event.member
        if member.user.is_bot or self._guild_ignored(guild_id):
            self._gate()
            return
        key, custom = self._emoji(event)
        author = self._known_author(int(event.message_id), self.app.cache.get_message(event.message_id))
        channel_id = int(event.channel_id)
        self._emit(
            ReactionAdded(
                guild_id=guild_id,
                occurred_at=now,
                received_ns=received,
                channel_id=channel_id,
                parent_id=self._parent_of(guild_id, channel_id),
                message_id=int(event.message_id),
                reactor=self._member_ref(member.user, member),
                author_id=author[0] if author else None,
                author_is_bot=author[1] if author else False,
                emoji_key=key,
                emoji_custom=custom,
                author_pending=author is None,
            )
        )

    def on_reaction_remove(self, event: hikari.GuildReactionDeleteEvent) -> None:
        now = self._clock()
        guild_id = int(event.guild_id)
        user = self.app.cache.get_user(event.user_id)
        if (user is not None and user.is_bot) or self._guild_ignored(guild_id):
            self._gate()
            return
        key, custom = self._emoji(event)
        author = self._known_author(int(event.message_id), None)
        self._emit(
            ReactionRemoved(
                guild_id=guild_id,
                occurred_at=now,
                received_ns=time.monotonic_ns(),
                channel_id=int(event.channel_id),
                message_id=int(event.message_id),
                user_id=int(event.user_id),
                author_id=author[0] if author else None,
                emoji_key=key,
                emoji_custom=custom,
                author_pending=author is None,
            )
        )

    # --- threads -----------------------------------------------------------------------------------------------
    def on_thread_create(self, event: hikari.GuildThreadCreateEvent) -> None:
        """Only newly created threads arrive here; hikari reports gained access as GuildThreadAccessEvent."""
        received = time.monotonic_ns()
        thread = event.thread
        guild_id = int(event.guild_id)
        owner_id = int(thread.owner_id)
        member = self.app.cache.get_member(guild_id, owner_id)
        user = member.user if member is not None else self.app.cache.get_user(owner_id)
        if (user is not None and user.is_bot) or self._guild_ignored(guild_id):
            self._gate()
            return
        created = thread.thread_created_at or self._clock()
        owner = (
            self._member_ref(user, member)
            if user is not None
            else MemberRef(user_id=owner_id, display_name=str(owner_id), avatar_hash=None)
        )
        self._emit(
            ThreadCreated(
                guild_id=guild_id,
                occurred_at=created,
                received_ns=received,
                thread_id=int(thread.id),
                parent_id=int(thread.parent_id),
                owner=owner,
                is_private=thread.type == hikari.ChannelType.GUILD_PRIVATE_THREAD,
                title_length=len((thread.name or "").strip()),
            )
        )

    # --- voice -------------------------------------------------------------------------------------------------
    def on_voice_state(self, event: hikari.VoiceStateUpdateEvent) -> None:
        state = event.state
        guild_id = int(state.guild_id)
        if (state.member is not None and state.member.is_bot) or self._guild_ignored(guild_id):
            self._gate()
            return
        now = self._clock()
        channel = int(state.channel_id) if state.channel_id is not None else None
        change = self.voice.update(
            guild_id,
            int(state.user_id),
            channel,
            now,
            muted=state.is_self_muted or state.is_guild_muted,
            deafened=state.is_self_deafened or state.is_guild_deafened,
        )
        if change is None:
            return
        kind, previous = change
        self._emit(
            VoiceStateChanged(
                guild_id=guild_id,
                occurred_at=now,
                received_ns=time.monotonic_ns(),
                user_id=int(state.user_id),
                change=kind,
                before_channel_id=previous.channel_id if previous is not None else None,
                after_channel_id=channel,
                # Seconds in the channel just left: unknown (None) when the tracker was rebuilt meanwhile.
                seconds_in_previous=int((now - previous.since).total_seconds()) if previous is not None else None,
                members_in_channel=self.voice.count_in(guild_id, channel) if channel is not None else 0,
                self_mute=state.is_self_muted,
                self_deaf=state.is_self_deafened,
                server_mute=state.is_guild_muted,
                server_deaf=state.is_guild_deafened,
            )
        )

    # --- members -----------------------------------------------------------------------------------------------
    def on_member_create(self, event: hikari.MemberCreateEvent) -> None:
        member = event.member
        if member.is_bot or self._guild_ignored(int(event.guild_id)):
            self._gate()
            return
        self._emit(
            MemberJoined(
                guild_id=int(event.guild_id),
                occurred_at=member.joined_at or self._clock(),
                received_ns=time.monotonic_ns(),
                member=self._member_ref(member.user, member),
                joined_at=member.joined_at,
                account_created_at=member.created_at,
            )
        )

    def on_member_delete(self, event: hikari.MemberDeleteEvent) -> None:
        if event.user.is_bot or self._guild_ignored(int(event.guild_id)):
            self._gate()
            return
        old = event.old_member
        self._emit(
            MemberLeft(
                guild_id=int(event.guild_id),
                occurred_at=self._clock(),
                received_ns=time.monotonic_ns(),
                user_id=int(event.user.id),
                joined_at=old.joined_at if old is not None else None,
            )
        )
