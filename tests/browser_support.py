"""Browser tests' shared parts: Debian's Chromium through Playwright (one per session, in tests/conftest.py), a
recorded page per test (console errors, page errors, dialogs, foreign requests refused), and the checks every page
gets (one h1, no horizontal scroll at 360 px, no serious or critical axe violation, a screenshot).

Debian's `chromium` is used (`CHROMIUM_PATH` or /usr/bin/chromium; Playwright's own download is not used). Without
a browser the tests skip with the reason — unless `REQUIRE_BROWSER=1` (CI), where a missing browser fails.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"
SHOTS = Path(tempfile.gettempdir()) / "synapse-web-screenshots"
CDN = "cdn.discordapp.com"
# A 1×1 PNG standing in for every avatar the Discord CDN would serve.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAEgwGAfuSU2wAAAABJRU5ErkJggg=="
)
WIDTHS = (1280, 360)
SCHEMES = ("light", "dark")


def missing_browser() -> str | None:
    try:
        import axe_playwright_python  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"playwright / axe-playwright-python not installed ({exc.name})"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)"
    return None


class Visit:
    """One fresh browser context and page, with everything the checks need recorded."""

    def __init__(self, app_origin: str, also: tuple[str, ...] = ()) -> None:
        self.app_origin = app_origin
        self.allowed = {app_origin, *also}
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.requests: list[str] = []

    async def route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in self.allowed or url.startswith("data:"):
            await route.continue_()
        elif parts.netloc == CDN and parts.scheme == "https":
            await route.fulfill(status=200, body=PIXEL, content_type="image/png")
        else:
            self.foreign.append(url)
            await route.abort()


async def open_page(
    browser: Any, origin: str, width: int, scheme: str, cookie: str | None = None, also: tuple[str, ...] = ()
) -> tuple[Any, Any, Visit]:
    """A fresh context and page at `width` px in `scheme`, every request recorded, origins other than `origin`,
    `also` (the simulator's OAuth page) and the Discord CDN (answered locally) refused."""
    visit = Visit(origin, also)
    context = await browser.new_context(
        viewport={"width": width, "height": 900},
        is_mobile=width < 500,
        color_scheme=scheme,
        device_scale_factor=1,
    )
    if cookie is not None:
        await context.add_cookies([{"name": "synapse_token", "value": cookie, "url": origin}])
    page = await context.new_page()

    def console(m: Any) -> None:
        if m.type == "error":
            visit.console_errors.append(f"{m.text} ({m.location.get('url', '')})")

    page.on("console", console)
    page.on("pageerror", lambda e: visit.page_errors.append(str(e)))

    async def dialog(d: Any) -> None:
        visit.dialogs.append(d.message)
        await d.dismiss()

    page.on("dialog", dialog)
    await page.route("**/*", visit.route)
    return context, page, visit


async def page_problems(page: Any, visit: Visit, where: str, width: int, shot: str | None = None) -> list[str]:
    """What is wrong with the page now: h1 count, horizontal scroll at narrow widths, serious/critical axe
    violations, console and page errors, dialogs, foreign requests. Saves a screenshot named `shot` if given."""
    from axe_playwright_python.async_playwright import Axe

    problems: list[str] = []
    h1 = await page.locator("h1").count()
    if h1 != 1:
        problems.append(f"{where}: {h1} h1 elements")
    if width < 500:
        scroll = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll[0] > scroll[1]:
            problems.append(f"{where}: horizontal scroll {scroll}")
    results = await Axe().run(page)
    for violation in results.response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [n["target"] for n in violation["nodes"]][:3]
            problems.append(f"{where}: axe {violation['id']} ({violation['impact']}) {targets}")
    if shot is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    problems += [f"{where}: console error {e}" for e in visit.console_errors]
    problems += [f"{where}: page error {e}" for e in visit.page_errors]
    problems += [f"{where}: dialog {d}" for d in visit.dialogs]
    problems += [f"{where}: foreign request {u}" for u in visit.foreign]
    return problems
