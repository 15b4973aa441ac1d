"""Achievement triggers and evaluation decisions (SPEC §12.1 series, §12.2, §12.3, §12.4), without a database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from synapse_async.rewards.achievements import (
    STAT_NAMES,
    TRIGGER_TYPES,
    MemberSnapshot,
    counter_keys,
    evaluate,
    normalized_trigger_config,
    trigger_met,
    trigger_schemas,
    validate_trigger,
)
from synapse_async.rewards.config import TemplateInfo
from synapse_async.settings import LAKE_EVENT_TYPES

# --- §12.2 trigger validation -------------------------------------------------------------------------------------

VALID: list[tuple[str, dict[str, Any]]] = [
    ("stat_threshold", {"stat": "messages_sent", "value": 100}),
    ("stat_threshold", {"stat": "voice_minutes", "value": 1, "scope": "season"}),
    ("xp_milestone", {"value": 10**12}),
    ("level_reached", {"value": 2}),
    ("level_reached", {"value": 1000}),
    ("star_threshold", {"value": 5, "scope": "lifetime"}),
    ("star_threshold", {"value": 5}),
    *[("event_count", {"event_type": t, "value": 3}) for t in LAKE_EVENT_TYPES],
    ("event_count", {"event_type": "voice_join", "value": 3, "scope": "season"}),
    ("manual", {}),
]


@pytest.mark.parametrize(("trigger_type", "config"), VALID)
def test_valid_triggers(trigger_type: str, config: dict[str, Any]) -> None:
    assert validate_trigger(trigger_type, config) == []


V = "trigger_config.value"
INT_RULE = "must be an integer between 1 and 1000000000000"


@pytest.mark.parametrize(
    ("trigger_type", "config", "problems"),
    [
        ("xp_milestone", {"value": "5"}, [(V, INT_RULE)]),  # number as string
        ("xp_milestone", {"value": True}, [(V, INT_RULE)]),  # bool as int
        ("xp_milestone", {"value": 5.0}, [(V, INT_RULE)]),  # float
        ("xp_milestone", {"value": None}, [(V, INT_RULE)]),
        ("xp_milestone", {"value": 0}, [(V, INT_RULE)]),
        ("xp_milestone", {"value": 10**12 + 1}, [(V, INT_RULE)]),
        ("xp_milestone", {}, [(V, "required")]),
        ("xp_milestone", {"value": 5, "scope": "season"}, [("trigger_config.scope", "unknown field")]),
        ("level_reached", {"value": 1}, [(V, "must be an integer between 2 and 1000")]),
        ("level_reached", {"value": 1001}, [(V, "must be an integer between 2 and 1000")]),
        (
            "stat_threshold",
            {"stat": "gold", "value": 1},
            [("trigger_config.stat", "must be one of: " + ", ".join(STAT_NAMES))],
        ),
        ("stat_threshold", {"value": 1}, [("trigger_config.stat", "required")]),
        (
            "star_threshold",
            {"value": 1, "scope": "weekly"},
            [("trigger_config.scope", "must be one of: season, lifetime")],
        ),
        ("star_threshold", {"value": 1, "scope": None}, [("trigger_config.scope", "must be one of: season, lifetime")]),
        (
            "event_count",
            {"event_type": "message", "value": 1},
            [("trigger_config.event_type", "must be one of: " + ", ".join(LAKE_EVENT_TYPES))],
        ),
        ("manual", {"value": 1}, [(V, "unknown field")]),
        ("manual", [], [("trigger_config", "must be a JSON object")]),
        ("xp_milestone", None, [("trigger_config", "must be a JSON object")]),
        ("weekly_streak", {}, [("trigger_type", "must be one of: " + ", ".join(TRIGGER_TYPES))]),
        # Several problems at once: unknown keys first, then fields in declaration order.
        (
            "event_count",
            {"extra": 1, "value": "3", "scope": "all"},
            [
                ("trigger_config.extra", "unknown field"),
                ("trigger_config.event_type", "required"),
                (V, INT_RULE),
                ("trigger_config.scope", "must be one of: season, lifetime"),
            ],
        ),
    ],
)
def test_invalid_triggers(trigger_type: str, config: object, problems: list[tuple[str, str]]) -> None:
    assert validate_trigger(trigger_type, config) == problems


def test_normalized_config_fills_the_default_scope() -> None:
    assert normalized_trigger_config("star_threshold", {"value": 5}) == {"value": 5, "scope": "lifetime"}
    assert normalized_trigger_config("star_threshold", {"value": 5, "scope": "season"})["scope"] == "season"
    assert normalized_trigger_config("xp_milestone", {"value": 5}) == {"value": 5}
    with pytest.raises(ValueError, match="invalid trigger config"):
        normalized_trigger_config("xp_milestone", {"value": 0})


def test_trigger_schemas_match_the_validator() -> None:
    schemas = trigger_schemas()
    assert tuple(schemas) == TRIGGER_TYPES
    for trigger_type, schema in schemas.items():
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        props = schema["properties"]
        assert isinstance(props, dict)
        required = schema["required"]
        assert isinstance(required, list)
        # The smallest config the schema allows is accepted, and dropping any required key is rejected.
        minimal = {
            name: (p["minimum"] if p["type"] == "integer" else p["enum"][0])
            for name, p in props.items()
            if name in required
        }
        assert validate_trigger(trigger_type, minimal) == []
        for name in required:
            partial = {k: v for k, v in minimal.items() if k != name}
            assert validate_trigger(trigger_type, partial) == [(f"trigger_config.{name}", "required")]
        assert validate_trigger(trigger_type, {**minimal, "bogus": 1}) == [("trigger_config.bogus", "unknown field")]
    assert schemas["manual"]["properties"] == {} and schemas["manual"]["required"] == []
    level = schemas["level_reached"]["properties"]["value"]  # type: ignore[index]
    assert (level["minimum"], level["maximum"]) == (2, 1000)
    stat = schemas["stat_threshold"]["properties"]
    assert stat["stat"]["enum"] == list(STAT_NAMES)  # type: ignore[index]
    assert stat["scope"]["default"] == "lifetime"  # type: ignore[index]
    assert schemas["event_count"]["properties"]["event_type"]["enum"] == list(LAKE_EVENT_TYPES)  # type: ignore[index]
    assert len(LAKE_EVENT_TYPES) == 10
    # A fresh structure per call: decorating one response cannot leak into the next.
    schemas["manual"]["title"] = "changed"
    assert trigger_schemas()["manual"]["title"] == "manual"


# --- evaluation ------------------------------------------------------------------------------------------------------


def tpl(
    template_id: int,
    trigger_type: str,
    config: Mapping[str, Any],
    *,
    series: int | None = None,
    order: int | None = None,
    max_earners: int | None = None,
) -> TemplateInfo:
    return TemplateInfo(
        template_id=template_id,
        name=f"t{template_id}",
        description=None,
        category_id=None,
        rarity_id=None,
        series_id=series,
        series_order=order,
        trigger_type=trigger_type,
        trigger_config=dict(config),
        xp_reward=0,
        gold_reward=0,
        badge_image_url=None,
        announce_channel_id=None,
        is_hidden=False,
        max_earners=max_earners,
    )


def member(**kw: Any) -> MemberSnapshot:
    base: dict[str, Any] = {
        "xp": 0,
        "level": 1,
        "lifetime_stars": 0,
        "stats": {},
        "season_stats": None,
        "season_stars": None,
        "counters": {},
        "season_id": None,
    }
    base.update(kw)
    return MemberSnapshot(**base)


def ids(templates: list[TemplateInfo]) -> list[int]:
    return [t.template_id for t in templates]


def test_thresholds_are_inclusive() -> None:
    templates = [tpl(1, "xp_milestone", {"value": 100}), tpl(2, "level_reached", {"value": 5})]
    assert ids(evaluate(templates, member(xp=99, level=4), frozenset())) == []
    assert ids(evaluate(templates, member(xp=100, level=4), frozenset())) == [1]
    assert ids(evaluate(templates, member(xp=100, level=5), frozenset())) == [1, 2]


def test_already_earned_is_not_earned_again() -> None:
    templates = [tpl(1, "xp_milestone", {"value": 1}), tpl(2, "xp_milestone", {"value": 2})]
    assert ids(evaluate(templates, member(xp=5), frozenset({1}))) == [2]


def test_manual_never_fires() -> None:
    templates = [tpl(1, "manual", {})]
    rich = member(xp=10**12, level=1000, lifetime_stars=10**6, season_id=3, season_stars=10**6)
    assert evaluate(templates, rich, frozenset()) == []


@pytest.mark.parametrize(
    ("template", "lifetime", "season"),
    [
        (tpl(1, "stat_threshold", {"stat": "messages_sent", "value": 10}), True, False),
        (tpl(1, "stat_threshold", {"stat": "messages_sent", "value": 10, "scope": "season"}), False, True),
        (tpl(1, "star_threshold", {"value": 10}), True, False),
        (tpl(1, "star_threshold", {"value": 10, "scope": "season"}), False, True),
        (tpl(1, "event_count", {"event_type": "message_create", "value": 10}), True, False),
        (tpl(1, "event_count", {"event_type": "message_create", "value": 10, "scope": "season"}), False, True),
    ],
)
def test_scope_selects_lifetime_or_season_figures(template: TemplateInfo, lifetime: bool, season: bool) -> None:
    # Lifetime figures reach 10 and season figures do not, then the other way round.
    lifetime_high = member(
        lifetime_stars=10,
        stats={"messages_sent": 10},
        counters={("message_create", "lifetime"): 10, ("message_create", "season:3"): 9},
        season_id=3,
        season_stats={"messages_sent": 9},
        season_stars=9,
    )
    season_high = member(
        lifetime_stars=9,
        stats={"messages_sent": 9},
        counters={("message_create", "lifetime"): 9, ("message_create", "season:3"): 10},
        season_id=3,
        season_stats={"messages_sent": 10},
        season_stars=10,
    )
    assert trigger_met(template, lifetime_high) is lifetime
    assert trigger_met(template, season_high) is season


@pytest.mark.parametrize(
    "template",
    [
        tpl(1, "stat_threshold", {"stat": "voice_minutes", "value": 1, "scope": "season"}),
        tpl(1, "star_threshold", {"value": 1, "scope": "season"}),
        tpl(1, "event_count", {"event_type": "voice_join", "value": 1, "scope": "season"}),
    ],
)
def test_season_scope_never_fires_without_a_season(template: TemplateInfo) -> None:
    # Even when stale season figures are present, no active season means no season trigger.
    stale = member(
        season_id=None,
        season_stats={"voice_minutes": 500},
        season_stars=500,
        counters={("voice_join", "season:3"): 500, ("voice_join", "lifetime"): 500},
        stats={"voice_minutes": 500},
        lifetime_stars=500,
    )
    assert evaluate([template], stale, frozenset()) == []
    active = member(
        season_id=3, season_stats={"voice_minutes": 1}, season_stars=1, counters={("voice_join", "season:3"): 1}
    )
    assert ids(evaluate([template], active, frozenset())) == [1]


def test_active_season_without_a_season_row_counts_as_zero() -> None:
    template = tpl(1, "stat_threshold", {"stat": "messages_sent", "value": 1, "scope": "season"})
    assert evaluate([template], member(season_id=3, stats={"messages_sent": 50}), frozenset()) == []


def test_event_count_reads_only_the_active_seasons_counter() -> None:
    template = tpl(1, "event_count", {"event_type": "reaction_add", "value": 5, "scope": "season"})
    old_season = member(season_id=4, counters={("reaction_add", "season:3"): 50, ("reaction_add", "season:4"): 4})
    assert evaluate([template], old_season, frozenset()) == []
    current = member(season_id=4, counters={("reaction_add", "season:4"): 5})
    assert ids(evaluate([template], current, frozenset())) == [1]


def test_full_templates_are_skipped() -> None:
    templates = [tpl(1, "xp_milestone", {"value": 1}, max_earners=1), tpl(2, "xp_milestone", {"value": 1})]
    assert ids(evaluate(templates, member(xp=5), frozenset(), full_templates=frozenset({1}))) == [2]


def test_invalid_stored_config_never_fires() -> None:
    templates = [
        tpl(1, "xp_milestone", {"value": "5"}),
        tpl(2, "xp_milestone", {}),
        tpl(3, "mystery", {"value": 1}),
        tpl(4, "stat_threshold", {"stat": "gold", "value": 1}),
    ]
    assert evaluate(templates, member(xp=100, stats={"gold": 100}), frozenset()) == []


# Series 7: tiers 1–3 at 100, 200, 300 XP.
T1 = tpl(11, "xp_milestone", {"value": 100}, series=7, order=1)
T2 = tpl(12, "xp_milestone", {"value": 200}, series=7, order=2)
T3 = tpl(13, "xp_milestone", {"value": 300}, series=7, order=3)


def test_series_tiers_earned_in_one_evaluation() -> None:
    assert ids(evaluate([T1, T2, T3], member(xp=300), frozenset())) == [11, 12, 13]
    assert ids(evaluate([T1, T2, T3], member(xp=250), frozenset())) == [11, 12]


def test_series_tier_two_not_before_tier_one() -> None:
    # Tier 1 was revoked (not earned) and its trigger is unmet; tier 2's trigger holds but the gate is closed.
    manual_t1 = tpl(11, "manual", {}, series=7, order=1)
    assert evaluate([manual_t1, T2, T3], member(xp=1000), frozenset()) == []
    assert ids(evaluate([manual_t1, T2, T3], member(xp=1000), frozenset({11}))) == [12, 13]
    # The gate is the closest lower tier, not the lowest: tier 3 waits for tier 2 even with tier 1 earned.
    manual_t2 = tpl(12, "manual", {}, series=7, order=2)
    assert evaluate([T1, manual_t2, T3], member(xp=1000), frozenset({11})) == []


def test_series_gate_through_a_full_lower_tier() -> None:
    # A full tier cannot be earned, so it keeps gating the next tier for members who lack it ...
    assert evaluate([T1, T2], member(xp=500), frozenset(), full_templates=frozenset({11})) == []
    # ... but a member who earned it before it filled up may progress.
    assert ids(evaluate([T1, T2], member(xp=500), frozenset({11}), full_templates=frozenset({11}))) == [12]


def test_inactive_lower_tier_is_skipped_by_the_gate() -> None:
    # Tier 1 inactive (absent from the cache): tier 2 has no lower active tier, so only its trigger matters.
    assert ids(evaluate([T2, T3], member(xp=250), frozenset())) == [12]
    assert ids(evaluate([T2, T3], member(xp=300), frozenset())) == [12, 13]
    # Tier 2 inactive: tier 3 is gated by tier 1, the closest lower active tier.
    assert evaluate([T1, T3], member(xp=300), frozenset({12})) == [T1, T3]
    manual_t1 = tpl(11, "manual", {}, series=7, order=1)
    assert evaluate([manual_t1, T3], member(xp=300), frozenset({12})) == []


def test_series_are_independent_and_output_is_in_cache_order() -> None:
    other = tpl(21, "xp_milestone", {"value": 50}, series=3, order=1)
    loose_b = tpl(5, "xp_milestone", {"value": 1})
    loose_a = tpl(2, "level_reached", {"value": 2})
    shuffled = [T3, other, T2, loose_b, T1, loose_a]
    result = evaluate(shuffled, member(xp=300, level=2), frozenset())
    # No-series templates first (by id), then series 3, then series 7 by order.
    assert ids(result) == [2, 5, 21, 11, 12, 13]


def test_counter_keys_lists_what_event_count_templates_read() -> None:
    templates = [
        tpl(1, "event_count", {"event_type": "message_create", "value": 5}),
        tpl(2, "event_count", {"event_type": "message_create", "value": 50, "scope": "lifetime"}),
        tpl(3, "event_count", {"event_type": "voice_join", "value": 5, "scope": "season"}),
        tpl(4, "xp_milestone", {"value": 5}),
        tpl(5, "event_count", {"event_type": "nope", "value": 5}),
    ]
    assert counter_keys(templates, 9) == {("message_create", "lifetime"), ("voice_join", "season:9")}
    assert counter_keys(templates, None) == {("message_create", "lifetime")}
    assert counter_keys([], 9) == set()


def test_counter_thresholds_use_the_listed_keys() -> None:
    templates = [
        tpl(1, "event_count", {"event_type": "thread_create", "value": 3}),
        tpl(2, "event_count", {"event_type": "thread_create", "value": 4}),
    ]
    keys = counter_keys(templates, None)
    counters = dict.fromkeys(keys, 3)
    assert ids(evaluate(templates, member(counters=counters), frozenset())) == [1]
    assert evaluate(templates, member(counters={("thread_create", "day:2024-01-01"): 99}), frozenset()) == []
