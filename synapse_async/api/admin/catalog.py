"""Admin routes of the achievement catalogue, awards, seasons, members and live logs (SPEC §20, §11, §12, §24.3).

Thin adapters: the route contract validates path, query and body with the models below (types, ranges, unknown
fields); the services (`services/catalogue.py`, `economy.py`, `seasons.py`, `member_directory.py`) hold every rule
that needs the database, write the change, its audit row and the NOTIFY of the table in one transaction, and
report refusals as exceptions that map to 400 (with field details), 404 or 409 here.

Grants, revokes and awards are keyed by a fresh UUID per request: a retried HTTP request is made exactly-once by
the contract's `Idempotency-Key` (the stored response), and the economy's own key guards the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypedDict, TypeVar

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.schema import (
    BodyTime,
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
from synapse_async.domain.vocabulary import TriggerType
from synapse_async.obs.logging import current_ring
from synapse_async.obs.ring import level_name, parse_level
from synapse_async.rewards.achievements import trigger_schemas
from synapse_async.services import catalogue, member_directory, seasons
from synapse_async.services.audit import Actor, record_alone
from synapse_async.services.catalogue import (
    Catalogue,
    CatalogueConflict,
    CatalogueNotFound,
    NewTemplate,
    TemplateRejected,
)
from synapse_async.services.economy import (
    AMOUNT_LIMIT,
    REASON_MAX,
    AwardResult,
    BadgeResult,
    GrantRejected,
    RevokeRejected,
)
from synapse_async.services.member_directory import MemberSort
from synapse_async.services.members import is_known_member
from synapse_async.services.seasons import SeasonRejected, SeasonRow, Seasons

api = Api()
_TAG: Final = "achievements"
_ECONOMY_TAG: Final = "economy"
_SEASONS_TAG: Final = "seasons"
_ID_MAX: Final = 2**63 - 1
_BASE: Final = "/api/admin/guilds/{guild_id}"

# A reason is 1–200 characters with at least one that is not white space (the economy refuses blank ones).
_NOT_BLANK: Final = r"\S"
# The command's field names for a template's references, as the API body names them.
_FIELD_NAMES: Final = {"category": "category_id", "rarity": "rarity_id", "series": "series_id"}


def _rejected(problems: list[tuple[str, str]]) -> ApiError:
    return ApiError.validation([FieldProblem(f"{_FIELD_NAMES.get(f, f)}", "invalid_value", p) for f, p in problems])


def _conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def _not_null(value: object) -> object:
    """For PATCH fields that are not nullable: absent means unchanged, an explicit null is a 400 (§18)."""
    if value is None:
        raise PydanticCustomError("invalid_type", "must not be null")
    return value


# --- models -----------------------------------------------------------------------------------------------------


class TemplateCreate(StrictModel):
    name: str = Field(min_length=1, max_length=catalogue.MAX_NAME)
    trigger_type: TriggerType
    trigger_config: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(None, max_length=catalogue.MAX_DESCRIPTION)
    category_id: int | None = Field(None, ge=1, le=_ID_MAX)
    rarity_id: int | None = Field(None, ge=1, le=_ID_MAX)
    series_id: int | None = Field(None, ge=1, le=_ID_MAX)
    series_order: int | None = Field(None, ge=1, le=2**31 - 1)
    xp_reward: int = Field(0, ge=0, le=MAX_TEMPLATE_REWARD)
    gold_reward: int = Field(0, ge=0, le=MAX_TEMPLATE_REWARD)
    badge_image_url: str | None = Field(None, max_length=catalogue.MAX_URL, pattern=r"^https://\S+$")
    announce_channel_id: Snowflake | None = None
    is_hidden: bool = False
    max_earners: int | None = Field(None, ge=1, le=_ID_MAX)
    active: bool = True


class TemplatePatch(PatchModel):
    """Every template field, optional (absent = unchanged, null = clear a nullable field; null for a field that is
    not nullable is a 400)."""

    name: str | None = Field(None, min_length=1, max_length=catalogue.MAX_NAME)
    trigger_type: TriggerType | None = Field(None)
    trigger_config: dict[str, Any] | None = Field(None)
    description: str | None = Field(None, max_length=catalogue.MAX_DESCRIPTION)
    category_id: int | None = Field(None, ge=1, le=_ID_MAX)
    rarity_id: int | None = Field(None, ge=1, le=_ID_MAX)
    series_id: int | None = Field(None, ge=1, le=_ID_MAX)
    series_order: int | None = Field(None, ge=1, le=2**31 - 1)
    xp_reward: int | None = Field(None, ge=0, le=MAX_TEMPLATE_REWARD)
    gold_reward: int | None = Field(None, ge=0, le=MAX_TEMPLATE_REWARD)
    badge_image_url: str | None = Field(None, max_length=catalogue.MAX_URL, pattern=r"^https://\S+$")
    announce_channel_id: Snowflake | None = None
    is_hidden: bool | None = Field(None)
    max_earners: int | None = Field(None, ge=1, le=_ID_MAX)
    active: bool | None = Field(None)

    _present = field_validator(
        "name", "trigger_type", "trigger_config", "xp_reward", "gold_reward", "is_hidden", "active", mode="before"
    )(_not_null)


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
    reason: str | None = Field(None, min_length=1, max_length=REASON_MAX, pattern=_NOT_BLANK)


class RevokeBody(StrictModel):
    user_id: Snowflake
    reason: str = Field(min_length=1, max_length=REASON_MAX, pattern=_NOT_BLANK)
    reverse_rewards: bool = False


class BadgeResultModel(ResponseModel):
    journal_id: int
    achievement_id: int
    xp_applied: int
    gold_applied: int
    xp: int
    gold: int
    level: int


class AwardBody(StrictModel):
    user_id: Snowflake
    xp: int = Field(0, ge=-AMOUNT_LIMIT, le=AMOUNT_LIMIT)
    gold: int = Field(0, ge=-AMOUNT_LIMIT, le=AMOUNT_LIMIT)
    reason: str = Field(min_length=1, max_length=REASON_MAX, pattern=_NOT_BLANK)


class AwardResultModel(ResponseModel):
    journal_id: int
    xp_applied: int
    gold_applied: int
    xp: int
    gold: int
    level: int


class SeasonModel(ResponseModel):
    id: int
    name: str
    status: str
    starts_at: UtcTime
    ends_at: UtcTime
    ended_at: UtcTime | None


class SeasonStartBody(StrictModel):
    name: str = Field(min_length=1, max_length=seasons.MAX_NAME, pattern=_NOT_BLANK)
    days: int | None = Field(None, ge=1, le=seasons.MAX_DAYS)
    ends_at: BodyTime | None = None
    replace_active: bool = False


class SeasonStartedModel(SeasonModel):
    replaced: SeasonModel | None  # the active season this start ended (only with `replace_active`)


class SeasonPatch(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=seasons.MAX_NAME, pattern=_NOT_BLANK)
    ends_at: BodyTime | None = None

    _present = field_validator("name", "ends_at", mode="before")(_not_null)


class SeasonPath(GuildPath):
    season_id: PathId


class StandingModel(ResponseModel):
    user_id: Snowflake
    display_name: str
    stars: int


class SeasonEndedModel(ResponseModel):
    season: SeasonModel
    top: list[StandingModel]


# --- helpers ----------------------------------------------------------------------------------------------------


def _catalogue(call: Call[Any, Any, Any]) -> Catalogue:
    return Catalogue(call.platform.components.require_db())


def _template(call: Call[Any, Any, Any], row: dict[str, Any]) -> TemplateModel:
    active = call.platform.components.require_cache().guild(call.path.guild_id).active_season is not None
    return TemplateModel(**row, warnings=catalogue.template_warnings(row, season_active=active))


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
        raise _conflict(str(exc) or "The name is already taken.") from None
    except TemplateRejected as exc:
        raise _rejected(exc.problems) from None
    except CatalogueNotFound:
        raise ApiError.not_found(missing) from None


async def _require_member(call: Call[Any, Any, Any], user_id: int) -> None:
    """Awards, grants and revokes go to members the bot knows in this guild (404 otherwise)."""
    async with call.platform.read() as conn:
        if not await is_known_member(conn, call.path.guild_id, user_id):
            raise ApiError.not_found("Unknown member.")


def _season(row: SeasonRow) -> SeasonModel:
    return SeasonModel(
        id=row.season_id,
        name=row.name,
        status="active" if row.ended_at is None else "ended",
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        ended_at=row.ended_at,
    )


_SEASON_REFUSALS: Final = {
    "name_taken": (409, "A season with this name already exists."),
    "active_exists": (409, "A season is active; pass replace_active: true to end it and start this one."),
    "none_active": (409, "No season is active."),
    "conflict": (409, "Another season change happened at the same time; try again."),
    "unknown": (404, "Unknown season."),
    "not_active": (409, "ends_at can only be changed on the active season."),
}


def _season_refused(exc: SeasonRejected) -> ApiError:
    status, message = _SEASON_REFUSALS[exc.reason]
    return ApiError.not_found(message) if status == 404 else _conflict(message)


def _season_invalid(field: str, exc: ValueError) -> ApiError:
    return ApiError.validation([FieldProblem(f"{field}", "invalid_value", str(exc))])


def _future(field: str, value: datetime | None) -> None:
    if value is not None and value <= datetime.now(UTC):
        raise ApiError.validation([FieldProblem(f"{field}", "out_of_range", "must be in the future")])


# --- achievements -----------------------------------------------------------------------------------------------


@api.route(
    "GET", _BASE + "/achievements/trigger-types", summary="JSON Schema of each trigger type's config", tag=_TAG,
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
    "GET", _BASE + "/achievements", summary="Every achievement template, inactive and hidden included", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[TemplateModel],
)  # fmt: skip
async def admin_achievements(call: Call[GuildPath, NoParams, None]) -> Items[TemplateModel]:
    """With `earned_count` and warnings about the switches (inactive, full, hidden, manual, season scope)."""
    async with call.platform.read() as conn:
        rows = await catalogue.list_templates(conn, call.path.guild_id)
    return Items[TemplateModel](items=[_template(call, row) for row in rows])


@api.route(
    "POST", _BASE + "/achievements", summary="Create an achievement template", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, body=TemplateCreate, response=TemplateModel, status=201,
)  # fmt: skip
async def admin_create_achievement(call: Call[GuildPath, NoParams, TemplateCreate]) -> TemplateModel:
    """Validated per trigger type (§12.2); category, rarity and series must belong to the guild (§12.1)."""
    _check_channel(call, call.body.announce_channel_id)
    new = NewTemplate(**call.body.model_dump())
    write = _catalogue(call).create(guild_id=call.path.guild_id, new=new, actor=call.actor())
    return _template(call, await _template_write(call, write))


@api.route(
    "GET", _BASE + "/achievements/{achievement_id}", summary="One achievement template", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, response=TemplateModel,
)  # fmt: skip
async def admin_get_achievement(call: Call[TemplatePath, NoParams, None]) -> TemplateModel:
    async with call.platform.read() as conn:
        row = await catalogue.get_template(conn, call.path.guild_id, call.path.achievement_id)
    if row is None:
        raise ApiError.not_found("Unknown achievement.")
    return _template(call, row)


@api.route(
    "PATCH", _BASE + "/achievements/{achievement_id}", summary="Change an achievement template", tag=_TAG,
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
    "DELETE", _BASE + "/achievements/{achievement_id}", summary="Delete an achievement nobody has earned", tag=_TAG,
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
    "GET", _BASE + "/achievements/{achievement_id}/earners", summary="Who earned an achievement, newest first",
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
    """What a grant and a revoke both take from the request: whose badge, which template, who asks. Each HTTP request
    is a new operation, so it gets a fresh request id (§7.5): a repeated POST grants or revokes again."""
    return _BadgeArgs(
        guild_id=call.path.guild_id,
        user_id=call.body.user_id,
        template_id=call.path.achievement_id,
        actor=call.actor(),
        request_id=uuid.uuid4().hex,
    )


def _applied(result: AwardResult) -> dict[str, int]:
    """The response fields an award, a grant and a revoke share: journal row, APPLIED deltas, balances after."""
    return {
        "journal_id": result.journal_id,
        "xp_applied": result.xp_applied,
        "gold_applied": result.gold_applied,
        "xp": result.xp,
        "gold": result.gold,
        "level": result.level,
    }


def _badge(result: BadgeResult) -> BadgeResultModel:
    return BadgeResultModel(achievement_id=result.template_id, **_applied(result))


@api.route(
    "POST", _BASE + "/achievements/{achievement_id}/grant", summary="Grant an achievement to a member", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=TemplatePath, body=GrantBody, response=BadgeResultModel,
)  # fmt: skip
async def admin_grant_achievement(call: Call[TemplatePath, NoParams, GrantBody]) -> BadgeResultModel:
    """§12.4: pays the rewards; series order is not required; `source = grant`, `granted_by` = the caller."""
    await _require_member(call, call.body.user_id)
    economy = call.platform.components.require_economy()
    try:
        result = await economy.grant(**_badge_args(call), reason=call.body.reason)
    except GrantRejected as exc:
        if exc.reason == "unknown":
            raise ApiError.not_found("Unknown achievement.") from None
        raise _conflict(_GRANT_REFUSALS[exc.reason]) from None
    return _badge(result)


@api.route(
    "POST", _BASE + "/achievements/{achievement_id}/revoke", summary="Take an achievement away from a member",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=TemplatePath, body=RevokeBody, response=BadgeResultModel,
)  # fmt: skip
async def admin_revoke_achievement(call: Call[TemplatePath, NoParams, RevokeBody]) -> BadgeResultModel:
    """§12.4: with `reverse_rewards` the template's XP and gold are subtracted (clamped at 0); 404 if not earned."""
    economy = call.platform.components.require_economy()
    body = call.body
    try:
        result = await economy.revoke(**_badge_args(call), reason=body.reason, reverse_rewards=body.reverse_rewards)
    except RevokeRejected:
        raise ApiError.not_found("The member does not have this achievement.") from None
    return _badge(result)


