"""The member pages over real HTTP (SPEC §28): status, headers, cache policy, privacy, ranks equal to the JSON twin.

No browser here (tests/integration/test_web_browser.py drives Chromium): these checks read the served HTML and
headers, so they run everywhere.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape

import pytest

from synapse_async.api.card import card_path
from synapse_async.api.public_stats import ANONYMOUS_NAME
from synapse_async.web.site import content_security_policy
from tests.api_support import base, call, login
from tests.conftest import create_database, drop_database
from tests.pipeline_support import GUILD, pipeline_runtime, set_settings, settle
from tests.support import wait_for
from tests.web_support import HOSTILE_NAMES, WebWorld, web_world

G = f"/g/{GUILD}"
CSP = content_security_policy("https://cdn.discordapp.com")


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[WebWorld]:
    async with web_world(fresh_database) as w:
        yield w


def pages(w: WebWorld) -> list[str]:
    return [
        "/",
        G,
        f"{G}?by=stars&season=lifetime",
        f"{G}/members/{w.active[0]}",
        f"{G}/achievements",
        f"{G}/seasons",
        f"{G}/activity?days=7",
    ]


async def test_every_page_answers_with_the_security_headers_and_public_caching(world: WebWorld) -> None:
    for path in pages(world):
        reply = await call("GET", base(world.rt) + path)
        assert reply.status == 200, (path, reply.body)
        assert reply.headers["Content-Type"].startswith("text/html")
        assert reply.headers["Content-Security-Policy"] == CSP
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert reply.headers["Cache-Control"] == "public, max-age=10", path
        html = reply.body
        assert html.count("<h1") == 1, path
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, f"inline script on {path}"
        assert " on" not in re.sub(r'"[^"]*"', '""', html).lower().replace(" one", ""), f"inline handler on {path}"
        assert 'property="og:title"' in html and 'property="og:url" content="http://' in html, path
        assert re.search(r'property="og:image" content="https?://', html), path
        assert 'name="twitter:card"' in html, path


async def test_a_signed_in_member_gets_private_pages_with_their_pinned_row(world: WebWorld) -> None:
    me = world.active[3]
    session = await login(world.rt, me)
    reply = await call("GET", base(world.rt) + G, headers={"Cookie": f"synapse_token={session.token}"})
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "private, no-store"
    twin = await call("GET", base(world.rt) + f"/api/guilds/{GUILD}/leaderboard", params={"user_id": str(me)})
    mine = twin.body["member"]
    assert mine is not None and mine["user_id"] == str(me)
    assert f"You: #{mine['rank']}" in reply.body
    anonymous = await call("GET", base(world.rt) + G)
    assert "You: #" not in anonymous.body


async def test_leaderboard_ranks_and_order_equal_the_json_twin(world: WebWorld) -> None:
    for by in ("xp", "stars", "gold"):
        page = await call("GET", base(world.rt) + G, params={"by": by, "season": "lifetime"})
        twin = await call(
            "GET", base(world.rt) + f"/api/guilds/{GUILD}/leaderboard",
            params={"by": by, "season": "lifetime", "page_size": "50"},
        )  # fmt: skip
        shown = [int(n.replace(",", "")) for n in re.findall(r'class="rank-n">#([0-9,]+)<', page.body)]
        assert shown == [item["rank"] for item in twin.body["items"]], by
        names = [unescape(n) for n in re.findall(r'class="name[^"]*"[^>]*><bdi>([^<]*)</bdi>', page.body)]
        assert names == [item["display_name"] for item in twin.body["items"]], by


async def test_hostile_names_are_escaped_text(world: WebWorld) -> None:
    page = await call("GET", base(world.rt) + G, params={"season": "lifetime"})
    for name in HOSTILE_NAMES:
        escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
        assert escaped in page.body, name
    assert "<img src=x" not in page.body and "<script>alert" not in page.body


async def test_a_private_member_is_anonymous_everywhere_and_their_profile_is_404(world: WebWorld) -> None:
    hidden = world.private
    board = await call("GET", base(world.rt) + f"/api/guilds/{GUILD}/leaderboard", params={"season": "lifetime"})
    anonymous = [i for i in board.body["items"] if i["display_name"] == ANONYMOUS_NAME]
    assert len(anonymous) == 1 and anonymous[0]["user_id"] is None and anonymous[0]["avatar_url"] is None
    assert str(hidden) not in str(board.body)
    for path in (f"/api/guilds/{GUILD}/members/{hidden}", f"/api/guilds/{GUILD}/activity/daily?user_id={hidden}"):
        assert (await call("GET", base(world.rt) + path)).status == 404, path
    recent = await call("GET", base(world.rt) + f"/api/guilds/{GUILD}/achievements/recent")
    assert str(hidden) not in str(recent.body) and ANONYMOUS_NAME in str(recent.body)
    profile = await call("GET", base(world.rt) + f"{G}/members/{hidden}")
    assert profile.status == 404 and "Page not found" in profile.body
    page = await call("GET", base(world.rt) + G, params={"season": "lifetime"})
    assert str(hidden) not in page.body and ANONYMOUS_NAME in page.body
    hall = await call("GET", base(world.rt) + f"{G}/seasons")
    assert str(hidden) not in hall.body


async def test_unknown_things_are_the_404_page_and_assets_are_immutable(world: WebWorld) -> None:
    bad_ids = ("/g/99999999999999999999", "/g/٣", f"{G}/members/{'9' * 30}", f"{G}/members/²")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/g/1", f"{G}/members/1", f"{G}/nothing-here", "/nowhere", *bad_ids):
        reply = await call("GET", base(world.rt) + path, headers=browser if path == "/nowhere" else {})
        assert reply.status == 404, path
        assert "Page not found" in reply.body and 'href="/"' in reply.body, path
        assert reply.headers["Content-Security-Policy"] == CSP
    profile = await call("GET", base(world.rt) + f"{G}/members/{world.active[0]}")
    card = f"/api/guilds/{GUILD}/members/{world.active[0]}/card.png"
    assert f'property="og:image" content="{base(world.rt)}{card}"' in profile.body
    assert f'src="{card}"' in profile.body
    api_client = await call("GET", base(world.rt) + "/nowhere")  # not a browser: the uniform JSON error body
    assert api_client.status == 404 and api_client.body["error"]["code"] == "not_found"
    bad = await call("GET", base(world.rt) + G, params={"by": "nonsense"})
    assert bad.status == 400 and "<h1>" in bad.body
    home = await call("GET", base(world.rt) + "/")
    css = re.search(r'href="(/static/app\.[0-9a-f]{12}\.css)"', home.body)
    assert css is not None
    asset = await call("GET", base(world.rt) + css.group(1))
    assert asset.status == 200 and asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (await call("GET", base(world.rt) + "/static/app.css")).status == 404
    assert 'href="/api/auth/login?next=/"' in home.body
    theme = await call("GET", base(world.rt) + f"{G}/theme.css")
    assert theme.status == 200 and theme.headers["Content-Type"].startswith("text/css")
    assert re.fullmatch(r":root\{--accent:#[0-9a-f]{6};--on-accent:#(?:ffffff|000000)\}\n", theme.body)


async def test_a_guild_with_public_pages_off_is_404(world: WebWorld) -> None:
    await set_settings(world.rt, {"public_api.enabled": False})
    try:
        for path in pages(world)[1:]:
            reply = await call("GET", base(world.rt) + path)
            assert reply.status == 404, path
            assert "Page not found" in reply.body
        home = await call("GET", base(world.rt) + "/")
        assert G not in home.body
    finally:
        await set_settings(world.rt, {"public_api.enabled": True})


async def test_pages_are_503_while_the_service_starts_or_stops(world: WebWorld) -> None:
    lifecycle = world.rt.components.lifecycle
    lifecycle.api_open = False
    try:
        for path in pages(world):
            reply = await call("GET", base(world.rt) + path)
            assert reply.status == 503, path
            assert "Try again in a moment" in reply.body and reply.headers["Cache-Control"] == "no-store"
    finally:
        lifecycle.api_open = True
    assert (await call("GET", base(world.rt) + G)).status == 200


async def test_public_base_url_makes_the_open_graph_links(pg_server_url: str) -> None:
    """`PUBLIC_BASE_URL` set: og:url and og:image are absolute on it (what members open), not on the request's
    host (the link previews of a server behind a proxy would otherwise point at the proxy's upstream address)."""
    root = "https://levels.example.org/synapse"
    database = await create_database(pg_server_url)
    try:
        async with pipeline_runtime(database, 3, PUBLIC_RATE_LIMIT_PER_MINUTE="0", PUBLIC_BASE_URL=root) as rt:
            sim = rt.simulator
            assert sim is not None
            channel = int(await sim.create_channel("og-test", "text"))
            await wait_for(lambda: channel in rt.components.require_cache().guild(GUILD).channels)
            someone = sim.member_ids()[0]
            await sim.message(someone, channel, "a message long enough to be paid for by the pipeline")
            await settle(rt)
            board = await call("GET", base(rt) + G)
            assert board.status == 200
            assert f'property="og:url" content="{root}{G}"' in board.body
            assert f'property="og:image" content="{root}/static/' in board.body
            profile = await call("GET", base(rt) + f"{G}/members/{someone}")
            assert profile.status == 200
            card = card_path(GUILD, someone)
            assert f'property="og:image" content="{root}{card}"' in profile.body
            assert f'property="og:url" content="{root}{G}/members/{someone}"' in profile.body
            assert base(rt) not in profile.body
    finally:
        await drop_database(pg_server_url, database)
