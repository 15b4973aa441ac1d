"""One transaction's worth of events → committed rows (SPEC §8.1, §9, §10.2, §12.4, §15.2).

The pipeline's dispatch: it decides each event's reward items (the formula) and writes them, then hands every XP
change to the ledger engine (`ledger.LevelEngine`), which owns level changes and achievements for every writer.
`Processor.process` runs INSIDE a transaction the caller owns and returns the after-commit `Effects` (cooldown
updates, announcements, role syncs); nothing outside the database changes here. Events are handled strictly in
order, so a micro-batch equals one-by-one processing: rewards read the journal windows written by earlier events
of the same batch, cooldowns see a provisional overlay, and level changes are applied at the very event whose XP
crossed the threshold. The one effect that would make a batch differ — an achievement whose reward changes XP
mid-batch — is detected and answered with `NeedsSingles`: the caller rolls back and replays the batch one event per
transaction, where achievements are applied in place.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.domain.events import (
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageCreated,
    PipelineEvent,
    ReactionAdded,
    ThreadCreated,
    VoiceTick,
)
from synapse_async.domain.snowflakes import snowflake_time
from synapse_async.ledger import Cause, CooldownKey, Effects, LevelEngine, NeedsSingles, Tx
from synapse_async.pipeline import sql
from synapse_async.pipeline.batch import After, MessageBatch, PlannedMessage, json_text, row_after, xp_after
from synapse_async.pipeline.cooldowns import CooldownCache, latest
from synapse_async.pipeline.lake import lake_row, periods
from synapse_async.rewards.config import GuildConfig, season_at
from synapse_async.rewards.formula import Reward, RewardInput, compute_reward, cooldown_active

__all__ = ["CooldownCache", "MemberLookup", "NeedsSingles", "Processor"]

MemberLookup = Callable[[int, int], MemberRef | None]
"""(guild_id, user_id) → the member as the gateway cache knows them (roles, name), or None; in memory only."""
Renewal = Callable[[int], Awaitable[None]]
"""guild_id → end its expired season and start the renewed one now (`SeasonRollover.renew`), cache updated."""


def _cause(plan: PlannedMessage) -> Cause:
    """The cause of a message's XP change in a batch (built only for the messages whose level is decided)."""
    event = plan.event
    return Cause(event.guild_id, event.occurred_at, event.reward_key, plan.season_id, event.channel_id)


