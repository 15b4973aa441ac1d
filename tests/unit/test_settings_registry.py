"""Unit tests of the settings registry and validation (SPEC §5). Pure: no database, no network.

The expected table below is transcribed from SPEC §5.2 independently of the registry module, so a typo in either
one fails `test_registry_matches_spec_table`.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_async.settings import (
    LAKE_EVENT_TYPES,
    PUBLIC_KEYS,
    REGISTRY,
    SNOWFLAKE_MAX,
    InvalidStoredValue,
    Problem,
    ResolvedSettings,
    describe,
    jobs_triggered,
    lake_source_key,
    normalize_stored,
    to_json,
    validate_reset,
    validate_updates,
)

# The autouse async fixture in conftest is function-scoped; it does not need resetting between examples.
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ----------------------------------------------------------------------------------------------------------------
# SPEC §5.2, transcribed: key -> (type, default, min, max, category, public)
# ----------------------------------------------------------------------------------------------------------------

SPEC_LAKE_TYPES = (
    "message_create",
    "message_delete",
    "reaction_add",
    "reaction_remove",
    "thread_create",
    "voice_join",
    "voice_leave",
    "voice_move",
    "member_join",
    "member_leave",
)

Row = tuple[str, object, float | None, float | None, str, bool]
SPEC: dict[str, Row] = {}
for _kind, _xp, _stars in (
    ("message", 15, 1),
    ("reaction_given", 2, 1),
    ("reaction_received", 3, 1),
    ("thread_create", 20, 2),
    ("voice_tick", 10, 1),
):
    SPEC[f"rewards.{_kind}.xp"] = ("int", _xp, 0, 1000, "rewards", False)
    SPEC[f"rewards.{_kind}.stars"] = ("int", _stars, 0, 100, "rewards", False)
SPEC.update(
    {
        "cooldown.seconds": ("int", 30, 0, 3600, "anti_gaming", False),
        "cooldown.scope": ("enum", "user", None, None, "anti_gaming", False),
        "message.min_length": ("int", 5, 0, 2000, "anti_gaming", False),
        "reactions.pair_cap": ("int", 3, 1, 100, "anti_gaming", False),
        "reactions.pair_window_hours": ("int", 24, 1, 168, "anti_gaming", False),
        "reactions.pair_decay": ("float", 1.0, 0, 10, "anti_gaming", False),
        "reactions.unique_reactor_cap": ("int", 10, 1, 1000, "anti_gaming", False),
        "reactions.velocity_window_seconds": ("int", 300, 0, 86400, "anti_gaming", False),
        "reactions.velocity_min_reactors": ("int", 5, 1, 1000, "anti_gaming", False),
        "reactions.velocity_xp_cap": ("int", 1, 0, 1000, "anti_gaming", False),
        "quality.medium_chars": ("int", 200, 1, 4000, "quality", False),
        "quality.medium_bonus": ("float", 1.2, 1, 5, "quality", False),
        "quality.long_chars": ("int", 500, 1, 4000, "quality", False),
        "quality.long_bonus": ("float", 1.5, 1, 5, "quality", False),
        "quality.code_block_bonus": ("float", 1.4, 1, 5, "quality", False),
        "quality.link_bonus": ("float", 1.25, 1, 5, "quality", False),
        "quality.attachment_bonus": ("float", 1.1, 1, 5, "quality", False),
        "quality.emoji_spam_threshold": ("int", 5, 0, 100, "quality", False),
        "quality.emoji_spam_penalty": ("float", 0.5, 0, 1, "quality", False),
        "quality.floor": ("float", 0.1, 0, 1, "quality", False),
        "voice.tick_minutes": ("int", 10, 1, 60, "voice", False),
        "voice.hourly_tick_cap": ("int", 6, 1, 60, "voice", False),
        "voice.skip_muted_deafened": ("bool", True, None, None, "voice", False),
        "voice.skip_afk_channel": ("bool", True, None, None, "voice", False),
        "voice.require_others": ("bool", True, None, None, "voice", False),
        "leveling.level_base": ("int", 100, 10, 1_000_000, "leveling", False),
        "leveling.level_factor": ("float", 1.25, 1.01, 5, "leveling", False),
        "leveling.gold_per_level_up": ("int", 50, 0, 1_000_000, "leveling", False),
        "economy.coffee_cost": ("int", 50, 1, 1_000_000, "economy", False),
        "economy.xp_name": ("string", "XP", 1, 32, "display", True),
        "economy.gold_name": ("string", "Gold", 1, 32, "display", True),
        "economy.stars_name": ("string", "Stars", 1, 32, "display", True),
        "leaderboard.size": ("int", 25, 5, 50, "display", True),
        "card.theme": ("enum", "dark", None, None, "display", True),
        "card.accent": ("string", None, 0, 7, "display", True),
        "announce.level_up": ("bool", True, None, None, "announcements", False),
        "announce.achievements": ("bool", True, None, None, "announcements", False),
        "announce.manual_awards": ("bool", True, None, None, "announcements", False),
        "announce.channel_id": ("snowflake", None, None, None, "announcements", False),
        "season.default_days": ("int", 90, 1, 730, "seasons", True),
        "season.auto_renew": ("bool", False, None, None, "seasons", False),
        "season.name_template": ("string", "Season {n}", 1, 100, "seasons", False),
        "level_roles.mode": ("enum", "stack", None, None, "level_roles", False),
        "level_roles.restore_on_rejoin": ("bool", False, None, None, "level_roles", False),
        "access.admin_role_ids": ("snowflake_list", (), None, 25, "access", False),
        "public_api.enabled": ("bool", True, None, None, "access", False),
        "lake.retention_days": ("int", 90, 1, 3650, "event_lake", False),
    }
)
for _t in SPEC_LAKE_TYPES:
    SPEC[f"lake.source.{_t}"] = ("bool", True, None, None, "event_lake", False)

INT_KEYS = sorted(k for k, row in SPEC.items() if row[0] == "int")
FLOAT_KEYS = sorted(k for k, row in SPEC.items() if row[0] == "float")
STRING_KEYS = sorted(k for k, row in SPEC.items() if row[0] == "string" and k != "card.accent")  # free text
CROSS_FIELD_KEYS = {"quality.medium_chars", "quality.long_chars"}


class FakeGuild:
    """A GuildContext answering from fixed sets, as the caller's cache would."""

    def __init__(self, channels: Collection[int] = (), roles: Collection[int] = ()) -> None:
        self._channels = frozenset(channels)
        self._roles = frozenset(roles)

    def text_channel_ids(self) -> Collection[int]:
        return self._channels

    def role_ids(self) -> Collection[int]:
        return self._roles


