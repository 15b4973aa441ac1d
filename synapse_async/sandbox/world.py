"""Pure data model of the simulated Discord world.

Nothing in here knows about HTTP, websockets or JSON: the gateway and REST layers read and mutate these objects
and render them through `payloads.py`. Keeping the world separate means tests and the driver can inspect and build
state directly, and the wire formats stay in one place.
"""

from __future__ import annotations

import enum
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
"""Milliseconds between the Unix epoch and Discord's epoch (2015-01-01T00:00:00Z)."""

SANDBOX_GUILD_ID = 100000000000000001
SANDBOX_OWNER_ID = 100000000000000010
SANDBOX_BOT_ID = 100000000000000002
"""The simulated bot user; also the application id, as it is for every modern Discord application."""
SANDBOX_FIRST_MEMBER_ID = 100000000000001000

# Fixed ids of the deterministic world (§3.5). They are ordinary snowflakes, so their encoded times lie in 2015.
ROLE_ADMIN_ID = 100000000000000100
ROLE_MEMBER_ID = 100000000000000101
ROLE_BOT_ID = 100000000000000102
CHANNEL_COMMUNITY_ID = 100000000000000200
CHANNEL_GENERAL_ID = 100000000000000201
CHANNEL_HELP_ID = 100000000000000202
CHANNEL_SHOWCASE_ID = 100000000000000203
CHANNEL_LOUNGE_ID = 100000000000000204
CHANNEL_AFK_ID = 100000000000000205

WORLD_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
"""Reference instant for seeded timestamps, so the same seed builds the same world on any day."""


class Permission(enum.IntFlag):
    """Discord permission bits (the subset the simulator reasons about, plus everything for Administrator)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VOICE_ACTIVITY = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    START_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50
    PIN_MESSAGES = 1 << 51
    BYPASS_SLOWMODE = 1 << 52


ALL_PERMISSIONS = int(Permission(sum(p.value for p in Permission)))
"""What Discord reports for an Administrator (or the owner): every defined bit."""

DEFAULT_EVERYONE_PERMISSIONS = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.STREAM
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.USE_VOICE_ACTIVITY
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
)
"""The @everyone permissions of a freshly created Discord guild."""

DEFAULT_BOT_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.MANAGE_ROLES
    | Permission.USE_APPLICATION_COMMANDS
)
"""What the bot's managed role grants: enough for the app, including Manage Roles for level rewards (§13)."""


class ChannelType(enum.IntEnum):
    """Discord channel type numbers."""

    TEXT = 0
    VOICE = 2
    CATEGORY = 4
    ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    STAGE = 13
    FORUM = 15
    MEDIA = 16

    @property
    def is_thread(self) -> bool:
        return self in (ChannelType.ANNOUNCEMENT_THREAD, ChannelType.PUBLIC_THREAD, ChannelType.PRIVATE_THREAD)

    @property
    def is_voice(self) -> bool:
        return self in (ChannelType.VOICE, ChannelType.STAGE)

    @property
    def is_thread_only(self) -> bool:
        """Forum and media channels hold only threads; their posts' starter message shares the thread's id."""
        return self in (ChannelType.FORUM, ChannelType.MEDIA)


class MessageType(enum.IntEnum):
    """Discord message type numbers the simulator produces."""

    DEFAULT = 0
    THREAD_CREATED = 18
    REPLY = 19
    CHAT_INPUT_COMMAND = 20
    THREAD_STARTER_MESSAGE = 21


class MessageFlag(enum.IntFlag):
    """Discord message flags the simulator produces."""

    NONE = 0
    HAS_THREAD = 1 << 5
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7


# --------------------------------------------------------------------------------------------------------------
# Snowflakes
# --------------------------------------------------------------------------------------------------------------


def to_ms(at: datetime | float | int | None) -> int:
    """Unix milliseconds of `at` (a datetime, Unix seconds as float, or ms as int); now if None."""
    if at is None:
        return time.time_ns() // 1_000_000
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return int(at.timestamp() * 1000)
    if isinstance(at, float):
        return int(at * 1000)
    return at