# --- awards -----------------------------------------------------------------------------------------------------


@api.route(
    "POST", _BASE + "/awards", summary="Give or take XP and gold", tag=_ECONOMY_TAG, access=Access.GUILD_ADMIN,
    path_model=GuildPath, body=AwardBody, response=AwardResultModel,
)  # fmt: skip
async def admin_award(call: Call[GuildPath, NoParams, AwardBody]) -> AwardResultModel:
    """§10.3: negative amounts are clamped at 0 and the APPLIED amounts are returned; at least one is non-zero."""
    body = call.body
    if body.xp == 0 and body.gold == 0:
        raise ApiError.validation(
            [FieldProblem(f"{f}", "invalid_value", "xp and gold must not both be 0") for f in ("xp", "gold")]
        )
    await _require_member(call, body.user_id)
    result = await call.platform.components.require_economy().award(
        guild_id=call.path.guild_id,
        user_id=body.user_id,
        xp=body.xp,
        gold=body.gold,
        reason=body.reason,
        actor=call.actor(),
        request_id=uuid.uuid4().hex,
    )
    return AwardResultModel(**_applied(result))


# --- seasons ----------------------------------------------------------------------------------------------------


def _seasons(call: Call[Any, Any, Any]) -> Seasons:
    return Seasons(call.platform.components.require_db())


