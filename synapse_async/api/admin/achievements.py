"""Admin routes of the achievement catalogue: templates, trigger schemas, earners, grant and revoke, and the
category, rarity and series tables (SPEC §20, §12).

Thin adapters: the route contract validates path, query and body; `services/catalogue.py` and `economy.py` hold every
rule that needs the database and report refusals as exceptions mapped to 400 (with field details), 404 or 409.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synapse_async.api.admin.common import BASE, ID_MAX, NOT_BLANK, applied, conflict, not_null, require_member
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.schema import (
    GuildPath,
    Items,
    NoParams,
    Page,
    PageQuery,
    PatchModel,
    PathId,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.db.models import MAX_TEMPLATE_REWARD
from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES, TriggerType
from synapse_async.rewards.achievements import trigger_schemas
from synapse_async.services import catalogue
from synapse_async.services.audit import Actor
from synapse_async.services.catalogue import (
    Catalogue,
    CatalogueConflict,
    CatalogueNotFound,
    NewTemplate,
    TemplateRejected,
)
from synapse_async.services.economy import (
    REASON_MAX,
    BadgeResult,
    GrantRejected,
    RevokeRejected,
)
from synapse_async.settings import lake_source_key

api = Api()
_TAG: Final = "achievements"

# The command's field names for a template's references, as the API body names them.
_FIELD_NAMES: Final = {"category": "category_id", "rarity": "rarity_id", "series": "series_id"}


def _rejected(problems: list[tuple[str, str]]) -> ApiError:
    return ApiError.validation([FieldProblem(f"{_FIELD_NAMES.get(f, f)}", "invalid_value", p) for f, p in problems])


# --- models -----------------------------------------------------------------------------------------------------


class TemplateCreate(StrictModel):
    name: str = Field(min_length=1, max_length=catalogue.MAX_NAME)
    trigger_type: TriggerType
    trigger_config: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(None, max_length=catalogue.MAX_DESCRIPTION)
    category_id: int | None = Field(None, ge=1, le=ID_MAX)
    rarity_id: int | None = Field(None, ge=1, le=ID_MAX)
    series_id: int | None = Field(None, ge=1, le=ID_MAX)
    series_order: int | None = Field(None, ge=1, le=2**31 - 1)
    xp_reward: int = Field(0, ge=0, le=MAX_TEMPLATE_REWARD)
    gold_reward: int = Field(0, ge=0, le=MAX_TEMPLATE_REWARD)
    badge_image_url: str | None = Field(None, max_length=catalogue.MAX_URL, pattern=r"^https://\S+$")
    announce_channel_id: Snowflake | None = None
    is_hidden: bool = False
    max_earners: int | None = Field(None, ge=1, le=ID_MAX)
    active: bool = True


class TemplatePatch(PatchModel):
    """Every template field, optional (absent = unchanged, null = clear a nullable field; null for a field that is
    not nullable is a 400)."""

    name: str | None = Field(None, min_length=1, max_length=catalogue.MAX_NAME)
    trigger_type: TriggerType | None = Field(None)
    trigger_config: dict[str, Any] | None = Field(None)
    description: str | None = Field(None, max_length=catalogue.MAX_DESCRIPTION)
    category_id: int | None = Field(None, ge=1, le=ID_MAX)
    rarity_id: int | None = Field(None, ge=1, le=ID_MAX)
    series_id: int | None = Field(None, ge=1, le=ID_MAX)
    series_order: int | None = Field(None, ge=1, le=2**31 - 1)
    xp_reward: int | None = Field(None, ge=0, le=MAX_TEMPLATE_REWARD)
    gold_reward: int | None = Field(None, ge=0, le=MAX_TEMPLATE_REWARD)
    badge_image_url: str | None = Field(None, max_length=catalogue.MAX_URL, pattern=r"^https://\S+$")
    announce_channel_id: Snowflake | None = None
    is_hidden: bool | None = Field(None)
    max_earners: int | None = Field(None, ge=1, le=ID_MAX)
    active: bool | None = Field(None)

    _present = field_validator(
        "name", "trigger_type", "trigger_config", "xp_reward", "gold_reward", "is_hidden", "active", mode="before"
    )(not_null)


class TemplateModel(ResponseModel):
    id: int
    name: str
    description: str | None
    category_id: int | None
    rarity_id: int | None
    series_id: int | None
    series_order: int | None
    trigger_type: str
    trigger_config: dict[str, Any]
    xp_reward: int
    gold_reward: int
    badge_image_url: str | None
    announce_channel_id: Snowflake | None
    is_hidden: bool
    max_earners: int | None
    earned_count: int
    active: bool
    created_at: UtcTime
    updated_at: UtcTime
    warnings: list[str]


class TemplatePath(GuildPath):
    achievement_id: PathId


class TriggerTypeModel(ResponseModel):
    trigger_type: str
    description: str
    config_schema: dict[str, Any]


class EarnerModel(ResponseModel):
    user_id: Snowflake
    display_name: str
    earned_at: UtcTime
    source: str
    granted_by: str | None


class GrantBody(StrictModel):
    user_id: Snowflake
    reason: str | None = Field(None, min_length=1, max_length=REASON_MAX, pattern=NOT_BLANK)


class RevokeBody(StrictModel):
    user_id: Snowflake
    reason: str = Field(min_length=1, max_length=REASON_MAX, pattern=NOT_BLANK)
    reverse_rewards: bool = False


class BadgeResultModel(ResponseModel):
    journal_id: int
    achievement_id: int
    xp_applied: int
    gold_applied: int
    xp: int
    gold: int
    level: int


# --- helpers ----------------------------------------------------------------------------------------------------


def _catalogue(call: Call[Any, Any, Any]) -> Catalogue:
    return Catalogue(call.platform.components.require_db())


def _template(call: Call[Any, Any, Any], row: dict[str, Any]) -> TemplateModel:
    guild = call.platform.components.require_cache().guild(call.path.guild_id)
    off = [t for t in LAKE_EVENT_TYPES if not guild.settings.bool(lake_source_key(t))]
    warnings = catalogue.template_warnings(row, season_active=guild.active_season is not None, sources_off=off)
    return TemplateModel(**row, warnings=warnings)


def _check_channel(call: Call[Any, Any, Any], channel_id: int | None) -> None:
    """An announcement channel must be a channel of the guild (the cache's channel map)."""
    if channel_id is None:
        return
    channels = call.platform.components.require_cache().guild(call.path.guild_id).channels
    if channel_id not in channels:
        problem = FieldProblem("announce_channel_id", "invalid_value", "unknown channel in this server")
        raise ApiError.validation([problem])


async def _template_write(
    call: Call[Any, Any, Any], write: Any, missing: str = "Unknown achievement."
) -> dict[str, Any]:
    """Run a catalogue write, mapping its refusals to 400 / 404 / 409."""
    try:
        async with call.platform.gate.slot():
            result: dict[str, Any] = await write
        return result
    except CatalogueConflict as exc:
        raise conflict(exc.reason, str(exc) or "The name is already taken.") from None
    except TemplateRejected as exc:
        raise _rejected(exc.problems) from None
    except CatalogueNotFound:
        raise ApiError.not_found(missing) from None


# --- achievements -----------------------------------------------------------------------------------------------


@api.route(
    "GET", BASE + "/achievements/trigger-types", summary="JSON Schema of each trigger type's config", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[TriggerTypeModel],
)  # fmt: skip
async def admin_trigger_types(call: Call[GuildPath, NoParams, None]) -> Items[TriggerTypeModel]:
    """Generated from the same declarations the validator reads (SPEC §12.2), so they cannot disagree."""
    items = [
        TriggerTypeModel(trigger_type=name, description=str(schema["description"]), config_schema=schema)
        for name, schema in trigger_schemas().items()
    ]
    return Items[TriggerTypeModel](items=items)


@api.route(
    "GET", BASE + "/achievements", summary="Every achievement template, inactive and hidden included", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[TemplateModel],
)  # fmt: skip
async def admin_achievements(call: Call[GuildPath, NoParams, None]) -> Items[TemplateModel]:
    """With `earned_count` and warnings about the switches (inactive, full, hidden, manual, season scope)."""
    async with call.platform.read() as conn:
        rows = await catalogue.list_templates(conn, call.path.guild_id)
    return Items[TemplateModel](items=[_template(call, row) for row in rows])


@api.route(
    "POST", BASE + "/achievements", summary="Create an achievement template", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, body=TemplateCreate, response=TemplateModel, status=201,
)  # fmt: skip
async def admin_create_achievement(call: Call[GuildPath, NoParams, TemplateCreate]) -> TemplateModel:
    """Validated per trigger type (§12.2); category, rarity and series must belong to the guild (§12.1)."""
    _check_channel(call, call.body.announce_channel_id)
    new = NewTemplate(**call.body.model_dump())
    write = _catalogue(call).create(guild_id=call.path.guild_id, new=new, actor=call.actor())
    return _template(call, await _template_write(call, write))


@api.route(
    "GET", BASE + "/achievements/{achievement_id}", summary="One achievement template", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, response=TemplateModel,
)  # fmt: skip
async def admin_get_achievement(call: Call[TemplatePath, NoParams, None]) -> TemplateModel:
    async with call.platform.read() as conn:
        row = await catalogue.get_template(conn, call.path.guild_id, call.path.achievement_id)
    if row is None:
        raise ApiError.not_found("Unknown achievement.")
    return _template(call, row)


@api.route(
    "PATCH", BASE + "/achievements/{achievement_id}", summary="Change an achievement template", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, body=TemplatePatch, response=TemplateModel,
)  # fmt: skip
async def admin_patch_achievement(call: Call[TemplatePath, NoParams, TemplatePatch]) -> TemplateModel:
    """The merged template is validated as a whole (a new trigger type needs a config that fits it)."""
    changes = call.body.changes()
    if "announce_channel_id" in changes:
        _check_channel(call, changes["announce_channel_id"])
    write = _catalogue(call).update(
        guild_id=call.path.guild_id, template_id=call.path.achievement_id, changes=changes, actor=call.actor()
    )
    return _template(call, await _template_write(call, write))


@api.route(
    "DELETE", BASE + "/achievements/{achievement_id}", summary="Delete an achievement nobody has earned", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, status=204,
)  # fmt: skip
async def admin_delete_achievement(call: Call[TemplatePath, NoParams, None]) -> None:
    """§12.3: a template anyone has earned cannot be deleted (409)."""

    async def delete() -> dict[str, Any]:
        await _catalogue(call).delete(
            guild_id=call.path.guild_id, template_id=call.path.achievement_id, actor=call.actor()
        )
        return {}

    await _template_write(call, delete())


@api.route(
    "GET", BASE + "/achievements/{achievement_id}/earners", summary="Who earned an achievement, newest first",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=TemplatePath, query=PageQuery, response=Page[EarnerModel],
)  # fmt: skip
async def admin_achievement_earners(call: Call[TemplatePath, PageQuery, None]) -> Page[EarnerModel]:
    q = call.query
    async with call.platform.read() as conn:
        page = await catalogue.earners(
            conn, call.path.guild_id, call.path.achievement_id, limit=q.page_size, offset=q.offset
        )
    if page is None:
        raise ApiError.not_found("Unknown achievement.")
    items = [EarnerModel(**{k: v for k, v in row.items() if k != "total"}) for row in page.items]
    return Page[EarnerModel](items=items, page=q.page, page_size=q.page_size, total=page.total)


_GRANT_REFUSALS: Final = {
    "inactive": "This achievement is inactive.",
    "already_earned": "The member already has this achievement.",
    "max_earners": "This achievement has reached its max_earners.",
}


class _BadgeArgs(TypedDict):
    guild_id: int
    user_id: int
    template_id: int
    actor: Actor
    request_id: str


def _badge_args(call: Call[TemplatePath, NoParams, GrantBody] | Call[TemplatePath, NoParams, RevokeBody]) -> _BadgeArgs:
    """What a grant and a revoke both take from the request: whose badge, which template, who asks. The request id
    (§7.5 `grant:` / `revoke:` + it) is the `Idempotency-Key` when given — a retry of that operation is recognised
    by its journal key even after the 24 h replay window — else a fresh UUID (a new operation)."""
    return _BadgeArgs(
        guild_id=call.path.guild_id,
        user_id=call.body.user_id,
        template_id=call.path.achievement_id,
        actor=call.actor(),
        request_id=call.operation_id(),
    )


def _badge(result: BadgeResult) -> BadgeResultModel:
    return BadgeResultModel(achievement_id=result.template_id, **applied(result))


@api.route(
    "POST", BASE + "/achievements/{achievement_id}/grant", summary="Grant an achievement to a member", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, body=GrantBody, response=BadgeResultModel,
)  # fmt: skip
async def admin_grant_achievement(call: Call[TemplatePath, NoParams, GrantBody]) -> BadgeResultModel:
    """§12.4: pays the rewards; series order is not required; `source = grant`, `granted_by` = the caller."""
    await require_member(call, call.body.user_id)
    economy = call.platform.components.require_economy()
    try:
        result = await economy.grant(**_badge_args(call), reason=call.body.reason)
    except GrantRejected as exc:
        if exc.reason == "unknown":
            raise ApiError.not_found("Unknown achievement.") from None
        raise conflict(exc.reason, _GRANT_REFUSALS[exc.reason]) from None
    return _badge(result)


@api.route(
    "POST", BASE + "/achievements/{achievement_id}/revoke", summary="Take an achievement away from a member",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=TemplatePath, body=RevokeBody, response=BadgeResultModel,
)  # fmt: skip
async def admin_revoke_achievement(call: Call[TemplatePath, NoParams, RevokeBody]) -> BadgeResultModel:
    """§20: with `reverse_rewards` exactly what the grant paid (its journal rows) is taken back, clamped at 0; 404 if
    not earned."""
    economy = call.platform.components.require_economy()
    body = call.body
    try:
        result = await economy.revoke(**_badge_args(call), reason=body.reason, reverse_rewards=body.reverse_rewards)
    except RevokeRejected:
        raise ApiError.not_found("The member does not have this achievement.") from None
    return _badge(result)


# --- categories, rarities, series -------------------------------------------------------------------------------

_INT32: Final = 2**31 - 1


class CategoryBody(StrictModel):
    name: str = Field(min_length=1, max_length=50, pattern=NOT_BLANK)
    icon: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int = Field(0, ge=-_INT32, le=_INT32)


class CategoryPatch(PatchModel):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})  # an empty change is refused (400)

    name: str | None = Field(None, min_length=1, max_length=50, pattern=NOT_BLANK)
    icon: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int | None = Field(None, ge=-_INT32, le=_INT32)

    _present = field_validator("name", "sort_order", mode="before")(not_null)


