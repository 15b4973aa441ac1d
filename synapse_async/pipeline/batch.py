"""A run of messages as arrays for ONE set-based statement (`sql.MESSAGE_BATCH`), and back (SPEC §8.1). Pure.

One by one, each message's reward item increments its member row and season-stats row and each lake row its
counters. Those increments commute, so the batch sums them per member, per (season, member) and per counter in
Python and writes every row once; the result is the same because:
- members: xp, stars and `messages_sent` are plain sums; `last_active_at` keeps the greatest time; the display
  name is the last one that is not the bare user id (the id stands for "not yet known" and never replaces a
  name), the avatar the last one given;
- season stats: `xp = GREATEST(xp + delta, 0)` step by step equals one clamped sum, because stored season XP is
  never negative and rewards never are (`rewards.formula.Reward`);
- counters: plain sums.
What one by one would have READ in between — the member row after each message, for its level change — is
recovered from the final row minus what the member's later messages of the batch added (`MessageBatch.rows`).
Members and seasons are sent sorted by (guild, user): rows of several members are updated in ascending user id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synapse_async.domain.events import MessageCreated
from synapse_async.pipeline.lake import LakeRow
from synapse_async.rewards.formula import Reward

MemberKey = tuple[int, int]
"""(guild_id, user_id)."""


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message of the run with what was decided for it in Python: reward, season, lake row and periods."""

    event: MessageCreated
    reward: Reward
    season_id: int | None
    lake: LakeRow | None  # None when the guild's `lake.source.message_create` is off
    periods: Sequence[str] = ()  # the lake row's counter periods (empty without a lake row)

    @property
    def member(self) -> MemberKey:
        return (self.event.guild_id, self.event.author.user_id)


@dataclass(slots=True)
class _MemberSum:
    xp: int = 0
    stars: int = 0
    messages: int = 0
    last_active: datetime | None = None
    display_name: str = ""
    avatar_hash: str | None = None


@dataclass(slots=True)
class _SeasonSum:
    xp: int = 0
    stars: int = 0
    messages: int = 0


@dataclass(slots=True)
class MessageBatch:
    """The arrays of `sql.MESSAGE_BATCH` for a run of planned messages, in event order where order matters."""

    plans: Sequence[PlannedMessage]
    _members: dict[MemberKey, _MemberSum] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for plan in self.plans:
            event, reward = plan.event, plan.reward
            total = self._members.setdefault(plan.member, _MemberSum(display_name=str(event.author.user_id)))
            total.xp += reward.xp
            total.stars += reward.stars
            total.messages += 1
            total.last_active = (
                event.occurred_at if total.last_active is None else max(total.last_active, event.occurred_at)
            )
            name = event.author.display_name[:100]
            if name != str(event.author.user_id):
                total.display_name = name
            if event.author.avatar_hash is not None:
                total.avatar_hash = event.author.avatar_hash

    @property
    def lake_rows(self) -> int:
        """How many lake rows the statement must insert for every event of the run to be new."""
        return sum(1 for p in self.plans if p.lake is not None)

    def arguments(self) -> tuple[list[Any], ...]:
        """The 36 parameters of `sql.MESSAGE_BATCH`: lake rows, counters, journal rows, members, season stats."""
        lakes = [(p.event.guild_id, p.lake) for p in self.plans if p.lake is not None]
        counts: dict[tuple[int, int, str], int] = {}
        for plan in self.plans:
            for period in plan.periods:
                counts[(*plan.member, period)] = counts.get((*plan.member, period), 0) + 1
        seasons: dict[tuple[int, int, int], _SeasonSum] = {}
        for plan in self.plans:
            if plan.season_id is not None:
                season = seasons.setdefault(
                    (plan.event.guild_id, plan.event.author.user_id, plan.season_id), _SeasonSum()
                )
                season.xp += plan.reward.xp
                season.stars += plan.reward.stars
                season.messages += 1
        members = sorted(self._members.items())
        counters = sorted(counts.items())
        season_rows = sorted(seasons.items())
        return (
            # lake: guild, user, channel, target, source key, payload, occurred_at
            [g for g, _ in lakes],
            [row.user_id for _, row in lakes],
            [row.channel_id for _, row in lakes],
            [row.target_id for _, row in lakes],
            [row.source_key for _, row in lakes],
            [json.dumps(row.payload) for _, row in lakes],
            [row.occurred_at for _, row in lakes],
            # counters: guild, user, period, count
            [g for (g, _, _), _ in counters],
            [u for (_, u, _), _ in counters],
            [p for (_, _, p), _ in counters],
            [n for _, n in counters],
            # journal: guild, user, key, season, channel, ref, xp, stars, zero reason, details, occurred_at
            [p.event.guild_id for p in self.plans],
            [p.event.author.user_id for p in self.plans],
            [p.event.reward_key for p in self.plans],
            [p.season_id for p in self.plans],
            [p.event.channel_id for p in self.plans],
            [p.event.message_id for p in self.plans],
            [p.reward.xp for p in self.plans],
            [p.reward.stars for p in self.plans],
            [p.reward.zero_reason for p in self.plans],
            [json.dumps(p.reward.details, default=str) for p in self.plans],
            [p.event.occurred_at for p in self.plans],
            # members: guild, user, name, avatar, xp, stars, messages, last active
            [g for (g, _), _ in members],
            [u for (_, u), _ in members],
            [m.display_name for _, m in members],
            [m.avatar_hash for _, m in members],
            [m.xp for _, m in members],
            [m.stars for _, m in members],
            [m.messages for _, m in members],
            [m.last_active for _, m in members],
            # season stats: season, user, guild, stars, xp, messages
            [s for (_, _, s), _ in season_rows],
            [u for (_, u, _), _ in season_rows],
            [g for (g, _, _), _ in season_rows],
            [t.stars for _, t in season_rows],
            [t.xp for _, t in season_rows],
            [t.messages for _, t in season_rows],
        )

    def rows(self, finals: Mapping[MemberKey, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The member row as it was right after each message (event order), from each member's final row."""
        later: dict[MemberKey, list[int]] = {}  # xp, stars, messages added by the member's LATER messages
        out: list[dict[str, Any]] = []
        for plan in reversed(self.plans):
            xp, stars, messages = later.setdefault(plan.member, [0, 0, 0])
            final = finals[plan.member]
            out.append(
                {
                    **final,
                    "xp": int(final["xp"]) - xp,
                    "lifetime_stars": int(final["lifetime_stars"]) - stars,
                    "messages_sent": int(final["messages_sent"]) - messages,
                }
            )
            later[plan.member] = [xp + plan.reward.xp, stars + plan.reward.stars, messages + 1]
        out.reverse()
        return out
