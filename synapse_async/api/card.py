"""`GET /api/guilds/{guild_id}/members/{user_id}/card.png` (SPEC §29): the rank card under the public rules.

Thin: the member is read by the public profile itself (`public_stats.public_member`: same queries, same rank,
same 404s for unknown members, bots and members who left), turned into a `CardState`, and the card service
answers from its cache or renders off the loop. The ETag is the state's hash, so a matching `If-None-Match` is a
304 without rendering. The profile page links this URL as its `og:image` (`card_path`).
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

from aiohttp import web

from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.platform import CachedAnswer
from synapse_async.api.public import public_guild
from synapse_async.api.public_stats import MemberPath, Profile, public_member
from synapse_async.api.schema import StrictModel
from synapse_async.rewards.config import GuildConfig
from synapse_async.services.card import CARD_MAX_AGE, CardBusy, CardService, CardState, default_avatar_url, etag_matches

api = Api()
CARD_PATH: Final = "/api/guilds/{guild_id}/members/{user_id}/card.png"


def card_path(guild_id: int, user_id: int) -> str:
    """The card's path, for pages (`og:image` = `PUBLIC_BASE_URL` + this) and embeds."""
    return CARD_PATH.format(guild_id=guild_id, user_id=user_id)


class CardQuery(StrictModel):
    theme: Literal["dark", "light"] | None = None
    """Overrides `card.theme` (a page may follow the reader's colour scheme)."""


def _service(call: Call[MemberPath, CardQuery, None]) -> CardService:
    service = call.platform.cards
    if service is None:
        raise ApiError.unavailable("Rank cards are not available yet; try again shortly.")
    return service


@api.route(
    "GET", CARD_PATH, summary="A member's rank card (PNG, 934 × 282)", tag="public", access=Access.PUBLIC,
    path_model=MemberPath, query=CardQuery,
    responses={200: "The card, `image/png`, with an `ETag`", 304: "Not modified (`If-None-Match` matched)"},
)  # fmt: skip
async def member_card(call: Call[MemberPath, CardQuery, None]) -> web.StreamResponse:
    """The public profile's figures drawn as an image; 404 like the profile; 503 when too many cards queue."""
    service = _service(call)
    guild = public_guild(call)
    # Like every public read (§19): the same URL within the micro-cache window is answered from memory, without
    # the profile's queries, and concurrent misses of one URL share one computation; the ETag still decides
    # between 304 and the bytes.
    platform = call.platform
    key = "card:" + call.request.path_qs
    cached = platform.micro_cache.get(key)
    hit = (cached.body, cached.headers) if cached is not None else None
    if hit is None and (pending := platform.card_inflight.get(key)) is not None:
        shared = await asyncio.shield(pending)
        hit = shared if shared[0] is not None else None  # it ended otherwise: compute this one alone
    if hit is not None:
        return _answer(call, hit[0], hit[1])
    future: asyncio.Future[tuple[bytes | None, dict[str, str]]] = asyncio.get_running_loop().create_future()
    platform.card_inflight[key] = future
    entry: tuple[bytes | None, dict[str, str]] = (None, {})
    try:
        state = await _state(call, service, guild)
        headers = {"Cache-Control": f"public, max-age={CARD_MAX_AGE}", "ETag": state.etag}
        if etag_matches(call.request.headers.get("If-None-Match"), state.etag):
            return web.Response(status=304, headers=headers)  # known without drawing anything
        try:
            card = await service.card(state)
        except CardBusy:
            raise ApiError.unavailable("Too many cards are being drawn; try again in a moment.") from None
        headers["ETag"] = card.etag
        if card.etag == state.etag:  # not drawn with a stand-in avatar
            entry = (card.png, headers)
            platform.micro_cache[key] = CachedAnswer(card.png, headers, asyncio.get_running_loop().time())
        return web.Response(body=card.png, content_type="image/png", headers=headers)
    finally:
        platform.card_inflight.pop(key, None)
        future.set_result(entry)


def _answer(call: Call[MemberPath, CardQuery, None], png: bytes | None, headers: dict[str, str]) -> web.Response:
    if etag_matches(call.request.headers.get("If-None-Match"), headers["ETag"]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=png, content_type="image/png", headers=headers)


async def _state(call: Call[MemberPath, CardQuery, None], service: CardService, guild: GuildConfig) -> CardState:
    """What the card shows, read by the public profile itself (its queries, rank and 404s)."""
    reply = await public_member(call)
    profile = reply.body if isinstance(reply, Reply) else reply
    assert isinstance(profile, Profile), "the public profile answers a Profile or raises"
    settings = guild.settings
    accent = settings.raw("card.accent")
    return CardState(
        guild_id=guild.guild_id,
        user_id=int(profile.user_id),
        display_name=profile.display_name,
        avatar_url=profile.avatar_url,
        default_avatar_url=default_avatar_url(call.platform.config.discord_cdn_url, int(profile.user_id)),
        level=profile.level,
        rank=profile.rank.xp if profile.xp > 0 else None,
        ranked_of=profile.rank.of,
        xp_into_level=profile.xp_into_level,
        xp_for_next_level=profile.xp_for_next_level,
        season_stars=profile.stars.season,
        gold=profile.gold,
        accent=service.accent(guild.guild_id, accent if isinstance(accent, str) else None),
        theme=call.query.theme or ("light" if settings.str("card.theme") == "light" else "dark"),
        xp_name=settings.str("economy.xp_name"),
        stars_name=settings.str("economy.stars_name"),
        gold_name=settings.str("economy.gold_name"),
    )