class CategoryModel(ResponseModel):
    id: int
    name: str
    icon: str | None
    sort_order: int


_COLOR: Final = r"^#[0-9A-Fa-f]{6}$"


class RarityBody(StrictModel):
    name: str = Field(min_length=1, max_length=50, pattern=NOT_BLANK)
    color: str = Field(pattern=_COLOR)
    emoji: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int = Field(0, ge=-_INT32, le=_INT32)


class RarityPatch(PatchModel):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})  # an empty change is refused (400)

    name: str | None = Field(None, min_length=1, max_length=50, pattern=NOT_BLANK)
    color: str | None = Field(None, pattern=_COLOR)
    emoji: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int | None = Field(None, ge=-_INT32, le=_INT32)

    _present = field_validator("name", "color", "sort_order", mode="before")(not_null)


class RarityModel(ResponseModel):
    id: int
    name: str
    color: str
    emoji: str | None
    sort_order: int


class SeriesBody(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)
    description: str | None = Field(None, max_length=500)


class SeriesPatch(PatchModel):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})  # an empty change is refused (400)

    name: str | None = Field(None, min_length=1, max_length=100, pattern=NOT_BLANK)
    description: str | None = Field(None, max_length=500)

    _present = field_validator("name", mode="before")(not_null)


class TierModel(ResponseModel):
    id: int
    name: str
    series_order: int
    active: bool


