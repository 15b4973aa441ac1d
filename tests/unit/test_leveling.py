"""The level curve and level-change rules of SPEC §10 (§27 item 4), checked against the spec's own numbers."""

from __future__ import annotations

import dataclasses
from decimal import ROUND_FLOOR, Decimal, localcontext
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.rewards.leveling import (
    BIGINT_MAX,
    MAX_LEVEL,
    UNREACHABLE,
    LevelChange,
    LevelCurve,
    clamp_delta,
    curve_for,
    level_change,
)

DEFAULT = curve_for(100, 1.25)

# SPEC §10.1: total XP needed to reach a level with base 100, factor 1.25.
SPEC_TABLE = {
    1: 0, 2: 125, 3: 156, 4: 195, 5: 244, 6: 305, 7: 381, 8: 476, 9: 596, 10: 745, 11: 931, 12: 1164,
    13: 1455, 14: 1818, 15: 2273, 16: 2842, 21: 8673, 31: 80779, 41: 752316, 51: 7006492,
}  # fmt: skip

# Factors spanning the allowed range 1.01–5, written the way an admin would configure them.
FACTORS = [1.01, 1.05, 1.1, 1.15, 1.2, 1.25, 1.333, 1.5, 1.75, 2.0, 2.5, 3.14159, 4.2, 5.0]


@cache
def oracle_thresholds(base: int, factor: float) -> tuple[int, ...]:
    """Independent reference: plain Decimal power at 120 digits, the SPEC §10.1 formula read literally."""
    out: list[int] = []
    with localcontext() as ctx:
        ctx.prec = 120
        f = Decimal(str(factor))
        for level in range(1, MAX_LEVEL):
            value = int((Decimal(base) * f**level).to_integral_value(rounding=ROUND_FLOOR))
            if value > BIGINT_MAX:
                break
            out.append(value)
    return tuple(out)


def oracle_level(base: int, factor: float, xp: int) -> int:
    return min(MAX_LEVEL, 1 + sum(1 for required in oracle_thresholds(base, factor) if required <= xp))


# ---- §10.1 curve -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "xp"), sorted(SPEC_TABLE.items()))
def test_spec_table_with_defaults(level: int, xp: int) -> None:
    assert DEFAULT.xp_to_reach(level) == xp
    assert DEFAULT.level(xp) == level
    if level > 1:
        assert DEFAULT.level(xp - 1) == level - 1


def test_required_is_the_floor_of_the_formula() -> None:
    # 100 × 1.25 = 125 exactly; 100 × 1.25² = 156.25 → 156; 100 × 1.25³ = 195.3125 → 195.
    assert [DEFAULT.required(level) for level in (1, 2, 3)] == [125, 156, 195]


def test_factor_is_taken_as_its_decimal_string_not_the_binary_float() -> None:
    # In binary floating point 100 × 1.15 is 114.99999999999999, which would floor to 114.
    assert 100 * 1.15 < 115
    assert curve_for(100, 1.15).required(1) == 115
    assert curve_for(100, 1.15).level(115) == 2


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("base", [10, 100, 1234, 1_000_000])
def test_whole_table_matches_an_independent_decimal_computation(base: int, factor: float) -> None:
    curve = LevelCurve(base, factor)
    expected = oracle_thresholds(base, factor)
    assert [curve.required(level) for level in range(1, len(expected) + 1)] == list(expected)
    if len(expected) < MAX_LEVEL - 1:
        assert curve.required(len(expected) + 1) == UNREACHABLE


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([10, 37, 100, 999, 50_000, 1_000_000]),
    factor=st.sampled_from(FACTORS),
    xp=st.one_of(st.integers(0, 20_000), st.integers(0, BIGINT_MAX)),
)
def test_level_matches_the_counting_definition(base: int, factor: float, xp: int) -> None:
    assert curve_for(base, factor).level(xp) == oracle_level(base, factor, xp)


@settings(max_examples=200, deadline=None)
@given(factor=st.sampled_from(FACTORS), base=st.integers(10, 1_000_000), xp=st.integers(0, BIGINT_MAX))
def test_progress_is_consistent_with_level(base: int, factor: float, xp: int) -> None:
    curve = curve_for(base, factor)
    level, into, span = curve.progress(xp)
    assert level == curve.level(xp)
    assert 1 <= level <= MAX_LEVEL
    assert into == xp - curve.xp_to_reach(level) >= 0
    if span:
        assert into < span == curve.required(level) - curve.xp_to_reach(level)


def test_level_boundaries_and_floor_of_one() -> None:
    assert DEFAULT.level(0) == 1
    assert DEFAULT.level(124) == 1
    assert DEFAULT.level(125) == 2
    assert DEFAULT.level(155) == 2
    assert DEFAULT.level(156) == 3
    with pytest.raises(ValueError, match="never negative"):
        DEFAULT.level(-1)


def test_equal_thresholds_cross_several_levels_at_once() -> None:
    # 10 × 1.01^L floors to 10 for L = 1..9 (10 × 1.01^9 ≈ 10.94): reaching 10 XP leaves nine levels together.
    curve = curve_for(10, 1.01)
    assert {curve.required(level) for level in range(1, 10)} == {10}
    assert curve.required(10) == 11
    assert curve.level(9) == 1
    assert curve.level(10) == 10
    assert curve.level(11) == 19  # 11 is again shared, by levels 10..18 (10 × 1.01^19 ≈ 12.08)


