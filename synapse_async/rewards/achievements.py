"""Achievement triggers (SPEC §12.2) and evaluation decisions (§12.1 series, §12.3, §12.4), with no I/O.

Each trigger type's config is declared once, as a list of fields; the validator for admin input, the JSON Schema
served by `GET …/achievements/trigger-types` and the evaluator all read that one declaration, so the documented
schema cannot disagree with what is accepted.

Evaluation runs inside the event transaction for every reward (§12.4), so it works on a snapshot the caller has
already read with O(1) queries (member row, active-season row, the keyed counters from `counter_keys`, the earned
set) and costs O(active templates): no history is scanned and nothing here touches the database. The caller then
inserts the earned rows (conditionally, so `max_earners` holds under concurrency) and pays the rewards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES, STAT_NAMES, TRIGGER_TYPES
from synapse_async.rewards.config import TemplateInfo

__all__ = [
    "SCOPES",
    "STAT_NAMES",
    "TRIGGER_TYPES",
    "VALUE_MAX",
    "MemberSnapshot",
    "counter_keys",
    "evaluate",
    "normalized_trigger_config",
    "season_period",
    "trigger_met",
    "trigger_schemas",
    "validate_trigger",
]

SCOPES: Final[tuple[str, ...]] = ("season", "lifetime")
VALUE_MAX: Final = 10**12
LIFETIME: Final = "lifetime"


def season_period(season_id: int) -> str:
    """The `event_counters.period` of a season (§15.2)."""
    return f"season:{season_id}"


# --- trigger declarations -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One config key: an integer in [minimum, maximum] or a string from `allowed`; optional keys have a default."""

    name: str
    kind: Literal["int", "enum"]
    description: str
    minimum: int = 1
    maximum: int = VALUE_MAX
    allowed: tuple[str, ...] = ()
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    def rule(self) -> str:
        if self.kind == "int":
            return f"must be an integer between {self.minimum} and {self.maximum}"
        return "must be one of: " + ", ".join(self.allowed)


_VALUE = _Field("value", "int", "Threshold the member's figure must reach (inclusive).")
_SCOPE = _Field(
    "scope",
    "enum",
    "Count over the active season or the member's whole history; season triggers never fire without a season.",
    allowed=SCOPES,
    default=LIFETIME,
)

_TRIGGERS: Final[Mapping[str, tuple[str, tuple[_Field, ...]]]] = {
    "stat_threshold": (
        "Fires when a stat on the member row (lifetime) or the active-season row reaches value.",
        (_Field("stat", "enum", "Which activity stat to compare.", allowed=STAT_NAMES), _VALUE, _SCOPE),
    ),
    "xp_milestone": ("Fires when lifetime XP reaches value.", (_VALUE,)),
    "level_reached": (
        "Fires when the member's level reaches value.",
        (_Field("value", "int", "Level to reach.", minimum=2, maximum=1000),),
    ),
    "star_threshold": ("Fires when season or lifetime stars reach value.", (_VALUE, _SCOPE)),
    "event_count": (
        "Fires when the member's event-lake counter (lifetime or the active season) reaches value.",
        (_Field("event_type", "enum", "Event-lake type to count.", allowed=LAKE_EVENT_TYPES), _VALUE, _SCOPE),
    ),
    "manual": ("Never fires automatically; only granted by an admin.", ()),
}


def _check_field(spec: _Field, raw: object) -> str | None:
    if spec.kind == "int":
        # JSON `true` arrives as a bool (an int subclass) and `5.0` as a float; neither is a JSON integer here.
        if isinstance(raw, int) and not isinstance(raw, bool) and spec.minimum <= raw <= spec.maximum:
            return None
        return spec.rule()
    if not isinstance(raw, str) or raw not in spec.allowed:
        return spec.rule()
    return None


def validate_trigger(trigger_type: str, config: object) -> list[tuple[str, str]]:
    """Problems with a template's trigger, as `(field, problem)` pairs for a 400 `validation_error` (§12.2, §18).

    Fields are `trigger_type`, `trigger_config` (not an object) or `trigger_config.<key>`. Unknown keys, missing
    required keys, wrong JSON types (numbers as strings, booleans or floats as integers, numbers as enum strings)
    and out-of-range values are all reported, unknown keys first, then fields in declaration order; an empty list
    means valid. An unknown trigger type is reported alone, because its config has no rules to check against.
    """
    declared = _TRIGGERS.get(trigger_type) if isinstance(trigger_type, str) else None
    if declared is None:
        return [("trigger_type", "must be one of: " + ", ".join(TRIGGER_TYPES))]
    if not isinstance(config, Mapping):
        return [("trigger_config", "must be a JSON object")]
    fields = declared[1]
    names = {f.name for f in fields}
    problems = [(f"trigger_config.{key}", "unknown field") for key in config if key not in names]
    for spec in fields:
        if spec.name not in config:
            if spec.required:
                problems.append((f"trigger_config.{spec.name}", "required"))
            continue
        problem = _check_field(spec, config[spec.name])
        if problem is not None:
            problems.append((f"trigger_config.{spec.name}", problem))
    return problems


def normalized_trigger_config(trigger_type: str, config: Mapping[str, object]) -> dict[str, object]:
    """A valid config with defaults filled in (`scope` → `lifetime`), the form to store.

    Storing the explicit default means a stored config states its own meaning, even if a default ever changes.
    Raises ValueError when `validate_trigger` reports anything.
    """
    problems = validate_trigger(trigger_type, config)
    if problems:
        raise ValueError(f"invalid trigger config: {problems}")
    out = dict(config)
    for spec in _TRIGGERS[trigger_type][1]:
        if spec.name not in out and spec.default is not None:
            out[spec.name] = spec.default
    return out