class Processor:
    """Dispatches one transaction's events to their reward rules and hands every XP change to the ledger engine."""

    def __init__(self, cache: ConfigCache, cooldowns: CooldownCache, engine: LevelEngine | None = None) -> None:
        self._cache = cache
        self.cooldowns = cooldowns
        self.engine = engine if engine is not None else LevelEngine()
        # Benchmark instrumentation: wall time spent waiting for pipelined message runs, and how many they held.
        self.pipelined_seconds = 0.0
        self.pipelined_events = 0
        self._members: MemberLookup | None = None
        self._renew: Renewal | None = None

    def bind_members(self, lookup: MemberLookup) -> None:
        """Give the processor the gateway's member cache: a reaction's author is known only by id, yet their roles
        decide role multipliers and no-XP for `reaction_received` (SPEC §9.1, §9.4)."""
        self._members = lookup

    def bind_renewal(self, renew: Renewal) -> None:
        """Give the processor the season rollover: with `season.auto_renew`, an event past the active season's
        `ends_at` belongs to the renewed season (SPEC §11: it starts at that `ends_at`, no gap), which must exist
        before the event is attributed — not up to a rollover tick (60 s) later."""
        self._renew = renew

    async def renew_due(self, events: Sequence[PipelineEvent]) -> None:
        """Before a transaction: renew every auto-renewing guild whose active season ended before one of `events`.
        In memory only (the cache) unless a renewal is due, which happens once per season."""
        if self._renew is None:
            return
        newest: dict[int, datetime] = {}
        for event in events:
            seen = newest.get(event.guild_id)
            if seen is None or event.occurred_at > seen:
                newest[event.guild_id] = event.occurred_at
        for guild_id, at in newest.items():
            guild = self._cache.guild(guild_id)
            active = guild.active_season
            if active is not None and at >= active.ends_at and guild.settings.bool("season.auto_renew"):
                await self._renew(guild_id)

    def _member(self, guild_id: int, user_id: int) -> MemberRef:
        found = self._members(guild_id, user_id) if self._members is not None else None
        return found if found is not None else MemberRef(user_id=user_id, display_name=str(user_id), avatar_hash=None)

    def committed(self, effects: Effects) -> None:
        """Learn from a COMMITTED transaction: cooldowns here, templates that turned out to be full in the engine."""
        self.cooldowns.apply(effects.cooldowns)
        self.engine.committed(effects)

    async def process(self, conn: asyncpg.Connection, events: Sequence[PipelineEvent], *, singles: bool) -> Effects:
        tx = Tx(conn, singles)
        i = 0
        while i < len(events):
            if not singles and isinstance(events[i], MessageCreated):
                j = i
                while j < len(events) and isinstance(events[j], MessageCreated):
                    j += 1
                await self._message_run(tx, events[i:j])  # type: ignore[arg-type]
                i = j
                continue
            await self._count(tx, events[i], await self._event_if_served(tx, events[i]))
            i += 1
        return tx.effects

    async def _event_if_served(self, tx: Tx, event: PipelineEvent) -> bool | None:
        guild = self._cache.guild(event.guild_id)
        if guild.info is not None and guild.info.left:
            return None
        return await self._event(tx, guild, event)

    @staticmethod
    async def _count(tx: Tx, event: PipelineEvent, outcome: bool | None) -> None:
        if outcome is None:
            return
        if outcome:
            tx.effects.processed += 1
            tx.effects.committed_ns.append(event.received_ns)
        else:
            tx.effects.duplicates += 1

    async def _message_run(self, tx: Tx, run: Sequence[MessageCreated]) -> None:
        """A run of messages as ONE set-based statement (`sql.MESSAGE_BATCH`, see `pipeline/batch.py`): rewards
        are decided in Python (they need no reads), every table is written once for the whole run, then level
        changes follow in event order and achievements once per member. Any duplicate in the run, or an
        achievement, replays the batch one event per transaction so that the outcome equals one-by-one exactly."""
        plans: list[PlannedMessage] = []
        guilds: list[GuildConfig] = []  # the configuration each decision used, kept for the level changes
        for event in run:
            guild = self._cache.guild(event.guild_id)
            guilds.append(guild)
            if guild.info is not None and guild.info.left:
                raise NeedsSingles()  # rare: a gated guild — the general path decides per event
            reward, _key, _previous = self._message_reward(tx, guild, event)
            season = season_at(guild, event.occurred_at)
            # With `lake.source.message_create` off the event has no lake row: the journal insert is its gate.
            lake = lake_row(event, guild) if guild.settings.bool("lake.source.message_create") else None
            plans.append(
                PlannedMessage(
                    event,
                    reward,
                    season.season_id if season is not None else None,
                    lake,
                    periods(guild, event.occurred_at) if lake is not None else (),
                )
            )
        batch = MessageBatch(plans)
        started = time.perf_counter()
        finals = await tx.conn.fetch(sql.MESSAGE_BATCH, *batch.arguments())
        self.pipelined_seconds += time.perf_counter() - started
        self.pipelined_events += len(plans)
        if int(finals[0]["journal_rows"]) != len(plans) or int(finals[0]["lake_rows"]) != batch.lake_rows:
            raise NeedsSingles()  # a duplicate: its provisional cooldown may have influenced later items
        by_member = {(int(r["guild_id"]), int(r["user_id"])): r for r in finals}
        effects = tx.effects
        last: dict[tuple[int, int], tuple[GuildConfig, PlannedMessage, After]] = {}
        decided_at: dict[tuple[int, int], int] = {}  # member -> the XP its level was last decided at in this run
        for plan, guild, after in zip(plans, guilds, batch.afters(by_member), strict=True):
            event = plan.event
            effects.processed += 1
            effects.committed_ns.append(event.received_ns)
            member = plan.member
            xp = xp_after(after)
            if decided_at.get(member) != xp:
                # A level is decided by XP alone (same curve for the whole run): at the XP this member's previous
                # message of the run was decided at, one by one would find no change either — most messages of a
                # burst pay nothing (cooldown), so most are skipped (and their row is never built).
                row = row_after(after)
                await self.engine.after_xp_change(
                    tx, guild, event.author.user_id, row, _cause(plan), achievements=False
                )
                decided_at[member] = xp
            last[member] = (guild, plan, after)
        # Achievement inputs only grow along the event path, so if a member's FINAL state in this run earns
        # nothing, no intermediate state did either: one evaluation per member instead of one per message. If
        # something is earned, after_xp_change raises NeedsSingles and the batch is replayed one by one.
        for (_guild_id, user_id), (guild, plan, after) in last.items():
            await self.engine.after_xp_change(tx, guild, user_id, row_after(after), _cause(plan))

    # --- one event -----------------------------------------------------------------------------------------
    async def _event(self, tx: Tx, guild: GuildConfig, event: PipelineEvent) -> bool:
        """Process one event; False when the whole event was a duplicate."""
        if not isinstance(event, VoiceTick):
            row = lake_row(event, guild)
            if isinstance(event, MemberJoined) and row is not None:
                existed = await tx.conn.fetchval(
                    "SELECT true FROM members WHERE guild_id = $1 AND user_id = $2", event.guild_id, row.user_id
                )
                row.payload["is_rejoin"] = bool(existed)
            if row is not None and guild.settings.bool(f"lake.source.{row.event_type}"):
                lake_id = await tx.conn.fetchval(
                    sql.LAKE,
                    event.guild_id,
                    row.user_id,
                    row.event_type,
                    row.channel_id,
                    row.target_id,
                    row.source_key,
                    json_text(row.payload),
                    row.occurred_at,
                    periods(guild, row.occurred_at),
                )
                if lake_id is None:
                    return False
        if isinstance(event, MessageCreated):
            await self._message(tx, guild, event)
        elif isinstance(event, ThreadCreated):
            reward = compute_reward(
                RewardInput("thread_create", event.thread_id, event.parent_id, event.owner.role_ids), guild
            )
            await self._item(
                tx,
                guild,
                event,
                "thread_create",
                event.owner,
                reward,
                event.reward_key,
                channel_id=event.thread_id,
                ref_id=event.thread_id,
                active=True,
                announce=event.thread_id,
            )
        elif isinstance(event, ReactionAdded):
            await self._reaction(tx, guild, event)
        elif isinstance(event, VoiceTick):
            await self._voice_tick(tx, guild, event)
        elif isinstance(event, MemberJoined):
            await self._member_join(tx, guild, event)
        elif isinstance(event, MemberLeft):
            await tx.conn.execute(sql.MEMBER_LEAVE, event.guild_id, event.user_id, event.occurred_at)
        return True

    def _message_reward(
        self, tx: Tx, guild: GuildConfig, event: MessageCreated
    ) -> tuple[Reward, CooldownKey, datetime | None]:
        """The message's reward (§9.4) with the cooldown seen through this transaction's provisional overlay; a paid
        message marks the overlay at once so later messages of the same batch see it."""
        settings = guild.settings
        key: CooldownKey = (event.guild_id, event.author.user_id)
        if settings.str("cooldown.scope") == "channel":
            key = (*key, event.channel_id)
        # One-by-one, the cache would hold the LATEST paid time of every committed message (`CooldownCache.apply`
        # keeps the maximum); the overlay must answer the same, even when event times arrive out of order.
        last = latest(tx.effects.cooldowns.get(key), self.cooldowns.get(key))
        item = RewardInput(
            "message",
            event.channel_id,
            event.parent_id,
            event.author.role_ids,
            meta=event.meta,
            cooldown_active=cooldown_active(event.occurred_at, last, settings.int("cooldown.seconds")),
        )
        reward = compute_reward(item, guild)
        previous = tx.effects.cooldowns.get(key)
        if reward.zero_reason is None:
            # Provisional, applied to the cache after commit; like the cache it keeps the latest paid time.
            tx.effects.cooldowns[key] = event.occurred_at if previous is None else max(previous, event.occurred_at)
        return reward, key, previous

    async def _message(self, tx: Tx, guild: GuildConfig, event: MessageCreated) -> None:
        reward, key, previous = self._message_reward(tx, guild, event)
        inserted = await self._item(
            tx, guild, event, "message", event.author, reward, event.reward_key,
            channel_id=event.channel_id, ref_id=event.message_id, active=True, announce=event.channel_id,
        )  # fmt: skip
        if not inserted and reward.zero_reason is None:
            # A duplicate item pays nothing and must not start a cooldown: restore the overlay as it was.
            if previous is None:
                tx.effects.cooldowns.pop(key, None)
            else:
                tx.effects.cooldowns[key] = previous

    async def _reaction(self, tx: Tx, guild: GuildConfig, event: ReactionAdded) -> None:
        settings = guild.settings
        reactor, author = event.reactor.user_id, event.author_id
        age = (event.occurred_at - snowflake_time(event.message_id)).total_seconds()
        pair_hours = settings.int("reactions.pair_window_hours")

        async def pair_count(user: int, counterpart: int, kind: str) -> int:
            return int(
                await tx.conn.fetchval(
                    sql.PAIR_COUNT, event.guild_id, user, counterpart, kind, event.occurred_at, pair_hours
                )
            )

        items: list[tuple[int, str]] = [(reactor, "reaction_given")]
        if author is not None and author != reactor and not event.author_is_bot:
            items.append((author, "reaction_received"))
        for user, kind in sorted(items):  # rows of two members: ascending user id (SPEC §8.1)
            pair = 0
            if author is not None and author != reactor and not event.author_is_bot:
                pair = await pair_count(user, author if user == reactor else reactor, kind)
            reactors = (
                int(await tx.conn.fetchval(sql.REACTOR_COUNT, event.guild_id, event.message_id))
                if kind == "reaction_received"
                else 0
            )
            earner = event.reactor if user == reactor else self._member(event.guild_id, user)
            item = RewardInput(
                kind,  # type: ignore[arg-type]
                event.channel_id,
                event.parent_id,
                earner.role_ids,
                author_unknown=author is None,
                reactor_id=reactor,
                author_id=author,
                author_is_bot=event.author_is_bot,
                pair_count=pair,
                reactor_count=reactors,
                message_age_seconds=age,
            )
            reward = compute_reward(item, guild)
            counterpart = author if user == reactor else reactor
            key = event.given_key if kind == "reaction_given" else event.received_key
            await self._item(
                tx,
                guild,
                event,
                kind,
                earner,
                reward,
                key,
                channel_id=event.channel_id,
                counterpart_id=counterpart,
                ref_id=event.message_id,
                active=user == reactor,
                announce=event.channel_id,
            )

    async def _voice_tick(self, tx: Tx, guild: GuildConfig, event: VoiceTick) -> None:
        paid = int(
            await tx.conn.fetchval(sql.PAID_TICKS_LAST_HOUR, event.guild_id, event.member.user_id, event.occurred_at)
        )
        item = RewardInput("voice_tick", event.channel_id, None, event.member.role_ids, paid_ticks_last_hour=paid)
        reward = compute_reward(item, guild)
        await self._item(
            tx,
            guild,
            event,
            "voice_tick",
            event.member,
            reward,
            event.reward_key,
            channel_id=event.channel_id,
            active=True,
            stat_increment=event.minutes,
            announce=None,
        )

    async def _member_join(self, tx: Tx, guild: GuildConfig, event: MemberJoined) -> None:
        m = event.member
        row = await tx.conn.fetchrow(
            sql.MEMBER_JOIN, event.guild_id, m.user_id, m.display_name[:100], m.avatar_hash, event.joined_at
        )
        if row is not None and row["existed"] and guild.settings.bool("level_roles.restore_on_rejoin"):
            tx.effects.role_syncs[(event.guild_id, m.user_id)] = int(row["level"])

    # --- one reward item ---------------------------------------------------------------------------------------
    async def _item(
        self,
        tx: Tx,
        guild: GuildConfig,
        event: PipelineEvent,
        kind: str,
        earner: MemberRef,
        reward: Reward,
        key: str,
        *,
        channel_id: int | None,
        ref_id: int | None = None,
        counterpart_id: int | None = None,
        active: bool,
        announce: int | None,
        stat_increment: int = 1,
    ) -> bool:
        """Journal + atomic member/season increments; then level change and achievements. False if duplicate."""
        season = season_at(guild, event.occurred_at)
        season_id = season.season_id if season is not None else None
        row = await tx.conn.fetchrow(
            sql.reward_item(kind),
            event.guild_id,
            earner.user_id,
            kind,
            key,
            season_id,
            channel_id,
            counterpart_id,
            ref_id,
            reward.xp,
            reward.stars,
            reward.zero_reason,
            json_text(reward.details),
            event.occurred_at,
            earner.display_name[:100],
            earner.avatar_hash,
            stat_increment,
            active,
        )
        if row is None or row["journal_id"] is None:
            return False
        cause = Cause(event.guild_id, event.occurred_at, key, season_id, announce)
        await self.engine.after_xp_change(tx, guild, earner.user_id, row, cause)
        return True
