"""Summarised logging of dropped announcements: one WARNING per channel per interval, with counts (SPEC §14, §24).

During a database outage or a burst, hundreds of announcements can be dropped in one channel (queue overflow,
refused channel, shutdown). One line per drop buries everything else in the log. Instead the first drop in a
channel is logged at once (so an operator sees it start), later ones in the same interval are counted, and the
counts are logged when the interval has passed (on the next drop, on the announcer's periodic prune, or at
shutdown). Pure bookkeeping, no I/O: the caller logs what `note` and `due` return.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Window:
    started: float
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    guild_id: int | None = None


class DropSummary:
    """Counts drops per channel (None: no channel, e.g. after shutdown) and says when to log them."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._windows: dict[int | None, _Window] = {}

    def note(self, channel: int | None, *, reason: str, kind: str, guild_id: int, now: float) -> list[dict[str, Any]]:
        """Record one drop; return the log records due now (the first drop of a window, or a finished window)."""
        out = []
        window = self._windows.get(channel)
        if window is not None and now - window.started >= self._interval:
            out.extend(self._close(channel))
            window = None
        if window is None:
            # The first drop of a window is reported at once; the window then collects the rest.
            self._windows[channel] = _Window(started=now)
            out.append(_record(channel, 1, Counter({reason: 1}), Counter({kind: 1}), guild_id))
            return out
        window.count += 1
        window.reasons[reason] += 1
        window.kinds[kind] += 1
        window.guild_id = guild_id
        return out

    def due(self, now: float, *, force: bool = False) -> list[dict[str, Any]]:
        """Records of every window that has ended (all of them with `force`), each window closed afterwards."""
        out = []
        for channel in [c for c, w in self._windows.items() if force or now - w.started >= self._interval]:
            out.extend(self._close(channel))
        return out

    def _close(self, channel: int | None) -> list[dict[str, Any]]:
        window = self._windows.pop(channel)
        if window.count == 0:
            return []
        return [_record(channel, window.count, window.reasons, window.kinds, window.guild_id)]


def _record(
    channel: int | None, count: int, reasons: Counter[str], kinds: Counter[str], guild_id: int | None
) -> dict[str, Any]:
    return {
        "channel_id": channel,
        "guild_id": guild_id,
        "count": count,
        "reasons": dict(sorted(reasons.items())),
        "kinds": dict(sorted(kinds.items())),
    }
