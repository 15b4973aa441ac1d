"""The hikari gateway client inside the runtime's event loop (SPEC §3.2 step 9, §7.1, §17.1).

Builds one `hikari.GatewayBot` for the configured shards (REST base from `DISCORD_API_URL`; hikari discovers the
gateway URL through `GET /gateway/bot`, for Discord and the simulator alike), with only the caches the app reads
and the intents of SPEC §7.1. Listeners are thin: guild structure goes to `services.guild_sync` through the
`StructureWriter` (a few workers, in order per guild: thousands of GUILD_CREATEs at start-up must not each take a
pooled connection at once), activity goes through the `Normalizer` to the pipeline. It implements the runtime's
`GatewayClient` slot (start, close, shard states for `/health` and `/ready`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import hikari
import lightbulb
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.bot import commands as commands_package
from synapse_async.bot.framework import Responder, install
from synapse_async.bot.normalizer import Normalizer
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.faults import BACKGROUND, INTERACTIVE, RetryPolicy, is_transient, log_retries, retry_transient
from synapse_async.obs.logging import get_logger
from synapse_async.services.guild_sync import (
    ChannelSnapshot,
    GuildSnapshot,
    RoleSnapshot,
    SyncResult,
    delete_channel,
    delete_role,
    mark_guild_left,
    sync_guild,
    sync_guilds,
    upsert_channel,
    upsert_role,
)
from synapse_async.services.members import refresh_profile
from synapse_async.services.structure_writer import StructureWriter

log = get_logger(__name__)
T = TypeVar("T")
# Shutdown gives queued structure writes this long (bounded by the runtime's own shutdown deadline).
_STRUCTURE_DRAIN_SECONDS = 5.0
# Guilds per batched sync (one transaction, seven statements): big enough that 10,000 GUILD_CREATEs make a few
# dozen transactions, small enough that a batch stays a fraction of a second and a failed one is cheap to redo.
_SYNC_BATCH_MAX = 250

INTENTS = (
    hikari.Intents.GUILDS
    | hikari.Intents.GUILD_MEMBERS
    | hikari.Intents.MESSAGE_CONTENT
    | hikari.Intents.GUILD_MESSAGES
    | hikari.Intents.GUILD_MESSAGE_REACTIONS
    | hikari.Intents.GUILD_VOICE_STATES
)
# Only what the app reads: no message, presence, emoji, sticker, invite or DM caches (SPEC §25 memory target).
CACHE_COMPONENTS = (
    hikari.api.CacheComponents.GUILDS
    | hikari.api.CacheComponents.GUILD_CHANNELS
    | hikari.api.CacheComponents.GUILD_THREADS
    | hikari.api.CacheComponents.ROLES
    | hikari.api.CacheComponents.MEMBERS
    | hikari.api.CacheComponents.VOICE_STATES
    | hikari.api.CacheComponents.ME
)

_CHANNEL_KINDS: dict[hikari.ChannelType, str] = {
    hikari.ChannelType.GUILD_TEXT: "text",
    hikari.ChannelType.GUILD_NEWS: "announcement",
    hikari.ChannelType.GUILD_FORUM: "forum",
    hikari.ChannelType.GUILD_MEDIA: "media",
    hikari.ChannelType.GUILD_VOICE: "voice",
    hikari.ChannelType.GUILD_STAGE: "stage",
    hikari.ChannelType.GUILD_CATEGORY: "category",
}


def channel_snapshot(channel: hikari.GuildChannel) -> ChannelSnapshot | None:
    """The stored form of a guild channel; None for threads and unknown types (threads are never stored)."""
    kind = _CHANNEL_KINDS.get(hikari.ChannelType(channel.type))
    if kind is None:
        return None
    return ChannelSnapshot(
        channel_id=int(channel.id),
        name=channel.name or str(channel.id),
        type=kind,
        parent_id=int(channel.parent_id) if channel.parent_id is not None and kind != "category" else None,
        position=int(getattr(channel, "position", 0) or 0),
    )


def guild_snapshot(
    guild: hikari.Guild, channels: Sequence[hikari.GuildChannel], roles: Sequence[hikari.Role]
) -> GuildSnapshot:
    return GuildSnapshot(
        guild_id=int(guild.id),
        name=guild.name,
        owner_id=int(guild.owner_id),
        afk_channel_id=int(guild.afk_channel_id) if guild.afk_channel_id is not None else None,
        icon_hash=guild.icon_hash,
        channels=[snap for c in channels if (snap := channel_snapshot(c)) is not None],
        roles=[role_snapshot(r) for r in roles],
    )


def role_snapshot(role: hikari.Role) -> RoleSnapshot:
    return RoleSnapshot(int(role.id), role.name, int(role.position), int(role.permissions), bool(role.is_managed))


def top_role_colour(cache: hikari.api.Cache) -> Callable[[int], str | None]:
    """The rank card's default accent (SPEC §29): the colour of the guild's highest role that has one."""

    def colour(guild_id: int) -> str | None:
        roles = [r for r in cache.get_roles_view_for_guild(guild_id).values() if int(r.color) != 0]
        if not roles:
            return None
        top = max(roles, key=lambda r: (r.position, int(r.id)))
        return "#" + top.color.raw_hex_code.lower()

    return colour


def make_gateway_bot(token: str, rest_url: str) -> hikari.GatewayBot:
    """The hikari client exactly as the app runs it (also used by benchmarks for a like-for-like baseline)."""
    return hikari.GatewayBot(
        token,
        rest_url=rest_url,
        intents=INTENTS,
        cache_settings=hikari.impl.CacheSettings(components=CACHE_COMPONENTS, max_messages=0),
        banner=None,
        logs=None,  # our logging is configured once by the CLI; hikari must not add handlers
        suppress_optimization_warning=True,
    )


class DiscordGateway:
    """Owns the GatewayBot and its lightbulb client; started and closed by the runtime."""

    def __init__(
        self,
        *,
        token: str,
        rest_url: str,
        sessions: async_sessionmaker[AsyncSession],
        normalizer: Normalizer,
        shard_ids: Sequence[int] | None,
        shard_count: int | None,
        cache: ConfigCache,
        extensions: Sequence[str] | None = None,
        default_guilds: Sequence[int] = (),
        register_commands: bool = True,
        structure_workers: int = 2,
    ) -> None:
        self.bot = make_gateway_bot(token, rest_url)
        self.commands = lightbulb.client_from_app(
            self.bot, default_enabled_guilds=list(default_guilds), sync_commands=register_commands
        )
        self.responder = Responder()
        install(self.commands, cache, self.responder)
        self._extensions = list(extensions) if extensions is not None else None
        self._sessions = sessions
        self.normalizer = normalizer
        normalizer.bind(self.bot)
        self._shard_ids = list(shard_ids) if shard_ids is not None else None
        self._shard_count = shard_count
        self.guild_syncs = 0
        # GUILD_CREATEs received and when (monotonic): the start-up benchmark times readiness from the last one.
        self.guild_creates = 0
        self.first_guild_create_at = 0.0
        self.last_guild_create_at = 0.0
        self.structure: StructureWriter[GuildSnapshot] = StructureWriter(
            structure_workers, batch=self._sync_batch, batch_max=_SYNC_BATCH_MAX
        )
        self._subscribe()

    def _subscribe(self) -> None:
        n = self.normalizer
        b = self.bot
        # lightbulb syncs commands when started; StartedEvent fires once per process start, never on reconnects.
        b.subscribe(hikari.StartedEvent, self.commands.start)
        b.subscribe(hikari.StoppingEvent, self.commands.stop)
        b.subscribe(hikari.GuildAvailableEvent, self._on_guild_visible)
        b.subscribe(hikari.GuildJoinEvent, self._on_guild_visible)
        b.subscribe(hikari.GuildUpdateEvent, self._on_guild_update)
        b.subscribe(hikari.GuildLeaveEvent, self._on_guild_leave)
        b.subscribe(hikari.GuildChannelCreateEvent, self._on_channel_upsert)
        b.subscribe(hikari.GuildChannelUpdateEvent, self._on_channel_upsert)
        b.subscribe(hikari.GuildChannelDeleteEvent, self._on_channel_delete)
        b.subscribe(hikari.RoleCreateEvent, self._on_role_upsert)
        b.subscribe(hikari.RoleUpdateEvent, self._on_role_upsert)
        b.subscribe(hikari.RoleDeleteEvent, self._on_role_delete)
        b.subscribe(hikari.MemberUpdateEvent, self._on_member_update)
        b.subscribe(hikari.GuildMessageCreateEvent, _sync_listener(n.on_message_create))
        b.subscribe(hikari.GuildMessageDeleteEvent, _sync_listener(n.on_message_delete))
        b.subscribe(hikari.GuildBulkMessageDeleteEvent, _sync_listener(n.on_bulk_delete))
        b.subscribe(hikari.GuildReactionAddEvent, _sync_listener(n.on_reaction_add))
        b.subscribe(hikari.GuildReactionDeleteEvent, _sync_listener(n.on_reaction_remove))
        b.subscribe(hikari.GuildThreadCreateEvent, _sync_listener(n.on_thread_create))
        b.subscribe(hikari.VoiceStateUpdateEvent, _sync_listener(n.on_voice_state))
        b.subscribe(hikari.MemberCreateEvent, _sync_listener(n.on_member_create))
        b.subscribe(hikari.MemberDeleteEvent, _sync_listener(n.on_member_delete))

    def provide(self, kind: type[T], value: T) -> None:
        """Make a service built by the runtime injectable into commands (`value: Kind = lightbulb.di.INJECTED`);
        called before `start`, i.e. before any command can run."""
        self.commands.di.registry_for(lightbulb.di.Contexts.DEFAULT).register_value(kind, value)

    # --- lifecycle (runtime GatewayClient slot) ----------------------------------------------------------------
    async def start(self) -> None:
        # Commands are loaded before the gateway starts; lightbulb syncs them once, on this start's StartedEvent,
        # and only writes to Discord when the definitions differ (never again on reconnects).
        if self._extensions is None:  # production: every command group module of `bot/commands/`
            await self.commands.load_extensions_from_package(commands_package)
        else:  # tests choose their own extension modules
            await self.commands.load_extensions(*self._extensions)
        self.structure.start()
        await self.bot.start(check_for_updates=False, shard_ids=self._shard_ids, shard_count=self._shard_count)

    async def close(self) -> None:
        if self.bot.is_alive:
            await self.bot.close()
        # After the gateway stopped, nothing new arrives; a queued leave must still be written, because the next
        # READY just omits that guild and nothing else would mark it left.
        await self.structure.close(drain_seconds=_STRUCTURE_DRAIN_SECONDS)

    def shard_states(self) -> list[dict[str, Any]]:
        if not self.bot.shards:
            # Not started yet: report the shards this process will run (0 when Discord will decide) as disconnected,
            # so readiness cannot turn green before the gateway is up.
            expected = self._shard_ids if self._shard_ids is not None else [0]
            return [{"id": i, "state": "disconnected", "latency_ms": None} for i in expected]
        out = []
        for shard_id, shard in sorted(self.bot.shards.items()):
            connected = shard.is_alive and shard.is_connected
            latency = shard.heartbeat_latency
            out.append(
                {
                    "id": shard_id,
                    "state": "connected" if connected else "disconnected",
                    "latency_ms": round(latency * 1000, 1) if latency == latency and latency != float("inf") else None,
                }
            )
        return out

    def structure_writes(self) -> dict[str, int]:
        return self.structure.snapshot()

    # --- guild structure ---------------------------------------------------------------------------------------
    async def _on_guild_visible(self, event: hikari.GuildAvailableEvent | hikari.GuildJoinEvent) -> None:
        self.last_guild_create_at = time.monotonic()
        if not self.guild_creates:
            self.first_guild_create_at = self.last_guild_create_at
        self.guild_creates += 1
        # The voice tracker is rebuilt before the first await: a voice update dispatched after this GUILD_CREATE
        # runs after this line, so the older snapshot can never overwrite it (as it did when the rebuild came
        # after a guild sync that was retrying), and a failed sync cannot skip the rebuild (SPEC §7.3).
        self.normalizer.voice.rebuild(
            int(event.guild_id),
            (
                (
                    int(v.user_id),
                    int(v.channel_id),
                    v.is_self_muted or v.is_guild_muted,
                    v.is_self_deafened or v.is_guild_deafened,
                )
                for v in event.voice_states.values()
                if v.channel_id is not None and not (v.member is not None and v.member.is_bot)
            ),
            self.normalizer.now(),
        )
        snap = guild_snapshot(event.guild, list(event.channels.values()), list(event.roles.values()))
        self.structure.submit(
            snap.guild_id, "guild_sync", lambda: self._sync(snap, "guild_sync"), replaces_pending=True, snapshot=snap
        )

    async def _sync(self, snap: GuildSnapshot, what: str) -> None:
        # The database may stay down through every retry; the next GUILD_CREATE (reconnect) syncs again.
        result = await self._write(lambda: sync_guild(self._sessions, snap), what, snap.guild_id, BACKGROUND)
        if result is not None:
            self._synced(snap.guild_id, result)

    def _synced(self, guild_id: int, result: SyncResult) -> None:
        """Count and log one guild's finished full sync (one guild, or one of a batch)."""
        self.guild_syncs += 1
        log.info(
            "guild_synced",
            guild_id=guild_id,
            channels_changed=result.channels_changed,
            roles_changed=result.roles_changed,
        )

    async def _sync_batch(self, snaps: list[GuildSnapshot]) -> None:
        """Full syncs of the guilds whose snapshots the structure writer batched (start-up: many at once)."""
        try:
            results = await retry_transient(
                lambda: sync_guilds(self._sessions, snaps),
                policy=BACKGROUND,
                on_retry=log_retries("guild_sync", guilds=len(snaps)),
            )
        except Exception as exc:
            if not is_transient(exc):
                raise  # the structure writer retries the guilds one by one
            # As for one guild (`_write`): the database stayed down; the next GUILD_CREATE syncs them again.
            log.error("guild_sync_failed", guilds=len(snaps), error=type(exc).__name__)
            return
        for snap in snaps:
            self._synced(snap.guild_id, results[snap.guild_id])

    async def _on_guild_update(self, event: hikari.GuildUpdateEvent) -> None:
        guild = event.guild
        channels = list(self.bot.cache.get_guild_channels_view_for_guild(guild.id).values())
        snap = guild_snapshot(guild, channels, list(event.roles.values()))
        self.structure.submit(
            snap.guild_id,
            "guild_update",
            lambda: self._sync(snap, "guild_update"),
            replaces_pending=True,
            snapshot=snap,
        )

    async def _on_guild_leave(self, event: hikari.GuildLeaveEvent) -> None:
        guild_id = int(event.guild_id)
        self._structure_write(guild_id, "guild_leave", lambda: mark_guild_left(self._sessions, guild_id), True)

    async def _on_channel_upsert(self, event: hikari.GuildChannelCreateEvent | hikari.GuildChannelUpdateEvent) -> None:
        snap = channel_snapshot(event.channel)
        guild_id = int(event.guild_id)
        if snap is not None:
            self._structure_write(guild_id, "channel_upsert", lambda: upsert_channel(self._sessions, guild_id, snap))

    async def _on_channel_delete(self, event: hikari.GuildChannelDeleteEvent) -> None:
        guild_id, channel_id = int(event.guild_id), int(event.channel.id)
        if channel_snapshot(event.channel) is not None:
            self._structure_write(
                guild_id, "channel_delete", lambda: delete_channel(self._sessions, guild_id, channel_id)
            )

    async def _on_role_upsert(self, event: hikari.RoleCreateEvent | hikari.RoleUpdateEvent) -> None:
        guild_id, snap = int(event.guild_id), role_snapshot(event.role)
        self._structure_write(guild_id, "role_upsert", lambda: upsert_role(self._sessions, guild_id, snap))

    async def _on_role_delete(self, event: hikari.RoleDeleteEvent) -> None:
        guild_id, role_id = int(event.guild_id), int(event.role_id)
        self._structure_write(guild_id, "role_delete", lambda: delete_role(self._sessions, guild_id, role_id))

    def _structure_write(
        self, guild_id: int, what: str, op: Callable[[], Awaitable[object]], replaces_pending: bool = False
    ) -> None:
        """Queue a guild-structure write behind the guild's earlier ones (retried like every structure write)."""
        self.structure.submit(
            guild_id, what, lambda: self._write(op, what, guild_id, BACKGROUND), replaces_pending=replaces_pending
        )

    async def _on_member_update(self, event: hikari.MemberUpdateEvent) -> None:
        member = event.member
        if member.is_bot:
            return
        guild_id, user_id, name, avatar = int(event.guild_id), int(member.id), member.display_name, member.avatar_hash
        await self._write(
            lambda: refresh_profile(self._sessions, guild_id, user_id, name, avatar), "member_update", guild_id
        )

    async def _write(
        self, op: Callable[[], Awaitable[T]], what: str, guild_id: int, policy: RetryPolicy = INTERACTIVE
    ) -> T | None:
        """Guild-structure writes retry transient faults (db/faults.py); if the database stays down, the write is
        logged and skipped: the next GUILD_CREATE after a reconnect syncs the whole guild again."""
        try:
            return await retry_transient(op, policy=policy, on_retry=log_retries(what, guild_id=guild_id))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.error(f"{what}_failed", guild_id=guild_id, error=type(exc).__name__)
            return None


def _sync_listener(handler: Any) -> Any:
    """hikari wants coroutine listeners; these handlers are synchronous (no await between receipt and submit)."""

    async def listener(event: Any) -> None:
        handler(event)

    return listener
