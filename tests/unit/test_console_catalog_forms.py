"""Pure helpers of the console's achievement and member pages: fields generated from body models and trigger
schemas, the pickers that send `null`, the criterion summary, the trigger chooser, the delete advice, and the
member search parameters."""

from __future__ import annotations

from datetime import UTC, datetime

from synapse_async.api.admin.achievements import (
    CategoryModel,
    RarityModel,
    SeriesModel,
    TemplateCreate,
    TemplateModel,
    TemplatePatch,
    TierModel,
    TriggerTypeModel,
)
from synapse_async.api.admin.awards import AwardBody
from synapse_async.rewards.achievements import trigger_schemas
from synapse_async.web.console.achievements import (
    Lookups,
    chosen_trigger,
    delete_advice,
    reference_tables,
    template_form,
    trigger_fields,
    trigger_summary,
)
from synapse_async.web.console.bodies import body_fields, channel_field, reference_field, unwrap_nullable
from synapse_async.web.console.forms import Option
from synapse_async.web.console.members import keep_query, search_params

TYPES = [
    TriggerTypeModel(trigger_type=name, description=str(schema["description"]), config_schema=schema)
    for name, schema in trigger_schemas().items()
]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _template(**changes: object) -> TemplateModel:
    base: dict[str, object] = {
        "id": 7, "name": "Regular", "description": None, "category_id": None, "rarity_id": None, "series_id": None,
        "series_order": None, "trigger_type": "manual", "trigger_config": {}, "xp_reward": 0, "gold_reward": 0,
        "badge_image_url": None, "announce_channel_id": None, "is_hidden": False, "max_earners": None,
        "earned_count": 0, "active": True, "created_at": NOW, "updated_at": NOW, "warnings": [],
    }  # fmt: skip
    return TemplateModel.model_validate({**base, **changes})


def test_unwrap_nullable_keeps_the_branch_bounds_and_the_outer_default() -> None:
    spec = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 9}, {"type": "null"}], "default": None, "title": "X"}
    assert unwrap_nullable(spec) == ({"type": "integer", "minimum": 1, "maximum": 9, "default": None}, True)
    assert unwrap_nullable({"type": "string"}) == ({"type": "string"}, False)


def test_body_fields_follow_the_award_model() -> None:
    xp, gold, reason = body_fields(AwardBody.model_json_schema(), ("xp", "gold", "reason"), labels={"xp": "XP"})
    assert (xp.name, xp.label, xp.widget, xp.json_type) == ("xp", "XP", "number", "int")
    assert (xp.minimum, xp.maximum, xp.value) == (-1_000_000, 1_000_000, 0)
    assert (reason.widget, reason.max_length, reason.required) == ("text", 200, True)
    assert gold.bounds == "-1,000,000 – 1,000,000"


def test_template_fields_come_from_the_create_and_patch_models() -> None:
    lookups = Lookups({}, {}, {})
    create = {f.name: f for group in template_form(TemplateCreate, {}, lookups, ()).values() for f in group}
    assert create["name"].required and create["name"].max_length == 100
    assert (create["xp_reward"].minimum, create["xp_reward"].maximum, create["xp_reward"].value) == (0, 1_000_000, 0)
    assert create["active"].widget == "checkbox" and create["active"].value is True
    assert create["max_earners"].nullable and create["max_earners"].maximum is None  # storage limit, not a rule
    assert create["max_earners"].bounds == ""
    patch = template_form(TemplatePatch, {"name": "Old", "xp_reward": 5, "is_hidden": True}, lookups, ())
    fields = {f.name: f for group in patch.values() for f in group}
    assert not fields["name"].required and fields["name"].value == "Old"
    assert fields["xp_reward"].value == 5 and fields["is_hidden"].value is True
    # Every writable template field of the create body is on the form, or is the trigger block.
    shown = set(fields) | {"trigger_type", "trigger_config"}
    assert shown == set(TemplateCreate.model_fields)


