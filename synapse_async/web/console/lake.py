"""Event lake (SPEC §28.3, §15): which event types the lake records (switched all at once), its health (events per
UTC day as a server-drawn chart with a table alternative) and storage, the counters (filtered, paged), and the
maintenance jobs — retention, reconciliation, backfill (with a dry run) — each card linking its latest job; the
API's 409 "already active" answer is shown beside the button.

Twins: `GET …/event-lake/data-sources`, `…/health?days=`, `…/storage`, `…/counters`, `GET …/jobs` (the latest
maintenance jobs); the forms call `PUT …/event-lake/data-sources` and `POST …/event-lake/{retention,
reconciliation,backfill}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from synapse_async.api.admin.lake import (
    CounterItem,
    DailyCount,
    DataSourceItem,
    JobModel,
    LakeHealthModel,
    LakeStorageModel,
    jobs_list,
    lake_counters,
    lake_health,
    lake_sources,
    lake_storage,
)
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import Items, Page
from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES
from synapse_async.lake.queries import LABELS
from synapse_async.web import charts
from synapse_async.web.console.gate import Console, console_page, page_of
from synapse_async.web.console.jobs import jobs_context
from synapse_async.web.site import now, render

SPANS: Final = ("7", "30", "90")
MAINTENANCE: Final = ("retention", "reconciliation", "backfill")
COUNTER_FILTERS: Final = ("user_id", "event_type", "period")
SERIES: Final = "events"


def span_of(query: Mapping[str, str]) -> str:
    """`?days=` as one of the offered spans (7 by default; anything else is 7, never an error page)."""
    days = query.get("days", "7")
    return days if days in SPANS else "7"


def daily_chart(daily: Sequence[DailyCount], days: Sequence[Any]) -> tuple[charts.Chart, list[tuple[Any, int]]]:
    """The health twin's daily counts as a bar chart over `days` (missing days are 0) and the same numbers as
    table rows, oldest first."""
    counts = {d.day: d.count for d in daily}
    chart = charts.stacked_days(days, {(d, SERIES): counts.get(d, 0) for d in days}, (SERIES,))
    return chart, [(d, counts.get(d, 0)) for d in days]


def size_text(size: int) -> str:
    """Bytes as a person reads them: `0 B`, `812 B`, `4.2 KB`, `1.5 MB`, `3.1 GB` (powers of 1,024)."""
    value = float(max(size, 0))
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def counter_filters(query: Mapping[str, str]) -> dict[str, str]:
    """The counter filters present in the address (blank ones dropped); the twin validates them."""
    return {k: query[k].strip() for k in COUNTER_FILTERS if query.get(k, "").strip()}


def field_problems(details: object) -> dict[str, str]:
    """A 400's `details[]` by field name (`query.user_id` → `user_id`), so each message goes beside its filter."""
    out: dict[str, str] = {}
    for d in details if isinstance(details, list) else ():
        if isinstance(d, Mapping):
            name = str(d.get("field", "")).rsplit(".", 1)[-1]
            out[name] = (out[name] + " " if name in out else "") + str(d.get("message") or d.get("problem", ""))
    return out


def counters_qs(filters: Mapping[str, str], days: str) -> str:
    """The pager's prefix keeping the filters and the chart span (`days=30&user_id=…&`)."""
    return urlencode({"days": days, **filters}) + "&"


@console_page
async def lake_page(request: web.Request, console: Console) -> web.StreamResponse:
    days = span_of(request.query)
    sources = (await console.ask(lake_sources, Items[DataSourceItem])).items
    health = await console.ask(lake_health, LakeHealthModel, query={"days": days})
    storage = await console.ask(lake_storage, LakeStorageModel)
    filters = counter_filters(request.query)
    counters: Page[CounterItem] | None = None
    counters_error: dict[str, str] | None = None
    try:
        counters = await console.ask(lake_counters, Page[CounterItem], query={**filters, "page": page_of(request)})
    except ApiError as exc:
        if exc.status != 400:
            raise
        counters_error = field_problems(exc.details) or {"": exc.message}
    jobs: dict[str, JobModel | None] = {}
    for kind in MAINTENANCE:
        latest = await console.ask(jobs_list, Page[JobModel], query={"kind": kind, "page_size": 1})
        jobs[kind] = latest.items[0] if latest.items else None
    stamp = now()
    chart, table = daily_chart(health.daily, charts.days_back(stamp.date(), int(days)))
    context = console.context(
        "event-lake",
        sources=sources,
        health=health,
        storage=storage,
        chart=chart,
        table=table,
        days=days,
        spans=SPANS,
        counters=counters,
        counters_error=counters_error,
        filters=filters,
        base_qs=counters_qs(filters, days),
        types=[(t, LABELS[t]) for t in LAKE_EVENT_TYPES],
        labels=LABELS,
        jobs=jobs,
        size_text=size_text,
        now=stamp,
        **jobs_context(),
    )
    return render(request, "console/lake.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/event-lake", lake_page)
