"""Admin routes of seasons: list, start (with replace), change the end, end now (SPEC §20, §11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import Field, field_validator

from synapse_async.api.admin.common import BASE, NOT_BLANK, conflict, not_null
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.schema import (
    BodyTime,
    GuildPath,
    Items,
    NoParams,
    PatchModel,
    PathId,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.services import seasons
from synapse_async.services.seasons import SeasonRejected, SeasonRow, Seasons

api = Api()
_SEASONS_TAG: Final = "seasons"


class SeasonModel(ResponseModel):
    id: int
    name: str
    status: str
    starts_at: UtcTime
    ends_at: UtcTime
    ended_at: UtcTime | None


class SeasonStartBody(StrictModel):
    name: str = Field(min_length=1, max_length=seasons.MAX_NAME, pattern=NOT_BLANK)
    days: int | None = Field(None, ge=1, le=seasons.MAX_DAYS)
    ends_at: BodyTime | None = None
    replace_active: bool = False


class SeasonStartedModel(SeasonModel):
    replaced: SeasonModel | None  # the active season this start ended (only with `replace_active`)


class SeasonPatch(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=seasons.MAX_NAME, pattern=NOT_BLANK)
    ends_at: BodyTime | None = None

    _present = field_validator("name", "ends_at", mode="before")(not_null)


class SeasonPath(GuildPath):
    season_id: PathId


class StandingModel(ResponseModel):
    rank: int
    user_id: Snowflake
    display_name: str
    stars: int


class SeasonEndedModel(ResponseModel):
    season: SeasonModel
    top: list[StandingModel]


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
    "concurrent_change": (409, "Another season change happened at the same time; try again."),
    "unknown": (404, "Unknown season."),
    "not_active": (409, "ends_at can only be changed on the active season."),
}


def _season_refused(exc: SeasonRejected) -> ApiError:
    status, message = _SEASON_REFUSALS[exc.reason]
    return ApiError.not_found(message) if status == 404 else conflict(exc.reason, message)


def _season_invalid(field: str, exc: ValueError) -> ApiError:
    return ApiError.validation([FieldProblem(f"{field}", "invalid_value", str(exc))])


def _future(field: str, value: datetime | None) -> None:
    if value is not None and value <= datetime.now(UTC):
        raise ApiError.validation([FieldProblem(f"{field}", "out_of_range", "must be in the future")])


# --- seasons ----------------------------------------------------------------------------------------------------


def _seasons(call: Call[Any, Any, Any]) -> Seasons:
    return Seasons(call.platform.components.require_db())


@api.route(
    "GET", BASE + "/seasons", summary="Every season of the guild, newest first", tag=_SEASONS_TAG,
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
    "POST", BASE + "/seasons", summary="Start a season now", tag=_SEASONS_TAG, access=Access.GUILD_ADMIN,
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
    "PATCH", BASE + "/seasons/{season_id}", summary="Rename a season or move the active season's end",
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
    "POST", BASE + "/seasons/{season_id}/end", summary="End the active season now", tag=_SEASONS_TAG,
    access=Access.GUILD_ADMIN, path_model=SeasonPath, response=SeasonEndedModel,
)  # fmt: skip
async def admin_end_season(call: Call[SeasonPath, NoParams, None]) -> SeasonEndedModel:
    """Status `ended`, `ended_at` = now; the answer carries the top 3 by season stars with their §17.1 ranks (ties
    share a rank; members who left are excluded)."""
    try:
        async with call.platform.gate.slot():
            ended = await _seasons(call).end(
                guild_id=call.path.guild_id, actor=call.actor(), season_id=call.path.season_id
            )
    except SeasonRejected as exc:
        raise _season_refused(exc) from None
    top = [StandingModel(rank=s.rank, user_id=s.user_id, display_name=s.display_name, stars=s.stars) for s in ended.top]
    return SeasonEndedModel(season=_season(ended.season), top=top)
