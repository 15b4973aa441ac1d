"""The pure reward core of SPEC §9: multipliers (§9.1), quality (§9.2) and the formula (§9.4).

No database: every input is built here, so each expected amount can be worked out by hand from the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.domain.metadata import MessageMetadata
from synapse_async.rewards.config import ChannelInfo, GuildConfig, Multiplier, NoXpTargets
from synapse_async.rewards.formula import (
    REWARD_KINDS,
    Reward,
    RewardInput,
    RewardKind,
    compute_reward,
    cooldown_active,
)
from synapse_async.rewards.multipliers import (
    explain,
    is_no_xp,
    resolve_channel_multiplier,
    role_multiplier,
)
from synapse_async.rewards.quality import quality
from synapse_async.settings import ResolvedSettings

# Layout: category 100 holds text channel 10 and forum 12; text channel 11 has no category; category 101 holds
# voice channel 20. Thread 900 lives in channel 10 (threads are not stored, their parent arrives with the event).
CATEGORY, TEXT, TEXT_NO_CAT, FORUM, VOICE_CAT, VOICE, THREAD = 100, 10, 11, 12, 101, 20, 900
CHANNELS = {
    CATEGORY: ChannelInfo(CATEGORY, "cat", "category", None, False),
    TEXT: ChannelInfo(TEXT, "general", "text", CATEGORY, False),
    TEXT_NO_CAT: ChannelInfo(TEXT_NO_CAT, "loose", "text", None, False),
    FORUM: ChannelInfo(FORUM, "forum", "forum", CATEGORY, False),
    VOICE_CAT: ChannelInfo(VOICE_CAT, "vc", "category", None, False),
    VOICE: ChannelInfo(VOICE, "lounge", "voice", VOICE_CAT, False),
}


def make_guild(
    settings_overrides: Mapping[str, object] | None = None,
    *,
    overrides: Mapping[tuple[int, str], Multiplier] | None = None,
    type_defaults: Mapping[tuple[str, str], Multiplier] | None = None,
    roles: Mapping[int, Multiplier] | None = None,
    no_xp: NoXpTargets | None = None,
) -> GuildConfig:
    return GuildConfig(
        guild_id=1,
        settings=ResolvedSettings(dict(settings_overrides or {})),
        channels=CHANNELS,
        overrides=dict(overrides or {}),
        type_defaults=dict(type_defaults or {}),
        role_multipliers=dict(roles or {}),
        no_xp=no_xp or NoXpTargets(),
    )


def meta(
    length: int = 50,
    *,
    code: bool = False,
    links: int = 0,
    attachments: int = 0,
    emoji: int = 0,
) -> MessageMetadata:
    return MessageMetadata(
        length=length,
        word_count=max(1, length // 5),
        has_code_block=code,
        has_link=links > 0,
        link_count=links,
        attachment_count=attachments,
        mention_count=0,
        emoji_count=emoji,
        is_reply=False,
        reply_to_user_id=None,
    )


def message(
    channel: int | None = TEXT, parent: int | None = None, roles: tuple[int, ...] = (), **kw: Any
) -> RewardInput:
    m = kw.pop("m", None) or meta()
    return RewardInput("message", channel, parent, roles, meta=m, **kw)


def reaction(kind: RewardKind = "reaction_given", **kw: Any) -> RewardInput:
    kw.setdefault("reactor_id", 7)
    kw.setdefault("author_id", 8)
    return RewardInput(kind, kw.pop("channel", TEXT), kw.pop("parent", None), kw.pop("roles", ()), **kw)


def paid(reward: Reward) -> tuple[int, int, str | None]:
    return reward.xp, reward.stars, reward.zero_reason


DEFAULT = make_guild()

# --- §9.2 quality ------------------------------------------------------------------------------------------------


def test_quality_extremes_with_defaults() -> None:
    s = DEFAULT.settings
    assert quality(meta(50), s) == 1.0
    lowest = quality(meta(50, emoji=6), s)
    highest = quality(meta(501, code=True, links=1, attachments=1), s)
    assert lowest == pytest.approx(0.5)
    assert highest == pytest.approx(2.8875)
    # ... so a message earns 7–43 XP before multipliers (§9.2).
    assert paid(compute_reward(message(m=meta(50, emoji=6)), DEFAULT)) == (7, 1, None)
    assert paid(compute_reward(message(m=meta(501, code=True, links=1, attachments=1)), DEFAULT)) == (43, 1, None)


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        (meta(200), 1.0),  # "longer than" is strict
        (meta(201), 1.2),
        (meta(500), 1.2),
        (meta(501), 1.5),  # long replaces medium, never both
        (meta(50, code=True), 1.4),
        (meta(50, links=3), 1.25),
        (meta(50, attachments=2), 1.1),
        (meta(50, emoji=5), 1.0),  # at the threshold: no penalty
        (meta(50, emoji=6), 0.5),
        (meta(201, code=True, emoji=9), 1.2 * 1.4 * 0.5),
    ],
)
def test_quality_factors(m: MessageMetadata, expected: float) -> None:
    assert quality(m, DEFAULT.settings) == pytest.approx(expected)


def test_quality_floor_applies_to_the_product() -> None:
    s = ResolvedSettings({"quality.emoji_spam_penalty": 0.0, "quality.floor": 0.1})
    assert quality(meta(50, emoji=6), s) == pytest.approx(0.1)
    s = ResolvedSettings({"quality.floor": 1.0})
    assert quality(meta(50, emoji=6), s) == 1.0


# --- §9.1 channel multipliers ------------------------------------------------------------------------------------

# Every rule level for a message in thread 900 (parent 10 "text", category 100), best first; removing the rule that
# matched exposes the next one. Star factors differ from XP factors so both currencies are checked independently.
LADDER: list[tuple[str, tuple[Any, ...], Multiplier, str, int, int]] = [
    ("overrides", (THREAD, "message"), Multiplier(2.0, 5.0), "override:channel", 30, 5),
    ("overrides", (THREAD, "*"), Multiplier(1.9, 4.0), "override:channel", 28, 4),
    ("overrides", (TEXT, "message"), Multiplier(1.8, 3.0), "override:parent", 27, 3),
    ("overrides", (TEXT, "*"), Multiplier(1.7, 2.0), "override:parent", 25, 2),
    ("overrides", (CATEGORY, "message"), Multiplier(1.6, 6.0), "override:category", 24, 6),
    ("overrides", (CATEGORY, "*"), Multiplier(1.5, 7.0), "override:category", 22, 7),
    ("type_defaults", ("text", "message"), Multiplier(1.4, 8.0), "type_default", 21, 8),
    ("type_defaults", ("text", "*"), Multiplier(1.3, 9.0), "type_default", 19, 9),
]


@pytest.mark.parametrize("level", range(len(LADDER) + 1))
def test_channel_multiplier_first_hit_wins_at_every_level(level: int) -> None:
    tables: dict[str, dict[Any, Multiplier]] = {"overrides": {}, "type_defaults": {}}
    for table, key, mult, *_ in LADDER[level:]:
        tables[table][key] = mult
    # Noise that must never match: other kinds, other channels, other types.
    tables["overrides"][(THREAD, "reaction_given")] = Multiplier(9.0, 9.0)
    tables["overrides"][(TEXT_NO_CAT, "*")] = Multiplier(9.0, 9.0)
    tables["type_defaults"][("forum", "*")] = Multiplier(9.0, 9.0)
    guild = make_guild(overrides=tables["overrides"], type_defaults=tables["type_defaults"])

    if level < len(LADDER):
        _, _, mult, rule, xp, stars = LADDER[level]
    else:
        mult, rule, xp, stars = Multiplier(1.0, 1.0), "default", 15, 1
    assert resolve_channel_multiplier(guild, THREAD, TEXT, "message") == (mult, rule)
    reward = compute_reward(message(THREAD, TEXT), guild)
    assert paid(reward) == (xp, stars, None)
    assert reward.details["channel_multiplier"] == {"xp": mult.xp, "stars": mult.stars, "rule": rule}


def test_non_thread_channel_uses_its_own_overrides_and_category() -> None:
    guild = make_guild(overrides={(TEXT, "message"): Multiplier(2.0, 1.0), (CATEGORY, "*"): Multiplier(3.0, 1.0)})
    assert resolve_channel_multiplier(guild, TEXT, None, "message") == (Multiplier(2.0, 1.0), "override:channel")
    assert resolve_channel_multiplier(guild, FORUM, None, "message") == (Multiplier(3.0, 1.0), "override:category")
    assert resolve_channel_multiplier(guild, TEXT_NO_CAT, None, "message") == (Multiplier(1.0, 1.0), "default")
    assert paid(compute_reward(message(FORUM), guild)) == (45, 1, None)


def test_thread_type_default_is_the_parents_type() -> None:
    # Threads are not stored: `T` is the type of the parent (forum), not of the thread.
    guild = make_guild(
        type_defaults={("forum", "thread_create"): Multiplier(2.0, 2.0), ("text", "*"): Multiplier(0.5, 0.5)}
    )
    item = RewardInput("thread_create", 901, FORUM, ())
    assert paid(compute_reward(item, guild)) == (40, 4, None)
    item = RewardInput("thread_create", 901, TEXT_NO_CAT, ())
    assert paid(compute_reward(item, guild)) == (10, 1, None)


def test_unknown_channel_falls_back_to_neutral() -> None:
    guild = make_guild(type_defaults={("text", "*"): Multiplier(2.0, 2.0)})
    assert resolve_channel_multiplier(guild, 12345, None, "message") == (Multiplier(1.0, 1.0), "default")
    assert resolve_channel_multiplier(guild, None, None, "message") == (Multiplier(1.0, 1.0), "default")
    # An unknown thread parent cannot give a type or a category, but its own override still applies.
    guild = make_guild(overrides={(555, "*"): Multiplier(3.0, 1.0)})
    assert resolve_channel_multiplier(guild, 901, 555, "message") == (Multiplier(3.0, 1.0), "override:parent")


def test_voice_tick_uses_voice_type_and_category() -> None:
    guild = make_guild(
        overrides={(VOICE_CAT, "voice_tick"): Multiplier(1.5, 2.0)},
        type_defaults={("voice", "voice_tick"): Multiplier(3.0, 3.0)},
    )
    assert paid(compute_reward(RewardInput("voice_tick", VOICE, None, ()), guild)) == (15, 2, None)


# --- §9.1 role multipliers and no-XP --------------------------------------------------------------------------------


def test_role_multiplier_takes_highest_xp_and_star_independently() -> None:
    guild = make_guild(roles={501: Multiplier(2.0, 0.5), 502: Multiplier(1.5, 3.0), 503: Multiplier(0.0, 0.0)})
    assert role_multiplier(guild, (501, 502, 503, 999)) == Multiplier(2.0, 3.0)
    assert role_multiplier(guild, (999,)) == Multiplier(1.0, 1.0)
    assert role_multiplier(guild, ()) == Multiplier(1.0, 1.0)
    # A single row below 1 is applied as is (it is the highest among rows).
    assert role_multiplier(guild, (503, 999)) == Multiplier(0.0, 0.0)
    assert paid(compute_reward(message(roles=(501, 502)), guild)) == (30, 3, None)


def test_channel_and_role_multipliers_multiply() -> None:
    guild = make_guild(overrides={(TEXT, "*"): Multiplier(1.5, 2.0)}, roles={501: Multiplier(2.0, 1.5)})
    assert paid(compute_reward(message(roles=(501,)), guild)) == (45, 3, None)
    # Quality is XP only: 15 × 1.4 × 1.5 × 2 = 63 XP, stars 1 × 2 × 1.5 = 3.
    assert paid(compute_reward(message(roles=(501,), m=meta(50, code=True)), guild)) == (63, 3, None)


@pytest.mark.parametrize(
    ("targets", "channel", "parent", "roles"),
    [
        (NoXpTargets(channels=frozenset({TEXT})), TEXT, None, ()),  # C
        (NoXpTargets(channels=frozenset({THREAD})), THREAD, TEXT, ()),  # C is the thread itself
        (NoXpTargets(channels=frozenset({TEXT})), THREAD, TEXT, ()),  # B: the thread's parent
        (NoXpTargets(channels=frozenset({CATEGORY})), THREAD, TEXT, ()),  # G: the parent's category
        (NoXpTargets(channels=frozenset({CATEGORY})), FORUM, None, ()),  # G of a plain channel
        (NoXpTargets(roles=frozenset({77})), TEXT_NO_CAT, None, (5, 77)),  # a role
    ],
)
def test_no_xp_targets(targets: NoXpTargets, channel: int, parent: int | None, roles: tuple[int, ...]) -> None:
    guild = make_guild(no_xp=targets, overrides={(TEXT, "*"): Multiplier(5.0, 5.0)})
    assert is_no_xp(guild, channel, parent, roles)
    assert paid(compute_reward(message(channel, parent, roles), guild)) == (0, 0, "no_xp")
    assert paid(compute_reward(reaction(channel=channel, parent=parent, roles=roles), guild)) == (0, 0, "no_xp")


def test_no_xp_misses_unrelated_targets() -> None:
    guild = make_guild(no_xp=NoXpTargets(channels=frozenset({TEXT_NO_CAT, VOICE_CAT}), roles=frozenset({77})))
    assert not is_no_xp(guild, THREAD, TEXT, (5,))
    assert not is_no_xp(guild, FORUM, None, ())
    assert is_no_xp(guild, VOICE, None, ())
    assert paid(compute_reward(message(THREAD, TEXT, (5,)), guild)) == (15, 1, None)


# --- §9.4 zero reasons, in order -------------------------------------------------------------------------------


def test_message_zero_reasons_in_order() -> None:
    no_xp = make_guild(no_xp=NoXpTargets(channels=frozenset({TEXT})))
    short = meta(4)
    assert paid(compute_reward(message(m=short, cooldown_active=True), no_xp)) == (0, 0, "no_xp")
    assert paid(compute_reward(message(m=short, cooldown_active=True), DEFAULT)) == (0, 0, "too_short")
    assert paid(compute_reward(message(m=meta(5), cooldown_active=True), DEFAULT)) == (0, 0, "cooldown")
    assert paid(compute_reward(message(m=meta(5)), DEFAULT)) == (15, 1, None)  # length == min_length is enough


def test_too_short_only_without_attachments() -> None:
    # An attachment-only message is not too short, and gets the attachment bonus: floor(15 × 1.1) = 16.
    assert paid(compute_reward(message(m=meta(0, attachments=1)), DEFAULT)) == (16, 1, None)
    assert paid(compute_reward(message(m=meta(0)), DEFAULT)) == (0, 0, "too_short")
    no_minimum = make_guild({"message.min_length": 0})
    assert paid(compute_reward(message(m=meta(0)), no_minimum)) == (15, 1, None)


@pytest.mark.parametrize("kind", ["reaction_given", "reaction_received"])
def test_reaction_zero_reasons_in_order(kind: RewardKind) -> None:
    everything = {"author_id": 7, "author_is_bot": True, "pair_count": 3, "reactor_count": 10}
    assert paid(compute_reward(reaction(kind, author_unknown=True, **everything), DEFAULT)) == (0, 0, "unknown_target")
    assert paid(compute_reward(reaction(kind, **everything), DEFAULT)) == (0, 0, "self")
    everything["author_id"] = 8
    assert paid(compute_reward(reaction(kind, **everything), DEFAULT)) == (0, 0, "bot_target")
    everything["author_is_bot"] = False
    assert paid(compute_reward(reaction(kind, **everything), DEFAULT)) == (0, 0, "pair_cap")
    everything["pair_count"] = 0
    expected = (0, 0, "reactor_cap") if kind == "reaction_received" else (2, 1, None)
    assert paid(compute_reward(reaction(kind, **everything), DEFAULT)) == expected


def test_unknown_author_id_is_unknown_target() -> None:
    assert paid(compute_reward(reaction(author_id=None), DEFAULT)) == (0, 0, "unknown_target")


def test_caps_are_reached_at_equality() -> None:
    assert paid(compute_reward(reaction(pair_count=2), make_guild({"reactions.pair_decay": 0.0}))) == (2, 1, None)
    assert paid(compute_reward(reaction(pair_count=3), DEFAULT)) == (0, 0, "pair_cap")
    assert paid(compute_reward(reaction("reaction_received", reactor_count=9), DEFAULT)) == (3, 1, None)
    assert paid(compute_reward(reaction("reaction_received", reactor_count=10), DEFAULT)) == (0, 0, "reactor_cap")


def test_voice_hourly_cap() -> None:
    tick = RewardInput("voice_tick", VOICE, None, (), paid_ticks_last_hour=5)
    assert paid(compute_reward(tick, DEFAULT)) == (10, 1, None)
    tick = RewardInput("voice_tick", VOICE, None, (), paid_ticks_last_hour=6)
    assert paid(compute_reward(tick, DEFAULT)) == (0, 0, "hourly_cap")
    # no_xp is checked before the hourly cap.
    no_xp = make_guild(no_xp=NoXpTargets(channels=frozenset({VOICE})))
    assert paid(compute_reward(tick, no_xp)) == (0, 0, "no_xp")


def test_thread_create_pays_its_base() -> None:
    assert paid(compute_reward(RewardInput("thread_create", THREAD, TEXT, ()), DEFAULT)) == (20, 2, None)


# --- pair decay and the velocity cap --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decay", "pairs", "expected"),
    [
        (1.0, 0, (30, 6, None)),  # d = 1
        (1.0, 1, (15, 3, None)),  # d = 1/2
        (1.0, 2, (10, 2, None)),  # d = 1/3: 30/3 must floor to 10, not 9
        (0.5, 2, (15, 3, None)),  # d = 1/(1 + 0.5 × 2)
        (0.0, 4, (30, 6, None)),  # decay off
        (10.0, 1, (2, 0, None)),  # d = 1/11: stars floor to 0 without a reason
    ],
)
def test_pair_decay(decay: float, pairs: int, expected: tuple[int, int, None]) -> None:
    guild = make_guild(
        {
            "reactions.pair_decay": decay,
            "reactions.pair_cap": 5,
            "rewards.reaction_given.xp": 30,
            "rewards.reaction_given.stars": 6,
        }
    )
    reward = compute_reward(reaction(pair_count=pairs), guild)
    assert paid(reward) == expected
    assert reward.details["decay"] == pytest.approx(1 / (1 + decay * pairs))


@pytest.mark.parametrize(
    ("window", "age", "reactors", "xp"),
    [
        (300, 299.9, 5, 1),  # fresh message, enough reactors: capped
        (300, 0.0, 9, 1),
        (300, 300.0, 5, 3),  # age == window is no longer inside it
        (300, 299.9, 4, 3),  # too few reactors
        (0, 1.0, 9, 3),  # window 0 = off
        (0, -5.0, 9, 3),  # off even for a negative age (reaction clock behind the snowflake time)
        (300, -5.0, 5, 1),  # a negative age is inside an active window
        (300, None, 9, 3),  # unknown age: no cap
    ],
)
def test_velocity_cap(window: int, age: float | None, reactors: int, xp: int) -> None:
    guild = make_guild({"reactions.velocity_window_seconds": window})
    item = reaction("reaction_received", reactor_count=reactors, message_age_seconds=age)
    reward = compute_reward(item, guild)
    assert paid(reward) == (xp, 1, None)  # stars are never velocity-capped
    assert reward.details.get("velocity_capped", False) is (xp == 1)


def test_velocity_cap_only_for_reaction_received() -> None:
    item = reaction("reaction_given", reactor_count=9, message_age_seconds=1.0)
    assert paid(compute_reward(item, DEFAULT)) == (2, 1, None)


def test_velocity_cap_of_zero_zeroes_xp_without_reason() -> None:
    guild = make_guild({"reactions.velocity_xp_cap": 0})
    item = reaction("reaction_received", reactor_count=5, message_age_seconds=10.0)
    assert paid(compute_reward(item, guild)) == (0, 1, None)


# --- multiplier 0, epsilon, misc ----------------------------------------------------------------------------------


def test_multiplier_zero_yields_zero_without_reason() -> None:
    guild = make_guild(overrides={(TEXT, "*"): Multiplier(0.0, 1.0)}, roles={5: Multiplier(1.0, 0.0)})
    assert paid(compute_reward(message(), guild)) == (0, 1, None)
    assert paid(compute_reward(message(roles=(5,)), guild)) == (0, 0, None)
    guild = make_guild(type_defaults={("text", "*"): Multiplier(2.0, 0.0)})
    assert paid(compute_reward(message(), guild)) == (30, 0, None)


def test_epsilon_absorbs_binary_rounding() -> None:
    # 45 × 1.4 is 62.99999999999999 in binary floating point; the spec's +1e-9 makes it 63.
    assert math.floor(45 * 1.4) == 62
    guild = make_guild({"rewards.message.xp": 45})
    assert paid(compute_reward(message(m=meta(50, code=True)), guild)) == (63, 1, None)
    guild = make_guild({"rewards.message.xp": 50}, overrides={(TEXT, "*"): Multiplier(2.3, 1.0)})
    assert paid(compute_reward(message(), guild)) == (115, 1, None)


def test_details_record_the_factors() -> None:
    guild = make_guild(overrides={(TEXT, "message"): Multiplier(2.0, 1.0)}, roles={5: Multiplier(1.5, 1.0)})
    reward = compute_reward(message(roles=(5,), m=meta(201)), guild)
    assert reward.details == {
        "base": {"xp": 15, "stars": 1},
        "quality": 1.2,
        "channel_multiplier": {"xp": 2.0, "stars": 1.0, "rule": "override:channel"},
        "role_multiplier": {"xp": 1.5, "stars": 1.0},
    }
    assert reward.xp == 54  # 15 × 1.2 × 2 × 1.5


def test_caller_bugs_raise() -> None:
    with pytest.raises(ValueError, match="metadata"):
        compute_reward(RewardInput("message", TEXT, None, ()), DEFAULT)
    with pytest.raises(ValueError, match="reactor"):
        compute_reward(RewardInput("reaction_given", TEXT, None, (), author_id=3), DEFAULT)


# --- cooldown ------------------------------------------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "seconds", "active"),
    [
        (timedelta(0), 30, True),  # same instant: 0 ≤ 0
        (timedelta(seconds=29, microseconds=999_999), 30, True),
        (timedelta(seconds=30), 30, False),
        (timedelta(seconds=-1), 30, False),  # the last paid message is later (out-of-order delivery)
        (timedelta(0), 0, False),  # 0 = off
    ],
)
def test_cooldown_active(delta: timedelta, seconds: int, active: bool) -> None:
    assert cooldown_active(T0 + delta, T0, seconds) is active


def test_cooldown_without_previous_payment() -> None:
    assert cooldown_active(T0, None, 30) is False


# --- explain ---------------------------------------------------------------------------------------------------------


def test_explain_reports_each_step() -> None:
    guild = make_guild(
        overrides={(CATEGORY, "*"): Multiplier(1.5, 2.0)},
        type_defaults={("text", "message"): Multiplier(3.0, 3.0)},
        roles={5: Multiplier(2.0, 1.0), 6: Multiplier(1.0, 4.0)},
        no_xp=NoXpTargets(roles=frozenset({99})),
    )
    out = explain(guild, THREAD, TEXT, "message", (5, 6, 7))
    assert out["channel_rule"] == "override:category"
    assert out["channel_rule_event_type"] == "*"
    assert out["base_channel_id"] == str(TEXT) and out["category_id"] == str(CATEGORY)
    assert out["channel_type"] == "text" and out["is_thread"] is True
    steps = out["steps"]
    assert isinstance(steps, list)
    assert [s["matched"] for s in steps] == [False, False, True, False, False]
    assert [s["consulted"] for s in steps] == [True, True, True, False, False]
    assert steps[2]["lookups"] == [{"event_type": "message", "found": False}, {"event_type": "*", "found": True}]
    assert out["role_factors"] == [
        {"role_id": "5", "xp": 2.0, "stars": 1.0},
        {"role_id": "6", "xp": 1.0, "stars": 4.0},
    ]
    assert out["role_multiplier"] == {"xp": 2.0, "stars": 4.0}
    assert out["final_multiplier"] == {"xp": 3.0, "stars": 8.0}
    assert out["no_xp"] == {"applies": False, "channel_ids": [], "role_ids": []}

    blocked = explain(guild, TEXT, None, "message", (99,))
    assert blocked["no_xp"] == {"applies": True, "channel_ids": [], "role_ids": ["99"]}
    assert blocked["final_multiplier"] == {"xp": 0.0, "stars": 0.0}
    assert blocked["steps"][1]["applies"] is False  # type: ignore[index]


def test_explain_default_when_nothing_matches() -> None:
    out = explain(DEFAULT, TEXT_NO_CAT, None, "voice_tick")
    assert out["channel_rule"] == "default"
    assert out["steps"][-1] == {"step": 5, "rule": "default", "applies": True, "consulted": True, "matched": True}  # type: ignore[index]
    assert out["final_multiplier"] == {"xp": 1.0, "stars": 1.0}


# --- properties ------------------------------------------------------------------------------------------------------

multipliers = st.builds(
    Multiplier,
    st.integers(0, 10_000).map(lambda n: n / 1000),
    st.integers(0, 10_000).map(lambda n: n / 1000),
)
bonus = st.integers(1000, 5000).map(lambda n: n / 1000)


@st.composite
def guild_settings(draw: st.DrawFn) -> dict[str, object]:
    medium = draw(st.integers(1, 3999))
    out: dict[str, object] = {
        "quality.medium_chars": medium,
        "quality.long_chars": draw(st.integers(medium + 1, 4000)),
        "quality.emoji_spam_threshold": draw(st.integers(0, 100)),
        "quality.emoji_spam_penalty": draw(st.floats(0, 1)),
        "quality.floor": draw(st.floats(0, 1)),
        "message.min_length": draw(st.integers(0, 2000)),
        "reactions.pair_cap": draw(st.integers(1, 100)),
        "reactions.pair_decay": draw(st.floats(0, 10)),
        "reactions.unique_reactor_cap": draw(st.integers(1, 1000)),
        "reactions.velocity_window_seconds": draw(st.integers(0, 86400)),
        "reactions.velocity_min_reactors": draw(st.integers(1, 1000)),
        "reactions.velocity_xp_cap": draw(st.integers(0, 1000)),
        "voice.hourly_tick_cap": draw(st.integers(1, 60)),
    }
    for name in ("medium_bonus", "long_bonus", "code_block_bonus", "link_bonus", "attachment_bonus"):
        out[f"quality.{name}"] = draw(bonus)
    for kind in REWARD_KINDS:
        out[f"rewards.{kind}.xp"] = draw(st.integers(0, 1000))
        out[f"rewards.{kind}.stars"] = draw(st.integers(0, 100))
    return out


@settings(max_examples=400, deadline=None)
@given(
    settings_overrides=guild_settings(),
    kind=st.sampled_from(REWARD_KINDS),
    channel_mult=st.none() | multipliers,
    type_mult=st.none() | multipliers,
    role_mults=st.lists(multipliers, max_size=3),
    m=st.builds(
        meta,
        st.integers(0, 5000),
        code=st.booleans(),
        links=st.integers(0, 3),
        attachments=st.integers(0, 3),
        emoji=st.integers(0, 200),
    ),
    cooldown=st.booleans(),
    author_unknown=st.booleans(),
    same=st.booleans(),
    bot=st.booleans(),
    pairs=st.integers(0, 200),
    reactors=st.integers(0, 2000),
    age=st.none() | st.floats(-10, 100_000),
    ticks=st.integers(0, 100),
)
def test_rewards_are_never_negative_and_bounded(
    settings_overrides: dict[str, object],
    kind: RewardKind,
    channel_mult: Multiplier | None,
    type_mult: Multiplier | None,
    role_mults: list[Multiplier],
    m: MessageMetadata,
    cooldown: bool,
    author_unknown: bool,
    same: bool,
    bot: bool,
    pairs: int,
    reactors: int,
    age: float | None,
    ticks: int,
) -> None:
    guild = make_guild(
        settings_overrides,
        overrides={(THREAD, kind): channel_mult} if channel_mult else {},
        type_defaults={("text", "*"): type_mult} if type_mult else {},
        roles={500 + i: r for i, r in enumerate(role_mults)},
    )
    item = RewardInput(
        kind,
        THREAD,
        TEXT,
        tuple(500 + i for i in range(len(role_mults))),
        meta=m,
        cooldown_active=cooldown,
        author_unknown=author_unknown,
        reactor_id=7,
        author_id=7 if same else 8,
        author_is_bot=bot,
        pair_count=pairs,
        reactor_count=reactors,
        message_age_seconds=age,
        paid_ticks_last_hour=ticks,
    )
    reward = compute_reward(item, guild)
    assert reward.xp >= 0 and reward.stars >= 0
    if reward.zero_reason is not None:
        assert (reward.xp, reward.stars) == (0, 0)
        return
    s = guild.settings
    cm, _ = resolve_channel_multiplier(guild, THREAD, TEXT, kind)
    rm = role_multiplier(guild, item.earner_role_ids)
    q = quality(m, s) if kind == "message" else 1.0
    # Decay and the velocity cap only ever lower the amount, so base × q × multipliers bounds it from above.
    assert reward.xp <= math.ceil(s.int(f"rewards.{kind}.xp") * q * cm.xp * rm.xp)
    assert reward.stars <= math.ceil(s.int(f"rewards.{kind}.stars") * cm.stars * rm.stars)
    # With neither decay nor cap in play the amount is exactly the floored product.
    if kind in ("thread_create", "voice_tick", "message"):
        assert reward.xp == math.floor(s.int(f"rewards.{kind}.xp") * q * cm.xp * rm.xp + 1e-9)
