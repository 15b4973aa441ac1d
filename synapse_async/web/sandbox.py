"""The sandbox page `/sandbox` (SPEC §30, §3.5): a small chat view of the simulated guild for a person at this machine.

Pick a member to act as, post messages, react, join voice, run any slash command with its options, and watch every
reply of the bot appear — public, ephemeral (marked as only visible to that member), follow-ups, announcements. The
page is a thin view over `GET /sandbox/state` and the JSON control endpoints (`api/sandbox.py`): it renders the
state once on the server, so the feed reads without JavaScript, and `static/sandbox.js` posts to the endpoints and
polls the state every second. It exists under exactly the endpoints' rule (`_simulator`): sandbox mode only (404
otherwise) and only for a loopback client that addressed this machine as local (403 otherwise).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from synapse_async.api.errors import ApiError
from synapse_async.api.sandbox import _simulator
from synapse_async.web.site import Site, page, render

TEXT_CHANNELS: Final = ("text", "announcement")
VOICE_CHANNELS: Final = ("voice", "stage")
EMOJIS: Final = ("👍", "⭐", "🎉")
"""Reactions offered on every message (⭐ is the default star emoji); reactions already on a message are added."""


def view(state: dict[str, Any], acting: str | None) -> dict[str, Any]:
    """The template's context from the simulator's state: the default guild's channels, members and voice, the
    commands, the recent messages and the bot's replies with names resolved."""
    empty: dict[str, Any] = {"name": "", "channels": [], "members": [], "voice": []}
    guild: dict[str, Any] = state["guilds"][0] if state["guilds"] else empty
    members = [m for m in guild["members"] if not m["bot"]]
    names = {m["user_id"]: m["display_name"] for m in guild["members"]}
    channels = {c["id"]: c["name"] for c in guild["channels"]}
    ids = {m["user_id"] for m in members}
    return {
        "guild_name": guild["name"],
        "members": members,
        "acting": acting if acting in ids else (members[0]["user_id"] if members else None),
        "text_channels": [c for c in guild["channels"] if c["type"] in TEXT_CHANNELS],
        "voice_channels": [c for c in guild["channels"] if c["type"] in VOICE_CHANNELS],
        "voice": [{**v, "name": names.get(v["user_id"], v["user_id"])} for v in guild["voice"]],
        "names": names,
        "channels": channels,
        "commands": state.get("commands", []),
        "recent": state.get("recent_messages", []),
        "replies": state.get("bot_messages", []),
        "emojis": EMOJIS,
    }


@page
async def sandbox(request: web.Request, site: Site) -> web.StreamResponse:
    """The page; `?as=<user id>` preselects the member to act as."""
    try:
        sim = _simulator(request)
    except ApiError as exc:
        if exc.status != 403:
            raise
        return _refused(request)
    context = view(sim.state(), request.query.get("as"))
    context |= {
        "guild": None,
        "page_class": "page-sandbox",
        "og": {"title": "Sandbox", "description": "Play the simulated guild as any member.", "url": "", "image": None},
    }
    return render(request, "sandbox.html", context, private=True)


def _refused(request: web.Request) -> web.Response:
    text = "The sandbox answers only this machine, addressed as localhost or a loopback address, not through a proxy."
    response = render(
        request,
        "error.html",
        {"status": 403, "title": "Only on this machine", "text": text, "guild": None},
        private=True,
    )
    response.set_status(403)
    return response


def install(app: web.Application) -> None:
    app.router.add_get("/sandbox", sandbox, name="page_sandbox")
