"""The sandbox page `/sandbox` (SPEC §30, §3.5): a person plays the simulated guild in a real Chromium and sees
every reply of the bot appear live; the page exists only in sandbox mode and only for loopback clients.

One sandbox runtime serves the module (real PostgreSQL, simulator, hikari, production commands). Screenshots go to
`<tmp>/synapse-web-screenshots/sandbox-*.png`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.components import Components, Lifecycle
from synapse_async.config import load_config
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from synapse_async.services.member_settings import PREFERENCE_LABELS
from synapse_async.web.app import build_site
from tests.browser_support import SHOTS, open_page
from tests.support import running, wait_for

CAROL = SANDBOX_FIRST_MEMBER_ID + 2


@pytest.fixture(scope="module")
async def rt(fresh_database: str) -> AsyncIterator[Runtime]:
    async with running(fresh_database) as runtime:
        sim = runtime.simulator
        assert sim is not None
        await wait_for(lambda: sim.commands.find("preferences", SANDBOX_GUILD_ID) is not None, timeout=15)
        yield runtime


def _name(rt: Runtime, user_id: int) -> str:
    state = rt.simulator.state() if rt.simulator is not None else {"guilds": []}
    return next(m["display_name"] for m in state["guilds"][0]["members"] if m["user_id"] == str(user_id))


def _base(rt: Runtime) -> str:
    return f"http://127.0.0.1:{rt.http_port}"


async def test_a_member_posts_runs_commands_and_sees_every_reply_live(browser: Any, rt: Runtime) -> None:
    from axe_playwright_python.async_playwright import Axe

    context, page, visit = await open_page(browser, _base(rt), 1280, "light")
    try:
        response = await page.goto(_base(rt) + "/sandbox", wait_until="networkidle")
        assert response is not None and response.status == 200
        headers = await response.all_headers()
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["cache-control"] == "private, no-store"
        assert await page.locator("h1").count() == 1
        await page.select_option("#sb-as", str(CAROL))
        carol = _name(rt, CAROL)

        text = f"hello from the sandbox page {secrets.token_hex(4)}"
        await page.fill("#sb-content", text)
        await page.click("#sb-message button[type=submit]")
        recent = page.locator("#sb-recent li", has_text=text)
        await wait_for(lambda: _count(recent))
        assert carol in (await recent.locator(".sb-meta").text_content() or "")
        await recent.locator("button.sb-react", has_text="⭐").click()
        await wait_for(lambda: _pressed(recent.locator("button.sb-react", has_text="⭐")))

        await page.select_option("#sb-command-name", "profile")
        await page.click("#sb-command button[type=submit]")
        profile = page.locator(".sb-reply", has_text="Reply to /profile")
        await wait_for(lambda: _count(profile), timeout=15)
        assert await profile.locator(".sb-only").count() == 0 and await profile.locator(".sb-embed").count() >= 1

        await page.select_option("#sb-command-name", "preferences")
        await page.select_option("#sb-opt-0", label=PREFERENCE_LABELS["level_up"])
        await page.select_option("#sb-opt-1", label="off")
        await page.click("#sb-command button[type=submit]")
        preferences = page.locator(".sb-reply.sb-ephemeral", has_text="Reply to /preferences")
        await wait_for(lambda: _count(preferences), timeout=15)
        only = (await preferences.locator(".sb-only").text_content() or "").strip()
        assert only == f"Only visible to {carol}", only
        assert "Level-up announcements: off" in (await preferences.text_content() or "")

        # A command the bot does not know is a 400 whose detail is shown, never a silent wait.
        status = await page.evaluate(
            "fetch('/sandbox/commands', {method: 'POST', headers: {'Content-Type': 'application/json'},"
            " body: JSON.stringify({user_id: '1', command: 'nope'})}).then(r => r.status)"
        )
        assert status == 400

        await page.select_option("#sb-voice-channel", index=0)
        await page.click("#sb-voice button[type=submit]")
        await wait_for(lambda: _has(page.locator("#sb-in-voice"), carol))
        await page.click("#sb-leave")
        await wait_for(lambda: _has(page.locator("#sb-in-voice"), "Nobody"))

        results = await Axe().run(page)
        serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "sandbox-1280.png"), full_page=True)
        console = [e for e in visit.console_errors if "/sandbox/commands" not in e]  # the 400 above, logged
        assert console == [] and visit.page_errors == [] and visit.foreign == [] and visit.dialogs == []
    finally:
        await context.close()


async def test_the_page_reads_at_360_px_and_in_the_dark(browser: Any, rt: Runtime) -> None:
    from axe_playwright_python.async_playwright import Axe

    context, page, visit = await open_page(browser, _base(rt), 360, "dark")
    try:
        response = await page.goto(_base(rt) + "/sandbox", wait_until="networkidle")
        assert response is not None and response.status == 200
        scroll = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll[0] <= scroll[1], scroll
        results = await Axe().run(page)
        serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "sandbox-360.png"), full_page=True)
        assert visit.console_errors == [] and visit.page_errors == [] and visit.foreign == []
    finally:
        await context.close()


async def _count(locator: Any) -> bool:
    return bool(await locator.count())


async def _pressed(locator: Any) -> bool:
    return bool(await locator.count()) and await locator.first.get_attribute("aria-pressed") == "true"


async def _has(locator: Any, text: str) -> bool:
    return text in (await locator.text_content() or "")


# --- HTTP: the feed without JavaScript, and who may see the page ------------------------------------------------


async def _get(url: str, **kw: Any) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def test_the_feed_and_the_commands_render_without_javascript(rt: Runtime) -> None:
    """An ephemeral reply is in the server-rendered page, marked; `GET /sandbox/state` lists the commands."""
    sim = rt.simulator
    assert sim is not None
    await sim.invoke("preferences", user=CAROL, options={"setting": "awards", "value": "on"})
    status, html, headers = await _get(_base(rt) + "/sandbox")
    assert status == 200 and "Content-Security-Policy" in headers
    assert "Reply to /preferences" in html and "Only visible to <bdi>" in html
    assert "<script>" not in html and " on" + "click=" not in html  # JS only from the static file
    _, body, _ = await _get(_base(rt) + "/sandbox/state")
    import json

    state = json.loads(body)
    by_path = {c["path"]: c for c in state["commands"]}
    options = {o["name"]: o for o in by_path["preferences"]["options"]}
    assert options["setting"]["type"] == "string" and options["setting"]["required"] is True
    assert {c["value"] for c in options["value"]["choices"]} == {"on", "off"}
    assert any(" " in path for path in by_path), sorted(by_path)  # subcommands flattened (e.g. "season start")


@pytest.mark.parametrize("headers", [{"Host": "attacker.example"}, {"X-Forwarded-For": "203.0.113.9"}])
async def test_the_page_is_refused_to_a_foreign_host_or_a_proxied_request(rt: Runtime, headers: dict[str, str]) -> None:
    status, html, _ = await _get(_base(rt) + "/sandbox", headers=headers)
    assert status == 403 and "Only on this machine" in html
    assert "sb-feed" not in html


async def test_the_page_does_not_exist_outside_sandbox_mode() -> None:
    config = load_config({"HTTP_PORT": "0", "DISCORD_TOKEN": "a.b.c", "JWT_SECRET": secrets.token_urlsafe(48)})
    runner = web.AppRunner(build_site(config, Components(Lifecycle(api_open=True)), HttpDatabaseGate(1, 0.1)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        status, html, _ = await _get(f"http://127.0.0.1:{runner.addresses[0][1]}/sandbox")
        assert status == 404 and "sb-feed" not in html
    finally:
        await runner.cleanup()