def one(key: str, value: object) -> tuple[dict[str, object], list[Problem]]:
    return validate_updates({key: value}, {})


def accepted(key: str, value: object) -> object:
    values, problems = one(key, value)
    assert problems == [], problems
    assert list(values) == [key]
    return values[key]


def rejected(key: str, value: object) -> str:
    """Assert one problem for `key` and no values; return its problem code."""
    values, problems = one(key, value)
    assert values == {}
    assert len(problems) == 1, problems
    assert problems[0].field == key
    assert problems[0].message
    return problems[0].problem


# ----------------------------------------------------------------------------------------------------------------
# Registry contents
# ----------------------------------------------------------------------------------------------------------------


def test_registry_matches_spec_table() -> None:
    assert set(REGISTRY) == set(SPEC)
    assert len(REGISTRY) == 67
    for key, (type_, default, lo, hi, category, public) in SPEC.items():
        d = REGISTRY[key]
        assert d.key == key
        assert (d.type, d.default, d.min, d.max, d.category, d.public) == (
            type_,
            default,
            lo,
            hi,
            category,
            public,
        ), key
        assert type(d.default) is type(default), key  # 1.0 must be a float default, not the int 1


def test_enum_allowed_values_and_nullability() -> None:
    assert REGISTRY["cooldown.scope"].allowed == ("user", "channel")
    assert REGISTRY["level_roles.mode"].allowed == ("stack", "replace")
    assert REGISTRY["card.theme"].allowed == ("dark", "light")
    assert {k for k, d in REGISTRY.items() if d.allowed is not None} == {
        "cooldown.scope",
        "level_roles.mode",
        "card.theme",
    }
    assert {k for k, d in REGISTRY.items() if d.nullable} == {"announce.channel_id", "card.accent"}


def test_card_accent_is_a_hex_colour_or_empty() -> None:
    assert accepted("card.accent", "#5865F2") == "#5865F2"
    assert accepted("card.accent", " #00ff7f ") == "#00ff7f"
    assert accepted("card.accent", "") is None
    assert accepted("card.accent", None) is None
    for bad in ("red", "#12345", "#1234567", "#gggggg", "5865f2x"):
        assert rejected("card.accent", bad) in ("not_allowed", "out_of_range"), bad
    assert rejected("card.accent", 5) == "invalid_type"
    assert rejected("card.theme", "blue") == "not_allowed"


