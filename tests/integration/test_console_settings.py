"""Console: sign-in, the guild list, the generated settings form, and who may use it (SPEC §28.3, §21).

Real Chromium against the real app and simulator: an admin signs in through the OAuth page, changes a setting and
sees it persist (read back through the JSON API) with exactly one audit row; an out-of-range value shows the API's
message beside its field and changes nothing; a member who is not an admin gets 403 pages; a cookie-authenticated
mutation without the CSRF header is refused; after logout the back button shows nothing private.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api_support import call, login
from tests.browser_support import WIDTHS, open_page
from tests.console_support import ADMIN_ID, CONSOLE, ConsoleWorld, check, console_world, sign_in
from tests.pipeline_support import GUILD, query
from tests.support import wait_for


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[ConsoleWorld]:
    async with console_world(fresh_database) as w:
        yield w


async def _setting(world: ConsoleWorld, key: str) -> Any:
    session = await login(world.rt, ADMIN_ID)
    got = await call("GET", f"{world.base}/api/admin/guilds/{GUILD}/settings", headers=session.bearer())
    assert got.status == 200
    return next(i for i in got.body["items"] if i["key"] == key)


@pytest.mark.parametrize("width", WIDTHS)
async def test_an_admin_signs_in_and_changes_a_setting(browser: Any, world: ConsoleWorld, width: int) -> None:
    key, value = "leveling.gold_per_level_up", 37 + width % 7
    context, page, visit = await sign_in(browser, world, CONSOLE + "/settings", width)
    try:
        headers = (await page.request.get(world.base + CONSOLE + "/settings")).headers
        assert headers["cache-control"] == "private, no-store"
        before = await query(
            world.rt, "SELECT count(*) AS n FROM audit_log WHERE guild_id = :g AND target_id = :k", k=key
        )
        field = page.locator("#f-leveling-gold_per_level_up")
        await field.fill(str(value))
        await page.get_by_role("button", name="Save changes").click()
        await page.wait_for_load_state("networkidle")
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        assert (await _setting(world, key))["value"] == value
        after = await query(
            world.rt, "SELECT count(*) AS n FROM audit_log WHERE guild_id = :g AND target_id = :k", k=key
        )
        assert after[0]["n"] == before[0]["n"] + 1
        assert await page.locator("#f-leveling-gold_per_level_up").input_value() == str(value)
        problems = await check(page, visit, "settings", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()


async def test_an_out_of_range_value_shows_the_field_error_and_changes_nothing(
    browser: Any, world: ConsoleWorld
) -> None:
    key = "leveling.level_base"
    was = (await _setting(world, key))["value"]
    context, page, visit = await sign_in(browser, world, CONSOLE + "/settings", 360, "dark")
    try:
        await page.locator("#f-leveling-level_base").fill("99999999")
        await page.locator("#f-leveling-gold_per_level_up").fill("5")  # a valid change in the same save
        await page.get_by_role("button", name="Save changes").click()
        error = page.locator("#f-leveling-level_base-err")
        await error.wait_for(state="visible")
        assert "99999999" in (await error.text_content() or "") or "between" in (await error.text_content() or "")
        assert await page.locator("#f-leveling-level_base").get_attribute("aria-invalid") == "true"
        assert (await _setting(world, key))["value"] == was
        assert (await _setting(world, "leveling.gold_per_level_up"))["value"] != 5  # all or nothing
        problems = await check(page, visit, "settings-error", 360, "dark")
        assert [p for p in problems if "console error" not in p] == [], "\n".join(problems)
    finally:
        await context.close()


async def test_a_member_who_is_not_an_admin_gets_403_pages(browser: Any, world: ConsoleWorld) -> None:
    member = world.members[0]
    session = await login(world.rt, member)
    context, page, visit = await open_page(browser, world.base, 1280, "light", cookie=session.token)
    try:
        for path in ("", "/settings"):
            response = await page.goto(world.base + CONSOLE + path)
            assert response is not None and response.status == 403, path
            assert await page.locator("h1").text_content() == "Not an admin here"
        home = await page.goto(world.base + "/admin")
        assert home is not None and home.status == 200
        assert await page.locator(".guild-list").count() == 0  # no guild offered
        assert visit.page_errors == [] and visit.foreign == []
    finally:
        await context.close()


async def test_a_bad_or_unknown_guild_is_a_404_page(world: ConsoleWorld) -> None:
    session = await login(world.rt, ADMIN_ID)
    cookie = {"Cookie": f"synapse_token={session.token}", "Accept": "text/html"}
    for path in ("/admin/g/abc/settings", "/admin/g/" + "9" * 30, "/admin/g/4242/audit"):
        page = await call("GET", world.base + path, headers=cookie)
        assert page.status == 404, (path, page.status)
        assert "Not found" in page.body and page.headers["Cache-Control"] == "private, no-store"


async def test_a_cookie_mutation_without_the_csrf_header_is_refused(world: ConsoleWorld) -> None:
    session = await login(world.rt, ADMIN_ID)
    body = {"values": {"leveling.gold_per_level_up": 11}}
    url = f"{world.base}/api/admin/guilds/{GUILD}/settings"
    cookie = {"Cookie": f"synapse_token={session.token}"}
    refused = await call("PATCH", url, json=body, headers=cookie)
    assert refused.status == 403 and refused.body["error"]["code"] == "csrf_failed"
    assert (await _setting(world, "leveling.gold_per_level_up"))["value"] != 11
    allowed = await call("PATCH", url, json=body, headers={**cookie, "X-CSRF-Token": session.csrf})
    assert allowed.status == 200


async def test_after_logout_the_back_button_shows_nothing_private(browser: Any, world: ConsoleWorld) -> None:
    context, page, visit = await sign_in(browser, world, CONSOLE + "/settings")
    try:
        assert await page.locator("#f-leveling-level_base").count() == 1
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(world.base + "/admin")
        assert await page.get_by_role("link", name="Sign in with Discord").count() == 1
        await page.go_back()
        await page.wait_for_load_state("networkidle")
        assert await page.locator("#f-leveling-level_base").count() == 0
        assert await page.get_by_role("link", name="Sign in with Discord").count() == 1
        assert visit.page_errors == [] and visit.foreign == []
    finally:
        await context.close()


async def test_a_double_submission_changes_once(browser: Any, world: ConsoleWorld) -> None:
    """Two submissions of one rendered form before its answer carry the same Idempotency-Key: one change, one
    audit row, and the second answer is the first one replayed (`Idempotent-Replayed`). The first answer is held
    back until the second is in, so the page's reload after the first cannot cut the second short."""
    key = "voice.tick_minutes"
    audited = "SELECT count(*) AS n FROM audit_log WHERE guild_id = :g AND target_id = :k"
    before = await query(world.rt, audited, k=key)
    context, page, visit = await sign_in(browser, world, CONSOLE + "/settings")
    try:
        now = (await _setting(world, key))["value"]
        await page.locator("#f-voice-tick_minutes").fill(str(now + 1))
        sent: list[str] = []
        answers: list[tuple[int, str | None]] = []
        second_answered = asyncio.Event()

        async def hold(route: Any) -> None:
            if route.request.method != "PATCH":
                await route.continue_()
                return
            sent.append(route.request.headers.get("idempotency-key", ""))
            mine = len(sent)
            response = await route.fetch()
            if mine == 1:
                await second_answered.wait()
            answers.append((response.status, response.headers.get("idempotent-replayed")))
            await route.fulfill(response=response)
            if mine == 2:
                second_answered.set()

        await page.route("**/api/admin/guilds/*/settings", hold)
        script = (
            "() => { const f = document.querySelector('form[data-api$=\"/settings\"]');"
            " f.requestSubmit(); f.requestSubmit(); }"
        )
        await page.evaluate(script)
        await wait_for(lambda: len(answers) == 2)
        assert sent[0] == sent[1] and len(sent[0]) >= 8
        assert answers == [(200, "true"), (200, None)], answers
        assert (await _setting(world, key))["value"] == now + 1
        assert (await query(world.rt, audited, k=key))[0]["n"] == before[0]["n"] + 1
        assert visit.page_errors == []
    finally:
        await context.close()
