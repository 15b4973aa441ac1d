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