@api.route(
    "GET", _BASE + "/seasons", summary="Every season of the guild, newest first", tag=_SEASONS_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[SeasonModel],
)  # fmt: skip
async def admin_seasons(call: Call[GuildPath, NoParams, None]) -> Items[SeasonModel]:
    async with call.platform.read() as conn:
        rows = await seasons.list_seasons(conn, call.path.guild_id)
    items = [
        SeasonModel(
            id=int(str(r["season_id"])),
            name=str(r["name"]),
            status=str(r["status"]),
            starts_at=r["starts_at"],  # type: ignore[arg-type]
            ends_at=r["ends_at"],  # type: ignore[arg-type]
            ended_at=r["ended_at"],  # type: ignore[arg-type]
        )
        for r in rows
    ]
    return Items[SeasonModel](items=items)


@api.route(
    "POST", _BASE + "/seasons", summary="Start a season now", tag=_SEASONS_TAG, access=Access.GUILD_ADMIN,
    path_model=GuildPath, body=SeasonStartBody, response=SeasonStartedModel, status=201,
)  # fmt: skip
async def admin_start_season(call: Call[GuildPath, NoParams, SeasonStartBody]) -> SeasonStartedModel:
    """§11: `days` (default `season.default_days`) or an explicit future `ends_at`; an active season is ended in
    the same transaction only with `replace_active: true`, else 409."""
    body = call.body
    if body.days is not None and body.ends_at is not None:
        raise ApiError.validation([FieldProblem("ends_at", "invalid_value", "give days or ends_at, not both")])
    _future("ends_at", body.ends_at)
    days = body.days or call.platform.components.require_cache().settings(call.path.guild_id).int("season.default_days")
    try:
        async with call.platform.gate.slot():
            started = await _seasons(call).start(
                guild_id=call.path.guild_id,
                name=body.name,
                actor=call.actor(),
                days=days,
                ends_at=body.ends_at,
                replace_active=body.replace_active,
            )
    except SeasonRejected as exc:
        raise _season_refused(exc) from None
    except ValueError as exc:
        raise _season_invalid("ends_at" if body.ends_at is not None else "name", exc) from None
    replaced = None if started.ended is None else _season(started.ended)
    return SeasonStartedModel(**_season(started.season).model_dump(), replaced=replaced)


