"""The rank card service (SPEC §29): avatar fetch, render pool and PNG cache around the pure `card.render`.

- The avatar comes from the Discord CDN with a 2 s timeout and is cached (successes for an hour, failures for a
  minute, so a CDN outage costs one timeout per minute, not one per request); on failure the default avatar of
  the user (`embed/avatars/{(id >> 22) % 6}.png`), and if that fails too, a disc in the accent colour.
- Rendering is CPU work: it runs in a pool of `CARD_RENDER_CONCURRENCY` worker processes (`card/worker.py`),
  never on the event loop. Processes, not threads: Pillow holds the GIL while it draws text and encodes the PNG,
  and a render thread in this process delayed the loop by 20+ ms p99 during a burst (`bench/card.py`); worker
  processes keep it under 5 ms. At most `CARD_RENDER_QUEUE` more renders may wait for a worker; past that
  `CardBusy` (the endpoint's 503), so a burst of requests for different cards queues with a bound.
- A card is identified by its state (every figure shown, the avatar URL, the names, accent and theme): the ETag is
  a hash of that state, so a request whose `If-None-Match` matches is answered without rendering at all, and
  rendered PNGs are kept in a bounded LRU by state. Concurrent misses of one state render once.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import astuple, dataclass
from typing import Final

import aiohttp
from cachetools import TTLCache

from synapse_async.card import NEUTRAL_ACCENT, CardData, Theme, worker
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

AVATAR_TIMEOUT_SECONDS: Final = 2.0
AVATAR_MAX_BYTES: Final = 4 * 1024 * 1024
AVATAR_SIZE_QUERY: Final = "?size=256"
CARD_CACHE_BYTES: Final = 32 * 1024 * 1024
CARD_MAX_AGE: Final = 60
"""`Cache-Control: public, max-age=60` (SPEC §29)."""


class CardBusy(Exception):
    """More cards are waiting to be rendered than the queue bound allows; try again shortly."""


@dataclass(frozen=True, slots=True)
class CardState:
    """What a card shows, before the avatar is fetched; its hash is the card's ETag."""

    guild_id: int
    user_id: int
    display_name: str
    avatar_url: str
    default_avatar_url: str
    level: int
    rank: int | None
    ranked_of: int
    xp_into_level: int
    xp_for_next_level: int
    season_stars: int
    gold: int
    accent: str
    theme: Theme
    xp_name: str
    stars_name: str
    gold_name: str

    @property
    def etag(self) -> str:
        digest = hashlib.sha256(repr(astuple(self)).encode()).hexdigest()[:32]
        return f'"{digest}"'


@dataclass(frozen=True, slots=True)
class RenderedCard:
    png: bytes
    etag: str


def default_avatar_url(cdn: str, user_id: int) -> str:
    """SPEC §19's default avatar of a user."""
    return f"{cdn}/embed/avatars/{(user_id >> 22) % 6}.png"


def avatar_url(cdn: str, user_id: int, avatar_hash: str | None) -> str:
    """SPEC §19's avatar URL (as the public API shows it): the CDN avatar, else the default one."""
    if avatar_hash:
        return f"{cdn}/avatars/{user_id}/{avatar_hash}.{'gif' if avatar_hash.startswith('a_') else 'png'}"
    return default_avatar_url(cdn, user_id)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison over a list of tags (or `*`)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


