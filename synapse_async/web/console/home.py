"""`/admin`: the sign-in page, or the guilds the caller administers now (the twin `GET /api/admin/guilds`)."""

from __future__ import annotations

from aiohttp import web

from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.site import render


@console_page
async def guild_list(request: web.Request, console: Console) -> web.StreamResponse:
    """The guild list; with exactly one guild it is still shown (no surprise redirect)."""
    return render(request, "console/home.html", console.context("home"), private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin", guild_list)
    app.router.add_get("/admin/", guild_list)
