"""Level role rewards as a pure diff (SPEC §13): which roles a member should hold and what one update must set.

Keeping the decision pure lets the syncer, the `level_role_sync` job, rejoin restore and the admin API (its
`dry_run` previews) share one rule set, and lets tests cover the permission pre-checks without Discord. The caller
turns a `RolePlan` into at most one member update (audit reason "Level roles") and logs `skipped`.

Two safety rules live here too (SPEC §13), so that no caller can forget them:

- **safe roles only**: a role granting any of `DANGEROUS_PERMISSIONS`, or listed in `access.admin_role_ids`, is
  refused as a reward (`reward_role_refusal`) and never added by a sync (`dangerous_role`), even if it gained the
  permission after it was mapped;
- **the bot only takes back what it gave**: a reward role is removed only when the member's `granted` set (the
  `level_role_grants` rows) says the bot added it, so a role a person gave, or one held before it became a reward,
  is never removed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

RoleMode = Literal["stack", "replace"]
SkipReason = Literal["missing_manage_roles", "role_above_bot", "role_managed", "role_missing", "dangerous_role"]

DANGEROUS_PERMISSIONS: Final[tuple[tuple[int, str], ...]] = (
    (1 << 3, "Administrator"),
    (1 << 5, "Manage Server"),
    (1 << 28, "Manage Roles"),
    (1 << 4, "Manage Channels"),
    (1 << 29, "Manage Webhooks"),
    (1 << 13, "Manage Messages"),
    (1 << 34, "Manage Threads"),
    (1 << 27, "Manage Nicknames"),
    (1 << 33, "Manage Events"),
    (1 << 30, "Manage Expressions"),
    (1 << 2, "Ban Members"),
    (1 << 1, "Kick Members"),
    (1 << 40, "Moderate Members"),
    (1 << 17, "Mention Everyone"),
    (1 << 7, "View Audit Log"),
)
"""Discord permission bits a level reward must never carry (SPEC §13 "Safe roles only"), with Discord's names.
Earning XP must never make anyone a moderator: each of these lets its holder act on other members or the server."""

SAMPLE_SIZE: Final = 20
"""Members listed in a `dry_run` preview (SPEC §13)."""


def dangerous_permissions(permissions: int) -> tuple[str, ...]:
    """The names of the dangerous permissions in a role's permission bits, in `DANGEROUS_PERMISSIONS` order."""
    return tuple(name for bit, name in DANGEROUS_PERMISSIONS if permissions & bit)


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """What the pre-check needs to know about a guild role (from the cache; `exists=False` for a deleted one)."""

    role_id: int
    position: int
    managed: bool
    exists: bool = True
    permissions: int = 0


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


@dataclass(frozen=True, slots=True)
class RoleRefusal:
    """Why a role may not become a level reward (400 `dangerous_role`); `permissions` names what it grants."""

    message: str
    permissions: tuple[str, ...] = ()


