"""Achievements (SPEC §28.3, §12, §20): the catalogue, one generated form per trigger type, earners, grant, revoke,
and the category / rarity / series tables.

Pages (twins in api/admin/achievements.py):
- `/admin/g/{id}/achievements` — every template with earned counts and the API's toggle warnings.
- `/admin/g/{id}/achievements/new?trigger=<type>` — create: the trigger config fields come from that type's JSON
  Schema (`…/achievements/trigger-types`, `forms.schema_fields`), the template's other fields from the create body
  model's schema (`bodies.body_fields`), with pickers for category, rarity, series and the announce channel.
  Choosing another type is a plain link (`?trigger=`), so it works without JavaScript.
- `/admin/g/{id}/achievements/{aid}` — edit (same generation, from the patch body), earners (paged), grant, revoke
  (reason, reverse rewards), delete. Deleting an earned template is refused by the API (409): the page says so up
  front and shows the API's message beside the delete button, with what to do instead (deactivate it).
- `/admin/g/{id}/achievements/groups` — categories, rarities (colour, emoji) and series with their forms.

Every change is the browser calling the JSON API (console.js); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel

from synapse_async.api.admin import achievements as twin
from synapse_async.api.admin.achievements import (
    CategoryBody,
    CategoryModel,
    CategoryPatch,
    EarnerModel,
    RarityBody,
    RarityModel,
    RarityPatch,
    SeriesBody,
    SeriesModel,
    SeriesPatch,
    TemplateCreate,
    TemplateModel,
    TemplatePatch,
    TriggerTypeModel,
)
from synapse_async.api.admin.common import BASE
from synapse_async.api.admin.members import MemberRowModel, admin_members
from synapse_async.api.contract import Handler
from synapse_async.api.schema import Items, Page
from synapse_async.web.console.bodies import body_fields, channel_field, reference_field
from synapse_async.web.console.forms import FormField, Option, schema_fields
from synapse_async.web.console.gate import Console, console_page, page_of
from synapse_async.web.console.pickers import pickers
from synapse_async.web.site import now, render

# The template fields a form shows, in order, besides the trigger (which has its own generated block).
TEMPLATE_FIELDS: Final = (
    "name",
    "description",
    "xp_reward",
    "gold_reward",
    "max_earners",
    "series_order",
    "badge_image_url",
    "is_hidden",
    "active",
)
LABELS: Final[Mapping[str, str]] = {
    "xp_reward": "XP reward",
    "gold_reward": "Gold reward",
    "max_earners": "Max earners",
    "series_order": "Tier in its series",
    "badge_image_url": "Badge image URL",
    "is_hidden": "Hidden (secret achievement)",
    "active": "Active",
}
HELP: Final[Mapping[str, str]] = {
    "name": "Shown in the gallery, on profiles and in the announcement.",
    "description": "What the member did; withheld from the public while hidden.",
    "xp_reward": "XP paid when it is earned.",
    "gold_reward": "Gold paid when it is earned.",
    "max_earners": "Stop awarding after this many members; empty = no limit.",
    "series_order": "1, 2, … — needed exactly when a series is chosen.",
    "badge_image_url": "An https image URL; empty = the rarity emoji.",
    "is_hidden": "Name, description and criteria are masked on every public surface.",
    "active": "Inactive: not evaluated, not grantable, absent from the gallery; earned badges stay.",
}
EARNERS_PAGE: Final = 25


@dataclass(frozen=True, slots=True)
class Lookups:
    """The guild's categories, rarities and series by id, for names in the catalogue and the pickers."""

    categories: Mapping[int, CategoryModel]
    rarities: Mapping[int, RarityModel]
    series: Mapping[int, SeriesModel]


def trigger_label(trigger_type: str) -> str:
    """`xp_milestone` → "XP milestone": a trigger type as a heading or link says it."""
    words = trigger_type.split("_")
    words[0] = words[0].upper() if words[0] == "xp" else words[0].capitalize()
    return " ".join(words)


def trigger_summary(trigger_type: str, config: Mapping[str, Any]) -> str:
    """A template's criterion in a few words: `messages sent ≥ 100 (season)`, `level ≥ 10`, `granted only`."""
    value = config.get("value")
    amount = f"{value:,}" if isinstance(value, int) else str(value)
    scope = f" ({config['scope']})" if config.get("scope") == "season" else ""
    match trigger_type:
        case "manual":
            return "granted only"
        case "stat_threshold":
            return f"{str(config.get('stat', '?')).replace('_', ' ')} ≥ {amount}{scope}"
        case "xp_milestone":
            return f"XP ≥ {amount}"
        case "level_reached":
            return f"level ≥ {amount}"
        case "star_threshold":
            return f"stars ≥ {amount}{scope}"
        case "event_count":
            return f"{str(config.get('event_type', '?')).replace('_', ' ')} events ≥ {amount}{scope}"
        case _:
            return ", ".join(f"{k} = {v}" for k, v in config.items()) or trigger_type


