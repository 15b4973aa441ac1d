"""The rank card (SPEC §29) through the real server, PostgreSQL, the simulator and the real hikari client.

A small local CDN stands in for Discord's: it serves the members' avatars in one colour and the default avatars in
another, can be switched to fail, and can hold requests back, which is how a burst past the render bound is made
without timing. Activity comes through the simulator's gateway into the pipeline, never written into tables.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from synapse_async.api.card import card_path
from synapse_async.bot.commands.rank import BOTS_MESSAGE, CARD_FILENAME
from synapse_async.card.render import AVATAR, AVATAR_X, AVATAR_Y, BAR_TOP, TEXT_X
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_BOT_ID
from tests.api_support import base
from tests.pipeline_support import ALICE, BOB, CAROL, GUILD, member, pipeline_runtime, set_settings, settle
from tests.support import wait_for

OWN_AVATAR = (20, 40, 220)
DEFAULT_AVATAR = (30, 200, 60)
EPHEMERAL = 64


def png_of(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Cdn:
    """`/avatars/…` in OWN_AVATAR, `/embed/avatars/…` in DEFAULT_AVATAR; `failing` answers 500 for own avatars."""

    failing: bool = False
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    hits: list[str] = field(default_factory=list)
    waiting: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if not self.gate.is_set():
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        if request.path.startswith("/embed/avatars/"):
            return web.Response(body=png_of(DEFAULT_AVATAR), content_type="image/png")
        if self.failing:
            return web.Response(status=500)
        return web.Response(body=png_of(OWN_AVATAR), content_type="image/png")


@dataclass
class World:
    rt: Runtime
    cdn: Cdn
    channel: int


@pytest.fixture(scope="module")
async def world(fresh_database: str) -> AsyncIterator[World]:
    cdn = Cdn()
    cdn.gate.set()
    app = web.Application()
    app.router.add_get("/{tail:.*}", cdn.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    env = {
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "0",
        "DISCORD_CDN_URL": f"http://127.0.0.1:{port}",
        "CARD_RENDER_CONCURRENCY": "1",
        "CARD_RENDER_QUEUE": "0",
    }
    try:
        async with pipeline_runtime(fresh_database, 12, **env) as rt:
            sim = rt.simulator
            assert sim is not None
            cache = rt.components.require_cache()
            channel = int(await sim.create_channel("card-test", "announcement"))
            await wait_for(lambda: channel in cache.guild(GUILD).channels)
            for user, count in ((ALICE, 3), (BOB, 1), (CAROL, 1)):
                for i in range(count):
                    await sim.message(user, channel, f"message number {i} from a member of the guild, long enough")
            await settle(rt)
            await sim.leave(CAROL)
            await wait_for(lambda: _left(rt, CAROL))
            yield World(rt, cdn, channel)
    finally:
        await runner.cleanup()


async def _left(rt: Runtime, user: int) -> bool:
    row = await member(rt, user)
    return row is not None and row["left_at"] is not None


async def pay_a_message(world: World, user: int) -> None:
    """One more paid message from `user`, waited for until the member's XP shows it."""
    sim = world.rt.simulator
    assert sim is not None
    row = await member(world.rt, user)
    xp = 0 if row is None else row["xp"]
    await sim.message(user, world.channel, f"another message from {user}, long enough to be paid for")
    await settle(world.rt)

    async def paid() -> bool:
        now = await member(world.rt, user)
        return now is not None and now["xp"] > xp

    await wait_for(paid)


@dataclass
class Got:
    status: int
    headers: dict[str, str]
    body: bytes


async def get(
    world: World, user: int, headers: dict[str, str] | None = None, *, fresh: bool = True, **params: str
) -> Got:
    """GET the card; `fresh` empties the public micro-cache first (a few seconds, like every public read), so the
    answer reflects the member's state now."""
    assert world.rt.api is not None
    if fresh:
        world.rt.api.micro_cache.clear()
    url = base(world.rt) + card_path(GUILD, user)
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}, params=params) as resp:
        return Got(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())


def image(got: Got) -> Image.Image:
    return Image.open(io.BytesIO(got.body)).convert("RGB")