def test_level_never_exceeds_max_level() -> None:
    curve = curve_for(10, 1.01)  # the flattest allowed curve: all 999 thresholds are small
    top = curve.xp_to_reach(MAX_LEVEL)
    assert top == curve.required(MAX_LEVEL - 1) < 1_000_000
    assert curve.level(top - 1) == MAX_LEVEL - 1
    assert curve.level(top) == MAX_LEVEL
    assert curve.level(BIGINT_MAX) == MAX_LEVEL
    assert curve.progress(top + 5) == (MAX_LEVEL, 5, 0)
    # required() is still defined past the cap (level 1000's own threshold and beyond) and keeps growing.
    assert top < curve.required(MAX_LEVEL) <= curve.required(MAX_LEVEL + 1)


def test_thresholds_beyond_bigint_are_unreachable() -> None:
    curve = curve_for(1_000_000, 5.0)  # the steepest allowed curve
    assert curve.required(18) == 1_000_000 * 5**18 <= BIGINT_MAX
    assert BIGINT_MAX < 1_000_000 * 5**19
    assert curve.required(19) == curve.required(500) == curve.required(5000) == UNREACHABLE
    assert curve.xp_to_reach(20) == UNREACHABLE
    assert curve.level(BIGINT_MAX) == 19
    level, into, span = curve.progress(BIGINT_MAX)
    assert (level, into, span) == (19, BIGINT_MAX - 1_000_000 * 5**18, 0)


def test_level_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="≥ 1"):
        DEFAULT.required(0)
    with pytest.raises(ValueError, match="within"):
        DEFAULT.xp_to_reach(0)
    with pytest.raises(ValueError, match="within"):
        DEFAULT.xp_to_reach(MAX_LEVEL + 1)


@pytest.mark.parametrize(("base", "factor"), [(0, 1.25), (-5, 1.25), (100, 0.99), (100, float("nan")), (100, 1e400)])
def test_bad_curves_are_rejected(base: int, factor: float) -> None:
    with pytest.raises(ValueError, match="level_"):
        LevelCurve(base, factor)


