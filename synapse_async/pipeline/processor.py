"""One transaction's worth of events → committed rows (SPEC §8.1, §9, §10.2, §12.4, §15.2).

`Processor.process` runs INSIDE a transaction the caller owns and returns the after-commit `Effects` (cooldown
updates, announcements, role syncs); nothing outside the database changes here. Events are handled strictly in
order, so a micro-batch equals one-by-one processing: rewards read the journal windows written by earlier events
of the same batch, cooldowns see a provisional overlay, and level changes are applied at the very event whose XP
crossed the threshold. The one effect that would make a batch differ — an achievement whose reward changes XP
mid-batch — is detected and answered with `NeedsSingles`: the caller rolls back and replays the batch one event per
transaction, where achievements are applied in place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from cachetools import LRUCache

from synapse_async.cache.config_cache import ConfigCache, GuildConfig, TemplateInfo
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
from synapse_async.domain.vocabulary import STAT_NAMES
from synapse_async.pipeline import sql
from synapse_async.pipeline.lake import lake_row, periods, season_at
from synapse_async.rewards.achievements import MemberSnapshot, counter_keys, evaluate
from synapse_async.rewards.formula import Reward, RewardInput, compute_reward, cooldown_active
from synapse_async.rewards.leveling import curve_for, level_change

CooldownKey = tuple[int, ...]
MemberLookup = Callable[[int, int], MemberRef | None]
"""(guild_id, user_id) → the member as the gateway cache knows them (roles, name), or None; in memory only."""


# Parameters of `sql.reward_item("message")` with and without its lake part ($18–$21, counters bulk).
_REWARD_ARGS = 17
_LAKE_ARGS = 21


class NeedsSingles(Exception):
    """A batch would earn an achievement; replay it one event per transaction (exactly like one-by-one)."""


@dataclass(frozen=True, slots=True)
class LevelUp:
    guild_id: int
    user_id: int
    level: int
    gold: int
    channel_id: int | None
    journal_id: int | None = None  # the `level_change` row: what another process re-reads (SPEC §16.3)


@dataclass(frozen=True, slots=True)
class Earned:
    guild_id: int
    user_id: int
    template: TemplateInfo
    channel_id: int | None
    paid: bool
    granted_by: str | None = None  # the granting admin for manual grants ("Granted by …" footer, SPEC §14)
    journal_id: int | None = None  # the `achievement` row: what another process re-reads (SPEC §16.3)


@dataclass(frozen=True, slots=True)
class ManualAward:
    """A manual award to announce after commit (SPEC §14): only created when an applied amount is positive and the
    guild toggle and the member's preference allow it. Amounts are the APPLIED deltas (a clamped part may be 0)."""

    guild_id: int
    user_id: int
    xp: int
    gold: int
    reason: str
    actor_id: str
    channel_id: int | None
    journal_id: int | None = None  # the `manual_award` row: what another process re-reads (SPEC §16.3)


@dataclass(slots=True)
class Effects:
    """Work that may happen only after COMMIT succeeded."""

    cooldowns: dict[CooldownKey, datetime] = field(default_factory=dict)
    level_ups: list[LevelUp] = field(default_factory=list)
    achievements: list[Earned] = field(default_factory=list)
    role_syncs: dict[tuple[int, int], int] = field(default_factory=dict)
    awards: list[ManualAward] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    committed_ns: list[int] = field(default_factory=list)  # received_ns of each processed event (latency)
    full_templates: set[tuple[int, int]] = field(default_factory=set)  # found full: (id, templates_version)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


