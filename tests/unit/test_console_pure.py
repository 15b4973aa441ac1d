"""The console's pure parts: form fields from the settings registry and from trigger JSON Schemas, audit diffs,
and the audit filter's time reading."""

from __future__ import annotations

from typing import Any

from synapse_async.rewards.achievements import trigger_schemas
from synapse_async.settings import REGISTRY
from synapse_async.settings.validation import describe, to_json
from synapse_async.web.console.audit import as_utc
from synapse_async.web.console.diff import Change, changes
from synapse_async.web.console.forms import Option, schema_fields, setting_label, settings_groups


def _items() -> list[dict[str, Any]]:
    return [
        {**describe(key), "value": to_json(key, d.default), "is_default": True}  # type: ignore[dict-item]
        for key, d in REGISTRY.items()
    ]


def test_every_registry_key_gets_one_field_with_its_rules() -> None:
    groups = settings_groups(_items())
    fields = {f.name: f for g in groups for f in g.fields}
    assert set(fields) == set(REGISTRY)
    for key, d in REGISTRY.items():
        f = fields[key]
        assert f.category == d.category and f.description == d.description
        if d.type in ("int", "float"):
            assert (f.widget, f.minimum, f.maximum) == ("number", d.min, d.max)
        if d.type == "enum":
            assert [o.value for o in f.options] == list(d.allowed or ())
        if d.type == "bool":
            assert f.widget == "checkbox"
        assert key in f.error_keys and f"values.{key}" in f.error_keys
    assert [g.category for g in groups] == list(dict.fromkeys(d.category for d in REGISTRY.values()))


def test_channel_and_role_settings_get_pickers_that_keep_unknown_ids() -> None:
    items = _items()
    for item in items:
        if item["key"] == "access.admin_role_ids":
            item["value"] = ["999"]
    roles = (Option("5", "@Mods"),)
    channels = (Option("7", "#general"),)
    fields = {f.name: f for g in settings_groups(items, channels, roles) for f in g.fields}
    admin_roles = fields["access.admin_role_ids"]
    assert admin_roles.widget == "multiselect"
    assert [o.value for o in admin_roles.options] == ["5", "999"] and admin_roles.selected("999")
    announce = fields["announce.channel_id"]
    assert announce.widget == "select" and [o.value for o in announce.options] == ["", "7"]


def test_every_trigger_schema_becomes_a_form() -> None:
    for name, schema in trigger_schemas().items():
        fields = schema_fields(schema, prefix="trigger_config.")
        props = dict(schema.get("properties", {}))  # type: ignore[call-overload]
        assert [f.name for f in fields] == [f"trigger_config.{p}" for p in props], name
        for f in fields:
            spec = props[f.name.removeprefix("trigger_config.")]
            if "enum" in spec:
                assert [o.value for o in f.options] == [str(v) for v in spec["enum"]]
            elif spec.get("type") == "integer":
                assert (f.json_type, f.minimum, f.maximum) == ("int", spec.get("minimum"), spec.get("maximum"))
            assert f.required == (f.name.removeprefix("trigger_config.") in schema.get("required", []))  # type: ignore[operator]


def test_an_unknown_property_shape_is_still_editable_as_json() -> None:
    schema = {"type": "object", "properties": {"weights": {"type": "object"}}}
    (f,) = schema_fields(schema, {"weights": {"a": 1}})
    assert (f.widget, f.json_type, f.shown_value) == ("textarea", "json", '{"a": 1}')


def test_diff_lists_only_what_moved() -> None:
    assert changes({"value": 1, "key": "x"}, {"value": 2, "key": "x"}) == [Change("value", "1", "2")]
    assert changes(None, {"a": 1}) == [Change("a", "—", "1")]
    assert changes({"a": [1, 2]}, None) == [Change("a", "[1, 2]", "—")]
    assert changes({"a": None}, {"a": None}) == []
    assert changes(3, 4) == [Change("value", "3", "4")]
    assert changes(None, None) == []


def test_a_datetime_local_value_is_read_as_utc() -> None:
    assert as_utc("2026-12-06T10:00") == "2026-12-06T10:00:00Z"
    assert as_utc("2026-12-06T10:00:05") == "2026-12-06T10:00:05Z"
    assert as_utc("2026-12-06T10:00:00+02:00") == "2026-12-06T10:00:00+02:00"
    assert as_utc("yesterday") == "yesterday"


def test_setting_labels_say_what_the_heading_does_not() -> None:
    assert setting_label("rewards.message.xp", "rewards") == "Message XP"
    assert setting_label("cooldown.seconds", "anti_gaming") == "Cooldown seconds"
    assert setting_label("announce.channel_id", "announcements") == "Channel ID"
    assert setting_label("lake.retention_days", "event_lake") == "Retention days"
