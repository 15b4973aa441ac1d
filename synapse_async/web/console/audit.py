"""Audit (SPEC §28.3, §22): the guild's audit log, filterable by actor, action, target and time, each row with
what it changed (before → after, `diff.changes`). The filters are a plain GET form validated by the twin's own
query model (`GET …/audit`): a bad value is shown beside its field, as the JSON API reports it."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from synapse_async.api.admin.platform import AuditItem, admin_audit
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import Page
from synapse_async.web.console.diff import changes
from synapse_async.web.console.gate import Console, console_page, page_of
from synapse_async.web.site import now, render

FILTERS: Final = ("actor_id", "action", "target_type", "target_id", "since", "until")
# SPEC §22's actions, offered in the filter (the API accepts any string; these are the ones it writes).
ACTIONS: Final = (
    "settings.update", "settings.reset", "channel_default.upsert", "channel_default.delete", "override.upsert",
    "override.delete", "role_multiplier.upsert", "role_multiplier.delete", "no_xp.upsert", "no_xp.delete",
    "level_role.upsert", "level_role.delete", "achievement.create", "achievement.update", "achievement.delete",
    "category.create", "category.update", "category.delete", "rarity.create", "rarity.update", "rarity.delete",
    "series.create", "series.update", "series.delete", "award.create", "achievement.grant", "achievement.revoke",
    "season.start", "season.end", "season.update", "season.auto_end", "season.auto_start", "data_sources.update",
    "job.start", "job.cancel", "members.export", "members.import", "auth.login", "auth.logout",
)  # fmt: skip


_LOCAL_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?")


def as_utc(value: str) -> str:
    """A `datetime-local` input's value (no offset) is meant as UTC, as the label says; other text goes to the
    twin unchanged, which refuses what is not RFC 3339."""
    if _LOCAL_TIME.fullmatch(value):
        return value + ("Z" if value.count(":") == 2 else ":00Z")
    return value


@console_page
async def audit_page(request: web.Request, console: Console) -> web.StreamResponse:
    filters = {k: request.query[k].strip() for k in FILTERS if request.query.get(k, "").strip()}
    asked = {k: as_utc(v) if k in ("since", "until") else v for k, v in filters.items()}
    errors: dict[str, str] = {}
    page: Page[AuditItem] | None = None
    try:
        page = await console.ask(admin_audit, Page[AuditItem], query={**asked, "page": page_of(request)})
    except ApiError as exc:
        if exc.status != 400:
            raise
        for detail in exc.details or []:
            errors[str(detail.get("field", "")).removeprefix("query.")] = str(detail.get("message", ""))
    rows: list[dict[str, Any]] = [
        {"item": item, "changes": changes(item.before, item.after)} for item in (page.items if page else [])
    ]
    context = console.context(
        "audit",
        page=page,
        rows=rows,
        filters=filters,
        errors=errors,
        actions=ACTIONS,
        base_qs=urlencode(filters) + "&" if filters else "",
        now=now(),
    )
    return render(request, "console/audit.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/audit", audit_page)
