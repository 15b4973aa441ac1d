"""Every console page at 1280 and 360 px, light and dark: status 200, `private, no-store`, the CSP, one h1, no
horizontal scroll at 360 px, no serious or critical axe violation, no console or page error, no dialog, no foreign
request; screenshots of each. And the overview refreshes itself when the guild changes (SPEC §28.3 "live")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapse_async.web.console.gate import SECTIONS
from tests.api_support import call, login
from tests.browser_support import SCHEMES, WIDTHS
from tests.console_support import ADMIN_ID, CONSOLE, ConsoleWorld, check, console_world, sign_in
from tests.pipeline_support import GUILD
from tests.support import wait_for


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[ConsoleWorld]:
    async with console_world(fresh_database) as w:
        yield w


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
async def test_every_console_page(browser: Any, world: ConsoleWorld, width: int, scheme: str) -> None:
    context, page, visit = await sign_in(browser, world, "/admin", width, scheme)
    problems = await check(page, visit, "home", width, scheme)
    try:
        for path, _label, key in SECTIONS:
            response = await page.goto(world.base + CONSOLE + path, wait_until="networkidle")
            assert response is not None
            headers = await response.all_headers()
            where = f"{key} {width}px {scheme}"
            if response.status != 200:
                problems.append(f"{where}: status {response.status}")
            if headers.get("cache-control") != "private, no-store":
                problems.append(f"{where}: cache-control {headers.get('cache-control')}")
            if "script-src 'self'" not in headers.get("content-security-policy", ""):
                problems.append(f"{where}: CSP {headers.get('content-security-policy')}")
            if await page.locator(f'nav.side a[aria-current="page"][href="{CONSOLE}{path}"]').count() != 1:
                problems.append(f"{where}: the navigation does not mark the page")
            problems += await check(page, visit, key, width, scheme)
    finally:
        await context.close()
    assert problems == [], "\n".join(problems)


async def test_the_overview_refreshes_in_place(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE, 1280)
    try:
        await page.evaluate("window.__same_document = true")
        total = page.locator(".stats div:nth-child(3) dd")
        before = await total.text_content()
        session = await login(world.rt, ADMIN_ID)
        award = {"user_id": str(world.members[0]), "xp": 5000, "reason": "console live test"}
        done = await call("POST", f"{world.base}/api/admin/guilds/{GUILD}/awards", json=award, headers=session.bearer())
        assert done.status == 200, done.body

        async def changed() -> bool:
            return await page.locator(".stats div:nth-child(3) dd").text_content() != before

        await wait_for(changed, timeout=30)
        assert await page.evaluate("window.__same_document === true")
        assert await page.get_by_text("award.create").count() >= 1  # the recent-changes list refreshed too
        assert visit.page_errors == [] and visit.console_errors == []
    finally:
        await context.close()