def snowflake_time(snowflake: int) -> datetime:
    """The instant encoded in a snowflake."""
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def snowflake_for(at: datetime | float | int | None, low_bits: int = 0) -> int:
    """A snowflake encoding `at` with the given worker/process/increment bits."""
    ms = to_ms(at)
    if ms < DISCORD_EPOCH_MS:
        raise ValueError("a snowflake cannot encode a time before the Discord epoch (2015-01-01)")
    return ((ms - DISCORD_EPOCH_MS) << 22) | (low_bits & 0x3FFFFF)


class SnowflakeGenerator:
    """Issues unique snowflakes that encode a given or the current time, as Discord's id workers do.

    Layout: `(ms - epoch) << 22 | worker << 17 | process << 12 | increment`. The increment is a global counter and
    spills into the process bits, so up to 131072 ids can share one millisecond before the generator moves on to the
    next millisecond; the app derives event time from message ids (§7.2), so the encoded time must stay exact in
    every realistic case.
    """

    def __init__(self, worker: int = 1) -> None:
        self._worker = worker & 0x1F
        self._counter = 0
        self._issued: set[int] = set()
        self._lock = threading.Lock()

    def next(self, at: datetime | float | int | None = None) -> int:
        """A fresh snowflake for `at` (now if None)."""
        ms = to_ms(at)
        with self._lock:
            for _ in range(1 << 17):
                self._counter = (self._counter + 1) & 0x1FFFF
                candidate = snowflake_for(ms, (self._worker << 17) | self._counter)
                if candidate not in self._issued:
                    self._issued.add(candidate)
                    return candidate
        raise RuntimeError("more than 131072 snowflakes requested for one millisecond")

    def reserve(self, snowflake: int) -> None:
        """Record an externally chosen id (the fixed world ids) so it is never issued again."""
        with self._lock:
            self._issued.add(snowflake)


# --------------------------------------------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class User:
    """A Discord user account (global, not per guild)."""

    id: int
    username: str
    global_name: str | None = None
    avatar: str | None = None
    bot: bool = False
    system: bool = False
    email: str | None = None

    @property
    def display_name(self) -> str:
        return self.global_name or self.username


@dataclass(slots=True)
class Role:
    """A guild role. `position` orders the hierarchy; the @everyone role has the guild's id and position 0."""

    id: int
    name: str
    position: int
    permissions: int
    managed: bool = False
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    bot_id: int | None = None


@dataclass(slots=True)
class Overwrite:
    """A channel permission overwrite (type 0 = role, 1 = member)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass(slots=True)
class Channel:
    """Any guild channel, thread included; type-specific fields are ignored where they don't apply."""

    id: int
    guild_id: int
    type: ChannelType
    name: str
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    overwrites: list[Overwrite] = field(default_factory=list)
    rate_limit_per_user: int = 0
    bitrate: int = 64000
    user_limit: int = 0
    rtc_region: str | None = None
    last_message_id: int | None = None
    flags: int = 0
    # Thread-only fields.
    owner_id: int | None = None
    created_at: datetime | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    invitable: bool = True
    message_count: int = 0
    member_ids: set[int] = field(default_factory=set)
    applied_tags: list[int] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type.is_thread


@dataclass(slots=True)
class Member:
    """A user's membership of one guild. `roles` never contains the @everyone role, as on Discord."""

    user_id: int
    roles: list[int]
    joined_at: datetime
    nick: str | None = None
    avatar: str | None = None
    deaf: bool = False
    mute: bool = False
    pending: bool = False
    flags: int = 0
    premium_since: datetime | None = None
    communication_disabled_until: datetime | None = None


@dataclass(slots=True)
class VoiceState:
    """A member connected to a voice or stage channel."""

    user_id: int
    channel_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    mute: bool = False
    deaf: bool = False
    self_video: bool = False
    self_stream: bool = False
    suppress: bool = False