@api.route(
    "PATCH", _BASE + "/seasons/{season_id}", summary="Rename a season or move the active season's end",
    tag=_SEASONS_TAG, access=Access.GUILD_ADMIN, path_model=SeasonPath, body=SeasonPatch, response=SeasonModel,
)  # fmt: skip
async def admin_patch_season(call: Call[SeasonPath, NoParams, SeasonPatch]) -> SeasonModel:
    """`ends_at` is editable on the active season only and must be in the future."""
    changes = call.body.changes()
    if not changes:
        raise ApiError.validation([FieldProblem("body", "missing", "give name and/or ends_at")])
    _future("ends_at", changes.get("ends_at"))
    try:
        async with call.platform.gate.slot():
            updated = await _seasons(call).update(
                guild_id=call.path.guild_id,
                season_id=call.path.season_id,
                actor=call.actor(),
                name=changes.get("name"),
                ends_at=changes.get("ends_at"),
            )
    except SeasonRejected as exc:
        raise _season_refused(exc) from None
    except ValueError as exc:
        raise _season_invalid("ends_at" if "ends_at" in changes else "name", exc) from None
    return _season(updated)


@api.route(
    "POST", _BASE + "/seasons/{season_id}/end", summary="End the active season now", tag=_SEASONS_TAG,
    access=Access.GUILD_ADMIN, path_model=SeasonPath, response=SeasonEndedModel,
)  # fmt: skip
async def admin_end_season(call: Call[SeasonPath, NoParams, None]) -> SeasonEndedModel:
    """Status `ended`, `ended_at` = now; the answer carries the top 3 by season stars."""
    try:
        async with call.platform.gate.slot():
            ended = await _seasons(call).end(
                guild_id=call.path.guild_id, actor=call.actor(), season_id=call.path.season_id
            )
    except SeasonRejected as exc:
        raise _season_refused(exc) from None
    top = [StandingModel(user_id=s.user_id, display_name=s.display_name, stars=s.stars) for s in ended.top]
    return SeasonEndedModel(season=_season(ended.season), top=top)


