"""A small TTL cache whose concurrent misses of one key share a single computation (SPEC §19 micro-cache).

The public pages' totals (`total` of a page, members with XP) do not depend on `page` or `page_size`. Before,
a client walking `page=1…N` of a 90-day activity list recomputed the same count over the whole window for every
URL: 8–15 s of database time per request (issue 21). Totals are now kept here for the micro-cache's lifetime,
by what they depend on, and a count that is being computed is awaited by every other request that needs it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlightCache(Generic[K, V]):
    """At most `max_entries` values, each served for `ttl` seconds; `computations` counts the misses computed."""

    def __init__(self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._pending: dict[K, asyncio.Future[V]] = {}
        self.computations = 0

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        hit = self._values.get(key)
        if hit is not None and self._clock() - hit[0] <= self._ttl:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.computations += 1
            value = await compute()
        except Exception as exc:
            # Waiters get the same failure (a 503 for everyone is one 503 of database work, not N).
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        self._values[key] = (self._clock(), value)
        self._values.move_to_end(key)
        while len(self._values) > self._max:
            self._values.popitem(last=False)
        return value


class PageAnchors(Generic[K, V]):
    """Where pages of a list ended, so a deep page continues from a known row (keyset) instead of `OFFSET n`.

    `record(list, end, key)` notes that the row at position `end - 1` of `list` had sort key `key`; `nearest(list,
    offset)` returns the latest such note at or before `offset`, so the page is `WHERE (sort) < key OFFSET
    (offset - end)`. Walking a 90-day activity list page by page then reads each page's rows once instead of every
    row before it again. A note lives `ttl` seconds (the micro-cache's): newer rows arriving meanwhile shift a
    page by at most what arrived within that time, as a cached answer would. Bounded: `max_lists` lists of at
    most `per_list` notes each."""

    def __init__(
        self, ttl: float, *, max_lists: int = 256, per_list: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._max_lists = max_lists
        self._per_list = per_list
        self._clock = clock
        self._lists: OrderedDict[K, dict[int, tuple[float, V]]] = OrderedDict()

    def nearest(self, key: K, offset: int) -> tuple[int, V] | None:
        notes = self._lists.get(key)
        if not notes:
            return None
        now = self._clock()
        best: tuple[int, V] | None = None
        for end, (at, anchor) in list(notes.items()):
            if now - at > self._ttl:
                del notes[end]
            elif end <= offset and (best is None or end > best[0]):
                best = (end, anchor)
        return best

    def record(self, key: K, end: int, anchor: V) -> None:
        notes = self._lists.setdefault(key, {})
        self._lists.move_to_end(key)
        notes[end] = (self._clock(), anchor)
        if len(notes) > self._per_list:
            del notes[min(notes, key=lambda e: notes[e][0])]  # the oldest note
        while len(self._lists) > self._max_lists:
            self._lists.popitem(last=False)
