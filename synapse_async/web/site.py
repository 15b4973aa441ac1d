"""The web application: the JSON API plus the member pages, their assets, headers and error pages (SPEC §28).

`web/app.py` builds the application; the same aiohttp application serves both faces. This module owns what is
common to every page — the Jinja2 environment (autoescape on, undefined variables are errors), the security
headers, the cache policy (public pages `public, max-age=10`; a page shown to a signed-in member
`private, no-store`), the signed-in viewer, and the 404 / 503 pages that replace any failure (never a
traceback). The pages themselves are in `web/pages.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from cachetools import TTLCache
from pydantic import ValidationError

from synapse_async.api.authn import TOKEN_COOKIE, authenticate
from synapse_async.api.contract import PLATFORM, Call
from synapse_async.api.errors import ApiError
from synapse_async.api.middleware import PRINCIPAL
from synapse_async.api.platform import MICRO_CACHE_BYTES, MICRO_CACHE_SECONDS
from synapse_async.api.public import public_guild
from synapse_async.api.schema import GuildPath, NoParams
from synapse_async.components import Components
from synapse_async.config import Config
from synapse_async.db.faults import is_transient
from synapse_async.obs.logging import get_logger
from synapse_async.web import format as fmt
from synapse_async.web.assets import PREFIX, Assets
from synapse_async.web.twins import Twins

log = get_logger("synapse_async.web")

PUBLIC_CACHE: Final = "public, max-age=10"
PRIVATE_CACHE: Final = "private, no-store"
_PAGE_PREFIXES: Final = ("/g/",)


def content_security_policy(cdn_url: str) -> str:
    """SPEC §28.1's policy; images may also come from the configured Discord CDN origin."""
    parts = urlsplit(cdn_url)
    cdn = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    images = " ".join(x for x in ("'self'", "data:", "https://cdn.discordapp.com", cdn) if x)
    images = " ".join(dict.fromkeys(images.split()))  # the configured CDN usually is Discord's: listed once
    return (
        f"default-src 'self'; img-src {images}; style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


@dataclass(slots=True)
class Site:
    """What the pages share; one per application."""

    config: Config
    components: Components
    assets: Assets
    twins: Twins
    csp: str
    # Anonymous public pages answered within the last few seconds, by path and query (bounded by bytes held): a
    # page then costs what its JSON twin's micro-cached answer costs. Never a signed-in page (private, no-store).
    inflight: dict[str, asyncio.Future[bytes | None]] = field(default_factory=dict)
    html_cache: TTLCache[str, bytes] = field(
        default_factory=lambda: TTLCache(maxsize=MICRO_CACHE_BYTES, ttl=MICRO_CACHE_SECONDS, getsizeof=len)
    )

    def security_headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": self.csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }


SITE = web.AppKey("web_site", Site)


def now() -> datetime:
    return datetime.now(UTC)


def base_url(request: web.Request) -> str:
    """The absolute root of links in Open Graph tags: `PUBLIC_BASE_URL` when configured (what members open, also
    behind a proxy that rewrites the host), else the request's own scheme and host."""
    return request.app[SITE].config.public_base_url or f"{request.scheme}://{request.host}"


async def viewer(request: web.Request) -> int | None:
    """The signed-in member's user id (the `synapse_token` cookie of §21.1), or None for an anonymous visitor;
    a bad or revoked token is simply anonymous on a public page."""
    if not request.cookies.get(TOKEN_COOKIE):
        return None
    try:
        principal = await authenticate(request, request.app[PLATFORM])
    except ApiError:
        return None
    request[PRINCIPAL] = principal.id
    return principal.claims.user_id


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200, private: bool = False
) -> web.Response:
    """A page with the security headers and its cache policy."""
    site = request.app[SITE]
    response = aiohttp_jinja2.render_template(template, request, dict(context), status=status)
    response.headers.update(site.security_headers())
    response.headers["Cache-Control"] = PRIVATE_CACHE if private else PUBLIC_CACHE
    return response