# --- members ----------------------------------------------------------------------------------------------------


class MembersQuery(PageQuery):
    q: str | None = Field(None, min_length=1, max_length=100)
    sort: MemberSort = "xp"


class MemberRowModel(ResponseModel):
    user_id: Snowflake
    display_name: str
    avatar_hash: str | None
    xp: int
    level: int
    peak_level: int
    gold: int
    lifetime_stars: int
    messages_sent: int
    reactions_given: int
    reactions_received: int
    threads_created: int
    voice_minutes: int
    github_username: str | None
    joined_at: UtcTime | None
    left_at: UtcTime | None
    last_active_at: UtcTime | None
    created_at: UtcTime
    updated_at: UtcTime


class PreferencesModel(ResponseModel):
    announce_level_up: bool
    announce_achievements: bool
    announce_awards: bool


class MemberSeasonModel(ResponseModel):
    season_id: int
    name: str
    status: str
    stars: int
    xp: int
    gold_earned: int
    messages_sent: int
    reactions_given: int
    reactions_received: int
    threads_created: int
    voice_minutes: int


class MemberBadgeModel(ResponseModel):
    template_id: int
    name: str
    is_hidden: bool
    earned_at: UtcTime
    source: str
    granted_by: str | None
    journal_id: int | None


class MemberDetailModel(ResponseModel):
    member: MemberRowModel
    preferences: PreferencesModel
    seasons: list[MemberSeasonModel]
    achievements: list[MemberBadgeModel]


