"""Settings (SPEC §28.3): the form generated from the registry as the settings twin reports it (§5.2).

Channel and role settings get pickers from the guild's structure (the channels and roles twins), so an admin picks
names, not ids. Saving sends only the changed keys to `PATCH …/settings` (all or nothing); each reset is
`DELETE …/settings/{key}`.
"""

from __future__ import annotations

from aiohttp import web

from synapse_async.api.admin.platform import Setting, admin_get_settings
from synapse_async.api.schema import Items
from synapse_async.web.console.forms import settings_groups
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.console.pickers import pickers
from synapse_async.web.site import render


@console_page
async def settings_page(request: web.Request, console: Console) -> web.StreamResponse:
    items = (await console.ask(admin_get_settings, Items[Setting])).items
    text_channels, _, roles = await pickers(console)
    groups = settings_groups([i.model_dump() for i in items], text_channels, roles)
    return render(request, "console/settings.html", console.context("settings", groups=groups), private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/settings", settings_page)
