"""Console operations pages: seasons, import / export, event lake, jobs (SPEC §28.3, §11, §15, §20.1, §23.2).

Real Chromium against the real app, database and simulator. The job runner polls only once an hour here
(`JOB_POLL_SECONDS=3600`), so a requested job stays queued until a test runs the runner itself (`rt.jobs.poll()`,
what the runtime's periodic task calls): a queued job can be cancelled from the page, and an import is seen to go
from queued to succeeded on its job page, which refreshes itself. Every effect is read back through the JSON API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import call, login
from tests.browser_support import WIDTHS, open_page
from tests.console_support import ADMIN_ID, CONSOLE, ConsoleWorld, check, console_world, sign_in
from tests.pipeline_support import GUILD

API = f"/api/admin/guilds/{GUILD}"


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[ConsoleWorld]:
    async with console_world(fresh_database, JOB_POLL_SECONDS="3600") as w:
        yield w


async def _api(world: ConsoleWorld, method: str, path: str, body: Any = None) -> Any:
    session = await login(world.rt, ADMIN_ID)
    kwargs: dict[str, Any] = {"headers": session.bearer()}
    if body is not None:
        kwargs["json"] = body
    reply = await call(method, world.base + API + path, **kwargs)
    return reply


async def _get(world: ConsoleWorld, path: str) -> Any:
    reply = await _api(world, "GET", path)
    assert reply.status == 200, (path, reply.status, reply.body)
    return reply.body


async def _active_season(world: ConsoleWorld) -> dict[str, Any] | None:
    items = (await _get(world, "/seasons"))["items"]
    return next((s for s in items if s["status"] == "active"), None)


async def _member_xp(world: ConsoleWorld, user_id: int) -> int:
    return int((await _get(world, f"/members/{user_id}"))["member"]["xp"])


def _problems(found: list[str]) -> str:
    return "\n".join(found)


# --- import / export ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
async def test_an_import_dry_run_then_confirm_and_the_job_finishes_on_the_page(
    browser: Any, world: ConsoleWorld, width: int, tmp_path: Path
) -> None:
    first, second = world.members[0], world.members[1]
    xp_first, xp_second = await _member_xp(world, first), await _member_xp(world, second)
    document = [
        {"user_id": str(first), "xp": 1234, "gold": 7},
        {"user_id": str(second), "xp": 40},
    ]
    upload = tmp_path / "members.json"
    upload.write_text(json.dumps(document))
    context, page, visit = await sign_in(browser, world, CONSOLE + "/transfer", width)
    try:
        await page.set_input_files("#im-file", str(upload))
        await page.get_by_role("button", name="Check the file").click()
        step = page.locator("#import-form [data-step]")
        await step.wait_for(state="visible")
        text = await step.inner_text()
        assert "What this import will do" in text
        assert "members changed" in text and "sample" in text and "xp before" in text
        assert str(first) in text  # the sample of before → after names the member
        assert await _member_xp(world, first) == xp_first  # a dry run writes nothing
        problems = await check(page, visit, "transfer-preview", width)
        assert problems == [], _problems(problems)
        await step.get_by_role("button", name="Import now").click()
        await page.wait_for_url(f"**{CONSOLE}/jobs/*")
        await page.wait_for_load_state("networkidle")
        live = page.locator("#job-live")
        assert await live.get_attribute("data-job-status") == "queued"
        assert await page.locator("h1").text_content() == "Member import job"
        await world.rt.jobs.poll()  # the runner's periodic pass, now
        await page.locator('#job-live[data-job-status="succeeded"]').wait_for(timeout=15_000)
        assert "members changed" in await page.locator("#job-live").inner_text()
        assert await _member_xp(world, first) == xp_first + 1234
        assert await _member_xp(world, second) == xp_second + 40
        problems = await check(page, visit, "job-import", width)
        assert problems == [], _problems(problems)
    finally:
        await context.close()


async def test_a_file_with_bad_rows_shows_them_and_imports_nothing(
    browser: Any, world: ConsoleWorld, tmp_path: Path
) -> None:
    first = world.members[2]
    before = await _member_xp(world, first)
    upload = tmp_path / "bad.json"
    document = json.dumps([{"user_id": str(first), "xp": 10}, {"user_id": "not-an-id", "xp": 5}])
    upload.write_text(document)
    context, page, visit = await sign_in(browser, world, CONSOLE + "/transfer", 360, "dark")
    try:
        await page.set_input_files("#im-file", str(upload))
        await page.get_by_role("button", name="Check the file").click()
        step = page.locator("#import-form [data-step]")
        await step.wait_for(state="visible")
        text = await step.inner_text()
        assert "invalid" in text and "reason" in text and "must be a user id" in text
        assert "nothing can be imported until they are fixed" in text
        assert await step.get_by_role("button", name="Import now").count() == 0  # no confirm of a refused import
        problems = await check(page, visit, "transfer-bad-rows", 360, "dark")
        assert problems == [], _problems(problems)
        await step.get_by_role("button", name="Back").click()
        await step.wait_for(state="hidden")
        assert await _member_xp(world, first) == before
        # The API refuses the same document for real too (what the missing Confirm spares the admin).
        session = await login(world.rt, ADMIN_ID)
        refused = await call(
            "POST", world.base + API + "/members/import", data=document.encode(), headers=session.bearer()
        )
        assert refused.status == 400 and await _member_xp(world, first) == before
    finally:
        await context.close()


async def test_a_csv_file_is_previewed_as_csv(browser: Any, world: ConsoleWorld, tmp_path: Path) -> None:
    member = world.members[3]
    before = await _member_xp(world, member)
    upload = tmp_path / "members.csv"
    upload.write_text(f"id,xp,gold\n{member},25,3\n")
    context, page, visit = await sign_in(browser, world, CONSOLE + "/transfer", 1280, "dark")
    try:
        await page.set_input_files("#im-file", str(upload))
        await page.locator("#im-mode").select_option("replace")
        await page.get_by_role("button", name="Check the file").click()
        step = page.locator("#import-form [data-step]")
        await step.wait_for(state="visible")
        text = await step.inner_text()
        assert "csv" in text and "replace" in text and str(member) in text
        assert await _member_xp(world, member) == before
        problems = await check(page, visit, "transfer-csv", 1280, "dark")
        assert problems == [], _problems(problems)
    finally:
        await context.close()


async def test_the_export_downloads_with_the_csrf_header(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/transfer", 1280)
    try:
        async with page.expect_download() as info:
            await page.get_by_role("link", name="Download the export").click()
        download = await info.value
        assert download.suggested_filename.startswith(f"synapse-members-{GUILD}-")
        saved = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
        assert saved["format"] == "synapse-members" and saved["guild_id"] == str(GUILD)
        assert {m["user_id"] for m in saved["members"]} >= {str(u) for u in world.members}
        await page.locator("[data-download-status]").wait_for(state="visible")
        assert visit.console_errors == [] and visit.page_errors == []
    finally:
        await context.close()


# --- seasons --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
async def test_starting_a_season_over_the_active_one_asks_first_then_replaces_it(
    browser: Any, world: ConsoleWorld, width: int
) -> None:
    old_name, new_name = f"Spring {width}", f"Summer {width}"
    started = await _api(world, "POST", "/seasons", {"name": old_name, "days": 30, "replace_active": True})
    assert started.status == 201, started.body
    context, page, visit = await sign_in(browser, world, CONSOLE + "/seasons", width)
    try:
        form = page.locator("#start-season")
        await form.locator("#f-name").fill(new_name)
        await form.locator("#f-days").fill("14")
        await page.get_by_role("button", name="Start the season…").click()
        step = form.locator("[data-step]")
        await step.wait_for(state="visible")
        assert old_name in await step.inner_text()
        assert (await _active_season(world) or {}).get("name") == old_name  # nothing changed before Confirm
        problems = await check(page, visit, "seasons-confirm", width)
        assert problems == [], _problems(problems)
        await step.get_by_role("button", name="End it and start").click()
        await page.locator("[data-flash]").wait_for(state="visible")
        active = await _active_season(world)
        assert active is not None and active["name"] == new_name
        ended = [s for s in (await _get(world, "/seasons"))["items"] if s["name"] == old_name]
        assert ended[0]["status"] == "ended"
        assert await page.locator("[data-active-season] bdi").first.text_content() == new_name
        problems = await check(page, visit, "seasons", width)
        assert problems == [], _problems(problems)
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_moving_the_end_and_ending_the_season_with_confirm(browser: Any, world: ConsoleWorld, width: int) -> None:
    started = await _api(world, "POST", "/seasons", {"name": f"Autumn {width}", "days": 30, "replace_active": True})
    assert started.status == 201, started.body
    season_id = started.body["id"]
    new_end = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    context, page, visit = await sign_in(browser, world, CONSOLE + "/seasons", width, "dark")
    try:
        await page.locator("#edit-ends_at").fill(new_end.strftime("%Y-%m-%dT%H:%M"))
        await page.get_by_role("button", name="Save the end").click()
        await page.locator("[data-flash]").wait_for(state="visible")
        active = await _active_season(world)
        assert active is not None and active["id"] == season_id
        assert datetime.fromisoformat(active["ends_at"].replace("Z", "+00:00")) == new_end

        await page.get_by_role("button", name="End the season…").click()
        step = page.locator("#end-season [data-step]")
        await step.wait_for(state="visible")
        assert (await _active_season(world) or {}).get("id") == season_id  # still running before Confirm
        await step.get_by_role("button", name="End the season", exact=True).click()
        await page.locator("[data-no-season]").wait_for(state="visible")
        assert await _active_season(world) is None
        archived = page.locator("#h-archive + .table-wrap")
        assert f"Autumn {width}" in await archived.inner_text()
        problems = await check(page, visit, "seasons-none", width, "dark")
        assert problems == [], _problems(problems)
    finally:
        await context.close()


# --- jobs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
async def test_cancelling_a_queued_job(browser: Any, world: ConsoleWorld, width: int) -> None:
    requested = await _api(world, "POST", "/event-lake/retention", {})
    assert requested.status == 202, requested.body
    job_id = requested.body["job_id"]
    context, page, visit = await sign_in(browser, world, CONSOLE + "/jobs", width)
    try:
        row = page.locator(f'[data-job="{job_id}"]')
        assert await row.get_attribute("data-status") == "queued"
        problems = await check(page, visit, "jobs", width)
        assert problems == [], _problems(problems)
        await row.get_by_role("button", name="Cancel").click()
        await page.locator("[data-flash]").wait_for(state="visible")
        assert (await _get(world, f"/jobs/{job_id}"))["status"] == "cancelled"
        assert await page.locator(f'[data-job="{job_id}"]').get_attribute("data-status") == "cancelled"
        assert await page.locator(f'[data-job="{job_id}"] .cancel-form').count() == 0
        filtered = await page.goto(world.base + CONSOLE + "/jobs?kind=retention&status=cancelled")
        assert filtered is not None and filtered.status == 200
        assert await page.locator(f'[data-job="{job_id}"]').count() == 1
        assert await page.locator('[data-status="succeeded"]').count() == 0
    finally:
        await context.close()


async def test_the_jobs_list_refreshes_itself(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/jobs", 1280, "dark")
    try:
        requested = await _api(world, "POST", "/event-lake/reconciliation", {})
        assert requested.status == 202, requested.body
        job_id = requested.body["job_id"]
        await page.locator(f'[data-job="{job_id}"][data-status="queued"]').wait_for(timeout=15_000)  # no reload
        await world.rt.jobs.poll()
        await page.locator(f'[data-job="{job_id}"][data-status="succeeded"]').wait_for(timeout=15_000)
        problems = await check(page, visit, "jobs-live", 1280, "dark")
        assert problems == [], _problems(problems)
    finally:
        await context.close()


async def test_an_unknown_or_malformed_job_address_is_a_page_not_a_traceback(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/jobs", 1280)
    try:
        unknown = await page.goto(world.base + CONSOLE + "/jobs/00000000-0000-4000-8000-000000000000")
        assert unknown is not None and unknown.status == 404
        malformed = await page.goto(world.base + CONSOLE + "/jobs/not-a-job")
        assert malformed is not None and malformed.status == 400
        assert await page.locator("h1").count() == 1 and visit.page_errors == []
    finally:
        await context.close()


# --- event lake -----------------------------------------------------------------------------------------------


async def _source(world: ConsoleWorld, event_type: str) -> bool:
    items = (await _get(world, "/event-lake/data-sources"))["items"]
    return bool(next(i for i in items if i["event_type"] == event_type)["enabled"])


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_lake_source_is_switched_and_a_second_job_of_a_kind_is_refused(
    browser: Any, world: ConsoleWorld, width: int
) -> None:
    was = await _source(world, "voice_join")
    context, page, visit = await sign_in(browser, world, CONSOLE + "/event-lake", width)
    try:
        problems = await check(page, visit, "event-lake", width)
        assert problems == [], _problems(problems)
        assert await page.locator("svg.chart").count() == 1
        assert await page.locator("details table.data").count() == 1  # the chart's table alternative
        await page.locator("#src-voice_join").set_checked(not was)
        await page.get_by_role("button", name="Save sources").click()
        await page.locator("[data-flash]").wait_for(state="visible")
        assert await _source(world, "voice_join") is (not was)
        assert await _source(world, "message_create") is True  # the others as they were
        assert await page.locator("#src-voice_join").is_checked() is (not was)

        await page.get_by_role("button", name="Run backfill").click()  # dry run (the default)
        await page.wait_for_url(f"**{CONSOLE}/jobs/*")
        job_id = page.url.rsplit("/", 1)[-1]
        job = await _get(world, f"/jobs/{job_id}")
        assert job["kind"] == "backfill" and job["params"]["dry_run"] is True and job["status"] == "queued"
        await page.goto(world.base + CONSOLE + "/event-lake")
        assert await page.locator('[data-active-job="backfill"]').is_visible()
        await page.get_by_role("button", name="Run backfill").click()
        error = page.locator("#job-backfill [data-form-error]")
        await error.wait_for(state="visible")
        assert "already active" in (await error.text_content() or "")
        visit.console_errors.clear()  # the refused request's 409, expected
        assert (await _get(world, "/jobs?kind=backfill&status=queued"))["total"] == 1
        problems = await check(page, visit, "event-lake-409", width)
        assert problems == [], _problems(problems)
        cancelled = await _api(world, "POST", f"/jobs/{job_id}/cancel")
        assert cancelled.status == 200
    finally:
        await context.close()


async def test_counter_filters_and_a_bad_filter_is_explained(browser: Any, world: ConsoleWorld) -> None:
    member = world.members[0]
    context, page, visit = await sign_in(browser, world, CONSOLE + f"/event-lake?user_id={member}", 360, "dark")
    try:
        rows = page.locator("#h-counters ~ .table-wrap tbody tr")
        assert await rows.count() >= 1
        assert all(str(member) in t for t in await rows.all_inner_texts())
        await page.goto(world.base + CONSOLE + "/event-lake?period=weekly")
        assert await page.locator("#cf-period").get_attribute("aria-invalid") == "true"
        assert await page.locator("#cf-period-err").is_visible()
        problems = await check(page, visit, "event-lake-filters", 360, "dark")
        assert problems == [], _problems(problems)
    finally:
        await context.close()


# --- who may see them -----------------------------------------------------------------------------------------


async def test_a_member_who_is_not_an_admin_gets_403_on_every_operations_page(
    browser: Any, world: ConsoleWorld
) -> None:
    session = await login(world.rt, world.members[0])
    context, page, visit = await open_page(browser, world.base, 1280, "light", cookie=session.token)
    try:
        for path in ("/seasons", "/transfer", "/event-lake", "/jobs"):
            response = await page.goto(world.base + CONSOLE + path)
            assert response is not None and response.status == 403, path
            assert await page.locator("h1").text_content() == "Not an admin here"
        assert visit.page_errors == [] and visit.foreign == []
    finally:
        await context.close()
