"""`GET /sandbox/state` shows what the bot said (SPEC §30), in a module of its own: the announcer's per-channel
throttle must not be spent by other tests' awards before this one's announcement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_OWNER_ID
from tests.support import wait_for

ADMIN = SANDBOX_OWNER_ID


async def test_sandbox_state_shows_every_reply_of_the_bot(app: Runtime) -> None:
    """Public and ephemeral command replies (the latter marked with the one member who sees them) and messages the
    bot posts by itself (a level-up announcement) all appear in `GET /sandbox/state` (SPEC §30)."""
    base = f"http://127.0.0.1:{app.http_port}"
    carol = SANDBOX_FIRST_MEMBER_ID + 2
    async with aiohttp.ClientSession() as http:
        for user, command, options in (
            (carol, "preferences", {"setting": "level_up", "value": "on"}),
            (ADMIN, "award", {"member": str(carol), "xp": 5000, "reason": "sandbox state"}),
            (carol, "profile", {}),
        ):
            body = {"user_id": str(user), "command": command, "options": options}
            async with http.post(f"{base}/sandbox/commands", json=body) as resp:
                assert resp.status == 200, await resp.text()

        async def said() -> list[dict[str, object]]:
            async with http.get(f"{base}/sandbox/state") as resp:
                return list((await resp.json())["bot_messages"])

        await wait_for(lambda: _announced(said, carol), timeout=15)
        messages = await said()
    by_command = {(m["command"], m["kind"]): m for m in messages if m["command"] is not None}
    preferences = by_command[("preferences", "response")]
    assert preferences["ephemeral"] is True and preferences["visible_to"] == str(carol)
    profile = by_command[("profile", "response")]
    assert profile["ephemeral"] is False and profile["visible_to"] is None and profile["embeds"]
    announcements = [m for m in messages if m["kind"] == "message"]
    assert any(str(carol) in str(m["content"]) + str(m["embeds"]) for m in announcements), announcements


async def _announced(said: Callable[[], Awaitable[list[dict[str, object]]]], user: int) -> bool:
    return any(m["kind"] == "message" and str(user) in str(m["embeds"]) for m in await said())
