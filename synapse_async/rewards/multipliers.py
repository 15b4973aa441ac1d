"""Channel and role multipliers and no-XP targets (SPEC §9.1), resolved from the cached guild config only.

Everything here is a handful of dictionary lookups on an immutable `GuildConfig`, because it runs for every reward
item on the hot path and must never query the database. The same resolution backs `GET …/rewards/explain`
(`explain`), so what an admin is shown is, by construction, what the pipeline applies.

Vocabulary of §9.1: `C` is the channel the event happened in, `B` its parent when `C` is a thread (else `C`), `T`
the type of `B`, `G` the category of `B`. Threads are not stored (§6.1), so "C is a thread" means the event carried
a parent id; `T` and `G` are only known when `B` is in the guild's channel table. Soft-deleted channels keep their
type and category, so their overrides and defaults still apply to late events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from synapse_async.rewards.config import GuildConfig, Multiplier

__all__ = [
    "NEUTRAL",
    "ChannelRule",
    "ChannelScope",
    "Lookup",
    "explain",
    "is_no_xp",
    "no_xp_hits",
    "resolve_channel_multiplier",
    "role_multiplier",
    "scope_of",
]

ChannelRule = Literal["override:channel", "override:parent", "override:category", "type_default", "default"]

NEUTRAL: Final = Multiplier(1.0, 1.0)
"""Step 5 of §9.1 and the role factor when no role has a row."""

_ANY: Final = "*"


@dataclass(frozen=True, slots=True)
class ChannelScope:
    """`C`, `B`, `T` and `G` of §9.1 for one event; computed once and shared by multipliers and no-XP checks."""

    channel_id: int | None
    base_id: int | None
    is_thread: bool
    channel_type: str | None
    category_id: int | None


def scope_of(guild: GuildConfig, channel_id: int | None, parent_id: int | None) -> ChannelScope:
    """Work out `B`, `T` and `G` for channel `C` (a thread when `parent_id` is given)."""
    is_thread = parent_id is not None
    base_id = parent_id if is_thread else channel_id
    info = guild.channels.get(base_id) if base_id is not None else None
    return ChannelScope(
        channel_id=channel_id,
        base_id=base_id,
        is_thread=is_thread,
        channel_type=info.type if info is not None else None,
        category_id=info.parent_id if info is not None else None,
    )


def _override_steps(scope: ChannelScope) -> list[tuple[ChannelRule, int | None]]:
    """Steps 1–3 in order, each with the channel whose overrides it consults (None: the step does not apply)."""
    return [
        ("override:channel", scope.channel_id),
        ("override:parent", scope.base_id if scope.is_thread else None),
        ("override:category", scope.category_id),
    ]


@dataclass(frozen=True, slots=True)
class Lookup:
    """One table lookup the resolution made: the §9.1 step, the channel (or channel type) and event_type keys."""

    rule: ChannelRule
    target: int | str
    event_type: str
    found: bool


def _resolve(
    guild: GuildConfig, scope: ChannelScope, kind: str, trace: list[Lookup] | None = None
) -> tuple[Multiplier, ChannelRule, str | None]:
    """First hit of §9.1 steps 1–5: the multiplier, the step that matched and the event_type key it matched on.

    With `trace`, every lookup made is appended to it, in order: the explanation is a recording of this very
    resolution (the pipeline passes no trace and pays one `is None` test per lookup), so it cannot drift from it.
    """
    for rule, target in _override_steps(scope):
        if target is None:
            continue
        for key in (kind, _ANY):
            hit = guild.overrides.get((target, key))
            if trace is not None:
                trace.append(Lookup(rule, target, key, hit is not None))
            if hit is not None:
                return hit, rule, key
    if scope.channel_type is not None:
        for key in (kind, _ANY):
            hit = guild.type_defaults.get((scope.channel_type, key))
            if trace is not None:
                trace.append(Lookup("type_default", scope.channel_type, key, hit is not None))
            if hit is not None:
                return hit, "type_default", key
    return NEUTRAL, "default", None


def resolve_channel_multiplier(
    guild: GuildConfig, channel_id: int | None, parent_id: int | None, kind: str
) -> tuple[Multiplier, ChannelRule]:
    """The channel multiplier for reward kind `kind` in channel `channel_id` and the §9.1 rule that supplied it.

    `parent_id` is the thread's parent when `channel_id` is a thread, else None. A specific kind beats `*` within
    a step, but an earlier step's `*` beats a later step's specific kind: the first hit wins, never the best one.
    `channel_id` None (an item without a channel) can only match type defaults of a known parent, else neutral.
    """
    multiplier, rule, _ = _resolve(guild, scope_of(guild, channel_id, parent_id), kind)
    return multiplier, rule


def role_multiplier(guild: GuildConfig, role_ids: Iterable[int]) -> Multiplier:
    """Highest XP and highest star factor among the earner's roles that have a row, chosen independently.

    Independent maxima mean a member with an "XP ×2" role and a "stars ×3" role gets both; no row at all → 1.0.
    """
    xp: float | None = None
    stars: float | None = None
    table = guild.role_multipliers
    for role_id in role_ids:
        row = table.get(role_id)
        if row is None:
            continue
        xp = row.xp if xp is None else max(xp, row.xp)
        stars = row.stars if stars is None else max(stars, row.stars)
    if xp is None or stars is None:
        return NEUTRAL
    return Multiplier(xp, stars)


def no_xp_hits(
    guild: GuildConfig, channel_id: int | None, parent_id: int | None, role_ids: Iterable[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The no-XP channels (among `C`, `B`, `G`, in that order) and no-XP roles that apply.

    The one definition behind both the pipeline (`is_no_xp`) and explanations. Most guilds have no targets at all,
    so both checks short-circuit on empty sets before any scope is worked out.
    """
    targets = guild.no_xp
    roles = tuple(dict.fromkeys(r for r in role_ids if r in targets.roles)) if targets.roles else ()
    if not targets.channels:
        return (), roles
    scope = scope_of(guild, channel_id, parent_id)
    candidates = (scope.channel_id, scope.base_id, scope.category_id)
    channels = tuple(dict.fromkeys(c for c in candidates if c is not None and c in targets.channels))
    return channels, roles


