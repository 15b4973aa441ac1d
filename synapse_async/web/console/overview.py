"""Overview (SPEC §28.3): the guild's metrics and season, running jobs with progress, this process's health, and the
latest audit rows — refreshed in place every few seconds (a `data-live` region, console.js).

Twins: `GET …/metrics` (the public metrics, also while public pages are off), `GET …/jobs`, `GET …/audit`; the
health block is what `/health` reports (`health.report`, in-memory state only).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from synapse_async.api.admin.lake import JobModel, jobs_list
from synapse_async.api.admin.platform import AuditItem, admin_audit, admin_metrics
from synapse_async.api.public import Metrics
from synapse_async.api.schema import Page
from synapse_async.health import report
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.site import now, render

ACTIVE = ("running", "queued")


def health_summary(health: dict[str, Any]) -> dict[str, Any]:
    """The few facts an admin can act on: status, database pool use, listener state, shards connected."""
    pool = health["db"]["pool"]
    shards = health["gateway"]["shards"]
    listener = health.get("cache_listener") or {}
    return {
        "status": health["status"],
        "version": health["version"],
        "uptime_s": health["uptime_s"],
        "pool": f"{pool.get('checked_out', 0)} of {pool.get('size', 0)} connections in use",
        "listener": str(listener.get("state", "off")),
        "shards": f"{sum(1 for s in shards if s['state'] == 'connected')} of {len(shards)} connected",
        "database": "reachable" if health["db"]["last_probe_ok"] else "unreachable",
    }


@console_page
async def overview(request: web.Request, console: Console) -> web.StreamResponse:
    metrics = await console.ask(admin_metrics, Metrics)
    jobs: list[JobModel] = []
    for status in ACTIVE:
        jobs += (await console.ask(jobs_list, Page[JobModel], query={"status": status, "page_size": 10})).items
    audit = await console.ask(admin_audit, Page[AuditItem], query={"page_size": 8})
    health = health_summary(report(console.site.components))
    context = console.context("overview", metrics=metrics, jobs=jobs, audit=audit.items, health=health, now=now())
    return render(request, "console/overview.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}", overview)