def test_registry_order_is_stable_and_follows_the_spec_table() -> None:
    keys = list(REGISTRY)
    assert keys[:2] == ["rewards.message.xp", "rewards.message.stars"]
    assert keys[-10:] == [f"lake.source.{t}" for t in SPEC_LAKE_TYPES]
    assert keys.index("cooldown.seconds") < keys.index("quality.floor") < keys.index("access.admin_role_ids")


def test_lake_event_types_are_the_ten_spec_types_each_with_a_toggle() -> None:
    assert LAKE_EVENT_TYPES == SPEC_LAKE_TYPES
    for event_type in LAKE_EVENT_TYPES:
        assert lake_source_key(event_type) == f"lake.source.{event_type}"
        assert REGISTRY[lake_source_key(event_type)].default is True
    with pytest.raises(KeyError):
        lake_source_key("typing_start")


def test_exactly_the_display_names_leaderboard_size_card_and_season_days_are_public() -> None:
    assert set(PUBLIC_KEYS) == {
        "economy.xp_name",
        "economy.gold_name",
        "economy.stars_name",
        "leaderboard.size",
        "card.theme",
        "card.accent",
        "season.default_days",
    }


def test_every_key_has_its_own_one_sentence_description() -> None:
    descriptions = [d.description for d in REGISTRY.values()]
    assert len(set(descriptions)) == len(descriptions)
    for d in REGISTRY.values():
        assert 20 <= len(d.description) <= 200, d.key
        assert d.description[0].isupper(), d.key
        assert d.description.endswith("."), d.key


# ----------------------------------------------------------------------------------------------------------------
# Defaults
# ----------------------------------------------------------------------------------------------------------------


def test_every_default_passes_validation_in_python_and_json_form() -> None:
    for body in ({k: d.default for k, d in REGISTRY.items()}, {k: to_json(k, d.default) for k, d in REGISTRY.items()}):
        values, problems = validate_updates(body, {})
        assert problems == []
        assert values == {k: d.default for k, d in REGISTRY.items()}


def test_defaults_json_form() -> None:
    assert to_json("announce.channel_id", None) is None
    assert to_json("access.admin_role_ids", ()) == []
    assert to_json("leveling.level_factor", 1.25) == 1.25


# ----------------------------------------------------------------------------------------------------------------
# Types
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "invalid_type"),
        (False, "invalid_type"),
        (5.0, "invalid_type"),
        ("5", "invalid_type"),
        (None, "invalid_type"),
        ([5], "invalid_type"),
        (-1, "out_of_range"),
        (1001, "out_of_range"),
        (10**400, "out_of_range"),
    ],
)
def test_int_rejects(value: object, problem: str) -> None:
    assert rejected("rewards.message.xp", value) == problem


def test_int_accepts_bounds_inclusive() -> None:
    assert accepted("rewards.message.xp", 0) == 0
    assert accepted("rewards.message.xp", 1000) == 1000
    assert type(accepted("rewards.message.xp", 7)) is int


def test_int_rejection_message_names_the_rule() -> None:
    _, problems = one("rewards.message.xp", 5000)
    assert problems[0].message == "must be an integer between 0 and 1000"
    _, problems = one("rewards.message.stars", True)
    assert problems[0].message == "must be an integer between 0 and 100"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "invalid_type"),
        (math.inf, "invalid_type"),
        (-math.inf, "invalid_type"),
        (True, "invalid_type"),
        ("1.5", "invalid_type"),
        (None, "invalid_type"),
        (5.0001, "out_of_range"),
        (0.999, "out_of_range"),
        (10**400, "out_of_range"),
    ],
)
def test_float_rejects(value: object, problem: str) -> None:
    assert rejected("quality.long_bonus", value) == problem


def test_float_accepts_ints_and_stores_floats() -> None:
    value = accepted("quality.long_bonus", 2)
    assert value == 2.0
    assert type(value) is float
    assert accepted("leveling.level_factor", 1.01) == 1.01
    assert accepted("leveling.level_factor", 5) == 5.0
    assert rejected("leveling.level_factor", 1.0) == "out_of_range"
    zero = accepted("quality.floor", -0.0)
    assert zero == 0.0
    assert math.copysign(1.0, zero) == 1.0


