"""The admin console's browser tests: a guild with members and structure, and a browser signed in the way an admin
signs in — `/admin` → "Sign in with Discord" → the simulator's OAuth page (it approves as the sandbox admin, the
guild's owner) → back on the page the admin wanted (§21.1 `next`).

The admin mutation limit is raised for these modules (they make many changes); its own tests live elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_OWNER_ID
from tests.api_support import base
from tests.browser_support import Visit, open_page, page_problems
from tests.pipeline_support import GUILD, pipeline_runtime, settle

ADMIN_ID = SANDBOX_OWNER_ID
CONSOLE = f"/admin/g/{GUILD}"


@dataclass
class ConsoleWorld:
    rt: Runtime
    members: list[int]

    @property
    def base(self) -> str:
        return base(self.rt)

    @property
    def oauth_origin(self) -> str:
        assert self.rt.simulator is not None
        parts = urlsplit(self.rt.simulator.oauth_url)
        return f"{parts.scheme}://{parts.netloc}"


@contextlib.asynccontextmanager
async def console_world(database_url: str, members: int = 8, **env: str) -> AsyncIterator[ConsoleWorld]:
    """A started sandbox runtime whose members have all posted once (so they have rows, XP and levels); `env`
    overrides configuration (e.g. `JOB_POLL_SECONDS="3600"`: jobs stay queued until a test runs the runner)."""
    settings = {"PUBLIC_RATE_LIMIT_PER_MINUTE": "0", "ADMIN_RATE_LIMIT_PER_MINUTE": "100000", **env}
    async with pipeline_runtime(database_url, members, **settings) as rt:
        sim = rt.simulator
        assert sim is not None
        ids = [m for m in sim.member_ids() if m != ADMIN_ID]
        channels = rt.components.require_cache().guild(GUILD).channels.values()
        channel = next(c.channel_id for c in channels if c.type == "text" and not c.deleted)
        for uid in ids:
            await sim.message(uid, channel, "a perfectly ordinary message from a member of this guild")
        await settle(rt)
        yield ConsoleWorld(rt, ids)


async def sign_in(
    browser: Any, world: ConsoleWorld, path: str, width: int = 1280, scheme: str = "light"
) -> tuple[Any, Any, Visit]:
    """A fresh browser that opens `path`, meets the sign-in page, signs in through the simulator's OAuth page and
    lands back on `path`. The sign-in page's own 401 is the one console error expected and is cleared."""
    context, page, visit = await open_page(browser, world.base, width, scheme, also=(world.oauth_origin,))
    response = await page.goto(world.base + path)
    assert response is not None and response.status == 401, response.status if response else None
    await page.get_by_role("link", name="Sign in with Discord").click()
    await page.wait_for_url(world.base + path)
    await page.wait_for_load_state("networkidle")
    visit.console_errors.clear()  # the 401 of the sign-in page itself
    return context, page, visit


async def check(page: Any, visit: Visit, name: str, width: int, scheme: str = "light") -> list[str]:
    """The shared page checks plus a screenshot `console-<name>-<width>-<scheme>.png`; what the visit recorded is
    cleared afterwards, so the next page of the same visit is judged on its own."""
    problems = await page_problems(page, visit, f"{name} {width}px {scheme}", width, f"console-{name}-{width}-{scheme}")
    for recorded in (visit.console_errors, visit.page_errors, visit.dialogs, visit.foreign):
        recorded.clear()
    return problems