class MemberPath(GuildPath):
    user_id: Snowflake


class JournalRowModel(ResponseModel):
    id: int
    event_type: str
    idempotency_key: str
    season_id: int | None
    channel_id: Snowflake | None
    counterpart_id: Snowflake | None
    ref_id: Snowflake | None
    xp_delta: int
    star_delta: int
    zero_reason: str | None
    actor_id: str | None
    details: dict[str, Any]
    occurred_at: UtcTime
    recorded_at: UtcTime


class LedgerRowModel(ResponseModel):
    id: int
    delta: int
    balance_after: int
    reason: str
    journal_id: int | None
    actor_id: str | None
    idempotency_key: str
    note: str | None
    created_at: UtcTime


_MEMBERS_TAG: Final = "members"


@api.route(
    "GET", _BASE + "/members", summary="Search and sort the guild's members", tag=_MEMBERS_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=MembersQuery, response=Page[MemberRowModel],
)  # fmt: skip
async def admin_members(call: Call[GuildPath, MembersQuery, None]) -> Page[MemberRowModel]:
    """`q`: case-insensitive substring of the name (LIKE wildcards taken literally) or an exact user id."""
    q = call.query
    async with call.platform.read() as conn:
        rows = await member_directory.search_members(
            conn, call.path.guild_id, q=q.q, sort=q.sort, limit=q.page_size, offset=q.offset
        )
    items = [MemberRowModel(**row) for row in rows.items]
    return Page[MemberRowModel](items=items, page=q.page, page_size=q.page_size, total=rows.total)


@api.route(
    "GET", _BASE + "/members/{user_id}", summary="One member: row, preferences, seasons, achievements",
    tag=_MEMBERS_TAG, access=Access.GUILD_ADMIN, path_model=MemberPath, response=MemberDetailModel,
)  # fmt: skip
async def admin_member(call: Call[MemberPath, NoParams, None]) -> MemberDetailModel:
    async with call.platform.read() as conn:
        detail = await member_directory.member_detail(conn, call.path.guild_id, call.path.user_id)
    if detail is None:
        raise ApiError.not_found("Unknown member.")
    return MemberDetailModel(
        member=MemberRowModel(**detail.member),
        preferences=PreferencesModel(**detail.preferences),
        seasons=[MemberSeasonModel(**row) for row in detail.seasons],
        achievements=[MemberBadgeModel(**row) for row in detail.achievements],
    )