@dataclass(frozen=True, slots=True)
class Emoji:
    """A reaction emoji: Unicode (`id` None) or custom."""

    name: str
    id: int | None = None
    animated: bool = False

    _CUSTOM = re.compile(r"^<?(a?):?([A-Za-z0-9_~]+):(\d+)>?$")

    @classmethod
    def parse(cls, text: str) -> Emoji:
        """`"👍"`, `"<:name:123>"`, `"<a:name:123>"` or `"name:123"`."""
        match = cls._CUSTOM.match(text)
        if match:
            return cls(name=match.group(2), id=int(match.group(3)), animated=bool(match.group(1)))
        return cls(name=text)

    @property
    def key(self) -> str:
        """Identity used for reaction bookkeeping (a custom emoji is identified by id alone)."""
        return str(self.id) if self.id is not None else self.name


@dataclass(slots=True)
class Attachment:
    """A file attached to a message (no bytes are stored; only metadata is ever read)."""

    id: int
    filename: str
    size: int
    url: str
    content_type: str = "image/png"
    width: int | None = 64
    height: int | None = 64


@dataclass(slots=True)
class Message:
    """A message in a guild channel or thread, as sent by a member, the bot or an interaction webhook."""

    id: int
    channel_id: int
    guild_id: int
    author_id: int
    content: str
    timestamp: datetime
    type: MessageType = MessageType.DEFAULT
    attachments: list[Attachment] = field(default_factory=list)
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    reply_to: int | None = None
    """The referenced message: the replied-to message, or for a THREAD_STARTER_MESSAGE the thread's origin."""
    reference_channel_id: int | None = None
    """Channel of `reply_to` when it is not this message's channel (thread starter messages)."""
    allowed_mentions: dict[str, Any] | None = None
    mention_user_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    flags: int = 0
    tts: bool = False
    nonce: str | int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_user_id: int | None = None
    interaction_name: str | None = None
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: dict[str, set[int]] = field(default_factory=dict)
    reaction_emojis: dict[str, Emoji] = field(default_factory=dict)
    thread_id: int | None = None
    """The thread started from this message, or announced by this THREAD_CREATED system message."""

    @property
    def is_ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)