def error_page(request: web.Request, status: int) -> web.Response:
    """404 (unknown guild or member, public pages off, unknown path), 503 (database or startup) or 400."""
    titles = {
        404: ("Page not found", "There is nothing here — the guild or member may not exist or be private."),
        503: ("Try again in a moment", "The service is busy or starting up. This page will work again shortly."),
        400: ("That link is not valid", "Part of the address is not something this page understands."),
    }
    title, text = titles.get(status, titles[404])
    response = render(request, "error.html", {"status": status, "title": title, "text": text, "guild": None})
    response.set_status(status)
    response.headers["Cache-Control"] = "no-store"
    return response


Page = Callable[[web.Request, Site], Awaitable[web.StreamResponse]]


def page(fn: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page handler: 503 before the API opens, the twin's errors as HTML pages, database trouble as 503."""

    async def handler(request: web.Request) -> web.StreamResponse:
        site = request.app[SITE]
        lifecycle = site.components.lifecycle
        try:
            if lifecycle.shutting_down or not lifecycle.api_open:
                return error_page(request, 503)
            # Guild pages only: their guard runs before the cache, so a guild that turns its pages off is 404 at once
            # (the index lists guilds and is rebuilt each time from the configuration cache and cached twins).
            anonymous = not request.cookies.get(TOKEN_COOKIE) and "guild_id" in request.match_info
            if not anonymous:
                return await fn(request, site)
            _guard(request)  # like the JSON micro-cache: pages turned off are 404 at once, cached or not
            return await _shared(request, site, fn)
        except ApiError as exc:
            return error_page(request, exc.status if exc.status in (400, 404) else 503)
        except web.HTTPException:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("page_database_unavailable", error=type(exc).__name__)
            return error_page(request, 503)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


async def _shared(request: web.Request, site: Site, fn: Page) -> web.StreamResponse:
    """An anonymous guild page from the HTML cache; concurrent misses of one URL share a single rendering (as the
    JSON micro-cache shares one computation), so an expiring entry under load costs one rendering, not one each."""
    key = request.path_qs
    hit = site.html_cache.get(key)
    if hit is None and (pending := site.inflight.get(key)) is not None:
        hit = await asyncio.shield(pending)
    if hit is not None:
        return _cached_page(site, hit)
    future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    site.inflight[key] = future
    body: bytes | None = None
    try:
        response = await fn(request, site)
        if response.status == 200 and response.headers.get("Cache-Control") == PUBLIC_CACHE:
            rendered = response.body if isinstance(response, web.Response) else None
            if isinstance(rendered, bytes):
                body = rendered
                site.html_cache[key] = body
        return response
    finally:
        site.inflight.pop(key, None)
        future.set_result(body)  # None: the shared rendering ended otherwise; each waiter renders its own


def _guard(request: web.Request) -> None:
    """The public-guild rule of the JSON twins (unknown, left or pages off → ApiError 404), for a guild path."""
    guild_id = request.match_info.get("guild_id")
    if guild_id is None:
        return
    try:
        path = GuildPath.model_validate({"guild_id": guild_id})
    except ValidationError:
        raise ApiError.not_found("Unknown guild.") from None
    public_guild(Call(request, request.app[PLATFORM], path, NoParams(), None, None))


def _cached_page(site: Site, body: bytes) -> web.Response:
    response = web.Response(body=body, content_type="text/html", charset="utf-8")
    response.headers.update(site.security_headers())
    response.headers["Cache-Control"] = PUBLIC_CACHE
    return response


@web.middleware
async def html_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """An unknown path among the pages (`/g/…`), or anywhere outside the API for a browser (`Accept: text/html`), is
    the HTML 404 page; API clients keep the uniform JSON error body."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        path = request.path
        if path.startswith(("/api/", "/sandbox/", PREFIX)) or path in ("/health", "/ready"):
            raise
        if not path.startswith(_PAGE_PREFIXES) and "text/html" not in request.headers.get("Accept", ""):
            raise
        return error_page(request, 404)


def environment(assets: Assets) -> jinja2.Environment:
    """Autoescaping Jinja2 over the package's templates; a missing variable raises instead of printing nothing."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synapse_async.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
    )
    env.filters.update(
        number=fmt.number,
        compact=fmt.compact,
        relative=fmt.relative,
        duration=fmt.duration,
        utc_title=fmt.utc_title,
        iso=fmt.iso,
        medal=fmt.medal,
    )
    env.globals.update(asset=assets.url, percent=fmt.percent, ring_dash=fmt.ring_dash)
    return env