class CooldownCache:
    """Bounded (`COOLDOWN_CACHE_MAX`) last-paid-message times; updated only after commit (SPEC §9.3)."""

    def __init__(self, maxsize: int) -> None:
        self._entries: LRUCache[CooldownKey, datetime] = LRUCache(maxsize=maxsize)

    def get(self, key: CooldownKey) -> datetime | None:
        return self._entries.get(key)

    def apply(self, updates: Mapping[CooldownKey, datetime]) -> None:
        for key, at in updates.items():
            current = self._entries.get(key)
            if current is None or at > current:
                self._entries[key] = at

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class Cause:
    """Where an XP change comes from: its guild, event time (journal, seasons) and key (level/achievement keys)."""

    guild_id: int
    occurred_at: datetime
    key: str
    season_id: int | None
    announce_channel: int | None
    event: str | None = None  # the key of the event/admin action this change stems from (None: `key` itself)

    @property
    def event_key(self) -> str:
        """Level-ups are announced once per event (SPEC §14), however many changes (rewards) it caused."""
        return self.event if self.event is not None else self.key


@dataclass(slots=True)
class _Member:
    """A member's level state as this transaction has left it (the row stays locked until commit)."""

    level: int
    peak: int


class Tx:
    """Per-transaction scratch state: cooldown overlay, tracked levels, preference and earned-set caches.

    Public so that services (awards, grants, revokes) can run the processor's level and achievement logic inside a
    transaction of their own: they open it on `conn` and pass `singles=True`, so achievements apply in place.
    """

    def __init__(self, conn: asyncpg.Connection, singles: bool) -> None:
        self.conn = conn
        self.singles = singles
        self.effects = Effects()
        self.levels: dict[tuple[int, int], _Member] = {}
        self.prefs: dict[tuple[int, int], tuple[bool, bool, bool]] = {}
        self.announced: dict[tuple[int, int, str], int] = {}  # (guild, user, event key) -> index in level_ups


@dataclass(frozen=True, slots=True)
class Earning:
    """What `Processor.earn` wrote: the achievement journal row, whether the badge row was new, and the member row
    after the rewards (None when the template pays nothing)."""

    journal_id: int
    recorded: bool
    row: Mapping[str, Any] | None


