"""Console: the XP-rules and level-roles pages (SPEC §28.3, §9.1, §13), in real Chromium at 1280 and 360 px.

An admin maps a safe role as a level reward after seeing the dry-run preview (read back through the JSON API, one
`level_role.upsert` audit row); the Administrator role is refused with the API's reason beside the role field and
nothing is written; a channel override added through the picker is listed by name and read back through the API;
the explain box shows the final multiplier for a channel; a rule on a removed channel stays listed, flagged and
removable; removing a reward, changing the mode and "Sync now" each show their preview before anything is written.
Both pages pass the shared checks (one h1, no horizontal scroll at 360 px, no serious or critical axe violation, no
console error) and leave screenshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import ROLE_ADMIN_ID
from tests.api_support import Session, call, login
from tests.browser_support import WIDTHS
from tests.console_support import ADMIN_ID, CONSOLE, ConsoleWorld, check, console_world, sign_in
from tests.pipeline_support import GUILD, query
from tests.support import simulator_of, wait_for

API = f"/api/admin/guilds/{GUILD}"


@dataclass
class RulesWorld:
    world: ConsoleWorld
    safe: int  # "Regular": no permissions, below the bot's role
    channel: int  # #help
    admin: Session

    @property
    def rt(self) -> Runtime:
        return self.world.rt

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        return await call(method, self.world.base + API + path, headers=self.admin.bearer(), **kw)


def _bot_sees(rt: Runtime, role_id: int) -> bool:
    from synapse_async.bot.gateway import DiscordGateway

    assert isinstance(rt.gateway, DiscordGateway)
    return rt.gateway.bot.cache.get_role(role_id) is not None


@pytest.fixture(scope="module")
async def rules(fresh_database: str) -> AsyncIterator[RulesWorld]:
    async with console_world(fresh_database) as world:
        rt = world.rt
        sim = simulator_of(rt)
        safe = int(await sim.create_role("Regular", position=2))
        channel = sim.channel_id("help")

        async def synced() -> bool:
            rows = await query(rt, "SELECT role_id FROM guild_roles WHERE guild_id = :g AND deleted_at IS NULL")
            return safe in {int(r["role_id"]) for r in rows} and _bot_sees(rt, safe)

        await wait_for(synced, timeout=20)
        rules = RulesWorld(world, safe, channel, await login(rt, ADMIN_ID))
        for user_id in world.members[:3]:  # members at a level a reward reaches, so a preview has someone to show
            award = await rules.api("POST", "/awards", json={"user_id": str(user_id), "xp": 5000, "reason": "setup"})
            assert award.status == 200, award.body
        yield rules


async def _rewards(rules: RulesWorld) -> dict[int, int]:
    got = await rules.api("GET", "/level-roles")
    assert got.status == 200, got.body
    return {int(i["role_id"]): int(i["level"]) for i in got.body["items"]}


async def _audit(rules: RulesWorld, action: str) -> int:
    rows = await query(rules.rt, "SELECT count(*) AS n FROM audit_log WHERE guild_id = :g AND action = :a", a=action)
    return int(rows[0]["n"])


# --- level roles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_safe_role_becomes_a_level_reward_after_its_preview(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    level = 2 if width == 1280 else 3
    new_reward = rules.safe not in await _rewards(rules)
    before_audit = await _audit(rules, "level_role.upsert")
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width)
    try:
        await page.locator("#lr-role").select_option(label="@Regular")
        await page.locator("#lr-level").fill(str(level))
        await page.get_by_role("button", name="Preview reward").click()
        panel = page.locator("#reward-form [data-step]")
        await panel.wait_for(state="visible")
        text = await panel.text_content() or ""
        assert "This reward would do this now" in text and "members affected" in text and "adds" in text
        if new_reward:  # members above the level gain it: the sample names them and the role (not its id)
            sample = panel.locator("table tbody tr")
            assert await sample.count() >= 1
            assert "@Regular" in (await sample.first.text_content() or "")
        # The preview wrote nothing.
        assert (await _rewards(rules)).get(rules.safe) != level
        assert await _audit(rules, "level_role.upsert") == before_audit
        problems = await check(page, visit, "level-roles-preview", width)
        assert problems == [], "\n".join(problems)

        await panel.get_by_role("button", name="Confirm").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        assert (await _rewards(rules))[rules.safe] == level
        assert await _audit(rules, "level_role.upsert") == before_audit + 1
        row = page.locator("table.rewards tr", has_text="@Regular")
        assert await row.locator("td").first.text_content() == str(level)
        assert await row.locator(".status-ok").count() == 1
        problems = await check(page, visit, "level-roles", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_administrator_role_is_refused_with_the_reason_beside_the_field(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    before = (await _rewards(rules), await _audit(rules, "level_role.upsert"))
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width, "dark")
    try:
        option = page.locator(f'#lr-role option[value="{ROLE_ADMIN_ID}"]')
        assert "Administrator" in (await option.text_content() or "")  # marked, yet selectable
        await page.locator("#lr-role").select_option(str(ROLE_ADMIN_ID))
        await page.locator("#lr-level").fill("1")
        await page.get_by_role("button", name="Preview reward").click()
        reason = page.locator("#lr-role-err")
        await reason.wait_for(state="visible")
        assert "Administrator" in (await reason.text_content() or "")
        assert await page.locator("#lr-role").get_attribute("aria-invalid") == "true"
        assert await page.locator("#reward-form [data-step]").is_hidden()
        assert (await _rewards(rules), await _audit(rules, "level_role.upsert")) == before
        problems = await check(page, visit, "level-roles-refused", width, "dark")
        # The refused request itself is logged by Chromium as a failed resource (400): that is the point here.
        assert [p for p in problems if "console error" not in p] == [], "\n".join(problems)
    finally:
        await context.close()


# --- XP rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_channel_override_added_through_the_picker_is_listed(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    event, xp = ("reaction_given", 2.5) if width == 1280 else ("thread_create", 0.25)
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/xp-rules", width)
    try:
        await page.locator("#ov-channel").select_option(label="#help (text)")
        await page.locator("#ov-event").select_option(event)
        await page.locator("#ov-xp").fill(str(xp))
        await page.locator("#ov-stars").fill("1.5")
        await page.locator("#ov-reason").fill("Helping out counts double")
        await page.get_by_role("button", name="Save override").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        got = await rules.api("GET", "/channel-overrides", params={"channel_id": str(rules.channel)})
        mine = [o for o in got.body["items"] if o["event_type"] == event]
        assert [(o["xp_multiplier"], o["star_multiplier"], o["reason"]) for o in mine] == [
            (xp, 1.5, "Helping out counts double")
        ]
        row = page.locator("table.rules tr", has_text="#help").filter(has_text=f"×{xp}")
        assert await row.count() == 1
        assert "Helping out counts double" in (await row.text_content() or "")
        problems = await check(page, visit, "xp-rules", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_explain_box_shows_the_final_multiplier(browser: Any, rules: RulesWorld, width: int) -> None:
    general = simulator_of(rules.rt).channel_id("general")
    xp = 3.0 if width == 1280 else 4.0
    put = await rules.api(
        "PUT", f"/channel-overrides/{general}/message", json={"xp_multiplier": xp, "star_multiplier": 1}
    )
    assert put.status in (200, 201), put.body

    async def cached() -> bool:  # the config cache reloads on the NOTIFY of the change
        got = await rules.api("GET", "/rewards/explain", params={"channel_id": str(general), "event_type": "message"})
        return bool(got.status == 200 and got.body["final_multiplier"]["xp"] == xp)

    await wait_for(cached)
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/xp-rules", width)
    try:
        await page.locator("#ex-channel").select_option(label="#general (text)")
        await page.locator("#ex-event").select_option("message")
        await page.locator("#ex-member").select_option(index=1)
        await page.get_by_role("button", name="Explain").click()
        await page.locator("#explain-result").wait_for(state="visible")
        assert await page.locator('[data-final="xp"]').text_content() == f"×{xp:g}"
        matched = page.locator("table.steps tr.matched")
        assert await matched.count() == 1
        assert "Override on the channel" in (await matched.text_content() or "")
        assert "#general" in (await matched.text_content() or "")
        problems = await check(page, visit, "xp-rules-explain", width)
        assert problems == [], "\n".join(problems)
        # A question the twin refuses is answered in the box, with the rest of the page intact.
        response = await page.goto(rules.world.base + CONSOLE + "/xp-rules?channel_id=12345&event_type=message")
        assert response is not None and response.status == 200
        assert "Unknown channel" in (await page.locator(".explain-error").text_content() or "")
        assert await page.locator("#override-form").count() == 1
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_removing_a_reward_shows_its_preview_before_the_confirm(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    assert (await rules.api("PUT", f"/level-roles/{rules.safe}", json={"level": 7})).status in (200, 201)
    before_audit = await _audit(rules, "level_role.delete")
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width)
    try:
        await page.get_by_role("button", name="Remove the reward @Regular").click()
        panel = page.locator(f"#remove-{rules.safe} [data-step]")
        await panel.wait_for(state="visible")
        assert "Removing @Regular would do this now" in (await panel.text_content() or "")
        assert rules.safe in await _rewards(rules)  # the preview removed nothing
        await panel.get_by_role("button", name="Remove reward").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        assert rules.safe not in await _rewards(rules)
        assert await _audit(rules, "level_role.delete") == before_audit + 1
        assert await page.locator("table.rewards tr", has_text="@Regular").count() == 0
        assert visit.page_errors == [] and visit.console_errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_mode_change_shows_its_preview_before_the_confirm(browser: Any, rules: RulesWorld, width: int) -> None:
    async def mode() -> str:
        got = await rules.api("GET", "/level-roles")
        return str(got.body["mode"])

    patch = await rules.api("PATCH", "/settings", json={"values": {"level_roles.mode": "stack"}})
    assert patch.status == 200, patch.body
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width)
    try:
        await page.locator("#f-level_roles-mode").select_option("replace")
        await page.get_by_role("button", name="Preview mode change").click()
        panel = page.locator("#mode-form [data-step]")
        await panel.wait_for(state="visible")
        assert "Changing the mode would do this now" in (await panel.text_content() or "")
        assert await mode() == "stack"
        await panel.get_by_role("button", name="Change mode").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        assert await mode() == "replace"
        assert visit.page_errors == [] and visit.console_errors == []
    finally:
        await context.close()
        await rules.api("PATCH", "/settings", json={"values": {"level_roles.mode": "stack"}})


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_rule_on_a_removed_channel_stays_listed_and_flagged(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    sim = simulator_of(rules.rt)
    name = f"old-news-{width}"
    channel = int(await sim.create_channel(name))

    async def channel_state(deleted: bool) -> bool:
        rows = await query(
            rules.rt,
            "SELECT deleted_at IS NOT NULL AS gone FROM guild_channels WHERE guild_id = :g AND channel_id = :c",
            c=channel,
        )
        return bool(rows) and rows[0]["gone"] is deleted

    await wait_for(lambda: channel_state(False), timeout=20)
    put = await rules.api("PUT", f"/no-xp/channel/{channel}", json={"reason": "archived"})
    assert put.status == 201, put.body
    await sim.delete_channel(channel)
    await wait_for(lambda: channel_state(True), timeout=20)
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/xp-rules", width)
    try:
        row = page.locator("#no-xp table.rules tr", has_text=f"#{name}")
        assert await row.count() == 1
        assert await row.locator(".status", has_text="removed").count() == 1
        assert await page.locator(f'#nc-target option[value="{channel}"]').count() == 0  # not offered any more
        await row.get_by_role("button", name=f"Remove no-XP from #{name}").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        got = await rules.api("GET", "/no-xp")
        assert str(channel) not in {i["target_id"] for i in got.body["items"]}
        assert visit.page_errors == [] and visit.console_errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_sync_now_shows_its_preview_before_the_job_is_queued(browser: Any, rules: RulesWorld, width: int) -> None:
    async def syncs(*statuses: str) -> int:
        rows = await query(
            rules.rt,
            "SELECT count(*) AS n FROM jobs WHERE guild_id = :g AND kind = 'level_role_sync' AND status = ANY(:s)",
            s=list(statuses),
        )
        return int(rows[0]["n"])

    async def idle() -> bool:
        return await syncs("queued", "running") == 0

    await wait_for(idle, timeout=30)  # an earlier change's sync has finished (the runner polls every 5 s)
    before = await syncs("queued", "running", "succeeded", "failed", "cancelled")
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width)
    try:
        await page.get_by_role("button", name="Sync now").click()
        panel = page.locator("#sync-form [data-step]")
        await panel.wait_for(state="visible")
        assert "A sync now would do this" in (await panel.text_content() or "")
        assert await syncs("queued", "running", "succeeded", "failed", "cancelled") == before
        await panel.get_by_role("button", name="Start sync").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        assert await syncs("queued", "running", "succeeded", "failed", "cancelled") == before + 1
        assert visit.page_errors == [] and visit.console_errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_role_multiplier_out_of_range_is_refused_beside_its_field_then_saved(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    stars = 2.0 if width == 1280 else 3.0
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/xp-rules", width, "dark")
    try:
        await page.locator("#rm-role").select_option(label="@Regular")
        await page.locator("#rm-xp").fill("11")
        await page.locator("#rm-stars").fill(str(stars))
        await page.get_by_role("button", name="Save role multiplier").click()
        error = page.locator("#rm-xp-err")
        await error.wait_for(state="visible")
        assert "10" in (await error.text_content() or "")
        got = await rules.api("GET", "/role-multipliers")
        assert [i for i in got.body["items"] if int(i["role_id"]) == rules.safe and i["star_multiplier"] == stars] == []

        await page.locator("#rm-xp").fill("1.5")
        await page.get_by_role("button", name="Save role multiplier").click()
        await wait_for(lambda: page.locator("[data-flash]").is_visible())
        got = await rules.api("GET", "/role-multipliers")
        mine = [
            (i["xp_multiplier"], i["star_multiplier"]) for i in got.body["items"] if int(i["role_id"]) == rules.safe
        ]
        assert mine == [(1.5, stars)]
        row = page.locator("#roles table.rules tr", has_text="@Regular")
        assert "×1.5" in (await row.text_content() or "") and f"×{stars:g}" in (await row.text_content() or "")
        assert visit.page_errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_reward_the_bot_cannot_give_shows_its_problem_in_words(
    browser: Any, rules: RulesWorld, width: int
) -> None:
    """A safe role above the bot's own role may be mapped by the owner (§13: stored with its problem, fixable on
    Discord); the page says what is wrong and what to do, beside the reward."""
    sim = simulator_of(rules.rt)
    guild = sim.world.guilds[GUILD]
    bot_position = max(r.position for r in guild.roles.values())
    high = int(await sim.create_role(f"Above the bot {width}", position=bot_position + 1))

    async def seen() -> bool:
        rows = await query(rules.rt, "SELECT 1 FROM guild_roles WHERE guild_id = :g AND role_id = :r", r=high)
        return bool(rows) and _bot_sees(rules.rt, high)

    await wait_for(seen, timeout=20)
    put = await rules.api("PUT", f"/level-roles/{high}", json={"level": 9})
    assert put.status == 201, put.body
    assert put.body["problem"] == "role_above_bot"
    context, page, visit = await sign_in(browser, rules.world, CONSOLE + "/level-roles", width)
    try:
        row = page.locator("table.rewards tr", has_text=f"@Above the bot {width}")
        assert await row.locator(".status-failed").text_content() == "role above bot"
        assert "Move the bot's role above it" in (await row.locator(".problem").text_content() or "")
        problems = await check(page, visit, "level-roles-problem", width)
        assert problems == [], "\n".join(problems)
    finally:
        await context.close()
        assert (await rules.api("DELETE", f"/level-roles/{high}")).status == 204
