"""The one engine for money and levels (SPEC §10.2, §10.3, §12.3, §12.4, §14): level change, peak rule,
achievement evaluation and grant — for events, admin actions and jobs alike (§27 item 4).

Every writer first applies its own atomic update (a reward item, a manual award, a grant's claim, a relevel batch)
and then calls the engine on the member row that update returned, inside the same transaction (`Tx`). The engine
writes the level change with its journal and gold-ledger rows, evaluates the guild's achievement templates and
pays what was earned, and records what must happen after COMMIT in `tx.effects`. It performs no I/O outside that
transaction and never publishes: the caller publishes the effects once it has committed.

The engine also remembers, per templates load, which templates turned out to be full, so that later evaluations
skip them instead of replaying batches one by one for a badge nobody can earn until a revoke or template change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from synapse_async.domain.vocabulary import STAT_NAMES
from synapse_async.ledger import sql
from synapse_async.ledger.effects import Earned, Effects, LevelUp
from synapse_async.ledger.state import AnnounceSlot, Cause, Earning, MemberLevel, NeedsSingles, Preferences, Tx
from synapse_async.rewards.achievements import MemberSnapshot, counter_keys, evaluate
from synapse_async.rewards.config import GuildConfig, TemplateInfo
from synapse_async.rewards.leveling import level_change

_ACHIEVEMENT_PASSES = 3
"""Achievement rewards may change XP again: at most this many evaluation passes (SPEC §12.4)."""


class LevelEngine:
    """Level changes and achievements inside a writer's transaction; one instance per process (shared state:
    the templates found full)."""

    def __init__(self) -> None:
        # template id -> the guild's `templates_version` under which it was found full (or deactivated). Only valid
        # for that version: a revoke (which frees a slot) and any template change reload the templates, so a
        # template is never skipped forever (SPEC §12.3, §12.4). Bounded by the number of templates.
        self._full: dict[int, int] = {}

    # --- after commit --------------------------------------------------------------------------------------------
    def committed(self, effects: Effects) -> None:
        """Learn from a COMMITTED transaction which templates turned out to be full."""
        for template_id, version in effects.full_templates:
            if version >= self._full.get(template_id, 0):
                self._full[template_id] = version

    def template_freed(self, template_id: int) -> None:
        """A committed revoke released a slot of `template_id`: evaluate it again at once (this process; others
        learn it from the template reload the revoke notifies)."""
        self._full.pop(template_id, None)

    def _is_full(self, guild: GuildConfig, template_id: int) -> bool:
        return self._full.get(template_id) == guild.templates_version

    # --- inside a transaction ------------------------------------------------------------------------------------
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

        `achievements=False` applies the level change only: a revoke lowers XP, so the only template an evaluation
        could newly earn there is the one just revoked (its slot was freed), which §12.4 defers to the member's next
        change. In a batch (`tx.singles` False) an earned achievement raises `NeedsSingles`.
        """
        await self._level(tx, guild, user_id, row, cause, pay_gold)
        # Manual templates never fire, but they stay in the evaluated list: a manual tier still gates the higher
        # tiers of its series (SPEC §12.1), so filtering them out would let tier 2 be earned without tier 1.
        templates = guild.templates
        if not achievements or all(t.trigger_type == "manual" for t in templates):
            return
        for _ in range(_ACHIEVEMENT_PASSES):
            snapshot = await self._snapshot(tx, guild, user_id, row, templates)
            earned_ids = await sql.earned_template_ids(tx.conn, guild_id=cause.guild_id, user_id=user_id)
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

    async def relevel_member(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], job_id: str
    ) -> bool:
        """SPEC §10.3 relevel: recompute the level from XP on the current curve; raise the peak without paying gold,
        journal `relevel:<job>:<user>`, no announcements; achievements earned without rewards. True if it changed."""
        old, peak = int(row["level"]), int(row["peak_level"])
        new = guild.curve.level(int(row["xp"]))
        if new == old:
            return False
        gid = guild.guild_id
        await sql.set_level(tx.conn, guild_id=gid, user_id=user_id, level=new, peak=new, gold_bonus=0)
        key = f"relevel:{job_id}:{user_id}"
        now = datetime.now(UTC)
        await sql.journal(
            tx.conn,
            guild_id=gid,
            user_id=user_id,
            event_type="level_change",
            key=key,
            season_id=None,
            xp_delta=0,
            details={"from": old, "to": new, "bonus": 0},
            occurred_at=now,
        )
        tx.levels[(gid, user_id)] = MemberLevel(new, max(peak, new))
        tx.effects.role_syncs[(gid, user_id)] = new
        cause = Cause(gid, now, key, None, None)
        await self.after_xp_change(tx, guild, user_id, {**row, "level": new}, cause, pay_gold=False)
        return True

    async def _level(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], cause: Cause, pay_gold: bool
    ) -> None:
        settings = guild.settings
        slot = (cause.guild_id, user_id)
        member = tx.levels.get(slot)
        if member is None:
            member = tx.levels[slot] = MemberLevel(int(row["level"]), int(row["peak_level"]))
        change = level_change(
            guild.curve,
            new_xp=int(row["xp"]),
            old_level=member.level,
            old_peak=member.peak,
            gold_per_level_up=settings.int("leveling.gold_per_level_up"),
            pay_gold=pay_gold,
        )
        if not change.changed:
            return
        tx.levels[slot] = MemberLevel(change.new_level, change.new_peak)
        gold_after = await sql.set_level(
            tx.conn,
            guild_id=cause.guild_id,
            user_id=user_id,
            level=change.new_level,
            peak=change.new_peak,
            gold_bonus=change.gold_bonus,
        )
        lvl_key = f"{cause.key}#lvl"
        journal_id = await sql.journal(
            tx.conn,
            guild_id=cause.guild_id,
            user_id=user_id,
            event_type="level_change",
            key=lvl_key,
            season_id=cause.season_id,
            xp_delta=0,
            details={"from": change.old_level, "to": change.new_level, "bonus": change.gold_bonus},
            occurred_at=cause.occurred_at,
        )
        if change.gold_bonus > 0:
            await sql.gold_entry(
                tx.conn,
                guild_id=cause.guild_id,
                user_id=user_id,
                delta=change.gold_bonus,
                balance_after=gold_after,
                reason="level_up",
                key=lvl_key,
                journal_id=journal_id,
            )
            if cause.season_id is not None:
                await sql.season_gold(
                    tx.conn, guild_id=cause.guild_id, season_id=cause.season_id, user_id=user_id, gold=change.gold_bonus
                )
        tx.effects.role_syncs[slot] = change.new_level
        if (
            change.announce
            and settings.bool("announce.level_up")
            and (await self.preferences(tx, cause.guild_id, user_id)).level_up
        ):
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
        slot = AnnounceSlot(level_up.guild_id, level_up.user_id, cause.event_key)
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

    @staticmethod
    async def preferences(tx: Tx, guild_id: int, user_id: int) -> Preferences:
        """The member's announcement preferences, read once per transaction; no row means all on (SPEC §14)."""
        key = (guild_id, user_id)
        found = tx.prefs.get(key)
        if found is None:
            found = tx.prefs[key] = await sql.preferences(tx.conn, guild_id=guild_id, user_id=user_id)
        return found

    async def _snapshot(
        self, tx: Tx, guild: GuildConfig, user_id: int, row: Mapping[str, Any], templates: Sequence[TemplateInfo]
    ) -> MemberSnapshot:
        guild_id = guild.guild_id
        active_season = guild.active_season.season_id if guild.active_season is not None else None
        keys = sorted(counter_keys(templates, active_season))
        counters = await sql.counters(tx.conn, guild_id=guild_id, user_id=user_id, keys=keys)
        season_row = (
            await sql.season_row(tx.conn, guild_id=guild_id, season_id=active_season, user_id=user_id)
            if active_season is not None
            else None
        )
        tracked = tx.levels.get((guild_id, user_id))
        return MemberSnapshot(
            xp=int(row["xp"]),
            level=tracked.level if tracked is not None else int(row["level"]),
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
        if not await sql.claim_template(tx.conn, guild_id=guild.guild_id, template_id=template.template_id):
            # Full (or deactivated): remember it for this templates load, so later evaluations skip it instead of
            # replaying batches one by one for a badge nobody can earn until a revoke or template change.
            tx.effects.full_templates.add((template.template_id, guild.templates_version))
            return None
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
        """Record a template whose `earned_count` the caller has ALREADY claimed (`sql.claim_template`) and pay it.

        One definition for automatic earning and manual grants (`source = 'grant'`, `granted_by` = the admin, also
        written as the journal's and ledger's actor): journal `achievement` keyed `key`, the badge row, ledger,
        season stats and the level change (§10.2). None when `key` is already journaled — nothing is written then,
        and a caller that claimed must roll back. `recorded = False` means the member already had the badge (only a
        writer that does not lock the member row first can race here); a grant then rolls back.
        """
        gid = cause.guild_id
        xp, gold = (template.xp_reward, template.gold_reward) if pay_rewards else (0, 0)
        journal_id = await sql.journal(
            tx.conn,
            guild_id=gid,
            user_id=user_id,
            event_type="achievement",
            key=key,
            season_id=cause.season_id,
            xp_delta=xp,
            details={"template_id": template.template_id, "gold": gold},
            occurred_at=cause.occurred_at,
            actor_id=granted_by,
        )
        if journal_id is None:
            return None
        recorded = await sql.record_badge(
            tx.conn,
            guild_id=gid,
            user_id=user_id,
            template_id=template.template_id,
            source=source,
            granted_by=granted_by,
            journal_id=journal_id,
        )
        if (
            pay_rewards
            and guild.settings.bool("announce.achievements")
            and (await self.preferences(tx, gid, user_id)).achievements
        ):
            channel = template.announce_channel_id or cause.announce_channel
            tx.effects.achievements.append(Earned(gid, user_id, template, channel, True, granted_by, journal_id))
        if xp == 0 and gold == 0:
            return Earning(journal_id, recorded, None)
        row = await sql.add_xp_gold(tx.conn, guild_id=gid, user_id=user_id, xp=xp, gold=gold)
        assert row is not None
        if gold > 0:
            await sql.gold_entry(
                tx.conn,
                guild_id=gid,
                user_id=user_id,
                delta=gold,
                balance_after=int(row["gold"]),
                reason="achievement",
                key=key,
                journal_id=journal_id,
                actor_id=granted_by,
            )
        if cause.season_id is not None:
            if xp:
                await sql.season_xp(tx.conn, guild_id=gid, season_id=cause.season_id, user_id=user_id, xp=xp)
            if gold:
                await sql.season_gold(tx.conn, guild_id=gid, season_id=cause.season_id, user_id=user_id, gold=gold)
        ach_cause = Cause(gid, cause.occurred_at, key, cause.season_id, cause.announce_channel, event=cause.event_key)
        await self._level(tx, guild, user_id, row, ach_cause, True)
        return Earning(journal_id, recorded, dict(row))
