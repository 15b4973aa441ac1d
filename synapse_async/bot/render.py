"""Pure builders for the slash-command replies of SPEC §17.2 (no I/O, no Discord state), unit-tested for wording.

Names come from members and admins, so they are escaped before they go into an embed: markdown characters lose
their meaning, and mention syntax (`<@…>`, `<#…>`, `@everyone`) is broken up so it renders literally. Every reply
is also sent with allowed mentions set to none (bot/framework.py), so even a name that slipped through
could not ping anybody. Numbers carry thousands separators.
"""

from __future__ import annotations

import re
from datetime import datetime

import hikari

from synapse_async.rewards.leveling import LevelCurve
from synapse_async.services.standings import Board, Profile

NAME_LIMIT = 100
BAR_SEGMENTS = 10
MEDALS = {1: "🥇", 2: "🥈", 3: "🥉"}
SECRET = "Secret achievement"

_MARKDOWN = re.compile(r"([\\*_~`|>#\-\[\]()])")
_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_ZWSP = "\u200b"


def escape(text: str, limit: int = NAME_LIMIT) -> str:
    """`text` safe inside an embed: markdown escaped, mentions defused, newlines flattened, length capped."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = _MARKDOWN.sub(r"\\\1", flat)
    escaped = escaped.replace("<", "<" + _ZWSP)
    return _MASS_MENTION.sub("@" + _ZWSP + r"\1", escaped)


def number(value: int) -> str:
    return f"{value:,}"


def progress_bar(into: int, span: int, segments: int = BAR_SEGMENTS) -> str:
    """A `segments`-wide bar; a level without a reachable next level shows as full."""
    filled = segments if span <= 0 else min(segments, max(0, into * segments // span))
    return "▰" * filled + "▱" * (segments - filled)


def rank_label(rank: int) -> str:
    return MEDALS.get(rank, f"#{rank}")


def discord_date(at: datetime) -> str:
    """A date Discord renders in the reader's own locale and time zone."""
    return f"<t:{int(at.timestamp())}:D>"


def profile_embed(
    profile: Profile,
    *,
    curve: LevelCurve,
    xp_name: str,
    gold_name: str,
    stars_name: str,
    avatar_url: str | None,
) -> hikari.Embed:
    """The §17.2 `/profile` card."""
    embed = hikari.Embed(title=f"{escape(profile.display_name)}'s profile")
    if avatar_url:
        embed.set_thumbnail(avatar_url)
    level, into, span = curve.progress(profile.xp)
    embed.add_field("Level", number(profile.level))
    if span > 0:
        xp_line = f"{number(profile.xp)} · {number(into)}/{number(span)} to level {number(level + 1)}"
    else:
        xp_line = f"{number(profile.xp)} · top level"
    embed.add_field(escape(xp_name), f"{xp_line}\n{progress_bar(into, span)}")
    embed.add_field(escape(gold_name), number(profile.gold))
    rank = f"#{number(profile.rank)} of {number(profile.ranked)}" if profile.rank is not None else "Unranked"
    embed.add_field("Rank", rank)
    season_stars = profile.season.stars if profile.season is not None else 0
    embed.add_field(escape(stars_name), f"Season {number(season_stars)} · Lifetime {number(profile.lifetime_stars)}")
    if profile.season is not None:
        s = profile.season
        season_text = (
            f"Messages {number(s.messages_sent)} · Reactions given {number(s.reactions_given)}"
            f" · received {number(s.reactions_received)} · Voice minutes {number(s.voice_minutes)}"
        )
    else:
        season_text = "No active season"
    embed.add_field("Season", season_text)
    badges = [
        SECRET if b.masked else (f"{b.rarity_emoji} " if b.rarity_emoji else "") + escape(b.name)
        for b in profile.recent_badges
    ]
    embed.add_field(f"Achievements ({number(profile.badge_count)})", "\n".join(badges) or "None yet")
    if profile.github_username:
        embed.add_field("GitHub", f"https://github.com/{profile.github_username}")
    if profile.season is not None:
        embed.set_footer(f"{profile.season.name[:100]} · ends {profile.season.ends_at:%Y-%m-%d}")
    return embed


CURRENCY_OF = {"xp": "economy.xp_name", "stars": "economy.stars_name", "gold": "economy.gold_name"}


def leaderboard_embed(board: Board, *, currency_name: str) -> hikari.Embed:
    """The §17.2 `/leaderboard` embed (the caller answers an empty board with the ephemeral message instead)."""
    where = escape(board.season_name) if board.season_name is not None else "All time"
    embed = hikari.Embed(title=f"Leaderboard — {escape(currency_name)} ({where})")
    lines = [
        f"{rank_label(r.rank)} **{escape(r.display_name)}** — {number(r.value)} (Lv. {number(r.level)})"
        for r in board.rows
    ]
    embed.description = "\n".join(lines)
    embed.set_footer(f"Your rank: #{number(board.viewer_rank)}" if board.viewer_rank is not None else "Unranked")
    return embed