@pytest.mark.parametrize("value", [1, 0, "true", None, "false", 1.0])
def test_bool_accepts_only_real_booleans(value: object) -> None:
    assert rejected("public_api.enabled", value) == "invalid_type"


def test_bool_accepts_booleans() -> None:
    assert accepted("public_api.enabled", False) is False
    assert accepted("season.auto_renew", True) is True


@pytest.mark.parametrize(
    "value",
    ["Co\x00ins", "Co\nins", "Co\tins", "Co\rins", "Co\x7fins", "Co\x85ins", "Co\u2028ins", "Co\u2029ins", "C\ud800"],
)
def test_string_rejects_control_characters_inside(value: str) -> None:
    assert rejected("economy.gold_name", value) == "not_allowed"


def test_string_is_trimmed_and_length_is_counted_in_code_points_after_trimming() -> None:
    assert accepted("economy.gold_name", "  Coins \n") == "Coins"
    assert accepted("economy.gold_name", "x" * 32) == "x" * 32
    assert accepted("economy.gold_name", "🪙" * 32) == "🪙" * 32  # 32 code points, 128 UTF-8 bytes
    assert accepted("economy.gold_name", "  " + "x" * 32 + "  ") == "x" * 32
    assert rejected("economy.gold_name", "x" * 33) == "out_of_range"
    assert rejected("economy.gold_name", "   ") == "out_of_range"
    assert rejected("economy.gold_name", "") == "out_of_range"
    assert accepted("season.name_template", "S" * 100) == "S" * 100
    assert rejected("season.name_template", "S" * 101) == "out_of_range"


@pytest.mark.parametrize("value", [5, None, True, ["XP"]])
def test_string_rejects_non_strings(value: object) -> None:
    assert rejected("economy.xp_name", value) == "invalid_type"


def test_enum() -> None:
    assert accepted("cooldown.scope", "channel") == "channel"
    assert accepted("level_roles.mode", "replace") == "replace"
    assert rejected("cooldown.scope", "Channel") == "not_allowed"
    assert rejected("cooldown.scope", "guild") == "not_allowed"
    assert rejected("cooldown.scope", 1) == "invalid_type"
    assert rejected("cooldown.scope", None) == "invalid_type"
    _, problems = one("level_roles.mode", "both")
    assert problems[0].message == "must be one of: stack, replace"


def test_snowflake_accepts_digit_strings_and_integers() -> None:
    assert accepted("announce.channel_id", "123456789012345678") == 123456789012345678
    assert accepted("announce.channel_id", 123456789012345678) == 123456789012345678
    assert accepted("announce.channel_id", str(SNOWFLAKE_MAX)) == SNOWFLAKE_MAX
    assert accepted("announce.channel_id", None) is None  # nullable: clears the channel


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "out_of_range"),
        (0, "out_of_range"),
        (-5, "out_of_range"),
        (SNOWFLAKE_MAX + 1, "out_of_range"),
        (str(SNOWFLAKE_MAX + 1), "out_of_range"),
        ("9" * 5000, "out_of_range"),
        ("", "invalid_type"),
        ("12a", "invalid_type"),
        (" 123", "invalid_type"),
        ("+123", "invalid_type"),
        ("-123", "invalid_type"),
        ("١٢٣", "invalid_type"),  # Arabic-Indic digits: int() would accept them
        ("123\n", "invalid_type"),
        (123.0, "invalid_type"),
        (True, "invalid_type"),
        ([123], "invalid_type"),
    ],
)
def test_snowflake_rejects(value: object, problem: str) -> None:
    assert rejected("announce.channel_id", value) == problem


def test_snowflake_list_dedupes_preserving_order() -> None:
    assert accepted("access.admin_role_ids", ["30", 10, "30", 20, 10]) == (30, 10, 20)
    assert accepted("access.admin_role_ids", []) == ()


def test_snowflake_list_length_counts_distinct_entries() -> None:
    assert accepted("access.admin_role_ids", [str(i) for i in range(1, 26)]) == tuple(range(1, 26))
    assert accepted("access.admin_role_ids", [*range(1, 26), *range(1, 6)]) == tuple(range(1, 26))
    assert rejected("access.admin_role_ids", [str(i) for i in range(1, 27)]) == "out_of_range"


@pytest.mark.parametrize("value", ["123", 123, None, {"a": "1"}])
def test_snowflake_list_must_be_a_list(value: object) -> None:
    assert rejected("access.admin_role_ids", value) == "invalid_type"


