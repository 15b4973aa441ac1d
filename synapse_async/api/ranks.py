"""Public XP ranks without a count over the whole guild per request (SPEC §19 profile `rank {xp, of}`, §25).

Counting the members above one member is a scan of up to the whole guild; at 100,000 members that made every
profile cost tens of milliseconds. Instead each guild's XP values (present members) are loaded at most once per
`ttl` seconds into a sorted array, and a rank is a binary search: 1 + the number of members with more XP (ties
share a rank). The arrays are bounded (an LRU of `max_guilds`), a reload per guild runs once however many
requests wait for it, and a rank is at most `ttl` seconds old — within the public `max-age` anyway.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    values: array[int]
    loaded_at: float


class XpRanks:
    def __init__(self, ttl: float, *, max_guilds: int = 16, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_guilds
        self._clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._locks: dict[int, asyncio.Lock] = {}

    async def rank(self, guild_id: int, xp: int, load: Callable[[], Awaitable[Iterable[int]]]) -> tuple[int, int]:
        """(rank, members) of a member with `xp`; `load` returns the guild's present members' XP values."""
        entry = self._entries.get(guild_id)
        if entry is None or self._clock() - entry.loaded_at > self._ttl:
            lock = self._locks.setdefault(guild_id, asyncio.Lock())
            async with lock:
                entry = self._entries.get(guild_id)
                if entry is None or self._clock() - entry.loaded_at > self._ttl:
                    values = array("q", sorted(await load()))
                    entry = _Entry(values, self._clock())
                    self._entries[guild_id] = entry
                    if len(self._entries) > self._max:
                        evicted, _ = self._entries.popitem(last=False)
                        self._locks.pop(evicted, None)
        self._entries.move_to_end(guild_id)
        values = entry.values
        return len(values) - bisect.bisect_right(values, xp) + 1, len(values)