class SeriesModel(ResponseModel):
    id: int
    name: str
    description: str | None
    tiers: list[TierModel]


class RefPath(GuildPath):
    item_id: PathId


async def _ref_row(call: Call[Any, Any, Any], kind: catalogue.RefKind, row: dict[str, Any]) -> dict[str, Any]:
    """A written row as listed (series with their tiers)."""
    if kind is not catalogue.SERIES:
        return row
    async with call.platform.read() as conn:
        listed = await catalogue.list_refs(conn, kind, call.path.guild_id)
    return next((r for r in listed if r["id"] == row["id"]), {**row, "tiers": []})


def _register_refs(
    segment: str,
    kind: catalogue.RefKind,
    body: type[StrictModel],
    patch: type[PatchModel],
    model: type[ResponseModel],
) -> None:
    """The four routes of one reference table (SPEC §20: "same pattern for rarities and series")."""
    label = kind.action
    listed: type[BaseModel] = Items[model]  # type: ignore[valid-type]
    collection = f"{BASE}/{segment}"
    item = collection + "/{item_id}"

    def references(call: Call[Any, Any, Any]) -> catalogue.References:
        return catalogue.References(call.platform.components.require_db(), kind)

    async def listing(call: Call[GuildPath, NoParams, None]) -> BaseModel:
        async with call.platform.read() as conn:
            rows = await catalogue.list_refs(conn, kind, call.path.guild_id)
        return listed(items=[model(**r) for r in rows])

    async def create(call: Call[GuildPath, NoParams, Any]) -> BaseModel:
        write = references(call).create(guild_id=call.path.guild_id, values=call.body.model_dump(), actor=call.actor())
        return model(**await _ref_row(call, kind, await _template_write(call, write)))

    async def update(call: Call[RefPath, NoParams, Any]) -> BaseModel:
        changes = call.body.changes()
        if not changes:
            raise ApiError.validation([FieldProblem("body", "missing", "give at least one field")])
        write = references(call).update(
            guild_id=call.path.guild_id, ref_id=call.path.item_id, changes=changes, actor=call.actor()
        )
        return model(**await _ref_row(call, kind, await _template_write(call, write)))

    async def delete(call: Call[RefPath, NoParams, None]) -> None:
        async def run() -> dict[str, Any]:
            await references(call).delete(guild_id=call.path.guild_id, ref_id=call.path.item_id, actor=call.actor())
            return {}

        await _template_write(call, run(), missing=f"Unknown {label}.")

    listing.__doc__ = f"Every {label} of the guild."
    delete.__doc__ = f"Templates that referenced the {label} keep existing with the reference cleared (§12.3)."
    name = segment.replace("-", "_")
    for handler, verb in ((listing, "list"), (create, "create"), (update, "patch"), (delete, "delete")):
        handler.__name__ = handler.__qualname__ = f"admin_{verb}_{name}"
    common: dict[str, Any] = {"tag": _TAG, "access": Access.GUILD_ADMIN}
    api.route("GET", collection, summary=f"List {segment}", path_model=GuildPath, response=listed, **common)(listing)
    api.route(
        "POST", collection, summary=f"Create a {label}", path_model=GuildPath, body=body, response=model, status=201,
        **common,
    )(create)  # fmt: skip
    api.route("PATCH", item, summary=f"Change a {label}", path_model=RefPath, body=patch, response=model, **common)(
        update
    )
    api.route("DELETE", item, summary=f"Delete a {label}", path_model=RefPath, status=204, **common)(delete)


_register_refs("achievement-categories", catalogue.CATEGORIES, CategoryBody, CategoryPatch, CategoryModel)
_register_refs("achievement-rarities", catalogue.RARITIES, RarityBody, RarityPatch, RarityModel)
_register_refs("achievement-series", catalogue.SERIES, SeriesBody, SeriesPatch, SeriesModel)
