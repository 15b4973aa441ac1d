"""The public read caches (api/flight.py) without I/O: single flight with a TTL, and page anchors."""

from __future__ import annotations

import asyncio

import pytest

from synapse_async.api.flight import PageAnchors, SingleFlightCache


async def test_concurrent_misses_share_one_computation_and_its_failure() -> None:
    now = [0.0]
    cache: SingleFlightCache[str, int] = SingleFlightCache(5.0, 2, clock=lambda: now[0])
    gate = asyncio.Event()

    async def slow() -> int:
        await gate.wait()
        return 7

    waiting = [asyncio.create_task(cache.get("a", slow)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [7] * 10 and cache.computations == 1
    assert await cache.get("a", slow) == 7 and cache.computations == 1  # within the TTL: no computation
    now[0] = 6.0
    assert await cache.get("a", slow) == 7 and cache.computations == 2  # expired: computed again

    async def broken() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("db down")

    failing = [asyncio.create_task(cache.get("b", broken)) for _ in range(3)]
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and cache.computations == 3
    with pytest.raises(RuntimeError):  # a failure is not cached
        await cache.get("b", broken)
    assert cache.computations == 4


def test_anchors_give_the_nearest_earlier_page_end_and_expire() -> None:
    now = [0.0]
    anchors: PageAnchors[str, int] = PageAnchors(5.0, max_lists=2, per_list=3, clock=lambda: now[0])
    assert anchors.nearest("x", 100) is None
    anchors.record("x", 25, 250)
    anchors.record("x", 50, 500)
    assert anchors.nearest("x", 49) == (25, 250) and anchors.nearest("x", 50) == (50, 500)
    assert anchors.nearest("x", 10) is None
    now[0] = 6.0
    assert anchors.nearest("x", 50) is None  # expired
    for end in (1, 2, 3, 4):
        anchors.record("x", end, end)
    assert anchors.nearest("x", 1) is None and anchors.nearest("x", 4) == (4, 4)  # at most 3 per list
    anchors.record("y", 1, 1)
    anchors.record("z", 1, 1)  # a third list evicts the least recently used one
    assert anchors.nearest("x", 4) is None and anchors.nearest("z", 1) == (1, 1)
