"""The level curve and level-change decisions of SPEC §10, as pure functions.

Everything here is deterministic and I/O-free so the pipeline, the relevel job, imports and `/profile` all agree
on one definition of "level" (SPEC §27 item 4) and so it can be tested exhaustively.

Arithmetic choice: `required(L) = floor(base × factor^L)` is evaluated *exactly*. The factor's decimal string
(`Decimal(str(factor))`, i.e. the value as configured, never the binary float) is turned into an exact fraction
`num / den` and the floor is taken with integer division. That is decimal arithmetic with unbounded precision —
stronger than the ≥ 28 significant digits SPEC §10.1 asks for — so results never depend on a precision setting,
a rounding mode or the platform, and no near-integer value can be rounded across an integer boundary.

BIGINT: XP is a PostgreSQL BIGINT, so a threshold above `BIGINT_MAX` can never be met. Such thresholds are
reported as `UNREACHABLE` (= `BIGINT_MAX + 1`, deliberately one past anything storable) instead of as huge exact
numbers; this keeps `required` non-decreasing and bounded, and `level()` consistent with it for every storable XP.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

MAX_LEVEL = 1000
BIGINT_MAX = 2**63 - 1
UNREACHABLE = BIGINT_MAX + 1
"""Stand-in for a threshold beyond BIGINT: no storable XP reaches it. Never write it to the database."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class LevelCurve:
    """One guild's curve, built from `leveling.level_base` and `leveling.level_factor` (SPEC §5.2).

    The thresholds are computed once at construction (use `curve_for` to share instances), so `level()` is a
    bisect over a tuple — cheap enough for the reward hot path.
    """

    base: int
    factor: float
    # _thresholds[i] = required(i + 1); only reachable values (≤ BIGINT_MAX), at most MAX_LEVEL of them.
    _thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # True when the table stopped because the next threshold exceeds BIGINT (everything after is UNREACHABLE).
    _capped: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.base, bool) or not isinstance(self.base, int) or self.base < 1:
            raise ValueError(f"level_base must be an integer ≥ 1, got {self.base!r}")
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float) or not math.isfinite(self.factor):
            raise ValueError(f"level_factor must be a finite number, got {self.factor!r}")
        if self.factor < 1:
            # A factor below 1 would make `required` decreasing and the "levels crossed" count meaningless.
            raise ValueError(f"level_factor must be ≥ 1, got {self.factor!r}")
        num, den = Decimal(str(self.factor)).as_integer_ratio()
        thresholds: list[int] = []
        capped = False
        power_num, power_den = 1, 1
        for _ in range(MAX_LEVEL):
            power_num *= num
            power_den *= den
            value = self.base * power_num // power_den
            if value > BIGINT_MAX:
                capped = True
                break
            thresholds.append(value)
        object.__setattr__(self, "_thresholds", tuple(thresholds))
        object.__setattr__(self, "_capped", capped)

    def required(self, level: int) -> int:
        """Cumulative XP needed to *leave* `level` (SPEC §10.1), or `UNREACHABLE` if that exceeds BIGINT."""
        if level < 1:
            raise ValueError(f"level must be ≥ 1, got {level}")
        if level <= len(self._thresholds):
            return self._thresholds[level - 1]
        if self._capped:
            return UNREACHABLE  # the curve is non-decreasing, so every later threshold is beyond BIGINT too
        # Beyond MAX_LEVEL with every earlier threshold storable: nobody can be there, but answer exactly anyway.
        num, den = Decimal(str(self.factor)).as_integer_ratio()
        exact: int = self.base * num**level // den**level
        return min(exact, UNREACHABLE)

    def level(self, xp: int) -> int:
        """`min(1000, 1 + |{L ≥ 1 : required(L) ≤ xp}|)` for a stored XP value; O(log MAX_LEVEL)."""
        if xp < 0:
            raise ValueError(f"xp is never negative (SPEC §2), got {xp}")
        # The table omits thresholds beyond BIGINT, which no storable xp meets, so the count is exact.
        return min(MAX_LEVEL, 1 + bisect_right(self._thresholds, xp))

    def xp_to_reach(self, level: int) -> int:
        """Total XP at which `level` starts: 0 for level 1, `required(level − 1)` otherwise (SPEC §10.1 table)."""
        if not 1 <= level <= MAX_LEVEL:
            raise ValueError(f"level must be within 1..{MAX_LEVEL}, got {level}")
        return 0 if level == 1 else self.required(level - 1)

    def progress(self, xp: int) -> tuple[int, int, int]:
        """`(level, xp into the level, span of the level)` for `/profile`.

        The span is 0 when there is no next level to show: at MAX_LEVEL, or when the next threshold is beyond
        BIGINT (a progress bar towards an unreachable number would be a lie).
        """
        current = self.level(xp)
        start = self.xp_to_reach(current)
        if current == MAX_LEVEL:
            return current, xp - start, 0
        end = self.required(current)
        return current, xp - start, 0 if end == UNREACHABLE else end - start