def test_snowflake_list_reports_every_bad_item() -> None:
    values, problems = one("access.admin_role_ids", ["1", "x", 2, True, "0"])
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [
        ("access.admin_role_ids", "invalid_type"),
        ("access.admin_role_ids", "invalid_type"),
        ("access.admin_role_ids", "out_of_range"),
    ]
    assert [p.message.split()[1] for p in problems] == ["1", "3", "4"]  # "item <index> ..."


# ----------------------------------------------------------------------------------------------------------------
# Whole writes
# ----------------------------------------------------------------------------------------------------------------


def test_one_bad_key_among_good_ones_names_exactly_that_key_and_returns_no_values() -> None:
    body = {"rewards.message.xp": 20, "cooldown.seconds": "thirty", "economy.xp_name": "Points"}
    values, problems = validate_updates(body, {})
    assert values == {}  # the caller has nothing it could write
    assert [(p.field, p.problem) for p in problems] == [("cooldown.seconds", "invalid_type")]


def test_every_problem_is_reported_in_body_order() -> None:
    body = {
        "rewards.message.xp": True,
        "nope.key": 1,
        "cooldown.scope": "server",
        "economy.xp_name": "a\x00b",
        "quality.floor": 2,
        "public_api.enabled": True,
    }
    values, problems = validate_updates(body, {})
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [
        ("rewards.message.xp", "invalid_type"),
        ("nope.key", "unknown_setting"),
        ("cooldown.scope", "not_allowed"),
        ("economy.xp_name", "not_allowed"),
        ("quality.floor", "out_of_range"),
    ]


def test_unknown_setting() -> None:
    values, problems = validate_updates({"rewards.message.gold": 5}, {})
    assert values == {}
    assert problems == [Problem("rewards.message.gold", "unknown_setting", "is not a known setting")]
    assert one("lake.source.typing_start", True)[1][0].problem == "unknown_setting"
    assert one("REWARDS.MESSAGE.XP", 5)[1][0].problem == "unknown_setting"  # keys are case-sensitive


@pytest.mark.parametrize("body", [[["rewards.message.xp", 5]], "x", None, 5])
def test_non_object_body_is_one_values_problem(body: object) -> None:
    values, problems = validate_updates(body, {})  # type: ignore[arg-type]
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [("values", "invalid_type")]


def test_empty_body_is_valid_and_writes_nothing() -> None:
    assert validate_updates({}, {"rewards.message.xp": 5}) == ({}, [])


def test_good_write_returns_every_sent_key_normalized() -> None:
    values, problems = validate_updates(
        {"announce.channel_id": "42", "economy.xp_name": " Points ", "reactions.pair_decay": 2},
        {},
    )
    assert problems == []
    assert values == {"announce.channel_id": 42, "economy.xp_name": "Points", "reactions.pair_decay": 2.0}


# ----------------------------------------------------------------------------------------------------------------
# Cross-field constraint (quality.long_chars > quality.medium_chars in the resulting set)
# ----------------------------------------------------------------------------------------------------------------


def _constraint(values: dict[str, object], problems: list[Problem]) -> None:
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [("quality.long_chars", "constraint")]


def test_long_chars_must_exceed_default_medium_chars() -> None:
    _constraint(*validate_updates({"quality.long_chars": 150}, {}))
    _constraint(*validate_updates({"quality.long_chars": 200}, {}))  # equal is not "exceed"
    assert validate_updates({"quality.long_chars": 201}, {}) == ({"quality.long_chars": 201}, [])


def test_constraint_uses_current_overrides() -> None:
    _constraint(*validate_updates({"quality.medium_chars": 600}, {}))  # default long 500
    assert validate_updates({"quality.medium_chars": 600}, {"quality.long_chars": 800}) == (
        {"quality.medium_chars": 600},
        [],
    )
    _constraint(*validate_updates({"quality.long_chars": 300}, {"quality.medium_chars": 300}))
    # An unusable stored value counts as the default, which is what the config cache resolves it to.
    assert validate_updates({"quality.long_chars": 300}, {"quality.medium_chars": "junk"}) == (
        {"quality.long_chars": 300},
        [],
    )


def test_constraint_uses_values_of_the_same_write() -> None:
    body = {"quality.medium_chars": 1000, "quality.long_chars": 2000}
    assert validate_updates(body, {}) == (body, [])
    _constraint(*validate_updates({"quality.medium_chars": 2000, "quality.long_chars": 1000}, {}))


