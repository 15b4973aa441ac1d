"""Console: the audit log with its filters and before → after changes, and the live log tail (SPEC §28.3).

The process captures live logs into a real ring (as a deployed process does); an entry logged for the guild while
the page is open appears without a reload. Audit filters are validated by the twin's own query model: a bad time
is shown beside its field.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapse_async.obs.logging import configure_logging, get_logger, reset_logging
from synapse_async.obs.ring import LogRing
from tests.api_support import call, login
from tests.browser_support import WIDTHS
from tests.console_support import ADMIN_ID, CONSOLE, ConsoleWorld, check, console_world, sign_in
from tests.pipeline_support import GUILD
from tests.support import wait_for

log = get_logger("synapse_async.tests.console")


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[ConsoleWorld]:
    configure_logging(level="WARNING", fmt="json", ring=LogRing(500, capture_level="INFO"), stream=io.StringIO())
    try:
        async with console_world(fresh_database) as w:
            session = await login(w.rt, ADMIN_ID)
            url = f"{w.base}/api/admin/guilds/{GUILD}/settings"
            for value in (21, 22):
                body = {"values": {"leveling.gold_per_level_up": value}}
                done = await call("PATCH", url, json=body, headers=session.bearer())
                assert done.status == 200, done.body
            done = await call("PATCH", url, json={"values": {"voice.tick_minutes": 3}}, headers=session.bearer())
            assert done.status == 200, done.body
            yield w
    finally:
        reset_logging()


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_audit_log_filters_and_shows_what_changed(browser: Any, world: ConsoleWorld, width: int) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/audit", width)
    try:
        rows = page.locator(".audit-row")
        assert await rows.count() >= 3
        await page.select_option("#af-action", "settings.update")
        await page.fill("#af-target_id", "leveling.gold_per_level_up")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_load_state("networkidle")
        assert "action=settings.update" in page.url
        assert await rows.count() == 2
        first = rows.first
        await first.locator("summary").click()
        cells = await first.locator("tbody tr").first.locator("td").all_text_contents()
        assert cells == ["21", "22"], cells  # newest first: 21 → 22
        problems = await check(page, visit, "audit", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()


async def test_a_bad_filter_is_shown_beside_its_field(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/audit?since=yesterday", 360, "dark")
    try:
        error = page.locator("#af-since-err")
        assert await error.is_visible()
        assert await page.locator("#af-since").get_attribute("aria-invalid") == "true"
        assert await page.locator(".audit-row").count() == 0
        assert visit.page_errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_live_log_entries_appear_without_a_reload(browser: Any, world: ConsoleWorld, width: int) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/logs", width)
    try:
        await page.evaluate("window.__same_document = true")
        marker = f"console_live_probe_{width}"
        log.info(marker, guild_id=GUILD, detail="<b>not markup</b>")
        log.info("another_guild_entry", guild_id=4242)

        async def shown() -> bool:
            return marker in " ".join(await page.locator("#log-live li").all_text_contents())

        await wait_for(shown)
        assert await page.evaluate("window.__same_document === true")  # refreshed in place, not reloaded
        text = " ".join(await page.locator("#log-live li").all_text_contents())
        assert "another_guild_entry" not in text
        assert "<b>not markup</b>" in text and await page.locator("#log-live b").count() == 0
        problems = await check(page, visit, "logs", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()