def chosen_trigger(wanted: str | None, types: Sequence[TriggerTypeModel], current: str | None = None) -> str:
    """The trigger type whose form is shown: `?trigger=` if it names a type, else the template's own, else the
    first type (an unknown `?trigger=` never fails the page)."""
    names = [t.trigger_type for t in types]
    if wanted in names:
        return str(wanted)
    if current in names:
        return str(current)
    return names[0]


def trigger_fields(trigger: TriggerTypeModel, config: Mapping[str, Any] | None) -> tuple[FormField, ...]:
    """The config form of one trigger type, generated from its JSON Schema; fields are `trigger_config.<key>`."""
    return schema_fields(trigger.config_schema, config or {}, prefix="trigger_config.")


def template_form(
    model: type[TemplateCreate] | type[TemplatePatch],
    values: Mapping[str, Any],
    lookups: Lookups,
    channels: Sequence[Option],
) -> dict[str, tuple[FormField, ...]]:
    """The template's own fields in groups (what it is, where it belongs, rewards and switches), generated from
    the create or patch body model, with pickers for the guild's references and the announce channel."""
    generated = {
        f.name: f
        for f in body_fields(model.model_json_schema(), TEMPLATE_FIELDS, values, labels=LABELS, help_text=HELP)
    }
    if model is TemplateCreate:  # the create body requires a name; the patch body makes every field optional
        generated["name"] = _required(generated["name"])
    refs = (
        reference_field(
            "category_id",
            "Category",
            ((c.id, f"{c.icon + ' ' if c.icon else ''}{c.name}") for c in lookups.categories.values()),
            values.get("category_id"),
            "Groups the gallery.",
        ),
        reference_field(
            "rarity_id",
            "Rarity",
            ((r.id, f"{r.emoji + ' ' if r.emoji else ''}{r.name}") for r in lookups.rarities.values()),
            values.get("rarity_id"),
            "Colour and emoji of the badge.",
        ),
        reference_field(
            "series_id",
            "Series",
            ((s.id, s.name) for s in lookups.series.values()),
            values.get("series_id"),
            "A tier is earnable once the previous active tier is earned.",
        ),
        channel_field(
            "announce_channel_id",
            "Announce in",
            channels,
            values.get("announce_channel_id"),
            "Where the unlock is announced; none = the server's announcement channel.",
        ),
    )
    by_name = {f.name: f for f in refs}
    return {
        "What it is": (generated["name"], generated["description"]),
        "Where it belongs": (
            by_name["category_id"],
            by_name["rarity_id"],
            by_name["series_id"],
            generated["series_order"],
        ),
        "Rewards and limits": (generated["xp_reward"], generated["gold_reward"], generated["max_earners"]),
        "Display and switches": (
            by_name["announce_channel_id"],
            generated["badge_image_url"],
            generated["is_hidden"],
            generated["active"],
        ),
    }


def _required(f: FormField) -> FormField:
    return replace(f, required=True, nullable=False)


@dataclass(frozen=True, slots=True)
class RefRow:
    """One existing category, rarity or series with its edit fields (from the table's patch body)."""

    id: int
    name: str
    fields: tuple[FormField, ...]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RefTable:
    """One reference table on the groups page: its rows and the create form (from its create body)."""

    key: str
    title: str
    segment: str
    noun: str
    about: str
    create: tuple[FormField, ...]
    rows: tuple[RefRow, ...]


_REF_LABELS: Final[Mapping[str, str]] = {"sort_order": "Order", "icon": "Icon (emoji)", "emoji": "Emoji"}


def reference_tables(lookups: Lookups) -> tuple[RefTable, ...]:
    """Categories, rarities and series as the groups page edits them; every field comes from the body models."""

    def fields(model: type[BaseModel], values: Mapping[str, Any] | None = None) -> tuple[FormField, ...]:
        names = [n for n in model.model_fields if n != "id"]
        return body_fields(model.model_json_schema(), names, values, labels=_REF_LABELS)

    def tiers(s: SeriesModel) -> str:
        return " → ".join(f"{t.series_order}. {t.name}" for t in sorted(s.tiers, key=lambda t: t.series_order))

    return (
        RefTable(
            "category", "Categories", "achievement-categories", "category", "Group the gallery; lower order first.",
            fields(CategoryBody),
            tuple(RefRow(c.id, c.name, fields(CategoryPatch, c.model_dump())) for c in lookups.categories.values()),
        ),
        RefTable(
            "rarity", "Rarities", "achievement-rarities", "rarity", "Colour and emoji of a badge; lower order first.",
            fields(RarityBody),
            tuple(RefRow(r.id, r.name, fields(RarityPatch, r.model_dump())) for r in lookups.rarities.values()),
        ),
        RefTable(
            "series", "Series", "achievement-series", "series",
            "Chain achievements into tiers: set an achievement's series and tier on its own page.",
            fields(SeriesBody),
            tuple(
                RefRow(s.id, s.name, fields(SeriesPatch, s.model_dump()), tiers(s) or "no tiers yet")
                for s in lookups.series.values()
            ),
        ),
    )  # fmt: skip