def test_constraint_is_skipped_when_either_input_is_itself_invalid() -> None:
    values, problems = validate_updates({"quality.medium_chars": 5000, "quality.long_chars": 300}, {})
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [("quality.medium_chars", "out_of_range")]


def test_constraint_is_only_checked_when_the_write_touches_its_keys() -> None:
    broken = {"quality.medium_chars": 900, "quality.long_chars": 100}  # e.g. edited by hand in SQL
    assert validate_updates({"cooldown.seconds": 5}, broken) == ({"cooldown.seconds": 5}, [])
    _constraint(*validate_updates({"quality.long_chars": 200}, broken))


def test_reset_is_checked_against_the_constraint() -> None:
    current = {"quality.medium_chars": 1000, "quality.long_chars": 2000}
    problems = validate_reset(["quality.long_chars"], current)  # back to 500 < 1000
    assert [(p.field, p.problem) for p in problems] == [("quality.long_chars", "constraint")]
    assert validate_reset(["quality.medium_chars"], current) == []  # 200 < 2000
    assert validate_reset(["quality.medium_chars", "quality.long_chars"], current) == []
    assert validate_reset(["cooldown.seconds"], {"quality.medium_chars": 900}) == []
    assert [p.problem for p in validate_reset(["nope"], {})] == ["unknown_setting"]


# ----------------------------------------------------------------------------------------------------------------
# Guild context
# ----------------------------------------------------------------------------------------------------------------


def test_announce_channel_must_be_a_text_channel_of_the_guild() -> None:
    guild = FakeGuild(channels={10, 11}, roles={1})
    assert validate_updates({"announce.channel_id": "10"}, {}, guild) == ({"announce.channel_id": 10}, [])
    values, problems = validate_updates({"announce.channel_id": 12}, {}, guild)
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [("announce.channel_id", "not_allowed")]
    assert "12" in problems[0].message
    assert validate_updates({"announce.channel_id": None}, {}, guild) == ({"announce.channel_id": None}, [])
    assert validate_updates({"announce.channel_id": 12}, {}) == ({"announce.channel_id": 12}, [])  # no context


def test_admin_roles_must_be_roles_of_the_guild_and_each_missing_one_is_named() -> None:
    guild = FakeGuild(channels={10}, roles={1, 2, 3})
    ok = validate_updates({"access.admin_role_ids": ["3", "1"]}, {}, guild)
    assert ok == ({"access.admin_role_ids": (3, 1)}, [])
    values, problems = validate_updates({"access.admin_role_ids": ["1", "7", "8"]}, {}, guild)
    assert values == {}
    assert [(p.field, p.problem) for p in problems] == [("access.admin_role_ids", "not_allowed")] * 2
    assert ["7" in problems[0].message, "8" in problems[1].message] == [True, True]
    assert validate_updates({"access.admin_role_ids": ["7"]}, {}) == ({"access.admin_role_ids": (7,)}, [])


def test_guild_checks_do_not_apply_to_stored_values() -> None:
    guild = FakeGuild(channels=set(), roles=set())
    current = {"announce.channel_id": "99", "access.admin_role_ids": ["98"]}  # since deleted from the guild
    assert validate_updates({"cooldown.seconds": 1}, current, guild) == ({"cooldown.seconds": 1}, [])


# ----------------------------------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_every_int_key_accepts_exactly_its_inclusive_range(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(INT_KEYS), label="key")
    _, _, lo, hi, _, _ = SPEC[key]
    assert isinstance(lo, int)
    assert isinstance(hi, int)
    inside = data.draw(st.integers(lo, hi) | st.sampled_from([lo, hi]), label="inside")
    values, problems = one(key, inside)
    if key in CROSS_FIELD_KEYS:  # a value in range may still clash with the other key's default
        assert [p.problem for p in problems] in ([], ["constraint"])
    else:
        assert problems == []
        assert values == {key: inside}
    outside = data.draw(
        st.integers(max_value=lo - 1) | st.integers(min_value=hi + 1) | st.sampled_from([lo - 1, hi + 1]),
        label="outside",
    )
    assert rejected(key, outside) == "out_of_range"


