"""The per-client-IP limit of the public and auth endpoints (SPEC §21.4: `PUBLIC_RATE_LIMIT_PER_MINUTE`).

In process memory, with a sliding-window *counter*: per IP only the counts of the current and the previous
60-second window are kept, and the previous one is weighted by how much of it still overlaps the last 60 s. That
is O(1) memory per client instead of one timestamp per request, and the map itself is an LRU bounded by
`max_clients` (SPEC §25: every in-memory structure is bounded). An IP pushed out of a full map starts afresh;
an attacker would need more addresses than the bound to profit, and then each address still gets only the limit.
Pure logic with an injectable clock, so it is tested without sleeping.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # seconds until a slot frees (the Retry-After of a refusal)

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_seconds)
        return out


class SlidingWindowLimiter:
    """`limit` requests per key per 60 s (approximately sliding); refused requests are not counted."""

    def __init__(self, limit: int, *, max_clients: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or max_clients < 1:
            raise ValueError("limit and max_clients must be positive")
        self.limit = limit
        self._max_clients = max_clients
        self._clock = clock
        # key -> [window index, count in the previous window, count in this window]
        self._windows: OrderedDict[str, list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str) -> Decision:
        now = self._clock()
        index = int(now // WINDOW_SECONDS)
        elapsed = now - index * WINDOW_SECONDS
        state = self._windows.get(key)
        if state is None:
            state = [index, 0, 0]
            self._windows[key] = state
            if len(self._windows) > self._max_clients:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
            if state[0] != index:
                state[1] = state[2] if state[0] == index - 1 else 0
                state[2] = 0
                state[0] = index
        _, previous, current = state
        weight = (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS
        used = previous * weight + current
        if used + 1 > self.limit:
            return Decision(False, self.limit, 0, self._retry_after(previous, current, elapsed))
        state[2] += 1
        remaining = max(0, math.floor(self.limit - used - 1))
        return Decision(True, self.limit, remaining, max(1, math.ceil(WINDOW_SECONDS - elapsed)))

    def _retry_after(self, previous: int, current: int, elapsed: float) -> int:
        """Seconds until `previous·weight + current + 1 ≤ limit` holds again."""
        room = self.limit - 1
        if current <= room and previous > 0:
            # Still in this window: wait until the previous window's weight has shrunk enough.
            wait = (WINDOW_SECONDS - elapsed) - WINDOW_SECONDS * (room - current) / previous
        else:
            # This window is full by itself: it must become the (shrinking) previous window first.
            wait = (WINDOW_SECONDS - elapsed) + WINDOW_SECONDS * (1 - room / current if current else 0)
        return max(1, math.ceil(wait))
