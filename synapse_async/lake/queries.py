"""The event lake's read side and its data-source switches (SPEC §15, §20 event-lake rows), for the admin API.

Every function takes what the HTTP layer has — a connection from its own pool, or the session maker for the one
write — and returns typed results with a `to_json()` in the API's shapes (snowflakes as strings, RFC 3339 UTC
times). Bad input raises `InvalidLakeRequest` with one problem per field, which the API turns into a 400; nothing
here can fail with anything else on bad input. Page bounds follow SPEC §18 (lake events up to 200 per page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES
from synapse_async.settings import REGISTRY, lake_source_key
from synapse_async.settings.validation import ResolvedSettings
from synapse_async.timeutil import iso

TOTAL_CAP: Final = 10_000
EVENTS_MAX_PAGE_SIZE: Final = 200
MAX_PAGE_SIZE: Final = 100
STORAGE_SAMPLE_ROWS: Final = 1000

LABELS: Final[Mapping[str, str]] = {
    "message_create": "Messages",
    "message_delete": "Deleted messages",
    "reaction_add": "Reactions added",
    "reaction_remove": "Reactions removed",
    "thread_create": "Threads",
    "voice_join": "Voice joins",
    "voice_leave": "Voice leaves",
    "voice_move": "Voice moves",
    "member_join": "Member joins",
    "member_leave": "Member leaves",
}


@dataclass(frozen=True, slots=True)
class LakeProblem:
    field: str
    problem: str
    message: str

    def as_detail(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem, "message": self.message}


class InvalidLakeRequest(Exception):
    """The request was refused as a whole; `problems` names every bad field (SPEC §18 `details`)."""

    def __init__(self, problems: list[LakeProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


def check_page(page: int, page_size: int, max_size: int) -> list[LakeProblem]:
    problems = []
    if page < 1:
        problems.append(LakeProblem("page", "out_of_range", "must be at least 1"))
    if not 1 <= page_size <= max_size:
        problems.append(LakeProblem("page_size", "out_of_range", f"must be from 1 to {max_size}"))
    return problems


def _check_type(event_type: str | None, name: str = "event_type") -> list[LakeProblem]:
    if event_type is None or event_type in LAKE_EVENT_TYPES:
        return []
    return [LakeProblem(name, "not_allowed", "must be one of " + ", ".join(LAKE_EVENT_TYPES))]


def _s(value: int | None) -> str | None:
    return None if value is None else str(value)


# --- events -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """`since` inclusive, `until` exclusive, both on the event's time (`occurred_at`)."""

    event_type: str | None = None
    user_id: int | None = None
    channel_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class LakeEvent:
    id: int
    user_id: int | None
    event_type: str
    channel_id: int | None
    target_id: int | None
    source_key: str
    payload: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": _s(self.user_id),
            "event_type": self.event_type,
            "channel_id": _s(self.channel_id),
            "target_id": _s(self.target_id),
            "source_key": self.source_key,
            "payload": self.payload,
            "occurred_at": iso(self.occurred_at),
            "recorded_at": iso(self.recorded_at),
        }


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[LakeEvent]
    page: int
    page_size: int
    total: int
    total_capped: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [e.to_json() for e in self.items],
            "page": self.page,
            "page_size": self.page_size,
            "total": self.total,
            "total_capped": self.total_capped,
        }


def _event_where(guild_id: int, f: EventFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = ["guild_id = :g"]
    params: dict[str, Any] = {"g": guild_id}
    for column, value in (("event_type", f.event_type), ("user_id", f.user_id), ("channel_id", f.channel_id)):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if f.since is not None:
        clauses.append("occurred_at >= :since")
        params["since"] = f.since
    if f.until is not None:
        clauses.append("occurred_at < :until")
        params["until"] = f.until
    return " AND ".join(clauses), params


async def list_events(
    conn: AsyncConnection, guild_id: int, filters: EventFilter, *, page: int = 1, page_size: int = 50
) -> EventPage:
    """Full rows, newest first; `total` is exact up to 10,000, beyond that 10,000 with `total_capped`."""
    problems = check_page(page, page_size, EVENTS_MAX_PAGE_SIZE) + _check_type(filters.event_type)
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        problems.append(LakeProblem("until", "constraint", "must be later than since"))
    for name, value in (("since", filters.since), ("until", filters.until)):
        if value is not None and value.tzinfo is None:
            problems.append(LakeProblem(name, "invalid_type", "must carry a UTC offset"))
    if problems:
        raise InvalidLakeRequest(problems)
    where, params = _event_where(guild_id, filters)
    counted = (
        await conn.execute(
            text(f"SELECT count(*) FROM (SELECT 1 FROM event_lake WHERE {where} LIMIT :cap) AS t"),
            {**params, "cap": TOTAL_CAP + 1},
        )
    ).scalar_one()
    rows = (
        await conn.execute(
            text(
                "SELECT id, user_id, event_type, channel_id, target_id, source_key, payload, occurred_at, recorded_at"
                f" FROM event_lake WHERE {where} ORDER BY occurred_at DESC, id DESC LIMIT :n OFFSET :o"
            ),
            {**params, "n": page_size, "o": (page - 1) * page_size},
        )
    ).all()
    items = [
        LakeEvent(
            int(r.id),
            r.user_id,
            r.event_type,
            r.channel_id,
            r.target_id,
            r.source_key,
            r.payload if isinstance(r.payload, dict) else json.loads(r.payload),
            r.occurred_at,
            r.recorded_at,
        )
        for r in rows
    ]
    return EventPage(items, page, page_size, min(int(counted), TOTAL_CAP), int(counted) > TOTAL_CAP)


# --- data sources -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSource:
    event_type: str
    enabled: bool
    label: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "enabled": self.enabled,
            "label": self.label,
            "description": self.description,
        }


