"""What an import does to one member (SPEC §20.1, §10.2, §13): one pure decision shared by dry run and real run.

The dry run and the job read the same member state and call `plan_member`, so the preview an admin approves is the
very computation the job applies (the job re-plans under the row lock, since members keep earning meanwhile).
`add` adds amounts, `replace` sets them, absent fields stay unchanged. With `levels=recompute` the level follows
from this guild's curve applied to the input's XP; with `levels=keep` (the default for other bots' exports) a row
with a level brings the XP that puts it at that level here (`kept_xp`), so levels survive a migration.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from synapse_async.imports.formats import ImportEntry
from synapse_async.rewards.leveling import MAX_LEVEL, UNREACHABLE, LevelCurve
from synapse_async.rewards.roles import RoleMode, desired_roles

__all__ = [
    "ImportMode",
    "LevelsMode",
    "MemberPlan",
    "MemberState",
    "PlanTotals",
    "entry_xp",
    "kept_xp",
    "plan_member",
    "role_change",
]

ImportMode = Literal["add", "replace"]
IMPORT_MODES: Final[tuple[ImportMode, ...]] = ("add", "replace")
LevelsMode = Literal["keep", "recompute"]
LEVELS_MODES: Final[tuple[LevelsMode, ...]] = ("keep", "recompute")
SAMPLE_MAX: Final = 1000
"""Per-member lists in a report (level changes, role changes, invalid rows) are capped; counts are exact."""
CHANGE_SAMPLE_MAX: Final = 20
"""The report's `sample`: the first members the import changes, each before → after (what the console previews)."""


@dataclass(frozen=True, slots=True)
class MemberState:
    """The member's stored values an import may change (a member without a row is `MemberState()` + created)."""

    xp: int = 0
    gold: int = 0
    lifetime_stars: int = 0
    level: int = 1
    github_username: str | None = None
    earned: frozenset[str] = frozenset()  # names of templates the member has earned


@dataclass(frozen=True, slots=True)
class MemberPlan:
    user_id: int
    created: bool
    xp: int
    gold: int
    lifetime_stars: int
    xp_delta: int
    gold_delta: int
    star_delta: int
    old_level: int
    new_level: int
    github_change: bool
    github_username: str | None
    achievements: tuple[str, ...]  # named templates to grant (known, active, not yet earned)
    unknown_achievements: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """A member the import writes to: a journal row and the updates (SPEC §20.1 "per changed member")."""
        return bool(
            self.created
            or self.xp_delta
            or self.gold_delta
            or self.star_delta
            or self.github_change
            or self.achievements
            or self.old_level != self.new_level
        )


