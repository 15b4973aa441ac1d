"""Seasons (SPEC §28.3, §11): the active season and its end (editable, in the future), starting a season, ending
the active one, and the archive of ended seasons.

Both wide changes ask first: ending the active season, and starting a season while one is active (which ends it
in the same transaction, `replace_active: true`), show a confirm step before anything is sent (console.js
`data-confirm`). Twins: `GET …/seasons` and the settings twin (for `season.default_days`); the forms call
`POST …/seasons`, `PATCH …/seasons/{id}`, `POST …/seasons/{id}/end`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from synapse_async.api.admin.platform import Setting, admin_get_settings
from synapse_async.api.admin.seasons import SeasonModel, admin_seasons
from synapse_async.api.schema import Items
from synapse_async.services import seasons as season_rules
from synapse_async.web.console.forms import FormField
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.site import now, render

DEFAULT_DAYS_KEY: Final = "season.default_days"


def split(items: Sequence[SeasonModel]) -> tuple[SeasonModel | None, list[SeasonModel]]:
    """The active season (at most one, §11) and the ended ones, newest first as the twin lists them."""
    active = next((s for s in items if s.status == "active"), None)
    return active, [s for s in items if s.status != "active"]


def utc_input(when: datetime | None) -> str | None:
    """A time as a `datetime-local` input shows it, in UTC to the minute (`2027-01-31T18:00`); the script adds the
    `Z` back when sending (`data-json="utc"`)."""
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def start_fields(default_days: int) -> tuple[FormField, ...]:
    """The start form: the body of `POST …/seasons` with the contract's own bounds (`services.seasons`)."""
    return (
        FormField(
            name="name",
            label="Name",
            widget="text",
            json_type="string",
            value=None,
            description="Unique among this server's seasons.",
            max_length=season_rules.MAX_NAME,
            required=True,
            error_keys=("name", "body.name"),
        ),
        FormField(
            name="days",
            label="Length in days",
            widget="number",
            json_type="int",
            value=None,
            description=f"Leave empty for the default of {default_days} days, or give an end time instead.",
            minimum=1,
            maximum=season_rules.MAX_DAYS,
            step="1",
            error_keys=("days", "body.days"),
        ),
        FormField(
            name="ends_at",
            label="Or ends at (UTC)",
            widget="datetime",
            json_type="utc",
            value=None,
            description="An explicit end, in the future (UTC).",
            error_keys=("ends_at", "body.ends_at"),
        ),
    )


def end_field(active: SeasonModel) -> FormField:
    """The active season's end, as the `PATCH` form edits it."""
    return FormField(
        name="ends_at",
        label="Ends at (UTC)",
        widget="datetime",
        json_type="utc",
        value=utc_input(active.ends_at),
        description="Must be in the future. The season ends by itself at this time.",
        required=True,
        error_keys=("ends_at", "body.ends_at", "body"),
    )


@console_page
async def seasons_page(request: web.Request, console: Console) -> web.StreamResponse:
    items = (await console.ask(admin_seasons, Items[SeasonModel])).items
    settings = (await console.ask(admin_get_settings, Items[Setting])).items
    default_days = next((int(s.value) for s in settings if s.key == DEFAULT_DAYS_KEY), 90)
    active, archived = split(items)
    context = console.context(
        "seasons",
        active=active,
        archived=archived,
        fields=start_fields(default_days),
        end_field=None if active is None else end_field(active),
        now=now(),
    )
    return render(request, "console/seasons.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/seasons", seasons_page)
