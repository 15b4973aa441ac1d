"""`rewards/explain` core (SPEC §9.1, §20): the explanation is the trace of the pipeline's own resolution.

Pure unit tests over hand-built `GuildConfig`s: the trace lists exactly the lookups the first-hit rule makes, and
on random configurations the explanation agrees with what the reward formula itself records for a paid item.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.rewards.config import ChannelInfo, GuildConfig, Multiplier, NoXpTargets
from synapse_async.rewards.formula import REWARD_KINDS, RewardInput, compute_reward
from synapse_async.rewards.multipliers import explain, is_no_xp, no_xp_hits, resolve_channel_multiplier
from synapse_async.settings import ResolvedSettings

CATEGORY, TEXT, LOOSE, VOICE, THREAD, UNKNOWN = 100, 10, 11, 20, 900, 555
CHANNELS = {
    CATEGORY: ChannelInfo(CATEGORY, "cat", "category", None, False),
    TEXT: ChannelInfo(TEXT, "general", "text", CATEGORY, False),
    LOOSE: ChannelInfo(LOOSE, "loose", "text", None, False),
    VOICE: ChannelInfo(VOICE, "lounge", "voice", CATEGORY, True),  # soft-deleted: still resolves
}


def guild(
    overrides: dict[tuple[int, str], Multiplier] | None = None,
    type_defaults: dict[tuple[str, str], Multiplier] | None = None,
    roles: dict[int, Multiplier] | None = None,
    no_xp: NoXpTargets | None = None,
) -> GuildConfig:
    return GuildConfig(
        guild_id=1,
        settings=ResolvedSettings({}),
        channels=CHANNELS,
        overrides=overrides or {},
        type_defaults=type_defaults or {},
        role_multipliers=roles or {},
        no_xp=no_xp or NoXpTargets(),
    )


def steps(out: dict[str, object]) -> list[dict[str, Any]]:
    value = out["steps"]
    assert isinstance(value, list)
    return value


def test_a_thread_walks_every_step_down_to_the_type_default() -> None:
    g = guild(type_defaults={("text", "*"): Multiplier(2.0, 0.5)})
    out = explain(g, THREAD, TEXT, "message")
    s = steps(out)
    miss = [{"event_type": "message", "found": False}, {"event_type": "*", "found": False}]
    assert [x["lookups"] for x in s[:3]] == [miss, miss, miss]
    assert [x["target_id"] for x in s[:3]] == [str(THREAD), str(TEXT), str(CATEGORY)]
    assert s[3]["lookups"] == [{"event_type": "message", "found": False}, {"event_type": "*", "found": True}]
    assert [x["consulted"] for x in s] == [True, True, True, True, False]
    assert out["channel_rule"] == "type_default" and out["channel_rule_event_type"] == "*"
    assert out["channel_multiplier"] == {"xp": 2.0, "stars": 0.5, "rule": "type_default"}


def test_the_first_hit_wins_even_over_a_more_specific_later_step() -> None:
    g = guild(
        overrides={(THREAD, "*"): Multiplier(0.5, 1.0), (TEXT, "message"): Multiplier(9.0, 9.0)},
        type_defaults={("text", "message"): Multiplier(3.0, 3.0)},
    )
    out = explain(g, THREAD, TEXT, "message")
    s = steps(out)
    assert s[0]["lookups"] == [{"event_type": "message", "found": False}, {"event_type": "*", "found": True}]
    assert [x["consulted"] for x in s] == [True, False, False, False, False]
    assert [x["lookups"] for x in s[1:4]] == [[], [], []]  # never looked at: nothing to report
    assert out["final_multiplier"] == {"xp": 0.5, "stars": 1.0}


def test_an_unknown_channel_has_no_type_or_category_steps() -> None:
    out = explain(guild(type_defaults={("text", "*"): Multiplier(2.0, 2.0)}), UNKNOWN, None, "reaction_given")
    s = steps(out)
    assert [x["applies"] for x in s] == [True, False, False, False, True]
    assert out["channel_type"] is None and out["channel_rule"] == "default"
    assert s[4] == {"step": 5, "rule": "default", "applies": True, "consulted": True, "matched": True}


def test_role_factors_are_independent_maxima_and_no_xp_names_every_hit() -> None:
    g = guild(
        roles={1: Multiplier(2.0, 0.5), 2: Multiplier(1.5, 3.0)},
        no_xp=NoXpTargets(channels=frozenset({CATEGORY, THREAD}), roles=frozenset({2})),
    )
    out = explain(g, THREAD, TEXT, "message", (1, 2, 2, 3))
    assert out["role_factors"] == [{"role_id": "1", "xp": 2.0, "stars": 0.5}, {"role_id": "2", "xp": 1.5, "stars": 3.0}]
    assert out["role_multiplier"] == {"xp": 2.0, "stars": 3.0}
    assert out["no_xp"] == {"applies": True, "channel_ids": [str(THREAD), str(CATEGORY)], "role_ids": ["2"]}
    assert out["final_multiplier"] == {"xp": 0.0, "stars": 0.0}
    assert no_xp_hits(g, LOOSE, None, (1,)) == ((), ())
    assert not is_no_xp(g, LOOSE, None, (1,))
    assert is_no_xp(g, VOICE, None, ())  # its category is a no-XP target


# --- agreement with the formula on random configurations ----------------------------------------------------------

_mult = st.builds(Multiplier, st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.25]), st.sampled_from([0.0, 1.0, 2.5]))
_keys = st.sampled_from([*REWARD_KINDS, "*"])
_places = st.sampled_from([CATEGORY, TEXT, LOOSE, VOICE, THREAD])
_where = st.sampled_from([(TEXT, None), (LOOSE, None), (VOICE, None), (THREAD, TEXT), (THREAD, LOOSE), (UNKNOWN, None)])


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(st.tuples(_places, _keys), _mult, max_size=8),
    type_defaults=st.dictionaries(st.tuples(st.sampled_from(["text", "voice"]), _keys), _mult, max_size=4),
    roles=st.dictionaries(st.integers(1, 4), _mult, max_size=3),
    no_xp_channels=st.frozensets(_places, max_size=1),
    no_xp_roles=st.frozensets(st.integers(1, 6), max_size=1),
    where=_where,
    member_roles=st.lists(st.integers(1, 6), max_size=4),
)
def test_the_explanation_is_what_the_formula_records(
    overrides: dict[tuple[int, str], Multiplier],
    type_defaults: dict[tuple[str, str], Multiplier],
    roles: dict[int, Multiplier],
    no_xp_channels: frozenset[int],
    no_xp_roles: frozenset[int],
    where: tuple[int, int | None],
    member_roles: list[int],
) -> None:
    g = guild(overrides, type_defaults, roles, NoXpTargets(no_xp_channels, no_xp_roles))
    channel, parent = where
    # A thread creation has no anti-gaming preconditions: the formula's outcome depends on the multipliers only.
    reward = compute_reward(RewardInput("thread_create", channel, parent, tuple(member_roles)), g)
    out = explain(g, channel, parent, "thread_create", member_roles)
    no_xp = out["no_xp"]
    assert isinstance(no_xp, dict)
    assert no_xp["applies"] is (reward.zero_reason == "no_xp")
    if reward.zero_reason is None:
        assert out["channel_multiplier"] == reward.details["channel_multiplier"]
        assert out["role_multiplier"] == reward.details["role_multiplier"]
    multiplier, rule = resolve_channel_multiplier(g, channel, parent, "thread_create")
    assert out["channel_rule"] == rule and out["channel_multiplier"] == {
        "xp": multiplier.xp,
        "stars": multiplier.stars,
        "rule": rule,
    }
    matched = [x for x in steps(out) if x["matched"]]
    assert len(matched) == 1 and matched[0]["rule"] == rule and matched[0]["consulted"]
