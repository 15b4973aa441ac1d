"""Admin routes of the event lake and the jobs queue (SPEC §20 event-lake and jobs rows, §15, §23.2).

Thin adapters over `lake/queries.py` and `lake/jobs.py`: the route contract validates path, query and body with the
models below (one library for every route, §18), the services do the reading and the audited writes. A lake job
request while one of its kind is active answers 409 with the active job's id.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date
from typing import Any, Final

from pydantic import Field

from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import (
    GuildPath,
    Items,
    NoParams,
    Page,
    PageQuery,
    QueryTime,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.domain.vocabulary import JobKind, JobStatus, LakeEventType
from synapse_async.jobs.store import JobActive
from synapse_async.lake import jobs as lake_jobs
from synapse_async.lake import queries
from synapse_async.lake.queries import EventFilter, InvalidLakeRequest
from synapse_async.services.lake_sources import set_data_sources

api = Api()
_TAG: Final = "event-lake"
_JOBS_TAG: Final = "jobs"

# The §15.1 and §23.2 vocabularies, defined once in `domain/vocabulary.py`, are the validation types here.
LakeType = LakeEventType


def _invalid(exc: InvalidLakeRequest) -> ApiError:
    return ApiError(400, "validation_error", "Invalid request.", [p.as_detail() for p in exc.problems])


def _active(exc: JobActive) -> ApiError:
    return ApiError.conflict(
        "job_active", f"A {exc.kind} job is already active for this guild.", job_id=str(exc.job_id)
    )


# --- models -----------------------------------------------------------------------------------------------------


class EventsQuery(PageQuery):
    page_size: int = Field(25, ge=1, le=queries.EVENTS_MAX_PAGE_SIZE)  # SPEC §18: lake events up to 200
    event_type: LakeType | None = None
    user_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    since: QueryTime | None = None
    until: QueryTime | None = None


class LakeEventItem(ResponseModel):
    id: int
    user_id: Snowflake | None
    event_type: str
    channel_id: Snowflake | None
    target_id: Snowflake | None
    source_key: str
    payload: dict[str, Any]
    occurred_at: UtcTime
    recorded_at: UtcTime


class EventsPage(Page[LakeEventItem]):
    total_capped: bool


class DataSourceItem(ResponseModel):
    event_type: str
    enabled: bool
    label: str
    description: str


class DataSourcesBody(StrictModel):
    sources: dict[LakeType, bool] = Field(min_length=1)


class HealthQuery(StrictModel):
    days: int = Field(7, ge=1, le=90)


class JobSummaryModel(ResponseModel):
    job_id: str
    status: str
    finished_at: UtcTime | None
    result: dict[str, Any] | None


class DailyCount(ResponseModel):
    day: date
    count: int


class LakeHealthModel(ResponseModel):
    total_events: int
    oldest: UtcTime | None
    newest: UtcTime | None
    events_24h: int
    events_7d: int
    by_type: dict[str, int]
    daily: list[DailyCount]
    retention_days: int
    last_retention: JobSummaryModel | None
    last_reconciliation: JobSummaryModel | None


class LakeStorageModel(ResponseModel):
    rows: int
    avg_row_bytes: int
    estimated_bytes: int
    rows_per_day_7d: float
    projected_bytes_at_retention: int


class CountersQuery(PageQuery):
    user_id: Snowflake | None = None
    event_type: LakeType | None = None
    period: str | None = Field(None, pattern=queries.PERIOD_PATTERN)


class CounterItem(ResponseModel):
    user_id: Snowflake
    event_type: str
    period: str
    count: int
    updated_at: UtcTime


class RetentionBody(StrictModel):
    days: int | None = Field(None, ge=1, le=3650)


class ReconciliationBody(StrictModel):
    """No parameters: the retained window comes from `lake.retention_days`."""


class BackfillBody(StrictModel):
    dry_run: bool


class JobModel(ResponseModel):
    job_id: uuid.UUID
    kind: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    requested_by: str
    created_at: UtcTime
    started_at: UtcTime | None
    finished_at: UtcTime | None


class JobsQuery(PageQuery):
    kind: JobKind | None = None
    status: JobStatus | None = None


class JobPath(GuildPath):
    job_id: uuid.UUID


def _job(view: lake_jobs.JobView) -> JobModel:
    return JobModel.model_validate(view.to_json())


# --- event lake -------------------------------------------------------------------------------------------------


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/event-lake/events", summary="Raw lake rows, newest first", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=EventsQuery, response=EventsPage,
)  # fmt: skip
async def lake_events(call: Call[GuildPath, EventsQuery, None]) -> EventsPage:
    """Exact `total` up to 10,000; beyond that 10,000 with `total_capped` (§20)."""
    q = call.query
    filters = EventFilter(q.event_type, q.user_id, q.channel_id, q.since, q.until)
    try:
        async with call.platform.read() as conn:
            page = await queries.list_events(conn, call.path.guild_id, filters, page=q.page, page_size=q.page_size)
    except InvalidLakeRequest as exc:
        raise _invalid(exc) from None
    return EventsPage.model_validate(page.to_json())


def _sources(call: Call[GuildPath, Any, Any]) -> Items[DataSourceItem]:
    settings = call.platform.components.require_cache().settings(call.path.guild_id)
    items = [DataSourceItem(**asdict(s)) for s in queries.data_sources(settings)]
    return Items[DataSourceItem](items=items)


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/event-lake/data-sources", summary="Which event types the lake records",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[DataSourceItem],
)  # fmt: skip
async def lake_sources(call: Call[GuildPath, NoParams, None]) -> Items[DataSourceItem]:
    """Every §15.1 type with its switch, label and description."""
    return _sources(call)


@api.route(
    "PUT", "/api/admin/guilds/{guild_id}/event-lake/data-sources", summary="Switch lake sources (all or nothing)",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, body=DataSourcesBody, response=Items[DataSourceItem],
)  # fmt: skip
async def lake_set_sources(call: Call[GuildPath, NoParams, DataSourcesBody]) -> Items[DataSourceItem]:
    """One audited settings write with its NOTIFY; the answer is what was stored (the cache follows within ms)."""
    try:
        async with call.platform.sessions() as sessions:
            written = await set_data_sources(sessions, call.path.guild_id, dict(call.body.sources), call.actor())
    except InvalidLakeRequest as exc:
        raise _invalid(exc) from None
    current = _sources(call)
    items = [s.model_copy(update={"enabled": written.get(s.event_type, s.enabled)}) for s in current.items]
    return Items[DataSourceItem](items=items)


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/event-lake/health", summary="Lake volume, freshness and maintenance",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, query=HealthQuery, response=LakeHealthModel,
)  # fmt: skip
async def lake_health(call: Call[GuildPath, HealthQuery, None]) -> LakeHealthModel:
    settings = call.platform.components.require_cache().settings(call.path.guild_id)
    async with call.platform.read() as conn:
        health = await queries.lake_health(conn, call.path.guild_id, settings, days=call.query.days)
    return LakeHealthModel.model_validate(health.to_json())


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/event-lake/storage", summary="Lake size, measured and projected",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, response=LakeStorageModel,
)  # fmt: skip
async def lake_storage(call: Call[GuildPath, NoParams, None]) -> LakeStorageModel:
    settings = call.platform.components.require_cache().settings(call.path.guild_id)
    async with call.platform.read() as conn:
        storage = await queries.lake_storage(conn, call.path.guild_id, settings)
    return LakeStorageModel.model_validate(storage.to_json())


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/event-lake/counters", summary="Event counters, highest first", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=CountersQuery, response=Page[CounterItem],
)  # fmt: skip
async def lake_counters(call: Call[GuildPath, CountersQuery, None]) -> Page[CounterItem]:
    q = call.query
    try:
        async with call.platform.read() as conn:
            page = await queries.list_counters(
                conn,
                call.path.guild_id,
                user_id=q.user_id,
                event_type=q.event_type,
                period=q.period,
                page=q.page,
                page_size=q.page_size,
            )
    except InvalidLakeRequest as exc:
        raise _invalid(exc) from None
    return Page[CounterItem].model_validate(page.to_json())


async def _request(call: Call[GuildPath, NoParams, Any], kind: str) -> Reply:
    body = call.body.model_dump(exclude_none=True)
    try:
        async with call.platform.sessions() as sessions:
            job = await lake_jobs.request_lake_job(sessions, call.path.guild_id, kind, body, call.actor())
    except JobActive as exc:
        raise _active(exc) from None
    except InvalidLakeRequest as exc:
        raise _invalid(exc) from None
    return Reply(_job(job), status=202)


_JOB_RESPONSES: Final = {409: "A job of this kind is already active (`details.reason = job_active`, `details.job_id`)"}


@api.route(
    "POST", "/api/admin/guilds/{guild_id}/event-lake/retention", summary="Delete raw rows older than the window",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, body=RetentionBody, response=JobModel, status=202,
    responses=_JOB_RESPONSES,
)  # fmt: skip
async def lake_retention(call: Call[GuildPath, NoParams, RetentionBody]) -> Reply:
    """A `retention` job (§23.2): batched, paced, never touching lifetime or season counters."""
    return await _request(call, "retention")


@api.route(
    "POST", "/api/admin/guilds/{guild_id}/event-lake/reconciliation", summary="Check day counters against raw rows",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, body=ReconciliationBody, response=JobModel,
    status=202, responses=_JOB_RESPONSES,
)  # fmt: skip
async def lake_reconciliation(call: Call[GuildPath, NoParams, ReconciliationBody]) -> Reply:
    """A `reconciliation` job (§15.3)."""
    return await _request(call, "reconciliation")


@api.route(
    "POST", "/api/admin/guilds/{guild_id}/event-lake/backfill", summary="Raise counters from the reward journal",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=GuildPath, body=BackfillBody, response=JobModel, status=202,
    responses=_JOB_RESPONSES,
)  # fmt: skip
async def lake_backfill(call: Call[GuildPath, NoParams, BackfillBody]) -> Reply:
    """A `backfill` job: raises counters, never lowers them; `dry_run` reports without writing."""
    return await _request(call, "backfill")


# --- jobs -------------------------------------------------------------------------------------------------------


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/jobs", summary="The guild's jobs, newest first", tag=_JOBS_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=JobsQuery, response=Page[JobModel],
)  # fmt: skip
async def jobs_list(call: Call[GuildPath, JobsQuery, None]) -> Page[JobModel]:
    q = call.query
    async with call.platform.read() as conn:
        page = await lake_jobs.list_jobs(
            conn, call.path.guild_id, kind=q.kind, status=q.status, page=q.page, page_size=q.page_size
        )
    return Page[JobModel].model_validate(page.to_json())


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/jobs/{job_id}", summary="One job", tag=_JOBS_TAG,
    access=Access.GUILD_ADMIN, path_model=JobPath, response=JobModel,
)  # fmt: skip
async def jobs_get(call: Call[JobPath, NoParams, None]) -> JobModel:
    async with call.platform.read() as conn:
        job = await lake_jobs.get_job(conn, call.path.guild_id, call.path.job_id)
    if job is None:
        raise ApiError.not_found()
    return _job(job)


@api.route(
    "POST", "/api/admin/guilds/{guild_id}/jobs/{job_id}/cancel", summary="Cancel a queued or running job",
    tag=_JOBS_TAG, access=Access.GUILD_ADMIN, path_model=JobPath, response=JobModel,
)  # fmt: skip
async def jobs_cancel(call: Call[JobPath, NoParams, None]) -> JobModel:
    """Takes effect between batches (§23.2); cancelling a finished job returns it unchanged."""
    async with call.platform.sessions() as sessions:
        job = await lake_jobs.cancel(sessions, call.path.guild_id, call.path.job_id, call.actor())
    if job is None:
        raise ApiError.not_found()
    return _job(job)