@api.route(
    "GET", _BASE + "/members/{user_id}/journal", summary="The member's full reward journal, newest first",
    tag=_MEMBERS_TAG, access=Access.GUILD_ADMIN, path_model=MemberPath, query=PageQuery, response=Page[JournalRowModel],
)  # fmt: skip
async def admin_member_journal(call: Call[MemberPath, PageQuery, None]) -> Page[JournalRowModel]:
    """Every row with its internal `details` (factors, admin reasons): admins only, never public."""
    return await _member_page(call, member_directory.member_journal, JournalRowModel)


@api.route(
    "GET", _BASE + "/members/{user_id}/gold-ledger", summary="The member's gold movements, newest first",
    tag=_MEMBERS_TAG, access=Access.GUILD_ADMIN, path_model=MemberPath, query=PageQuery, response=Page[LedgerRowModel],
)  # fmt: skip
async def admin_member_ledger(call: Call[MemberPath, PageQuery, None]) -> Page[LedgerRowModel]:
    return await _member_page(call, member_directory.member_ledger, LedgerRowModel)


_RowT = TypeVar("_RowT", bound=ResponseModel)


async def _member_page(
    call: Call[MemberPath, PageQuery, None], read: Callable[..., Awaitable[Any]], model: type[_RowT]
) -> Page[_RowT]:
    """One page of a member's rows (`read(conn, guild, user, limit=, offset=)`), or 404 for an unknown member."""
    q = call.query
    async with call.platform.read() as conn:
        rows = await read(conn, call.path.guild_id, call.path.user_id, limit=q.page_size, offset=q.offset)
    if rows is None:
        raise ApiError.not_found("Unknown member.")
    items = [model(**row) for row in rows.items]
    return Page[_RowT](items=items, page=q.page, page_size=q.page_size, total=rows.total)


# --- categories, rarities, series -------------------------------------------------------------------------------

_INT32: Final = 2**31 - 1


class CategoryBody(StrictModel):
    name: str = Field(min_length=1, max_length=50, pattern=_NOT_BLANK)
    icon: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int = Field(0, ge=-_INT32, le=_INT32)


class CategoryPatch(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=50, pattern=_NOT_BLANK)
    icon: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int | None = Field(None, ge=-_INT32, le=_INT32)

    _present = field_validator("name", "sort_order", mode="before")(_not_null)


class CategoryModel(ResponseModel):
    id: int
    name: str
    icon: str | None
    sort_order: int


_COLOR: Final = r"^#[0-9A-Fa-f]{6}$"


class RarityBody(StrictModel):
    name: str = Field(min_length=1, max_length=50, pattern=_NOT_BLANK)
    color: str = Field(pattern=_COLOR)
    emoji: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int = Field(0, ge=-_INT32, le=_INT32)


class RarityPatch(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=50, pattern=_NOT_BLANK)
    color: str | None = Field(None, pattern=_COLOR)
    emoji: str | None = Field(None, min_length=1, max_length=64)
    sort_order: int | None = Field(None, ge=-_INT32, le=_INT32)

    _present = field_validator("name", "color", "sort_order", mode="before")(_not_null)


class RarityModel(ResponseModel):
    id: int
    name: str
    color: str
    emoji: str | None
    sort_order: int


class SeriesBody(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=_NOT_BLANK)
    description: str | None = Field(None, max_length=500)


class SeriesPatch(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=_NOT_BLANK)
    description: str | None = Field(None, max_length=500)

    _present = field_validator("name", mode="before")(_not_null)


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
    collection = f"{_BASE}/{segment}"
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


# --- live logs --------------------------------------------------------------------------------------------------

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
_LOGS_TAG: Final = "logs"


