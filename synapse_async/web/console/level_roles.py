"""Level roles (SPEC §28.3, §13): mode and restore-on-rejoin, the reward table with each role's problem in words,
add / change / remove a reward, and "Sync now" — every change shows its dry-run preview before the Confirm.

Twins: `GET …/level-roles` (rewards with the §13 pre-check), `GET …/roles` (the picker: names, and the dangerous
permissions a role grants, marked but still selectable — the API decides and its 400 `dangerous_role` reason is
shown beside the role field), `GET …/settings` (the two `level_roles.*` fields, generated from the registry) and
`GET …/jobs` (a sync running now). Changes are sent by the browser to `PUT`/`DELETE …/level-roles/{role_id}`,
`POST …/level-roles/sync` and `PATCH …/settings`, each first with `dry_run=true` (console.js `data-preview`).
"""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

from synapse_async.api.admin.config import LevelRoleBody, LevelRoles, RoleItem, admin_level_roles, admin_roles
from synapse_async.api.admin.lake import JobModel, jobs_list
from synapse_async.api.admin.platform import Setting, admin_get_settings
from synapse_async.api.schema import Items, Page
from synapse_async.web.console.forms import setting_field
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.console.rule_words import Names, problem_words
from synapse_async.web.site import now, render

MODE_KEY: Final = "level_roles.mode"
RESTORE_KEY: Final = "level_roles.restore_on_rejoin"
SYNC_KIND: Final = "level_role_sync"


def _level_bounds() -> dict[str, int]:
    spec = LevelRoleBody.model_json_schema()["properties"]["level"]
    return {"min": int(spec["minimum"]), "max": int(spec["maximum"])}


async def _running_sync(console: Console) -> JobModel | None:
    for status in ("running", "queued"):
        page = await console.ask(jobs_list, Page[JobModel], query={"kind": SYNC_KIND, "status": status, "page_size": 1})
        if page.items:
            return page.items[0]
    return None


@console_page
async def level_roles_page(request: web.Request, console: Console) -> web.StreamResponse:
    rewards = await console.ask(admin_level_roles, LevelRoles)
    roles = (await console.ask(admin_roles, Items[RoleItem])).items
    names = Names.of((), roles)
    settings = {s.key: s for s in (await console.ask(admin_get_settings, Items[Setting])).items}
    mode = setting_field(settings[MODE_KEY].model_dump())
    restore = setting_field(settings[RESTORE_KEY].model_dump())
    # Role ids in a preview (its `add` / `remove` lists) are shown by name (console.js `data-names`).
    role_names = json.dumps({str(r.role_id): f"@{r.name}" for r in roles}, ensure_ascii=False)
    context = console.context(
        "level-roles",
        rewards=rewards,
        problems={i.role_id: problem_words(i.problem) for i in rewards.items},
        names=names,
        # Safe roles first; roles granting dangerous permissions stay selectable, marked and last (the API decides).
        role_options=names.role_options(mark_dangerous=True, dangerous=False),
        risky_options=names.role_options(mark_dangerous=True, dangerous=True),
        dangerous=names.dangerous(),
        mode=mode,
        restore=restore,
        level=_level_bounds(),
        role_names=role_names,
        sync=await _running_sync(console),
        now=now(),
    )
    return render(request, "console/level_roles.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/level-roles", level_roles_page)