def is_no_xp(guild: GuildConfig, channel_id: int | None, parent_id: int | None, role_ids: Iterable[int]) -> bool:
    """True when the item earns nothing (`no_xp`): `C`, `B` or `G` is a no-XP channel, or a role is a no-XP role.

    Checked before anything else in §9.4.
    """
    channels, roles = no_xp_hits(guild, channel_id, parent_id, role_ids)
    return bool(channels or roles)


def _mult_json(m: Multiplier) -> dict[str, float]:
    return {"xp": m.xp, "stars": m.stars}


def _sid(value: int | None) -> str | None:
    """Snowflakes are strings in API responses (§18)."""
    return None if value is None else str(value)


def _lookups(trace: Sequence[Lookup], rule: ChannelRule) -> list[dict[str, object]]:
    return [{"event_type": t.event_type, "found": t.found} for t in trace if t.rule == rule]


def explain(
    guild: GuildConfig,
    channel_id: int | None,
    parent_id: int | None,
    kind: str,
    role_ids: Iterable[int] = (),
) -> dict[str, object]:
    """Why an item of `kind` in this channel, earned by a member with `role_ids`, gets the multipliers it gets.

    The body of `GET …/rewards/explain`: every §9.1 step with the lookups the resolution made there (a step is
    `consulted` iff it made one; steps after the first hit are listed but not consulted), the rule that matched,
    each role factor, the no-XP hits and the final multipliers (0 when no-XP applies). The steps are the recorded
    trace of the pipeline's own `_resolve`, and the role and no-XP parts are the functions the formula calls, so the
    explanation is the pipeline's computation, not a model of it. `channel_multiplier` and `role_multiplier` have
    the shape of the journal's `details` (`rule` included), so an explanation can be compared with a paid item.
    Snowflakes are strings (§18).
    """
    roles = tuple(dict.fromkeys(role_ids))
    scope = scope_of(guild, channel_id, parent_id)
    trace: list[Lookup] = []
    channel_mult, matched_rule, matched_key = _resolve(guild, scope, kind, trace)
    consulted = {t.rule for t in trace}

    steps: list[dict[str, object]] = []
    for number, (rule, target) in enumerate(_override_steps(scope), start=1):
        steps.append(
            {
                "step": number,
                "rule": rule,
                "target_id": _sid(target),
                "applies": target is not None,
                "consulted": rule in consulted,
                "lookups": _lookups(trace, rule),
                "matched": matched_rule == rule,
            }
        )
    steps.append(
        {
            "step": 4,
            "rule": "type_default",
            "channel_type": scope.channel_type,
            "applies": scope.channel_type is not None,
            "consulted": "type_default" in consulted,
            "lookups": _lookups(trace, "type_default"),
            "matched": matched_rule == "type_default",
        }
    )
    fallback = matched_rule == "default"
    steps.append({"step": 5, "rule": "default", "applies": True, "consulted": fallback, "matched": fallback})

    role_rows = [
        {"role_id": str(r), **_mult_json(guild.role_multipliers[r])} for r in roles if r in guild.role_multipliers
    ]
    role_mult = role_multiplier(guild, roles)
    no_xp_channels, no_xp_roles = no_xp_hits(guild, channel_id, parent_id, roles)
    no_xp = bool(no_xp_channels or no_xp_roles)
    final = (
        {"xp": 0.0, "stars": 0.0}
        if no_xp
        else {"xp": channel_mult.xp * role_mult.xp, "stars": channel_mult.stars * role_mult.stars}
    )
    return {
        "event_type": kind,
        "channel_id": _sid(channel_id),
        "parent_id": _sid(parent_id),
        "is_thread": scope.is_thread,
        "base_channel_id": _sid(scope.base_id),
        "channel_type": scope.channel_type,
        "category_id": _sid(scope.category_id),
        "steps": steps,
        "channel_rule": matched_rule,
        "channel_rule_event_type": matched_key,
        "channel_multiplier": {**_mult_json(channel_mult), "rule": matched_rule},
        "role_factors": role_rows,
        "role_multiplier": _mult_json(role_mult),
        "no_xp": {
            "applies": no_xp,
            "channel_ids": [str(c) for c in no_xp_channels],
            "role_ids": [str(r) for r in no_xp_roles],
        },
        "final_multiplier": final,
    }