def reward_role_refusal(
    role: RoleInfo,
    *,
    admin_role_ids: Collection[int],
    caller_top_position: int | None,
) -> RoleRefusal | None:
    """SPEC §13 "Safe roles only": None when `role` may be mapped as a level reward, else why not.

    `caller_top_position` is the position of the caller's highest role for a user token or a command, None when
    no hierarchy applies (a service token, or the guild owner): the role must then be strictly below it, so nobody
    can hand out a role they could not hand out on Discord themselves.
    """
    names = dangerous_permissions(role.permissions)
    if names:
        return RoleRefusal(f"The role grants {', '.join(names)}; level rewards must be safe roles.", names)
    if role.role_id in admin_role_ids:
        return RoleRefusal("The role is an admin role (access.admin_role_ids); it cannot be a level reward.")
    if caller_top_position is not None and role.position >= caller_top_position:
        return RoleRefusal("The role is not below your highest role; you cannot make it a level reward.")
    return None


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
    protected: Collection[int] = frozenset(),
    adding: bool = True,
) -> SkipReason | None:
    """Why the bot cannot add (or, `adding=False`, remove) `role_id`, or None if it can (the SPEC §13 pre-check).

    Checked in this order so one stable reason is reported: Manage Roles, `@everyone`, existence, dangerous role,
    hierarchy, integration management. `@everyone` (its id is the guild id) can never be assigned or removed; the
    spec's reason list has no dedicated value, and it behaves like a role Discord manages itself, so it is reported
    as `role_managed`. Discord only lets the bot edit roles strictly below its highest role, so an equal position
    counts as `role_above_bot`.

    `dangerous_role` (a dangerous permission, or a role in `protected` = `access.admin_role_ids`) blocks only
    ADDING: a role that gained such a permission after it was mapped is never handed out, while taking back a copy
    the bot itself gave lowers nobody's power below what they were given.
    """
    if not bot_can_manage_roles:
        return "missing_manage_roles"
    if role_id == guild_id:
        return "role_managed"
    info = roles.get(role_id)
    if info is None or not info.exists:
        return "role_missing"
    if adding and (role_id in protected or dangerous_permissions(info.permissions)):
        return "dangerous_role"
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
    granted: frozenset[int],
    protected: Collection[int] = frozenset(),
) -> RolePlan:
    """Plan the single member update that brings reward roles in line with `level` (SPEC §13).

    Target = (current − undesired roles the bot granted) ∪ desired. `granted` is what the bot itself added to this
    member (`level_role_grants`): only those are ever removed, so roles that are not rewards, a reward role a person
    gave, and one the member held before it became a reward all stay. A granted role that is no longer a reward
    at all (its row was deleted) is taken back too. Each role to add or remove is pre-checked; a failing role stays
    exactly as it is and is listed in `skipped` (sorted by id, for stable logs). Roles that need no change are not
    checked at all — an unmanageable role the member already holds correctly is not an error. Planning again from
    the result yields `new_roles=None`, so repeated syncs make no calls.
    """
    desired = desired_roles(level, rewards, mode)
    to_add = desired - current_roles
    to_remove = (current_roles & granted) - desired
    target = (current_roles - to_remove) | desired
    skipped: list[RoleSkip] = []
    for role_id in sorted(to_add | to_remove):
        reason = role_skip_reason(
            role_id,
            roles=roles,
            guild_id=guild_id,
            bot_top_position=bot_top_position,
            bot_can_manage_roles=bot_can_manage_roles,
            protected=protected,
            adding=role_id in to_add,
        )
        if reason is not None:
            skipped.append(RoleSkip(role_id, reason))
    blocked = frozenset(skip.role_id for skip in skipped)
    added = target - current_roles - blocked
    removed = current_roles - target - blocked
    new_roles = (current_roles - removed) | added if added or removed else None
    return RolePlan(new_roles=new_roles, added=added, removed=removed, skipped=tuple(skipped))


@dataclass(frozen=True, slots=True)
class MemberChange:
    """One member's line of a preview: the roles a sync would add and remove."""

    user_id: int
    display_name: str
    add: tuple[int, ...]
    remove: tuple[int, ...]


@dataclass(slots=True)
class RolePreview:
    """What a sync would do (SPEC §13 "Preview before change"): totals and the first `SAMPLE_SIZE` members.

    Fed with each member's `RolePlan` in the order the sync visits them (user id), so the sample is the first
    members the sync would change.
    """

    adds: int = 0
    removes: int = 0
    members_affected: int = 0
    sample: list[MemberChange] = field(default_factory=list)

    def add(self, user_id: int, display_name: str, plan: RolePlan) -> None:
        if plan.new_roles is None:
            return
        self.adds += len(plan.added)
        self.removes += len(plan.removed)
        self.members_affected += 1
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(
                MemberChange(user_id, display_name, tuple(sorted(plan.added)), tuple(sorted(plan.removed)))
            )