@dataclass(slots=True)
class Guild:
    """A guild and everything in it that the simulator tracks."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    voice_states: dict[int, VoiceState] = field(default_factory=dict)
    afk_channel_id: int | None = None
    afk_timeout: int = 300
    system_channel_id: int | None = None
    icon: str | None = None
    description: str | None = None
    preferred_locale: str = "en-US"
    features: list[str] = field(default_factory=list)
    bot_joined_at: datetime = WORLD_BASE_TIME

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]

    def sorted_roles(self) -> list[Role]:
        return sorted(self.roles.values(), key=lambda r: (r.position, r.id))

    def threads(self) -> Iterator[Channel]:
        return (c for c in self.channels.values() if c.is_thread)

    def top_level_channels(self) -> Iterator[Channel]:
        return (c for c in self.channels.values() if not c.is_thread)

    def base_permissions(self, user_id: int) -> int:
        """Guild-level permissions of a member: owner and Administrator get everything."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        perms = self.everyone_role.permissions
        if member is not None:
            for role_id in member.roles:
                role = self.roles.get(role_id)
                if role is not None:
                    perms |= role.permissions
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, user_id: int, channel: Channel) -> int:
        """Discord's permission algorithm for one channel: base permissions, then @everyone, role and member
        overwrites of the channel (a thread uses its parent's)."""
        base = self.base_permissions(user_id)
        if base & Permission.ADMINISTRATOR or user_id == self.owner_id:
            return ALL_PERMISSIONS
        target = channel
        if channel.is_thread and channel.parent_id is not None and channel.parent_id in self.channels:
            target = self.channels[channel.parent_id]
        overwrites = {o.id: o for o in target.overwrites}
        perms = base
        everyone = overwrites.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        member = self.members.get(user_id)
        role_ids = member.roles if member is not None else []
        allow = deny = 0
        for role_id in role_ids:
            role_overwrite = overwrites.get(role_id)
            if role_overwrite is not None and role_overwrite.type == 0:
                allow |= role_overwrite.allow
                deny |= role_overwrite.deny
        perms = (perms & ~deny) | allow
        member_overwrite = overwrites.get(user_id)
        if member_overwrite is not None and member_overwrite.type == 1:
            perms = (perms & ~member_overwrite.deny) | member_overwrite.allow
        return perms

    def highest_role_position(self, user_id: int) -> int:
        """Position of the member's highest role (0 = only @everyone)."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        return max((self.roles[r].position for r in member.roles if r in self.roles), default=0)

    def next_role_position(self) -> int:
        return max((r.position for r in self.roles.values()), default=0) + 1

    def insert_role_position(self, position: int) -> None:
        """Make room at `position` by moving every role at or above it up by one, as Discord reorders."""
        for role in self.roles.values():
            if role.id != self.id and role.position >= position:
                role.position += 1


@dataclass(slots=True)
class World:
    """The whole simulated state: users, guilds (with their channels, roles, members, voice) and messages."""

    bot_user_id: int
    application_id: int
    users: dict[int, User] = field(default_factory=dict)
    guilds: dict[int, Guild] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    snowflakes: SnowflakeGenerator = field(default_factory=SnowflakeGenerator)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    seed: int = 0
    # What `GET /applications/@me` reports: the privileged intents enabled in the "Developer Portal"
    # (GATEWAY_GUILD_MEMBERS 1 << 14, GATEWAY_MESSAGE_CONTENT 1 << 18); a test clears a bit to play an operator
    # who forgot a switch.
    application_flags: int = (1 << 14) | (1 << 18)

    @property
    def bot_user(self) -> User:
        return self.users[self.bot_user_id]

    def add_user(self, user: User) -> User:
        self.users[user.id] = user
        self.snowflakes.reserve(user.id)
        return user

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise LookupError(f"unknown guild {guild_id}") from None

    def user(self, user_id: int) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise LookupError(f"unknown user {user_id}") from None

    def find_channel(self, channel_id: int) -> tuple[Guild, Channel] | None:
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return guild, channel
        return None

    def channel(self, channel_id: int) -> tuple[Guild, Channel]:
        found = self.find_channel(channel_id)
        if found is None:
            raise LookupError(f"unknown channel {channel_id}")
        return found

    def message(self, message_id: int) -> Message:
        try:
            return self.messages[message_id]
        except KeyError:
            raise LookupError(f"unknown message {message_id}") from None

    def guild_for_user(self, user_id: int) -> Guild:
        """The first guild (by id) the user is a member of; the sandbox guild when it qualifies."""
        for guild_id in sorted(self.guilds):
            if user_id in self.guilds[guild_id].members:
                return self.guilds[guild_id]
        raise LookupError(f"user {user_id} is in no guild")

    def new_id(self, at: datetime | float | int | None = None) -> int:
        return self.snowflakes.next(at)


# --------------------------------------------------------------------------------------------------------------
# The deterministic sandbox world (§3.5)
# --------------------------------------------------------------------------------------------------------------

_ADJECTIVES = (
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively", "merry",
    "nimble", "proud", "quick", "rapid", "shy", "swift", "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
_ANIMALS = (
    "otter", "falcon", "badger", "lynx", "heron", "panda", "koala", "gecko", "bison", "raven",
    "marten", "ibis", "tapir", "quokka", "stoat", "wombat", "yak", "zebra", "okapi", "puffin",
)  # fmt: skip


def _seeded_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def build_sandbox_world(members: int = 20, seed: int = 42) -> World:
    """The deterministic world of SPEC §3.5: the same arguments always yield the same ids, names and times.

    Guild `100000000000000001` "Sandbox" owned by the admin `100000000000000010`, `members` ordinary members with
    ids from `100000000000001000`, roles @everyone / Member / Admin / the bot's managed role (highest), category
    "Community" with `#general`, `#help` and forum `#showcase`, voice "Lounge" and the AFK channel "AFK".
    """
    if members < 0:
        raise ValueError("members must be >= 0")
    rng = random.Random(seed)
    world = World(
        bot_user_id=SANDBOX_BOT_ID,
        application_id=SANDBOX_BOT_ID,
        rng=random.Random(seed + 1),
        seed=seed,
    )
    world.add_user(User(id=SANDBOX_BOT_ID, username="Synapse Sandbox", avatar=None, bot=True))
    world.add_user(
        User(
            id=SANDBOX_OWNER_ID,
            username="sandbox_admin",
            global_name="Sandbox Admin",
            avatar=_seeded_hash(rng),
            email="admin@sandbox.invalid",
        )
    )

    guild = Guild(
        id=SANDBOX_GUILD_ID,
        name="Sandbox",
        owner_id=SANDBOX_OWNER_ID,
        afk_channel_id=CHANNEL_AFK_ID,
        system_channel_id=CHANNEL_GENERAL_ID,
        bot_joined_at=WORLD_BASE_TIME - timedelta(days=400),
    )
    world.guilds[guild.id] = guild
    for role in (
        Role(id=guild.id, name="@everyone", position=0, permissions=DEFAULT_EVERYONE_PERMISSIONS),
        Role(id=ROLE_MEMBER_ID, name="Member", position=1, permissions=0, color=0x3498DB),
        Role(id=ROLE_ADMIN_ID, name="Admin", position=2, permissions=int(Permission.ADMINISTRATOR), hoist=True),
        Role(
            id=ROLE_BOT_ID,
            name="Synapse Sandbox",
            position=3,
            permissions=DEFAULT_BOT_PERMISSIONS,
            managed=True,
            bot_id=SANDBOX_BOT_ID,
        ),
    ):
        guild.roles[role.id] = role

    for channel in (
        Channel(id=CHANNEL_COMMUNITY_ID, guild_id=guild.id, type=ChannelType.CATEGORY, name="Community", position=0),
        Channel(
            id=CHANNEL_GENERAL_ID,
            guild_id=guild.id,
            type=ChannelType.TEXT,
            name="general",
            position=0,
            parent_id=CHANNEL_COMMUNITY_ID,
            topic="General chat",
        ),
        Channel(
            id=CHANNEL_HELP_ID,
            guild_id=guild.id,
            type=ChannelType.TEXT,
            name="help",
            position=1,
            parent_id=CHANNEL_COMMUNITY_ID,
            topic="Ask for help here",
        ),
        Channel(
            id=CHANNEL_SHOWCASE_ID,
            guild_id=guild.id,
            type=ChannelType.FORUM,
            name="showcase",
            position=2,
            parent_id=CHANNEL_COMMUNITY_ID,
            topic="Show what you made",
        ),
        Channel(id=CHANNEL_LOUNGE_ID, guild_id=guild.id, type=ChannelType.VOICE, name="Lounge", position=3),
        Channel(id=CHANNEL_AFK_ID, guild_id=guild.id, type=ChannelType.VOICE, name="AFK", position=4),
    ):
        guild.channels[channel.id] = channel
        world.snowflakes.reserve(channel.id)
    for role_id in guild.roles:
        world.snowflakes.reserve(role_id)
    world.snowflakes.reserve(guild.id)

    guild.members[SANDBOX_BOT_ID] = Member(user_id=SANDBOX_BOT_ID, roles=[ROLE_BOT_ID], joined_at=guild.bot_joined_at)
    guild.members[SANDBOX_OWNER_ID] = Member(
        user_id=SANDBOX_OWNER_ID,
        roles=[ROLE_ADMIN_ID, ROLE_MEMBER_ID],
        joined_at=WORLD_BASE_TIME - timedelta(days=500),
    )
    for index in range(members):
        user_id = SANDBOX_FIRST_MEMBER_ID + index
        adjective = rng.choice(_ADJECTIVES)
        animal = rng.choice(_ANIMALS)
        avatar = _seeded_hash(rng) if rng.random() < 0.8 else None
        joined_at = WORLD_BASE_TIME - timedelta(seconds=rng.randrange(1, 365 * 24 * 3600))
        nick = f"{adjective.title()} {animal.title()} {index}" if rng.random() < 0.3 else None
        world.add_user(
            User(
                id=user_id,
                username=f"{adjective}_{animal}_{index}",
                global_name=f"{adjective.title()} {animal.title()}",
                avatar=avatar,
            )
        )
        guild.members[user_id] = Member(user_id=user_id, roles=[ROLE_MEMBER_ID], joined_at=joined_at, nick=nick)
    return world
