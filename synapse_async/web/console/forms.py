"""Console form fields generated from what already describes the data (SPEC §28.3): never a hand-written form.

Two sources: the settings registry as the settings twin reports it (§5.2: type, bounds, allowed values, category,
description, default) and the JSON Schema of an achievement trigger's config (§12.2). Each becomes a list of
`FormField`s that one template macro renders; the browser script turns the inputs back into the JSON body by the
field's `json_type`, and the API's validation answers with `details[].field`, which `error_keys` lets the script
place beside the right input. Pure: no I/O, unit-tested.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# A snowflake-typed setting whose key names a channel or roles gets a picker of the guild's channels or roles.
_CHANNEL_KEY: Final = re.compile(r"channel")
_ROLE_KEY: Final = re.compile(r"role")


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class FormField:
    """One input. `widget` picks the markup (number, checkbox, select, multiselect, text, textarea); `json_type`
    tells the script how to encode the value (int, float, bool, string, snowflake, snowflake_list, enum)."""

    name: str
    label: str
    widget: str
    json_type: str
    value: Any
    description: str = ""
    default: Any = None
    is_default: bool = True
    minimum: float | None = None
    maximum: float | None = None
    step: str | None = None
    max_length: int | None = None
    options: tuple[Option, ...] = ()
    required: bool = False
    nullable: bool = False
    error_keys: tuple[str, ...] = ()
    category: str = ""

    @property
    def input_id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def shown_value(self) -> str:
        """The value as an input's `value` attribute shows it."""
        if self.value is None:
            return ""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, float) and self.value.is_integer() and self.json_type == "float":
            return f"{self.value:.1f}"
        return str(self.value)

    def selected(self, value: str) -> bool:
        if isinstance(self.value, list | tuple):
            return value in {str(v) for v in self.value}
        return self.value is not None and str(self.value) == value

    @property
    def bounds(self) -> str:
        """The rule shown under the input: `0 – 1,000`, `up to 100 characters`, or nothing."""
        if self.widget == "number" and self.minimum is not None and self.maximum is not None:
            return f"{_num(self.minimum)} – {_num(self.maximum)}"
        if self.max_length is not None:
            return f"up to {self.max_length:,} characters"
        return ""


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """The fields of one registry category, in registry order."""

    category: str
    title: str
    fields: tuple[FormField, ...] = field(default_factory=tuple)


CATEGORY_TITLES: Final[Mapping[str, str]] = {
    "rewards": "Rewards",
    "anti_gaming": "Anti-gaming",
    "quality": "Message quality",
    "voice": "Voice",
    "leveling": "Leveling",
    "economy": "Economy",
    "display": "Display",
    "announcements": "Announcements",
    "seasons": "Seasons",
    "level_roles": "Level roles",
    "access": "Access",
    "event_lake": "Event lake",
    "card": "Rank card",
}


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def humanize(key: str) -> str:
    """`cooldown.per_channel_seconds` → "Per channel seconds"; the key stays visible beside the label."""
    last = key.rsplit(".", 1)[-1].replace("_", " ")
    return last[:1].upper() + last[1:]


_ACRONYMS: Final = {"xp": "XP", "id": "ID", "ids": "IDs", "afk": "AFK", "api": "API", "url": "URL"}


def setting_label(key: str, category: str) -> str:
    """`rewards.message.xp` → "Message XP", `cooldown.seconds` (anti-gaming) → "Cooldown seconds": the key's words
    without the part the category heading already says."""
    parts = key.split(".")
    if len(parts) > 1 and (parts[0] in category or category in parts[0]):
        parts = parts[1:]
    words = " ".join(parts).replace("_", " ").split()
    text = " ".join(_ACRONYMS.get(w, w) for w in words)
    return text[:1].upper() + text[1:]