def avatar_pixel(img: Image.Image) -> tuple[int, int, int]:
    pixel = img.getpixel((AVATAR_X + AVATAR // 2, AVATAR_Y + AVATAR // 2))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


async def test_the_card_is_a_png_with_an_etag_and_a_matching_request_is_a_304(world: World) -> None:
    got = await get(world, ALICE)
    assert got.status == 200
    assert got.headers["content-type"] == "image/png"
    assert got.headers["cache-control"] == "public, max-age=60"
    etag = got.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    img = image(got)
    assert img.size == (934, 282)
    assert avatar_pixel(img) == OWN_AVATAR  # the member's avatar, fetched from the CDN

    cards = world.rt.cards
    assert cards is not None
    renders = cards.renders
    again = await get(world, ALICE, headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert again.headers["etag"] == etag
    cached = await get(world, ALICE)
    assert cached.status == 200 and cached.body == got.body and cached.headers["etag"] == etag
    micro = await get(world, ALICE, fresh=False)  # the same URL again: from the public micro-cache
    assert micro.status == 200 and micro.body == got.body and micro.headers["etag"] == etag
    assert micro.headers["content-type"] == "image/png"
    micro_304 = await get(world, ALICE, headers={"If-None-Match": etag}, fresh=False)
    assert micro_304.status == 304
    assert cards.renders == renders  # neither the 304s nor the cached answers drew anything
    other = await get(world, ALICE, headers={"If-None-Match": '"something-else"'})
    assert other.status == 200


async def test_a_new_state_is_a_new_card(world: World) -> None:
    before = await get(world, BOB)
    await pay_a_message(world, BOB)
    after = await get(world, BOB)
    assert after.status == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert after.body != before.body


async def test_unknown_members_bots_and_members_who_left_are_404(world: World) -> None:
    for user in (123456789012345678, SANDBOX_BOT_ID, CAROL):
        got = await get(world, user)
        assert got.status == 404, user
        assert got.headers["content-type"].startswith("application/json")
    bad = await get(world, ALICE, theme="purple")
    assert bad.status == 400


async def test_theme_and_accent_settings_change_the_card(world: World) -> None:
    dark = await get(world, ALICE)
    light = await get(world, ALICE, theme="light")
    assert light.status == 200 and light.headers["etag"] != dark.headers["etag"]
    assert image(light).getpixel((20, 20)) != image(dark).getpixel((20, 20))

    await set_settings(world.rt, {"card.accent": "#ff0000", "card.theme": "light"})
    cache = world.rt.components.require_cache()
    await wait_for(lambda: cache.settings(GUILD).raw("card.accent") == "#ff0000")
    red = await get(world, ALICE)
    assert red.headers["etag"] == (await get(world, ALICE, theme="light")).headers["etag"]
    assert image(red).getpixel((TEXT_X + 2, BAR_TOP + 18)) == (255, 0, 0)  # the filled part of the bar
    await set_settings(world.rt, {"card.accent": None, "card.theme": "dark"})
    await wait_for(lambda: cache.settings(GUILD).raw("card.accent") is None)


async def test_a_failing_cdn_gives_the_default_avatar_and_the_card_is_not_kept(world: World) -> None:
    sim = world.rt.simulator
    assert sim is not None
    # A member whose avatar was never fetched, and who has one (seeded members mostly do).
    fresh = next(u for u in sorted(sim.world.guilds[GUILD].members) if u > CAROL and sim.world.user(u).avatar)
    await pay_a_message(world, fresh)
    world.cdn.failing = True
    try:
        got = await get(world, fresh)
        assert got.status == 200
        assert avatar_pixel(image(got)) == DEFAULT_AVATAR
        assert got.headers["etag"].endswith('-f"')  # marked: a stand-in avatar
        hits = len(world.cdn.hits)
        cards = world.rt.cards
        assert cards is not None
        renders = cards.renders
        await get(world, fresh)
        assert cards.renders == renders + 1  # drawn again (the failure is remembered for a minute: no new fetch)
        assert all("/avatars/" not in hit or hit.startswith("/embed/") for hit in world.cdn.hits[hits:])
    finally:
        world.cdn.failing = False


async def test_a_burst_past_the_render_bound_is_503(world: World) -> None:
    """CARD_RENDER_CONCURRENCY=1 and CARD_RENDER_QUEUE=0 here: while one card waits for its avatar, another miss
    is refused with 503 at once, and the first one still completes."""
    await pay_a_message(world, ALICE)
    await pay_a_message(world, BOB)
    world.cdn.gate.clear()
    cards = world.rt.cards
    assert cards is not None
    cards._avatars.clear()  # force a fetch, held back by the CDN's gate
    try:
        first = asyncio.create_task(get(world, ALICE))
        await wait_for(lambda: world.cdn.waiting == 1)
        refused = await get(world, BOB)
        assert refused.status == 503
        assert refused.headers["content-type"].startswith("application/json")
    finally:
        world.cdn.gate.set()
    assert (await first).status == 200


async def test_concurrent_requests_for_one_card_draw_it_once(world: World) -> None:
    """Identical misses share one computation (§19): the second request waits for the first instead of being
    refused by the bound (one render slot, no queue here) or drawing again."""
    await pay_a_message(world, BOB)
    cards, platform = world.rt.cards, world.rt.api
    assert cards is not None and platform is not None
    world.cdn.gate.clear()
    cards._avatars.clear()
    renders = cards.renders
    try:
        first = asyncio.create_task(get(world, BOB))
        await wait_for(lambda: world.cdn.waiting == 1)
        second = asyncio.create_task(get(world, BOB, fresh=False))
        # The second request is waiting on the first one's shared computation (shield adds a done-callback).
        key = "card:" + card_path(GUILD, BOB)
        await wait_for(lambda: bool(getattr(platform.card_inflight.get(key), "_callbacks", None)))
        assert world.cdn.waiting == 1  # and no second avatar fetch or render started
    finally:
        world.cdn.gate.set()
    one, two = await first, await second
    assert one.status == two.status == 200
    assert one.body == two.body
    assert cards.renders == renders + 1


async def test_a_dead_render_worker_is_replaced(world: World) -> None:
    cards = world.rt.cards
    assert cards is not None
    assert (await get(world, ALICE, theme="dark")).status == 200  # the workers are up
    for process in list(cards._pool._processes.values()):  # type: ignore[union-attr]
        process.kill()
        process.join()
    await pay_a_message(world, ALICE)  # a new state: it must be drawn
    got = await get(world, ALICE)
    assert got.status == 200
    assert image(got).size == (934, 282)


async def test_rank_replies_with_the_card_as_an_attachment(world: World) -> None:
    sim = world.rt.simulator
    assert sim is not None
    record = await sim.invoke("rank", user=BOB, options={"member": ALICE})
    assert record.deferred and not record.ephemeral
    message = record.response_message
    assert message is not None
    (attachment,) = message.attachments
    assert attachment.filename == CARD_FILENAME
    assert attachment.content_type == "image/png"
    assert (attachment.width, attachment.height) == (934, 282)
    assert attachment.size > 1000


async def test_rank_refuses_bots_and_members_without_data(world: World) -> None:
    sim = world.rt.simulator
    assert sim is not None
    bot = await sim.invoke("rank", user=ALICE, options={"member": SANDBOX_BOT_ID})
    assert bot.content == BOTS_MESSAGE and bot.ephemeral
    newcomer = max(sim.world.guilds[GUILD].members)
    nobody = await sim.invoke("rank", user=ALICE, options={"member": newcomer}, until=lambda r: bool(r.followups))
    assert nobody.content is not None and nobody.content.endswith("hasn't earned anything yet.")
    assert nobody.ephemeral


async def test_members_with_public_profile_off_have_no_card(world: World) -> None:
    """`public_profile` off (§17.2, the member's own /preferences) → the card is 404 like the profile, also when a
    card of theirs was drawn and kept just before; on again → the card is back."""
    sim = world.rt.simulator
    assert sim is not None
    quiet = next(u for u in sim.member_ids() if u not in (ALICE, BOB, CAROL))
    await pay_a_message(world, quiet)
    assert (await get(world, quiet)).status == 200

    async def preference(value: str) -> None:
        record = await sim.invoke("preferences", user=quiet, options={"setting": "public_profile", "value": value})
        assert f"Public profile: {value}" in str(record.content), record

    await preference("off")
    try:
        hidden = await get(world, quiet)
        assert hidden.status == 404 and hidden.headers["content-type"].startswith("application/json")
        assert (await get(world, quiet, theme="light")).status == 404
    finally:
        await preference("on")
    assert (await get(world, quiet)).status == 200
