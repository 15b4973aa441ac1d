"""Logs (SPEC §28.3, §24.3): this process's log entries tagged with the guild, newest first, with a level filter;
the list refreshes itself every two seconds (a `data-live` region). Twin: `GET …/logs` — only this guild's ring,
never tracebacks or other guilds' entries."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from synapse_async.api.admin.logs import LogsModel, admin_guild_logs
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.site import render

LEVELS: Final = ("debug", "info", "warning", "error")
SHOWN: Final = 200


@console_page
async def logs_page(request: web.Request, console: Console) -> web.StreamResponse:
    level = request.query.get("level", "")
    level = level if level in LEVELS else ""
    query: dict[str, object] = {"limit": 1000, **({"level": level} if level else {})}
    logs = await console.ask(admin_guild_logs, LogsModel, query=query)
    entries = list(reversed(logs.items[-SHOWN:]))
    context = console.context("logs", entries=entries, level=level, levels=LEVELS, capture=logs.capture_level)
    return render(request, "console/logs.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/logs", logs_page)