def delete_advice(template: TemplateModel) -> str:
    """What the delete card says before anyone presses the button (§12.3: an earned template cannot go)."""
    if template.earned_count == 0:
        return "Nobody has earned it yet, so it can be deleted. This cannot be undone."
    who = "member has" if template.earned_count == 1 else "members have"
    return (
        f"{template.earned_count:,} {who} earned it, so the server refuses to delete it: their badges and the "
        "journal rows that paid them must stay. Deactivate it instead (uncheck Active above and save): it is then "
        "not evaluated, not grantable and gone from the gallery, while earned badges stay. To remove it for good, "
        "revoke it from every earner first."
    )


def _handler(method: str, segment: str) -> Handler:
    """A reference table's route handler (they are generated in the twin module, one set per table)."""
    path = f"{BASE}/{segment}"
    return next(op.handler for op in twin.api.operations if op.method == method and op.path == path)


async def _lookups(console: Console) -> Lookups:
    categories = await console.ask(_handler("GET", "achievement-categories"), Items[CategoryModel])
    rarities = await console.ask(_handler("GET", "achievement-rarities"), Items[RarityModel])
    series = await console.ask(_handler("GET", "achievement-series"), Items[SeriesModel])
    return Lookups(
        {c.id: c for c in categories.items}, {r.id: r for r in rarities.items}, {s.id: s for s in series.items}
    )


async def _trigger_types(console: Console) -> list[TriggerTypeModel]:
    return (await console.ask(twin.admin_trigger_types, Items[TriggerTypeModel])).items


# --- pages ------------------------------------------------------------------------------------------------------


@console_page
async def catalogue_page(request: web.Request, console: Console) -> web.StreamResponse:
    templates = (await console.ask(twin.admin_achievements, Items[TemplateModel])).items
    context = console.context(
        "achievements",
        templates=templates,
        lookups=await _lookups(console),
        trigger_types=await _trigger_types(console),
        summary=trigger_summary,
        label=trigger_label,
        earned_total=sum(t.earned_count for t in templates),
    )
    return render(request, "console/achievements.html", context, private=True)


@console_page
async def new_page(request: web.Request, console: Console) -> web.StreamResponse:
    types = await _trigger_types(console)
    chosen = chosen_trigger(request.query.get("trigger"), types)
    trigger = next(t for t in types if t.trigger_type == chosen)
    text_channels, _, _ = await pickers(console)
    lookups = await _lookups(console)
    context = console.context(
        "achievements",
        mode="new",
        label=trigger_label,
        template=None,
        trigger_types=types,
        trigger=trigger,
        config_fields=trigger_fields(trigger, None),
        groups=template_form(TemplateCreate, {}, lookups, text_channels),
    )
    return render(request, "console/achievement.html", context, private=True)


@console_page
async def template_page(request: web.Request, console: Console) -> web.StreamResponse:
    aid = request.match_info["achievement_id"]
    template = await console.ask(twin.admin_get_achievement, TemplateModel, path={"achievement_id": aid})
    types = await _trigger_types(console)
    chosen = chosen_trigger(request.query.get("trigger"), types, template.trigger_type)
    trigger = next(t for t in types if t.trigger_type == chosen)
    config = template.trigger_config if chosen == template.trigger_type else None
    page = page_of(request)
    earners = await console.ask(
        twin.admin_achievement_earners,
        Page[EarnerModel],
        path={"achievement_id": template.id},
        query={"page": page, "page_size": EARNERS_PAGE},
    )
    members = await console.ask(admin_members, Page[MemberRowModel], query={"sort": "name", "page_size": 100})
    text_channels, _, _ = await pickers(console)
    lookups = await _lookups(console)
    values = template.model_dump()
    context = console.context(
        "achievements",
        mode="edit",
        label=trigger_label,
        template=template,
        trigger_types=types,
        trigger=trigger,
        config_fields=trigger_fields(trigger, config),
        groups=template_form(TemplatePatch, values, lookups, text_channels),
        earners=earners,
        members=members.items,
        delete_advice=delete_advice(template),
        summary=trigger_summary,
        now=now(),
    )
    return render(request, "console/achievement.html", context, private=True)


@console_page
async def groups_page(request: web.Request, console: Console) -> web.StreamResponse:
    context = console.context("achievements", tables=reference_tables(await _lookups(console)))
    return render(request, "console/achievement_groups.html", context, private=True)


def install(app: web.Application) -> None:
    root = "/admin/g/{guild_id}/achievements"
    app.router.add_get(root, catalogue_page)
    app.router.add_get(root + "/new", new_page)
    app.router.add_get(root + "/groups", groups_page)
    app.router.add_get(root + "/{achievement_id:[0-9]{1,19}}", template_page)
