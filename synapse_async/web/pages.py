"""The six public pages of SPEC §28.2, each rendered from its JSON twin's model (`web/twins.py`).

A handler here reads its parameters, asks the twin(s) for their models and hands them to a template; what the
public may see (members who left, private profiles, hidden achievements, ranks) is decided by the twin and
nowhere else. The only work done here is presentation: grouping, chart geometry, labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections import OrderedDict
from datetime import date
from typing import Any, Final

from aiohttp import web

from synapse_async.api import public, public_stats
from synapse_async.api.card import card_path
from synapse_async.api.errors import ApiError
from synapse_async.api.public import PublicSettings
from synapse_async.api.public_stats import (
    Achievement,
    ActivityItem,
    DailyCount,
    Leaderboard,
    Profile,
    RecentBadge,
    SeasonItem,
)
from synapse_async.api.schema import Items, Page, ResponseModel
from synapse_async.web import charts
from synapse_async.web.site import SITE, Site, base_url, now, page, render, viewer

ROWS_PER_PAGE: Final = 50
BOARDS: Final = (
    ("xp", "economy.xp_name", "XP"),
    ("stars", "economy.stars_name", "Stars"),
    ("gold", "economy.gold_name", "Gold"),
)
ACTIVITY_KINDS: Final = ("message", "reaction_given", "reaction_received", "thread_create", "voice_tick")
KIND_LABELS: Final = {
    "message": "Messages",
    "reaction_given": "Reactions given",
    "reaction_received": "Reactions received",
    "thread_create": "Threads",
    "voice_tick": "Voice",
}
# A restrained default accent per guild when it has not chosen one (`card.accent`, §29); white text on each of
# them has a contrast of at least 4.5:1 (WCAG AA), in both themes.
ACCENTS: Final = ("#4752c4", "#1f7a5c", "#b3366a", "#8f5a00", "#15679f", "#6b42b0")


def _guild_id(request: web.Request) -> str:
    return request.match_info["guild_id"]


def accent(settings: ResponseModel, guild_id: str) -> str:
    """The guild's accent colour: `card.accent` when the registry has it and it is set, else one of `ACCENTS`."""
    chosen = getattr(settings, "card__accent", None)
    if isinstance(chosen, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", chosen):
        return chosen
    digest = hashlib.sha256(guild_id.encode()).digest()
    return ACCENTS[digest[0] % len(ACCENTS)]


def on_accent(colour: str) -> str:
    """Black or white, whichever contrasts more with `colour` (WCAG relative luminance), for text on the accent."""

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#ffffff" if (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.05) else "#000000"


async def _guild(request: web.Request, site: Site) -> dict[str, Any]:
    """The header every guild page shares: name, icon, currency names, accent; 404 when pages are off."""
    gid = _guild_id(request)
    settings = await site.twins.call(request, public.public_settings, PublicSettings, {"guild_id": gid})
    values = settings.model_dump(by_alias=True)
    return {
        "id": gid,
        "name": settings.guild_name,  # type: ignore[attr-defined]
        "icon_url": settings.icon_url,  # type: ignore[attr-defined]
        "accent": accent(settings, gid),
        "names": {
            "xp": values.get("economy.xp_name") or "XP",
            "stars": values.get("economy.stars_name") or "Stars",
            "gold": values.get("economy.gold_name") or "Gold",
        },
    }


def _og(request: web.Request, title: str, description: str, image: str | None) -> dict[str, str | None]:
    """Open Graph / Twitter values with absolute URLs; without a picture of its own a page shows the site's."""
    root = base_url(request)
    image = image or request.app[SITE].assets.url("og.png")
    absolute = image if image.startswith("http") else root + image
    return {"title": title, "description": description, "url": root + request.path_qs, "image": absolute}


# ------------------------------------------------------------------------------------------------------ index


@page
async def index(request: web.Request, site: Site) -> web.StreamResponse:
    """Guilds whose public pages are on, with their member counts, and the sign-in link."""
    cache = site.components.require_cache()
    guilds: list[dict[str, Any]] = []
    for gid in sorted(cache.known_guild_ids()):
        config = cache.guild(gid)
        if config.info is None or config.info.left or not config.settings.bool("public_api.enabled"):
            continue
        metrics = await site.twins.call(request, public.public_metrics, public.Metrics, {"guild_id": gid})
        icon = public.icon_url(site.config.discord_cdn_url, gid, config.info.icon_hash)
        guilds.append({"id": str(gid), "name": metrics.guild_name, "members": metrics.members, "icon_url": icon})
        if len(guilds) >= 60:
            break
    me = await viewer(request)
    context = {
        "guild": None,
        "guilds": guilds,
        "signed_in": me is not None,
        "og": _og(request, "Leaderboards", "Levels, achievements and seasons of these communities.", None),
        "page_class": "page-index",
    }
    return render(request, "index.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ leaderboard


@page
async def leaderboard(request: web.Request, site: Site) -> web.StreamResponse:
    """Metrics header, board tabs and scope, 50 rows a page with the top 3 set apart, the viewer's pinned row."""
    guild = await _guild(request, site)
    gid = guild["id"]
    by = request.query.get("by", "xp")
    scope = request.query.get("season", "current")
    page_no = request.query.get("page", "1")
    me = await viewer(request)
    query: dict[str, object] = {"by": by, "season": scope, "page": page_no, "page_size": ROWS_PER_PAGE}
    if me is not None:
        query["user_id"] = me
    metrics, board, seasons = await asyncio.gather(
        site.twins.call(request, public.public_metrics, public.Metrics, {"guild_id": gid}),
        site.twins.call(request, public_stats.public_leaderboard, Leaderboard, {"guild_id": gid}, query),
        site.twins.call(request, public_stats.public_seasons, Items[SeasonItem], {"guild_id": gid}),
    )
    pages = max(1, -(-board.total // ROWS_PER_PAGE))
    top = [item for item in board.items if item.rank <= 3] if board.page == 1 else []
    rest = board.items[len(top) :]
    tz_now = now()
    context = {
        "guild": guild,
        "metrics": metrics,
        "board": board,
        "top": top,
        "rest": rest,
        "by": by,
        "scope": scope,
        "boards": BOARDS,
        "past": [s for s in seasons.items if s.status != "active"],
        "pages": pages,
        "me": me,
        "now": tz_now,
        "season_left": None if metrics.season is None else int((metrics.season.ends_at - tz_now).total_seconds()),
        "page_class": "page-leaderboard",
        "og": _og(
            request,
            f"{guild['name']} — leaderboard",
            f"{metrics.members:,} members · top level {metrics.top_level}",
            guild["icon_url"],
        ),
    }
    return render(request, "leaderboard.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ profile


@page
async def profile(request: web.Request, site: Site) -> web.StreamResponse:
    """Avatar, level ring, rank of N, stars, gold, achievements by rarity, XP per day (SVG + table), rank card."""
    guild = await _guild(request, site)
    gid = guild["id"]
    uid = request.match_info["user_id"]
    path = {"guild_id": gid, "user_id": uid}
    member, daily, catalogue = await asyncio.gather(
        site.twins.call(request, public_stats.public_member, Profile, path),
        site.twins.call(
            request,
            public_stats.public_activity_daily,
            Items[DailyCount],
            {"guild_id": gid},
            {"days": 30, "user_id": uid},
        ),
        site.twins.call(
            request, public_stats.public_achievements, Page[Achievement], {"guild_id": gid}, {"page_size": 100}
        ),
    )
    rarities = {a.id: a.rarity for a in catalogue.items}
    days = charts.days_back(now().date(), 30)
    per_day: dict[tuple[date, str], int] = {}
    for item in daily.items:
        per_day[(item.date, "xp")] = per_day.get((item.date, "xp"), 0) + item.xp
    chart = charts.stacked_days(days, per_day, ("xp",))
    badges = [{"badge": b, "rarity": rarities.get(b.id)} for b in member.achievements]
    card = card_path(int(gid), int(uid))
    context = {
        "guild": guild,
        "member": member,
        "badges": badges,
        "chart": chart,
        "days": [(d, per_day.get((d, "xp"), 0)) for d in days],
        "card_url": card,
        "now": now(),
        "page_class": "page-profile",
        "og": _og(
            request,
            f"{member.display_name} — {guild['name']}",
            f"Level {member.level} · rank #{member.rank.xp} of {member.rank.of:,}",
            card,
        ),
    }
    me = await viewer(request)
    return render(request, "profile.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ achievements


@page
async def achievements(request: web.Request, site: Site) -> web.StreamResponse:
    """The catalogue by category, series in tier order, rarity colours, earn rates; recent unlocks."""
    guild = await _guild(request, site)
    gid = guild["id"]
    catalogue = await site.twins.call(
        request, public_stats.public_achievements, Page[Achievement], {"guild_id": gid}, {"page_size": 100}
    )
    recent = await site.twins.call(
        request, public_stats.public_recent_achievements, Items[RecentBadge], {"guild_id": gid}, {"limit": 10}
    )
    categories: OrderedDict[str, OrderedDict[str, list[Achievement]]] = OrderedDict()
    for item in catalogue.items:  # the twin orders by category, series, tier
        group = categories.setdefault(item.category or "General", OrderedDict())
        group.setdefault(item.series.name if item.series else "", []).append(item)
    context = {
        "guild": guild,
        "categories": categories,
        "total": catalogue.total,
        "recent": recent.items,
        "now": now(),
        "page_class": "page-achievements",
        "og": _og(
            request, f"{guild['name']} — achievements", f"{catalogue.total} achievements to earn", guild["icon_url"]
        ),
    }
    me = await viewer(request)
    return render(request, "achievements.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ seasons


@page
async def seasons(request: web.Request, site: Site) -> web.StreamResponse:
    """The current season with its countdown; past seasons with their top 10 by stars (hall of fame)."""
    guild = await _guild(request, site)
    gid = guild["id"]
    listed = await site.twins.call(request, public_stats.public_seasons, Items[SeasonItem], {"guild_id": gid})
    current = next((s for s in listed.items if s.status == "active"), None)
    hall: list[dict[str, Any]] = []
    for season in [s for s in listed.items if s.status != "active"][:12]:
        board = await site.twins.call(
            request,
            public_stats.public_leaderboard,
            Leaderboard,
            {"guild_id": gid},
            {"by": "stars", "season": season.id, "page_size": 10},
        )
        hall.append({"season": season, "top": board.items})
    tz_now = now()
    context = {
        "guild": guild,
        "current": current,
        "left": None if current is None else int((current.ends_at - tz_now).total_seconds()),
        "hall": hall,
        "now": tz_now,
        "page_class": "page-seasons",
        "og": _og(request, f"{guild['name']} — seasons", "The current season and the hall of fame", guild["icon_url"]),
    }
    me = await viewer(request)
    return render(request, "seasons.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ activity


@page
async def activity(request: web.Request, site: Site) -> web.StreamResponse:
    """Events per UTC day over 7/30/90 days stacked by kind (SVG + table); recent level-ups and unlocks."""
    guild = await _guild(request, site)
    gid = guild["id"]
    span = request.query.get("days", "30")
    if span not in ("7", "30", "90"):
        span = "30"
    daily = await site.twins.call(
        request, public_stats.public_activity_daily, Items[DailyCount], {"guild_id": gid}, {"days": span}
    )
    levels = await site.twins.call(
        request,
        public_stats.public_activity,
        Page[ActivityItem],
        {"guild_id": gid},
        {"days": 30, "event_type": "level_up", "page_size": 10},
    )
    unlocks = await site.twins.call(
        request,
        public_stats.public_activity,
        Page[ActivityItem],
        {"guild_id": gid},
        {"days": 30, "event_type": "achievement", "page_size": 10},
    )
    days = charts.days_back(now().date(), int(span))
    counts = {(d.date, d.event_type): d.count for d in daily.items}
    chart = charts.stacked_days(days, counts, ACTIVITY_KINDS)
    table = [(d, [counts.get((d, k), 0) for k in ACTIVITY_KINDS]) for d in days]
    context = {
        "guild": guild,
        "span": span,
        "chart": chart,
        "kinds": [(k, KIND_LABELS[k]) for k in ACTIVITY_KINDS],
        "table": table,
        "levels": levels.items,
        "unlocks": unlocks.items,
        "now": now(),
        "page_class": "page-activity",
        "og": _og(
            request, f"{guild['name']} — activity", f"What happened over the last {span} days", guild["icon_url"]
        ),
    }
    me = await viewer(request)
    return render(request, "activity.html", context, private=me is not None)


# ------------------------------------------------------------------------------------------------------ theme


async def theme(request: web.Request) -> web.StreamResponse:
    """The guild's accent as one custom property (a stylesheet, since `style-src 'self'` forbids inline styles)."""
    site = request.app[SITE]
    colour = ACCENTS[0]  # unknown guild, pages off, starting up: the default accent, never an error for a stylesheet
    if site.components.lifecycle.api_open and not site.components.lifecycle.shutting_down:
        with contextlib.suppress(ApiError):
            colour = (await _guild(request, site))["accent"]
    body = f":root{{--accent:{colour};--on-accent:{on_accent(colour)}}}\n"
    return web.Response(
        text=body, content_type="text/css", headers={"Cache-Control": "public, max-age=300", **site.security_headers()}
    )


def install(app: web.Application) -> None:
    app.router.add_get("/", index, name="page_index")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}", leaderboard, name="page_leaderboard")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}/theme.css", theme, name="page_theme")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}/members/{user_id:[0-9]{1,20}}", profile, name="page_profile")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}/achievements", achievements, name="page_achievements")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}/seasons", seasons, name="page_seasons")
    app.router.add_get("/g/{guild_id:[0-9]{1,20}}/activity", activity, name="page_activity")