RECENT_CURVES: Final = 64
"""Curves built most recently, kept even when no guild configuration refers to them (API previews, tests)."""
_CURVES: weakref.WeakValueDictionary[tuple[int, float], LevelCurve] = weakref.WeakValueDictionary()
_RECENT: OrderedDict[tuple[int, float], LevelCurve] = OrderedDict()


def curve_for(base: int, factor: float) -> LevelCurve:
    """The one shared curve per `(base, factor)`, built at most once while anything still uses it.

    Building a table costs milliseconds (up to 1,000 exact big-integer thresholds), so the reward path must never
    do it. A fixed-size LRU had a cliff: with more distinct curves in use than its size, every reward rebuilt one.
    Here a curve lives as long as something holds it — every cached `GuildConfig` holds its guild's curve — so the
    cache is exactly "one entry per distinct curve in use", bounded by the number of guilds, plus the last
    `RECENT_CURVES` built.
    """
    key = (base, factor)
    curve = _CURVES.get(key)
    if curve is None:
        curve = LevelCurve(base, factor)
        _CURVES[key] = curve
        _RECENT[key] = curve
        if len(_RECENT) > RECENT_CURVES:
            _RECENT.popitem(last=False)
    return curve


@dataclass(frozen=True, slots=True)
class LevelChange:
    """What one XP change does to a member's level, peak and gold (SPEC §10.2)."""

    old_level: int
    new_level: int
    old_peak: int
    new_peak: int
    levels_gained_above_peak: int
    """Levels above the previous peak; only these are paid, so gold is paid once per level ever reached."""
    gold_bonus: int
    """`levels_gained_above_peak × gold_per_level_up`, or 0 when gold is not payable (imports, relevel)."""
    pays_gold: bool
    """Whether this change happened in a context that pays gold and announces (not an import or relevel)."""

    @property
    def changed(self) -> bool:
        """The stored level must be updated (and a `level_change` journal row written)."""
        return self.new_level != self.old_level

    @property
    def announce(self) -> bool:
        """A level-up announcement is due: a new peak level was reached in a paying context (SPEC §14)."""
        return self.levels_gained_above_peak > 0 and self.pays_gold


def level_change(
    curve: LevelCurve,
    *,
    new_xp: int,
    old_level: int,
    old_peak: int,
    gold_per_level_up: int,
    pay_gold: bool = True,
) -> LevelChange:
    """Decide the level update for `new_xp`, the value returned by the atomic XP update (SPEC §10.2).

    Mirrors the spec literally: when the level does not change nothing is updated, not even a peak that is
    somehow below the level. Multi-level jumps in either direction are one change; a drop keeps the peak, so
    climbing back pays only for levels above it. `pay_gold=False` (imports, relevel) still raises the peak —
    those levels then count as reached and are never paid later.
    """
    if gold_per_level_up < 0:
        raise ValueError(f"gold_per_level_up must be ≥ 0, got {gold_per_level_up}")
    new_level = curve.level(new_xp)
    if new_level == old_level:
        return LevelChange(old_level, new_level, old_peak, old_peak, 0, 0, pay_gold)
    gained = max(0, new_level - old_peak)
    bonus = gained * gold_per_level_up if pay_gold else 0
    return LevelChange(old_level, new_level, old_peak, max(old_peak, new_level), gained, bonus, pay_gold)


def clamp_delta(balance: int, delta: int) -> int:
    """The delta actually applied to `balance` so the result never goes below 0 (SPEC §10.3).

    Positive deltas pass unchanged; negative ones stop at zero. Journals, ledgers and replies report this
    applied value, not the requested one. A (corrupt) negative balance is never pushed further down nor "fixed"
    by a negative request.
    """
    if delta >= 0:
        return delta
    return min(0, max(delta, -balance))