class Processor:
    def __init__(self, cache: ConfigCache, cooldowns: CooldownCache) -> None:
        self._cache = cache
        self.cooldowns = cooldowns
        # Benchmark instrumentation: wall time spent waiting for pipelined message runs, and how many they held.
        self.pipelined_seconds = 0.0
        self.pipelined_events = 0
        # template id -> the guild's `templates_version` under which it was found full (or deactivated). Only valid
        # for that version: a revoke (which frees a slot) and any template change reload the templates, so a
        # template is never skipped forever (SPEC §12.3, §12.4). Bounded by the number of templates.
        self._full: dict[int, int] = {}
        self._members: MemberLookup | None = None

    def bind_members(self, lookup: MemberLookup) -> None:
        """Give the processor the gateway's member cache: a reaction's author is known only by id, yet their roles
        decide role multipliers and no-XP for `reaction_received` (SPEC §9.1, §9.4)."""
        self._members = lookup

    def _member(self, guild_id: int, user_id: int) -> MemberRef:
        found = self._members(guild_id, user_id) if self._members is not None else None
        return found if found is not None else MemberRef(user_id=user_id, display_name=str(user_id), avatar_hash=None)

    def committed(self, effects: Effects) -> None:
        """Learn from a COMMITTED transaction: cooldowns, and templates that turned out to be full."""
        self.cooldowns.apply(effects.cooldowns)
        for template_id, version in effects.full_templates:
            if version >= self._full.get(template_id, 0):
                self._full[template_id] = version

    def template_freed(self, template_id: int) -> None:
        """A committed revoke released a slot of `template_id`: evaluate it again at once (this process; others
        learn it from the template reload the revoke notifies)."""
        self._full.pop(template_id, None)

    def _is_full(self, guild: GuildConfig, template_id: int) -> bool:
        return self._full.get(template_id) == guild.templates_version

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
        """A run of messages, pipelined: rewards are decided in Python (they need no reads), all statements go out
        in one round trip, then level changes and achievement checks follow in order. Any duplicate in the run, or
        an achievement, replays the batch one event per transaction so the outcome equals one-by-one exactly."""
        args: list[tuple[Any, ...]] = []
        plans: list[tuple[MessageCreated, GuildConfig, int | None]] = []
        counts: dict[tuple[int, int, str], int] = {}
        # With `lake.source.message_create` off the run goes out just the same, without the lake part: the journal
        # insert is then the duplicate gate. A run mixing guilds with the source on and off is replayed singly.
        with_lake = self._cache.guild(run[0].guild_id).settings.bool("lake.source.message_create")
        for event in run:
            guild = self._cache.guild(event.guild_id)
            if (guild.info is not None and guild.info.left) or guild.settings.bool(
                "lake.source.message_create"
            ) != with_lake:
                raise NeedsSingles()  # rare: a gated guild, or lake on and off in one run — the general path
            reward, _key, _previous = self._message_reward(tx, guild, event)
            season = season_at(guild, event.occurred_at)
            season_id = season.season_id if season is not None else None
            lake = lake_row(event, guild)
            assert lake is not None
            args.append(
                (
                    event.guild_id, event.author.user_id, "message", event.reward_key, season_id, event.channel_id,
                    None, event.message_id, reward.xp, reward.stars, reward.zero_reason,
                    json.dumps(reward.details, default=str), event.occurred_at, event.author.display_name[:100],
                    event.author.avatar_hash, 1, True, "message_create", lake.source_key, json.dumps(lake.payload),
                    lake.target_id,
                )[: _LAKE_ARGS if with_lake else _REWARD_ARGS]
            )  # fmt: skip
            for period in periods(guild, event.occurred_at) if with_lake else ():
                counts[(event.guild_id, event.author.user_id, period)] = (
                    counts.get((event.guild_id, event.author.user_id, period), 0) + 1
                )
            plans.append((event, guild, season_id))
        started = time.perf_counter()
        rows = await tx.conn.fetchmany(sql.reward_item("message", with_lake=with_lake, with_counters=False), args)
        if any((with_lake and r["lake_id"] is None) or r["journal_id"] is None for r in rows):
            raise NeedsSingles()  # a duplicate: its provisional cooldown may have influenced later items
        for guild_id in {g for g, _, _ in counts}:
            keyed = sorted((u, p, n) for (g, u, p), n in counts.items() if g == guild_id)
            await tx.conn.execute(
                sql.COUNTERS_BULK,
                guild_id,
                "message_create",
                [u for u, _, _ in keyed],
                [p for _, p, _ in keyed],
                [n for _, _, n in keyed],
            )
        self.pipelined_seconds += time.perf_counter() - started
        self.pipelined_events += len(args)
        last: dict[tuple[int, int], tuple[GuildConfig, Mapping[str, Any], Cause]] = {}
        for (event, guild, season_id), row in zip(plans, rows, strict=True):
            tx.effects.processed += 1
            tx.effects.committed_ns.append(event.received_ns)
            cause = Cause(event.guild_id, event.occurred_at, event.reward_key, season_id, event.channel_id)
            await self.after_xp_change(tx, guild, event.author.user_id, row, cause, achievements=False)
            last[(event.guild_id, event.author.user_id)] = (guild, row, cause)
        # Achievement inputs only grow along the event path, so if a member's FINAL state in this run earns
        # nothing, no intermediate state did either: one evaluation per member instead of one per message. If
        # something is earned, after_xp_change raises NeedsSingles and the batch is replayed one by one.
        for (_guild_id, user_id), (guild, final, cause) in last.items():
            await self.after_xp_change(tx, guild, user_id, final, cause)

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
                    json.dumps(row.payload),
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
        last = _latest(tx.effects.cooldowns.get(key), self.cooldowns.get(key))
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
            json.dumps(reward.details, default=str),
            event.occurred_at,
            earner.display_name[:100],
            earner.avatar_hash,
            stat_increment,
            active,
        )
        if row is None or row["journal_id"] is None:
            return False
        cause = Cause(event.guild_id, event.occurred_at, key, season_id, announce)
        await self.after_xp_change(tx, guild, earner.user_id, row, cause)
        return True

    async def relevel_member(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], job_id: str
    ) -> bool:
        """SPEC §10.3 relevel: recompute the level from XP on the current curve; raise the peak without paying gold,
        journal `relevel:<job>:<user>`, no announcements; achievements earned without rewards. True if it changed."""
        settings = guild.settings
        curve = curve_for(settings.int("leveling.level_base"), settings.float("leveling.level_factor"))
        old, peak = int(row["level"]), int(row["peak_level"])
        new = curve.level(int(row["xp"]))
        if new == old:
            return False
        await tx.conn.execute(sql.LEVEL_UPDATE, guild.guild_id, user_id, new, new, 0)
        key = f"relevel:{job_id}:{user_id}"
        details = json.dumps({"from": old, "to": new, "bonus": 0})
        await tx.conn.fetchval(
            sql.JOURNAL_PLAIN, guild.guild_id, user_id, "level_change", key, None, 0, details, datetime.now(UTC), None
        )
        tx.levels[(guild.guild_id, user_id)] = _Member(new, max(peak, new))
        tx.effects.role_syncs[(guild.guild_id, user_id)] = new
        cause = Cause(guild.guild_id, datetime.now(UTC), key, None, None)
        await self.after_xp_change(tx, guild, user_id, {**row, "level": new}, cause, pay_gold=False)
        return True

    async def after_xp_change(
        self,
        tx: Tx,
        guild: GuildConfig,
        user_id: int,
        row: Mapping[str, Any],
        cause: Cause,
        *,
        pay_gold: bool = True,
        achievements: bool = True,
    ) -> None:
        """Level change (§10.2) and achievements (§12.4) after the atomic update that returned `row`.

        `achievements=False` applies the level change only: a revoke lowers XP, so the only template an evaluation could
        newly earn there is the one just revoked (its slot was freed), which §12.4 defers to the member's next change.
        """
        await self._level(tx, guild, user_id, row, cause, pay_gold)
        # Manual templates never fire, but they stay in the evaluated list: a manual tier still gates the higher
        # tiers of its series (SPEC §12.1), so filtering them out would let tier 2 be earned without tier 1.
        templates = guild.templates
        if not achievements or all(t.trigger_type == "manual" for t in templates):
            return
        for _ in range(3):  # rewards may change XP again: at most 3 passes (SPEC §12.4)
            snapshot = await self._snapshot(tx, guild, user_id, row, templates)
            earned_ids = frozenset(r["template_id"] for r in await tx.conn.fetch(sql.EARNED, cause.guild_id, user_id))
            full = frozenset(t.template_id for t in templates if self._is_full(guild, t.template_id))
            newly = evaluate(templates, snapshot, earned_ids, full_templates=full)
            if not newly:
                return
            if not tx.singles:
                raise NeedsSingles()
            changed = False
            for template in newly:
                new_row = await self._earn(tx, guild, user_id, template, cause, pay_rewards=pay_gold)
                if new_row is not None:
                    row, changed = new_row, True
            if not changed:
                return

    async def _level(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], cause: Cause, pay_gold: bool
    ) -> None:
        settings = guild.settings
        curve = curve_for(settings.int("leveling.level_base"), settings.float("leveling.level_factor"))
        member = tx.levels.setdefault((cause.guild_id, user_id), _Member(int(row["level"]), int(row["peak_level"])))
        change = level_change(
            curve,
            new_xp=int(row["xp"]),
            old_level=member.level,
            old_peak=member.peak,
            gold_per_level_up=settings.int("leveling.gold_per_level_up"),
            pay_gold=pay_gold,
        )
        if not change.changed:
            return
        member.level, member.peak = change.new_level, change.new_peak
        gold_after = await tx.conn.fetchval(
            sql.LEVEL_UPDATE, cause.guild_id, user_id, change.new_level, change.new_peak, change.gold_bonus
        )
        details = json.dumps({"from": change.old_level, "to": change.new_level, "bonus": change.gold_bonus})
        lvl_key = f"{cause.key}#lvl"
        journal_id = await tx.conn.fetchval(
            sql.JOURNAL_PLAIN,
            cause.guild_id,
            user_id,
            "level_change",
            lvl_key,
            cause.season_id,
            0,
            details,
            cause.occurred_at,
            None,
        )
        if change.gold_bonus > 0:
            await tx.conn.execute(
                sql.LEDGER,
                cause.guild_id,
                user_id,
                change.gold_bonus,
                gold_after,
                "level_up",
                journal_id,
                None,
                lvl_key,
                None,
            )
            if cause.season_id is not None:
                await tx.conn.execute(sql.SEASON_GOLD, cause.season_id, user_id, cause.guild_id, change.gold_bonus)
        tx.effects.role_syncs[(cause.guild_id, user_id)] = change.new_level
        if change.announce and settings.bool("announce.level_up") and (await self._prefs(tx, cause, user_id))[0]:
            self._announce_level_up(
                tx,
                cause,
                LevelUp(
                    cause.guild_id, user_id, change.new_level, change.gold_bonus, cause.announce_channel, journal_id
                ),
            )

    @staticmethod
    def _announce_level_up(tx: Tx, cause: Cause, level_up: LevelUp) -> None:
        """One level-up announcement per event (SPEC §14): when an achievement reward of the same event crosses
        another level, the event's announcement is raised to the new level and carries all the gold paid."""
        slot = (level_up.guild_id, level_up.user_id, cause.event_key)
        index = tx.announced.get(slot)
        if index is None:
            tx.announced[slot] = len(tx.effects.level_ups)
            tx.effects.level_ups.append(level_up)
            return
        first = tx.effects.level_ups[index]
        tx.effects.level_ups[index] = LevelUp(
            first.guild_id,
            first.user_id,
            max(first.level, level_up.level),
            first.gold + level_up.gold,
            first.channel_id,
        )

    async def _prefs(self, tx: Tx, cause: Cause, user_id: int) -> tuple[bool, bool, bool]:
        return await self.preferences(tx, cause.guild_id, user_id)

    @staticmethod
    async def preferences(tx: Tx, guild_id: int, user_id: int) -> tuple[bool, bool, bool]:
        """The member's (level-up, achievement, award) announcement preferences, read once per transaction; no row
        means all on (SPEC §14)."""
        key = (guild_id, user_id)
        if key not in tx.prefs:
            row = await tx.conn.fetchrow(sql.PREFERENCES, guild_id, user_id)
            tx.prefs[key] = (True, True, True) if row is None else (row[0], row[1], row[2])
        return tx.prefs[key]

    async def _snapshot(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], templates: Sequence[TemplateInfo]
    ) -> MemberSnapshot:
        guild_id = guild.guild_id
        active_season = guild.active_season.season_id if guild.active_season is not None else None
        keys = sorted(counter_keys(templates, active_season))
        counters: dict[tuple[str, str], int] = {}
        if keys:
            for r in await tx.conn.fetch(sql.COUNTERS, guild_id, user_id, [k[0] for k in keys], [k[1] for k in keys]):
                counters[(r["event_type"], r["period"])] = int(r["count"])
        season_row = (
            await tx.conn.fetchrow(sql.SEASON_ROW, active_season, user_id) if active_season is not None else None
        )
        return MemberSnapshot(
            xp=int(row["xp"]),
            level=tx.levels.get((guild_id, user_id), _Member(int(row["level"]), 0)).level,
            lifetime_stars=int(row["lifetime_stars"]),
            stats={s: int(row[s]) for s in STAT_NAMES},
            season_stats={s: int(season_row[f"s_{s}"]) for s in STAT_NAMES} if season_row is not None else None,
            season_stars=int(season_row["s_stars"]) if season_row is not None else None,
            counters=counters,
            season_id=active_season,
        )

    async def _earn(
        self, tx: Tx, guild: GuildConfig, user_id: int, template: TemplateInfo, cause: Cause, *, pay_rewards: bool
    ) -> Mapping[str, Any] | None:
        """Earn one template automatically (max_earners claimed atomically); return the new member row if XP moved."""
        if await tx.conn.fetchval(sql.CLAIM_TEMPLATE, template.template_id) is None:
            # Full (or deactivated): remember it for this templates load, so later evaluations skip it instead of
            # replaying batches one by one for a badge nobody can earn until a revoke or template change.
            tx.effects.full_templates.add((template.template_id, guild.templates_version))
            return None  # full or deactivated meanwhile: stops awarding
        key = f"{cause.key}#ach:{template.template_id}"
        earning = await self.earn(tx, guild, user_id, template, cause, key=key, pay_rewards=pay_rewards)
        return earning.row if earning is not None else None

    async def earn(
        self,
        tx: Tx,
        guild: GuildConfig,
        user_id: int,
        template: TemplateInfo,
        cause: Cause,
        *,
        key: str,
        pay_rewards: bool = True,
        source: str = "auto",
        granted_by: str | None = None,
    ) -> Earning | None:
        """Record a template whose `earned_count` the caller has ALREADY claimed (`sql.CLAIM_TEMPLATE`) and pay it.

        One definition for automatic earning and manual grants (`source = 'grant'`, `granted_by` = the admin, also
        written as the journal's and ledger's actor): journal `achievement` keyed `key`, the badge row, ledger,
        season stats and the level change (§10.2). None when `key` is already journaled — nothing is written then,
        and a caller that claimed must roll back. `recorded = False` means the member already had the badge (only a
        writer that does not lock the member row first can race here); a grant then rolls back.
        """
        xp, gold = (template.xp_reward, template.gold_reward) if pay_rewards else (0, 0)
        details = json.dumps({"template_id": template.template_id, "gold": gold})
        journal_id = await tx.conn.fetchval(
            sql.JOURNAL_PLAIN,
            cause.guild_id,
            user_id,
            "achievement",
            key,
            cause.season_id,
            xp,
            details,
            cause.occurred_at,
            granted_by,
        )
        if journal_id is None:
            return None
        recorded = await tx.conn.fetchval(
            sql.EARN, cause.guild_id, user_id, template.template_id, source, granted_by, journal_id
        )
        if pay_rewards and guild.settings.bool("announce.achievements") and (await self._prefs(tx, cause, user_id))[1]:
            channel = template.announce_channel_id or cause.announce_channel
            tx.effects.achievements.append(
                Earned(cause.guild_id, user_id, template, channel, True, granted_by, journal_id)
            )
        if xp == 0 and gold == 0:
            return Earning(journal_id, recorded is not None, None)
        row = await tx.conn.fetchrow(sql.ADD_XP_GOLD, cause.guild_id, user_id, xp, gold)
        assert row is not None
        if gold > 0:
            await tx.conn.execute(
                sql.LEDGER, cause.guild_id, user_id, gold, row["gold"], "achievement", journal_id, granted_by, key, None
            )
        if cause.season_id is not None:
            if xp:
                await tx.conn.execute(sql.SEASON_XP, cause.season_id, user_id, cause.guild_id, xp)
            if gold:
                await tx.conn.execute(sql.SEASON_GOLD, cause.season_id, user_id, cause.guild_id, gold)
        ach_cause = Cause(
            cause.guild_id, cause.occurred_at, key, cause.season_id, cause.announce_channel, event=cause.event_key
        )
        await self._level(tx, guild, user_id, row, ach_cause, True)
        return Earning(journal_id, recorded is not None, dict(row))