def kept_xp(curve: LevelCurve, level: int, progress: tuple[int, int] | None) -> int:
    """`levels=keep`: the XP at which this guild's curve puts a member at the other bot's `level` (level 0, MEE6's
    first, is our level 1), plus the same fraction of that level's span as they had there (0 when unknown)."""
    ours = min(max(level, 1), MAX_LEVEL)
    start = curve.xp_to_reach(ours)
    if progress is None or ours == MAX_LEVEL:
        return start
    end = curve.required(ours)
    if end == UNREACHABLE:
        return start
    into, span = progress
    return min(start + (end - start) * into // span, end - 1)


def entry_xp(entry: ImportEntry, curve: LevelCurve, levels: LevelsMode) -> int | None:
    """The XP an entry brings: its level turned into XP when keeping levels and the row has one, else its XP."""
    if levels == "keep" and entry.source_level is not None:
        return kept_xp(curve, entry.source_level, entry.source_progress)
    return entry.xp


def _apply(mode: ImportMode, current: int, value: int | None) -> int:
    if value is None:
        return current
    return current + value if mode == "add" else value


def plan_member(
    entry: ImportEntry,
    current: MemberState | None,
    mode: ImportMode,
    curve: LevelCurve,
    templates: Collection[str],
    levels: LevelsMode = "recompute",
) -> MemberPlan:
    """The new values for `entry` applied to `current` (None: the import creates the member row).

    `templates` are the names of the guild's active templates; other named achievements are reported, not granted.
    """
    state = current or MemberState()
    xp = _apply(mode, state.xp, entry_xp(entry, curve, levels))
    gold = _apply(mode, state.gold, entry.gold)
    stars = _apply(mode, state.lifetime_stars, entry.lifetime_stars)
    wanted = [name for name in entry.achievements if name not in state.earned]
    return MemberPlan(
        user_id=entry.user_id,
        created=current is None,
        xp=xp,
        gold=gold,
        lifetime_stars=stars,
        xp_delta=xp - state.xp,
        gold_delta=gold - state.gold,
        star_delta=stars - state.lifetime_stars,
        old_level=state.level,
        new_level=curve.level(xp),
        github_change=entry.github_set and entry.github_username != state.github_username,
        github_username=entry.github_username if entry.github_set else state.github_username,
        achievements=tuple(n for n in wanted if n in templates),
        unknown_achievements=tuple(n for n in wanted if n not in templates),
    )


def role_change(
    old_level: int, new_level: int, rewards: Sequence[tuple[int, int]], mode: RoleMode
) -> tuple[frozenset[int], frozenset[int]]:
    """Reward roles the level change adds and removes (SPEC §13: from the current level only)."""
    before, after = desired_roles(old_level, rewards, mode), desired_roles(new_level, rewards, mode)
    return after - before, before - after


@dataclass(slots=True)
class PlanTotals:
    """The summary of an import, as previewed (dry run) or as applied (job result)."""

    format: str
    mode: ImportMode
    levels: LevelsMode = "recompute"
    entries: int = 0
    members_created: int = 0
    members_changed: int = 0
    members_unchanged: int = 0
    already_imported: int = 0
    xp_delta: int = 0
    gold_delta: int = 0
    stars_delta: int = 0
    achievements_granted: int = 0
    level_changes: int = 0
    level_role_changes: int = 0
    level_change_items: list[dict[str, object]] = field(default_factory=list)
    level_role_items: list[dict[str, object]] = field(default_factory=list)
    unknown_achievements: list[dict[str, object]] = field(default_factory=list)
    sample: list[dict[str, object]] = field(default_factory=list)
    invalid: list[dict[str, object]] = field(default_factory=list)
    invalid_count: int = 0

    def add(self, plan: MemberPlan, index: int, rewards: Sequence[tuple[int, int]], role_mode: RoleMode) -> None:
        """Count one member's plan (only called for members the import writes, or would write)."""
        self.members_changed += 1
        self.members_created += plan.created
        self.xp_delta += plan.xp_delta
        self.gold_delta += plan.gold_delta
        self.stars_delta += plan.star_delta
        self.achievements_granted += len(plan.achievements)
        uid = str(plan.user_id)
        if len(self.sample) < CHANGE_SAMPLE_MAX:
            self.sample.append(
                {
                    "user_id": uid,
                    "xp_before": plan.xp - plan.xp_delta,
                    "xp_after": plan.xp,
                    "gold_before": plan.gold - plan.gold_delta,
                    "gold_after": plan.gold,
                    "level_before": plan.old_level,
                    "level_after": plan.new_level,
                }
            )
        for name in plan.unknown_achievements:
            if len(self.unknown_achievements) < SAMPLE_MAX:
                self.unknown_achievements.append({"index": index, "user_id": uid, "name": name})
        if plan.new_level != plan.old_level:
            self.level_changes += 1
            if len(self.level_change_items) < SAMPLE_MAX:
                self.level_change_items.append({"user_id": uid, "from": plan.old_level, "to": plan.new_level})
            added, removed = role_change(plan.old_level, plan.new_level, rewards, role_mode)
            if added or removed:
                self.level_role_changes += 1
                if len(self.level_role_items) < SAMPLE_MAX:
                    self.level_role_items.append(
                        {
                            "user_id": uid,
                            "add": [str(r) for r in sorted(added)],
                            "remove": [str(r) for r in sorted(removed)],
                        }
                    )

    def as_json(self) -> dict[str, object]:
        return {
            "format": self.format,
            "mode": self.mode,
            "levels": self.levels,
            "entries": self.entries,
            "members_created": self.members_created,
            "members_changed": self.members_changed,
            "members_unchanged": self.members_unchanged,
            "already_imported": self.already_imported,
            "xp_delta": self.xp_delta,
            "gold_delta": self.gold_delta,
            "stars_delta": self.stars_delta,
            "achievements_granted": self.achievements_granted,
            "unknown_achievements": self.unknown_achievements,
            "level_changes": {"count": self.level_changes, "items": self.level_change_items},
            "level_role_changes": {"count": self.level_role_changes, "items": self.level_role_items},
            "invalid": {"count": self.invalid_count, "items": self.invalid},
            "sample": self.sample,
        }