class CardService:
    """Built once by the runtime; shared by the HTTP endpoint and the `/rank` command."""

    def __init__(
        self,
        *,
        cdn: str,
        concurrency: int,
        queue: int,
        font_dirs: Sequence[str] = (),
        cache_bytes: int = CARD_CACHE_BYTES,
    ) -> None:
        self.cdn = cdn
        self._concurrency = concurrency
        self._font_dirs = tuple(font_dirs)
        self._pool = self._new_pool()
        self._admitted = 0
        self._limit = concurrency + queue
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._inflight: dict[str, asyncio.Future[RenderedCard]] = {}
        self._avatars: TTLCache[str, bytes] = TTLCache(maxsize=2048, ttl=3600)
        self._failed: TTLCache[str, bool] = TTLCache(maxsize=2048, ttl=60)
        self._fetching: dict[str, asyncio.Future[bytes | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.role_colour: Callable[[int], str | None] = lambda _guild_id: None
        """The guild's highest coloured role as `#rrggbb` (plugged in by the runtime from the gateway cache)."""
        self.renders = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        # `spawn`: a fresh interpreter per worker; forking this process (threads, sockets, a running loop) is unsafe.
        return ProcessPoolExecutor(
            max_workers=self._concurrency,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init,
            initargs=(self._font_dirs,),
        )

    async def _render(self, data: CardData) -> bytes:
        """Render in a worker; a pool broken by a dead worker (killed, out of memory) is replaced and the card tried
        once more: one lost process is not a verdict on the card."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, worker.render_card, data)
        except BrokenProcessPool:
            broken, self._pool = self._pool, self._new_pool()
            log.warning("card_render_pool_replaced", reason="a worker process died")
            broken.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._pool, worker.render_card, data)

    def start(self) -> None:
        """Start the worker processes now (each finds its fonts once) rather than with the first card (benchmarks)."""
        for _ in range(self._concurrency):
            self._pool.submit(worker.ready)

    def accent(self, guild_id: int, configured: str | None) -> str:
        """`card.accent`, else the guild's top role colour, else the neutral accent."""
        return configured or self.role_colour(guild_id) or NEUTRAL_ACCENT

    def cached(self, state: CardState) -> RenderedCard | None:
        png = self._cache.get(state.etag)
        if png is None:
            return None
        self._cache.move_to_end(state.etag)
        return RenderedCard(png, state.etag)

    async def card(self, state: CardState) -> RenderedCard:
        """The PNG for `state`: from the cache, or rendered off the loop (raises `CardBusy` past the bound)."""
        hit = self.cached(state)
        if hit is not None:
            return hit
        key = state.etag
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._admitted >= self._limit:
            raise CardBusy()
        future: asyncio.Future[RenderedCard] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._admitted += 1
        try:
            avatar, fetched = await self._avatar(state)
            data = CardData(
                display_name=state.display_name,
                avatar=avatar,
                level=state.level,
                rank=state.rank,
                ranked_of=state.ranked_of,
                xp_into_level=state.xp_into_level,
                xp_for_next_level=state.xp_for_next_level,
                season_stars=state.season_stars,
                gold=state.gold,
                accent=state.accent,
                theme=state.theme,
                xp_name=state.xp_name,
                stars_name=state.stars_name,
                gold_name=state.gold_name,
            )
            png = await self._render(data)
            self.renders += 1
            # A card drawn with a stand-in avatar is not kept: the next request tries the real avatar again.
            if fetched:
                self._store(key, png)
            result = RenderedCard(png, key if fetched else key[:-1] + '-f"')
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; nobody else must log it as unretrieved
            raise
        finally:
            self._admitted -= 1
            self._inflight.pop(key, None)

    def _store(self, key: str, png: bytes) -> None:
        self._cache[key] = png
        self._cache_bytes += len(png)
        while self._cache_bytes > self._cache_limit and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= len(old)

    async def _avatar(self, state: CardState) -> tuple[bytes | None, bool]:
        """(image bytes or None, whether they are the member's own avatar)."""
        own = await self._fetch(state.avatar_url)
        if own is not None:
            return own, True
        fallback = await self._fetch(state.default_avatar_url)
        return fallback, fallback is not None and state.avatar_url == state.default_avatar_url

    async def _fetch(self, url: str) -> bytes | None:
        if url in self._avatars:
            return self._avatars[url]
        if url in self._failed:
            return None
        pending = self._fetching.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._fetching[url] = future
        data: bytes | None = None
        try:
            data = await self._download(url)
        finally:
            self._fetching.pop(url, None)
            future.set_result(data)
        if data is None:
            self._failed[url] = True
        else:
            self._avatars[url] = data
        return data

    async def _download(self, url: str) -> bytes | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=AVATAR_TIMEOUT_SECONDS))
        target = url.replace(".gif", ".png") + AVATAR_SIZE_QUERY
        try:
            async with self._session.get(target) as response:
                if response.status != 200:
                    log.info("card_avatar_unavailable", url=target, status=response.status)
                    return None
                body = await response.content.read(AVATAR_MAX_BYTES + 1)
                if len(body) > AVATAR_MAX_BYTES:
                    return None
                return body
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.info("card_avatar_unavailable", url=target, error=type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        # Waits for the workers to exit (a thread waits, not the loop): no process is left behind.
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
