"""Who may see a console page, and how a page asks its JSON twins (SPEC §28.3, §21.3).

Every console page runs, on each request, the same checks as its JSON twin: the session cookie is verified (not
expired, not revoked), and for a guild page the live admin check of §21.3 (`contract.check_guild_admin`, the very
function the JSON routes call). A visitor without a session gets the sign-in page, which returns to the page they
wanted (`next`); a signed-in member who is not an admin gets a 403 page. Every answer is `private, no-store`, so
after logout the back button finds nothing in the browser's cache.

A page then asks its twins through `Console.ask`: the twin's declared route validates path and query with its own
models and its handler runs with the caller's principal, uncached (an admin must see the effect of their own
change at once). Mutations never go through here: the browser calls the JSON API itself (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ValidationError

from synapse_async.api.admin.platform import AdminGuild, admin_guilds
from synapse_async.api.authn import TOKEN_COOKIE, Principal, authenticate
from synapse_async.api.contract import PLATFORM, Handler, Reply, check_guild_admin
from synapse_async.api.errors import ApiError
from synapse_async.api.middleware import PRINCIPAL
from synapse_async.api.schema import GuildPath, Items
from synapse_async.db.faults import is_transient
from synapse_async.obs.logging import get_logger
from synapse_async.web.site import PRIVATE_CACHE, SITE, Site, render
from synapse_async.web.twins import operation_of, validated_call

log = get_logger("synapse_async.web.console")
M = TypeVar("M", bound=BaseModel)

# The console's sections in the order of SPEC §28.3: (path under /admin/g/{id}, label, page class).
SECTIONS: Final = (
    ("", "Overview", "overview"),
    ("/settings", "Settings", "settings"),
    ("/xp-rules", "XP rules", "xp-rules"),
    ("/level-roles", "Level roles", "level-roles"),
    ("/achievements", "Achievements", "achievements"),
    ("/members", "Members", "members"),
    ("/seasons", "Seasons", "seasons"),
    ("/transfer", "Import / export", "transfer"),
    ("/event-lake", "Event lake", "event-lake"),
    ("/jobs", "Jobs", "jobs"),
    ("/audit", "Audit", "audit"),
    ("/logs", "Logs", "logs"),
)


@dataclass(slots=True)
class Console:
    """One console request after its checks: who asks, for which guild, and the twins to ask."""

    request: web.Request
    site: Site
    principal: Principal
    guild_id: int | None
    guilds: tuple[AdminGuild, ...]

    @property
    def csrf(self) -> str:
        return self.principal.claims.csrf or ""

    @property
    def guild(self) -> AdminGuild | None:
        return next((g for g in self.guilds if g.guild_id == self.guild_id), None)

    @property
    def root(self) -> str:
        """`/admin/g/{id}`: the prefix of this guild's pages."""
        return f"/admin/g/{self.guild_id}"

    @property
    def api(self) -> str:
        """`/api/admin/guilds/{id}`: the prefix of the JSON twins the forms call."""
        return f"/api/admin/guilds/{self.guild_id}"

    async def ask(
        self,
        handler: Handler,
        model: type[M],
        path: Mapping[str, object] | None = None,
        query: Mapping[str, object] | None = None,
    ) -> M:
        """The twin's response model; its ApiError (400 with details, 404, 409) propagates to the page."""
        op = operation_of(handler)
        values = dict(path or {})
        if self.guild_id is not None and "guild_id" in op.path_model.model_fields:
            values.setdefault("guild_id", self.guild_id)
        call = validated_call(self.request, op, values, query, self.principal)
        result = await op.handler(call)
        body = result.body if isinstance(result, Reply) else result
        if not isinstance(body, model):
            raise TypeError(f"{op.operation_id} answered {type(body).__name__}, not {model.__name__}")
        return body

    def context(self, section: str, **extra: Any) -> dict[str, Any]:
        """What every console template gets: the viewer, the guild, the navigation, the CSRF token."""
        return {
            "console": self,
            "section": section,
            "sections": SECTIONS,
            "page_class": f"console page-{section}",
            "user_name": self.principal.claims.name or self.principal.id,
            **extra,
        }


ConsolePage = Callable[[web.Request, Console], Awaitable[web.StreamResponse]]


def console_page(fn: ConsolePage) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A console page: sign-in page without a session, 404 / 403 pages from the live admin check, the twins'
    errors as pages, database trouble as 503; always `private, no-store`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        site = request.app[SITE]
        lifecycle = site.components.lifecycle
        try:
            if lifecycle.shutting_down or not lifecycle.api_open:
                return message_page(request, 503)
            console = await _admit(request, site)
            if console is None:
                return sign_in_page(request)
            response = await fn(request, console)
        except ApiError as exc:
            return message_page(request, exc.status if exc.status in (400, 403, 404, 409) else 503, exc.message)
        except web.HTTPException:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("console_database_unavailable", error=type(exc).__name__)
            return message_page(request, 503)
        response.headers["Cache-Control"] = PRIVATE_CACHE
        return response

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


async def _admit(request: web.Request, site: Site) -> Console | None:
    platform = request.app[PLATFORM]
    if not request.cookies.get(TOKEN_COOKIE):
        return None
    try:
        principal = await authenticate(request, platform)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise
    request[PRINCIPAL] = principal.id
    guild_id: int | None = None
    if "guild_id" in request.match_info:
        try:
            guild_id = GuildPath.model_validate({"guild_id": request.match_info["guild_id"]}).guild_id
        except ValidationError:
            raise ApiError.not_found("Unknown guild.") from None
        await check_guild_admin(guild_id, principal, platform, allow_cached=True)
    console = Console(request, site, principal, guild_id, ())
    console.guilds = tuple((await console.ask(admin_guilds, Items[AdminGuild])).items)
    return console


def sign_in_page(request: web.Request) -> web.Response:
    """401 with the "Sign in with Discord" button; the login returns to this very page (§21.1 `next`)."""
    target = request.path_qs if len(request.path_qs) <= 512 else request.path
    href = "/api/auth/login?" + urlencode({"next": target})
    response = render(request, "console/sign_in.html", {"href": href, "page_class": "console page-sign-in"})
    response.set_status(401)
    response.headers["Cache-Control"] = PRIVATE_CACHE
    return response


_MESSAGES: Final = {
    400: ("That request is not valid", "Part of the address is not something this page understands."),
    403: ("Not an admin here", "Your Discord account is not an admin of this server, so its console is closed."),
    404: ("Not found", "This server does not use synapse, or the page does not exist."),
    409: ("Not possible right now", "Something else is in the way."),
    503: ("Try again in a moment", "The service is busy or starting up. This page will work again shortly."),
}


def message_page(request: web.Request, status: int, detail: str | None = None) -> web.Response:
    """A console error page with a way back (to the guild list)."""
    title, text = _MESSAGES.get(status, _MESSAGES[503])
    context = {"status": status, "title": title, "text": text, "detail": detail, "page_class": "console page-error"}
    response = render(request, "console/message.html", context)
    response.set_status(status)
    response.headers["Cache-Control"] = PRIVATE_CACHE
    return response


def page_of(request: web.Request) -> int:
    """`?page=` as a positive page number (bad values are page 1: a listing page never fails on its pager)."""
    try:
        return max(1, min(int(request.query.get("page", "1")), 10_000))
    except ValueError:
        return 1
