"""Import / export (SPEC §28.3, §20.1): upload a member file, read the dry-run report, confirm, follow the job; and
download the export.

The upload form sends the file itself as the body of `POST …/members/import` (our document, another bot's array,
or CSV: the API detects which), `mode` and `levels` in the query. Its first submit is the dry run
(`?dry_run=true`): the report (rows, members changed, first bad rows with reasons, a sample of before → after) is
shown before anything is written; Confirm sends the real import, and the 202 job is followed on its job page.

The export is a GET with an effect (audited, so it needs `X-CSRF-Token` with a cookie session): the download link
is fetched by console.js with the header (`a[data-download]`) and saved as a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from synapse_async.api.admin.lake import JobModel, jobs_list
from synapse_async.api.schema import Page
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.console.jobs import jobs_context
from synapse_async.web.site import now, render

RECENT: Final = 5
ACCEPT: Final = ".json,.csv,.txt,application/json,text/csv,text/plain"


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str
    help: str


MODES: Final = (
    Choice(
        "add", "Add to what members have", "Amounts in the file are added: importing the same file twice adds twice."
    ),
    Choice("replace", "Replace what members have", "Amounts in the file become the members' values."),
)
LEVELS: Final = (
    Choice("", "Automatic", "Levels from another bot are kept; our own export's levels follow from XP."),
    Choice("keep", "Keep the file's levels", "XP is set so that each member keeps the level the file gives."),
    Choice("recompute", "Recompute from XP", "Levels follow from the imported XP with this server's curve."),
)


def export_name(guild_id: int, today: str) -> str:
    """The saved file's name: `synapse-members-<guild>-<YYYY-MM-DD>.json`."""
    return f"synapse-members-{guild_id}-{today}.json"


@console_page
async def transfer_page(request: web.Request, console: Console) -> web.StreamResponse:
    imports = await console.ask(jobs_list, Page[JobModel], query={"kind": "import", "page_size": RECENT})
    stamp = now()
    context = console.context(
        "transfer",
        imports=imports,
        modes=MODES,
        levels=LEVELS,
        accept=ACCEPT,
        export_file=export_name(console.guild_id or 0, stamp.date().isoformat()),
        now=stamp,
        **jobs_context(),
    )
    return render(request, "console/transfer.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/transfer", transfer_page)