def trigger_schemas() -> dict[str, dict[str, object]]:
    """JSON Schema (draft 2020-12) of each trigger type's config, for `GET …/achievements/trigger-types`.

    A fresh structure every call, so a caller may decorate it. Note that JSON Schema's `integer` admits `5.0`;
    the validator is stricter and, like the settings registry (§5.1), accepts only JSON integers.
    """
    schemas: dict[str, dict[str, object]] = {}
    for trigger_type, (description, fields) in _TRIGGERS.items():
        properties: dict[str, object] = {}
        for spec in fields:
            prop: dict[str, object] = {"description": spec.description}
            if spec.kind == "int":
                prop.update(type="integer", minimum=spec.minimum, maximum=spec.maximum)
            else:
                prop.update(type="string", enum=list(spec.allowed))
            if spec.default is not None:
                prop["default"] = spec.default
            properties[spec.name] = prop
        schemas[trigger_type] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": trigger_type,
            "description": description,
            "type": "object",
            "properties": properties,
            "required": [f.name for f in fields if f.required],
            "additionalProperties": False,
        }
    return schemas


# --- evaluation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """What evaluation may look at, read by the caller in O(1) queries after the member update (§12.4).

    A season is active exactly when `season_id` is set; `season_stats` / `season_stars` None with a season active
    means the member has no season row yet, i.e. zeros. `counters` needs only the keys `counter_keys` lists.
    """

    xp: int
    level: int
    lifetime_stars: int
    stats: Mapping[str, int]
    season_stats: Mapping[str, int] | None
    season_stars: int | None
    counters: Mapping[tuple[str, str], int]
    season_id: int | None


def _value(config: Mapping[str, object]) -> int | None:
    raw = config.get("value")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _scope(config: Mapping[str, object]) -> str:
    raw = config.get("scope", LIFETIME)
    return raw if isinstance(raw, str) else LIFETIME


def trigger_met(template: TemplateInfo, member: MemberSnapshot) -> bool:
    """Whether `template`'s trigger holds for `member` right now, ignoring earned state, gating and capacity.

    `manual` never holds. A season-scoped trigger never holds without an active season (§12.2). A stored config
    that no longer validates (it was validated on write, so only a hand-edited row) never holds, rather than
    failing the event transaction that happens to evaluate it.
    """
    ttype = template.trigger_type
    config = template.trigger_config
    if ttype == "manual" or validate_trigger(ttype, config):
        return False
    value = _value(config)
    if value is None:  # pragma: no cover - excluded by validate_trigger
        return False
    season = _scope(config) == "season"
    if season and member.season_id is None:
        return False
    if ttype == "stat_threshold":
        stat = str(config["stat"])
        stats = (member.season_stats or {}) if season else member.stats
        return stats.get(stat, 0) >= value
    if ttype == "xp_milestone":
        return member.xp >= value
    if ttype == "level_reached":
        return member.level >= value
    if ttype == "star_threshold":
        stars = (member.season_stars or 0) if season else member.lifetime_stars
        return stars >= value
    if ttype == "event_count":
        period = season_period(member.season_id) if season and member.season_id is not None else LIFETIME
        return member.counters.get((str(config["event_type"]), period), 0) >= value
    return False  # pragma: no cover - every declared type is handled above


def _cache_order(template: TemplateInfo) -> tuple[bool, int, int, int]:
    """The cache's `ORDER BY series_id NULLS FIRST, series_order NULLS FIRST, id`."""
    return (
        template.series_id is not None,
        template.series_id or 0,
        template.series_order or 0,
        template.template_id,
    )


def evaluate(
    templates: Sequence[TemplateInfo],
    member: MemberSnapshot,
    earned: frozenset[int],
    *,
    full_templates: frozenset[int] = frozenset(),
) -> list[TemplateInfo]:
    """The active templates this member earns now, in cache order (series, series_order, id).

    `templates` are the guild's **active** templates (the cache holds no others); `earned` the member's earned
    template ids; `full_templates` those whose `max_earners` is reached, which stop awarding (§12.3). A series tier
    is earnable only when the closest lower active tier of its series is earned; since inactive tiers are absent,
    the previous template of the same series in cache order is that gate. Tiers earned earlier in this same pass
    count, so one big jump can earn tiers 1, 2 and 3 at once. The input is sorted defensively; it normally arrives
    sorted, for which the sort is linear.
    """
    have = set(earned)
    newly: list[TemplateInfo] = []
    gate: dict[int, int] = {}  # series_id -> template id of the last (highest so far) active tier seen
    for template in sorted(templates, key=_cache_order):
        tid = template.template_id
        series = template.series_id
        previous = gate.get(series) if series is not None else None
        if series is not None:
            gate[series] = tid
        if tid in have or tid in full_templates:
            continue
        if previous is not None and previous not in have:
            continue
        if trigger_met(template, member):
            have.add(tid)
            newly.append(template)
    return newly


def counter_keys(templates: Sequence[TemplateInfo], season_id: int | None) -> set[tuple[str, str]]:
    """The `(event_type, period)` counters the guild's `event_count` templates read, for ONE keyed query.

    Season-scoped templates need no counter while no season is active (they cannot fire), so they add nothing.
    """
    keys: set[tuple[str, str]] = set()
    for template in templates:
        if template.trigger_type != "event_count" or validate_trigger("event_count", template.trigger_config):
            continue
        event_type = str(template.trigger_config["event_type"])
        if _scope(template.trigger_config) == "season":
            if season_id is not None:
                keys.add((event_type, season_period(season_id)))
        else:
            keys.add((event_type, LIFETIME))
    return keys