class GuildLogsQuery(StrictModel):
    level: LogLevel | None = None
    after_seq: int = Field(0, ge=0, le=2**53)
    limit: int = Field(100, ge=1, le=1000)


class OperatorLogsQuery(GuildLogsQuery):
    logger: str | None = Field(None, min_length=1, max_length=100)
    guild_id: Snowflake | None = None


class LogEntryModel(ResponseModel):
    seq: int
    ts: str
    level: str
    logger: str
    event: str
    guild_id: str | None
    fields: dict[str, Any]


class LogsModel(ResponseModel):
    """Entries in ascending `seq`; poll with `after_seq` = the last seen. `first_seq` is the oldest still held."""

    items: list[LogEntryModel]
    capture_level: str
    first_seq: int
    last_seq: int


class LogLevelBody(StrictModel):
    level: LogLevel


class LogLevelModel(ResponseModel):
    capture_level: str


def _logs(query: GuildLogsQuery, *, guild_id: int | None, logger: str | None = None) -> LogsModel:
    """Entries of the process's ring (SPEC §24.3); a process that captures none (embedded in tests) has none."""
    ring = current_ring()
    if ring is None:
        return LogsModel(items=[], capture_level="info", first_seq=1, last_seq=0)
    entries = ring.entries(
        after_seq=query.after_seq,
        min_level=query.level,
        guild_id=None if guild_id is None else str(guild_id),
        logger=logger,
        limit=query.limit,
    )
    return LogsModel(
        items=[LogEntryModel(**entry.as_dict()) for entry in entries],  # type: ignore[arg-type]
        capture_level=level_name(ring.capture_level),
        first_seq=ring.first_seq,
        last_seq=ring.last_seq,
    )


def _require_operator(call: Call[Any, Any, Any]) -> None:
    """Operators are the users in `OPERATOR_USER_IDS` (§21.3); service tokens never are."""
    claims = call.require_principal().claims
    if claims.kind != "user" or claims.user_id not in call.platform.config.operator_user_ids:
        raise ApiError(403, "forbidden", "Only operators may use the process logs.")


@api.route(
    "GET", _BASE + "/logs", summary="This process's log entries tagged with the guild", tag=_LOGS_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=GuildLogsQuery, response=LogsModel,
)  # fmt: skip
async def admin_guild_logs(call: Call[GuildPath, GuildLogsQuery, None]) -> LogsModel:
    """Only entries carrying this `guild_id`; other guilds' and untagged entries are never shown."""
    return _logs(call.query, guild_id=call.path.guild_id)


@api.route(
    "GET", "/api/admin/logs", summary="This process's log entries (operators)", tag=_LOGS_TAG,
    access=Access.AUTHENTICATED, query=OperatorLogsQuery, response=LogsModel,
)  # fmt: skip
async def admin_operator_logs(call: Call[NoParams, OperatorLogsQuery, None]) -> LogsModel:
    """Filter by level, logger (and its children) and guild."""
    _require_operator(call)
    return _logs(call.query, guild_id=call.query.guild_id, logger=call.query.logger)


@api.route(
    "PUT", "/api/admin/logs/level", summary="Change the live-log capture level (operators)", tag=_LOGS_TAG,
    access=Access.AUTHENTICATED, body=LogLevelBody, response=LogLevelModel,
)  # fmt: skip
async def admin_set_log_level(call: Call[NoParams, NoParams, LogLevelBody]) -> LogLevelModel:
    """Applies to what is recorded from now on, in this process (§24.3); audited as `logs.level`."""
    _require_operator(call)
    ring = current_ring()
    if ring is None:
        raise _conflict("This process captures no live logs.")
    before = level_name(ring.capture_level)
    async with call.platform.sessions() as sessions:
        await record_alone(
            sessions, call.actor(), guild_id=None, action="logs.level", target_type="logs",
            before={"level": before}, after={"level": call.body.level},
        )  # fmt: skip
    ring.capture_level = parse_level(call.body.level)
    return LogLevelModel(capture_level=level_name(ring.capture_level))
