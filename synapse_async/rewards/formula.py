"""The reward formula of SPEC §9.4: one pure function from a reward item to `(xp, stars, zero_reason)`.

The caller (the reward pipeline) does all I/O first: it reads the pair count, reactor count and voice ticks from
the journal, works out the cooldown from its cache, and hands the numbers in as a `RewardInput`. Keeping the
decision free of I/O and of the wall clock makes it replayable — an event buffered through an outage or delivered
twice is judged exactly as it would have been the first time — and lets the whole rule set be tested without a
database.

The order of checks is the spec's and matters: a no-XP channel reports `no_xp` even for a too-short message, a
too-short message reports `too_short` even during a cooldown, and so on; the first failing check names the
`zero_reason`. A resolved multiplier of 0 is a configuration choice, not an anti-gaming verdict, so it yields 0
for that currency with no reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from synapse_async.domain.metadata import MessageMetadata
from synapse_async.domain.vocabulary import REWARD_KINDS, ZERO_REASONS, RewardKind, ZeroReason
from synapse_async.rewards.config import GuildConfig
from synapse_async.rewards.multipliers import is_no_xp, resolve_channel_multiplier, role_multiplier
from synapse_async.rewards.quality import quality

__all__ = [
    "EPSILON",
    "REWARD_KINDS",
    "ZERO_REASONS",
    "Reward",
    "RewardInput",
    "RewardKind",
    "ZeroReason",
    "compute_reward",
    "cooldown_active",
]

EPSILON: Final = 1e-9
"""Added before flooring so products such as 15 × 1.2 × … that land a hair below an integer in binary floating
point still floor to that integer (§9.4)."""

_REACTIONS: Final = frozenset({"reaction_given", "reaction_received"})


@dataclass(frozen=True, slots=True)
class RewardInput:
    """One reward item with every fact the formula needs, read by the caller beforehand (§9.3).

    `channel_id` is the channel or thread of the event and `parent_id` the thread's parent (None when not a
    thread); `earner_role_ids` are the roles of the member being paid. Counts are **paid** journal items inside
    the open windows of §9.3, excluding the item itself.
    """

    kind: RewardKind
    channel_id: int | None
    parent_id: int | None
    earner_role_ids: tuple[int, ...]
    meta: MessageMetadata | None = None
    """Messages only: the metadata the quality modifier and the too-short check read."""
    cooldown_active: bool = False
    """Messages only: `0 ≤ occurred_at − last_paid < cooldown.seconds`, see `cooldown_active()`."""
    author_unknown: bool = False
    """Reactions: the message author could not be resolved (§7.4)."""
    reactor_id: int | None = None
    author_id: int | None = None
    author_is_bot: bool = False
    pair_count: int = 0
    """Reactions: `p`, paid items of the same kind between this reactor and author within the pair window."""
    reactor_count: int = 0
    """`reaction_received`: `r`, paid `reaction_received` items on the message."""
    message_age_seconds: float | None = None
    """`reaction_received`: reaction `occurred_at` − the message's snowflake time; None means unknown (no cap)."""
    paid_ticks_last_hour: int = 0
    """Voice ticks: paid ticks in the 60 minutes before the slot."""


@dataclass(frozen=True, slots=True)
class Reward:
    """The outcome: never negative; `zero_reason` set only when an anti-gaming rule or no-XP zeroed the item.

    `details` are the internal factors for the journal's `details` column (never public): base amounts, quality,
    pair decay, channel and role multipliers with the matched §9.1 rule, and whether the velocity cap applied.
    """

    xp: int
    stars: int
    zero_reason: ZeroReason | None
    details: dict[str, object] = field(default_factory=dict)


def cooldown_active(occurred_at: datetime, last_paid_at: datetime | None, seconds: int) -> bool:
    """The message cooldown test of §9.3: `0 ≤ occurred_at − last_paid_at < seconds`, in event time.

    Event time (never the wall clock) makes a replayed or buffered message land exactly where it did originally.
    A paid message *later* than this one (negative difference, e.g. out-of-order delivery) does not block it, and
    `seconds` 0 turns the cooldown off. Both datetimes must be timezone-aware (UTC), as every event time is.
    """
    if seconds <= 0 or last_paid_at is None:
        return False
    elapsed = occurred_at - last_paid_at
    return timedelta(0) <= elapsed < timedelta(seconds=seconds)


