"""The few formats the pages need, as pure functions (Jinja filters; unit-tested in tests/unit/test_web_format.py).

Numbers always carry thousands separators, times are shown relative ("3 hours ago", "in 2 days") with the absolute
UTC time in the `<time>` element's title, and progress is a whole percentage clamped to 0–100 so a bar never
overflows its track whatever the level curve says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

_UNITS: Final = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


def number(value: int | float | None) -> str:
    """`1234567` → `1,234,567`; floats keep one decimal (`12.5`)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def compact(value: int) -> str:
    """Short form for tight spaces: `950`, `12.3K`, `4.5M` (the full number goes in a title)."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(value) >= size:
            short = f"{value / size:.1f}".removesuffix(".0")
            return f"{short}{suffix}"
    return str(value)


def percent(part: int, whole: int) -> int:
    """Whole percentage of `part` in `whole`, clamped to 0–100 (0 when `whole` ≤ 0)."""
    if whole <= 0:
        return 0
    return max(0, min(100, (part * 100) // whole))


def relative(when: datetime, now: datetime) -> str:
    """`when` relative to `now`: "just now", "5 minutes ago", "in 3 days"."""
    seconds = int((when - now).total_seconds())
    future = seconds > 0
    span = abs(seconds)
    if span < 60:
        return "just now" if not future else "in under a minute"
    for name, size in _UNITS:
        if span >= size:
            count = span // size
            text = f"{count} {name}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    raise AssertionError("unreachable: spans of a minute or more match a unit")


def duration(seconds: int) -> str:
    """A countdown's text: "3d 4h", "5h 12m", "42m", "ended"."""
    if seconds <= 0:
        return "ended"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{max(minutes, 1)}m"


def utc_title(when: datetime) -> str:
    """The absolute time shown on hover: `2026-12-06 20:30 UTC`."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(when: datetime) -> str:
    """The machine-readable `datetime` attribute (RFC 3339, UTC)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def medal(rank: int) -> str | None:
    """The medal of the top three ranks (shown beside the rank number, never instead of it)."""
    return {1: "🥇", 2: "🥈", 3: "🥉"}.get(rank)


def ring_dash(pct: int, radius: float) -> tuple[float, float]:
    """`stroke-dasharray` of an SVG progress ring: (filled length, circumference)."""
    circumference = 2 * 3.141592653589793 * radius
    return round(circumference * max(0, min(100, pct)) / 100, 2), round(circumference, 2)
