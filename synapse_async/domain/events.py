"""Normalized, immutable domain events (SPEC §7.1–§7.5): what the pipeline consumes instead of hikari objects.

The normalizer turns each gateway event into at most one of these right away. They carry ids, derived metadata
and the event time, never message text (P5), and each knows its type-prefixed idempotency keys, so a duplicate
delivery produces byte-identical keys however often it arrives. `received_ns` (monotonic) exists only to measure
receive→commit latency; it is not part of equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from synapse_async.domain.metadata import MessageMetadata
from synapse_async.domain.snowflakes import to_ms

VoiceChange = Literal["join", "leave", "move", "state"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    guild_id: int
    occurred_at: datetime
    received_ns: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRef:
    """The acting member as seen on the gateway (names are refreshed on every event; never logged raw)."""

    user_id: int
    display_name: str
    avatar_hash: str | None
    role_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageCreated(DomainEvent):
    channel_id: int  # the message's channel, or the thread it is in
    parent_id: int | None  # the thread's parent channel when `channel_id` is a thread
    message_id: int
    author: MemberRef
    meta: MessageMetadata

    @property
    def lake_key(self) -> str:
        return f"msg:{self.message_id}"

    @property
    def reward_key(self) -> str:
        return f"msg:{self.message_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDeleted(DomainEvent):
    channel_id: int
    message_id: int
    author_id: int | None
    bulk: bool
    author_pending: bool = False  # the lane resolves the author (lake) before processing (SPEC §7.4, bot/authors.py)

    @property
    def lake_key(self) -> str:
        return f"mdel:{self.message_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionAdded(DomainEvent):
    channel_id: int
    parent_id: int | None
    message_id: int
    reactor: MemberRef
    author_id: int | None  # None: unknown after §7.4 resolution
    author_is_bot: bool
    emoji_key: str  # `u…` or `c…` (§7.5)
    emoji_custom: bool
    author_pending: bool = False  # the lane resolves the author (lake, then REST) before processing

    @property
    def lake_key(self) -> str:
        return f"radd:{self.message_id}:{self.reactor.user_id}:{self.emoji_key}"

    @property
    def given_key(self) -> str:
        return f"rg:{self.message_id}:{self.reactor.user_id}"

    @property
    def received_key(self) -> str:
        return f"rr:{self.message_id}:{self.reactor.user_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionRemoved(DomainEvent):
    channel_id: int
    message_id: int
    user_id: int
    author_id: int | None
    emoji_key: str
    emoji_custom: bool
    author_pending: bool = False  # the lane resolves the author (lake) before processing

    @property
    def lake_key(self) -> str:
        return f"rrem:{self.message_id}:{self.user_id}:{self.emoji_key}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadCreated(DomainEvent):
    thread_id: int
    parent_id: int
    owner: MemberRef
    is_private: bool
    title_length: int

    @property
    def lake_key(self) -> str:
        return f"thr:{self.thread_id}"

    @property
    def reward_key(self) -> str:
        return f"thr:{self.thread_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceStateChanged(DomainEvent):
    user_id: int
    change: VoiceChange
    before_channel_id: int | None
    after_channel_id: int | None
    self_mute: bool
    self_deaf: bool
    server_mute: bool
    server_deaf: bool
    seconds_in_previous: int | None = None  # leave/move: time spent in the channel left (tracker)
    members_in_channel: int = 0  # join: members in the channel joined, this one included

    @property
    def lake_key(self) -> str:
        ms = to_ms(self.occurred_at)
        if self.change == "join":
            return f"vj:{self.user_id}:{self.after_channel_id}:{ms}"
        if self.change == "leave":
            return f"vl:{self.user_id}:{self.before_channel_id}:{ms}"
        if self.change == "move":
            return f"vm:{self.user_id}:{self.after_channel_id}:{ms}"
        raise TypeError("a voice state change within one channel is tracked, not recorded")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined(DomainEvent):
    member: MemberRef
    joined_at: datetime | None
    account_created_at: datetime

    @property
    def lake_key(self) -> str:
        return f"mj:{self.member.user_id}:{to_ms(self.joined_at) if self.joined_at else 0}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft(DomainEvent):
    user_id: int
    joined_at: datetime | None

    @property
    def lake_key(self) -> str:
        return f"ml:{self.user_id}:{to_ms(self.joined_at) if self.joined_at else 0}"


GatewayDomainEvent = (
    MessageCreated
    | MessageDeleted
    | ReactionAdded
    | ReactionRemoved
    | ThreadCreated
    | VoiceStateChanged
    | MemberJoined
    | MemberLeft
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceTick(DomainEvent):
    """One member's voice tick for a slot (SPEC §7.3); `occurred_at` is the slot start."""

    member: MemberRef
    channel_id: int
    minutes: int  # only eligible members get a tick at all (SPEC §7.3); every emitted tick adds these minutes

    @property
    def reward_key(self) -> str:
        return f"vt:{self.member.user_id}:{int(self.occurred_at.timestamp())}"


PipelineEvent = GatewayDomainEvent | VoiceTick
