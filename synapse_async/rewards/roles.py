"""Level role rewards as a pure diff (SPEC §13): which roles a member should hold and what one update must set.

Keeping the decision pure lets the syncer, the `level_role_sync` job, rejoin restore and the admin API share one
rule set, and lets tests cover the permission pre-checks without Discord. The caller turns a `RolePlan` into at
most one member update (audit reason "Level roles") and logs `skipped`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

RoleMode = Literal["stack", "replace"]
SkipReason = Literal["missing_manage_roles", "role_above_bot", "role_managed", "role_missing"]


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """What the pre-check needs to know about a guild role (from the cache; `exists=False` for a deleted one)."""

    role_id: int
    position: int
    managed: bool
    exists: bool = True


@dataclass(frozen=True, slots=True)
class RoleSkip:
    """A role the plan wanted to change but the bot cannot, with the reason shown to admins."""

    role_id: int
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class RolePlan:
    """The outcome of planning: `new_roles` is the full list for ONE member update, or None when no call is due."""

    new_roles: frozenset[int] | None
    added: frozenset[int]
    removed: frozenset[int]
    skipped: tuple[RoleSkip, ...]


def desired_roles(level: int, rewards: Sequence[tuple[int, int]], mode: RoleMode) -> frozenset[int]:
    """Reward roles a member at `level` should hold, from the current level only (never the peak).

    `rewards` holds `(level, role_id)` pairs. `stack` grants every role with level ≤ current; `replace` grants
    only the role(s) at the highest reward level ≤ current, so several roles configured at one level all apply.
    """
    earned = [(reward_level, role_id) for reward_level, role_id in rewards if reward_level <= level]
    if mode == "stack":
        return frozenset(role_id for _, role_id in earned)
    if mode == "replace":
        if not earned:
            return frozenset()
        top = max(reward_level for reward_level, _ in earned)
        return frozenset(role_id for reward_level, role_id in earned if reward_level == top)
    raise ValueError(f"unknown level_roles.mode {mode!r}")


def role_skip_reason(
    role_id: int,
    *,
    roles: Mapping[int, RoleInfo],
    guild_id: int,
    bot_top_position: int,
    bot_can_manage_roles: bool,
) -> SkipReason | None:
    """Why the bot cannot add or remove `role_id`, or None if it can (the SPEC §13 pre-check).

    Checked in this order so one stable reason is reported: Manage Roles, `@everyone`, existence, hierarchy,
    integration management. `@everyone` (its id is the guild id) can never be assigned or removed; the spec's
    reason list has no dedicated value, and it behaves like a role Discord manages itself, so it is reported as
    `role_managed`. Discord only lets the bot edit roles strictly below its highest role, so an equal position
    counts as `role_above_bot`.
    """
    if not bot_can_manage_roles:
        return "missing_manage_roles"
    if role_id == guild_id:
        return "role_managed"
    info = roles.get(role_id)
    if info is None or not info.exists:
        return "role_missing"
    if info.position >= bot_top_position:
        return "role_above_bot"
    if info.managed:
        return "role_managed"
    return None


def plan_role_update(
    *,
    current_roles: frozenset[int],
    level: int,
    rewards: Sequence[tuple[int, int]],
    mode: RoleMode,
    roles: Mapping[int, RoleInfo],
    guild_id: int,
    bot_top_position: int,
    bot_can_manage_roles: bool,
) -> RolePlan:
    """Plan the single member update that brings reward roles in line with `level` (SPEC §13).

    Target = (current − all reward roles) ∪ desired, so roles that are not rewards (including manually given
    ones) are never touched. Each role to add or remove is pre-checked; a failing role stays exactly as it is and
    is listed in `skipped` (sorted by id, for stable logs). Roles that need no change are not checked at all — an
    unmanageable role the member already holds correctly is not an error. Planning again from the result yields
    `new_roles=None`, so repeated syncs make no calls.
    """
    reward_ids = frozenset(role_id for _, role_id in rewards)
    target = (current_roles - reward_ids) | desired_roles(level, rewards, mode)
    changes = (target - current_roles) | (current_roles - target)
    skipped: list[RoleSkip] = []
    for role_id in sorted(changes):
        reason = role_skip_reason(
            role_id,
            roles=roles,
            guild_id=guild_id,
            bot_top_position=bot_top_position,
            bot_can_manage_roles=bot_can_manage_roles,
        )
        if reason is not None:
            skipped.append(RoleSkip(role_id, reason))
    blocked = frozenset(skip.role_id for skip in skipped)
    added = target - current_roles - blocked
    removed = current_roles - target - blocked
    new_roles = (current_roles - removed) | added if added or removed else None
    return RolePlan(new_roles=new_roles, added=added, removed=removed, skipped=tuple(skipped))
