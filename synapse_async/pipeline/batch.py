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
recovered from the final row minus what the member's later messages of the batch added (`MessageBatch.afters`).
Members and seasons are sent sorted by (guild, user): rows of several members are updated in ascending user id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from synapse_async.domain.events import MessageCreated
from synapse_async.pipeline.lake import LakeRow
from synapse_async.rewards.formula import Reward

MemberKey = tuple[int, int]
"""(guild_id, user_id)."""

MESSAGE_FIELDS = (
    "guild_id, user_id, channel_id, message_id, reward_key, season_id, xp, stars, zero_reason, details, occurred_at,"
    " lake source_key, lake target_id, lake payload"
)
"""One message of `MessageBatch.arguments()[0]`, positionally (the lake's three are null without a lake row)."""


def json_text(value: object) -> str:
    """JSON text for a jsonb parameter, by orjson (ten times json.dumps' speed on a lake payload). A value JSON has
    no type for becomes its text and a non-text key its text, as the journal's `json.dumps(default=str)` did."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


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

    def arguments(self) -> tuple[str, str, str, str]:
        """The 4 parameters of `sql.MESSAGE_BATCH`, each ONE JSON array of positional rows (`MESSAGE_FIELDS`, …).

        One JSON document per table instead of one array per column: asyncpg encodes a Python list element by
        element (type checks, a datetime's arithmetic, a json.dumps for each payload), which cost more of the event
        loop than everything else of the run; orjson writes the whole run at C speed (payloads and details as
        nested objects, times as RFC 3339 with their offset), and PostgreSQL reads it with fewer cycles than the
        arrays too (measured in docs/decisions.md, "Lean hot path"). Snowflakes stay exact: JSON numbers are
        read back as `numeric` and cast to bigint.
        """
        messages = [
            (
                p.event.guild_id,
                p.event.author.user_id,
                p.event.channel_id,
                p.event.message_id,
                p.event.reward_key,
                p.season_id,
                p.reward.xp,
                p.reward.stars,
                p.reward.zero_reason,
                p.reward.details,
                p.event.occurred_at,
                *((p.lake.source_key, p.lake.target_id, p.lake.payload) if p.lake is not None else (None, None, None)),
            )
            for p in self.plans
        ]
        counts: dict[tuple[int, int, str], int] = {}
        seasons: dict[tuple[int, int, int], _SeasonSum] = {}
        for plan in self.plans:
            for period in plan.periods:
                counts[(*plan.member, period)] = counts.get((*plan.member, period), 0) + 1
            if plan.season_id is not None:
                season = seasons.setdefault(
                    (plan.event.guild_id, plan.event.author.user_id, plan.season_id), _SeasonSum()
                )
                season.xp += plan.reward.xp
                season.stars += plan.reward.stars
                season.messages += 1
        counters = [(g, u, period, n) for (g, u, period), n in sorted(counts.items())]
        members = [
            (g, u, m.display_name, m.avatar_hash, m.xp, m.stars, m.messages, m.last_active)
            for (g, u), m in sorted(self._members.items())
        ]
        season_rows = [(s, u, g, t.stars, t.xp, t.messages) for (g, u, s), t in sorted(seasons.items())]
        return (
            json_text(messages),
            json_text(counters),
            json_text(members),
            json_text(season_rows),
        )

    def afters(self, finals: Mapping[MemberKey, Mapping[str, Any]]) -> list[After]:
        """Per message (event order): its member's final row and what the member's LATER messages of the batch
        added to it; `row_after` turns one into the member row as it was right after that message. The row itself
        is built only where it is needed (a level decision), not for every message of a burst."""
        later: dict[MemberKey, tuple[int, int, int]] = {}  # xp, stars, messages added by the member's LATER messages
        out: list[After] = []
        for plan in reversed(self.plans):
            member = plan.member
            xp, stars, messages = later.get(member, (0, 0, 0))
            out.append((finals[member], xp, stars, messages))
            later[member] = (xp + plan.reward.xp, stars + plan.reward.stars, messages + 1)
        out.reverse()
        return out


After = tuple[Mapping[str, Any], int, int, int]
"""(final row, xp, stars, messages added by later messages of the batch): `MessageBatch.afters`."""


def xp_after(after: After) -> int:
    """The member's XP right after the message (what its level is decided at)."""
    return int(after[0]["xp"]) - after[1]


def row_after(after: After) -> dict[str, Any]:
    """The member row as it was right after the message: the final row minus what came later."""
    final, xp, stars, messages = after
    return {
        **final,
        "xp": int(final["xp"]) - xp,
        "lifetime_stars": int(final["lifetime_stars"]) - stars,
        "messages_sent": int(final["messages_sent"]) - messages,
    }