def _floor(amount: float) -> int:
    """`floor(amount + 1e-9)`, clamped at 0 so no configuration can produce a negative event reward."""
    return max(0, math.floor(amount + EPSILON))


def _zero(reason: ZeroReason, details: dict[str, object]) -> Reward:
    return Reward(0, 0, reason, details)


def compute_reward(item: RewardInput, guild: GuildConfig) -> Reward:
    """Exactly the pseudo-code of SPEC §9.4, with the caller-supplied counts of `item`.

    Raises ValueError only for caller bugs: a message without metadata, or a reaction without a reactor id.
    A reaction whose `author_id` is None is treated as `unknown_target`, whatever `author_unknown` says, because
    "the same member" and "a bot" cannot be decided about an author nobody knows.
    """
    kind = item.kind
    if kind not in REWARD_KINDS:
        raise ValueError(f"unknown reward kind {kind!r}")
    cfg = guild.settings
    details: dict[str, object] = {}

    if is_no_xp(guild, item.channel_id, item.parent_id, item.earner_role_ids):
        return _zero("no_xp", details)

    base_xp = cfg.int(f"rewards.{kind}.xp")
    base_stars = cfg.int(f"rewards.{kind}.stars")
    details["base"] = {"xp": base_xp, "stars": base_stars}
    q = 1.0  # XP only
    d = 1.0  # XP and stars

    if kind == "message":
        meta = item.meta
        if meta is None:
            raise ValueError("a message reward needs its metadata")
        if meta.length < cfg.int("message.min_length") and meta.attachment_count == 0:
            return _zero("too_short", details)
        if item.cooldown_active:
            return _zero("cooldown", details)
        q = quality(meta, cfg)
        details["quality"] = round(q, 6)

    reactors = 0
    if kind in _REACTIONS:
        if item.reactor_id is None:
            raise ValueError("a reaction reward needs the reactor id")
        if item.author_unknown or item.author_id is None:
            return _zero("unknown_target", details)
        if item.reactor_id == item.author_id:
            return _zero("self", details)
        if item.author_is_bot:
            return _zero("bot_target", details)
        pairs = item.pair_count
        details["pair_count"] = pairs
        if pairs >= cfg.int("reactions.pair_cap"):
            return _zero("pair_cap", details)
        d = 1.0 / (1.0 + cfg.float("reactions.pair_decay") * pairs)
        details["decay"] = round(d, 6)
        if kind == "reaction_received":
            reactors = item.reactor_count
            details["reactor_count"] = reactors
            if reactors >= cfg.int("reactions.unique_reactor_cap"):
                return _zero("reactor_cap", details)

    if kind == "voice_tick":
        details["paid_ticks_last_hour"] = item.paid_ticks_last_hour
        if item.paid_ticks_last_hour >= cfg.int("voice.hourly_tick_cap"):
            return _zero("hourly_cap", details)

    channel_mult, rule = resolve_channel_multiplier(guild, item.channel_id, item.parent_id, kind)
    role_mult = role_multiplier(guild, item.earner_role_ids)
    details["channel_multiplier"] = {"xp": channel_mult.xp, "stars": channel_mult.stars, "rule": rule}
    details["role_multiplier"] = {"xp": role_mult.xp, "stars": role_mult.stars}

    xp = _floor(base_xp * q * d * channel_mult.xp * role_mult.xp)
    stars = _floor(base_stars * d * channel_mult.stars * role_mult.stars)

    if kind == "reaction_received":
        window = cfg.int("reactions.velocity_window_seconds")
        age = item.message_age_seconds
        if window > 0 and age is not None and age < window and reactors >= cfg.int("reactions.velocity_min_reactors"):
            capped = min(xp, cfg.int("reactions.velocity_xp_cap"))
            details["velocity_capped"] = capped < xp
            xp = capped

    return Reward(xp, stars, None, details)