def data_sources(settings: ResolvedSettings) -> list[DataSource]:
    """Every lake type's switch (from the cache's settings), with its label and description, in §15.1 order."""
    return [
        DataSource(t, settings.bool(lake_source_key(t)), LABELS[t], REGISTRY[lake_source_key(t)].description)
        for t in LAKE_EVENT_TYPES
    ]


def source_values(sources: object) -> dict[str, object]:
    """The settings a data-source switch body writes (`lake.source.<type>` → bool), checked all-or-nothing."""
    if not isinstance(sources, Mapping) or not sources:
        raise InvalidLakeRequest([LakeProblem("sources", "invalid_type", "must be a non-empty object")])
    problems: list[LakeProblem] = []
    values: dict[str, object] = {}
    for event_type, enabled in sources.items():
        name = f"sources.{event_type}"
        if event_type not in LAKE_EVENT_TYPES:
            problems.append(LakeProblem(name, "not_allowed", "not an event-lake type"))
        elif not isinstance(enabled, bool):
            problems.append(LakeProblem(name, "invalid_type", "must be true or false"))
        else:
            values[lake_source_key(event_type)] = enabled
    if problems:
        raise InvalidLakeRequest(problems)
    return values


# --- health -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobSummary:
    job_id: str
    status: str
    finished_at: datetime | None
    result: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "finished_at": iso(self.finished_at),
            "result": self.result,
        }


@dataclass(frozen=True, slots=True)
class LakeHealth:
    total_events: int
    oldest: datetime | None
    newest: datetime | None
    events_24h: int
    events_7d: int
    by_type: dict[str, int]
    daily: list[tuple[date, int]]
    retention_days: int
    last_retention: JobSummary | None
    last_reconciliation: JobSummary | None

    def to_json(self) -> dict[str, Any]:
        return {
            "total_events": self.total_events,
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
            "events_24h": self.events_24h,
            "events_7d": self.events_7d,
            "by_type": self.by_type,
            "daily": [{"day": d.isoformat(), "count": n} for d, n in self.daily],
            "retention_days": self.retention_days,
            "last_retention": self.last_retention.to_json() if self.last_retention else None,
            "last_reconciliation": self.last_reconciliation.to_json() if self.last_reconciliation else None,
        }


_TOTALS = text(
    """
    SELECT count(*) AS total, min(occurred_at) AS oldest, max(occurred_at) AS newest,
           count(*) FILTER (WHERE occurred_at >= CAST(:now AS timestamptz) - interval '24 hours') AS h24,
           count(*) FILTER (WHERE occurred_at >= CAST(:now AS timestamptz) - interval '7 days') AS d7
      FROM event_lake WHERE guild_id = :g
    """
)
_BY_TYPE = text("SELECT event_type, count(*) AS n FROM event_lake WHERE guild_id = :g GROUP BY event_type")
_DAILY = text(
    """
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM event_lake
     WHERE guild_id = :g AND occurred_at >= :since GROUP BY 1
    """
)
_LAST_JOB = text(
    """
    SELECT job_id, status, finished_at, result FROM jobs
     WHERE guild_id = :g AND kind = :k AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1
    """
)


async def _last_job(conn: AsyncConnection, guild_id: int, kind: str) -> JobSummary | None:
    row = (await conn.execute(_LAST_JOB, {"g": guild_id, "k": kind})).first()
    if row is None:
        return None
    result = row.result if row.result is None or isinstance(row.result, dict) else json.loads(row.result)
    return JobSummary(str(row.job_id), row.status, row.finished_at, result)