@PROPERTY
@given(data=st.data())
def test_every_float_key_accepts_exactly_its_inclusive_range(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(FLOAT_KEYS), label="key")
    _, _, lo, hi, _, _ = SPEC[key]
    assert lo is not None
    assert hi is not None
    inside = data.draw(st.floats(lo, hi), label="inside")
    assert accepted(key, inside) == inside
    outside = data.draw(
        st.floats(max_value=lo, exclude_max=True, allow_infinity=False)
        | st.floats(min_value=hi, exclude_min=True, allow_infinity=False),
        label="outside",
    )
    assert rejected(key, outside) == "out_of_range"


_FORBIDDEN = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}


@PROPERTY
@given(key=st.sampled_from(STRING_KEYS), text=st.text(max_size=120))
def test_strings_accept_clean_text_within_length_and_reject_the_rest(key: str, text: str) -> None:
    _, _, lo, hi, _, _ = SPEC[key]
    assert lo is not None
    assert hi is not None
    trimmed = text.strip()
    values, problems = one(key, text)
    if any(c in _FORBIDDEN for c in trimmed):
        assert [p.problem for p in problems] == ["not_allowed"]
    elif not lo <= len(trimmed) <= hi:
        assert [p.problem for p in problems] == ["out_of_range"]
    else:
        assert problems == []
        assert values == {key: trimmed}


@PROPERTY
@given(ids=st.lists(st.integers(1, SNOWFLAKE_MAX) | st.sampled_from([1, 2, 3]), max_size=40))
def test_snowflake_lists_round_trip_through_json(ids: list[int]) -> None:
    distinct = tuple(dict.fromkeys(ids))
    values, problems = one("access.admin_role_ids", [str(i) for i in ids])
    if len(distinct) > 25:
        assert [p.problem for p in problems] == ["out_of_range"]
        return
    assert values == {"access.admin_role_ids": distinct}
    stored = to_json("access.admin_role_ids", distinct)
    assert stored == [str(i) for i in distinct]
    assert normalize_stored("access.admin_role_ids", stored) == distinct


# ----------------------------------------------------------------------------------------------------------------
# Stored values, JSON form, describe, jobs
# ----------------------------------------------------------------------------------------------------------------


def test_normalize_stored() -> None:
    assert normalize_stored("announce.channel_id", "123") == 123
    assert normalize_stored("announce.channel_id", None) is None
    assert normalize_stored("access.admin_role_ids", ["5", "6"]) == (5, 6)
    assert normalize_stored("quality.floor", 0) == 0.0
    assert type(normalize_stored("quality.floor", 0)) is float
    assert normalize_stored("economy.xp_name", "Points") == "Points"
    with pytest.raises(KeyError):
        normalize_stored("removed.setting", 1)
    with pytest.raises(InvalidStoredValue) as caught:
        normalize_stored("leaderboard.size", 500)
    assert isinstance(caught.value, ValueError)
    assert caught.value.key == "leaderboard.size"
    assert [p.problem for p in caught.value.problems] == ["out_of_range"]


def test_to_json_makes_snowflakes_strings_and_round_trips() -> None:
    samples: dict[str, object] = {
        "announce.channel_id": 123456789012345678,
        "access.admin_role_ids": (1, 2),
        "quality.floor": 0.25,
        "economy.xp_name": "Points",
        "cooldown.scope": "channel",
        "public_api.enabled": False,
        "rewards.message.xp": 7,
    }
    assert to_json("announce.channel_id", 123456789012345678) == "123456789012345678"
    assert to_json("access.admin_role_ids", (1, 2)) == ["1", "2"]
    for key, value in samples.items():
        assert normalize_stored(key, to_json(key, value)) == value
    with pytest.raises(InvalidStoredValue):
        to_json("rewards.message.xp", 5000)
    with pytest.raises(KeyError):
        to_json("nope", 1)


def test_describe() -> None:
    assert describe("rewards.message.xp") == {
        "key": "rewards.message.xp",
        "type": "int",
        "default": 15,
        "min": 0,
        "max": 1000,
        "allowed": None,
        "category": "rewards",
        "description": REGISTRY["rewards.message.xp"].description,
        "public": False,
    }
    assert describe("cooldown.scope")["allowed"] == ["user", "channel"]
    assert describe("access.admin_role_ids")["default"] == []
    assert describe("announce.channel_id")["default"] is None
    assert describe("economy.xp_name")["public"] is True
    assert describe("leveling.level_factor")["min"] == 1.01
    with pytest.raises(KeyError):
        describe("nope")