def setting_field(item: Mapping[str, Any], channels: Sequence[Option] = (), roles: Sequence[Option] = ()) -> FormField:
    """One registry entry as the settings twin describes it (`key, type, value, default, is_default, min, max,
    allowed, category, description`)."""
    key = str(item["key"])
    kind = str(item["type"])
    common: dict[str, Any] = {
        "name": key,
        "label": setting_label(key, str(item["category"])),
        "json_type": kind,
        "value": item["value"],
        "description": str(item["description"]),
        "default": item["default"],
        "is_default": bool(item["is_default"]),
        "error_keys": (key, f"values.{key}"),
        "category": str(item["category"]),
        "required": True,
    }
    low, high = item.get("min"), item.get("max")
    match kind:
        case "int":
            return FormField(widget="number", minimum=low, maximum=high, step="1", **common)
        case "float":
            return FormField(widget="number", minimum=low, maximum=high, step="any", **common)
        case "bool":
            return FormField(widget="checkbox", **common)
        case "enum":
            options = tuple(Option(a, a.replace("_", " ")) for a in item.get("allowed") or ())
            return FormField(widget="select", options=options, **common)
        case "string":
            return FormField(widget="text", max_length=int(high) if high is not None else None, **common)
        case "snowflake":
            picks = channels if _CHANNEL_KEY.search(key) else roles if _ROLE_KEY.search(key) else ()
            if picks:
                none = Option("", "— none —")
                return FormField(widget="select", options=(none, *_with_unknown(picks, [item["value"]])), **common)
            return FormField(widget="text", nullable=True, **common)
        case _:  # snowflake_list
            values = list(item["value"] or [])
            if roles and _ROLE_KEY.search(key):
                return FormField(widget="multiselect", options=_with_unknown(roles, values), **common)
            return FormField(widget="textarea", **{**common, "value": "\n".join(str(v) for v in values)})


def _with_unknown(options: Sequence[Option], values: Iterable[Any]) -> tuple[Option, ...]:
    """The picker's options plus any stored id the guild no longer has, so saving does not silently drop it."""
    known = {o.value for o in options}
    missing = [Option(str(v), f"unknown ({v})") for v in values if v not in (None, "") and str(v) not in known]
    return (*options, *missing)


def settings_groups(
    items: Iterable[Mapping[str, Any]], channels: Sequence[Option] = (), roles: Sequence[Option] = ()
) -> tuple[FieldGroup, ...]:
    """Every setting, grouped by category in the registry's order."""
    groups: dict[str, list[FormField]] = {}
    for item in items:
        f = setting_field(item, channels, roles)
        groups.setdefault(f.category, []).append(f)
    return tuple(
        FieldGroup(cat, CATEGORY_TITLES.get(cat, humanize(cat)), tuple(fields)) for cat, fields in groups.items()
    )


def schema_fields(
    schema: Mapping[str, Any], values: Mapping[str, Any] | None = None, prefix: str = ""
) -> tuple[FormField, ...]:
    """The properties of an object JSON Schema (a trigger config) as fields named `prefix + property`.

    Supports what trigger schemas use: integer and number with bounds, boolean, string with `enum` or
    `maxLength`, and arrays of strings (one per line). A property of another shape is a JSON text field, so a new
    trigger type is still editable before this function learns its shape."""
    values = values or {}
    required = set(schema.get("required", ()))
    out: list[FormField] = []
    for prop, spec in dict(schema.get("properties", {})).items():
        name = prefix + prop
        default = spec.get("default")
        common: dict[str, Any] = {
            "name": name,
            "label": humanize(prop),
            "value": values.get(prop, default),
            "description": str(spec.get("description", "")),
            "default": default,
            "required": prop in required,
            "error_keys": (name, prop),
        }
        kind = spec.get("type")
        if "enum" in spec:
            options = tuple(Option(str(v), str(v).replace("_", " ")) for v in spec["enum"])
            out.append(FormField(widget="select", json_type="enum", options=options, **common))
        elif kind in ("integer", "number"):
            integer = kind == "integer"
            bounds = {"minimum": spec.get("minimum"), "maximum": spec.get("maximum")}
            json_type, step = ("int", "1") if integer else ("float", "any")
            out.append(FormField(widget="number", json_type=json_type, step=step, **bounds, **common))
        elif kind == "boolean":
            out.append(FormField(widget="checkbox", json_type="bool", **common))
        elif kind == "string":
            out.append(FormField(widget="text", json_type="string", max_length=spec.get("maxLength"), **common))
        elif kind == "array" and dict(spec.get("items", {})).get("type") == "string":
            shown = "\n".join(str(v) for v in (common["value"] or []))
            out.append(FormField(widget="textarea", json_type="string_list", **{**common, "value": shown}))
        else:
            shown = "" if common["value"] is None else _json(common["value"])
            out.append(FormField(widget="textarea", json_type="json", **{**common, "value": shown}))
    return tuple(out)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
