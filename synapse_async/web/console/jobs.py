"""Jobs (SPEC §28.3, §23.2): every job of the guild with its status and progress, filtered by kind and status,
refreshed in place while the admin watches (a `data-live` region), and one job's page with its parameters and
result — where an import, a lake job or a sync sends the admin to follow it to the end.

Twins: `GET …/jobs` (filters and pages are the twin's own query model), `GET …/jobs/{job_id}`; the cancel button is
a form the browser sends to `POST …/jobs/{job_id}/cancel` (console.js).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from synapse_async.api.admin.lake import JobModel, jobs_get, jobs_list
from synapse_async.api.schema import Page
from synapse_async.domain.vocabulary import JOB_KINDS, JOB_STATUSES
from synapse_async.web.console.gate import Console, console_page, page_of
from synapse_async.web.site import now, render

ACTIVE: Final = frozenset({"queued", "running"})
LIVE_MS: Final = 2000

KIND_LABELS: Final[Mapping[str, str]] = {
    "retention": "Lake retention",
    "reconciliation": "Lake reconciliation",
    "backfill": "Lake backfill",
    "import": "Member import",
    "level_role_sync": "Level-role sync",
    "relevel": "Relevel",
}


def kind_label(kind: str) -> str:
    """The job kind as a person reads it (an unknown kind falls back to its name with spaces)."""
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int

    @property
    def percent(self) -> int:
        """Whole percent, clamped to 0–100; 0 while the total is unknown."""
        return 0 if self.total <= 0 else max(0, min(100, self.done * 100 // self.total))

    @property
    def known(self) -> bool:
        return self.total > 0


def progress_of(progress: Mapping[str, Any]) -> Progress:
    """A job's `progress {done, total}` as numbers, whatever a handler stored (missing or odd values are 0)."""

    def count(key: str) -> int:
        value = progress.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    return Progress(count("done"), count("total"))


def cancellable(status: str) -> bool:
    """Only a queued or running job can be cancelled (§23.2); a finished one keeps its outcome."""
    return status in ACTIVE


def job_filters(query: Mapping[str, str]) -> dict[str, str]:
    """The kind and status filters of the page's address, kept only when they name a known kind or status, so a
    stale bookmark shows every job instead of an error page."""
    out: dict[str, str] = {}
    if query.get("kind") in JOB_KINDS:
        out["kind"] = query["kind"]
    if query.get("status") in JOB_STATUSES:
        out["status"] = query["status"]
    return out


def base_qs(filters: Mapping[str, str]) -> str:
    """The pager's query-string prefix that keeps the filters (`kind=import&`), empty without filters."""
    return urlencode(filters) + "&" if filters else ""


# A job result is stored as jsonb, which keeps no key order: the page puts the figures an admin reads first in
# front, the rest alphabetically, and in a table the member first and each "before" beside its "after".
_FIRST: Final = (
    "status", "format", "mode", "levels", "dry_run", "complete", "entries", "members_changed", "members_created",
    "members_unchanged", "already_imported", "xp_delta", "gold_delta", "stars_delta", "achievements_granted",
    "days_checked", "groups_checked", "corrected", "groups_read", "counters_raised", "deleted",
)  # fmt: skip
_COLUMNS_FIRST: Final = ("index", "user_id", "role_id", "event_type", "day")
_PAIRS: Final = {"before": 0, "from": 0, "stored": 0, "after": 1, "to": 1, "actual": 1}


def _key_rank(key: str) -> tuple[int, int, str]:
    """Summary keys: known figures in `_FIRST` order, then other plain values, then nested ones (by name)."""
    return (_FIRST.index(key), 0, key) if key in _FIRST else (len(_FIRST), 0, key)


def _column_rank(key: str) -> tuple[int, str, int]:
    stem, _, side = key.rpartition("_")
    if key in _COLUMNS_FIRST:
        return (_COLUMNS_FIRST.index(key), "", 0)
    if key in _PAIRS:
        return (len(_COLUMNS_FIRST), "", _PAIRS[key])
    if side in _PAIRS:
        return (len(_COLUMNS_FIRST) + 1, stem, _PAIRS[side])
    return (len(_COLUMNS_FIRST) + 1, key, 2)


def arranged(value: Any) -> Any:
    """A job's params or result in reading order: plain figures before nested lists and objects, the known
    figures first; each table's columns member first and "before" ahead of "after". Values are unchanged."""
    if isinstance(value, Mapping):
        plain = sorted((k for k, v in value.items() if not isinstance(v, Mapping | list)), key=_key_rank)
        nested = sorted((k for k, v in value.items() if isinstance(v, Mapping | list)), key=_key_rank)
        return {k: arranged(value[k]) for k in (*plain, *nested)}
    if isinstance(value, list) and value and all(isinstance(row, Mapping) for row in value):
        columns = sorted({k for row in value for k in row}, key=_column_rank)
        return [{k: arranged(row.get(k)) for k in columns} for row in value]
    if isinstance(value, list):
        return [arranged(v) for v in value]
    return value


def jobs_context() -> dict[str, Any]:
    """What the job templates need to label and judge jobs."""
    return {
        "kind_label": kind_label,
        "progress_of": progress_of,
        "cancellable": cancellable,
        "arranged": arranged,
        "live_ms": LIVE_MS,
    }


@console_page
async def jobs_page(request: web.Request, console: Console) -> web.StreamResponse:
    filters = job_filters(request.query)
    page = await console.ask(jobs_list, Page[JobModel], query={**filters, "page": page_of(request)})
    context = console.context(
        "jobs",
        jobs=page,
        filters=filters,
        base_qs=base_qs(filters),
        kinds=[(k, kind_label(k)) for k in JOB_KINDS],
        statuses=JOB_STATUSES,
        now=now(),
        **jobs_context(),
    )
    return render(request, "console/jobs.html", context, private=True)


@console_page
async def job_page(request: web.Request, console: Console) -> web.StreamResponse:
    job = await console.ask(jobs_get, JobModel, path={"job_id": request.match_info["job_id"]})
    context = console.context("jobs", job=job, now=now(), **jobs_context())
    return render(request, "console/job.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/jobs", jobs_page)
    app.router.add_get("/admin/g/{guild_id}/jobs/{job_id}", job_page)
