"""Members (SPEC §28.3, §20): search and sort the guild's members, open one, award XP or gold with a reason.

Pages (twins in api/admin/members.py and api/admin/awards.py):
- `/admin/g/{id}/members?q=&sort=&page=` — a plain GET form (works without JavaScript) over `GET …/members`.
- `/admin/g/{id}/members/{user_id}?journal=&ledger=` — the member's row, preferences, season stats and
  achievements (`GET …/members/{user_id}`), the journal and the gold ledger, each paged on its own, and the award
  form (fields generated from the award body model) that calls `POST …/awards` and reloads to show the new journal
  row on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, get_args
from urllib.parse import urlencode

from aiohttp import web

from synapse_async.api.admin.awards import AwardBody
from synapse_async.api.admin.members import (
    JournalRowModel,
    LedgerRowModel,
    MemberDetailModel,
    MemberRowModel,
    admin_member,
    admin_member_journal,
    admin_member_ledger,
    admin_members,
)
from synapse_async.api.schema import Page
from synapse_async.services.member_directory import MemberSort
from synapse_async.web.console.bodies import body_fields
from synapse_async.web.console.gate import Console, console_page, page_of
from synapse_async.web.site import now, render

SORTS: Final[tuple[str, ...]] = get_args(MemberSort)
SORT_LABELS: Final[Mapping[str, str]] = {
    "xp": "XP",
    "gold": "Gold",
    "level": "Level",
    "stars": "Stars (lifetime)",
    "name": "Name",
}
MEMBERS_PAGE: Final = 25
ROWS_PAGE: Final = 20
AWARD_HELP: Final[Mapping[str, str]] = {
    "xp": "Negative takes XP away (never below 0).",
    "gold": "Negative takes gold away (never below 0).",
    "reason": "Kept in the journal and the audit log.",
}


def search_params(query: Mapping[str, str]) -> dict[str, str]:
    """The page's own `q` and `sort` cleaned so the twin accepts them (a listing page never fails on a filter):
    blank `q` is no filter, an unknown sort is the default (XP), `q` is cut to the twin's 100 characters."""
    q = query.get("q", "").strip()[:100]
    sort = query.get("sort", "xp")
    params = {"sort": sort if sort in SORTS else "xp"}
    if q:
        params["q"] = q
    return params


def keep_query(params: Mapping[str, str]) -> str:
    """The query string prefix a pager link keeps (`q=…&sort=…&`), so paging keeps the search."""
    return urlencode(params) + "&" if params else ""


def _page_number(request: web.Request, name: str) -> int:
    try:
        return max(1, min(int(request.query.get(name, "1")), 10_000))
    except ValueError:
        return 1


@console_page
async def members_page(request: web.Request, console: Console) -> web.StreamResponse:
    params = search_params(request.query)
    page = await console.ask(
        admin_members, Page[MemberRowModel], query={**params, "page": page_of(request), "page_size": MEMBERS_PAGE}
    )
    context = console.context(
        "members",
        members=page,
        q=params.get("q", ""),
        sort=params["sort"],
        sorts=[(s, SORT_LABELS.get(s, s)) for s in SORTS],
        base_qs=keep_query(params),
        now=now(),
    )
    return render(request, "console/members.html", context, private=True)


@console_page
async def member_page(request: web.Request, console: Console) -> web.StreamResponse:
    path = {"user_id": request.match_info["user_id"]}
    detail = await console.ask(admin_member, MemberDetailModel, path=path)
    journal_page, ledger_page = _page_number(request, "journal"), _page_number(request, "ledger")
    journal = await console.ask(
        admin_member_journal, Page[JournalRowModel], path=path, query={"page": journal_page, "page_size": ROWS_PAGE}
    )
    ledger = await console.ask(
        admin_member_ledger, Page[LedgerRowModel], path=path, query={"page": ledger_page, "page_size": ROWS_PAGE}
    )
    award = body_fields(
        AwardBody.model_json_schema(), ("xp", "gold", "reason"), labels={"xp": "XP"}, help_text=AWARD_HELP
    )
    context = console.context(
        "members",
        detail=detail,
        member=detail.member,
        journal=journal,
        ledger=ledger,
        journal_page=journal_page,
        ledger_page=ledger_page,
        award_fields=award,
        now=now(),
    )
    return render(request, "console/member.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/members", members_page)
    app.router.add_get("/admin/g/{guild_id}/members/{user_id}", member_page)
