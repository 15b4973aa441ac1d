"""Admin routes of the member directory: search and sort, one member, journal and gold ledger (SPEC §20)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from pydantic import Field

from synapse_async.api.admin.common import BASE
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import (
    GuildPath,
    NoParams,
    Page,
    PageQuery,
    ResponseModel,
    Snowflake,
    UtcTime,
)
from synapse_async.services import member_directory
from synapse_async.services.member_directory import MemberSort

api = Api()

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
    "GET", BASE + "/members", summary="Search and sort the guild's members", tag=_MEMBERS_TAG,
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
    "GET", BASE + "/members/{user_id}", summary="One member: row, preferences, seasons, achievements",
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
    "GET", BASE + "/members/{user_id}/journal", summary="The member's full reward journal, newest first",
    tag=_MEMBERS_TAG, access=Access.GUILD_ADMIN, path_model=MemberPath, query=PageQuery, response=Page[JournalRowModel],
)  # fmt: skip
async def admin_member_journal(call: Call[MemberPath, PageQuery, None]) -> Page[JournalRowModel]:
    """Every row with its internal `details` (factors, admin reasons): admins only, never public."""
    return await _member_page(call, member_directory.member_journal, JournalRowModel)


@api.route(
    "GET", BASE + "/members/{user_id}/gold-ledger", summary="The member's gold movements, newest first",
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
    # `Page[model]`, not `Page[_RowT]`: the concrete class, so a console page asking this twin gets the model it
    # names (a TypeVar-parametrized class is a different class).
    concrete: type[Page[_RowT]] = Page[model]  # type: ignore[valid-type]
    return concrete(items=items, page=q.page, page_size=q.page_size, total=rows.total)