def test_reference_pickers_send_null_for_none_and_keep_an_unknown_id() -> None:
    f = reference_field("rarity_id", "Rarity", [(1, "Common"), (2, "Rare")], 2)
    assert (f.json_type, f.value) == ("json", "2")
    assert [o.value for o in f.options] == ["null", "1", "2"]
    assert f.selected("2") and not f.selected("null")
    assert reference_field("rarity_id", "Rarity", [], None).selected("null")
    gone = reference_field("series_id", "Series", [(1, "A")], 9)
    assert gone.options[-1] == Option("9", "unknown (9)")
    assert "series" in gone.error_keys  # the service names the reference without `_id`
    channel = channel_field("announce_channel_id", "Announce in", [Option("5", "#general")], None)
    assert (channel.json_type, channel.nullable, channel.options[0].value) == ("snowflake", True, "")


def test_trigger_fields_are_generated_from_each_schema() -> None:
    by_type = {t.trigger_type: t for t in TYPES}
    stat = {f.name: f for f in trigger_fields(by_type["stat_threshold"], None)}
    assert set(stat) == {"trigger_config.stat", "trigger_config.value", "trigger_config.scope"}
    assert stat["trigger_config.stat"].widget == "select"
    assert "voice_minutes" in [o.value for o in stat["trigger_config.stat"].options]
    assert stat["trigger_config.scope"].value == "lifetime"  # the schema's default
    level = trigger_fields(by_type["level_reached"], {"value": 12})[0]
    assert (level.minimum, level.maximum, level.value) == (2, 1000, 12)
    assert level.error_keys == ("trigger_config.value", "value")
    assert trigger_fields(by_type["manual"], None) == ()


def test_chosen_trigger_prefers_the_query_then_the_template_then_the_first() -> None:
    assert chosen_trigger("event_count", TYPES) == "event_count"
    assert chosen_trigger("nonsense", TYPES, "xp_milestone") == "xp_milestone"
    assert chosen_trigger(None, TYPES) == TYPES[0].trigger_type


def test_trigger_summary_reads_like_the_rule() -> None:
    assert trigger_summary("stat_threshold", {"stat": "messages_sent", "value": 1000, "scope": "season"}) == (
        "messages sent ≥ 1,000 (season)"
    )
    assert trigger_summary("level_reached", {"value": 10}) == "level ≥ 10"
    assert trigger_summary("star_threshold", {"value": 5, "scope": "lifetime"}) == "stars ≥ 5"
    assert trigger_summary("event_count", {"event_type": "reaction_add", "value": 3}) == "reaction add events ≥ 3"
    assert trigger_summary("manual", {}) == "granted only"


def test_delete_advice_says_why_an_earned_template_stays_and_what_to_do() -> None:
    assert "can be deleted" in delete_advice(_template())
    advice = delete_advice(_template(earned_count=3))
    assert advice.startswith("3 members have earned it") and "Deactivate it instead" in advice
    assert delete_advice(_template(earned_count=1)).startswith("1 member has earned it")


def test_reference_tables_edit_every_column_of_their_bodies() -> None:
    lookups = Lookups(
        {1: CategoryModel(id=1, name="Chat", icon="💬", sort_order=0)},
        {2: RarityModel(id=2, name="Rare", color="#2196F3", emoji="🔵", sort_order=2)},
        {3: SeriesModel(id=3, name="Talker", description=None, tiers=[
            TierModel(id=9, name="Two", series_order=2, active=True),
            TierModel(id=8, name="One", series_order=1, active=True),
        ])},
    )  # fmt: skip
    categories, rarities, series = reference_tables(lookups)
    assert [f.name for f in categories.create] == ["name", "icon", "sort_order"]
    assert {f.name: f.value for f in categories.rows[0].fields} == {"name": "Chat", "icon": "💬", "sort_order": 0}
    assert [f.name for f in rarities.rows[0].fields] == ["name", "color", "emoji", "sort_order"]
    assert series.rows[0].detail == "1. One → 2. Two"


def test_search_params_never_fail_the_listing() -> None:
    assert search_params({"q": "  zeb ", "sort": "gold"}) == {"sort": "gold", "q": "zeb"}
    assert search_params({"q": "", "sort": "bogus"}) == {"sort": "xp"}
    assert len(search_params({"q": "x" * 300})["q"]) == 100
    assert keep_query({"sort": "name", "q": "a&b"}) == "sort=name&q=a%26b&"
    assert keep_query({}) == ""