def test_curves_are_cached_and_immutable() -> None:
    assert curve_for(100, 1.25) is curve_for(100, 1.25)
    assert curve_for(100, 1.25) == LevelCurve(100, 1.25) != LevelCurve(101, 1.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.base = 5  # type: ignore[misc]


def test_every_curve_in_use_stays_shared_however_many_there_are() -> None:
    """No cliff: with far more distinct curves in use than any fixed cache size, none is ever rebuilt."""
    in_use = [curve_for(1000 + i, 1.01) for i in range(300)]  # factor 1.01: full 1,000-level tables
    assert all(curve_for(1000 + i, 1.01) is curve for i, curve in enumerate(in_use))


def test_a_guild_configuration_holds_its_curve() -> None:
    from synapse_async.rewards.config import GuildConfig
    from synapse_async.settings import ResolvedSettings

    config = GuildConfig(1, settings=ResolvedSettings({"leveling.level_base": 777, "leveling.level_factor": 1.3}))
    for i in range(300):  # many other curves built and dropped meanwhile
        curve_for(5000 + i, 1.02)
    assert config.curve is curve_for(777, 1.3) and config.curve.level(1010) == 2  # required(1) = ⌊777 × 1.3⌋


# ---- §10.2 level changes and level-up gold ---------------------------------------------------------------

# base 400, factor 1.25: level 6 = [1220, 1525), level 10 = [2980, 3725), level 12 = [4656, 5820). With these
# thresholds the SPEC §10.2 example (an award of −2000 XP takes level 10 to 6) is actually possible.
EXAMPLE = curve_for(400, 1.25)


def test_spec_example_gold_is_paid_once_per_level_ever_reached() -> None:
    assert (EXAMPLE.xp_to_reach(6), EXAMPLE.xp_to_reach(7)) == (1220, 1525)
    assert (EXAMPLE.xp_to_reach(10), EXAMPLE.xp_to_reach(11)) == (2980, 3725)
    assert (EXAMPLE.xp_to_reach(12), EXAMPLE.xp_to_reach(13)) == (4656, 5820)
    xp = 3300
    assert EXAMPLE.level(xp) == 10

    xp += clamp_delta(xp, -2000)
    down = level_change(EXAMPLE, new_xp=xp, old_level=10, old_peak=10, gold_per_level_up=50)
    assert (down.new_level, down.new_peak, down.levels_gained_above_peak, down.gold_bonus) == (6, 10, 0, 0)
    assert down.changed and not down.announce

    xp += 1700  # back to level 10: the old peak, nothing is paid
    back = level_change(EXAMPLE, new_xp=xp, old_level=down.new_level, old_peak=down.new_peak, gold_per_level_up=50)
    assert (back.old_level, back.new_level, back.new_peak, back.gold_bonus) == (6, 10, 10, 0)
    assert back.changed and not back.announce

    xp += 1800  # 4800 XP: level 12 in one change, paying for levels 11 and 12 only
    up = level_change(EXAMPLE, new_xp=xp, old_level=back.new_level, old_peak=back.new_peak, gold_per_level_up=50)
    assert (up.old_level, up.new_level, up.new_peak) == (10, 12, 12)
    assert (up.levels_gained_above_peak, up.gold_bonus) == (2, 100)
    assert up.changed and up.announce


def test_multi_level_jump_from_a_lower_level_pays_only_above_the_peak() -> None:
    # Level 6 with peak 10 straight to level 12: five levels crossed, two of them new.
    change = level_change(EXAMPLE, new_xp=4800, old_level=6, old_peak=10, gold_per_level_up=50)
    assert (change.new_level, change.levels_gained_above_peak, change.gold_bonus, change.new_peak) == (12, 2, 100, 12)


def test_multi_level_drop_in_one_change_keeps_the_peak() -> None:
    change = level_change(DEFAULT, new_xp=0, old_level=16, old_peak=16, gold_per_level_up=50)
    assert change == LevelChange(16, 1, 16, 16, 0, 0, True)
    assert change.changed and not change.announce


def test_first_level_up_from_a_fresh_member() -> None:
    change = level_change(DEFAULT, new_xp=200, old_level=1, old_peak=1, gold_per_level_up=50)
    assert (change.new_level, change.levels_gained_above_peak, change.gold_bonus) == (4, 3, 150)
    assert change.announce


def test_unchanged_level_is_a_no_op() -> None:
    change = level_change(DEFAULT, new_xp=130, old_level=2, old_peak=2, gold_per_level_up=50)
    assert not change.changed and not change.announce
    assert (change.new_peak, change.gold_bonus) == (2, 0)


def test_no_gold_contexts_raise_the_peak_without_paying_or_announcing() -> None:
    imported = level_change(DEFAULT, new_xp=1200, old_level=1, old_peak=1, gold_per_level_up=50, pay_gold=False)
    assert (imported.new_level, imported.new_peak, imported.levels_gained_above_peak) == (12, 12, 11)
    assert imported.gold_bonus == 0
    assert imported.changed and not imported.announce
    # Those levels now count as reached: later climbing pays only above 12.
    later = level_change(DEFAULT, new_xp=1500, old_level=12, old_peak=12, gold_per_level_up=50)
    assert (later.new_level, later.gold_bonus) == (13, 50)


def test_zero_gold_per_level_still_announces_a_new_peak() -> None:
    change = level_change(DEFAULT, new_xp=125, old_level=1, old_peak=1, gold_per_level_up=0)
    assert change.gold_bonus == 0 and change.announce


def test_level_change_is_capped_at_max_level() -> None:
    curve = curve_for(10, 1.01)
    change = level_change(curve, new_xp=BIGINT_MAX, old_level=998, old_peak=998, gold_per_level_up=7)
    assert (change.new_level, change.levels_gained_above_peak, change.gold_bonus) == (MAX_LEVEL, 2, 14)


def test_negative_gold_per_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="gold_per_level_up"):
        level_change(DEFAULT, new_xp=200, old_level=1, old_peak=1, gold_per_level_up=-1)


@settings(max_examples=200, deadline=None)
@given(
    factor=st.sampled_from([1.1, 1.25, 2.0]),
    deltas=st.lists(st.integers(-50_000, 50_000), max_size=40),
    gold_per_level=st.integers(0, 1000),
)
def test_any_history_pays_each_level_once_and_keeps_level_equal_to_curve(
    factor: float, deltas: list[int], gold_per_level: int
) -> None:
    """SPEC §27 item 4 over arbitrary award sequences, negative ones clamped as in §10.3."""
    curve = curve_for(100, factor)
    xp, level, peak, paid, announcements, highest_seen = 0, 1, 1, 0, 0, 1
    for delta in deltas:
        xp += clamp_delta(xp, delta)
        change = level_change(curve, new_xp=xp, old_level=level, old_peak=peak, gold_per_level_up=gold_per_level)
        if change.changed:
            level, peak = change.new_level, change.new_peak
        paid += change.gold_bonus
        announcements += change.announce
        assert xp >= 0
        assert level == curve.level(xp)
        highest_seen = max(highest_seen, level)
        assert peak == highest_seen
    assert paid == (peak - 1) * gold_per_level
    assert announcements <= peak - 1


# ---- §10.3 clamping --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "delta", "applied"),
    [(100, 50, 50), (100, -30, -30), (100, -100, -100), (100, -300, -100), (0, -5, 0), (0, 0, 0), (-5, -3, 0)],
)
def test_clamp_delta(balance: int, delta: int, applied: int) -> None:
    assert clamp_delta(balance, delta) == applied


@given(balance=st.integers(0, BIGINT_MAX), delta=st.integers(-(2**64), 2**64))
def test_clamped_balance_never_goes_below_zero(balance: int, delta: int) -> None:
    applied = clamp_delta(balance, delta)
    assert balance + applied >= 0
    assert applied == delta or (delta < 0 and balance + applied == 0)