async def lake_health(
    conn: AsyncConnection, guild_id: int, settings: ResolvedSettings, *, days: int = 7, now: datetime | None = None
) -> LakeHealth:
    """Totals, per-type counts, `days` (1–90) UTC days of daily counts (zeros included, oldest first), the
    retention setting and the last finished retention and reconciliation jobs."""
    if not 1 <= days <= 90:
        raise InvalidLakeRequest([LakeProblem("days", "out_of_range", "must be from 1 to 90")])
    now = now or datetime.now(UTC)
    totals = (await conn.execute(_TOTALS, {"g": guild_id, "now": now})).one()
    by_type = {r.event_type: int(r.n) for r in (await conn.execute(_BY_TYPE, {"g": guild_id})).all()}
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    per_day = {r.day: int(r.n) for r in (await conn.execute(_DAILY, {"g": guild_id, "since": since})).all()}
    daily = [(first_day + timedelta(days=i), per_day.get(first_day + timedelta(days=i), 0)) for i in range(days)]
    return LakeHealth(
        int(totals.total),
        totals.oldest,
        totals.newest,
        int(totals.h24),
        int(totals.d7),
        {t: by_type.get(t, 0) for t in LAKE_EVENT_TYPES},
        daily,
        settings.int("lake.retention_days"),
        await _last_job(conn, guild_id, "retention"),
        await _last_job(conn, guild_id, "reconciliation"),
    )


# --- storage ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LakeStorage:
    rows: int
    avg_row_bytes: int
    estimated_bytes: int
    rows_per_day_7d: float
    projected_bytes_at_retention: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "avg_row_bytes": self.avg_row_bytes,
            "estimated_bytes": self.estimated_bytes,
            "rows_per_day_7d": self.rows_per_day_7d,
            "projected_bytes_at_retention": self.projected_bytes_at_retention,
        }


_STORAGE = text(
    """
    SELECT (SELECT count(*) FROM event_lake WHERE guild_id = :g) AS rows,
           (SELECT count(*) FROM event_lake
             WHERE guild_id = :g AND occurred_at >= CAST(:now AS timestamptz) - interval '7 days') AS d7,
           (SELECT avg(pg_column_size(s.*)) FROM (SELECT * FROM event_lake WHERE guild_id = :g
                                                  ORDER BY occurred_at DESC LIMIT :sample) AS s) AS avg_bytes
    """
)


async def lake_storage(
    conn: AsyncConnection, guild_id: int, settings: ResolvedSettings, *, now: datetime | None = None
) -> LakeStorage:
    """Size estimate from the measured average size (`pg_column_size`) of the guild's newest rows; the projection
    is the last 7 days' daily rate kept for `lake.retention_days`."""
    row = (
        await conn.execute(_STORAGE, {"g": guild_id, "now": now or datetime.now(UTC), "sample": STORAGE_SAMPLE_ROWS})
    ).one()
    avg = round(float(row.avg_bytes)) if row.avg_bytes is not None else 0
    per_day = int(row.d7) / 7
    return LakeStorage(
        int(row.rows),
        avg,
        int(row.rows) * avg,
        round(per_day, 2),
        round(per_day * settings.int("lake.retention_days") * avg),
    )


# --- counters -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterRow:
    user_id: int
    event_type: str
    period: str
    count: int
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "event_type": self.event_type,
            "period": self.period,
            "count": self.count,
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class CounterPage:
    items: list[CounterRow] = field(default_factory=list)
    page: int = 1
    page_size: int = 25
    total: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [c.to_json() for c in self.items],
            "page": self.page,
            "page_size": self.page_size,
            "total": self.total,
        }


PERIOD_PATTERN: Final = r"^(?:lifetime|season:[0-9]{1,19}|day:[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))$"
"""A counter period as the API documents it; a well-formed day that does not exist (02-30) just has no counters."""
_PERIOD: Final = re.compile(PERIOD_PATTERN)


def _check_period(period: str | None) -> list[LakeProblem]:
    if period is None or _PERIOD.fullmatch(period):
        return []
    return [LakeProblem("period", "invalid_type", "must be lifetime, season:<id> or day:YYYY-MM-DD")]


async def list_counters(
    conn: AsyncConnection,
    guild_id: int,
    *,
    user_id: int | None = None,
    event_type: str | None = None,
    period: str | None = None,
    page: int = 1,
    page_size: int = 25,
) -> CounterPage:
    """Counters by count, highest first (ties by user, type, period so pages are stable)."""
    problems = check_page(page, page_size, MAX_PAGE_SIZE) + _check_type(event_type) + _check_period(period)
    if problems:
        raise InvalidLakeRequest(problems)
    clauses: list[str] = ["guild_id = :g"]
    params: dict[str, Any] = {"g": guild_id}
    for column, value in (("user_id", user_id), ("event_type", event_type), ("period", period)):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    where = " AND ".join(clauses)
    total = (await conn.execute(text(f"SELECT count(*) FROM event_counters WHERE {where}"), params)).scalar_one()
    rows = (
        await conn.execute(
            text(
                "SELECT user_id, event_type, period, count AS n, updated_at FROM event_counters"
                f" WHERE {where} ORDER BY count DESC, user_id, event_type, period LIMIT :n OFFSET :o"
            ),
            {**params, "n": page_size, "o": (page - 1) * page_size},
        )
    ).all()
    items = [CounterRow(int(r.user_id), r.event_type, r.period, int(r.n), r.updated_at) for r in rows]
    return CounterPage(items, page, page_size, int(total))