def test_problem_as_detail() -> None:
    assert Problem("a.b", "out_of_range", "must be x").as_detail() == {
        "field": "a.b",
        "problem": "out_of_range",
        "message": "must be x",
    }


def test_jobs_triggered() -> None:
    assert jobs_triggered([]) == set()
    assert jobs_triggered(["leveling.level_base"]) == {"relevel"}
    assert jobs_triggered(["leveling.level_factor", "cooldown.seconds"]) == {"relevel"}
    assert jobs_triggered(["level_roles.mode"]) == {"level_role_sync"}
    assert jobs_triggered({"level_roles.mode", "leveling.level_base"}) == {"relevel", "level_role_sync"}
    assert jobs_triggered(["leveling.gold_per_level_up", "level_roles.restore_on_rejoin"]) == set()


# ----------------------------------------------------------------------------------------------------------------
# ResolvedSettings
# ----------------------------------------------------------------------------------------------------------------


def test_resolved_defaults_and_typed_getters() -> None:
    r = ResolvedSettings({})
    assert r.int("rewards.message.xp") == 15
    assert r.float("quality.floor") == 0.1
    assert r.bool("voice.require_others") is True
    assert r.str("economy.xp_name") == "XP"
    assert r.str("cooldown.scope") == "user"  # enums read as strings
    assert r.snowflake("announce.channel_id") is None
    assert r.snowflakes("access.admin_role_ids") == ()
    assert r.as_dict() == {k: d.default for k, d in REGISTRY.items()}
    assert list(r.as_dict()) == list(REGISTRY)
    assert all(r.is_default(k) for k in REGISTRY)


def test_resolved_overrides_merge_over_defaults_and_accept_json_form() -> None:
    r = ResolvedSettings(
        {
            "rewards.message.xp": 40,
            "reactions.pair_decay": 2,
            "announce.channel_id": "77",
            "access.admin_role_ids": ["5", "6", "5"],
            "economy.gold_name": "Coins",
        }
    )
    assert r.int("rewards.message.xp") == 40
    assert r.int("rewards.message.stars") == 1
    assert r.float("reactions.pair_decay") == 2.0
    assert type(r.float("reactions.pair_decay")) is float
    assert r.snowflake("announce.channel_id") == 77
    assert r.snowflakes("access.admin_role_ids") == (5, 6)
    assert r.str("economy.gold_name") == "Coins"
    assert r.raw("announce.channel_id") == 77
    assert not r.is_default("rewards.message.xp")
    assert r.is_default("rewards.message.stars")
    assert r.overrides["announce.channel_id"] == 77
    assert r == ResolvedSettings({**r.overrides})


def test_resolved_override_equal_to_default_is_still_an_override() -> None:
    r = ResolvedSettings({"rewards.message.xp": 15})
    assert not r.is_default("rewards.message.xp")


@pytest.mark.parametrize(
    ("getter", "key"),
    [
        ("int", "quality.floor"),
        ("int", "public_api.enabled"),  # bool is not an int here either
        ("float", "rewards.message.xp"),
        ("bool", "rewards.message.xp"),
        ("str", "announce.channel_id"),
        ("snowflake", "access.admin_role_ids"),
        ("snowflakes", "announce.channel_id"),
    ],
)
def test_resolved_wrong_type_getter_raises_type_error(getter: str, key: str) -> None:
    with pytest.raises(TypeError):
        getattr(ResolvedSettings({}), getter)(key)


@pytest.mark.parametrize("getter", ["int", "float", "bool", "str", "snowflake", "snowflakes", "raw", "is_default"])
def test_resolved_unknown_key_raises_key_error(getter: str) -> None:
    with pytest.raises(KeyError):
        getattr(ResolvedSettings({}), getter)("no.such.key")


def test_resolved_rejects_unknown_or_invalid_overrides() -> None:
    with pytest.raises(KeyError):
        ResolvedSettings({"no.such.key": 1})
    with pytest.raises(InvalidStoredValue):
        ResolvedSettings({"leaderboard.size": 1})


def test_resolved_is_immutable() -> None:
    source: dict[str, object] = {"rewards.message.xp": 40}
    r = ResolvedSettings(source)
    source["rewards.message.xp"] = 1
    r.as_dict()["rewards.message.xp"] = 2
    assert r.int("rewards.message.xp") == 40
    with pytest.raises(TypeError):
        r.overrides["rewards.message.xp"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError):
        r.extra = 1  # type: ignore[attr-defined]
